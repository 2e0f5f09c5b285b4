"""The blur stage's degradation mix: trajectory kernels, the mix's shares, sharp frames untouched,
noise / JPEG applied, the configured ranges honoured, bad configurations named (one line)."""

import copy

import numpy as np
import pytest
import yaml

from finenet.errors import FineNetError
from finenet.ops.degrade import (FAMILY_CODES, SHARP, apply_degradation, blur, odd_values,
                                 sample_degradation)
from finenet.ops.motion_blur import apply_kernel, motion_blur_kernel
from finenet.ops.trajectory import extent, line_kernel, random_walk, trajectory_kernel
from finenet.params import resolve

RAW = yaml.safe_load(open("params.yaml"))


def cfg(**over):
    """The default blur mix with some keys replaced (nested dicts merged)."""
    c = copy.deepcopy(RAW["blur"])
    for key, value in over.items():
        if isinstance(value, dict):
            c[key].update(value)
        else:
            c[key] = value
    return c


def shape_stats(k):
    """(minor/major axis std ratio, centre-of-mass offset (x, y)) of a kernel's mass."""
    h = k.shape[0] // 2
    y, x = np.mgrid[-h:h + 1, -h:h + 1]
    w = k / k.sum()
    mx, my = (w * x).sum(), (w * y).sum()
    cxy = (w * (x - mx) * (y - my)).sum()
    cov = np.array([[(w * (x - mx) ** 2).sum(), cxy], [cxy, (w * (y - my) ** 2).sum()]])
    lo, hi = np.linalg.eigvalsh(cov)
    return np.sqrt(lo / hi), (mx, my)


def support_diameter(k, rel=1e-3):
    ys, xs = np.nonzero(k > rel * k.max())
    p = xs + 1j * ys
    return np.abs(p[:, None] - p[None]).max()


def face_like(seed=0, size=64):
    """A textured test image (smooth gradients + detail), so every blur changes it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    base = 128 + 60 * np.sin(x / 5.0)[..., None] * np.cos(y / 7.0)[..., None]
    img = base + rng.normal(0, 20, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


# --- kernel families ---------------------------------------------------------------------------

@pytest.mark.parametrize("length", [3.0, 5.5, 9.0, 13.0])
def test_trajectory_kernels_are_normalised_odd_centred_and_of_the_requested_extent(length):
    rng = np.random.default_rng(3)
    for _ in range(10):
        k = trajectory_kernel(rng, length, anxiety=float(rng.uniform(0.005, 0.1)),
                              exposure=float(rng.uniform(0.5, 1.0)))
        assert k.dtype == np.float32 and k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2
        assert k.sum() == pytest.approx(1.0, abs=1e-5) and (k >= 0).all()
        _, (mx, my) = shape_stats(k)
        assert abs(mx) < 1e-3 and abs(my) < 1e-3                 # centre of mass on the centre pixel
        # the path's extent is length - 1 between pixel centres; bilinear splatting adds < 1 px a side
        assert length - 1 - 1e-6 <= support_diameter(k) <= length + 1.5
        assert k.shape[0] <= 2 * np.ceil(length) + 1             # no needlessly large kernel


def test_trajectory_extent_is_scaled_exactly():
    path = random_walk(np.random.default_rng(0), anxiety=0.05, samples=500)
    assert len(path) == 500 and path[0] == 0
    steps = np.abs(np.diff(path))
    np.testing.assert_allclose(steps, steps[0], rtol=1e-9)       # uniform speed
    assert 5 < extent(path) <= 64 + 1e-6                         # the nominal 64-px walk, compact
    straight = np.linspace(0, 10, 50) * np.exp(1j * 0.3)
    assert extent(straight) == pytest.approx(10, rel=1e-3)


def test_trajectory_kernels_are_curved_random_and_seeded():
    rng = np.random.default_rng(11)
    curved = [shape_stats(trajectory_kernel(rng, 11, 0.1))[0] for _ in range(30)]
    straight = [shape_stats(trajectory_kernel(rng, 11, 0.0))[0] for _ in range(10)]
    assert max(straight) < 0.2                   # anxiety 0: all the mass on one line (+ splatting)
    assert np.median(curved) > 0.4 and min(curved) > 0.25  # camera shake: mass off any one line
    a = trajectory_kernel(np.random.default_rng(5), 9, 0.05, 0.8)
    b = trajectory_kernel(np.random.default_rng(5), 9, 0.05, 0.8)
    c = trajectory_kernel(np.random.default_rng(6), 9, 0.05, 0.8)
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.allclose(a, c, atol=1e-3)
    r = np.random.default_rng(1)
    first, second = trajectory_kernel(r, 9, 0.05), trajectory_kernel(r, 9, 0.05)
    assert first.shape != second.shape or not np.allclose(first, second, atol=1e-3)


def test_trajectory_kernel_rejects_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="exposure"):
        trajectory_kernel(rng, 5, 0.05, exposure=0.0)
    with pytest.raises(ValueError, match="anxiety"):
        trajectory_kernel(rng, 5, -0.1)
    with pytest.raises(ValueError, match="length"):
        trajectory_kernel(rng, 0.5, 0.05)


def test_line_kernel_extent_and_orientation():
    vertical = line_kernel(3, 0)
    assert vertical.shape == (3, 3) and vertical.sum() == pytest.approx(1, abs=1e-6)
    assert np.count_nonzero(vertical[:, [0, 2]] > 1e-6) == 0 and vertical[:, 1].min() > 0.2
    horizontal = line_kernel(3, 90)
    np.testing.assert_allclose(horizontal, vertical.T, atol=1e-6)
    mild = line_kernel(2, 0)                     # 2 px: most weight in the middle, some either side
    assert mild.shape == (3, 3) and 0.5 < mild[1, 1] < 0.9 and mild[0, 1] == pytest.approx(mild[2, 1])
    assert shape_stats(line_kernel(9, 30))[0] < 0.2


# --- the mix -----------------------------------------------------------------------------------

def test_mix_shares_over_many_draws():
    c = cfg()
    rng = np.random.default_rng(0)
    draws = [sample_degradation(rng, c) for _ in range(2500)]
    fam = np.array([d.family for d in draws])
    sharp = fam == "sharp"
    assert abs(sharp.mean() - c["p_sharp"]) < 0.03
    blurred = [d for d in draws if not d.sharp]
    mild = np.array([d.mild for d in blurred])
    assert abs(mild.mean() - c["p_mild"]) < 0.035
    share = c["families"]["line"] / sum(c["families"].values())
    assert abs(np.mean([d.family == "line" for d in blurred]) - share) < 0.035
    lengths = np.array([d.length for d in blurred])
    assert lengths.min() >= 2 and all(d.length == 1 for d in draws if d.sharp)
    assert set(d.length for d in blurred if d.mild) <= {2, 3}
    line_full = [d.length for d in blurred if d.family == "line" and not d.mild]
    assert set(line_full) == set(odd_values(*c["line"]["kernel_size"]))
    traj = [d.length for d in blurred if d.family == "trajectory" and not d.mild]
    lo, hi = c["trajectory"]["length"]
    assert min(traj) >= np.ceil(lo) and max(traj) <= np.ceil(hi) and len(set(traj)) > 5
    noisy = np.array([d.noise_sigma > 0 for d in blurred])
    assert abs(noisy.mean() - c["noise"]["p"]) < 0.035
    jpeg = np.array([d.jpeg_quality > 0 for d in blurred])
    assert abs(jpeg.mean() - c["jpeg"]["p"]) < 0.035
    q = [d.jpeg_quality for d in blurred if d.jpeg_quality]
    assert min(q) >= c["jpeg"]["quality"][0] and max(q) <= c["jpeg"]["quality"][1]


def test_mix_is_deterministic_for_a_seed():
    def run(seed):
        rng = np.random.default_rng(seed)
        img = face_like()
        out = []
        for _ in range(12):
            d = sample_degradation(rng, cfg())
            out.append((d.record(), d.kernel, apply_degradation(img, d, rng)))
        return out

    a, b, c = run(4), run(4), run(5)
    for (ra, ka, ia), (rb, kb, ib) in zip(a, b):
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(ka, kb)
        np.testing.assert_array_equal(ia, ib)
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a, c))


@pytest.mark.parametrize("bounds,allowed", [([4, 10], {5, 7, 9}), ([3, 3], {3}), ([2, 6], {3, 5}),
                                            ([8, 12], {9, 11})])
def test_kernel_size_range_is_honoured(bounds, allowed):
    c = cfg(p_sharp=0.0, p_mild=0.0, families={"line": 1.0, "trajectory": 0.0},
            line={"kernel_size": bounds})
    rng = np.random.default_rng(1)
    ks = {sample_degradation(rng, c).length for _ in range(300)}
    assert ks == allowed                         # [4, 10] never gives imgaug's rounded-up 11
    d = sample_degradation(np.random.default_rng(2), c)
    assert d.kernel.shape == (d.length, d.length)


def test_scale_multiplies_kernel_lengths():
    c = cfg(p_sharp=0.0, p_mild=0.0, noise={"p": 0.0}, jpeg={"p": 0.0})
    base = [sample_degradation(np.random.default_rng(s), c) for s in range(200)]
    big = [sample_degradation(np.random.default_rng(s), c, scale=3.0) for s in range(200)]
    assert [d.family for d in base] == [d.family for d in big]        # same draws, longer kernels
    ratio = np.array([b.length / a.length for a, b in zip(base, big)])
    assert 2.5 < np.median(ratio) < 3.5
    assert all(b.length % 2 for b in big if b.family == "line")
    small = [sample_degradation(np.random.default_rng(s), c, scale=0.1) for s in range(50)]
    assert min(d.length for d in small) >= 2                          # still a blur, not sharp


# --- applying it -------------------------------------------------------------------------------

def test_sharp_frames_are_untouched_bit_for_bit():
    c = cfg(p_sharp=1.0, noise={"p": 1.0}, jpeg={"p": 1.0})
    img = face_like(1)
    rng = np.random.default_rng(0)
    for _ in range(5):
        d = sample_degradation(rng, c)
        assert d is SHARP and d.noise_sigma == 0 and d.jpeg_quality == 0
        out = apply_degradation(img, d, rng)
        assert out.dtype == np.uint8 and np.array_equal(out, img) and out is not img
    np.testing.assert_array_equal(SHARP.record(), [1, 0, 0, 0])


def test_blur_noise_and_jpeg_are_applied_when_drawn():
    img = face_like(2)
    flat = np.full((48, 48, 3), 120, np.uint8)
    rng = np.random.default_rng(0)
    noisy = sample_degradation(rng, cfg(p_sharp=0.0, noise={"p": 1.0, "sigma": [4.0, 4.0]}, jpeg={"p": 0.0}))
    assert noisy.noise_sigma == 4.0 and noisy.jpeg_quality == 0
    out = apply_degradation(flat, noisy, rng).astype(float)           # the blur keeps a flat image
    assert 3.5 < out.std() < 4.5 and abs(out.mean() - 120) < 0.5
    plain = sample_degradation(np.random.default_rng(1), cfg(p_sharp=0.0, noise={"p": 0.0}, jpeg={"p": 0.0}))
    assert plain.noise_sigma == 0 and plain.jpeg_quality == 0
    np.testing.assert_array_equal(apply_degradation(img, plain, rng), apply_kernel(img, plain.kernel))
    assert np.abs(apply_degradation(img, plain, rng).astype(int) - img).mean() > 2
    jpeg = sample_degradation(np.random.default_rng(1),
                              cfg(p_sharp=0.0, noise={"p": 0.0}, jpeg={"p": 1.0, "quality": [30, 30]}))
    assert jpeg.jpeg_quality == 30
    blurred = apply_kernel(img, jpeg.kernel)
    coded = apply_degradation(img, jpeg, rng)
    assert 1.0 < np.abs(coded.astype(int) - blurred).mean() < 20
    record = jpeg.record()
    assert record.dtype == np.float32 and record[1] == FAMILY_CODES[jpeg.family] and record[3] == 30


def test_fft_blur_matches_direct_correlation():
    rng = np.random.default_rng(0)
    frame = face_like(3, size=200)
    for kernel in (trajectory_kernel(rng, 31, 0.05), motion_blur_kernel(41, 30, 0.5)):
        direct = apply_kernel(frame, kernel)
        fast = blur(frame, kernel)                  # 200*200*k*k > FFT_ABOVE: the FFT path
        assert np.abs(direct.astype(int) - fast).max() <= 1
        assert np.mean(direct != fast) < 0.01


# --- the stage ---------------------------------------------------------------------------------

def test_blur_stage_records_severity_family_noise_jpeg(tmp_path, monkeypatch):
    from finenet.stages import blur as stage
    from finenet.data.clips import ClipSpec
    from finenet.data.store import blurred_path, clip_path, load_npz, save_npz

    monkeypatch.chdir(tmp_path)
    frames = np.stack([face_like(s, 48) for s in range(40)])
    spec = ClipSpec("c0", "train", "embedded", "x")
    real = ClipSpec("r0", "embedded_realblur", "embedded", "y", has_gt=False)
    for s in (spec, real):
        save_npz(clip_path(s.clip_id), {"clip": s.clip_id}, frames=frames)
    params = {"seed": 3, "blur": cfg()}
    stage.blur_clip(spec, params)
    stage.blur_clip(real, params)
    _, out = load_npz(blurred_path("c0"))
    rec, blurry = out["kernel"], out["blurry"]
    assert rec.shape == (40, 4) and rec.dtype == np.float32
    length, family = rec[:, 0], rec[:, 1]
    sharp = length == 1
    assert sharp.any() and (~sharp).any() and (length[~sharp] >= 2).all()
    assert ((family == 0) == sharp).all() and set(family[~sharp]) <= {1, 2}
    assert (rec[sharp, 2:] == 0).all()
    np.testing.assert_array_equal(blurry[sharp], frames[sharp])
    assert all(not np.array_equal(blurry[t], frames[t]) for t in np.flatnonzero(~sharp))
    stage.blur_clip(spec, params)                   # the same clip gets the same draws
    np.testing.assert_array_equal(load_npz(blurred_path("c0"))[1]["blurry"], blurry)
    _, passed = load_npz(blurred_path("r0"))
    assert (passed["kernel"] == 0).all() and np.array_equal(passed["blurry"], frames)


# --- validation --------------------------------------------------------------------------------

def _set(raw, dotted, value):
    *parents, last = dotted.split(".")
    node = raw
    for key in parents:
        node = node[key]
    node[last] = value


@pytest.mark.parametrize("key,value,needle", [
    ("blur.mild_length", [3.0, 2.0], "blur.mild_length: lower bound 3.0 > upper bound 2.0"),
    ("blur.line.kernel_size", [9, 5], "blur.line.kernel_size: lower bound 9 > upper bound 5"),
    ("blur.line.kernel_size", [4, 4], "blur.line.kernel_size: [4, 4] holds no odd kernel size"),
    ("blur.trajectory.length", [13.0, 3.0], "blur.trajectory.length: lower bound"),
    ("blur.trajectory.exposure", [0.0, 1.0], "blur.trajectory.exposure"),
    ("blur.trajectory.anxiety", [0.1, 0.01], "blur.trajectory.anxiety: lower bound"),
    ("blur.noise.sigma", [3.0, 1.0], "blur.noise.sigma: lower bound"),
    ("blur.noise.p", 1.5, "blur.noise.p: 1.5 is greater than the maximum"),
    ("blur.jpeg.quality", [95, 70], "blur.jpeg.quality: lower bound"),
    ("blur.jpeg.quality", [0, 90], "blur.jpeg.quality"),
    ("blur.p_mild", -0.1, "blur.p_mild"),
    ("blur.families", {"line": 0, "trajectory": 0}, "blur.families: the weights must sum to more than 0"),
    ("blur.families", {"line": 1, "gaussian": 1}, "blur.families"),
    ("blur.kernel_size", [3, 11], "unknown key 'blur.kernel_size'"),
    ("blur.line.direction", [-2.0, 1.0], "blur.line.direction"),
])
def test_bad_blur_config_is_one_line_naming_the_key(key, value, needle):
    raw = copy.deepcopy(RAW)
    _set(raw, key, value)
    with pytest.raises(FineNetError) as info:
        resolve(raw, "embedded")
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_profiles_validate_and_the_paper_override_is_a_blur_mix():
    for name in ("embedded", *RAW["profiles"]):
        p = resolve(copy.deepcopy(RAW), name)
        d = sample_degradation(np.random.default_rng(0), p["blur"])
        assert d.length >= 1
