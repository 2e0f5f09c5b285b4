"""What a clip is, and the plan: every clip the parameters ask for, from every enabled dataset."""

from __future__ import annotations

import re
import zlib
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ClipSpec:
    clip_id: str          # unique, filesystem-safe: used as file stem and HDF5 group name
    set: str              # train | val | voxceleb_test | vw300_test | youtube | embedded_test | embedded_realblur
    dataset: str          # voxceleb | vw300 | youtube | embedded
    source: str           # a video path, or an embedded source id
    start: int = 0        # first frame used
    length: int | None = None  # number of frames (None: to the end)
    variant: int = 0      # motion variant for clips made from stills
    has_gt: bool = True   # False for real blur: no sharp ground truth, no synthetic blur

    def to_dict(self) -> dict:
        return asdict(self)


def safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")


def clip_rng(seed: int, clip_id: str, purpose: str) -> np.random.Generator:
    """A generator that depends only on (seed, clip, purpose): the same clip gets the same draws
    whichever process, shard or order computes it."""
    return np.random.default_rng([seed, zlib.crc32(clip_id.encode()), zlib.crc32(purpose.encode())])


def plan_clips(params: dict) -> list[ClipSpec]:
    """All clips of the run, in a stable order. Reads directory listings only (cheap)."""
    from . import embedded, voxceleb, vw300, youtube

    d, seed = params["data"], params["seed"]
    clips: list[ClipSpec] = []
    if d["embedded"]["enabled"]:
        clips += embedded.plan(d["embedded"])
    if d["voxceleb"]["root"]:
        clips += voxceleb.plan(d["voxceleb"], seed)
    if d["vw300"]["root"]:
        clips += vw300.plan(d["vw300"], seed)
    if d["youtube"]["root"]:
        clips += youtube.plan(d["youtube"])
    ids = [c.clip_id for c in clips]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"clip ids are not unique: {dupes[:5]}")
    return clips


def clips_by_id(params: dict) -> dict[str, ClipSpec]:
    return {c.clip_id: c for c in plan_clips(params)}


def load_source(spec: ClipSpec, params: dict):
    """Frames (T,H,W,3) uint8, fps, and ground-truth landmarks (T,68,2) in frame pixels or None."""
    from . import embedded, voxceleb, vw300, youtube

    adapter = {"embedded": embedded, "voxceleb": voxceleb, "vw300": vw300, "youtube": youtube}
    return adapter[spec.dataset].load(spec, params)
