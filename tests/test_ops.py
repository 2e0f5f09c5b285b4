"""Motion-blur kernels (imgaug MotionBlur semantics), heatmap rendering and flipping, params."""

import copy

import numpy as np
import pytest
import yaml
from skimage.transform import rotate

from finenet.errors import FineNetError
from finenet.face.heatmap import FLIP_68, render_heatmaps
from finenet.ops.degrade import sample_degradation
from finenet.ops.motion_blur import apply_kernel, motion_blur_kernel
from finenet.params import load_params, resolve

RAW = yaml.safe_load(open("params.yaml"))


def imgaug_reference(k, angle, direction):
    """imgaug 0.4.0's recipe, written independently: line in the centre column with linear
    weights from d' to 1-d', rotated clockwise by `angle` (skimage rotates counter-clockwise)."""
    k = k if k % 2 else k + 1
    d = (np.clip(direction, -1, 1) + 1) / 2
    m = np.zeros((k, k))
    m[:, k // 2] = np.linspace(d, 1 - d, k)
    m = rotate(m, -angle, order=1, mode="constant", cval=0, preserve_range=True)
    return m / m.sum()


@pytest.mark.parametrize("k,angle,direction", [(3, 0, 0), (5, 0, 1), (7, 30, -0.5), (9, 135, 0.8),
                                               (11, 270, -1), (6, 45, 0.3)])
def test_kernel_matches_imgaug_recipe(k, angle, direction):
    ours = motion_blur_kernel(k, angle, direction)
    ref = imgaug_reference(k, angle, direction)
    assert ours.shape == ref.shape == ((k if k % 2 else k + 1),) * 2
    assert ours.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_kernel_direction_weights_are_linear_and_oriented():
    k = motion_blur_kernel(5, 0, 1.0)          # d' = 1: heaviest at the top, zero at the bottom
    col = k[:, 2]
    assert np.count_nonzero(k[:, [0, 1, 3, 4]]) == 0
    np.testing.assert_allclose(col, np.array([4, 3, 2, 1, 0]) / 10, atol=1e-6)
    right = motion_blur_kernel(5, 90, 1.0)     # turned clockwise: the top goes to the right
    np.testing.assert_allclose(right[2], np.array([0, 1, 2, 3, 4]) / 10, atol=1e-6)
    even = motion_blur_kernel(5, 0, 0.0)       # d' = 0.5: uniform line
    np.testing.assert_allclose(even[:, 2], 0.2, atol=1e-6)


def test_apply_kernel_preserves_flat_images_and_blurs_edges():
    flat = np.full((20, 20, 3), 137, np.uint8)
    assert (apply_kernel(flat, motion_blur_kernel(7, 33, 0.2)) == 137).all()
    edge = np.zeros((20, 20, 3), np.uint8)
    edge[:10] = 255                               # horizontal edge, blurred by a vertical line
    out = apply_kernel(edge, motion_blur_kernel(7, 0, 0))
    assert 0 < out[10, 10, 0] < 255 and out[0, 0, 0] == 255 and out[19, 0, 0] == 0
    sideways = apply_kernel(edge, motion_blur_kernel(7, 90, 0))   # motion along the edge: no blur
    assert (sideways == edge).all()


def test_kernel_sampling_mix_and_determinism():
    cfg = copy.deepcopy(RAW["blur"])
    cfg.update(p_sharp=0.25, p_mild=0.0, families={"line": 1.0, "trajectory": 0.0})
    cfg["line"].update(kernel_size=[3, 11], angle=[0, 360], direction=[-1, 1])
    draws = [sample_degradation(np.random.default_rng(7), cfg) for _ in range(2)]
    assert draws[0].params == draws[1].params and draws[0].length == draws[1].length
    rng = np.random.default_rng(0)
    ks = np.array([sample_degradation(rng, cfg).length for _ in range(2000)])
    assert abs(np.mean(ks == 1) - 0.25) < 0.04
    assert set(ks[ks > 1]) == {3, 5, 7, 9, 11} and (ks % 2 == 1).all()


def test_heatmap_peaks_at_landmarks():
    pts = np.array([[[10.0, 20.0]] * 68], np.float32)
    pts[0, 5] = [46.0, 3.0]
    maps = render_heatmaps(pts, crop_size=96, size=48, sigma=1.5)
    assert maps.shape == (1, 68, 48, 48) and maps.dtype == np.uint8
    y, x = np.unravel_index(maps[0, 5].argmax(), (48, 48))
    assert (x, y) == (23, 1)   # x_h = (46 + .5) / 2 - .5 = 22.75, y_h = 1.25
    assert 240 < maps[0, 0].max() < 255     # (10, 20) lands at (4.75, 9.75): between grid points
    nan = render_heatmaps(np.full((1, 68, 2), np.nan, np.float32), 96, 48, 1.5)
    assert nan.max() == 0


def test_flip_permutation_is_a_mirror_involution():
    assert sorted(FLIP_68) == list(range(68))
    assert (FLIP_68[FLIP_68] == np.arange(68)).all()
    assert FLIP_68[0] == 16 and FLIP_68[36] == 45 and FLIP_68[39] == 42 and FLIP_68[48] == 54
    assert FLIP_68[30] == 30 and FLIP_68[57] == 57 and FLIP_68[66] == 66


def test_params_default_and_paper_profiles_validate():
    emb = load_params("params.yaml")
    paper = load_params("params.yaml", profile="paper")
    assert emb["profile"] == "embedded" and emb["data"]["embedded"]["enabled"]
    assert paper["data"]["crop_size"] == 256 and not paper["data"]["embedded"]["enabled"]
    assert paper["loader"]["num_frames"] == 5
    assert paper["landmarks"]["upsample"] == emb["landmarks"]["upsample"]   # untouched: the defaults
    # the blur mix is the same; its lengths (pixels of the face crop) scale with the crop
    assert paper["blur"]["p_sharp"] == emb["blur"]["p_sharp"] and paper["blur"]["noise"] == emb["blur"]["noise"]
    ratio = paper["data"]["crop_size"] / emb["data"]["crop_size"]
    for key in ("mild_length", "trajectory.length", "line.kernel_size"):
        a, b = emb["blur"], paper["blur"]
        for part in key.split("."):
            a, b = a[part], b[part]
        assert np.allclose(np.array(b) / np.array(a), ratio, rtol=0.2), key


@pytest.mark.parametrize("edit,needle", [
    (lambda p: p["data"].update(crop_size="96"), "data.crop_size"),
    (lambda p: p["data"].update(cropsize=96), "unknown key 'data.cropsize'"),
    (lambda p: p["blur"].update(p_sharp=2), "blur.p_sharp"),
    (lambda p: p["landmarks"].update(detector="mtcnn"), "landmarks.detector"),
    (lambda p: p["landmarks"].update(heatmap_size=50), "heatmap_size"),
    (lambda p: p.update(profile="huge"), "profile 'huge'"),
    (lambda p: p["profiles"]["paper"]["data"].update(crop_sise=1), None),
])
def test_bad_params_name_the_key(edit, needle):
    raw = copy.deepcopy(RAW)
    edit(raw)
    profile = "paper" if needle is None else None
    with pytest.raises(FineNetError) as info:
        resolve(raw, profile)
    assert (needle or "unknown key 'data.crop_sise'") in str(info.value)
    assert "\n" not in str(info.value)


def test_annotated_boxes_fill_unannotated_frames_and_need_one_annotation():
    from finenet.face.crop import annotated_boxes

    pts = np.zeros((4, 68, 2), np.float32)
    pts[:, :, 0] = np.linspace(10, 30, 68)
    pts[:, :, 1] = np.linspace(20, 50, 68)
    pts[3] += 8
    pts[1:3] = np.nan                                   # frames without a .pts file
    boxes, ok = annotated_boxes(pts)
    assert ok.tolist() == [True, False, False, True]
    assert np.allclose(boxes[0], [10, 20, 30, 50]) and np.allclose(boxes[3], [18, 28, 38, 58])
    assert np.allclose(boxes[1], [10 + 8 / 3, 20 + 8 / 3, 30 + 8 / 3, 50 + 8 / 3])
    assert annotated_boxes(np.full((3, 68, 2), np.nan, np.float32)) is None
