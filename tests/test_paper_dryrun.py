"""The paper profile can never rot (issue 14): a reduced paper-size dry run
(``benchmarks/bench_scale.py --reduced``) runs the whole Snakemake DAG at the paper's sizes (256²
crops, 128 channels, 40 reconstruction blocks, 68×64×64 heatmaps) on real-video trees in
VoxCeleb2's / 300VW's / the real-blur folder's layouts, one step per network; every network of
the paper profile takes one training step in the step probe; the capacity plan is computed from
what was measured. And ``landmarks.detector: fan``: without weights, one line naming where they go;
with FAN-shaped weights (built here, random: the code path, not a result), the detector runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from finenet.checkpoint import load_model
from finenet.errors import FineNetError
from finenet.layout import Layout, run_name, training_runs
from finenet.params import ROOT, resolve

BIN = Path(sys.executable).parent


def _env(**extra) -> dict:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **extra}


@pytest.fixture(scope="module")
def dryrun(tmp_path_factory):
    work = tmp_path_factory.mktemp("paper_dryrun")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_scale.py"), "--reduced", "--workdir", str(work),
           "--frames", "6", "--videos", "1", "--iterations", "1", "--batch", "1"]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return work, json.loads((work / "scale.json").read_text())


def test_every_stage_ran_at_the_papers_sizes(dryrun):
    work, result = dryrun
    params = resolve(yaml.safe_load((work / "params.yaml").read_text()))
    assert params["profile"] == "paper" and params["data"]["crop_size"] == 256
    lay = Layout(work)
    shards = sorted(lay.shards.glob("*.h5"))
    # every dataset of the paper profile was read through its own adapter
    assert {p.stem.split("_")[0] for p in shards} == {"vox", "300vw", "yt"}
    for shard in shards:
        with h5py.File(shard, "r") as f:
            (g,) = f.values()
            t = len(g["blurry"])
            assert g["blurry"].shape == (t, 256, 256, 3)
            assert g["heatmaps"].shape == (t, 68, 64, 64)
            assert g.attrs["sigma"] == 2.0
    for net, variant in training_runs(params["variants"], params["baselines"]):
        model = load_model(lay.model_path(net, variant), "cpu")
        assert sum(p.numel() for p in model.parameters()) > 0
    enhance = load_model(lay.model_path("enhance", "full"), "cpu")
    assert len(enhance.recon) == 40 and enhance.fusion.out_channels == 128
    assert result["dry_run"]["measured"]["training"]["enhance/full"]["parameters"] > 10_000_000   # 128 channels
    metrics = json.loads(lay.metrics.read_text())
    assert {"voxceleb_test", "vw300_test"} <= set(metrics)
    assert all(job["rc"] == 0 for job in result["dry_run"]["jobs"])
    assert (lay.tables / "table1.md").is_file()


def test_every_network_of_the_paper_profile_takes_a_step(dryrun):
    _, result = dryrun
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["profile"] = "paper"
    paper = resolve(raw)
    runs = {run_name(n, v) for n, v in training_runs(paper["variants"], paper["baselines"])}
    assert set(result["probe"]["steps"]) == runs and len(runs) == 17
    for run, by_batch in result["probe"]["steps"].items():
        step = by_batch["1"]
        assert step["parameters"] > 10_000 and step["flops"] > 1e9, run
    # the heaviest FineNet branch costs more than its front end alone
    flops = result["probe"]["flops_per_window"]
    assert flops["enhance/full"] > flops["predeblur"]


def test_the_capacity_plan_follows_from_the_measurements(dryrun):
    _, result = dryrun
    plan, measured = result["plan"], result["dry_run"]["measured"]
    frames = sum(plan["frames"].values())
    bpf = measured["hdf5_bytes_per_frame"]
    assert plan["disk"]["of_which_dense_heatmaps_gib"] == pytest.approx(
        (bpf["heatmaps"] + bpf["heatmaps_sharp"]) * frames / 1024 ** 3, abs=0.06)
    assert bpf["heatmaps"] > 10 * bpf["landmarks"]           # dense maps vs 68 points
    for stage in ("sample", "blur", "heatmaps"):
        d = plan["data_stages"][stage]
        assert d["snakemake_jobs"] == 1300 + 50 + 130 + 30
        assert d["cpu_hours"] == pytest.approx(measured["data_stages"][stage]["cpu_s_per_frame"] * frames / 3600, rel=0.05)
    g = plan["gpu_training"]["enhance/full"]
    assert g["step_s_estimate"] == pytest.approx(g["flops_per_window"] * 12 / (989e12 * 0.25), rel=1e-3)
    assert plan["loader"]["workers_needed"] >= 1 and plan["advice"]


def test_fan_without_weights_is_one_line_naming_where_they_go(tmp_path):
    pytest.importorskip("face_alignment", reason="pip install -e '.[fan]' (the test extra installs it)")
    from finenet.face.detectors import make_detector

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(tmp_path))
        with pytest.raises(FineNetError) as err:
            make_detector("fan", device="cpu")
    message = str(err.value)
    assert str(tmp_path / "hub" / "checkpoints") in message and "2DFAN4" in message and "\n" not in message


def test_fan_runs_with_fan_shaped_weights(tmp_path, monkeypatch, carphone):
    """FAN and S3FD of face-alignment's own architectures with random weights, saved where the
    downloads would be: the detector's code path runs (boxes in, 68 points out), no result claimed."""
    fa = pytest.importorskip("face_alignment", reason="pip install -e '.[fan]' (the test extra installs it)")
    import torch
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    from finenet.face.detectors import make_detector

    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(FAN(4).state_dict(), hub / "2DFAN4-11f355bf06.pth.tar")
    torch.save(s3fd().state_dict(), hub / "s3fd-619a316812.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch, "compile", lambda model, *a, **k: model)   # speed only: minutes on a CPU
    detector = make_detector("fan", device="cpu")
    assert detector.name == "fan" and isinstance(detector._fa, fa.FaceAlignment)
    frame = np.ascontiguousarray(carphone[0])
    boxes = detector.detect_faces(frame)
    assert isinstance(boxes, list) and all(b.shape == (4,) for b in boxes)
    points = detector.landmarks(frame, np.array([40, 20, 130, 120], np.float32))
    assert points.shape == (68, 2) and points.dtype == np.float32 and np.isfinite(points).all()
