"""imgaug's ``MotionBlur`` semantics, without imgaug (0.4.0 and its forks fail on numpy 2).

``MotionBlur(k, angle, direction)``: an odd ``k x k`` kernel (even k becomes k+1) holding a vertical
line through the centre whose weights go linearly from ``d' = (clip(direction,-1,1)+1)/2`` at the
top to ``1-d'`` at the bottom, rotated by ``angle`` degrees (clockwise on screen, y down) with
bilinear interpolation about the kernel centre, normalised to sum 1, and applied per channel as a
correlation with mirrored borders (OpenCV's ``filter2D`` default, which imgaug uses).
imgaug quantises the rotated kernel to uint8 before normalising; this keeps it in float.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def motion_blur_kernel(k: int, angle: float, direction: float) -> np.ndarray:
    k = int(k)
    if k < 1:
        raise ValueError(f"kernel size must be >= 1, got {k}")
    k = k if k % 2 else k + 1
    d = (float(np.clip(direction, -1.0, 1.0)) + 1.0) / 2.0
    line = np.zeros((k, k), dtype=np.float64)
    line[:, k // 2] = np.linspace(d, 1.0 - d, num=k)
    if k == 1:
        return np.ones((1, 1), dtype=np.float32)
    theta = np.deg2rad(angle)
    c = (k - 1) / 2
    # In (row, col) with rows going down, turning the line clockwise on screen by theta maps a
    # point p to F p with F = [[cos, sin], [-sin, cos]]; affine_transform samples input = F^-1 out.
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    offset = np.array([c, c]) - rot @ np.array([c, c])
    kernel = ndimage.affine_transform(line, rot, offset=offset, order=1, mode="grid-constant", cval=0.0)
    total = kernel.sum()
    if total <= 0:  # cannot happen for k >= 3, but never divide by zero
        return np.pad(np.ones((1, 1)), k // 2).astype(np.float32)
    return (kernel / total).astype(np.float32)


def apply_kernel(frame: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate an (H,W,3) uint8 frame with a 2D kernel; returns uint8."""
    if kernel.shape == (1, 1):
        return frame.copy()
    img = frame.astype(np.float32)
    out = np.stack([ndimage.correlate(img[..., c], kernel, mode="mirror") for c in range(img.shape[-1])],
                   axis=-1)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
