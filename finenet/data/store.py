"""Per-clip files between stages (compressed ``.npz``, written atomically) and their paths."""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import FineNetError

DATA = Path("data")
CLIPS = DATA / "clips"        # sample: sharp face crops
BLURRED = DATA / "blurred"    # blur: blurry crops and the kernels used
SHARDS = DATA / "h5"          # heatmaps: one HDF5 shard per clip
SETS_DIR = DATA / "sets"          # pack: one HDF5 per set, a group per clip (external links)
FIT_SETS = ("train", "val")   # the sets training reads (fit, and pick the checkpoint); the others are test sets


def set_file(name: str) -> Path:
    return SETS_DIR / f"{name}.h5"


def clip_path(clip_id: str) -> Path:
    return CLIPS / f"{clip_id}.npz"


def blurred_path(clip_id: str) -> Path:
    return BLURRED / f"{clip_id}.npz"


def shard_path(clip_id: str) -> Path:
    return SHARDS / f"{clip_id}.h5"


def save_npz(path, meta: dict, **arrays) -> None:
    """Like ``np.savez_compressed`` but byte-identical across runs (fixed zip timestamps), so DVC
    and Snakemake runs of the same stage give the same file."""
    arrays = {"meta": np.array(json.dumps(meta, sort_keys=True)), **arrays}
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)


def load_npz(path) -> tuple[dict, dict]:
    path = Path(path)
    if not path.is_file():
        raise FineNetError(path, "missing: run the stage that makes it first")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k != "meta"}
            meta = json.loads(str(z["meta"]))
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        # a truncated or bit-flipped .npz: zipfile's own errors (a bad CRC, not a zip file) too
        raise FineNetError(path, f"unreadable clip file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}): "
                                 f"delete it and re-run the stage that makes it") from None
    return meta, arrays
