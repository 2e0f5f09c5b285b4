"""68-channel Gaussian landmark heatmaps, and the iBUG-68 left/right permutation for flips."""

from __future__ import annotations

import numpy as np


def _mirror_68() -> np.ndarray:
    groups = [
        (list(range(0, 17)), list(range(16, -1, -1))),                   # jaw
        (list(range(17, 27)), list(range(26, 16, -1))),                  # brows
        (list(range(27, 31)), list(range(27, 31))),                      # nose bridge
        (list(range(31, 36)), list(range(35, 30, -1))),                  # nostrils
        ([36, 37, 38, 39, 40, 41], [45, 44, 43, 42, 47, 46]),            # right eye <-> left eye
        ([42, 43, 44, 45, 46, 47], [39, 38, 37, 36, 41, 40]),
        (list(range(48, 55)), list(range(54, 47, -1))),                  # outer lip top
        (list(range(55, 60)), list(range(59, 54, -1))),                  # outer lip bottom
        (list(range(60, 65)), list(range(64, 59, -1))),                  # inner lip top
        (list(range(65, 68)), list(range(67, 64, -1))),                  # inner lip bottom
    ]
    perm = np.arange(68)
    for src, dst in groups:
        perm[src] = dst
    return perm


FLIP_68 = _mirror_68()


def render_heatmaps(points: np.ndarray, crop_size: int, size: int, sigma: float) -> np.ndarray:
    """(T,68,2) crop-pixel landmarks -> (T,68,size,size) uint8 Gaussians (peak 255).

    Points map to heatmap pixels with the centre-aligned rule x_h = (x + 0.5) * size / crop - 0.5.
    NaN points (no landmark) give an all-zero channel.
    """
    pts = (np.asarray(points, dtype=np.float32) + 0.5) * (size / crop_size) - 0.5
    grid = np.arange(size, dtype=np.float32)
    gx = np.exp(-((grid[None, None, :] - pts[..., 0:1]) ** 2) / (2 * sigma ** 2))  # (T,68,size)
    gy = np.exp(-((grid[None, None, :] - pts[..., 1:2]) ** 2) / (2 * sigma ** 2))
    maps = gy[..., :, None] * gx[..., None, :]
    return np.nan_to_num(np.rint(maps * 255)).astype(np.uint8)
