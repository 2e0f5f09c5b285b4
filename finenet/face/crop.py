"""Face tracks: per-frame boxes, gaps filled from neighbours, smoothed over time, then a fixed-size
square crop that follows the smoothed box."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import FineNetError


def nearest_box(boxes: list[np.ndarray], previous: np.ndarray | None) -> np.ndarray:
    """The largest box on the first frame, then the one closest to the previous frame's box."""
    if previous is None:
        return boxes[0]
    centre = (previous[:2] + previous[2:]) / 2
    return min(boxes, key=lambda b: np.linalg.norm((b[:2] + b[2:]) / 2 - centre))


def track_faces(frames: np.ndarray, detector, where, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (T,4) as x0,y0,x1,y1 with undetected frames interpolated; and the found mask (T,)."""
    n = len(frames)
    boxes = np.full((n, 4), np.nan, dtype=np.float32)
    previous = None
    for t in range(n):
        found = detector.detect_faces(frames[t])
        if found:
            previous = boxes[t] = nearest_box(found, previous)
        if progress is not None:
            progress.update(1)
    ok = ~np.isnan(boxes[:, 0])
    if not ok.any():
        raise FineNetError(where, f"no face detected in any of the {n} frames")
    return fill_gaps(boxes, ok), ok


def annotated_boxes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Boxes (T,4) of annotated landmarks (T,68,2) (NaN rows: not annotated, filled from the
    neighbours) and the annotated mask; None when no frame is annotated."""
    ok = ~np.isnan(points).any(axis=(1, 2))
    if not ok.any():
        return None
    boxes = np.full((len(points), 4), np.nan, dtype=np.float32)
    boxes[ok] = np.concatenate([points[ok].min(1), points[ok].max(1)], axis=1)
    return fill_gaps(boxes, ok), ok


def fill_gaps(boxes: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Boxes of the frames not in ``ok`` linearly interpolated (held at the ends)."""
    idx = np.arange(len(boxes))
    for k in range(4):
        boxes[:, k] = np.interp(idx, idx[ok], boxes[ok, k])
    return boxes


def smooth_boxes(boxes: np.ndarray, sigma: float, margin: float) -> np.ndarray:
    """(T,3): centre x, centre y and side of the square crop window, smoothed with a Gaussian."""
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * margin
    track = np.stack([cx, cy, np.log(np.maximum(side, 1.0))], axis=1)
    if sigma > 0 and len(track) > 1:
        track = ndimage.gaussian_filter1d(track, sigma, axis=0, mode="nearest")
    track[:, 2] = np.exp(track[:, 2])
    return track.astype(np.float32)


def crop_matrix(window: np.ndarray, size: int) -> np.ndarray:
    """2x3 affine map from crop pixel (u, v, 1) to source pixel (x, y) for one window (cx, cy, side)."""
    cx, cy, side = window
    s = side / size
    return np.array([[s, 0, cx - side / 2 + (s - 1) / 2],
                     [0, s, cy - side / 2 + (s - 1) / 2]], dtype=np.float64)


def crop_frame(frame: np.ndarray, window: np.ndarray, size: int) -> np.ndarray:
    """Bilinear square crop, Gaussian pre-filtered when shrinking so it does not alias."""
    m = crop_matrix(window, size)
    scale = m[0, 0]
    img = frame.astype(np.float32)
    if scale > 1.5:
        img = ndimage.gaussian_filter(img, sigma=((scale - 1) / 2, (scale - 1) / 2, 0))
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    x = m[0, 0] * u + m[0, 2]
    y = m[1, 1] * v + m[1, 2]
    out = np.stack([ndimage.map_coordinates(img[..., c], [y, x], order=1, mode="nearest")
                    for c in range(3)], axis=-1)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def to_crop_coords(points: np.ndarray, window: np.ndarray, size: int) -> np.ndarray:
    """Source-frame points (…,2) into crop pixel coordinates."""
    m = crop_matrix(window, size)
    return ((points - m[:, 2]) / m[0, 0]).astype(np.float32)
