"""The bench tier: the embedded sample, trained long enough to converge, with several training
seeds; the paper's tables with mean ± sd over seeds and paired bootstrap intervals, in
``reports/bench/``.

    python -m finenet.tiers.bench              # what bench/dvc.yaml's stage runs (`make bench-tier`)
    python -m finenet.tiers.bench --aggregate  # only rebuild reports/bench/ from finished seeds

Per training seed ``s`` of ``bench.seeds``: a working directory ``runs/bench/seed<s>`` holds a
``params.yaml`` (profile ``bench``, ``train.seed: s``) and links ``data/`` to the default
pipeline's: the bench profile may not change a key the data stages read (checked), so its sample
is the default pipeline's, by construction. Snakemake runs the training rules and ``evaluate``
there (``--allowed-rules``: never a data rule), ``bench.cores`` jobs at a time: the bench profile
trains each network on ``train.threads: 1``, so two networks train at once on 2 cores. A killed
run resumes: Snakemake keeps every finished network and re-runs the incomplete one, whose own
training checkpoint resumes it (``finenet train``), so at most ``train.checkpoint_every`` steps
are lost.

Then ``reports/bench/`` is the report of all seeds together (``finenet.stages.report.build``): table
cells are means over seeds ± the standard deviation of the per-seed means; paired bootstrap
intervals, pies and severity curves use the seed-averaged per-frame PSNR (intervals over test
frames); ``tables/seed_differences.md`` lists each paired comparison seed by seed (the spread
those intervals do not include); validation curves are means over seeds with a ±sd band;
``manifest.json`` records each seed's trained models by content digest.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from . import runs
from ..reporting import stats, tables
from ..stages import report
from ..atomic import atomic_path
from ..checkpoint import content_digest
from ..errors import FineNetError
from ..layout import Layout, run_name, training_runs
from ..params import DEFAULT_PARAMS, load_params

PROFILE = "bench"
RUNS = Path("runs") / PROFILE                 # one working directory per training seed
OUT = report.Outputs(Path("reports") / PROFILE)
MANIFEST = OUT.root / "manifest.json"
TRAINING = OUT.tables / "training"            # .csv/.md: every network's training summary per seed
# what the data stages read: the bench profile must leave these as the default pipeline has them
DATA_KEYS = ("seed", "data", "blur", "landmarks")
TRAIN_RULES = (*runs.TRAIN_RULES, "evaluate")


def seed_dir(seed: int) -> Path:
    return RUNS / f"seed{seed}"


def bench_params(params_file=DEFAULT_PARAMS) -> dict:
    """The bench profile's parameters, checked to share the default pipeline's data."""
    bench = load_params(params_file, PROFILE)
    default = load_params(params_file, "embedded")
    for key in DATA_KEYS:
        if bench[key] != default[key]:
            raise FineNetError(f"{params_file}: profiles.{PROFILE}", f"changes '{key}', which the data "
                               f"stages read: the bench tier trains on the default pipeline's sample")
    return bench


def prepare(seed: int, params_file=DEFAULT_PARAMS) -> Path:
    """The seed's working directory: params.yaml (profile bench, this train.seed), data linked."""
    return runs.prepare(seed_dir(seed), PROFILE, {"train": {"seed": seed}}, params_file)


def targets(params: dict) -> list[str]:
    """What a seed's run must produce: the evaluation (every file the report of all seeds reads)
    and every network's validation curve."""
    layout = Layout()
    trained = training_runs(params["variants"], params["baselines"])
    evaluation = (layout.metrics, layout.eval_frames, layout.eval_noref, layout.eval_samples,
                  layout.eval_temporal, layout.eval_clips)
    return [*map(str, evaluation), *(str(layout.train_curve(net, v, suffix="_val")) for net, v in trained),
            *(str(layout.train_summary(net, v)) for net, v in trained)]


def train_seed(seed: int, params: dict, cores: int) -> None:
    """Train and evaluate every network for one seed (Snakemake; resumes a killed run)."""
    runs.run_rules(prepare(seed), targets(params), cores, TRAIN_RULES, what=f"bench run of seed {seed}")


# --- the report of all seeds -------------------------------------------------------------------

def seed_frames(seeds) -> pd.DataFrame:
    parts = []
    for s in seeds:
        path = seed_dir(s) / report.FRAMES
        parts.append(report.read_table(path, report.FRAME_COLUMNS).assign(seed=s))
    return pd.concat(parts, ignore_index=True)


def seed_temporal(seeds) -> pd.DataFrame:
    """Every seed's warping errors (``reports/eval/temporal.csv``), with a ``seed`` column."""
    return pd.concat([report.read_table(seed_dir(s) / report.TEMPORAL, report.TEMPORAL_COLUMNS).assign(seed=s)
                      for s in seeds], ignore_index=True)


def seed_noref(seeds) -> pd.DataFrame:
    parts = [report.read_table(seed_dir(s) / report.NOREF, report.NOREF_COLUMNS) for s in seeds]
    frames = pd.concat(parts, ignore_index=True)
    if frames.empty:
        return frames
    return frames.groupby(["method", "set", "clip", "t"], sort=False)[["blur_effect", "face_found"]].mean().reset_index()


def seed_curves(params: dict, seeds) -> dict:
    """run -> validation curve, mean over seeds and sd (by step)."""
    curves = {}
    for net, variant in training_runs(params["variants"], params["baselines"]):
        parts = []
        for s in seeds:
            path = seed_dir(s) / Layout().train_curve(net, variant, suffix="_val")
            if not path.is_file():
                raise FineNetError(path, f"validation curve not found: seed {s} has not finished")
            parts.append(report.read_table(path, report.CURVE_COLUMNS))
        both = pd.concat(parts).groupby("step").val_psnr
        curves[run_name(net, variant)] = pd.DataFrame({"val_psnr": both.mean(), "val_psnr_sd": both.std(ddof=1)}
                                                      ).reset_index().fillna({"val_psnr_sd": 0.0})
    return curves


def seed_differences(frames: pd.DataFrame, params: dict) -> tuple[str, pd.DataFrame]:
    """Each paired comparison's mean PSNR difference on the blurred frames, seed by seed."""
    rp = params["report"]
    rows = []
    for s, part in frames.groupby("seed"):
        cmp = stats.comparisons(part.drop(columns="seed"), 200, rp["confidence"], rp["bootstrap_seed"])
        cmp = cmp[cmp.group == "blurred"]
        rows += [dict(seed=int(s), set=r.set, comparison=r.comparison, label=r.label, mean_diff=r.mean_diff)
                 for r in cmp.itertuples()]
    table = pd.DataFrame(rows, columns=["seed", "set", "comparison", "label", "mean_diff"])
    seeds = sorted(table.seed.unique())
    lines, out = [], []
    for (set_name, key), part in table.groupby(["set", "comparison"], sort=False):
        per = part.set_index("seed").mean_diff
        d = np.array([per.get(s, np.nan) for s in seeds], dtype=float)
        sd = float(np.std(d, ddof=1)) if len(d) > 1 else float("nan")
        same_sign = bool(np.all(d > 0) or np.all(d < 0))
        lines.append([f"`{set_name}`", part.label.iloc[0], *(f"{v:+.2f}" for v in d),
                      f"{np.mean(d):+.2f} ± {sd:.2f}", "yes" if same_sign else "no"])
        out.append(dict(set=set_name, comparison=key, **{f"seed{s}": v for s, v in zip(seeds, d)},
                        mean=float(np.mean(d)), sd=sd, same_sign=same_sign))
    md = ("# Paired comparisons, seed by seed\n\n"
          "Mean per-frame PSNR difference (dB) on the blurred test frames, for each training seed's "
          "models; then the mean ± sd over seeds, and whether every seed gives the same sign. The "
          "intervals in [comparisons.md](comparisons.md) are over test frames of the seed-averaged "
          "differences; this table is the seed-to-seed spread they do not include.\n\n"
          + tables.markdown(["Set", "Comparison", *(f"seed {s}" for s in seeds), "mean ± sd", "same sign"], lines))
    return md, tables.rounded(pd.DataFrame(out))


SUMMARY_FIELDS = ("lr", "iterations", "best_step", "val_psnr_best", "val_psnr_final", "first_loss", "final_loss")


def training_table(params: dict, seeds) -> tuple[str, pd.DataFrame]:
    """Every network's training summary, seed by seed (each seed's ``reports/train/<run>.json``,
    less its wall time): what the seed spread of a validation score (the sweep's "seed sd") and a
    convergence check read, kept with the report because the run folders are not committed."""
    rows = []
    for net, variant in training_runs(params["variants"], params["baselines"]):
        for s in seeds:
            path = seed_dir(s) / Layout().train_summary(net, variant)
            if not path.is_file():
                raise FineNetError(path, f"training summary not found: seed {s} has not finished")
            summary = json.loads(path.read_text())
            rows.append({"run": run_name(net, variant), "seed": s,
                         **{k: summary.get(k) for k in SUMMARY_FIELDS}})
    table = pd.DataFrame(rows, columns=["run", "seed", *SUMMARY_FIELDS])
    lines = []
    for run, part in table.groupby("run", sort=False):
        best = part.val_psnr_best.astype(float)
        lr = part.lr.iloc[0]
        lines.append([f"`{run}`", "—" if pd.isna(lr) else f"{lr:g}", str(int(part.iterations.iloc[0])),
                      *(f"{v:.2f} @ {int(step)}" for v, step in zip(best, part.best_step)),
                      f"{best.mean():.2f} ± {best.std(ddof=1) if len(best) > 1 else 0:.2f}"])
    md = ("# Training, seed by seed\n\n"
          "Each network's learning rate, its steps (late fusion: with its keep model's solo phase), "
          "and per training seed its best validation PSNR (dB) @ the step it was reached (the "
          "checkpoint kept); then mean ± sd over seeds.\n\n"
          + tables.markdown(["Network", "lr", "steps", *(f"seed {s}" for s in seeds), "mean ± sd"], lines))
    return md, tables.rounded(table)


def manifest(params: dict, seeds) -> dict:
    """Each seed's trained models by content digest (weights + metadata), so a release model can
    be checked against the run that produced the committed numbers."""
    trained = training_runs(params["variants"], params["baselines"])
    return {"profile": PROFILE, "seeds": list(seeds),
            "models": {str(s): {run_name(net, v): content_digest(seed_dir(s) / Layout().model_path(net, v)).hex()[:16]
                                for net, v in trained} for s in seeds}}


def aggregate(params: dict) -> None:
    seeds = params["bench"]["seeds"]
    frames = seed_frames(seeds)
    first = seed_dir(seeds[0]) / report.SAMPLES
    note = (f"**Bench tier**: {len(seeds)} training seeds ({', '.join(map(str, seeds))}) of profile `{PROFILE}` "
            "on the default pipeline's sample; table cells are means over seeds ± the standard deviation of "
            "the per-seed means; intervals are paired bootstrap intervals over test frames of the "
            "seed-averaged differences ([seed by seed](tables/seed_differences.md)); qualitative samples "
            f"and clips from seed {seeds[0]}.\n\n")
    report.build(params, frames, seed_noref(seeds), report.read_samples(first), seed_curves(params, seeds),
                 out=OUT, note=note, temporal=seed_temporal(seeds),
                 clips=report.read_clips(seed_dir(seeds[0]) / report.CLIPS))
    md, csv = seed_differences(frames, params)
    report.write_text(OUT.tables / "seed_differences.md", md)
    report.write_csv(OUT.tables / "seed_differences.csv", csv)
    md, csv = training_table(params, seeds)
    report.write_text(TRAINING.with_suffix(".md"), md)
    report.write_csv(TRAINING.with_suffix(".csv"), csv)
    with atomic_path(MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest(params, seeds), indent=2) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finenet.tiers.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--aggregate", action="store_true", help="only rebuild reports/bench/ from finished seeds")
    parser.add_argument("--seed", type=int, action="append", default=None, help="only this seed (repeatable)")
    args = parser.parse_args(argv)
    try:
        params = bench_params()
        if not args.aggregate:
            for s in args.seed or params["bench"]["seeds"]:
                train_seed(s, params, params["bench"]["cores"])
        if not args.seed:
            aggregate(params)
    except FineNetError as exc:
        print(f"finenet bench: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
