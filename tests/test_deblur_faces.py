"""Every face (issue 15): ``finenet deblur --faces all`` tracks each face with its own ID
(``finenet.face.tracker``) and deblurs each track; ``--faces largest`` keeps the one-face
behaviour. Real clips built here: carphone beside its own mirror image shifted in time (two
faces, side by side), and two real faces sliding past each other (their boxes overlap where
they cross), found by dlib frame by frame."""

from __future__ import annotations

import numpy as np
import pytest

from finenet import deblur
from finenet.face.tracker import MIN_IOU, Tracker, iou
from finenet.video.stream import VideoSource, encode_frames
from test_deblur import reuse_detectors, small  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_torch_thread")   # conftest.py
from test_deblur_batch import planes


def box(cx, cy, side=50.0):
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])


# ------------------------------------------------------------------------------------ tracker

def test_iou():
    assert iou(box(0, 0)[None], box(0, 0)[None])[0, 0] == pytest.approx(1)
    assert iou(box(0, 0)[None], box(100, 0)[None])[0, 0] == 0
    assert iou(box(0, 0)[None], box(25, 0)[None])[0, 0] == pytest.approx(1 / 3)


def test_crossing_faces_keep_their_ids_and_never_merge():
    """Two faces moving towards each other 4 px a frame, 20 px apart vertically: where they cross
    a face's box overlaps the other's more than MIN_IOU; each keeps its ID through it, and in the
    frames where only one is detected the other is a miss, never given the same detection."""
    t = Tracker(max_gap=5)
    ids = {}
    for i in range(60):
        a, b = box(20 + 4 * i, 100), box(260 - 4 * i, 120)
        dets = [a, b] if not 28 <= i <= 31 else [a]           # b hidden behind a for 4 frames
        up = t.update(i, dets if i % 2 else dets[::-1])       # detection order does not matter
        assert not up.ended and len({id(v) for v in up.boxes.values() if v is not None}) == \
            sum(v is not None for v in up.boxes.values())
        for track, found in up.boxes.items():
            if found is not None:
                ids.setdefault(track, set()).add("a" if np.allclose(found, a) else "b")
        if 28 <= i <= 31:
            assert sum(v is None for v in up.boxes.values()) == 1
    assert ids == {0: {"a"}, 1: {"b"}}                       # left one first, and no swap
    assert iou(box(20 + 4 * 30, 100)[None], box(260 - 4 * 30, 120)[None])[0, 0] > MIN_IOU


def test_a_track_is_carried_through_short_misses_then_ends():
    t = Tracker(max_gap=2)
    assert t.update(0, [box(50, 50)]).started == [0]
    assert t.update(1, []).boxes == {0: None} and t.update(2, []).boxes == {0: None}
    up = t.update(3, [])
    assert up.ended == [0] and up.boxes == {}
    assert t.update(4, [box(50, 50)]).started == [1]        # a new face, a new ID
    assert t.finish() == [1]


def test_a_far_jump_starts_a_new_track():
    t = Tracker(max_gap=5)
    t.update(0, [box(50, 50)])
    up = t.update(1, [box(300, 50)])
    assert up.started == [1] and up.boxes[0] is None


# ----------------------------------------------------------------------------- real clips

@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory, carphone):
    """Carphone (frames 30-49) beside a mirror image of carphone frames 40-59: two real faces."""
    left, right = carphone[30:50], carphone[40:60, :, ::-1]
    frames = np.concatenate([left, right], axis=2)
    return encode_frames(tmp_path_factory.mktemp("two") / "two.mp4", frames, pix_fmt="yuv444p",
                         options={"qp": "0"}), frames


def changed(out, frames, x0, x1) -> np.ndarray:
    """Per frame: whether the output differs from the input within columns x0:x1."""
    return np.array([not np.array_equal(o[:, x0:x1], f[:, x0:x1]) for o, f in zip(out, frames)])


def rgb(path):
    video = VideoSource(path)
    out = [p.rgb for p in video]
    video.close()
    return np.stack(out)


def test_every_face_of_a_two_face_clip_is_tracked_and_deblurred(side_by_side, small, tmp_path):
    src, frames = side_by_side
    inp = rgb(src)
    width = frames.shape[2] // 2
    out_all = tmp_path / "all.mp4"
    summary = deblur.run(small["params"], src, out_all, small["models"], "cpu", progress=False, lossless=True)
    assert summary["faces"] == "all" and summary["frames"] == 20
    assert [(t["id"], t["first"], t["last"]) for t in summary["tracks"]] == [(0, 0, 19), (1, 0, 19)]
    assert summary["deblurred"] == 20 and summary["faces_deblurred"] == 40
    out = rgb(out_all)
    assert changed(out, inp, 0, width).all() and changed(out, inp, width, 2 * width).all()

    out_one = tmp_path / "largest.mp4"
    one = deblur.run(small["params"], src, out_one, small["models"], "cpu", progress=False, lossless=True,
                     faces="largest")
    assert one["faces"] == "largest" and len(one["tracks"]) == 1 and one["faces_deblurred"] == 20
    single = rgb(out_one)
    sides = [changed(single, inp, 0, width).all(), changed(single, inp, width, 2 * width).any()]
    assert sorted(sides) == [False, True]                    # one face deblurred, the other untouched


def test_each_face_alone_is_deblurred_as_in_the_two_face_clip(side_by_side, small, tmp_path):
    """Where two faces' crops do not overlap, a face's pixels come out as they do with that face
    alone in the frame (the other half blanked): the tracks do not mix."""
    src, frames = side_by_side
    width = frames.shape[2] // 2
    alone = frames.copy()
    alone[:, :, width:] = 0
    alone_src = encode_frames(tmp_path / "alone.mp4", alone, pix_fmt="yuv444p", options={"qp": "0"})
    deblur.run(small["params"], src, tmp_path / "two.mp4", small["models"], "cpu", progress=False, lossless=True)
    deblur.run(small["params"], alone_src, tmp_path / "one.mp4", small["models"], "cpu", progress=False,
               lossless=True)
    two, one = rgb(tmp_path / "two.mp4"), rgb(tmp_path / "one.mp4")
    margin = 24                                               # the feathered crop edge near the middle
    assert np.array_equal(two[:, :, :width - margin], one[:, :, :width - margin])


@pytest.fixture(scope="module")
def crossing(carphone):
    """Two real faces (carphone and its mirror image, 110 px windows) sliding past each other at
    14 px a frame each, 30 px apart vertically, the second drawn over the first: where they cross,
    dlib finds only one face for 5 frames, and the hidden one comes out on the other side."""
    face = carphone[30:60, 10:120, 40:150]
    speed, dy = 14, 30
    frames = np.full((30, 130 + dy, 10 + speed * 29 + 120, 3), 128, np.uint8)
    centres = []
    for i in range(30):
        xa, xb = 10 + speed * i, 10 + speed * 29 - speed * i
        frames[i, 10:120, xa:xa + 110] = face[i]
        frames[i, 10 + dy:120 + dy, xb:xb + 110] = face[29 - i, :, ::-1]
        centres.append(((xa + 55, 65), (xb + 55, 65 + dy)))
    return frames, np.array(centres, np.float64)


def test_two_real_faces_crossing_keep_their_ids(crossing, detector):
    """Each track's detections stay on its own face through the crossing: no swap, no merge, and
    the hidden face is carried through its misses rather than given a new ID."""
    frames, centres = crossing
    tracker = Tracker(deblur.tracking.MAX_GAP)
    seen, counts = {}, []
    for i, frame in enumerate(frames):
        found = detector.detect_faces(frame)
        counts.append(len(found))
        update = tracker.update(i, found)
        for track, got in update.boxes.items():
            if got is not None:
                centre = (got[:2] + got[2:]) / 2
                seen.setdefault(track, []).append(int(np.argmin(np.hypot(*(centres[i] - centre).T))))
    assert 1 in counts and counts[0] == counts[-1] == 2          # one face hidden for a while
    assert {k: set(v) for k, v in seen.items()} == {0: {0}, 1: {1}}, \
        {k: "".join(map(str, v)) for k, v in seen.items()}
