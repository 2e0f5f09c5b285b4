"""The learning-rate sweep: each method's main network trained at several learning rates, scored on
the val set (clips disjoint from train and test), one DVC experiment per learning rate.

    make lr-sweep                                   # every value of sweep.values, then the summary
    dvc exp run sweep/dvc.yaml -S params.yaml:sweep.lr=5e-4 -n lr-0.0005   # one experiment
    python -m finenet.tiers.sweep                         # what sweep/dvc.yaml's stage runs (one lr)
    python -m finenet.tiers.sweep --summary               # the summary of the experiments (dvc exp show)

An experiment (``sweep/dvc.yaml``'s ``sweep`` stage) trains, in ``runs/sweep/lr<lr>`` (the bench
profile, every rate in ``train.lr`` and every baseline's ``lr`` = ``sweep.lr``, ``train.seed`` = ``sweep.seed``, ``data/`` linked to the
default pipeline's; ``finenet.tiers.runs``), the network each method is scored by: FineNet's pre-deblur,
enhancement and interpolation branches and late-fusion combiner (``finenet.tiers.release.FINENET_RUNS``; an
ablation variant trains at its network's rate) and every baseline, with Snakemake, training rules
only; then writes ``reports/sweep/val.json`` (a DVC metric): each network's best validation PSNR,
its step, the last one and the curve. FineNet's networks are trained in a chain (the branches on
the pre-deblur, the combiner on the branches), so a branch's score at a rate is with its front end
at that rate too. A killed experiment resumes from its run directory.

The summary (``--summary``) reads every experiment's metrics from ``dvc exp show --json`` (and the
workspace's), and writes ``reports/sweep/summary.{md,json}`` and ``summary.png``: validation PSNR per
network and learning rate, the best rate of each, and its margin over the next best, set against the
seed-to-seed spread of the bench tier where the bench has run. The rate is picked on validation
only, never on the test set.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np

from . import runs
from ..atomic import atomic_path
from ..errors import FineNetError
from ..layout import Layout, run_name
from ..models.config import learning_rate
from ..params import DEFAULT_PARAMS
from .release import FINENET_RUNS as MAIN_RUNS       # the networks FineNet is made of (its main variants)

PROFILE = "bench"
RUNS = Path("runs") / "sweep"
OUT = Path("reports") / "sweep"
METRICS = OUT / "val.json"
SUMMARY = OUT / "summary"


def work_dir(lr: float) -> Path:
    return RUNS / f"lr{lr:g}"


def swept_runs(params: dict) -> list[tuple[str, str | None]]:
    """(net, variant) of the networks the sweep trains: FineNet's four, then every baseline."""
    return [*MAIN_RUNS, *((b, None) for b in params["baselines"])]


def sweep_params(params_file=DEFAULT_PARAMS) -> dict:
    """The bench profile's parameters (checked to share the default pipeline's data), whose
    ``sweep`` section drives the sweep."""
    from .bench import bench_params

    return bench_params(params_file)


def targets(params: dict) -> list[str]:
    layout = Layout()
    return [str(p) for net, v in swept_runs(params)
            for p in (layout.train_summary(net, v), layout.train_curve(net, v, suffix="_val"))]


def collect(work: Path, params: dict) -> dict:
    """Each swept network's validation scores in a finished run directory."""
    import pandas as pd

    layout, out = Layout(), {}
    for net, v in swept_runs(params):
        summary = json.loads((work / layout.train_summary(net, v)).read_text())
        curve = pd.read_csv(work / layout.train_curve(net, v, suffix="_val"))
        out[run_name(net, v)] = {
            "val_psnr_best": summary["val_psnr_best"], "best_step": summary["best_step"],
            "val_psnr_final": summary["val_psnr_final"], "iterations": summary["iterations"],
            "curve": {"step": curve.step.astype(int).tolist(), "val_psnr": curve.val_psnr.round(4).tolist()}}
    return out


def write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value, indent=2) + "\n")


def swept(params: dict, lr: float, seed: int) -> dict:
    """The overrides of a sweep run: every network (and every baseline, whatever rate the profile
    gives it) at ``lr``, training seed ``seed``."""
    return {"train": {"seed": seed, "lr": {k: lr for k in params["train"]["lr"]}},
            "baselines": {name: {"lr": lr} for name in params["baselines"]}}


def run_experiment(params: dict) -> dict:
    """One experiment: train the swept networks at ``sweep.lr``; write the metrics file."""
    sweep = params["sweep"]
    lr, seed = float(sweep["lr"]), int(sweep["seed"])
    work = runs.prepare(work_dir(lr), PROFILE, swept(params, lr, seed))
    runs.run_rules(work, targets(params), params["bench"]["cores"], what=f"sweep run at lr {lr:g}")
    result = {"lr": lr, "seed": seed, "profile": PROFILE, "runs": collect(work, params)}
    write_json(METRICS, result)
    return result


# --- the summary of the experiments ------------------------------------------------------------

def experiments_from_show(show) -> list[dict]:
    """Every sweep result (``reports/sweep/val.json``'s content, with the experiment's ``name``)
    found in ``dvc exp show --json`` output, whatever its nesting: a walk for nodes whose ``data``
    holds that metrics file."""
    found = []

    def walk(node, name=None):
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, dict):
                metrics = (data.get("metrics") or {}).get(METRICS.as_posix()) or {}
                value = metrics.get("data") if isinstance(metrics, dict) else None
                if isinstance(value, dict) and "lr" in value and "runs" in value:
                    found.append({**value, "name": node.get("name") or name or node.get("rev")})
            for key, child in node.items():
                if key != "data":
                    walk(child, node.get("name") or name)
        elif isinstance(node, list):
            for child in node:
                walk(child, name)

    walk(show)
    return found


def by_lr(results: list[dict]) -> dict[float, dict]:
    """One result per learning rate (a named experiment before the workspace's copy of it)."""
    out: dict[float, dict] = {}
    for r in sorted(results, key=lambda r: r.get("name") in (None, "workspace")):
        out.setdefault(float(r["lr"]), r)
    return dict(sorted(out.items()))


def pick(results: dict[float, dict]) -> dict:
    """Per network: its best validation PSNR at each learning rate, the best rate, and the margin
    over the second best."""
    if len(results) < 2:
        raise FineNetError("reports/sweep", f"the summary needs at least two learning rates, found "
                                            f"{len(results)}: run `make lr-sweep`")
    nets = list(next(iter(results.values()))["runs"])
    table = {}
    for net in nets:
        scores = {lr: r["runs"][net]["val_psnr_best"] for lr, r in results.items() if net in r["runs"]}
        ranked = sorted(scores, key=scores.get, reverse=True)
        table[net] = {"val_psnr": {f"{lr:g}": scores[lr] for lr in scores}, "best_lr": ranked[0],
                      "margin_db": round(scores[ranked[0]] - scores[ranked[1]], 4) if len(ranked) > 1 else None,
                      "best_step": results[ranked[0]]["runs"][net]["best_step"],
                      "iterations": results[ranked[0]]["runs"][net]["iterations"]}
    return table


def bench_spread(params: dict) -> dict:
    """Each swept network's seed-to-seed sd of its best validation PSNR in the bench tier (its
    committed ``reports/bench/tables/training.csv``; None where fewer than two seeds have it, or
    no bench report is there)."""
    import pandas as pd

    from .bench import TRAINING

    path = TRAINING.with_suffix(".csv")
    table = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["run", "val_psnr_best"])
    out = {}
    for net, v in swept_runs(params):
        values = table[table.run == run_name(net, v)].val_psnr_best.astype(float)
        out[run_name(net, v)] = round(float(values.std(ddof=1)), 4) if len(values) > 1 else None
    return out


def summary_markdown(table: dict, results: dict, spread: dict, rates: dict) -> str:
    lrs = [f"{lr:g}" for lr in results]
    lines = ["# Learning-rate sweep", "",
             "`python -m finenet.tiers.sweep --summary` from the DVC experiments of `sweep/dvc.yaml` "
             f"(`make lr-sweep`): each method's network trained at each learning rate (bench profile, "
             f"training seed {next(iter(results.values()))['seed']}), best validation PSNR (dB) on the val set; "
             "**bold**: the best rate. margin: best minus second best; seed sd: the sd of that network's "
             "best validation PSNR over the bench tier's training seeds (at its rate); a margin below it is "
             "within seed noise. bench lr: the rate the bench tier trains the network at (params.yaml: "
             "`train.lr`, a baseline's own `lr`).", "",
             "| network | " + " | ".join(f"lr {x}" for x in lrs) + " | best | margin | seed sd | best step | bench lr |",
             "|:--|" + "--:|" * len(lrs) + ":--|--:|--:|--:|--:|"]
    for net, row in table.items():
        cells = [f"**{row['val_psnr'][x]:.2f}**" if float(x) == row["best_lr"] else
                 f"{row['val_psnr'][x]:.2f}" if x in row["val_psnr"] else "—" for x in lrs]
        sd = spread.get(net)
        lines.append(f"| `{net}` | " + " | ".join(cells) + f" | {row['best_lr']:g} | "
                     f"{row['margin_db']:+.2f} | {'—' if sd is None else f'{sd:.2f}'} | "
                     f"{row['best_step']} of {row['iterations']} | {rates[net]:g} |")
    names = ", ".join(f"`{r.get('name')}` (lr {lr:g})" for lr, r in results.items())
    lines += ["", f"Experiments: {names}."]
    return "\n".join(lines) + "\n"


def summary_figure(results: dict, table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lrs = list(results)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for net, row in table.items():
        ys = [row["val_psnr"].get(f"{lr:g}", math.nan) for lr in lrs]
        line, = ax.plot(lrs, ys, marker="o", label=net)
        ax.plot([row["best_lr"]], [row["val_psnr"][f"{row['best_lr']:g}"]], marker="*", markersize=14,
                color=line.get_color())
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("best validation PSNR (dB)")
    ax.set_title("Learning-rate sweep (star: best on val)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def dvc_exp_show() -> object:
    proc = subprocess.run(["dvc", "exp", "show", "--json", "--all-commits"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise FineNetError("dvc exp show", (proc.stderr.strip().splitlines() or ["failed"])[-1])
    return json.loads(proc.stdout)


def summarise(params: dict, show) -> dict:
    results = by_lr(experiments_from_show(show))
    table = pick(results)
    spread = bench_spread(params)
    rates = {run_name(net, v): learning_rate(params, net) for net, v in swept_runs(params)}
    out = {"learning_rates": list(results), "experiments": {f"{lr:g}": r.get("name") for lr, r in results.items()},
           "seed": next(iter(results.values()))["seed"],
           "networks": {net: {**row, "bench_seed_sd": spread.get(net), "bench_lr": rates[net]}
                        for net, row in table.items()}}
    write_json(SUMMARY.with_suffix(".json"), out)
    with atomic_path(SUMMARY.with_suffix(".md")) as tmp:
        tmp.write_text(summary_markdown(table, results, spread, rates))
    summary_figure(results, table, SUMMARY.with_suffix(".png"))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finenet.tiers.sweep", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--summary", action="store_true", help="summarise the DVC experiments")
    mode.add_argument("--values", action="store_true", help="print sweep.values, one per line")
    args = parser.parse_args(argv)
    try:
        params = sweep_params()
        if args.values:
            print("\n".join(f"{float(v):g}" for v in params["sweep"]["values"]))
        elif args.summary:
            summarise(params, dvc_exp_show())
            print(f"wrote {SUMMARY}.md, .json, .png", file=sys.stderr)
        else:
            run_experiment(params)
    except FineNetError as exc:
        print(f"finenet sweep: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
