"""Stage ``pack``: one HDF5 file per set (``data/sets/<set>.h5``) holding a group per clip.

The groups are HDF5 external links to the per-clip shards, so packing copies no pixels (at paper
scale the shards are ~100 GB) and a set opens as one file. Also writes the clip manifest
(``data/sets/manifest.csv``), the data summary metrics (``reports/data_summary.json``) and a
picture of what the data looks like (``reports/figures/data_preview.png``).
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from tqdm import tqdm

from ..atomic import atomic_dir, atomic_path
from ..data.store import SETS_DIR, shard_path
from ..errors import FineNetError
from .clip_loop import select_clips

REPORTS = Path("reports")
SUMMARY = REPORTS / "data_summary.json"
PREVIEW = REPORTS / "figures" / "data_preview.png"


def check_chunk_index(ds) -> None:
    """Every chunk of a chunked dataset is in its index, where it belongs. A damaged index entry
    (a flipped bit in a chunk's coordinates) makes HDF5 read that chunk as the fill value, zeros,
    without a word: an index that does not cover the dataset's chunk grid exactly is an error."""
    if ds.chunks is None:
        return
    grid = set(itertools.product(*(range(0, n, c) for n, c in zip(ds.shape, ds.chunks))))
    found = {ds.id.get_chunk_info(i).chunk_offset for i in range(ds.id.get_num_chunks())}
    if found != grid:
        raise ValueError(f"dataset {ds.name}: its chunk index does not cover the data "
                         f"({len(grid - found)} of {len(grid)} chunks missing)")


def read_through(group, block: int = 16) -> None:
    """Read every dataset of ``group`` to its end, ``block`` frames at a time.

    The shards' chunks are deflate-compressed, and zlib checks each one's Adler-32 when it
    inflates it, so a flipped bit or a torn write inside the pixel data fails here, at packing
    time, instead of in a training run hours later; a damaged chunk index too
    (``check_chunk_index``)."""
    for ds in group.values():
        if not isinstance(ds, h5py.Dataset):
            continue
        check_chunk_index(ds)
        if not ds.shape:
            ds[()]
            continue
        for start in range(0, max(len(ds), 1), block):
            ds[start:start + block]


def shard_row(spec) -> dict:
    """The clip's manifest row, read from its shard after reading every dataset through
    (``read_through``); a shard HDF5 cannot read (truncated, damaged) is one line naming it."""
    path = shard_path(spec.clip_id)
    try:
        with h5py.File(path, "r") as shard:
            read_through(shard[spec.clip_id])
            return clip_row(spec, shard[spec.clip_id])
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        problem = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise FineNetError(path, f"unreadable HDF5 shard ({problem}): delete it and re-run the "
                                 f"heatmaps stage (dvc repro)") from None


def clip_row(spec, group) -> dict:
    status = group["status"][:]
    kernel = group["kernel"][:, 0]
    row = dict(clip_id=spec.clip_id, set=spec.set, dataset=spec.dataset, source=spec.source,
               frames=int(len(status)), has_gt=spec.has_gt,
               detected_blurry=float(np.mean(status == 0)),
               carried_blurry=float(np.mean(status == 1)),
               prior_blurry=float(np.mean(status == 2)),
               sharp_frames=float(np.mean(kernel == 1)) if spec.has_gt else float("nan"),
               mean_kernel=float(kernel[kernel > 1].mean()) if (kernel > 1).any() else 0.0)
    if "status_sharp" in group:
        row["detected_sharp"] = float(np.mean(group["status_sharp"][:] == 0))
    return row


def preview(groups: list, path: Path, n: int = 4) -> None:
    """Rows of clips: sharp | blurry | blurry + heatmaps (sum over the 68 channels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.transform import resize

    fig, axes = plt.subplots(len(groups), 3, figsize=(6, 2 * len(groups)), squeeze=False)
    for row, (name, g) in zip(axes, groups):
        t = len(g["blurry"]) // 2
        blurry = g["blurry"][t]
        sharp = g["sharp"][t] if "sharp" in g else np.zeros_like(blurry)
        heat = resize(g["heatmaps"][t].max(0).astype(np.float32) / 255, blurry.shape[:2], order=1)
        overlay = (0.6 * blurry / 255 + 0.4 * plt.cm.magma(heat)[..., :3]).clip(0, 1)
        k = g["kernel"][t]
        for ax, img, title in zip(row, (sharp, blurry, overlay),
                                  ("sharp" if "sharp" in g else "(no ground truth)",
                                   f"blurry k={int(k[0])}", "landmark heatmaps")):
            ax.imshow(img)
            ax.set_title(title, fontsize=7)
            ax.axis("off")
        row[0].set_ylabel(name, fontsize=6)
        row[0].text(0, -0.1, name, fontsize=6, transform=row[0].transAxes, va="top")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def run(params: dict, clip_ids=None) -> None:
    clips = select_clips(params, None)
    rows = []
    with atomic_dir(SETS_DIR) as tmp:
        for set_name in sorted({c.set for c in clips}):
            with h5py.File(tmp / f"{set_name}.h5", "w") as f:
                f.attrs["set"] = set_name
                members = [c for c in clips if c.set == set_name]
                for spec in tqdm(members, desc=f"pack {set_name}", unit="clip", disable=len(members) < 2):
                    rel = os.path.relpath(shard_path(spec.clip_id), SETS_DIR)
                    f[spec.clip_id] = h5py.ExternalLink(rel, f"/{spec.clip_id}")
                    rows.append(shard_row(spec))
        table = pd.DataFrame(rows)
        table.to_csv(tmp / "manifest.csv", index=False)
    summary = {"clips": len(table), "frames": int(table.frames.sum())}
    for set_name, part in table.groupby("set"):
        summary[set_name] = {"clips": int(len(part)), "frames": int(part.frames.sum()),
                             "detected_blurry": round(float(np.average(part.detected_blurry, weights=part.frames)), 4)}
        if part.has_gt.all():
            summary[set_name]["sharp_frames"] = round(float(np.average(part.sharp_frames, weights=part.frames)), 4)
            summary[set_name]["detected_sharp"] = round(float(np.average(part.detected_sharp, weights=part.frames)), 4)
    with atomic_path(SUMMARY) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    shown = [c for c in clips][:: max(1, len(clips) // 6)][:6]
    files = [h5py.File(shard_path(c.clip_id), "r") for c in shown]
    try:
        preview([(c.clip_id, f[c.clip_id]) for c, f in zip(shown, files)], PREVIEW)
    finally:
        for f in files:
            f.close()


if __name__ == "__main__":
    import sys

    from ..cli import main

    sys.exit(main(["pack", *sys.argv[1:]]))
