"""Scale-out on the engines a team has, exercised for real (tools/scaleout.py; issue 14):

- a DVC remote round trip over S3 (moto's server on a loopback port): the first pipeline stages
  run on a tiny profile in a git clone, `dvc push`, then a fresh clone's `dvc pull` gives the
  same bytes and nothing left to run;
- Snakemake through sbatch on a one-node SLURM cluster started on this machine
  (workflow/scripts/slurm_local.sh) with the SLURM profile users run: the per-clip data jobs and
  one training job, outputs byte-identical to `snakemake --cores 2`.

Each skips, with the reason, only where this machine cannot run it: the S3 server or DVC's S3
support not installed; for SLURM, the executor plugin or Debian's slurm/munge not installed, not
root, or the daemons do not start. Both take minutes (tiny profile; most of it is process
start-up: torch imports, DVC, Snakemake in every job).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import scaleout  # noqa: E402


def run_or_skip(check, path: Path) -> dict:
    try:
        return check(path)
    except scaleout.CannotRun as e:
        pytest.skip(f"cannot run here: {e}")


def show(result: dict) -> None:
    print(json.dumps(result, indent=2))       # the measured times, with `pytest -s`


# --- the checks' own comparison can fail ---------------------------------------------------------

def test_compare_finds_a_changed_byte_and_a_missing_file(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        (root / "data" / "h5").mkdir(parents=True)
        (root / "data" / "h5" / "x.h5").write_bytes(b"\x00" * 100)
        (root / "models").mkdir()
        (root / "models" / "model.pt").write_bytes(b"weights")
    (a / "data" / "h5" / "y.h5").write_bytes(b"only here")
    (b / "models" / "model.pt").write_bytes(b"weightz")         # same size, one byte differs
    compared, problems = scaleout.compare(a, b, ["data/h5", "models/model.pt"])
    assert compared == ["data/h5/x.h5", "models/model.pt"]
    assert problems == [f"data/h5/y.h5: only in {a}", "models/model.pt: bytes differ"]


def test_tiny_profile_is_valid_params():
    from finenet.params import resolve

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    scaleout.tiny(raw)
    params = resolve(raw, "embedded")
    assert params["train"]["device"] == "cpu" and params["train"]["iterations"]["predeblur"] == 12


# --- the SLURM profile, as the installed Snakemake and SLURM plugin read it ----------------------

def test_slurm_profile_dry_run_with_the_slurm_executor(tmp_path):
    """`snakemake --profile workflow/profiles/slurm -n` with the real executor plugin: the profile is
    accepted and every job gets the resources the profile sets for its rule."""
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="snakemake-executor-plugin-slurm not installed")
    work = tmp_path / "work"
    (work / "data" / "external").mkdir(parents=True)       # an input; nothing runs
    scaleout.write_tiny_params(work / "params.yaml")
    done = subprocess.run([str(scaleout.BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(work),
                           "--profile", str(scaleout.SLURM_PROFILE), "-n", scaleout.MODEL],
                          capture_output=True, text=True, env=scaleout.env(), timeout=scaleout.TIMEOUT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    blocks = {}
    for block in done.stdout.split("\nrule ")[1:]:
        name = block.split(":", 1)[0].strip()
        resources = next(line for line in block.splitlines() if line.strip().startswith("resources:"))
        blocks.setdefault(name, set()).add(resources)
    assert set(blocks) == {"sample", "blur", "heatmaps", "pack", "train_predeblur"}
    profile = yaml.safe_load((scaleout.SLURM_PROFILE / "config.yaml").read_text())
    for rule, lines in blocks.items():
        wanted = {**profile["default-resources"], **profile["set-resources"].get(rule, {})}
        for line in lines:
            for key, value in wanted.items():
                assert f"{key}={value}" in line, f"{rule}: {key}={value} not in {line}"


# --- the real thing ------------------------------------------------------------------------------

def test_dvc_remote_round_trip_over_s3(tmp_path):
    r = run_or_skip(scaleout.remote_roundtrip, tmp_path)
    show(r)
    assert r["failures"] == []
    assert r["stages"] == ["params", "sample", "blur", "heatmaps", "pack", "train_predeblur"]
    assert scaleout.MODEL in r["outs_from_remote"] and "data/h5" in r["outs_from_remote"]
    assert r["present_in_fresh_clone_before_pull"] == [] and not r["cache_in_fresh_clone_before_pull"]
    assert r["objects_in_bucket"] > 0 and r["problems"] == [] and r["files_compared"] >= 10
    assert r["status_after_pull"] == "Data and pipelines are up to date."
    assert r["cloud_status"] == "Cache and remote 'store' are in sync."
    assert r["dry_run_stages"] == []


def test_snakemake_on_slurm_matches_a_local_run(tmp_path):
    r = run_or_skip(scaleout.slurm_check, tmp_path)
    show(r)
    assert r["failures"] == []
    clips = r["per_clip_files"] // 3
    assert clips >= 3 and r["jobs"] == 3 * clips + 2
    assert r["rules"].count("train_predeblur") == 1 and r["states"] == ["COMPLETED"]
    assert r["problems"] == [] and r["model_compared"]
