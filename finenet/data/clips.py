"""What a clip is, and the plan: every clip the parameters ask for, from every enabled dataset."""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import FineNetError


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


MAX_ID = 100        # characters of a clip id: it is a file stem (``<id>.h5``, ``<id>.npz``), < 255 bytes


def safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")


def tree_id(prefix: str, *parts: str, sep: str = "_") -> str:
    """A clip id from names found in a user's dataset tree (folder and file names are data).

    ``prefix``, then the parts joined by ``sep``, each part reduced to letters, digits, ``_`` and
    ``-`` (``safe_id``), so the id is one path component that cannot leave the output folders
    (``..``, ``/``, NUL, spaces, unicode all go). Where that changed a part, or the id would pass
    ``MAX_ID`` characters, 10 hex digits of a SHA-1 of the original names are appended (the readable
    part cut to fit), so two names that differ only in such characters stay two clips. Names already
    made of those characters keep the plain id (``vox_id00012_21Uxsk56VDQ_00001``)."""
    plain = [safe_id(part) for part in parts]
    readable = f"{prefix}_" + sep.join(p for p in plain if p)
    if plain == list(parts) and len(readable) <= MAX_ID:
        return readable
    digest = hashlib.sha1("\0".join(parts).encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return f"{readable[:MAX_ID - 11].rstrip('_-')}-{digest}"


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
    return check_unique(clips)


def check_unique(clips: list[ClipSpec]) -> list[ClipSpec]:
    """``clips``, if no two share an id (two names ``tree_id`` reduced alike); else one line."""
    counts = Counter(c.clip_id for c in clips)
    dupes = [c for c in clips if counts[c.clip_id] > 1]
    if dupes:
        first = [c.source for c in dupes if c.clip_id == dupes[0].clip_id]
        raise FineNetError(first[0], f"its clip id {dupes[0].clip_id!r} is also that of {first[1]} "
                                     f"({len({c.clip_id for c in dupes})} such ids): rename one")
    return clips


# --- the plan file: the plan listed once, read by every per-clip job -------------------------------

def plan_file(profile: str) -> Path:
    """Where Snakemake writes the plan it lists at parse time, for its per-clip jobs (``--plan``):
    at paper scale a listing of the VoxCeleb2 tree takes minutes, once instead of once per job."""
    return Path("build") / f"plan-{profile}.json"


def plan_key(params: dict) -> str:
    """A digest of what a plan is made from (the ``data`` section and the seed)."""
    made_of = json.dumps({"data": params["data"], "seed": params["seed"]}, sort_keys=True, default=str)
    return hashlib.sha256(made_of.encode()).hexdigest()


def write_plan(clips: list[ClipSpec], params: dict, path) -> Path:
    """Write the plan to ``path`` (atomically), unless it already holds exactly this plan."""
    path = Path(path)
    text = json.dumps({"key": plan_key(params), "clips": [c.to_dict() for c in clips]}, indent=0) + "\n"
    if not (path.is_file() and path.read_text() == text):
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return path


def read_plan(path, params: dict) -> list[ClipSpec]:
    """The plan in ``path``, if it was made from these parameters; else one line."""
    path = Path(path)
    try:
        plan = json.loads(path.read_text())
        clips = [ClipSpec(**c) for c in plan["clips"]]
        key = plan["key"]
    except FileNotFoundError:
        raise FineNetError(path, "plan file not found (Snakemake writes it when it reads the "
                                 "Snakefile; without --plan a stage lists the datasets itself)") from None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise FineNetError(path, f"unreadable plan file ({type(exc).__name__}: {exc}): delete it and "
                                 f"re-run snakemake") from None
    if key != plan_key(params):
        raise FineNetError(path, "plan file made from other parameters (data section or seed): "
                                 "re-run snakemake, which rewrites it")
    return clips


def load_source(spec: ClipSpec, params: dict):
    """Frames (T,H,W,3) uint8, fps, and ground-truth landmarks (T,68,2) in frame pixels or None."""
    from . import embedded, voxceleb, vw300, youtube

    adapter = {"embedded": embedded, "voxceleb": voxceleb, "vw300": vw300, "youtube": youtube}
    return adapter[spec.dataset].load(spec, params)
