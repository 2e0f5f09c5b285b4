"""The paper's user study (Sec. 4.5: 46 people picked the best of the methods' outputs on 23
real-blur cases; FineNet was chosen 91.3 % of the time) as a page anyone can run, and its tally.

``finenet userstudy build`` reads the evaluate stage's qualitative samples
(``reports/eval/samples.h5``: every method's output on a few frames of each test set) and writes
one self-contained static page, ``index.html`` (images embedded as PNG data URIs, no network, no
external script or style), with one case per sample of the real-blur set(s). Each case shows the
blurry input as a reference and the methods' outputs in a random order (seeded, per case), known
to the page only by position: no method name is anywhere in the page. The mapping back to the
methods is ``key.json`` next to it, with the page's SHA-256 and a study id that the page writes
into every answer, so ``tally`` can tell whether answers and key belong together. Share the page,
keep the key.

``finenet userstudy tally --key key.json answers/*.csv --out DIR`` maps each answer's
position back to its method and writes the win-rate table (``userstudy.csv``, ``userstudy.md``,
``userstudy.json``) and a pie chart (``userstudy_pie.png``). See ``tally.py`` for the interval
and the rule for duplicate answers.

Errors about a file are one :class:`finenet.errors.FineNetError`, printed as one line
``finenet: <path>: <problem>`` with exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import FineNetError
from ..layout import DEFAULT as LAYOUT

PROG = "finenet userstudy"
OUT = LAYOUT.reports / "userstudy"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "build", help="write the study page (index.html) and its key (key.json)",
        description="Write a self-contained study page from the real-blur samples of samples.h5, and "
                    "key.json (the methods behind each position) next to it. Share index.html only. "
                    "The embedded scale has a single real-blur sample (evaluate keeps "
                    "a few frames per set), so --with-synthetic adds the synthetically blurred test "
                    "sets' samples as further cases; the page's footer says when it does.")
    p.add_argument("--samples", default=str(LAYOUT.eval_samples),
                   help="the evaluate stage's samples (default: %(default)s)")
    p.add_argument("--sets", nargs="+", default=None, metavar="SET",
                   help="the sets whose samples become cases (default: the real-blur sets: a name containing "
                        "'realblur', or no ground truth, as the paper profile's 'youtube')")
    p.add_argument("--with-synthetic", action="store_true",
                   help="also every other (synthetically blurred) test set in samples.h5: the embedded "
                        "scale has few real-blur samples")
    p.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                   help="methods to compare, as samples.h5 names them (default: FineNet, finenet/late, "
                        "and the deblurring baselines the paper compared)")
    p.add_argument("--seed", type=int, default=0, help="seed of the order of each case's options (the order follows from it and samples.h5: "
                        "for a study with real participants, pick one they do not know)")
    p.add_argument("--out", default=str(OUT), help="folder for index.html and key.json (default: %(default)s)")

    p = sub.add_parser(
        "tally", help="count the answers: win-rate table, pie chart",
        description="Map the positions in answer CSVs (the page's 'Download answers') back to the methods "
                    "with the key, and write the win-rate table (CSV, Markdown, JSON) and a pie chart. "
                    "The 95 % interval of each share is a percentile bootstrap over participants. "
                    "When one participant answered a case more than once, the answer with the latest "
                    "timestamp counts (at equal timestamps, the one read last: files in the order "
                    "given, rows in file order).")
    p.add_argument("answers", nargs="+", help="answer CSVs downloaded from the page")
    p.add_argument("--key", default=str(OUT / "key.json"), help="the page's key (default: %(default)s)")
    p.add_argument("--page", default=None,
                   help="the page the answers came from, checked against the key's SHA-256 (default: the "
                        "page named in the key, next to it, where it exists)")
    p.add_argument("--out", required=True, help="folder for the tables and the pie chart")
    p.add_argument("--bootstrap-samples", type=int, default=10000, help="resamples (default: %(default)s)")
    p.add_argument("--confidence", type=float, default=0.95, help="interval level (default: %(default)s)")
    p.add_argument("--bootstrap-seed", type=int, default=0, help="resampling seed (default: %(default)s)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        if args.command == "build":
            from .build import build

            study = build(args.samples, args.out, sets=args.sets, with_synthetic=args.with_synthetic,
                          methods=args.methods, seed=args.seed)
            print(f"{study.page}: {len(study.cases)} case{'s' * (len(study.cases) != 1)}, {len(study.methods)} options each "
                  f"(sets: {', '.join(study.sets)})")
            print(f"{study.key}: the methods behind each position; share the page, not the key")
            return 0
        from .tally import tally

        result = tally(args.key, args.answers, args.out, page=args.page,
                       samples=args.bootstrap_samples, confidence=args.confidence, seed=args.bootstrap_seed)
        print(result.summary())
        return 0
    except FineNetError as exc:
        print(f"finenet: {exc}", file=sys.stderr)
        return 2
