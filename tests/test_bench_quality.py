"""The deblur quality benchmark's scoring on tiny synthetic cases (no models run)."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from finenet.errors import FineNetError
from finenet.ops.motion_blur import apply_kernel, motion_blur_kernel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_deblur_quality as bq  # noqa: E402

BLUR = yaml.safe_load(open(ROOT / "params.yaml"))["blur"]


def textured(h=64, w=80, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:h, :w]
    img = 120 + 50 * np.sin(x / 3.0)[..., None] * np.cos(y / 4.0)[..., None] + rng.normal(0, 15, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def test_psnr_is_capped_and_exact():
    a = textured()
    assert bq.psnr(a, a) == bq.PSNR_CAP == 60.0
    b = a.astype(int)
    b[a < 255] += 1
    b[a == 255] -= 1                                   # every pixel off by exactly one level
    assert bq.psnr(a, b.astype(np.uint8)) == pytest.approx(10 * math.log10(255 ** 2), abs=1e-9)
    assert bq.ssim(a, a) == pytest.approx(1.0) and bq.ssim(a, b.astype(np.uint8)) < 1
    assert math.isnan(bq.ssim(a[:5, :5], a[:5, :5]))   # too small for a 7x7 window


def test_face_region_is_the_margin_enlarged_box_clipped_to_the_frame():
    assert bq.face_region([10, 20, 30, 40], 1.8, (100, 100, 3)) == (12, 48, 2, 38)
    assert bq.face_region([10.5, 20, 30, 40], 1.0, (100, 100)) == (20, 40, 10, 30)
    assert bq.face_region([0, 0, 20, 20], 1.8, (50, 60, 3)) == (0, 28, 0, 28)      # clipped at 0
    assert bq.face_region([50, 30, 60, 50], 2.0, (50, 60, 3)) == (20, 50, 45, 60)  # and at the far side
    with pytest.raises(ValueError):
        bq.face_region([100, 100, 120, 120], 1.0, (50, 60, 3))


def test_gain_sign_and_the_face_region():
    sharp = textured()
    blurred = apply_kernel(sharp, motion_blur_kernel(7, 45, 0.0))
    region = bq.face_region([30, 20, 50, 40], 1.5, sharp.shape)
    y0, y1, x0, x1 = region
    better = blurred.copy()                             # "deblurred": the face region restored
    better[y0:y1, x0:x1] = sharp[y0:y1, x0:x1]
    worse = blurred.copy()                              # "harmful": the face region damaged
    worse[y0:y1, x0:x1] = np.clip(blurred[y0:y1, x0:x1].astype(int) + 40, 0, 255).astype(np.uint8)
    good = bq.frame_scores(sharp, blurred, better, region)
    bad = bq.frame_scores(sharp, blurred, worse, region)
    assert good["psnr_out_face"] == 60.0 and good["psnr_in_face"] < 40
    assert good["psnr_out_frame"] > good["psnr_in_frame"]
    assert good["psnr_out_face"] - good["psnr_in_face"] > good["psnr_out_frame"] - good["psnr_in_frame"] > 0
    assert good["ssim_out_face"] > good["ssim_in_face"]
    assert bad["psnr_out_face"] < bad["psnr_in_face"] and bad["psnr_out_frame"] < bad["psnr_in_frame"]
    assert bad["psnr_in_face"] == good["psnr_in_face"]  # the input's score does not depend on the output


def test_summary_splits_sharp_and_blurred_frames_and_gains_are_output_minus_input():
    rows = []
    for t, (sharp, pin, pout) in enumerate([(True, 60, 50), (False, 30, 34), (False, 28, 30), (True, 60, 60)]):
        rows.append(dict(t=t, sharp=sharp, psnr_in_face=pin, psnr_out_face=pout, psnr_in_frame=pin + 1,
                         psnr_out_frame=pout + 1, ssim_in_face=0.5, ssim_out_face=0.6, ssim_in_frame=0.7,
                         ssim_out_frame=float("nan") if t == 0 else 0.7))
    s = bq.summarise(rows)
    assert (s["blurred"]["frames"], s["sharp"]["frames"], s["all"]["frames"]) == (2, 2, 4)
    b, sh = s["blurred"]["face"], s["sharp"]["face"]
    assert (b["psnr_in"], b["psnr_out"], b["psnr_gain"]) == (29.0, 32.0, 3.0)
    assert (sh["psnr_in"], sh["psnr_out"], sh["psnr_gain"]) == (60.0, 55.0, -5.0)
    assert s["blurred"]["frame"]["psnr_gain"] == 3.0 and s["all"]["face"]["ssim_gain"] == pytest.approx(0.1)
    assert s["sharp"]["frame"]["ssim_out"] == 0.7                      # NaN (too small) skipped
    assert bq.summarise([r for r in rows if not r["sharp"]])["sharp"] == {"frames": 0}


def test_degradation_is_seeded_and_sharp_frames_stay_exact():
    frames = np.stack([textured(seed=s) for s in range(30)])
    a, degs = bq.degrade(frames, BLUR, 2.0, seed=0, name="case")
    b, _ = bq.degrade(frames, BLUR, 2.0, seed=0, name="case")
    c, _ = bq.degrade(frames, BLUR, 2.0, seed=0, name="other")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    sharp = np.array([d.sharp for d in degs])
    assert 0 < sharp.sum() < len(frames)
    np.testing.assert_array_equal(a[sharp], frames[sharp])
    assert all(not np.array_equal(a[t], frames[t]) for t in np.flatnonzero(~sharp))
    # scored as the benchmark does: sharp input frames score the cap, blurred ones below it
    rows = [dict(sharp=d.sharp, **bq.frame_scores(frames[t], a[t], a[t], (0, 64, 0, 80)))
            for t, d in enumerate(degs)]
    s = bq.summarise(rows)
    assert s["sharp"]["frames"] == sharp.sum() and s["sharp"]["face"]["psnr_in"] == 60.0
    assert s["blurred"]["face"]["psnr_in"] < 45 and s["blurred"]["face"]["psnr_gain"] == 0.0


def test_lossless_input_decodes_to_the_yuv444_reference(tmp_path):
    frames = np.stack([textured(32, 48, s) for s in range(4)])
    path = bq.encode_lossless(tmp_path / "in.mkv", frames)
    decoded = bq.decode(path)
    assert decoded.shape == frames.shape
    np.testing.assert_array_equal(decoded, bq.yuv444_round_trip(frames))
    assert np.abs(decoded.astype(int) - frames).max() <= 3             # only the RGB <-> YUV rounding


def test_boxes_sizes_and_held_out_frames():
    boxes, missed = bq.fill_boxes([None, np.array([1, 2, 3, 4.0]), None, None, np.array([5, 6, 7, 8.0])])
    assert missed == 3 and boxes[0].tolist() == [1, 2, 3, 4] and boxes[3].tolist() == [5, 6, 7, 8]
    with pytest.raises(ValueError, match="no face"):
        bq.fill_boxes([None, None])
    crop_face = 96 / 1.8
    assert [bq.size_class(w, crop_face) for w in (50, 65, 108, 155, 216, 270)] == \
        ["small", "small", "medium", "medium", "large", "large"]
    from finenet.data import embedded

    if not hasattr(embedded, "HELD_OUT"):
        pytest.skip("finenet.data.embedded has no HELD_OUT")
    for case in (*bq.CASES, bq.NO_FACE):
        assert "held out" in bq.held_out_check(case, 120) or case.video == "carphone"
    with pytest.raises(FineNetError, match="not all held out"):
        bq.held_out_check(bq.Case("early", "franck", 3990, 1.0), 60)


def test_missing_models_is_one_line(tmp_path, capsys):
    code = bq.main(["--checkpoint", str(tmp_path / "nope"), "--params", str(ROOT / "params.yaml")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "nope" in err
    assert bq.main(["--frames", "3", "--params", str(ROOT / "params.yaml")]) == 2
    assert "--frames" in capsys.readouterr().err


def moving_clip(frames=6, step=(1, 2), h=64, w=80):
    """A textured scene moving ``step`` (rows, cols) px a frame, and a 30x30 face region moving with it."""
    big = textured(h + frames * step[0] + 8, w + frames * step[1] + 8, seed=3)
    clip = np.stack([big[8 + (frames - t) * step[0]:, 8 + (frames - t) * step[1]:][:h, :w] for t in range(frames)])
    regions = [(16 + t * step[0], 46 + t * step[0], 20 + t * step[1], 50 + t * step[1]) for t in range(frames)]
    return clip, regions


def flicker(clip, levels, where=None):
    """Every other frame brighter, the others darker, by ``levels`` (8-bit), inside ``where`` or everywhere."""
    out = clip.astype(int)
    for t in range(len(clip)):
        delta = np.full(clip.shape[1:3], levels if t % 2 else -levels)
        if where is not None:
            delta = np.where(where[t], delta, 0)
        out[t] += delta[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def test_temporal_scores_flag_a_flickering_output_on_the_face_region():
    ref, regions = moving_clip()
    assert bq.union_region(regions) == (16, 51, 20, 60)
    inp = np.stack([apply_kernel(f, motion_blur_kernel(5, 30, 0.0)) for f in ref])   # blurred, but steady
    out = flicker(ref, 6)
    tm = bq.temporal_scores(ref, inp, out, regions)
    assert tm["pairs"] == 5 and tm["window"] == [40, 35] and len(tm["per_frame"]["output"]) == 5
    assert tm["sharp"] < 0.2 and tm["input"] < 1.0          # steady motion is (almost) fully explained
    # a +-6-level flicker: (12/255)^2 per channel, 3 channels, x10^3, on top of the floor
    assert tm["output"] - tm["sharp"] == pytest.approx(3 * (12 / 255) ** 2 * 1e3, rel=0.1)
    assert tm["output_minus_input"] > 5 and tm["output_over_input"] > 5
    assert 0.8 < tm["visible_fraction"] <= 1
    # the same flicker outside the face regions is not counted (only the warp's bilinear edge sees it)
    outside = np.ones(ref.shape[:3], bool)
    for t, (y0, y1, x0, x1) in enumerate(regions):
        outside[t, y0:y1, x0:x1] = False
    away = bq.temporal_scores(ref, inp, flicker(ref, 6, outside), regions)
    assert abs(away["output"] - away["sharp"]) < 0.05 * (tm["output"] - tm["sharp"])
    assert away["input"] == tm["input"] and away["sharp"] == tm["sharp"]   # the same flows, the same input


def test_temporal_markdown_lists_the_cases_whose_output_flickers_more():
    scores = {"all": {"face": {"psnr_in": 30.0, "psnr_out": 31.5}}}
    steady = {"input": 2.0, "output": 1.5, "sharp": 0.4, "output_minus_input": -0.5, "output_over_input": 0.75,
              "pairs": 39, "visible_fraction": 0.97}
    shaky = {**steady, "output": 2.5, "output_minus_input": 0.5, "output_over_input": 1.25}
    lines = bq.temporal_markdown({"a": {"scores": scores, "temporal": steady},
                                  "b": {"scores": scores, "temporal": shaky}})
    assert "| a | 39 | 30.00 → 31.50 | 2.000 | 1.500 | 0.400 | -0.500 | 97.0 % |" in lines
    assert lines[-1] == "The output flickers more than the input in: b (+0.500, +25.0 %)."
    lines = bq.temporal_markdown({"a": {"scores": scores, "temporal": steady}})
    assert lines[-1] == "The output flickers no more than the input in any case."
    assert bq.temporal_markdown({"a": {"scores": scores}}) == []          # run with --no-temporal
