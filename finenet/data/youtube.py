"""Real blurry videos (the paper's 100 YouTube videos): any video files under a folder, no ground
truth. They skip synthetic blur and are evaluated with no-reference measures."""

from __future__ import annotations

from pathlib import Path

from ..errors import FineNetError
from .clips import ClipSpec, tree_id
from .video import VIDEO_SUFFIXES, read_video


def plan(cfg: dict) -> list[ClipSpec]:
    root = Path(cfg["root"]).expanduser()
    if not root.is_dir():
        raise FineNetError(root, "real-blur video folder not found (data.youtube.root)")
    videos = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise FineNetError(root, f"no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) in the real-blur folder")
    return [ClipSpec(clip_id=tree_id("yt", *v.relative_to(root).with_suffix('').parts, sep="-"), set="youtube",
                     dataset="youtube", source=str(v), length=cfg["frames_per_clip"], has_gt=False)
            for v in videos]


def load(spec: ClipSpec, params: dict):
    frames, fps = read_video(spec.source, spec.start, spec.length)
    return frames, fps, None
