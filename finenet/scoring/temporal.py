"""Temporal stability (flicker) of a video: the warping error of Lai et al. (2018).

Definition (the warping error of Lai, Huang, Wang, Shechtman, Yumer & Yang, "Learning Blind Video
Temporal Consistency", ECCV 2018, their measure of temporal stability), for frames V_1 … V_T::

    E_warp(V) = 1/(T-1) · Σ_{t=2..T}  [ Σ_p M_t(p) · ||V_t(p) − Ŵ(V_{t−1})(p)||²  /  Σ_p M_t(p) ]

- V_t(p) is the RGB value of pixel p of frame t, in **[0, 1]** (uint8 frames are divided by 255);
  ||·||² is the squared Euclidean norm over the three channels (summed, not averaged). The unit
  of E_warp is therefore "squared [0, 1] intensity summed over RGB"; reports print it ×10³
  (``REPORT_SCALE``): a steady face video scores about 0.5-1.5, a ±1 % brightness flicker adds
  about 1.2 (3 · 0.02²).
- Ŵ(V_{t−1}) is frame t−1 warped to frame t with the optical flow F_t = F_{t→t−1} estimated on the
  **reference** (sharp, ground-truth) frames, so that every method is scored with the same motion
  (Lai et al. estimate it with FlowNet2; here TV-L1, below):
  Ŵ(V_{t−1})(p) = V_{t−1}(p + F_t(p)), bilinear. F_t(p) is the (row, col) displacement from pixel p
  of frame t to the same scene point in frame t−1.
- M_t is the non-occlusion mask of frame t from the forward-backward consistency check of Ruder,
  Dosovitskiy & Brox, "Artistic Style Transfer for Videos" (GCPR 2016), which Lai et al. use: with the other-direction flow G_t = F_{t−1→t} (on the pixel grid of frame t−1) carried to
  frame t, G̃_t(p) = G_t(p + F_t(p)), pixel p is **occluded** where::

      |F_t(p) + G̃_t(p)|²  >  0.01 · (|F_t(p)|² + |G̃_t(p)|²) + 0.5        (flows in pixels)

  and M_t(p) = 1 elsewhere. In addition (this implementation), a pixel whose p + F_t(p) falls
  outside frame t−1 (content entering through the border) is excluded: it has nothing to be
  compared with. Ruder et al.'s second criterion (motion boundaries, |∇F|² > 0.01|F|² + 0.002) is
  not applied.
- An optional ``region`` (a per-frame boolean mask, e.g. the face box) restricts the sums to the
  pixels of frame t inside it: M_t ∧ R_t. A frame with no pixel left scores NaN, and the mean is
  taken over the others.

Flow: scikit-image's TV-L1 (``skimage.registration.optical_flow_tvl1``, Zach et al. 2007 / Wedel
et al. 2009) on the grayscale reference frames (``skimage.color.rgb2gray``, float32), with
``FLOW_PARAMS`` (scikit-image's defaults except ``prefilter=True``, a 3x3 median of the flow before
each warp). Chosen over ``optical_flow_ilk`` by accuracy on a known sub-pixel translation of a real
carphone frame (176x144, shifts of 0.5-8 px): TV-L1 mean end-point error 0.06-0.08 px (95th
percentile 0.12-0.19 px), ILK (radius 7) 0.12-0.41 px (95th percentile 0.44-1.04 px: it fails in
flat regions), at 1.5-1.7x ILK's CPU time (one flow: TV-L1 0.35 s CPU at 176x144, 1.3 s at
300x300, 3.2 s at 480x480; ILK 0.24, 0.78, 1.9 s; two flows per pair of frames).
``tests/test_temporal.py`` checks the accuracy ordering on a known shift.
Everything is deterministic (NumPy / SciPy, no random state).

Usage::

    flows = Flows.from_reference(sharp)            # (T,H,W,3): two flows per consecutive pair, once
    flows.error(output)                            # E_warp of one method's (T,H,W,3) frames
    flows.per_frame(output, region=face_masks)     # (T-1,) values, frame t = 1 … T-1
    warp_error(output, sharp)                      # the same as flows.error, in one call
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import FineNetError

REPORT_SCALE = 1e3            # reports print E_warp x 10^3
OCCLUSION_RATIO = 0.01        # Ruder et al.'s consistency check: |F + G~|^2 > 0.01 (|F|^2 + |G~|^2) + 0.5
OCCLUSION_OFFSET = 0.5
FLOW_METHOD = "skimage.registration.optical_flow_tvl1"
FLOW_PARAMS = dict(attachment=15.0, tightness=0.3, num_warp=5, num_iter=10, tol=1e-4, prefilter=True)
MIN_SIDE = 8                  # TV-L1's pyramid needs a few pixels


class TemporalInputError(FineNetError, ValueError):
    """Bad frames, reference, flows or region: one line naming the argument."""


# ------------------------------------------------------------------------------------ checks

def as_frames(frames, name: str = "frames") -> np.ndarray:
    """(T,H,W,3) frames as float64 in [0, 1]: uint8 is divided by 255, floats must lie in [0, 1]."""
    a = np.asarray(frames)
    if a.ndim != 4 or a.shape[-1] != 3:
        raise TemporalInputError(name, f"expected (T,H,W,3) RGB frames, got shape {a.shape}")
    t, h, w, _ = a.shape
    if t < 2:
        raise TemporalInputError(name, f"need at least 2 frames for a temporal measure, got {t}")
    if min(h, w) < MIN_SIDE:
        raise TemporalInputError(name, f"frames of {w}x{h} are too small (at least {MIN_SIDE} px a side)")
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    if not np.issubdtype(a.dtype, np.floating):
        raise TemporalInputError(name, f"expected float frames in [0, 1] or uint8, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise TemporalInputError(name, "frames contain NaN or inf")
    lo, hi = float(a.min()), float(a.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise TemporalInputError(name, f"float frames must lie in [0, 1], got values in [{lo:g}, {hi:g}] "
                                       "(0-255 floats? divide by 255)")
    return a


def _as_region(region, shape: tuple) -> np.ndarray | None:
    """None, or a (T,H,W) boolean mask from a (T,H,W) or (H,W) one (the same for every frame)."""
    if region is None:
        return None
    r = np.asarray(region)
    t, h, w = shape
    if r.shape == (h, w):
        r = np.broadcast_to(r, (t, h, w))
    if r.shape != (t, h, w):
        raise TemporalInputError("region", f"expected a ({t},{h},{w}) or ({h},{w}) mask, got shape {r.shape}")
    if r.dtype != np.bool_:
        raise TemporalInputError("region", f"expected a boolean mask, got dtype {r.dtype}")
    return r


def _check_flows(backward, forward) -> tuple[np.ndarray, np.ndarray]:
    fb, ff = np.asarray(backward, dtype=np.float64), np.asarray(forward, dtype=np.float64)
    for name, f in (("backward", fb), ("forward", ff)):
        if f.ndim != 4 or f.shape[1] != 2 or f.shape[0] < 1 or min(f.shape[2:]) < 1:
            raise TemporalInputError(f"{name} flow", f"expected (T-1,2,H,W) (row, col) flows, got shape {f.shape}")
        if not np.isfinite(f).all():
            raise TemporalInputError(f"{name} flow", "contains NaN or inf")
    if fb.shape != ff.shape:
        raise TemporalInputError("flows", f"backward {fb.shape} and forward {ff.shape} flows differ in shape")
    return fb, ff


# ------------------------------------------------------------------------------------ pieces

def estimate_flow(target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """(2,H,W) float32 flow F (row, col) of grayscale ``target`` towards ``source``:
    target(p) ≈ source(p + F(p)) (TV-L1 with ``FLOW_PARAMS``)."""
    from skimage.registration import optical_flow_tvl1

    return optical_flow_tvl1(target, source, dtype=np.float32, **FLOW_PARAMS)


def _grid(h: int, w: int) -> np.ndarray:
    return np.stack(np.mgrid[:h, :w]).astype(np.float64)


def sample(image: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """``image`` (H,W) or (H,W,C) read bilinearly at (2,H,W) (row, col) coordinates; outside the
    frame the nearest edge pixel (such pixels are outside every mask)."""
    from scipy.ndimage import map_coordinates

    if image.ndim == 2:
        return map_coordinates(image, coords, order=1, mode="nearest")
    return np.stack([map_coordinates(image[..., c], coords, order=1, mode="nearest")
                     for c in range(image.shape[-1])], axis=-1)


def occlusion_mask(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """(H,W) bool M_t, True where pixel p of frame t is visible in frame t−1: the forward-backward
    check of Ruder et al. (2016) passes, |F + G̃|² <= 0.01 (|F|² + |G̃|²) + 0.5 with G̃(p) = G(p + F(p)),
    and p + F(p) lies inside the frame. ``backward`` F = F_{t→t−1} (2,H,W) on frame t's grid,
    ``forward`` G = F_{t−1→t} (2,H,W) on frame t−1's grid, (row, col) pixels."""
    f, g = np.asarray(backward, dtype=np.float64), np.asarray(forward, dtype=np.float64)
    h, w = f.shape[1:]
    q = _grid(h, w) + f
    inside = (q[0] >= 0) & (q[0] <= h - 1) & (q[1] >= 0) & (q[1] <= w - 1)
    g_t = np.stack([sample(g[0], q), sample(g[1], q)])
    sq = lambda v: (v ** 2).sum(0)  # noqa: E731
    occluded = sq(f + g_t) > OCCLUSION_RATIO * (sq(f) + sq(g_t)) + OCCLUSION_OFFSET
    return inside & ~occluded


# ------------------------------------------------------------------------------------ the measure

@dataclass(frozen=True)
class Flows:
    """The reference's motion, estimated once, to score any number of methods' outputs with.

    ``backward[t-1]`` is F_{t→t−1} (2,H,W) float32 (row, col) and ``mask[t-1]`` M_t (H,W) bool, for
    t = 1 … T-1 (0-based frame index of the later frame of each pair)."""

    backward: np.ndarray
    mask: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(T, H, W) of the frames these flows score."""
        n, _, h, w = self.backward.shape
        return n + 1, h, w

    @classmethod
    def from_reference(cls, reference) -> "Flows":
        """TV-L1 flows both ways between consecutive grayscale reference frames (T,H,W,3) and the
        non-occlusion masks."""
        from skimage.color import rgb2gray

        ref = as_frames(reference, "reference")
        start = time.perf_counter()
        gray = rgb2gray(ref).astype(np.float32)
        n, h, w = len(gray) - 1, *gray.shape[1:]
        backward = np.empty((n, 2, h, w), np.float32)
        mask = np.empty((n, h, w), bool)
        for t in range(1, len(gray)):
            backward[t - 1] = estimate_flow(gray[t], gray[t - 1])        # F_{t -> t-1}
            forward = estimate_flow(gray[t - 1], gray[t])                # F_{t-1 -> t}
            mask[t - 1] = occlusion_mask(backward[t - 1], forward)
        info = {"flow": FLOW_METHOD, "flow_params": dict(FLOW_PARAMS), "grayscale": "skimage.color.rgb2gray",
                "seconds": round(time.perf_counter() - start, 3)}
        return cls(backward, mask, info)

    @classmethod
    def from_flows(cls, backward, forward) -> "Flows":
        """From given flows (T-1,2,H,W): ``backward[t-1]`` = F_{t→t−1}, ``forward[t-1]`` = F_{t−1→t}."""
        fb, ff = _check_flows(backward, forward)
        mask = np.stack([occlusion_mask(fb[k], ff[k]) for k in range(len(fb))])
        return cls(fb.astype(np.float32), mask, {"flow": "given"})

    def _frames(self, frames) -> np.ndarray:
        v = as_frames(frames)
        if v.shape[:3] != self.shape:
            raise TemporalInputError("frames", f"shape {v.shape} does not match the reference's "
                                               f"{(*self.shape, 3)}")
        return v

    def warp(self, frames) -> np.ndarray:
        """(T-1,H,W,3): Ŵ(V_{t−1}), frame t−1 warped to frame t, for t = 1 … T-1."""
        v = self._frames(frames)
        grid = _grid(*self.shape[1:])
        return np.stack([sample(v[t - 1], grid + self.backward[t - 1]) for t in range(1, len(v))])

    def per_frame(self, frames, region=None) -> np.ndarray:
        """(T-1,) float64: Σ_p M_t(p)·||V_t(p) − Ŵ(V_{t−1})(p)||² / Σ_p M_t(p) for t = 1 … T-1 (raw
        units, see the module docstring); NaN where the mask (∧ ``region``) is empty."""
        v = self._frames(frames)
        r = _as_region(region, self.shape)
        grid = _grid(*self.shape[1:])
        out = np.empty(len(v) - 1)
        for t in range(1, len(v)):
            m = self.mask[t - 1] if r is None else self.mask[t - 1] & r[t]
            if not m.any():
                out[t - 1] = np.nan
                continue
            warped = sample(v[t - 1], grid + self.backward[t - 1])
            out[t - 1] = float(((v[t] - warped) ** 2).sum(-1)[m].sum() / m.sum())
        return out

    def error(self, frames, region=None) -> float:
        """E_warp: the mean of ``per_frame`` over the frames with a non-empty mask."""
        values = self.per_frame(frames, region)
        if np.isnan(values).all():
            raise TemporalInputError("region", "no non-occluded pixel inside the region in any frame")
        return float(np.nanmean(values))

    def visible_fraction(self, region=None) -> float:
        """The share of pixels (inside ``region``) that the masks keep, over all pairs."""
        r = _as_region(region, self.shape)
        if r is None:
            return float(self.mask.mean())
        inside = r[1:]
        return float((self.mask & inside).sum() / max(1, inside.sum()))


def warp_error(frames, reference, region=None) -> float:
    """E_warp of ``frames`` (T,H,W,3) with the flows and masks of ``reference`` (T,H,W,3), both in
    [0, 1] (or uint8); raw units (×``REPORT_SCALE`` in reports)."""
    ref = as_frames(reference, "reference")
    v = as_frames(frames)
    if v.shape != ref.shape:
        raise TemporalInputError("frames", f"shape {v.shape} does not match the reference's {ref.shape}")
    return Flows.from_reference(ref).error(v, region)
