"""The CI metric check: what counts as drift, how it reads, and how tolerances are derived."""

import json

import pytest

from finenet.tiers import check
from finenet.errors import FineNetError
from finenet.params import load_params, ROOT


def metrics(finenet_psnr=30.0, blurry_psnr=27.0, nme=0.05):
    return {"embedded_test": {
        "blurry": {"frames": 10, "psnr_blurred": blurry_psnr, "ssim_blurred": 0.85, "nme": nme, "psnr_sharp": 60.0},
        "finenet/late": {"frames": 10, "psnr_blurred": finenet_psnr, "ssim_blurred": 0.9, "nme": nme},
    }}


def test_within_tolerance_passes_and_only_checked_metrics_count():
    ref = metrics()
    got = metrics(finenet_psnr=30.2)
    got["embedded_test"]["blurry"]["psnr_all"] = 12.0       # not a checked metric
    tol = {"embedded_test finenet/late psnr_blurred": 0.3}
    assert check.compare(got, ref, tol) == []


def test_drift_is_one_readable_line_per_metric_worst_first():
    ref = metrics()
    got = metrics(finenet_psnr=29.0, blurry_psnr=27.2)
    tol = {"embedded_test finenet/late psnr_blurred": 0.3}      # blurry psnr falls back to the 0.05 floor
    problems = check.compare(got, ref, tol)
    assert problems == [
        "embedded_test blurry psnr_blurred: 27.2000, reference 27.0000 (+0.2000, tolerance ±0.0500)",
        "embedded_test finenet/late psnr_blurred: 29.0000, reference 30.0000 (-1.0000, tolerance ±0.3000)",
    ]


def test_missing_extra_and_nan_metrics_are_drift():
    ref = metrics()
    got = metrics(nme=float("nan"))
    del got["embedded_test"]["finenet/late"]
    got["embedded_test"]["edvr"] = {"psnr_blurred": 28.0}
    problems = "\n".join(check.compare(got, ref, {}))
    assert "finenet/late psnr_blurred: missing from this run" in problems
    assert "edvr psnr_blurred: not in the reference" in problems
    assert "blurry nme: nan" in problems


def test_tolerance_is_k_standard_deviations_with_floors():
    runs = [metrics(finenet_psnr=p) for p in (30.0, 30.2, 29.8, 30.0)]
    tol = check.tolerances(runs)
    sd = 0.16329931618554536          # sample standard deviation of 30.0, 30.2, 29.8, 30.0
    assert tol["embedded_test finenet/late psnr_blurred"] == pytest.approx(round(check.K * sd, 4))
    assert tol["embedded_test blurry psnr_blurred"] == check.FLOORS["psnr"]      # no spread: the floor
    assert tol["embedded_test blurry ssim_blurred"] == check.FLOORS["ssim"]


def test_ci_profile_is_a_valid_smaller_pipeline():
    ci = load_params(ROOT / "params.yaml", "ci")
    default = load_params(ROOT / "params.yaml")
    assert ci["profile"] == "ci"
    assert len(ci["data"]["embedded"]["train"]) < len(default["data"]["embedded"]["train"])
    assert ci["model"]["feat"] <= default["model"]["feat"]
    assert set(ci["baselines"]) == set(default["baselines"])          # every method is checked
    assert max(ci["train"]["iterations"].values()) < min(default["train"]["iterations"].values())


def test_committed_reference_and_tolerances_cover_each_other():
    ref = json.loads(check.REFERENCE.read_text())
    tol = json.loads(check.TOLERANCE.read_text())
    keys = set(check.flatten(ref))
    assert keys == set(tol) and len(keys) > 20
    assert all(v >= check.FLOORS[check.kind(k)] for k, v in tol.items())
    assert check.compare(ref, ref, tol) == []


def test_adopt_takes_a_finished_runs_metrics_as_the_reference_and_keeps_the_tolerances(tmp_path, monkeypatch):
    ref, tol = tmp_path / "ci_metrics.json", tmp_path / "ci_tolerance.json"
    ref.write_text(json.dumps(metrics()))
    tolerance = {k: 0.3 for k in check.flatten(metrics())}
    tol.write_text(json.dumps(tolerance))
    monkeypatch.setattr(check, "REFERENCE", ref)
    monkeypatch.setattr(check, "TOLERANCE", tol)
    run = tmp_path / "run" / "reports"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps(metrics(finenet_psnr=31.0)))
    moved = check.adopt(tmp_path / "run")
    assert moved == ["embedded_test finenet/late psnr_blurred: 31.0000, reference 30.0000 (+1.0000, tolerance ±0.3000)"]
    assert json.loads(ref.read_text()) == metrics(finenet_psnr=31.0)
    assert json.loads(tol.read_text()) == tolerance                        # kept as they were
    other = metrics()
    other["embedded_test"]["edvr"] = {"psnr_blurred": 28.0}
    (run / "metrics.json").write_text(json.dumps(other))
    with pytest.raises(FineNetError, match="not the committed tolerances' ones"):
        check.adopt(tmp_path / "run")
    with pytest.raises(FineNetError, match="not found"):
        check.adopt(tmp_path / "nowhere")
