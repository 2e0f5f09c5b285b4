"""Working directories for runs of a profile on the default pipeline's sample (the bench tier's
seeds, the learning-rate sweep's experiments): a ``params.yaml`` with the profile selected and its
training overrides, ``data/`` linked to the default pipeline's, and Snakemake running only the
training rules (and ``evaluate`` where asked) there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from ..atomic import atomic_path
from ..errors import FineNetError
from ..params import DEFAULT_PARAMS, ROOT, deep_merge

TRAIN_RULES = ("train_predeblur", "train_enhance", "train_interp", "train_combine", "train_baseline")

# Snakemake re-runs a job whose input is newer than its output unless the input's checksum, recorded
# when the job ran, is unchanged; by default it records one only for files under 1 MB. The default
# pipeline's data files are larger, and a re-run data stage (same bytes) or a `dvc checkout` makes
# them newer: without this every run retrains all its networks for nothing (measured). The sample
# is the embedded one (tens of MB in all), so hashing it on each run is cheap.
CHECKSUM_LIMIT = "1GB"


def prepare(work: Path, profile: str, overrides: dict, params_file=DEFAULT_PARAMS) -> Path:
    """``work`` with a params.yaml (``profile`` selected, ``overrides`` deep-merged into that
    profile) and ``data/`` linked to the default pipeline's; rewritten only on change."""
    work.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load(Path(params_file).read_text())
    raw["profile"] = profile
    raw["profiles"][profile] = deep_merge(raw["profiles"][profile], overrides)
    text = yaml.safe_dump(raw, sort_keys=False)
    target = work / "params.yaml"
    if not target.is_file() or target.read_text() != text:
        with atomic_path(target) as tmp:
            tmp.write_text(text)
    data = work / "data"
    if not data.is_symlink():
        if data.exists():
            raise FineNetError(data, "exists and is not the link to the default pipeline's data/")
        os.symlink(Path(os.path.relpath(Path("data").resolve(), work.resolve())), data)
    return work


def snakemake() -> str:
    return shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")


def run_rules(work: Path, targets: list[str], cores: int, rules=TRAIN_RULES, what: str = "run") -> None:
    """Snakemake in ``work`` for ``targets``, only ``rules`` allowed (never a data rule); resumes a
    killed run (its lock released, incomplete jobs re-run, each training from its checkpoint)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    base = [snakemake(), "-s", str(ROOT / "Snakefile"), "-d", str(work)]
    subprocess.run(base + ["--unlock"], env=env, capture_output=True)      # a killed run's lock
    cmd = base + ["--cores", str(cores), "--rerun-incomplete", "--allowed-rules", *rules,
                  "--max-checksum-file-size", CHECKSUM_LIMIT, "--quiet", "rules", "--", *targets]
    if subprocess.run(cmd, env=env).returncode != 0:
        raise FineNetError(work, f"the {what} failed (logs in {work / 'logs'})")
