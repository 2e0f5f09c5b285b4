"""A design change of one network, A/B on the validation set over the bench tier's training seeds.

    python benchmarks/bench_design_ab.py --name predeblur_candidate --set model.combine_predeblur=true
        [--net combine] [--variant late] [--seeds 1 2 3]

For each seed ``s`` of the bench tier (``runs/bench/seed<s>``, trained: ``make bench-tier``), a
working folder ``runs/ab/<name>/seed<s>`` with the bench profile, that seed, and the ``--set``
overrides (``finenet.tiers.runs.prepare``: ``data/`` linked to the default pipeline's), the trained
networks the changed one sits on copied from the seed's folder (the same frozen branches: only the
changed network differs), and Snakemake retraining that one network there (``train_<net>`` the only
rule allowed). Then its best validation PSNR against the seed's own (``reports/train/<run>.json``
of both): the difference per seed, the mean ± sd over seeds, and whether every seed agrees in
sign. The choice is made on the val set (clips disjoint from train and test), as the learning
rates are; the test set and the held-out clips are not read.

Writes ``reports/benchmarks/ab_<name>.json`` and ``.md`` (atomically). A killed run resumes
(Snakemake keeps what finished, the training its checkpoint).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from finenet.tiers import runs  # noqa: E402
from finenet.atomic import atomic_path  # noqa: E402
from finenet.tiers.bench import PROFILE, bench_params, seed_dir  # noqa: E402
from finenet.errors import FineNetError  # noqa: E402
from finenet.layout import NETS, Layout, model_path, run_name  # noqa: E402
from finenet.stages.train import frozen_inputs  # noqa: E402

RESULTS = Path("reports") / "benchmarks"


def overrides(assignments: list[str]) -> dict:
    """``["model.combine_predeblur=true", ...]`` -> a nested dict (values read as YAML)."""
    out: dict = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FineNetError("--set", f"'{item}' is not KEY=VALUE (e.g. model.combine_predeblur=true)")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return out


def prepare(name: str, seed: int, changes: dict, net: str) -> Path:
    """The A/B folder of one seed: params (bench profile, the seed, the changes), data linked, the
    frozen networks copied from the seed's trained folder."""
    work = runs.prepare(Path("runs") / "ab" / name / f"seed{seed}", PROFILE,
                        {**changes, "train": {**changes.get("train", {}), "seed": seed}})
    upstream = frozen_inputs(net) or ([] if net == "predeblur" else [model_path("predeblur")])
    for path in upstream:                # what the network's training rule reads (a baseline: the
                                         # pre-deblur EDVR starts from)
        src, dst = seed_dir(seed) / path, work / path
        if not src.is_file():
            raise FineNetError(src, f"not trained: run the bench tier first (make bench-tier); "
                                    f"{Layout(work).models} needs the networks {net} sits on")
        if not dst.is_file() or dst.read_bytes() != src.read_bytes():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    return work


def score(folder: Path, net: str, variant: str | None) -> dict:
    path = Layout(folder).train_summary(net, variant)
    if not path.is_file():
        raise FineNetError(path, "training summary not found")
    summary = json.loads(path.read_text())
    return {"val_psnr_best": summary["val_psnr_best"], "best_step": summary["best_step"]}


def compare(name: str, changes: dict, net: str, variant: str | None, rows: list[dict]) -> dict:
    diffs = np.array([r["changed"]["val_psnr_best"] - r["base"]["val_psnr_best"] for r in rows])
    sd = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None
    return {"name": name, "changes": changes, "network": run_name(net, variant), "profile": PROFILE,
            "seeds": rows, "mean_diff_db": round(float(diffs.mean()), 4),
            "sd_db": None if sd is None else round(sd, 4),
            "every_seed_same_sign": bool(np.all(diffs > 0) or np.all(diffs < 0))}


def markdown(result: dict) -> str:
    lines = [f"# A/B on the val set: `{result['name']}`", "",
             f"`benchmarks/bench_design_ab.py`: `{result['network']}` retrained with "
             f"`{json.dumps(result['changes'])}` on each bench seed's own frozen networks (profile "
             f"`{result['profile']}`), against that seed's network as the bench trained it. Best "
             "validation PSNR (dB) @ the step it was reached.", "",
             "| seed | bench | changed | difference |", "|--:|--:|--:|--:|"]
    for r in result["seeds"]:
        b, c = r["base"], r["changed"]
        lines.append(f"| {r['seed']} | {b['val_psnr_best']:.2f} @ {b['best_step']} | "
                     f"{c['val_psnr_best']:.2f} @ {c['best_step']} | "
                     f"{c['val_psnr_best'] - b['val_psnr_best']:+.2f} |")
    sd = result["sd_db"]
    lines += ["", f"Mean difference {result['mean_diff_db']:+.2f} dB"
              + ("" if sd is None else f" ± {sd:.2f} (sd over seeds)")
              + f"; every seed the same sign: {'yes' if result['every_seed_same_sign'] else 'no'}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True, help="the change's name (folder and result file)")
    ap.add_argument("--set", action="append", default=[], dest="sets", metavar="KEY=VALUE",
                    help="a parameter of the bench profile to change (repeatable)")
    ap.add_argument("--net", default="combine")
    ap.add_argument("--variant", default="late")
    ap.add_argument("--seeds", type=int, nargs="*", default=None)
    args = ap.parse_args(argv)
    try:
        if not args.sets:
            raise FineNetError("--set", "nothing to change: give at least one KEY=VALUE")
        changes = overrides(args.sets)
        params = bench_params()
        variant = args.variant if args.net in ("enhance", "interp", "combine") else None
        rows = []
        for seed in args.seeds or params["bench"]["seeds"]:
            work = prepare(args.name, seed, changes, args.net)
            layout = Layout()
            runs.run_rules(work, [str(layout.train_summary(args.net, variant))], params["bench"]["cores"],
                           rules=(f"train_{args.net}" if args.net in NETS else "train_baseline",),
                           what=f"A/B run of seed {seed}")
            rows.append({"seed": seed, "base": score(seed_dir(seed), args.net, variant),
                         "changed": score(work, args.net, variant)})
        result = compare(args.name, changes, args.net, variant, rows)
    except FineNetError as exc:
        print(f"bench_design_ab: {exc}", file=sys.stderr)
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    with atomic_path(RESULTS / f"ab_{args.name}.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    with atomic_path(RESULTS / f"ab_{args.name}.md") as tmp:
        tmp.write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
