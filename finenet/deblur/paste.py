"""``finenet deblur``'s paste-back (step 6 of the package's docstring): FineNet's correction of a
crop mapped back into the frame under a feathered mask; overlapping faces blended.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..face.crop import crop_matrix


FEATHER = 0.15          # blend ramp width, as a fraction of the crop side


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


