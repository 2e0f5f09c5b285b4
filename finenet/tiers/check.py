"""``finenet check``: the CI metric check — do the pipeline's results stay where they were?

Runs the whole pipeline with Snakemake under the ``ci`` profile (every stage, on a smaller sample
and smaller models) in a scratch directory, then compares the run's ``reports/metrics.json`` with
the committed reference ``reports/reference/ci_metrics.json`` (and builds the run's
``snakemake --report`` HTML, which must succeed): every metric must lie within its
tolerance in ``reports/reference/ci_tolerance.json``. A drift exits 1 with one readable line per
metric (reference, measured, difference, tolerance).

``--calibrate`` makes the reference and the tolerances: it runs the profile with the default
training seed (the reference) and with ``--seeds`` other training seeds on the same data, and sets
each metric's tolerance to ``K`` times its standard deviation across those runs, never below a
floor per kind of metric. Same seed, same machine gives identical numbers (training is
deterministic on CPU), so the seed-to-seed spread is an upper bound of what a different CPU or
library build can move; the floors cover metrics that do not depend on training (the input's).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

from ..atomic import atomic_path
from ..errors import FineNetError
from ..params import ROOT

REFERENCE = ROOT / "reports" / "reference" / "ci_metrics.json"
TOLERANCE = ROOT / "reports" / "reference" / "ci_tolerance.json"
PROFILE = "ci"
K = 4.0
FLOORS = {"psnr": 0.05, "ssim": 0.002, "nme": 0.005, "warp": 0.05}    # warp: E_warp x 10^3
KEYS = ("psnr_blurred", "ssim_blurred", "psnr_sharp", "ssim_sharp", "nme", "warp_error")


def flatten(metrics: dict) -> dict[str, float]:
    """``{set: {method: {metric: v}}}`` -> ``{"set method metric": v}`` for the checked metrics."""
    return {f"{s} {m} {k}": float(v) for s, methods in metrics.items() for m, entry in methods.items()
            for k, v in entry.items() if k in KEYS}


def kind(key: str) -> str:
    return key.rsplit(" ", 1)[1].split("_")[0]


def compare(measured: dict, reference: dict, tolerance: dict) -> list[str]:
    """One line per metric out of tolerance, missing or unexpected; empty when all agree."""
    got, ref = flatten(measured), flatten(reference)
    problems = [f"{key}: missing from this run (reference {ref[key]:.4f})" for key in sorted(ref.keys() - got.keys())]
    problems += [f"{key}: not in the reference (measured {got[key]:.4f}); re-run --calibrate"
                 for key in sorted(got.keys() - ref.keys())]
    drifts = []
    for key in ref.keys() & got.keys():
        tol = tolerance.get(key, FLOORS[kind(key)])
        diff = got[key] - ref[key]
        if not abs(diff) <= tol:          # NaN drifts too
            drifts.append((abs(diff) / tol, f"{key}: {got[key]:.4f}, reference {ref[key]:.4f} "
                                            f"({diff:+.4f}, tolerance ±{tol:.4f})"))
    return problems + [line for _, line in sorted(drifts, reverse=True)]


def tolerances(runs: list[dict]) -> dict[str, float]:
    """K x the standard deviation of each metric over the runs, at least its floor."""
    flat = [flatten(r) for r in runs]
    keys = set.intersection(*(set(f) for f in flat))
    return {key: round(max(K * float(np.std([f[key] for f in flat], ddof=1)), FLOORS[kind(key)]), 4)
            for key in sorted(keys)}


def run_pipeline(workdir: Path, train_seed: int | None = None, cores: int = 2) -> dict:
    """The ``ci`` profile's whole DAG, run by Snakemake in ``workdir``; its metrics."""
    workdir.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["profile"] = PROFILE
    if train_seed is not None:
        raw["profiles"][PROFILE].setdefault("train", {})["seed"] = train_seed
    (workdir / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    external = workdir / "data" / "external"
    if not external.exists():
        external.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(ROOT / "data" / "external", external)
    snakemake = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [snakemake, "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", str(cores), "--quiet", "rules"]
    if subprocess.run(cmd, env=env).returncode != 0:
        raise FineNetError(workdir, f"the {PROFILE} pipeline failed (logs in {workdir / 'logs'})")
    html = workdir / "reports" / "report.html"            # and its self-contained HTML report
    if subprocess.run(cmd[:-2] + ["--report", str(html)], env=env, capture_output=True).returncode != 0:
        raise FineNetError(html, "snakemake --report failed")
    return json.loads((workdir / "reports" / "metrics.json").read_text())


def write_json(path: Path, value) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


def calibrate(seeds: int, scratch: Path) -> None:
    reference = run_pipeline(scratch / "reference")
    base = yaml.safe_load((ROOT / "params.yaml").read_text())["profiles"][PROFILE].get("train", {}).get("seed", 0)
    runs = [reference] + [run_pipeline(scratch / f"seed{k}", train_seed=base + k) for k in range(1, seeds + 1)]
    write_json(REFERENCE, reference)
    write_json(TOLERANCE, tolerances(runs))
    print(f"finenet check: reference and tolerances from {len(runs)} runs written to {REFERENCE.parent}")


def adopt(workdir: Path) -> list[str]:
    """The reference made from a finished ``ci`` run in ``workdir`` (a ``--calibrate`` run's
    ``reference`` directory, or ``--workdir``'s), the committed tolerances kept: for a change that
    moves some metrics, when re-deriving the tolerances (``--seeds`` more runs) is left for later.
    Refused unless the run has exactly the committed tolerances' metrics. Returns the metrics that
    moved beyond their tolerance (the change's effect, printed for the record)."""
    path = workdir / "reports" / "metrics.json"
    if not path.is_file():
        raise FineNetError(path, "not found: adopt a finished ci run (finenet check --workdir DIR)")
    measured = json.loads(path.read_text())
    tolerance = json.loads(TOLERANCE.read_text())
    if set(flatten(measured)) != set(tolerance):
        raise FineNetError(path, "its metrics are not the committed tolerances' ones: run --calibrate")
    moved = compare(measured, json.loads(REFERENCE.read_text()), tolerance)
    write_json(REFERENCE, measured)
    return moved


def check(scratch: Path) -> int:
    for path in (REFERENCE, TOLERANCE):
        if not path.is_file():
            raise FineNetError(path, "missing: run `finenet check --calibrate` and commit it")
    measured = run_pipeline(scratch)
    problems = compare(measured, json.loads(REFERENCE.read_text()), json.loads(TOLERANCE.read_text()))
    n = len(flatten(measured))
    if problems:
        print(f"finenet check: {len(problems)} of {n} metrics left their tolerance:", *problems, sep="\n  ")
        return 1
    print(f"finenet check: all {n} metrics within tolerance of {REFERENCE.relative_to(ROOT)}")
    return 0


def main(args) -> int:
    if args.adopt:
        moved = adopt(Path(args.adopt))
        print(f"finenet check: reference from {args.adopt} written to {REFERENCE.relative_to(ROOT)} "
              f"(tolerances kept); {len(moved)} metrics moved beyond them:", *moved, sep="\n  ")
        return 0
    scratch = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="finenet-check-"))
    try:
        if args.calibrate:
            calibrate(args.seeds, scratch)
            return 0
        return check(scratch)
    finally:
        if not args.workdir:
            shutil.rmtree(scratch, ignore_errors=True)


def add_arguments(parser) -> None:
    parser.add_argument("--workdir", default=None,
                        help="run (and keep) the pipeline here; re-running reuses what is up to date")
    parser.add_argument("--calibrate", action="store_true", help="re-make the reference and tolerances")
    parser.add_argument("--seeds", type=int, default=3, help="other training seeds for --calibrate (default 3)")
    parser.add_argument("--adopt", metavar="DIR", default=None,
                        help="make the reference from the finished ci run in DIR, keeping the tolerances")
