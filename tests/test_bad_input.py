"""Bad input ends in ONE FineNetError naming the file and the problem (through the CLI: exit status
2 and a single ``finenet: <file>: <problem>`` line on stderr), and leaves no partial output. Inputs
that merely look unusual (grayscale video, odd frame sizes) must work."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from finenet.stages import sample
from finenet.cli import main
from finenet.data import voxceleb, vw300, youtube
from finenet.data.store import load_npz
from finenet.data.video import read_video
from finenet.errors import FineNetError
from finenet.params import load_params, resolve

pytestmark = pytest.mark.usefixtures("reuse_detector")

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def rendered_lines(stderr: str) -> list[str]:
    """stderr as a terminal shows it: progress bars redraw their line with '\\r' (and clear it when
    done), so only what is left after the last '\\r' of each line counts."""
    lines = [ANSI.sub("", ln).split("\r")[-1].strip() for ln in stderr.split("\n")]
    return [ln for ln in lines if ln]


def one_error(excinfo) -> FineNetError:
    """The error, checked to be a single one: no traceback of another exception chained to it."""
    exc = excinfo.value
    assert type(exc) is FineNetError
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__
    assert "\n" not in str(exc)
    return exc


def leftovers(work: Path) -> list[str]:
    """Temporary files of the atomic writers, anywhere under the working directory."""
    return sorted(str(p.relative_to(work)) for p in work.rglob("*") if ".tmp" in p.name)


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """An empty working directory: stages write data/… and reports/… relative to it."""
    path = tmp_path / "work"
    path.mkdir()
    monkeypatch.chdir(path)
    return path


@pytest.fixture
def cli(work, capfd, params_writer):
    """``cli(params, "sample", *options)`` -> (exit status, stderr lines as a terminal shows them).
    capfd also catches what C/C++ libraries (ffmpeg, decord, dlib) print straight to fd 2."""

    def run(params, *command: str, path: Path | None = None):
        if path is None:
            path = params_writer(work / "params.yaml", params)
        capfd.readouterr()
        rc = main([*command, "--params", str(path)])
        out, err = capfd.readouterr()
        assert "Traceback" not in err
        return rc, rendered_lines(err)

    return run


def assert_one_line(rc: int, lines: list[str], *fragments: str) -> str:
    assert rc == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith("finenet: ")
    assert not re.search(r"\[\d\d:\d\d:\d\d\]|\.cc:\d+", lines[0])      # no C++ log prefixes
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


# ------------------------------------------------------------------------------------ bad videos

def real_face(carphone, n=10):
    return carphone[40:40 + n]


def first_half(encode, tmp, carphone, suffix, **kw) -> bytes:
    data = encode(tmp / f"whole{suffix}", real_face(carphone, 12), **kw).read_bytes()
    return data[:len(data) // 2]


def make_bad_video(kind: str, path: Path, encode, carphone, scratch: Path) -> str:
    """Write the bad video ``kind`` at ``path`` (using ``scratch`` outside the dataset for the good
    video it is cut from); return a fragment the error must contain."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        path.write_bytes(b"")
        return "empty file (0 bytes)"
    if kind == "truncated_mp4":
        path.write_bytes(first_half(encode, scratch, carphone, ".mp4"))
        return "not a decodable video"
    if kind == "truncated_avi":
        path.write_bytes(first_half(encode, scratch, carphone, ".avi", codec="mpeg4"))
        return "truncated video: the AVI header announces"   # decord alone reads it as 1 frame
    if kind == "corrupt":
        path.write_bytes(np.random.default_rng(7).integers(0, 256, 40_000, dtype=np.uint8).tobytes())
        return "not a decodable video"
    if kind == "corrupt_middle":                                  # complete file, damaged frames
        data = bytearray(encode(scratch / "whole.mp4", real_face(carphone, 12)).read_bytes())
        a, b = len(data) // 4, len(data) // 2
        data[a:b] = np.random.default_rng(0).integers(0, 256, b - a, dtype=np.uint8).tobytes()
        path.write_bytes(bytes(data))
        return "truncated or corrupt video: decoding failed at frame"
    if kind == "text":
        path.write_text("this is not a video\n" * 50)
        return "not a decodable video"
    if kind == "gray_frames":
        encode(path, np.full((10, 144, 176, 3), 128, np.uint8), codec="mpeg4")
        return "no face detected in any of the 10 frames"
    if kind == "noise_frames":
        noise = np.random.default_rng(3).integers(0, 256, (10, 144, 176, 3), dtype=np.uint8)
        encode(path, noise, codec="ffv1", pix_fmt="bgr0")
        return "no face detected in any of the 10 frames"
    if kind == "too_short":
        encode(path, real_face(carphone, 3), codec="mpeg4")
        return "clip has 3 frames; at least 5"
    raise AssertionError(kind)


BAD_VIDEOS = ["empty", "truncated_mp4", "truncated_avi", "corrupt", "corrupt_middle", "text",
              "gray_frames", "noise_frames", "too_short"]


def layout(dataset: str, base: Path) -> tuple[dict, Path, str]:
    """(params sections, where the one video of that dataset goes, its clip id)."""
    if dataset == "voxceleb":
        root = base / "voxceleb2"
        return (dict(voxceleb=dict(root=str(root), train_videos=5, test_videos=0)),
                root / "dev" / "mp4" / "id00001" / "abcdefghijk" / "00001.mp4",
                "vox_id00001_abcdefghijk_00001")
    if dataset == "vw300":
        root = base / "300VW"
        (root / "001" / "annot").mkdir(parents=True)
        return dict(vw300=dict(root=str(root))), root / "001" / "vid.avi", "300vw_001"
    root = base / "youtube"
    return dict(youtube=dict(root=str(root))), root / "bad.mp4", "yt_bad"


@pytest.mark.parametrize("dataset", ["voxceleb", "vw300", "youtube"])
@pytest.mark.parametrize("kind", BAD_VIDEOS)
def test_bad_video_is_one_error_and_writes_nothing(kind, dataset, tmp_path, work, cli, encode,
                                                   carphone, make_params):
    sections, video, clip_id = layout(dataset, tmp_path / "datasets")
    problem = make_bad_video(kind, video, encode, carphone, tmp_path / "scratch")
    params = make_params(**sections)

    with pytest.raises(FineNetError) as excinfo:
        sample.run(params)
    exc = one_error(excinfo)
    assert exc.where == str(video)
    assert problem in exc.problem

    rc, lines = cli(params, "sample")
    assert_one_line(rc, lines, f"finenet: {video}: ", problem)
    clips = work / "data" / "clips"
    assert not (clips / f"{clip_id}.npz").exists()
    assert not clips.exists() or list(clips.iterdir()) == []
    assert leftovers(work) == []


def test_a_bad_video_keeps_the_clips_finished_before_it(tmp_path, work, cli, encode, carphone,
                                                        make_params):
    root = tmp_path / "youtube"
    encode(root / "a_good.mp4", real_face(carphone, 8))
    make_bad_video("truncated_mp4", root / "b_bad.mp4", encode, carphone, tmp_path / "scratch")
    encode(root / "c_good.mp4", real_face(carphone, 8))
    rc, lines = cli(make_params(youtube=dict(root=root)), "sample")
    # with several clips a progress bar stays on its own line above; the error is the last line
    assert rc == 2
    assert lines[-1].startswith(f"finenet: {root / 'b_bad.mp4'}: not a decodable video")
    assert sum("finenet" in ln for ln in lines) == 1
    assert sorted(p.name for p in (work / "data" / "clips").iterdir()) == ["yt_a_good.npz"]
    meta, arrays = load_npz(work / "data" / "clips" / "yt_a_good.npz")
    assert meta["clip_id"] == "yt_a_good" and arrays["frames"].shape == (8, 96, 96, 3)


# ------------------------------------------------------------------------- unusual but valid video

def gray(frames: np.ndarray) -> np.ndarray:
    return np.rint(frames @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)


@pytest.mark.parametrize("name,kw", [
    ("gray.mkv", dict(codec="ffv1", pix_fmt="gray")),
    ("gray.mp4", dict(codec="libx264", pix_fmt="gray")),
    ("gray_as_color.avi", dict(codec="mpeg4", pix_fmt="yuv420p")),
])
def test_grayscale_video_gives_rgb_frames_and_a_clip(name, kw, tmp_path, work, encode, carphone,
                                                     make_params):
    luma = gray(real_face(carphone, 8))
    frames_in = luma if "as_color" not in name else np.repeat(luma[..., None], 3, axis=-1)
    video = encode(tmp_path / "youtube" / name, frames_in, **kw)
    frames, _ = read_video(video)
    assert frames.shape == (8, 144, 176, 3) and frames.dtype == np.uint8
    spread = frames.max(axis=-1).astype(int) - frames.min(axis=-1)
    assert spread.max() <= (0 if kw["pix_fmt"] == "gray" else 6)       # R == G == B (up to 4:2:0)
    assert np.abs(frames[..., 1].astype(int) - luma).mean() < (1 if name.endswith(".mkv") else 12)

    sample.run(make_params(youtube=dict(root=tmp_path / "youtube")))
    meta, arrays = load_npz(work / "data" / "clips" / f"yt_{Path(name).stem}.npz")
    assert arrays["frames"].shape == (8, 96, 96, 3)
    assert arrays["face_found"].any()
    assert meta["source_size"] == [144, 176]


@pytest.mark.parametrize("name,kw", [
    ("odd_ffv1.avi", dict(codec="ffv1", pix_fmt="bgr0")),
    ("odd_mjpeg.avi", dict(codec="mjpeg", pix_fmt="yuvj444p")),
    ("odd_x264rgb.mp4", dict(codec="libx264rgb", pix_fmt="rgb24")),
])
def test_odd_frame_size_works(name, kw, tmp_path, work, encode, carphone, make_params):
    src = real_face(carphone, 8)[:, :143]                       # 143 rows ...
    src = np.concatenate([src, src[:, :, -1:]], axis=2)         # ... and 177 columns
    assert src.shape[1:3] == (143, 177)
    video = encode(tmp_path / "youtube" / name, src, **kw)
    frames, _ = read_video(video)
    assert frames.shape == (8, 143, 177, 3)
    assert np.abs(frames.astype(int) - src).mean() < 5

    sample.run(make_params(youtube=dict(root=tmp_path / "youtube")))
    meta, arrays = load_npz(work / "data" / "clips" / f"yt_{Path(name).stem}.npz")
    assert meta["source_size"] == [143, 177]
    assert arrays["frames"].shape == (8, 96, 96, 3) and arrays["face_found"].all()


# ---------------------------------------------------------------------------------- bad .pts files

def good_pts(n=68):
    return np.stack([np.linspace(60, 110, n), np.linspace(50, 100, n)], axis=1)


BAD_PTS = {
    "too_few_points": ("version: 1\nn_points:  10\n{\n" + "\n".join("70 60" for _ in range(10)) + "\n}\n",
                       "expected 68 points, found 10"),
    "count_mismatch": ("version: 1\nn_points:  68\n{\n" + "\n".join("70 60" for _ in range(67)) + "\n}\n",
                       "expected 68 points, found 67 (declared 68)"),
    "one_column": ("version: 1\nn_points:  68\n{\n" + "\n".join("70" for _ in range(68)) + "\n}\n",
                   "expected 'x y' rows, found 1 value(s) per row"),
    "not_numbers": ("version: 1\nn_points:  68\n{\n" + "\n".join("x y" for _ in range(68)) + "\n}\n",
                    "not a .pts file"),
    "no_braces": ("version: 1\nn_points:  68\n" + "\n".join("70 60" for _ in range(68)) + "\n",
                  "not a .pts file"),
    "empty": ("", "not a .pts file"),
    "binary": (None, "not a .pts file"),
}


@pytest.mark.parametrize("case", sorted(BAD_PTS))
def test_bad_pts_is_one_error_naming_the_pts_file(case, vw300_tree, tmp_path, work, cli, make_params):
    root = tmp_path / "300VW"
    shutil.copytree(vw300_tree.root / "007", root / "007")
    bad = root / "007" / "annot" / "000003.pts"
    text, problem = BAD_PTS[case]
    if text is None:
        bad.write_bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    else:
        bad.write_text(text)
    params = make_params(vw300=dict(root=root))

    with pytest.raises(FineNetError) as excinfo:
        vw300.load(vw300.plan(params["data"]["vw300"], params["seed"])[0], params)
    exc = one_error(excinfo)
    assert exc.where == str(bad)
    assert problem in exc.problem

    rc, lines = cli(params, "sample")
    assert_one_line(rc, lines, f"finenet: {bad}: ", problem)
    assert not (work / "data" / "clips" / "300vw_007.npz").exists()
    assert leftovers(work) == []


def test_vw300_video_without_annot_folder(vw300_tree, tmp_path, work, cli, make_params):
    root = tmp_path / "300VW"
    (root / "007").mkdir(parents=True)
    shutil.copy(vw300_tree.root / "007" / "vid.avi", root / "007" / "vid.avi")
    rc, lines = cli(make_params(vw300=dict(root=root)), "sample")
    assert_one_line(rc, lines, f"finenet: {root / '007' / 'annot'}: ", "annotation folder not found")
    assert not (work / "data" / "clips" / "300vw_007.npz").exists()


# ---------------------------------------------------------------------------- bad dataset layouts

@pytest.mark.parametrize("dataset,key,problem", [
    ("voxceleb", "data.voxceleb.root", "VoxCeleb2 root not found"),
    ("vw300", "data.vw300.root", "300VW root not found"),
    ("youtube", "data.youtube.root", "real-blur video folder not found"),
])
def test_missing_dataset_root(dataset, key, problem, tmp_path, work, cli, make_params):
    missing = tmp_path / "no" / "such" / "dir"
    params = make_params(**{dataset: dict(root=str(missing))})
    adapter = {"voxceleb": voxceleb, "vw300": vw300, "youtube": youtube}[dataset]
    args = (params["data"][dataset],) if dataset == "youtube" else (params["data"][dataset], 0)
    with pytest.raises(FineNetError) as excinfo:
        adapter.plan(*args)
    exc = one_error(excinfo)
    assert exc.where == str(missing) and problem in exc.problem and key in exc.problem
    for command in ("plan", "sample"):
        rc, lines = cli(params, command)
        assert_one_line(rc, lines, f"finenet: {missing}: ", problem, key)
    assert not (work / "data").exists()


@pytest.mark.parametrize("shape", ["no_dev", "dev_without_mp4", "flat_files"])
def test_voxceleb_root_without_dev_mp4(shape, voxceleb_tree, tmp_path, work, cli, make_params):
    root = tmp_path / "vox"
    shutil.copytree(voxceleb_tree.root / "test", root / "test")           # the test split is fine
    some_video = next(p for p in voxceleb_tree.videos if "dev" in p.parts)
    if shape == "dev_without_mp4":                                        # unpacked one level off
        (root / "dev" / "id00012" / "21Uxsk56VDQ").mkdir(parents=True)
        shutil.copy(some_video, root / "dev" / "id00012" / "21Uxsk56VDQ" / "00001.mp4")
    elif shape == "flat_files":                                           # videos not in id/yt folders
        (root / "dev" / "mp4").mkdir(parents=True)
        shutil.copy(some_video, root / "dev" / "mp4" / "00001.mp4")
    else:
        (root / "DEV").mkdir()
    params = make_params(voxceleb=dict(root=root, train_videos=3, test_videos=1))
    base = root / "dev" / "mp4"
    problem = "no .mp4 videos in the VoxCeleb2 layout" if shape == "flat_files" else "'dev' split not found"

    with pytest.raises(FineNetError) as excinfo:
        voxceleb.plan(params["data"]["voxceleb"], 0)
    exc = one_error(excinfo)
    assert exc.where == str(base) and problem in exc.problem
    rc, lines = cli(params, "sample")
    assert_one_line(rc, lines, f"finenet: {base}: ", problem)
    assert not (work / "data").exists()


def test_dataset_roots_without_videos(tmp_path, work, cli, make_params):
    (tmp_path / "300VW" / "001").mkdir(parents=True)
    (tmp_path / "300VW" / "001" / "video.mp4").write_bytes(b"x")          # not NNN/vid.avi
    (tmp_path / "youtube").mkdir()
    (tmp_path / "youtube" / "notes.txt").write_text("no videos here\n")
    rc, lines = cli(make_params(vw300=dict(root=tmp_path / "300VW")), "plan")
    assert_one_line(rc, lines, f"finenet: {tmp_path / '300VW'}: ", "no 300VW videos")
    rc, lines = cli(make_params(youtube=dict(root=tmp_path / "youtube")), "plan")
    assert_one_line(rc, lines, f"finenet: {tmp_path / 'youtube'}: ", "no videos (")


# ------------------------------------------------------------------------------------ bad params

def set_key(raw: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    node = raw
    for key in parents:
        node = node[key]
    node[last] = value


def del_key(raw: dict, dotted: str):
    *parents, last = dotted.split(".")
    node = raw
    for key in parents:
        node = node[key]
    return node.pop(last)


PARAM_CASES = [
    # (change to params.yaml, fragment the one error line must contain)
    (lambda r: set_key(r, "data.crop_size", "96"), "data.crop_size: '96' is not of type 'integer'"),
    (lambda r: set_key(r, "data.crop_size", 96.5), "data.crop_size: 96.5 is not of type 'integer'"),
    (lambda r: set_key(r, "data.crop_margin", "wide"), "data.crop_margin: 'wide' is not of type 'number'"),
    (lambda r: set_key(r, "data.min_frames", True), "data.min_frames: True is not of type 'integer'"),
    (lambda r: set_key(r, "data.embedded.enabled", "no"), "data.embedded.enabled: 'no' is not of type 'boolean'"),
    (lambda r: set_key(r, "data.voxceleb.root", 5), "data.voxceleb.root: 5 is not of type"),
    (lambda r: set_key(r, "data.vw300.test_videos", -3), "data.vw300.test_videos: -3 is less than the minimum"),
    (lambda r: set_key(r, "blur.line.kernel_size", [3]), "blur.line.kernel_size: [3] is too short"),
    (lambda r: set_key(r, "landmarks.detector", "mtcnn"), "landmarks.detector: 'mtcnn' is not one of"),
    (lambda r: set_key(r, "seed", "2026"), "seed: '2026' is not of type 'integer'"),
    (lambda r: set_key(r, "data.cropsize", 96), "unknown key 'data.cropsize'"),
    (lambda r: set_key(r, "data.cropsize", del_key(r, "data.crop_size")), "unknown key 'data.cropsize'"),
    (lambda r: set_key(r, "data.voxceleb.roots", "/data/vox"), "unknown key 'data.voxceleb.roots'"),
    (lambda r: set_key(r, "sed", 1), "unknown key 'sed'"),
    (lambda r: del_key(r, "loader"), "'loader' is a required property"),
    (lambda r: set_key(r, "landmarks.heatmap_size", 40),
     "landmarks.heatmap_size (40) must divide data.crop_size (96)"),
]


@pytest.mark.parametrize("change,fragment", PARAM_CASES, ids=[f for _, f in PARAM_CASES])
def test_bad_params_name_the_key(change, fragment, raw_params, work, cli):
    raw = copy.deepcopy(raw_params)
    change(raw)
    with pytest.raises(FineNetError) as excinfo:
        resolve(raw)
    assert fragment in one_error(excinfo).problem

    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(FineNetError) as excinfo:
        load_params(path)
    exc = one_error(excinfo)
    assert exc.where == str(path) and fragment in exc.problem
    for command in ("plan", "sample"):
        rc, lines = cli(None, command, path=path)
        assert_one_line(rc, lines, f"finenet: {path}: ", fragment)
    assert not (work / "data").exists()


def test_bad_value_in_a_profile_names_the_key(raw_params, work, cli):
    raw = copy.deepcopy(raw_params)
    raw["profiles"]["paper"]["data"]["crop_size"] = "256px"
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    load_params(path)                                           # the embedded profile is still fine
    with pytest.raises(FineNetError) as excinfo:
        load_params(path, "paper")
    assert "data.crop_size: '256px' is not of type 'integer'" in one_error(excinfo).problem
    rc, lines = cli(None, "plan", "--profile", "paper", path=path)
    assert_one_line(rc, lines, f"finenet: {path}: ", "data.crop_size: '256px'")


def test_unknown_profile(raw_params, work, cli):
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(raw_params, sort_keys=False))
    with pytest.raises(FineNetError) as excinfo:
        load_params(path, "papr")
    exc = one_error(excinfo)
    assert exc.where == str(path)
    assert "profile 'papr' is not 'embedded' nor a key of profiles (bench, ci, paper)" in exc.problem
    rc, lines = cli(None, "plan", "--profile", "papr", path=path)
    assert_one_line(rc, lines, f"finenet: {path}: ", "profile 'papr'")
    raw = copy.deepcopy(raw_params)
    raw["profile"] = "fast"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    rc, lines = cli(None, "sample", path=path)
    assert_one_line(rc, lines, f"finenet: {path}: ", "profile 'fast' is not 'embedded'")


@pytest.mark.parametrize("content,fragment", [
    (None, "parameter file not found"),
    ("data: [unclosed\n", "not valid YAML"),
    ("- just\n- a list\n", "expected a mapping of parameters at the top level"),
    ("", "expected a mapping of parameters at the top level"),
])
def test_unusable_params_file(content, fragment, work, cli):
    path = work / "params.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(FineNetError) as excinfo:
        load_params(path)
    exc = one_error(excinfo)
    assert exc.where == str(path) and fragment in exc.problem
    for command in ("plan", "sample", "pack"):
        rc, lines = cli(None, command, path=path)
        assert_one_line(rc, lines, f"finenet: {path}: ", fragment)
    assert sorted(p.name for p in work.iterdir()) == (["params.yaml"] if content is not None else [])
