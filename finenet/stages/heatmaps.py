"""Stage ``heatmaps``: 68-point landmarks on the blurry frames (what the model sees at test time)
and on the sharp frames (oracle landmarks for Table 3), rendered to 68-channel Gaussian heatmaps,
stored with the frames in one HDF5 shard per clip: ``data/h5/<clip>.h5``, group ``/<clip>``.

When no face is detected on a frame, the box of the nearest frame that had one is carried over and
the landmarks are fitted inside it; if no frame of the clip had one, the crop's own face window
(the face is centred by construction) is used. ``status`` records which: 0 detected, 1 carried,
2 crop prior.
"""

from __future__ import annotations

import h5py
import numpy as np
from tqdm import tqdm

from ..atomic import atomic_path
from ..data.clips import ClipSpec
from ..data.store import blurred_path, clip_path, load_npz, shard_path
from ..face.detectors import make_detector
from ..face.heatmap import render_heatmaps
from .clip_loop import for_each_clip, select_clips

DETECTED, CARRIED, PRIOR = 0, 1, 2
STATUS_MEANING = "0 detected, 1 box carried from the nearest detected frame, 2 crop prior box"


def fit_landmarks(frames: np.ndarray, detector, prior_box: np.ndarray, desc: str):
    """Landmarks (T,68,2) and status (T,) for every frame, with gaps filled as described above."""
    n = len(frames)
    centre = (prior_box[:2] + prior_box[2:]) / 2
    boxes: list = [None] * n
    for t in tqdm(range(n), desc=desc, unit="frame", leave=False):
        found = detector.detect_faces(frames[t])
        if found:
            boxes[t] = min(found, key=lambda b: np.linalg.norm((b[:2] + b[2:]) / 2 - centre))
    hits = np.array([b is not None for b in boxes])
    status = np.where(hits, DETECTED, CARRIED if hits.any() else PRIOR).astype(np.uint8)
    hit_idx = np.flatnonzero(hits)
    points = np.empty((n, 68, 2), dtype=np.float32)
    for t in range(n):
        box = boxes[t]
        if box is None:
            box = boxes[hit_idx[np.argmin(np.abs(hit_idx - t))]] if hits.any() else prior_box
        points[t] = detector.landmarks(frames[t], box)
    return points, status


def write_shard(path, spec: ClipSpec, meta: dict, datasets: dict, attrs: dict) -> None:
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        g = f.create_group(spec.clip_id)
        for key, value in {**meta, **attrs}.items():
            g.attrs[key] = "" if value is None else value
        for name, arr in datasets.items():
            chunks = (1,) + arr.shape[1:] if arr.ndim > 1 else None
            g.create_dataset(name, data=arr, chunks=chunks, compression="gzip", compression_opts=4,
                             shuffle=True, track_times=False)


def heatmap_clip(spec: ClipSpec, params: dict, detector) -> None:
    lm, crop = params["landmarks"], params["data"]["crop_size"]
    meta, sharp = load_npz(clip_path(spec.clip_id))
    _, blurred = load_npz(blurred_path(spec.clip_id))
    half = crop / params["data"]["crop_margin"] / 2
    prior = np.array([crop / 2 - half, crop / 2 - half, crop / 2 + half, crop / 2 + half], np.float32)
    render = lambda pts: render_heatmaps(pts, crop, lm["heatmap_size"], lm["sigma"])  # noqa: E731

    points, status = fit_landmarks(blurred["blurry"], detector, prior, f"landmarks {spec.clip_id}")
    out = dict(blurry=blurred["blurry"], kernel=blurred["kernel"], landmarks=points, status=status,
               heatmaps=render(points))
    if spec.has_gt:
        sp, ss = fit_landmarks(sharp["frames"], detector, prior, f"oracle {spec.clip_id}")
        out.update(sharp=sharp["frames"], landmarks_sharp=sp, status_sharp=ss, heatmaps_sharp=render(sp))
    if "landmarks_gt" in sharp:
        out["landmarks_gt"] = sharp["landmarks_gt"]
    attrs = dict(crop_size=crop, heatmap_size=lm["heatmap_size"], sigma=lm["sigma"],
                 detector=lm["detector"], status_meaning=STATUS_MEANING)
    write_shard(shard_path(spec.clip_id), spec, {k: v for k, v in meta.items()
                                                if not isinstance(v, list)}, out, attrs)


def run(params: dict, clip_ids=None, plan=None) -> None:
    clips = select_clips(params, clip_ids, plan)
    lm = params["landmarks"]
    detector = make_detector(lm["detector"], lm["upsample"], lm["device"])
    for_each_clip("heatmaps", clips, lambda spec: heatmap_clip(spec, params, detector))


if __name__ == "__main__":
    import sys

    from ..cli import main

    sys.exit(main(["heatmaps", *sys.argv[1:]]))
