"""300VW on disk: ``<root>/NNN/vid.avi`` with ``<root>/NNN/annot/NNNNNN.pts`` (68 points, 1-based,
one file per frame, numbered from 000001). Test-only in the paper (30 videos); the ground-truth
landmarks are kept for landmark NME before/after deblurring."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FineNetError
from .clips import ClipSpec, tree_id
from .pts import read_pts
from .video import read_video


def list_videos(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/vid.avi") if p.parent.name.isdigit())


def plan(cfg: dict, seed: int) -> list[ClipSpec]:
    root = Path(cfg["root"]).expanduser()
    if not root.is_dir():
        raise FineNetError(root, "300VW root not found (data.vw300.root)")
    videos = list_videos(root)
    if not videos:
        raise FineNetError(root, "no 300VW videos (expected <root>/NNN/vid.avi)")
    rng = np.random.default_rng([seed, 300])
    chosen = sorted(rng.choice(len(videos), size=min(cfg["test_videos"], len(videos)), replace=False))
    return [ClipSpec(clip_id=tree_id("300vw", videos[i].parent.name), set="vw300_test", dataset="vw300",
                     source=str(videos[i]), length=cfg["frames_per_clip"]) for i in chosen]


def load(spec: ClipSpec, params: dict):
    frames, fps = read_video(spec.source, spec.start, spec.length)
    annot = Path(spec.source).parent / "annot"
    if not annot.is_dir():
        raise FineNetError(annot, "300VW annotation folder not found")
    gt = np.full((len(frames), 68, 2), np.nan, dtype=np.float32)
    for k in range(len(frames)):
        pts = annot / f"{spec.start + k + 1:06d}.pts"
        if pts.is_file():
            gt[k] = read_pts(pts)
    return frames, fps, gt
