"""iBUG / 300-W / 300VW ``.pts`` landmark files: 68 points, 1-based pixel coordinates."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FineNetError


def parse_pts(text: str, where, n_points: int = 68) -> np.ndarray:
    """(n_points, 2) float32 in 0-based pixel coordinates."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    try:
        declared = next(int(ln.split(":")[1]) for ln in lines if ln.startswith("n_points"))
        body = lines[lines.index("{") + 1: lines.index("}")]
        pts = np.array([[float(v) for v in ln.split()[:2]] for ln in body], dtype=np.float32)
    except (StopIteration, ValueError, IndexError):
        raise FineNetError(where, "not a .pts file (expected 'n_points:' and a '{ … }' block of x y rows)") from None
    if body and pts.shape[1:] != (2,):
        raise FineNetError(where, f"expected 'x y' rows, found {pts.shape[-1]} value(s) per row")
    if declared != len(pts) or pts.shape != (n_points, 2):
        raise FineNetError(where, f"expected {n_points} points, found {len(pts)} (declared {declared})")
    return pts - 1.0


def read_pts(path, n_points: int = 68) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise FineNetError(path, "landmark file not found")
    return parse_pts(path.read_text(errors="replace"), path, n_points)
