"""The branch breakdown benchmark's grouping and scoring on planted rows (no models run)."""

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_branches as bb  # noqa: E402
from finenet.ops.degrade import SHARP, sample_degradation  # noqa: E402


def test_groups_follow_the_degradation():
    blur = {"p_sharp": 0.0, "p_mild": 1.0, "mild_length": [1.5, 3.0], "families": {"line": 1.0, "trajectory": 0.0},
            "line": {"kernel_size": [3, 11], "angle": [0, 360], "direction": [-1, 1]},
            "trajectory": {"length": [3, 13], "anxiety": [0.005, 0.1], "exposure": [0.5, 1]},
            "noise": {"p": 0.0, "sigma": [0.5, 3]}, "jpeg": {"p": 0.0, "quality": [70, 95]}}
    rng = np.random.default_rng(0)
    assert bb.group_of(SHARP) == "sharp"
    assert bb.group_of(sample_degradation(rng, blur)) == "mild"
    assert bb.group_of(sample_degradation(rng, {**blur, "p_mild": 0.0})) == "full"


def rows():
    def row(group, inp, out, enh=None):
        r = {"group": group, "psnr_in": inp, "psnr_output": out, "psnr_predeblur": inp + 0.5,
             "psnr_enhance": enh if enh is not None else inp + 1, "psnr_interp": inp - 2}
        return r
    return [row("sharp", 60.0, 60.0), row("mild", 40.0, 37.0), row("mild", 38.0, 38.5),
            row("full", 25.0, 29.0), row("full", 27.0, 28.0, enh=26.0)]


def test_summary_means_gains_per_group_and_counts_harm():
    s = bb.summarise(rows())
    assert s["sharp"] == {"frames": 1, "psnr_in": 60.0, "gain_predeblur": 0.5, "gain_enhance": 1.0,
                          "gain_interp": -2.0, "gain_output": 0.0, "harmed": 0}
    assert s["mild"]["frames"] == 2 and s["mild"]["gain_output"] == pytest.approx(-1.25)
    assert s["mild"]["harmed"] == 1                     # 40 -> 37: more than 1 dB below its input
    assert s["full"]["gain_output"] == pytest.approx(2.5) and s["full"]["gain_enhance"] == pytest.approx(0.0)
    assert s["blurred"]["frames"] == 4 and s["blurred"]["harmed"] == 1
    assert s["blurred"]["gain_output"] == pytest.approx((-3 + 0.5 + 4 + 1) / 4)


def test_markdown_has_a_row_per_case_and_group_with_frames():
    result = {"seed": 0, "frames_per_case": 5, "crop_size": 96, "models": "m",
              "cases": {"cap13": {"face_width_px": 108.0, "groups": bb.summarise(rows())},
                        "empty": {"face_width_px": 50.0, "groups": bb.summarise(rows()[:1])}}}
    md = bb.markdown(result)
    assert "| cap13 | 108 | 2 | mild | 39.00 | +0.50 | +1.00 | -2.00 | -1.25 | 1 | — |" in md
    assert "| empty | 50 | 1 | sharp |" in md and "| empty | 50 | 0 |" not in md


def test_the_oracle_gain_is_the_face_regions_gain_with_the_sharp_correction_pasted():
    r = rows()
    for row, (a, b) in zip(r, [(60.0, 60.0), (40.0, 45.0), (38.0, 44.0), (25.0, 30.0), (27.0, 31.0)]):
        row["face_psnr_in"], row["face_psnr_oracle"] = a, b
    s = bb.summarise(r)
    assert s["sharp"]["oracle_face_gain"] == 0.0 and s["mild"]["oracle_face_gain"] == pytest.approx(5.5)
    assert s["blurred"]["oracle_face_gain"] == pytest.approx((5 + 6 + 5 + 4) / 4)
    md = bb.markdown({"seed": 0, "frames_per_case": 5, "crop_size": 96, "models": "m",
                      "cases": {"franck": {"face_width_px": 155.0, "groups": s}}})
    assert "| franck | 155 | 2 | full | 26.00 | +0.50 | +0.00 | -2.00 | +2.50 | 0 | +4.50 |" in md
