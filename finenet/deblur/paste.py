"""``finenet deblur``'s paste-back (step 6 of the package's docstring): FineNet's correction of a
crop mapped back into the frame under a feathered mask; overlapping faces blended.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..errors import FineNetError
from ..face.crop import crop_matrix


FEATHER = 0.15          # blend ramp width, as a fraction of the crop side
CONTEXT = 1.25          # FineNet's crop side / the face crop's (``--context``; README: chosen on val)


@dataclass(frozen=True)
class ContextCrop:
    """The crop FineNet runs on: the face crop the pipeline trains on (``data.crop_size`` pixels
    for ``data.crop_margin`` x the face box) with context around it at the same scale, so that the
    paste-back's feather band (``FEATHER`` of the crop side) lies around the face crop instead of
    over its outer part. ``context`` 1 is the face crop itself."""

    face: int              # the face crop's side (data.crop_size)
    size: int              # the crop's side, a multiple of what the networks and heatmaps need
    heatmap_size: int      # heatmap side for ``size`` (landmarks.heatmap_size at the same scale)

    @property
    def ratio(self) -> float:
        """Crop side / face crop side: the crop window is the face window times this."""
        return self.size / self.face

    @property
    def offset(self) -> int:
        """Where the face crop starts inside the crop (pixels, both axes)."""
        return (self.size - self.face) // 2


def check_context(context) -> float:
    """``context`` when it is a number from 1 to 4, else a one-line ``FineNetError``."""
    if isinstance(context, bool) or not (isinstance(context, (int, float)) and math.isfinite(context)
                                         and 1 <= context <= 4):
        raise FineNetError("--context", f"must be a number from 1 to 4 (crop side / face crop side), "
                                        f"got {context!r}")
    return float(context)


def context_crop(face: int, heatmap_size: int, context: float, multiple: int) -> ContextCrop:
    """The ``ContextCrop`` whose side is the smallest one >= ``context`` x ``face`` that is a
    multiple of ``multiple`` (the networks' downsampling) and of the heatmaps' scale, with an even
    margin on each side of the face crop. ``check_context`` first."""
    check_context(context)
    scale = face // heatmap_size
    step = math.lcm(multiple, scale, 2)
    size = face + math.ceil(round(face * (context - 1), 6) / step) * step
    return ContextCrop(face, size, size // scale)


def smoothstep(t: np.ndarray) -> np.ndarray:
    return t * t * (3 - 2 * t)


def paste(image: np.ndarray, residual: np.ndarray, window: np.ndarray, size: int,
          feather: float = FEATHER) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """``image`` plus the crop-space ``residual`` (S,S,3, in 0..255 units) mapped back through the
    inverse crop transform, under a feathered mask; pixels outside the crop are not touched.
    Returns (the new image, the rectangle ``(y0, y1, x0, x1)`` it may differ in; None: nowhere)."""
    term = paste_term(image.shape, residual, window, size, feather)
    return compose(image, [term] if term else [])


def compose(image: np.ndarray, terms: list) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """``image`` plus the ``paste_term`` corrections of its faces: each under its mask, and where
    masks overlap beyond a sum of 1 their mask-weighted mean. (new image, the rectangle it may
    differ in, or None)."""
    if not terms:
        return image, None
    y0, y1 = min(t[0][0] for t in terms), max(t[0][1] for t in terms)
    x0, x1 = min(t[0][2] for t in terms), max(t[0][3] for t in terms)
    if len(terms) == 1:
        acc, weight = terms[0][2] * terms[0][1], terms[0][1]
    else:
        acc = np.zeros((y1 - y0, x1 - x0, 3))
        weight = np.zeros((y1 - y0, x1 - x0, 1))
        for (ty0, ty1, tx0, tx1), mask, moved in terms:
            acc[ty0 - y0:ty1 - y0, tx0 - x0:tx1 - x0] += mask * moved
            weight[ty0 - y0:ty1 - y0, tx0 - x0:tx1 - x0] += mask
    out = image.copy()
    region = out[y0:y1, x0:x1].astype(np.float32) + acc / np.maximum(weight, 1)
    out[y0:y1, x0:x1] = np.clip(np.rint(region), 0, 255).astype(np.uint8)
    return out, (y0, y1, x0, x1)


def paste_term(shape, residual: np.ndarray, window: np.ndarray, size: int, feather: float = FEATHER):
    """The crop-space ``residual`` mapped into a frame of ``shape``: (rectangle ``(y0, y1, x0,
    x1)``, its feathered mask (h,w,1), the moved residual (h,w,3)), or None when the crop lies
    outside the frame."""
    m = crop_matrix(window, size)
    s, ox, oy = m[0, 0], m[0, 2], m[1, 2]
    h, w = shape[:2]
    x0, x1 = max(0, math.floor(ox - 0.5 * s)), min(w, math.ceil(ox + (size - 0.5) * s) + 1)
    y0, y1 = max(0, math.floor(oy - 0.5 * s)), min(h, math.ceil(oy + (size - 0.5) * s) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    u = (np.arange(x0, x1) - ox) / s              # crop coordinates of the frame pixels
    v = (np.arange(y0, y1) - oy) / s
    def ramp(c):                                  # 0 at the crop's edge, 1 past the feather band
        return smoothstep(np.clip(np.minimum(c + 0.5, size - 0.5 - c) / (feather * size), 0, 1))

    mask = (ramp(v)[:, None] * ramp(u)[None, :])[..., None]
    if s < 1 / 1.5:                               # crop finer than the frame: anti-alias first
        sd = (1 / s - 1) / 2
        residual = ndimage.gaussian_filter(residual, sigma=(sd, sd, 0))
    vv, uu = np.meshgrid(v, u, indexing="ij")
    moved = np.stack([ndimage.map_coordinates(residual[..., c], [vv, uu], order=1, mode="nearest")
                      for c in range(3)], axis=-1)
    return (y0, y1, x0, x1), mask, moved


