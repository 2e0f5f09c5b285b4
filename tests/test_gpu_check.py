"""The GPU check (benchmarks/gpu_check.sh -> gpu_check.py), its CPU path in --quick mode.

One run of the real command line (forced to the CPU, so the test needs no GPU wherever it runs)
writes the JSON the other tests read. --quick needs about 25 s of CPU time (measured); the budget
given here (420 s, under the wrapper's 480 s stop) only matters on a machine so busy that
importing torch takes minutes. The DCN comparison is judged from the numbers in the file; a
separate test shows the comparison fails when the two paths disagree."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_check  # noqa: E402


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "gpu.json"
    env = dict(os.environ, PYTHON=sys.executable)
    log = out.parent.parent / "gpu_check.log"     # a file, not a pipe: nothing can hold it open
    with open(log, "w") as fh:
        proc = subprocess.Popen(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--quick", "--device", "cpu",
                                 "--threads", "1", "--budget", "420", "--out", str(out)],
                                stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True)
        try:
            rc = proc.wait(timeout=600)
        except subprocess.TimeoutExpired:     # the script's SIGTERM handler ends its own children
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
            pytest.fail(f"gpu_check --quick did not finish in 600 s:\n{log.read_text()[-3000:]}")
    assert rc == 0, log.read_text()[-3000:]
    assert sorted(p.name for p in out.parent.iterdir()) == ["gpu.json"]     # no temp file left
    return json.loads(out.read_text())


def sub_results(body: dict):
    for key, value in body.items():
        if isinstance(value, dict) and "status" in value:
            yield key, value


def test_every_section_present_with_a_valid_status(report):
    assert report["complete"] is True and report["mode"] == "quick"
    assert list(report["sections"]) == list(gpu_check.SECTIONS)
    for name, body in report["sections"].items():
        assert body["status"] in gpu_check.STATUSES, name
        assert body["status"] != "failed", (name, body.get("reason"))
        if body["status"] != "ok":
            assert body["reason"].strip(), name
        for key, sub in sub_results(body):
            assert sub["status"] in gpu_check.STATUSES, (name, key)
            assert sub["status"] != "failed", (name, key, sub.get("reason"))
            if sub["status"] != "ok":
                assert sub["reason"].strip(), (name, key)
    assert report["failed"] == []
    assert isinstance(report["seconds"], float) and report["seconds"] <= report["budget_s"] + 30


def test_no_gpu_is_said_plainly(report):
    assert report["gpu"] is False
    assert report["result"].startswith("no GPU")
    assert report["host"]["gpu_count"] == 0 or report["host"]["device_used"] == "cpu"
    assert report["host"]["cpu_count"] >= 1 and report["host"]["torch"] == torch.__version__
    s = report["sections"]
    for name in ("train_step", "deblur", "ddp"):     # CUDA-only measurements: skipped, saying why
        assert s[name]["status"] == "skipped" and "no CUDA device" in s[name]["reason"], name
    assert "not 256^2" in s["train_step"]["cpu_reference"]["label"]
    assert s["dcn"]["variant"] == "cpu" and "no CUDA" in s["dcn"]["candidate"]
    assert s["bf16_autocast"]["variant"].startswith("cpu")
    assert s["inference"]["variant"].startswith("cpu")
    assert "CPU" in s["deblur"]["cpu_tiny"]["label"] and "gloo" in s["ddp"]["cpu_gloo"]["label"]


def test_cpu_dcn_paths_agree_within_float_tolerance(report):
    """torchvision's CPU deform_conv2d against deform_conv_sampled, from the file's numbers."""
    dcn = report["sections"]["dcn"]
    assert dcn["status"] == "ok"
    assert dcn["taps_outside_map"] > 0 and dcn["offset_mean_abs_px"] > 0.5   # offsets exercised
    f64, f32 = dcn["float64"], dcn["float32"]
    assert f64["values"]["rel"] <= 1e-9
    assert set(f64["gradients"]) >= {"input", "offset_features", "param.weight", "param.bias",
                                     "param.conv_offset.weight", "param.conv_offset.bias"}
    for name, g in f64["gradients"].items():
        assert g["rel"] <= 1e-9, name
    assert f32["values"]["rel"] <= 1e-4
    for name, g in f32["gradients"].items():
        assert g["rel_p999"] <= 1e-3, name


def test_dcn_check_fails_when_the_paths_disagree():
    """The comparison is not vacuous: a candidate that reads the offsets as (dx, dy) instead of
    torchvision's (dy, dx), or is off by 0.1 % in value, is reported as failed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)              # tiny tensors: one thread (no spinning on a busy machine)
    try:
        check_disagreement_fails()
    finally:
        torch.set_num_threads(threads)


def check_disagreement_fails():
    module, x, ofeat, upstream = gpu_check.dcn_inputs(8, 2, 8.0, 1, 10, seed=5)

    def swapped(x, offset, weight, bias, mask):
        b, c, h, w = offset.shape
        o = offset.view(b, c // 2, 2, h, w).flip(2).reshape(b, c, h, w)
        return gpu_check.dcn_tv(x, o, weight, bias, mask)

    def scaled(x, offset, weight, bias, mask):
        return gpu_check.dcn_tv(x, offset, weight, bias, mask) * 1.001

    def candidate(op):
        def run(mod, xx, of, up, dtype):
            mod = copy.deepcopy(mod).to(dtype)
            return gpu_check.dcn_run(mod, xx.to(dtype), of.to(dtype), up.to(dtype), op=op)
        return run

    good = gpu_check.compare_dcn(module, x, ofeat, upstream, candidate(gpu_check.dcn_tv))
    assert good["status"] == "ok", good.get("reason")
    for op in (swapped, scaled):
        bad = gpu_check.compare_dcn(module, x, ofeat, upstream, candidate(op))
        assert bad["status"] == "failed"
        assert bad["reason"].startswith("the two DCN paths disagree")


def test_bf16_difference_measured(report):
    b = report["sections"]["bf16_autocast"]
    assert b["status"] == "ok"
    assert set(b["outputs"]) == {"predeblur", "enhance", "interp", "output"}
    for out in b["outputs"].values():
        assert out["finite"] and 0 < out["max_abs"] < 0.5
    assert b["outputs"]["output"]["psnr_db"] >= b["min_psnr_db"]


def test_cpu_measurements_are_real_numbers(report):
    s = report["sections"]
    inf = s["inference"]
    assert inf["status"] == "ok"
    for key in ("finenet_batch1_fp32", "edvr_batch1_fp32"):
        assert inf["results"][key]["frames_per_s"] > 0 and inf["results"][key]["repeats"] >= 1
    ref = s["train_step"]["cpu_reference"]
    for net, res in ref["nets"].items():
        if res["status"] == "ok":
            assert res["step_s"] > 0 and res["loss_finite"] and res["parameters"] > 0, net
        else:
            assert "cap" in res["reason"], net
    tiny = s["deblur"]["cpu_tiny"]
    if tiny["status"] == "ok":           # may be skipped by the time budget on a busy machine
        run = tiny["runs"]["batch1"]
        assert run["frames"] == tiny["clip"]["frames"] and run["deblurred"] > 0 and run["frames_per_s"] > 0
    else:
        assert "time" in tiny["reason"] or "finish" in tiny["reason"]
    gloo = s["ddp"]["cpu_gloo"]
    if gloo["status"] == "ok":
        assert gloo["backend"] == "gloo" and gloo["world_size"] == 2
        assert gloo["weights_max_diff_across_ranks"] == 0.0
        assert gloo["grad_vs_one_process_rel"] <= 1e-4
        assert gloo["all_reduce_sum"] == gloo["all_reduce_expected"] == 3
    else:
        assert "time budget" in gloo["reason"] or "cap" in gloo["reason"]
