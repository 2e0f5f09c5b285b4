"""``finenet deblur in.mp4 -o out.mp4 --compare side.mp4 [--labels "input,FineNet"]``: the
side-by-side comparison video, on real face video (carphone) with the small random-initialised
models of ``test_deblur`` (the combiner's +0.15 offset makes the face visibly change).

Checked: its size (2 x the padded width; + the label bar's height with labels), frame count and
rate; lossless (the default) its left half is the decoded input and its right half the decoded
main output, sample for sample (and in RGB within 1 level); labels change only the bar, each
label over its own half; an odd size is padded per half as the main output is; --crf makes it
lossy like the main output; a clip stored sideways (display matrix) gets an upright comparison;
a bad --compare / --labels is one line and leaves nothing; a run failing late, or in the last
rename, leaves neither video.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from finenet.deblur import compare as cmp
from finenet import deblur
from finenet.cli import main
from finenet.data.video import read_video
from finenet.video.stream import VideoSource, encode_frames

from test_deblur import odd_frames, probe, rendered_lines, reuse_detectors, small, temp_files  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_torch_thread")   # conftest.py

FRAMES = 8


def cli(src, out, small, capfd, *extra) -> tuple[int, list[str], str]:
    capfd.readouterr()
    rc = main(["deblur", str(src), "-o", str(out), "--checkpoint", str(small["models"]),
               "--params", str(small["params_file"]), "--preset", "ultrafast", *extra])
    err = capfd.readouterr().err
    return rc, rendered_lines(err), err


def pictures(path: Path) -> list:
    video = VideoSource(path)
    out = list(video)
    video.close()
    return out


@pytest.fixture(scope="module")
def clip(tmp_path_factory, carphone):
    return encode_frames(tmp_path_factory.mktemp("cmp") / "talk.mp4", carphone[30:30 + FRAMES])


@pytest.fixture(scope="module")
def compared(clip, small, tmp_path_factory, detector):
    """The clip through the CLI twice: --compare without labels, then with them."""
    root = tmp_path_factory.mktemp("compared")
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(deblur.model, "DlibDetector", lambda upsample=1: detector)
        for name, extra in (("plain", []), ("labelled", ["--labels", "input,FineNet"])):
            out, side = root / f"{name}.mp4", root / f"{name}_side.mp4"
            rc = main(["deblur", str(clip), "-o", str(out), "--compare", str(side), "--checkpoint",
                       str(small["models"]), "--params", str(small["params_file"]), *extra])
            assert rc == 0
            runs[name] = (out, side)
    assert temp_files(root) == []
    return runs


def test_size_frames_and_rate(compared, clip):
    src = probe(clip)
    bar = cmp.label_bar_height(144)
    assert bar == 16
    for name, (out, side) in compared.items():
        got = probe(side)
        assert got["frames"] == src["frames"] == FRAMES
        assert got["fps"] == src["fps"] == 25
        assert got["size"] == (2 * 176, 144 + (bar if name == "labelled" else 0)), (name, got)
        assert got["audio"] == []


def test_left_half_is_the_input_and_right_half_the_output(compared, clip):
    out, side = compared["plain"]
    inputs, outputs, sides = pictures(clip), pictures(out), pictures(side)
    assert len(inputs) == len(outputs) == len(sides) == FRAMES
    changed = 0
    for a, b, s in zip(inputs, outputs, sides):
        for k, (pa, pb, ps) in enumerate(zip(a.planes, b.planes, s.planes)):
            w = pa.shape[1]
            assert ps.shape == (pa.shape[0], 2 * w), (k, ps.shape)
            assert np.array_equal(ps[:, :w], pa), k                  # lossless: sample for sample
            assert np.array_equal(ps[:, w:], pb), k
        changed += not np.array_equal(a.planes[0], b.planes[0])
    assert changed == FRAMES                                     # the halves really differ
    # and as decoded to RGB by another decoder (decord): within 1 level, exact almost everywhere
    rgb_in, _ = read_video(clip)
    rgb_out, _ = read_video(out)
    rgb_side, _ = read_video(side)
    left = np.abs(rgb_side[:, :, :176].astype(int) - rgb_in)
    right = np.abs(rgb_side[:, :, 176:].astype(int) - rgb_out)
    assert left.max() <= 1 and right.max() <= 1, (left.max(), right.max())
    assert (left == 0).mean() > 0.99 and (right == 0).mean() > 0.99


def test_labels_change_only_the_bar(compared):
    plain, labelled = pictures(compared["plain"][1]), pictures(compared["labelled"][1])
    bar = cmp.label_bar_height(144)
    for p, q in zip(plain, labelled):
        assert np.array_equal(q.planes[0][bar:], p.planes[0])
        for k in (1, 2):                                          # 4:2:0: bar / 2 chroma rows
            assert np.array_equal(q.planes[k][bar // 2:], p.planes[k])
    luma = labelled[0].planes[0][:bar]
    assert np.array_equal(labelled[-1].planes[0][:bar], luma)      # the same bar on every frame
    for half in (luma[:, :176], luma[:, 176:]):                   # white text on black, each half
        assert half.max() > 200 and np.median(half) < 20, (half.max(), np.median(half))


def test_each_label_is_drawn_over_its_own_half():
    only_left, only_right = cmp.label_bar(("input", ""), 176, 16), cmp.label_bar(("", "FineNet"), 176, 16)
    assert only_left.shape == (16, 352, 3)
    assert only_left[:, :176].max() == 255 and only_left[:, 176:].max() == 0
    assert only_right[:, :176].max() == 0 and only_right[:, 176:].max() == 255
    cols = np.flatnonzero(only_left.max((0, 2)) > 128)
    assert abs((cols.min() + cols.max()) / 2 - 88) <= 3            # centred over its half
    long = cmp.label_bar(("a label far too long for a half this narrow", ""), 40, 16)
    assert long[:, :40].max() > 100 and long[:, 40:].max() == 0    # shrunk, cut at its half
    assert np.array_equal(cmp.label_bar(("input", "FineNet"), 176, 16),
                          cmp.label_bar(("input", "FineNet"), 176, 16))    # deterministic


def test_odd_size_pads_each_half_and_crf_is_followed(tmp_path, carphone, small, capfd):
    video = encode_frames(tmp_path / "odd.mkv", odd_frames(carphone)[:4], "ffv1")
    out, side = tmp_path / "odd_sharp.mkv", tmp_path / "odd_side.mp4"
    rc, lines, err = cli(video, out, small, capfd, "--compare", str(side), "--crf", "24")
    assert rc == 0 and "Traceback" not in err
    assert len(lines) == 1 and "177x143 padded to 178x144" in lines[0], lines   # the main's note
    assert probe(side)["size"] == (2 * 178, 144) and probe(side)["frames"] == 4
    inputs, sides = pictures(video), pictures(side)
    for a, s in zip(inputs, sides):
        y, left = a.planes[0].astype(int), s.planes[0][:, :178].astype(int)
        diff = np.abs(left[:143, :177] - y)
        assert 0 < diff.max() and diff.mean() < 3, (diff.max(), diff.mean())   # CRF 24: lossy
        assert np.abs(left[:, 177] - left[:, 176]).mean() < 3        # the repeated column ...
        assert np.abs(left[143] - left[142]).mean() < 3              # ... and row


def test_a_clip_stored_sideways_gets_an_upright_comparison(tmp_path, carphone, small, capfd):
    upright = np.ascontiguousarray(carphone[40:44, :, 16:124])       # portrait 108x144
    stored = np.stack([np.rot90(f, -1) for f in upright])            # stored 144 wide, 108 high
    src = encode_frames(tmp_path / "phone.mp4", stored, display_rotation=90, options={"qp": "0"})
    out, side = tmp_path / "phone_sharp.mp4", tmp_path / "phone_side.mp4"
    rc, lines, err = cli(src, out, small, capfd, "--compare", str(side), "--labels", "in,out")
    assert rc == 0 and lines == [], lines
    shown_in, shown_out, shown_side = ([p.rgb for p in pictures(f)] for f in (src, out, side))
    bar = cmp.label_bar_height(144)
    assert shown_in[0].shape == (144, 108, 3)
    assert [s.shape for s in shown_side] == [(bar + 144, 216, 3)] * 4   # upright, side by side
    for a, b, s in zip(shown_in, shown_out, shown_side):
        assert np.abs(s[bar:, :108].astype(int) - a).max() <= 1
        assert np.abs(s[bar:, 108:].astype(int) - b).max() <= 1
        assert s[:bar].max() > 200 and np.median(s[:bar]) < 20     # the bar on top, as shown


# ------------------------------------------------------------------------------- bad input

def _bad(kind: str, tmp: Path, good: Path) -> tuple[list[str], str, str]:
    """(extra arguments, the -o path, fragment of the one error line)."""
    out = str(tmp / "res" / "sharp.mp4")
    if kind == "same_as_output":
        return ["--compare", out], out, f"{out}: --compare names the output (-o)"
    if kind == "same_as_output_other_spelling":
        alias = str(tmp / "res" / ".." / "res" / "sharp.mp4")
        return ["--compare", alias], out, f"{alias}: --compare names the output (-o)"
    if kind == "same_as_input":
        return ["--compare", str(good)], out, f"{good}: --compare names the input"
    if kind == "folder":
        (tmp / "cmpdir.mp4").mkdir()
        return ["--compare", str(tmp / "cmpdir.mp4")], out, f"{tmp / 'cmpdir.mp4'}: is a folder"
    if kind == "parent_is_a_file":
        (tmp / "afile").write_text("x")
        return (["--compare", str(tmp / "afile" / "side.mp4")], out,
                f"{tmp / 'afile'}: output folder cannot be made")
    if kind == "read_only_folder":
        (tmp / "locked").mkdir(mode=0o555)
        return (["--compare", str(tmp / "locked" / "side.mp4")], out,
                f"{tmp / 'locked'}: output folder is not writable")
    if kind == "bad_container":
        return ["--compare", str(tmp / "side.avi")], out, f"{tmp / 'side.avi'}: unsupported output container"
    if kind == "labels_without_compare":
        return ["--labels", "a,b"], out, "--labels: only with --compare"
    if kind == "one_label":
        return (["--compare", str(tmp / "side.mp4"), "--labels", "input"], out,
                "--labels: needs two comma-separated labels")
    raise AssertionError(kind)


BAD = ["same_as_output", "same_as_output_other_spelling", "same_as_input", "folder",
       "parent_is_a_file", "read_only_folder", "bad_container", "labels_without_compare",
       "one_label"]


@pytest.mark.parametrize("kind", BAD)
def test_a_bad_compare_is_one_line_and_leaves_nothing(kind, tmp_path, carphone, small, capfd):
    if kind == "read_only_folder" and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    good = encode_frames(tmp_path / "good.mp4", carphone[:4])
    extra, out, fragment = _bad(kind, tmp_path, good)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    rc, lines, err = cli(good, out, small, capfd, *extra)
    assert "Traceback" not in err
    assert rc == 2 and len(lines) == 1, lines
    assert lines[0].startswith("finenet: ") and fragment in lines[0], (fragment, lines[0])
    assert sorted(p.name for p in tmp_path.rglob("*")) == before     # nothing made, nothing gone


def test_a_run_failing_late_leaves_neither_video(tmp_path, small, capfd):
    wall = encode_frames(tmp_path / "wall.mp4", np.full((8, 144, 176, 3), 128, np.uint8))
    out, side = tmp_path / "res" / "sharp.mp4", tmp_path / "res" / "side.mp4"
    rc, lines, _ = cli(wall, out, small, capfd, "--compare", str(side), "--labels", "a,b")
    assert rc == 2 and lines == [f"finenet: {wall}: no face detected in any of the 8 frames"], lines
    assert not out.exists() and not side.exists() and temp_files(tmp_path) == []


def test_a_failed_last_rename_takes_the_comparison_video_back(tmp_path, monkeypatch):
    """``temp_outputs`` renames the comparison video first; if the main output's rename then
    fails, the comparison video is deleted again, and the error goes on."""
    out, side = tmp_path / "sharp.mp4", tmp_path / "side.mp4"
    replace = os.replace

    def failing(a, b):
        if Path(b) == out:
            raise OSError(28, "No space left on device")
        return replace(a, b)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="No space"):
        with cmp.temp_outputs(out, side) as (tmp, side_tmp):
            tmp.write_bytes(b"main")
            side_tmp.write_bytes(b"side")
    assert sorted(os.listdir(tmp_path)) == []
    monkeypatch.undo()
    with cmp.temp_outputs(out, side) as (tmp, side_tmp):      # and when all goes well: both
        tmp.write_bytes(b"main")
        side_tmp.write_bytes(b"side")
    assert out.read_bytes() == b"main" and side.read_bytes() == b"side"
    assert sorted(os.listdir(tmp_path)) == ["sharp.mp4", "side.mp4"]
