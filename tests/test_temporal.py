"""The warping error (Lai et al. 2018) of ``finenet.scoring.temporal``: exact values where the answer is
known, the warp's direction, the occlusion check, the flow estimator's accuracy, bad input."""

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from finenet.errors import FineNetError
from finenet.scoring.temporal import (FLOW_PARAMS, Flows, TemporalInputError, estimate_flow, occlusion_mask,
                              warp_error)


@pytest.fixture(scope="module")
def moving(carphone) -> np.ndarray:
    """6 consecutive real frames of carphone (head and background motion), [0, 1] float."""
    return carphone[40:46] / 255.0


@pytest.fixture(scope="module")
def moving_flows(moving) -> Flows:
    return Flows.from_reference(moving)


def translating(image: np.ndarray, step, frames: int = 5, size=(72, 96), at=(30, 30)) -> np.ndarray:
    """A window of ``size`` over ``image`` whose content moves by ``step`` (row, col) px a frame:
    frame t (p) = image(at + p - t·step), cubic interpolation of a lightly smoothed real frame."""
    base = ndimage.gaussian_filter(image, (1, 1, 0))
    yy, xx = np.mgrid[:size[0], :size[1]].astype(np.float64)
    out = [np.stack([ndimage.map_coordinates(base[..., c], [yy + at[0] - t * step[0], xx + at[1] - t * step[1]],
                                             order=3) for c in range(3)], -1) for t in range(frames)]
    return np.clip(np.stack(out), 0, 1)


def uniform(flow, n: int, h: int, w: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(flow, float)[None, :, None, None], (n, 2, h, w)).copy()


def brightness_flicker(frames: np.ndarray, amplitude: float) -> np.ndarray:
    """Every other frame brighter, the others darker, by ``amplitude`` (in [0, 1] units)."""
    sign = np.where(np.arange(len(frames)) % 2, 1.0, -1.0)[:, None, None, None]
    return np.clip(frames + amplitude * sign, 0, 1)


# ------------------------------------------------------------------------------------ exact values

def test_a_still_clip_scores_exactly_zero_and_a_planted_flicker_its_exact_value(carphone):
    still = np.repeat(carphone[60:61] / 255.0, 4, axis=0)
    flows = Flows.from_reference(still)
    assert not flows.backward.any() and flows.mask.all()         # no motion, nothing occluded
    assert flows.error(still) == 0.0 and warp_error(still, still) == 0.0
    assert warp_error(carphone[[60] * 4], carphone[[60] * 4]) == 0.0   # uint8 in, the same
    # zero flow, full mask: E_warp is the mean over pairs of the mean squared RGB distance
    flick = brightness_flicker(still, 0.03)
    expected = np.mean([((flick[t] - flick[t - 1]) ** 2).sum(-1).mean() for t in range(1, 4)])
    assert flows.error(flick) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(3 * 0.06 ** 2, rel=0.05)   # 2·0.03 per channel, 3 channels (less where clipped)


def test_flicker_raises_the_error_monotonically_with_its_amplitude(moving, moving_flows):
    floor = moving_flows.error(moving)
    bright = [moving_flows.error(brightness_flicker(moving, a)) for a in (0, 0.01, 0.02, 0.04, 0.08)]
    assert bright[0] == floor and all(np.diff(bright) > 0)
    # a frame-wise offset adds about 3·(2a)^2 to each pair (the residual has mean ~0)
    assert bright[3] - floor == pytest.approx(12 * 0.04 ** 2, rel=0.15)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(moving.shape)
    noisy = [moving_flows.error(np.clip(moving + s * noise, 0, 1)) for s in (0, 0.01, 0.02, 0.04)]
    assert noisy[0] == floor and all(np.diff(noisy) > 0)
    # only one frame flickering: only the two pairs that contain it rise
    one = moving.copy()
    one[3] = np.clip(one[3] + 0.05, 0, 1)
    diff = moving_flows.per_frame(one) - moving_flows.per_frame(moving)
    assert diff[2] > 0.005 and diff[3] > 0.005 and np.abs(diff[[0, 1, 4]]).max() == 0


def test_a_real_moving_clip_against_itself_is_small_and_far_below_no_motion_compensation(moving, moving_flows):
    per = moving_flows.per_frame(moving)
    assert per.shape == (5,) and np.isfinite(per).all()
    unwarped = np.array([((moving[t] - moving[t - 1]) ** 2).sum(-1).mean() for t in range(1, 6)])
    assert per.mean() < 0.5 * unwarped.mean() and per.mean() < 1e-3       # < 1 in the reports' x10^3
    reversed_motion = replace(moving_flows, backward=-moving_flows.backward)    # same mask, warp backwards
    assert reversed_motion.error(moving) > unwarped.mean() > 2 * per.mean()
    assert 0.9 < moving_flows.visible_fraction() < 1.0       # some pixels occluded or leaving the frame
    again = Flows.from_reference(moving[:3])                 # deterministic
    np.testing.assert_array_equal(again.backward, moving_flows.backward[:2])
    np.testing.assert_array_equal(again.mask, moving_flows.mask[:2])


def test_known_translation_scores_zero_with_the_right_warp_direction_only(carphone):
    step = (0.7, 1.6)                                         # content moves down-right each frame
    frames = translating(carphone[0] / 255.0, step)
    n, h, w = len(frames) - 1, *frames.shape[1:3]
    right = Flows.from_flows(uniform([-step[0], -step[1]], n, h, w), uniform(step, n, h, w))
    wrong = Flows.from_flows(uniform(step, n, h, w), uniform([-step[0], -step[1]], n, h, w))
    still = Flows.from_flows(np.zeros((n, 2, h, w)), np.zeros((n, 2, h, w)))
    e_right, e_wrong, e_still = right.error(frames), wrong.error(frames), still.error(frames)
    assert e_right < 1e-4 and e_wrong > 100 * e_right and e_still > 50 * e_right
    # what enters through the border (no pixel of frame t-1 to compare with) is left out
    hidden = ~right.mask[0]
    assert hidden[:, :2].all() and hidden[0].all() and hidden[1:, 2:].sum() == 0
    # the estimated flows find the motion and give the same ~0 score
    est = Flows.from_reference(frames)
    inner = est.backward[:, :, 8:-8, 8:-8]
    assert np.abs(inner[:, 0] + step[0]).mean() < 0.1 and np.abs(inner[:, 1] + step[1]).mean() < 0.1
    assert est.error(frames) < 1e-4


def test_warp_matches_an_independent_bilinear_sampler(moving, moving_flows):
    import torch
    import torch.nn.functional as F

    warped = moving_flows.warp(moving)
    h, w = moving.shape[1:3]
    yy, xx = np.mgrid[:h, :w]
    for t in (1, 4):
        fy, fx = moving_flows.backward[t - 1]
        grid = np.stack([2 * (xx + fx) / (w - 1) - 1, 2 * (yy + fy) / (h - 1) - 1], -1)[None]
        img = torch.from_numpy(moving[t - 1]).permute(2, 0, 1)[None]
        ref = F.grid_sample(img, torch.from_numpy(grid), mode="bilinear", padding_mode="border",
                            align_corners=True)[0].permute(1, 2, 0).numpy()
        m = moving_flows.mask[t - 1]
        np.testing.assert_allclose(warped[t - 1][m], ref[m], atol=1e-6)
        manual = ((moving[t] - ref) ** 2).sum(-1)[m].mean()
        assert moving_flows.per_frame(moving)[t - 1] == pytest.approx(manual, rel=1e-6)


# ------------------------------------------------------------------------------------ occlusion

def moving_patch(image: np.ndarray, step: int, frames: int = 4):
    """An 80x100 background (an upside-down crop of a real frame) with a 40x40 real patch moving
    ``step`` px to the right each frame; the background strip it uncovers per frame, and the truth
    flows (backward F_{t->t-1}, forward F_{t-1->t})."""
    bg = ndimage.gaussian_filter(image[40:120, 40:140][::-1], (1, 1, 0))
    patch = ndimage.gaussian_filter(image[20:60, 60:100], (1, 1, 0))
    seq, strips, fb, ff = [], [], [], []
    for t in range(frames):
        x0 = 20 + step * t
        f = bg.copy()
        f[20:60, x0:x0 + 40] = patch
        seq.append(f)
        if t:
            strip = np.zeros(bg.shape[:2], bool)
            strip[20:60, x0 - step:x0] = True
            strips.append(strip)
            b, fw = np.zeros((2, *bg.shape[:2])), np.zeros((2, *bg.shape[:2]))
            b[1, 20:60, x0:x0 + 40] = -step            # on frame t: the patch came from the left
            fw[1, 20:60, x0 - step:x0 - step + 40] = step   # on frame t-1: it goes right
            fb.append(b)
            ff.append(fw)
    return np.stack(seq), np.stack(strips), np.stack(fb), np.stack(ff)


def test_the_consistency_check_excludes_exactly_the_uncovered_background_with_true_flows(carphone):
    seq, strips, fb, ff = moving_patch(carphone[0] / 255.0, 4)
    for t in range(len(fb)):
        np.testing.assert_array_equal(~occlusion_mask(fb[t], ff[t]), strips[t])
    flows = Flows.from_flows(fb, ff)
    assert flows.error(seq) < 1e-12                          # everything visible is explained exactly
    everywhere = replace(flows, mask=np.ones_like(flows.mask))
    assert everywhere.error(seq) > 1e-3                      # the uncovered strip alone would count
    # the threshold: a 1-px disagreement is tolerated (0.5 + 1% of the magnitudes), 1 px over it is not
    f = np.zeros((2, 16, 16))
    g = np.zeros((2, 16, 16))
    g[1] = 0.7
    assert occlusion_mask(f, g).all()                        # 0.49 <= 0.01 * 0.49 + 0.5
    g[1] = 0.75
    assert not occlusion_mask(f, g).any()                    # 0.5625 > 0.01 * 0.5625 + 0.5


def test_the_consistency_check_on_estimated_flows_drops_much_of_the_uncovered_strip(carphone):
    seq, strips, _, _ = moving_patch(carphone[0] / 255.0, 4)
    flows = Flows.from_reference(seq)
    hidden = ~flows.mask
    in_strip = hidden[strips].mean()
    elsewhere = hidden[~strips].mean()
    assert in_strip > 0.4 and in_strip > 10 * elsewhere
    everywhere = replace(flows, mask=np.ones_like(flows.mask))
    assert flows.error(seq) < 0.5 * everywhere.error(seq)


# ------------------------------------------------------------------------------------ regions, the flow

def test_region_restricts_the_sum_and_empty_frames_are_skipped(moving, moving_flows):
    h, w = moving.shape[1:3]
    face = np.zeros((6, h, w), bool)
    face[:, 30:100, 50:130] = True
    per = moving_flows.per_frame(moving, face)
    for t in (1, 5):
        m = moving_flows.mask[t - 1] & face[t]
        manual = ((moving[t] - moving_flows.warp(moving)[t - 1]) ** 2).sum(-1)[m].mean()
        assert per[t - 1] == pytest.approx(manual, rel=1e-12)
    assert not np.allclose(per, moving_flows.per_frame(moving))
    np.testing.assert_array_equal(moving_flows.per_frame(moving, face[0]), per)   # (H,W): every frame
    partly = face.copy()
    partly[2] = False                                        # the pair ending at frame 2 has no pixel
    p = moving_flows.per_frame(moving, partly)
    assert np.isnan(p[1]) and np.isfinite(np.delete(p, 1)).all()
    assert moving_flows.error(moving, partly) == pytest.approx(np.mean(np.delete(p, 1)))
    with pytest.raises(TemporalInputError, match="no non-occluded pixel"):
        moving_flows.error(moving, np.zeros((h, w), bool))


def test_tvl1_is_accurate_on_a_known_subpixel_shift_and_beats_ilk(carphone):
    """The reason for the flow choice: TV-L1 (``FLOW_PARAMS``) against ILK, on a real frame moved by
    a known sub-pixel shift."""
    from skimage.color import rgb2gray
    from skimage.registration import optical_flow_ilk

    img = rgb2gray(carphone[0]).astype(np.float32)
    h, w = img.shape
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    dy, dx = 1.6, -2.3
    moved = ndimage.map_coordinates(img, [yy - dy, xx - dx], order=3, mode="reflect").astype(np.float32)
    inner = np.s_[12:-12, 12:-12]

    def epe(flow):
        return np.hypot(flow[0][inner] - dy, flow[1][inner] - dx)

    tvl1, ilk = epe(estimate_flow(img, moved)), epe(optical_flow_ilk(img, moved))
    assert FLOW_PARAMS["prefilter"] is True
    assert tvl1.mean() < 0.15 and np.percentile(tvl1, 95) < 0.3
    assert ilk.mean() > 2 * tvl1.mean() and np.percentile(ilk, 95) > 2 * np.percentile(tvl1, 95)


# ------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("frames, reference, match", [
    (np.zeros((4, 32, 32)), np.zeros((4, 32, 32, 3)), r"frames: expected \(T,H,W,3\)"),
    (np.zeros((4, 32, 32, 4)), np.zeros((4, 32, 32, 4)), r"expected \(T,H,W,3\)"),
    (np.zeros((1, 32, 32, 3)), np.zeros((1, 32, 32, 3)), "at least 2 frames"),
    (np.zeros((4, 32, 32, 3)), np.zeros((4, 32, 40, 3)), "does not match the reference"),
    (np.zeros((4, 32, 32, 3)), np.zeros((5, 32, 32, 3)), "does not match the reference"),
    (np.full((4, 32, 32, 3), 128.0), np.zeros((4, 32, 32, 3)), r"must lie in \[0, 1\]"),
    (np.full((4, 32, 32, 3), np.nan), np.zeros((4, 32, 32, 3)), "NaN"),
    (np.zeros((4, 32, 32, 3), np.int32), np.zeros((4, 32, 32, 3)), "dtype int32"),
    (np.zeros((4, 4, 32, 3)), np.zeros((4, 4, 32, 3)), "too small"),
])
def test_bad_frames_are_one_clear_line(frames, reference, match):
    with pytest.raises(TemporalInputError, match=match) as info:
        warp_error(frames, reference)
    assert isinstance(info.value, ValueError) and isinstance(info.value, FineNetError)
    assert "\n" not in str(info.value)


def test_bad_flows_and_regions_are_one_clear_line():
    z = np.zeros((3, 2, 16, 16))
    flows = Flows.from_flows(z, z)
    assert flows.shape == (4, 16, 16)
    frames = np.zeros((4, 16, 16, 3))
    for bad, match in [(np.zeros((5, 16, 16), bool), r"region: expected a \(4,16,16\) or \(16,16\) mask"),
                       (np.zeros((3, 16, 16), bool), r"got shape \(3, 16, 16\)"),
                       (np.zeros((16, 16)), "region: expected a boolean mask")]:
        with pytest.raises(TemporalInputError, match=match):
            flows.per_frame(frames, bad)
    with pytest.raises(TemporalInputError, match="does not match"):
        flows.error(np.zeros((4, 16, 20, 3)))
    with pytest.raises(TemporalInputError, match=r"backward flow: expected \(T-1,2,H,W\)"):
        Flows.from_flows(np.zeros((3, 3, 16, 16)), z)
    with pytest.raises(TemporalInputError, match="differ in shape"):
        Flows.from_flows(z, np.zeros((2, 2, 16, 16)))
    with pytest.raises(TemporalInputError, match="forward flow: contains NaN"):
        Flows.from_flows(z, np.full_like(z, np.nan))
