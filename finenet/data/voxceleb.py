"""VoxCeleb2 on disk: ``<root>/{dev,test}/mp4/idNNNNN/<youtube_id>/NNNNN.mp4``.

Train clips are sampled from ``dev``, test clips from ``test`` (the paper: ~1300 and 130 videos),
validation clips from the ``dev`` videos of identities no training video shows (``val_videos``),
deterministically given the seed, with the listing sorted so the sample does not depend on the
filesystem's order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FineNetError
from .clips import ClipSpec, tree_id
from .video import read_video


def list_videos(root: Path, part: str) -> list[Path]:
    base = root / part / "mp4"
    if not base.is_dir():
        raise FineNetError(base, f"VoxCeleb2 '{part}' split not found (expected "
                                 f"<root>/{part}/mp4/idNNNNN/<youtube_id>/NNNNN.mp4)")
    return sorted(base.glob("id*/*/*.mp4"))


def plan(cfg: dict, seed: int) -> list[ClipSpec]:
    root = Path(cfg["root"]).expanduser()
    if not root.is_dir():
        raise FineNetError(root, "VoxCeleb2 root not found (data.voxceleb.root)")
    clips = []
    train_ids: set[str] = set()
    listed: dict[str, list[Path]] = {}        # dev is read by train and val: listed once
    for part, count, set_name, salt in (("dev", cfg["train_videos"], "train", 0),
                                        ("dev", cfg["val_videos"], "val", 2),
                                        ("test", cfg["test_videos"], "voxceleb_test", 1)):
        if count == 0:
            continue
        if part not in listed:
            listed[part] = list_videos(root, part)
        videos = listed[part]
        if set_name == "val":          # identities disjoint from the training videos' (may be none:
            videos = [v for v in videos if v.parts[-3] not in train_ids]   # training then says so)
            if not videos:
                continue
        if not videos:
            raise FineNetError(root / part / "mp4", "no .mp4 videos in the VoxCeleb2 layout")
        rng = np.random.default_rng([seed, salt])
        chosen = sorted(rng.choice(len(videos), size=min(count, len(videos)), replace=False))
        for i in chosen:
            v = videos[i]
            ident, yt, utt = v.parts[-3], v.parts[-2], v.stem
            if set_name == "train":
                train_ids.add(ident)
            clips.append(ClipSpec(clip_id=tree_id("vox", ident, yt, utt), set=set_name,
                                  dataset="voxceleb", source=str(v),
                                  length=cfg["frames_per_clip"]))
    return clips


def load(spec: ClipSpec, params: dict):
    frames, fps = read_video(spec.source, spec.start, spec.length)
    return frames, fps, None
