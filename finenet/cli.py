"""``finenet <stage>``: run one pipeline stage (all planned clips, or ``--clip`` ones) from params.yaml.

Bad input ends with one line ``finenet: <file>: <problem>`` and exit status 2.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import sys
from pathlib import Path

from .errors import FineNetError
from .params import DEFAULT_PARAMS, load_params

STAGES = ("sample", "blur", "heatmaps", "pack", "evaluate", "report")
PER_CLIP = ("sample", "blur", "heatmaps")


def _doc(name: str) -> str:
    """The first line of ``finenet.<name>``'s docstring (``name`` dotted below the package, e.g.
    ``stages.train``), read without importing it (torch...)."""
    module = Path(__file__).parent.joinpath(*name.split(".")).with_suffix(".py")
    tree = ast.parse((module if module.is_file() else module.with_suffix("") / "__init__.py").read_text())
    return (ast.get_docstring(tree) or "").strip().splitlines()[0]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every command; ``deblur`` and ``check`` (whose options their modules define) are imported
    only when ``command`` is one of them or unknown (``finenet --help``), so a stage starts fast."""
    parser = argparse.ArgumentParser(prog="finenet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in STAGES:
        doc = _doc(f"stages.{name}")
        p = sub.add_parser(name, help=doc, description=doc)
        p.add_argument("--params", default=str(DEFAULT_PARAMS), help="parameter file (default: params.yaml)")
        p.add_argument("--profile", default=None, help="override params.yaml's profile")
        if name in PER_CLIP:
            p.add_argument("--clip", action="append", default=None, help="only this clip (repeatable)")
            p.add_argument("--plan", default=None, metavar="FILE",
                           help="read the clip plan from FILE (what Snakemake lists once at parse time) "
                                "instead of listing the datasets")
    doc = _doc("stages.train")
    p = sub.add_parser("train", help=doc, description=doc)
    p.add_argument("net", help="predeblur, enhance, interp, combine, or a baseline of params.yaml's baselines")
    p.add_argument("--variant", default=None, help="ablation variant (params.yaml: variants.<net>)")
    p.add_argument("--params", default=str(DEFAULT_PARAMS))
    p.add_argument("--profile", default=None)
    full = command not in (*STAGES, "train", "plan", "params")
    if full or command == "deblur":
        deblur = importlib.import_module("finenet.deblur")
        p = sub.add_parser("deblur", help=deblur.HELP, description=deblur.DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        deblur.add_arguments(p)
    else:
        sub.add_parser("deblur", help=_doc("deblur"))
    if full or command == "check":
        check = importlib.import_module("finenet.tiers.check")
        p = sub.add_parser("check", help=check.__doc__.splitlines()[0], description=check.__doc__.split("\n\n")[1])
        check.add_arguments(p)
    else:
        sub.add_parser("check", help=_doc("tiers.check"))
    sub.add_parser("userstudy", help="the paper's user study: build the page, tally the answers "
                                     "(finenet userstudy build|tally --help)", add_help=False)
    p = sub.add_parser("plan", help="list the planned clips (id, set, dataset, source)")
    p.add_argument("--params", default=str(DEFAULT_PARAMS))
    p.add_argument("--profile", default=None)
    doc = _doc("stages.params")
    p = sub.add_parser("params", help=doc, description=doc)
    p.add_argument("--params", default=str(DEFAULT_PARAMS))
    p.add_argument("--profile", default=None)
    p.add_argument("--out", default=None, help="where to write them (default: build/params.yaml)")
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["userstudy"]:          # its own sub-commands and options (finenet.userstudy)
        from .userstudy import main as userstudy

        return userstudy(argv[1:])
    args = build_parser(next((a for a in argv if not a.startswith("-")), None)).parse_args(argv)
    try:
        if args.command == "check":        # runs the pipeline itself, with its own profile
            from .tiers.check import main as check

            return check(args)
        params = load_params(args.params, args.profile)
        if args.command == "params":       # DVC's first stage: validated, resolved, written
            from .stages.params import write

            write(params, *([args.out] if args.out else []))
            return 0
        if args.command == "plan":
            from .data.clips import plan_clips

            for c in plan_clips(params):
                print(c.clip_id, c.set, c.dataset, c.source, sep="\t")
            return 0
        if args.command == "deblur":
            from .deblur import encode_options, run as deblur

            deblur(params, args.input, args.output, args.checkpoint, args.device,
                   **encode_options(args))
            return 0
        if args.command == "train":
            from .stages.train import run as train

            train(params, args.net, args.variant)
            return 0
        stage = importlib.import_module(f"finenet.stages.{args.command}")
        if args.command in PER_CLIP:
            stage.run(params, args.clip, args.plan)
        else:
            stage.run(params, getattr(args, "clip", None))
    except FineNetError as exc:
        print(f"finenet: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:            # disk full, a read-only or vanished folder, while writing
        where = exc.filename or "output"
        print(f"finenet: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("finenet: interrupted; finished clips are kept, the one in flight was discarded",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
