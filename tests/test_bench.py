"""The bench tier (finenet/tiers/bench.py): its profile shares the default pipeline's data, a seed's
working directory, and the report of several seeds (mean ± sd over seeds, seed-by-seed
differences, a manifest of the models)."""

from __future__ import annotations

import contextlib
import copy
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from finenet.tiers import bench
from finenet.stages import report
from finenet.errors import FineNetError
from finenet.layout import Layout, training_runs
from finenet.params import ROOT, load_params
from test_report import frame_rows, noref_rows, temporal_rows, write_clips, write_samples

SEEDS = (1, 2, 3)
OFFSET = {1: 0.0, 2: 0.3, 3: -0.6}          # FineNet's PSNR shift per seed: mean -0.1, sd 0.4583


@pytest.fixture
def raw():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_the_bench_profile_trains_on_the_default_pipelines_data(raw, tmp_path):
    params = bench.bench_params(ROOT / "params.yaml")
    assert params["profile"] == "bench" and params["train"]["threads"] == 1
    assert len(params["bench"]["seeds"]) >= 3
    default = load_params(ROOT / "params.yaml", "embedded")
    assert params["train"]["iterations"]["enhance"] > default["train"]["iterations"]["enhance"]
    bad = copy.deepcopy(raw)
    bad["profiles"]["bench"]["blur"] = {"p_sharp": 0.5}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(FineNetError, match="changes 'blur', which the data stages read"):
        bench.bench_params(tmp_path / "params.yaml")


def test_a_seeds_workdir_sets_its_seed_and_links_the_data(raw, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    work = bench.prepare(2, tmp_path / "params.yaml")
    assert work == tmp_path / "runs/bench/seed2" or work.resolve() == (tmp_path / "runs/bench/seed2").resolve()
    params = load_params(work / "params.yaml")
    assert params["profile"] == "bench" and params["train"]["seed"] == 2
    assert (work / "data").is_symlink() and (work / "data").resolve() == (tmp_path / "data").resolve()
    before = (work / "params.yaml").stat().st_mtime_ns
    bench.prepare(2, tmp_path / "params.yaml")                   # again: nothing rewritten
    assert (work / "params.yaml").stat().st_mtime_ns == before


def plant_seed(root, seed: int, params: dict) -> None:
    """A finished seed's outputs: frames (FineNet shifted by OFFSET[seed]), noref, samples, curves,
    model files."""
    work = root / bench.seed_dir(seed)
    ev = work / "reports" / "eval"
    ev.mkdir(parents=True)
    frames = frame_rows()
    frames.loc[frames.method == "finenet/late", "psnr"] += OFFSET[seed]
    frames.to_csv(ev / "frames.csv", index=False, float_format="%.4f")
    noref_rows().to_csv(ev / "noref.csv", index=False)
    write_samples(ev / "samples.h5")
    temporal = temporal_rows()
    temporal.loc[temporal.method == "finenet/late", "warp_error"] += OFFSET[seed]
    temporal.to_csv(ev / "temporal.csv", index=False)
    write_clips(ev / "clips.h5")
    layout = Layout(work)
    for k, (net, variant) in enumerate(training_runs(params["variants"], params["baselines"])):
        curve = layout.train_curve(net, variant, suffix="_val")
        curve.parent.mkdir(parents=True, exist_ok=True)
        curve.write_text("step,val_psnr\n" + "".join(f"{s},{27 + k * 0.1 + seed * 0.01 * s / 100:.4f}\n"
                                                      for s in (100, 200)))
        layout.train_summary(net, variant).write_text(json.dumps(
            {"lr": 2e-3, "iterations": 200, "best_step": 200, "val_psnr_best": 27 + k * 0.1 + seed * 0.02,
             "val_psnr_final": 27 + k * 0.1 + seed * 0.02, "first_loss": 0.2, "final_loss": 0.1, "seconds": 9.5}))
        model = layout.model_path(net, variant)
        model.parent.mkdir(parents=True, exist_ok=True)
        model.write_bytes(f"model {net} {variant} {seed}".encode())


@pytest.fixture(scope="module")
def aggregated(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    params = bench.bench_params(ROOT / "params.yaml")
    params["bench"]["seeds"] = list(SEEDS)
    for s in SEEDS:
        plant_seed(root, s, params)
    with contextlib.chdir(root):
        bench.aggregate(params)
    return root / bench.OUT.root


def test_table_cells_are_means_over_seeds_with_their_sd(aggregated):
    csv = pd.read_csv(aggregated / "tables/table1.csv")
    row = csv[(csv.method == "finenet/late") & (csv.set == "vw300_test")].iloc[0]
    base = np.mean([31, 33, 35, 36, 37, 39])                   # planted blurred frames, seed 1
    shifts = np.array(list(OFFSET.values()))
    assert row.psnr_blurred == pytest.approx(base + shifts.mean(), abs=1e-3)
    assert row.psnr_blurred_sd == pytest.approx(shifts.std(ddof=1), abs=1e-3)
    blurry = csv[(csv.method == "blurry") & (csv.set == "vw300_test")].iloc[0]
    assert blurry.psnr_blurred_sd == pytest.approx(0.0, abs=1e-6)   # the input: the same every seed
    md = (aggregated / "tables/table1.md").read_text()
    assert f"{base + shifts.mean():.2f} ± {shifts.std(ddof=1):.2f} /" in md
    assert "Bench tier" in (aggregated / "report.md").read_text()
    # the warping error: mean over seeds of the per-seed means over clips, ± their sd
    temporal = pd.read_csv(aggregated / "tables/temporal.csv").set_index("method")
    assert temporal.loc["finenet/late", "warp_error"] == pytest.approx(1.7 + shifts.mean(), abs=1e-4)
    assert temporal.loc["finenet/late", "warp_error_sd"] == pytest.approx(shifts.std(ddof=1), abs=1e-4)
    assert f"{1.7 + shifts.mean():.2f} ± {shifts.std(ddof=1):.2f}" in (aggregated / "tables/temporal.md").read_text()
    assert (aggregated / "figures/fig9_clips/embedded_realblur_r0.mp4").is_file()


def test_seed_by_seed_differences_and_the_manifest(aggregated):
    diffs = pd.read_csv(aggregated / "tables/seed_differences.csv")
    row = diffs[(diffs.set == "vw300_test") & (diffs.comparison == "comb_vs_enh")].iloc[0]
    enh = np.mean([31, 32, 33, 35, 36, 37])
    fin = np.mean([31, 33, 35, 36, 37, 39])
    for s in SEEDS:
        assert row[f"seed{s}"] == pytest.approx(fin + OFFSET[s] - enh, abs=1e-3)
    assert bool(row.same_sign)
    manifest = json.loads((aggregated / "manifest.json").read_text())
    assert manifest["seeds"] == list(SEEDS) and len(set(manifest["models"]["1"].values())) == len(manifest["models"]["1"])
    assert manifest["models"]["1"]["enhance/full"] != manifest["models"]["2"]["enhance/full"]
    for path in report.Outputs(aggregated).paths():
        assert path.exists(), path


def test_the_training_summaries_of_every_seed_are_kept(aggregated):
    """The run folders are not committed: the report keeps each seed's training summary (the
    sweep's seed sd reads it), without the wall time."""
    table = pd.read_csv(aggregated / "tables/training.csv")
    combiner = table[table.run == "combine/late"].set_index("seed").val_psnr_best
    assert len(combiner) == len(SEEDS) and "seconds" not in table
    assert combiner.std(ddof=1) == pytest.approx(np.std([0.02 * s for s in SEEDS], ddof=1), abs=1e-4)
    assert "`combine/late`" in (aggregated / "tables/training.md").read_text()


def test_an_unfinished_seed_is_one_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = bench.bench_params(ROOT / "params.yaml")
    params["bench"]["seeds"] = [1, 2]
    plant_seed(tmp_path, 1, params)
    with pytest.raises(FineNetError, match="seed2/reports/eval/frames.csv"):
        bench.aggregate(params)


def test_two_seeds_train_evaluate_and_report_end_to_end(tmp_path_factory):
    """The real thing on a tiny sample: Snakemake trains and evaluates each seed in its working
    directory on the shared data (no data rule runs there), then reports/bench/ is built; a second
    run finds everything done, even when the data files are newer than the models but the same bytes."""
    import os
    import subprocess
    import sys

    from conftest import embedded_workdir, set_baselines
    from test_train import tiny

    def edit(raw):
        tiny(raw, iterations=4)
        raw["variants"] = {"enhance": {"full": {}}, "interp": {"full": {}}, "combine": {"late": {"fusion": "late"}}}
        set_baselines(raw, {"srn_deblur": {"widths": [4, 8, 8], "blocks": 1, "scales": 2}})
        raw["bench"] = {"seeds": [1, 2], "cores": 2}
        raw["profiles"]["bench"]["train"].update(iterations={k: 6 for k in ("predeblur", "enhance", "interp",
                                                                             "combine", "baseline")},
                                                 judge_steps=4,
                                                 validation={"every": 3, "frame_stride": 2})

    root = embedded_workdir(tmp_path_factory.mktemp("bench_e2e"), edit)
    sets = {p: p.stat().st_mtime_ns for p in (root / "data").rglob("*") if p.is_file()}
    # a Snakemake profile that checksums only files under 1 kB, so every data file here stands for
    # the real sample's (which are larger than Snakemake's default 1 MB): the bench must overrule it
    profile = tmp_path_factory.mktemp("smk_profile")
    (profile / "config.yaml").write_text("max-checksum-file-size: 1000\n")
    env = {**os.environ, "SNAKEMAKE_PROFILE": str(profile)}
    run = lambda: subprocess.run([sys.executable, "-m", "finenet.tiers.bench"], cwd=root, capture_output=True,  # noqa: E731
                                 text=True, timeout=900, env=env)
    out = run()
    assert out.returncode == 0, out.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in (root / "data").rglob("*") if p.is_file()} == sets
    for s in (1, 2):
        summary = json.loads((root / f"runs/bench/seed{s}/reports/train/enhance_full.json").read_text())
        assert summary["iterations"] == 6 and summary["threads"] == 1
    a = torch_weights(root / "runs/bench/seed1/models/enhance/full/model.pt")
    b = torch_weights(root / "runs/bench/seed2/models/enhance/full/model.pt")
    assert any(not (a[k] == b[k]).all() for k in a), "two seeds trained the same weights"
    md = (root / "reports/bench/tables/table1.md").read_text()
    assert " ± " in md and "srn" in md.lower()
    assert json.loads((root / "reports/bench/manifest.json").read_text())["seeds"] == [1, 2]
    models = {p: p.stat().st_mtime_ns for p in (root / "runs").rglob("model.pt")}
    for p in sets:                        # as a re-run data stage or `dvc checkout` leaves them:
        os.utime(p)                       # newer, byte for byte the same
    assert run().returncode == 0
    assert {p: p.stat().st_mtime_ns for p in (root / "runs").rglob("model.pt")} == models

    import torch

    # benchmarks/bench_design_ab.py on the trained seeds: the combiner retrained with the
    # pre-deblurred frame as a fourth candidate, on each seed's own frozen branches, scored on val
    ab = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_design_ab.py"), "--name", "p4",
                         "--set", "model.combine_predeblur=true"], cwd=root, capture_output=True, text=True,
                        timeout=900, env=env)
    assert ab.returncode == 0, ab.stderr[-3000:]
    result = json.loads((root / "reports/benchmarks/ab_p4.json").read_text())
    assert [r["seed"] for r in result["seeds"]] == [1, 2] and result["network"] == "combine/late"
    for r in result["seeds"]:
        seed, work = root / f"runs/bench/seed{r['seed']}", root / f"runs/ab/p4/seed{r['seed']}"
        base = json.loads((seed / "reports/train/combine_late.json").read_text())
        assert r["base"]["val_psnr_best"] == base["val_psnr_best"]
        for net in ("predeblur", "enhance/full", "interp/full"):      # the same frozen networks
            assert (work / "models" / net / "model.pt").read_bytes() == (seed / "models" / net / "model.pt").read_bytes()
        changed = torch.load(work / "models/combine/late/model.pt", map_location="cpu", weights_only=True)
        assert changed["config"]["predeblur"] is True
        trained = sorted(p.parent.relative_to(work / "models").as_posix() for p in work.rglob("model.pt"))
        assert trained == ["combine/late", "enhance/full", "interp/full", "predeblur"]   # nothing else ran
    diffs = [r["changed"]["val_psnr_best"] - r["base"]["val_psnr_best"] for r in result["seeds"]]
    assert result["mean_diff_db"] == pytest.approx(sum(diffs) / 2, abs=1e-3)
    assert "A/B on the val set" in (root / "reports/benchmarks/ab_p4.md").read_text()


def torch_weights(path):
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
