"""One frame's synthetic degradation, drawn from the ``blur`` parameters: left sharp, or a blur
kernel (imgaug's straight MotionBlur line, or a camera-shake trajectory), then optional Gaussian
sensor noise and an optional JPEG round trip.

Per frame (every draw from the caller's generator, so a clip seeded with ``clip_rng`` always gets
the same degradations):

1. with probability ``p_sharp`` the frame stays sharp: ``apply_degradation`` returns it exactly
   as it is (no noise, no JPEG either: it stands for a frame the deblurrer must leave alone);
2. else a kernel family by the ``families`` weights, and with probability ``p_mild`` a mild
   kernel of extent drawn uniformly from ``mild_length`` pixels (line: a straight uniform segment,
   :func:`~finenet.ops.trajectory.line_kernel`, since imgaug's k is odd and >= 3), otherwise
   - ``line``: imgaug ``MotionBlur(k, angle, direction)`` with k uniform over the ODD values in
     ``line.kernel_size`` (so the drawn k always lies inside the configured range),
   - ``trajectory``: :func:`~finenet.ops.trajectory.trajectory_kernel` with length, anxiety and
     exposure uniform in their ranges;
3. with probability ``noise.p`` Gaussian noise of sigma uniform in ``noise.sigma`` (8-bit levels);
4. with probability ``jpeg.p`` a JPEG round trip (Pillow) at an integer quality uniform in
   ``jpeg.quality``.

``scale`` multiplies every kernel length (to blur a full-resolution frame whose face is larger or
smaller than in the training crop as the crop would be blurred); a scaled length is at least
MIN_LENGTH pixels, a scaled imgaug k the nearest odd value >= 3.

``Degradation.length`` is the severity that the tables group by: 1 for a sharp frame, else the
kernel's extent in pixels rounded up, at least 2 (line: imgaug's k). ``record()`` gives the row the
``blur`` stage stores per frame: [length, family code (0 sharp, 1 line, 2 trajectory), noise
sigma, JPEG quality (0: none)].
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import numpy as np

from .motion_blur import apply_kernel, motion_blur_kernel
from .trajectory import line_kernel, trajectory_kernel

FAMILIES = ("sharp", "line", "trajectory")
FAMILY_CODES = {name: code for code, name in enumerate(FAMILIES)}
BLUR_FAMILIES = FAMILIES[1:]
MIN_LENGTH = 1.5        # px: the shortest kernel a blurred frame gets (after scaling)
FFT_ABOVE = 5e7         # frame pixels x kernel taps above which the blur is done by FFT


@dataclass(frozen=True, eq=False)
class Degradation:
    family: str                         # 'sharp' | 'line' | 'trajectory'
    kernel: np.ndarray                  # float32, odd square, sums to 1 ((1,1) for sharp)
    length: int                         # severity: 1 sharp, else extent in px rounded up (>= 2)
    noise_sigma: float = 0.0            # Gaussian noise sigma in 8-bit levels (0: none)
    jpeg_quality: int = 0               # JPEG quality (0: none)
    mild: bool = False
    params: dict = field(default_factory=dict)   # what was drawn (k/angle/direction or length/anxiety/exposure)

    @property
    def sharp(self) -> bool:
        return self.family == "sharp"

    def record(self) -> np.ndarray:
        """[length, family code, noise sigma, JPEG quality] as float32 (the blur stage's row)."""
        return np.array([self.length, FAMILY_CODES[self.family], self.noise_sigma, self.jpeg_quality],
                        dtype=np.float32)


SHARP = Degradation("sharp", np.ones((1, 1), np.float32), 1)


def odd_values(lo: int, hi: int) -> list[int]:
    """The odd integers in [lo, hi] that are >= 3 (imgaug kernel sizes that blur)."""
    return [k for k in range(max(int(lo), 3), int(hi) + 1) if k % 2]


def _scaled_odd(k: int, scale: float) -> int:
    if scale == 1:
        return int(k)
    return max(3, 2 * int(round((k * scale - 1) / 2)) + 1)


def _severity(length: float) -> int:
    return max(2, int(math.ceil(length - 1e-9)))


def sample_degradation(rng: np.random.Generator, cfg: dict, scale: float = 1.0) -> Degradation:
    """One frame's degradation drawn from the ``blur`` parameters ``cfg`` (see the module doc)."""
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    if rng.random() < cfg["p_sharp"]:
        return SHARP
    mild = bool(rng.random() < cfg["p_mild"])
    weights = np.array([float(cfg["families"][f]) for f in BLUR_FAMILIES])
    family = BLUR_FAMILIES[int(rng.choice(len(weights), p=weights / weights.sum()))]
    if family == "line":
        line = cfg["line"]
        angle = float(rng.uniform(*line["angle"]))
        if mild:
            extent = max(MIN_LENGTH, float(rng.uniform(*cfg["mild_length"])) * scale)
            kernel, length = line_kernel(extent, angle), _severity(extent)
            drawn = dict(length=extent, angle=angle)
        else:
            ks = odd_values(*line["kernel_size"])
            if not ks:
                raise ValueError(f"blur.line.kernel_size {line['kernel_size']} holds no odd value >= 3")
            k = _scaled_odd(int(ks[int(rng.integers(len(ks)))]), scale)
            direction = float(rng.uniform(*line["direction"]))
            kernel, length = motion_blur_kernel(k, angle, direction), k
            drawn = dict(k=k, angle=angle, direction=direction)
    else:
        traj = cfg["trajectory"]
        extent = float(rng.uniform(*(cfg["mild_length"] if mild else traj["length"])))
        extent = max(MIN_LENGTH, extent * scale)
        anxiety = float(rng.uniform(*traj["anxiety"]))
        exposure = float(rng.uniform(*traj["exposure"]))
        kernel, length = trajectory_kernel(rng, extent, anxiety, exposure), _severity(extent)
        drawn = dict(length=extent, anxiety=anxiety, exposure=exposure)
    noise = cfg["noise"]
    sigma = float(rng.uniform(*noise["sigma"])) if rng.random() < noise["p"] else 0.0
    jpeg = cfg["jpeg"]
    quality = int(rng.integers(jpeg["quality"][0], jpeg["quality"][1] + 1)) if rng.random() < jpeg["p"] else 0
    return Degradation(family, kernel, length, sigma, quality, mild, drawn)


def blur(frame: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``motion_blur.apply_kernel`` (correlation, mirrored borders); by FFT for large frames x kernels
    (same result up to float rounding: at most 1 level off, on a few pixels)."""
    k = kernel.shape[0]
    if k == 1 or frame.shape[0] * frame.shape[1] * kernel.size <= FFT_ABOVE:
        return apply_kernel(frame, kernel)
    from scipy.signal import fftconvolve

    r = k // 2
    if min(frame.shape[:2]) <= r:                    # mirror padding needs a wider frame
        return apply_kernel(frame, kernel)
    padded = np.pad(frame.astype(np.float32), ((r, r), (r, r), (0, 0)), mode="reflect")  # = ndimage 'mirror'
    out = fftconvolve(padded, kernel[::-1, ::-1, None].astype(np.float32), mode="valid", axes=(0, 1))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def add_noise(frame: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    noisy = frame.astype(np.float32) + rng.standard_normal(frame.shape, dtype=np.float32) * np.float32(sigma)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def jpeg_round_trip(frame: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def apply_degradation(frame: np.ndarray, deg: Degradation, rng: np.random.Generator) -> np.ndarray:
    """Degrade an (H,W,3) uint8 frame: blur, then noise (drawn from ``rng``), then JPEG; uint8.
    A sharp degradation returns the frame exactly as it is (a copy)."""
    if deg.sharp:
        return frame.copy()
    out = blur(frame, deg.kernel)
    if deg.noise_sigma > 0:
        out = add_noise(out, deg.noise_sigma, rng)
    if deg.jpeg_quality > 0:
        out = jpeg_round_trip(out, deg.jpeg_quality)
    return out
