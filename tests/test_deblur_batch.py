"""Batch use of ``finenet deblur``: a folder of videos (``finenet deblur DIR -o OUTDIR``) and
window batching (``--batch N``), on real face video (carphone) with the small random-initialised
models of ``test_deblur``.

Checked, folder mode: every video of the folder (sorted; subfolders and hidden files left alone,
other files skipped with a note) is deblurred into OUTDIR under its own name, or <stem>.mp4 where
its container cannot be written, and its comparison video into the --compare folder; the model and
detectors are loaded once; a bad video fails alone, with its reason, in the printed summary and in
OUTDIR/deblur_summary.json, and the run ends with the one line ``finenet: DIR: N of M files
failed (see ...)`` and exit status 2 (0 when none failed); a video comes out as a single-file run
makes it; an OUTDIR that would overwrite the inputs (and other bad folders) is one line, nothing
made.

Window batching: ``restore`` sends N consecutive windows per model call, flushing at a frame that
passes through and at the end, in frame order, holding at most N-1 windows; --batch 4 gives the
same video as --batch 1 (measured: identical, every sample); a bad --batch is one line.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from finenet import deblur
from finenet.cli import main
from finenet.video.stream import VideoSource, encode_frames

from test_deblur import rendered_lines, reuse_detectors, small, temp_files  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_torch_thread")   # conftest.py


def args(small) -> list[str]:
    return ["--checkpoint", str(small["models"]), "--params", str(small["params_file"]),
            "--preset", "ultrafast"]


def planes(path: Path) -> list:
    video = VideoSource(path)
    out = [p.planes for p in video]
    video.close()
    return out


def same_video(a: Path, b: Path) -> bool:
    pa, pb = planes(a), planes(b)
    return len(pa) == len(pb) and all(np.array_equal(x, y) for p, q in zip(pa, pb)
                                      for x, y in zip(p, q))


def listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


# ------------------------------------------------------------------------------ folder mode

@pytest.fixture(scope="module")
def folder(tmp_path_factory, carphone):
    """Two good videos (one .avi), one without a face, one that is not a video, a pair whose
    outputs would share a name, a text file, a hidden file, a subfolder."""
    root = tmp_path_factory.mktemp("batch") / "videos"
    encode_frames(root / "a.mp4", carphone[30:36])
    encode_frames(root / "b.avi", carphone[60:66], "mpeg4", options={"qscale": "2"})
    encode_frames(root / "c.mp4", np.full((6, 144, 176, 3), 128, np.uint8))
    (root / "d.mkv").write_text("not a video\n" * 50)
    (root / "x.mp4").write_text("not a video either\n" * 50)
    (root / "x.webm").write_text("nor this\n" * 50)           # would also become x.mp4
    (root / "notes.txt").write_text("a, b\n")
    (root / ".hidden.mp4").write_text("a stray temporary file\n")
    encode_frames(root / "sub" / "e.mp4", carphone[:4])        # subfolders are not searched
    return root


@pytest.fixture(scope="module")
def folder_run(folder, small, detector, tmp_path_factory):
    """``finenet deblur videos -o out --compare side`` with model / detector loads counted:
    (exit status, stdout, stderr lines, raw stderr, out, side, loads)."""
    base = tmp_path_factory.mktemp("batch_out")
    out, side = base / "out", base / "side"
    loads = {"model": 0, "detectors": 0}
    load_finenet, make_detectors = deblur.load_finenet, deblur.make_detectors

    def counted_model(*a, **kw):
        loads["model"] += 1
        return load_finenet(*a, **kw)

    def counted_detectors(*a, **kw):
        loads["detectors"] += 1
        return make_detectors(*a, **kw)

    with pytest.MonkeyPatch.context() as mp:       # module scope: no capfd, redirect instead
        mp.setattr(deblur.model, "DlibDetector", lambda upsample=1: detector)
        mp.setattr(deblur.model, "load_finenet", counted_model)
        mp.setattr(deblur.model, "make_detectors", counted_detectors)
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            rc = main(["deblur", str(folder), "-o", str(out), "--compare", str(side),
                       "--labels", "input,FineNet", *args(small)])
    err = stderr.getvalue()
    return rc, stdout.getvalue(), rendered_lines(err), err, out, side, loads


def test_folder_outputs_names_and_one_load(folder_run, folder):
    rc, _, _, _, out, side, loads = folder_run
    assert rc == 2
    assert listing(out) == ["a.mp4", "b.mp4", "deblur_summary.json"]   # b.avi -> b.mp4
    assert listing(side) == ["a.mp4", "b.mp4"]
    assert loads == {"model": 1, "detectors": 1}
    assert temp_files(folder.parent) == [] and ".hidden.mp4" in os.listdir(folder)


def test_failures_are_summarised_and_end_in_one_line(folder_run, folder):
    rc, stdout, lines, err, out, side, _ = folder_run
    assert "Traceback" not in err
    summary_path = out / "deblur_summary.json"
    assert lines[-1] == f"finenet: {folder}: 4 of 6 files failed (see {summary_path})"
    notes = [ln for ln in lines if ln.startswith("finenet: note:")]
    assert len(notes) == 1 and notes[0].startswith(f"finenet: note: {folder / 'notes.txt'}: skipped")
    summary = json.loads(summary_path.read_text())
    got = [(Path(r["input"]).name, r["status"]) for r in summary["results"]]
    assert got == [("a.mp4", "ok"), ("b.avi", "ok"), ("c.mp4", "failed"), ("d.mkv", "failed"),
                   ("x.mp4", "failed"), ("x.webm", "failed")]
    reasons = {Path(r["input"]).name: r["reason"] for r in summary["results"]}
    assert reasons["a.mp4"] is None and reasons["b.avi"] is None
    assert reasons["c.mp4"] == "no face detected in any of the 6 frames"
    assert reasons["d.mkv"].startswith("not a decodable video")
    assert reasons["x.webm"] == f"its output name {out / 'x.mp4'} is taken by x.mp4 (rename one of them)"
    assert (summary["files"], summary["ok"], summary["failed"]) == (6, 2, 4)
    assert summary["results"][1]["output"] == str(out / "b.mp4")
    assert summary["results"][1]["compare"] == str(side / "b.mp4")
    assert summary["results"][0]["frames"] == 6
    assert [Path(s["input"]).name for s in summary["skipped"]] == ["notes.txt"]
    printed = stdout.strip().splitlines()
    assert printed[0] == f"finenet deblur {folder}: 2 of 6 files ok"
    assert printed[1].split()[:2] == ["ok", "a.mp4"] and printed[3].split()[:2] == ["failed", "c.mp4"]
    assert "no face detected in any of the 6 frames" in printed[3] and len(printed) == 7


def test_progress_per_file_and_overall(folder_run, folder):
    err = folder_run[3]
    assert f"deblur {folder.name}" in err and "6/6" in err              # the bar over the files
    assert "deblur a.mp4" in err and "deblur b.avi" in err              # each file's own bar


def test_a_folders_video_comes_out_as_a_single_run_makes_it(folder_run, folder, small, tmp_path):
    out, side = folder_run[4], folder_run[5]
    single, single_side = tmp_path / "a.mp4", tmp_path / "a_side.mp4"
    assert main(["deblur", str(folder / "a.mp4"), "-o", str(single), "--compare", str(single_side),
                 "--labels", "input,FineNet", *args(small)]) == 0
    assert same_video(single, out / "a.mp4") and same_video(single_side, side / "a.mp4")


def test_a_folder_without_failures_exits_0(folder, small, tmp_path, capfd):
    videos = tmp_path / "one"
    videos.mkdir()
    os.symlink(folder / "a.mp4", videos / "a.mp4")
    capfd.readouterr()
    rc = main(["deblur", str(videos), "-o", str(tmp_path / "res"), *args(small)])
    captured = capfd.readouterr()
    assert rc == 0 and "Traceback" not in captured.err
    assert not [ln for ln in rendered_lines(captured.err) if ln.startswith("finenet:")]
    assert captured.out.splitlines()[0] == f"finenet deblur {videos}: 1 of 1 files ok"
    summary = json.loads((tmp_path / "res" / "deblur_summary.json").read_text())
    assert [r["status"] for r in summary["results"]] == ["ok"] and summary["failed"] == 0
    assert listing(tmp_path / "res") == ["a.mp4", "deblur_summary.json"]


def _bad_folder(kind: str, tmp: Path, videos: Path) -> tuple[list[str], str]:
    """(arguments after the input folder, fragment of the one error line)."""
    if kind == "outdir_is_the_input_folder":
        return ["-o", str(videos)], f"{videos}: is the input folder"
    if kind == "outdir_is_the_input_folder_by_another_name":
        alias = tmp / "videos" / ".." / "videos"
        return ["-o", str(alias)], f"{alias}: is the input folder"
    if kind == "outdir_is_a_file":
        (tmp / "afile").write_text("x")
        return ["-o", str(tmp / "afile")], f"{tmp / 'afile'}: is a file: with a folder input, -o names"
    if kind == "outdir_named_like_a_video":
        return ["-o", str(tmp / "out.mp4")], f"{tmp / 'out.mp4'}: with a folder input ({videos}), -o"
    if kind == "outdir_under_a_file":
        (tmp / "afile").write_text("x")
        return (["-o", str(tmp / "afile" / "out")],
                f"{tmp / 'afile' / 'out'}: output folder cannot be made: {tmp / 'afile'} is a file")
    if kind == "compare_is_the_input_folder":
        return (["-o", str(tmp / "out"), "--compare", str(videos)],
                f"{videos}: is the input folder: the comparison videos would replace")
    if kind == "compare_is_the_output_folder":
        return (["-o", str(tmp / "out"), "--compare", str(tmp / "out")],
                f"{tmp / 'out'}: is also the output (-o) folder")
    if kind == "no_videos":
        for p in videos.iterdir():
            p.unlink()
        (videos / "notes.txt").write_text("x")
        return ["-o", str(tmp / "out")], f"{videos}: no videos in this folder"
    if kind == "bad_batch":
        return ["-o", str(tmp / "out"), "--batch", "0"], "--batch: must be a whole number"
    raise AssertionError(kind)


BAD_FOLDER = ["outdir_is_the_input_folder", "outdir_is_the_input_folder_by_another_name",
              "outdir_is_a_file", "outdir_named_like_a_video", "outdir_under_a_file",
              "compare_is_the_input_folder", "compare_is_the_output_folder", "no_videos",
              "bad_batch"]


@pytest.mark.parametrize("kind", BAD_FOLDER)
def test_bad_folders_are_one_line_and_make_nothing(kind, tmp_path, small, carphone, capfd):
    videos = tmp_path / "videos"
    encode_frames(videos / "a.mp4", carphone[:4])
    extra, fragment = _bad_folder(kind, tmp_path, videos)
    before = listing(tmp_path)
    capfd.readouterr()
    rc = main(["deblur", str(videos), *extra, *args(small)])
    captured = capfd.readouterr()
    lines = rendered_lines(captured.err)
    assert "Traceback" not in captured.err
    assert rc == 2 and len(lines) == 1, lines
    assert lines[0].startswith("finenet: ") and fragment in lines[0], (fragment, lines[0])
    assert listing(tmp_path) == before


# -------------------------------------------------------------------------- window batching

class CentrePlus(torch.nn.Module):
    """A stand-in for FineNet: each window's centre frame + 0.1 (per window, so batching cannot
    change it); records the batch size of every call."""

    def __init__(self):
        super().__init__()
        self.calls: list[int] = []

    def forward(self, frames, heat):
        self.calls.append(frames.shape[0])
        return {"output": frames[:, frames.shape[1] // 2] + 0.1}


def synthetic_frames(tracks: list[int | None], size: int = 16) -> list:
    """Frames with crops ready for ``five_frame_windows``: a track id each, None passes through."""
    gen = torch.Generator().manual_seed(0)
    frames = []
    for i, segment in enumerate(tracks):
        f = deblur.tracking.Frame(i, np.zeros((size, size, 3), np.uint8))
        if segment is not None:
            f.segment, f.window = segment, np.array([size / 2, size / 2, size], np.float32)
            f.crop = torch.rand((3, size, size), generator=gen) * 0.8
            f.heat = torch.zeros((68, 4, 4))
        frames.append(f)
    return frames


@pytest.mark.parametrize("batch", [1, 3, 4, 32])
def test_restore_batches_windows_in_order_and_holds_at_most_n_minus_1(batch):
    tracks = [0] * 7 + [None] * 2 + [1] * 5
    results, calls = {}, {}
    for n in (1, batch):
        stats, model = deblur.tracking.BufferStats(), CentrePlus()
        windows = deblur.tracking.five_frame_windows(iter(synthetic_frames(tracks)), stats)
        results[n] = list(deblur.model.restore(windows, model, torch.device("cpu"), 16, stats, "models", n))
        calls[n] = model.calls
        assert stats.peak.get("batch", 0) == min(n, 7) - 1      # the windows waiting, at most n-1
        assert stats.deblurred == 12
    assert [r[0] for r in results[batch]] == list(range(14))     # frame order kept
    expect = {1: [1] * 12, 3: [3, 3, 1, 3, 2], 4: [4, 3, 4, 1], 32: [7, 5]}[batch]
    assert calls[batch] == expect                             # flushed at pass-through and end
    for (i, a, ra), (j, b, rb) in zip(results[1], results[batch]):
        assert i == j and np.array_equal(a, b) and ra == rb
    assert results[batch][7][2] is None and results[batch][0][2] is not None


@pytest.fixture(scope="module")
def gappy_clip(tmp_path_factory, carphone):
    """7 face frames, 6 black ones (more than MAX_GAP: they pass through), 5 face frames."""
    frames = np.concatenate([carphone[30:37], np.zeros((6, 144, 176, 3), np.uint8),
                             carphone[70:75]])
    return encode_frames(tmp_path_factory.mktemp("gappy") / "gappy.mp4", frames)


def test_batch_4_gives_the_same_video_as_batch_1(gappy_clip, small, tmp_path):
    runs = {}
    for n in (1, 4):
        out = tmp_path / f"batch{n}.mp4"
        runs[n] = deblur.run(small["params"], gappy_clip, out, small["models"], "cpu",
                             progress=False, batch=n, preset="ultrafast")
        assert runs[n]["frames"] == 18 and runs[n]["deblurred"] == 12 and runs[n]["batch"] == n
    one, four = planes(tmp_path / "batch1.mp4"), planes(tmp_path / "batch4.mp4")
    worst = max(int(np.abs(a.astype(int) - b).max()) for p, q in zip(one, four) for a, b in zip(p, q))
    assert worst == 0, worst                     # measured: identical (no float reduction differs)
    assert runs[4]["buffer_peak"]["batch"] == 3 and "batch" not in runs[1]["buffer_peak"]
    radius = int(np.ceil(deblur.tracking.TRUNCATE * small["params"]["data"]["box_smoothing"]))
    bound = deblur.tracking.MAX_GAP + radius + 1 + deblur.tracking.NUM_FRAMES
    assert runs[1]["buffer_peak_total"] <= bound and runs[4]["buffer_peak_total"] <= bound + 3


@pytest.mark.parametrize("value", ["0", "-1", "2.5", "many", "²"])
def test_a_bad_batch_is_one_line(value, tmp_path, small, carphone, capfd):
    good = encode_frames(tmp_path / "good.mp4", carphone[:4])
    capfd.readouterr()
    rc = main(["deblur", str(good), "-o", str(tmp_path / "o.mp4"), "--batch", value, *args(small)])
    lines = rendered_lines(capfd.readouterr().err)
    assert rc == 2 and lines == [f"finenet: --batch: must be a whole number of five-frame windows, "
                                 f"1 or more, got {value!r}"], lines
    assert sorted(os.listdir(tmp_path)) == ["good.mp4"]
