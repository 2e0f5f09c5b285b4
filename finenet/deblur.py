"""Deblur the face in a real video with the trained FineNet (``finenet deblur in.mp4 -o out.mp4``).

The video is streamed: frames are decoded one at a time, a bounded buffer holds what the temporal
steps need (at most MAX_GAP=5 + the smoothing look-ahead + 5 frames, whatever the video's length),
and the result is encoded as it goes (H.264 in the input's pixel format where libx264 writes it:
yuv420p, yuv422p, yuv444p, else the closest 8-bit one; same frame rate, frame count and colour
tags, the audio copied over; see ``finenet.video_io``). Pixels FineNet does not change are written
as the decoded YUV samples, not re-converted from RGB: lossless (x264 qp 0: ``--lossless``, or
``--crf 0``, the default) they come out bit-exact; a higher ``--crf`` trades that for file size.
Each frame goes through the pipeline's own steps:

1. Face detection on the full frame (dlib, ``data.detect_upsample``, as the ``sample`` stage does;
   frames whose longer side exceeds 640 pixels are searched shrunk to 640). ``--faces all`` (the
   default) deblurs every face: detections are linked into face tracks, an ID each
   (``finenet.face.tracker``: predicted boxes matched by IoU, one detection per track, a track
   carried through at most MAX_GAP=5 missed frames, then ended). ``--faces largest`` deblurs one:
   the LARGEST face where the track starts, then the one nearest the previous box.
2. Missed detections: a run of at most MAX_GAP=5 frames without a face is bridged by interpolating
   the boxes on either side (or carrying the nearest one at the ends of the video); longer runs
   end the face track and their frames pass through unchanged. Steps 2-6 run per track.
3. The box becomes a square window (``data.crop_margin`` x its side) smoothed over time with a
   Gaussian of ``data.box_smoothing`` frames, truncated at +-ceil(3 sigma) frames: that is the
   look-ahead (the ``sample`` stage smooths the whole track at once; this matches it to within the
   0.3 % of weight beyond 3 sigma). A track's ends are padded with its end values.
4. The crop (``finenet.face.crop.crop_frame``, ``data.crop_size``) gets 68 landmarks
   (``landmarks.detector``) rendered to heatmaps (``landmarks.heatmap_size``, ``landmarks.sigma``)
   exactly as the ``heatmaps`` stage does.
5. FineNet on the crops of frames t-2..t+2, indices clamped to the face track's ends.
6. Paste back: the correction FineNet makes to the crop (output - input crop) is mapped into the
   frame by the inverse of the crop transform (bilinear; anti-aliased when the crop is finer than
   the frame) and added under a feathered mask (1 in the middle, a smoothstep to 0 over the outer
   15 % (FEATHER) of the crop side). Pixels outside the crop are untouched, and a face larger than the
   crop keeps the frame's own detail where FineNet changes nothing. Where the crops of two faces
   overlap, their corrections are averaged with the masks as weights (added as they are where
   the masks sum to at most 1). Only the pixels whose RGB the paste changed get new YUV samples
   (the YUV difference of the change, ``finenet.video_io``).

Bad input is one ``FineNetError``: among them a still image (a PNG or JPEG, even named .mp4), and
an input that does not decode to the end (truncated or corrupt: ``decoding stopped at frame N of
M``; found only when decoding reaches the damage, the frames before it already processed and then
discarded). The output is
written to a hidden temporary file next to it (``.<name>.<random>.deblur.tmp<suffix>``, flock-ed
while the run lives) and renamed only when complete, so a failed run leaves no output behind and
deletes its temporary file; one a killed run left is deleted by the next run writing to that
folder (``video_io.remove_stale_temps``).

On a CPU shared with other work, OMP_NUM_THREADS=1 can be several times faster than torch's
default thread count (the per-frame tensors are small).
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from tqdm import tqdm

from .checkpoint import load_model
from .compare import CompareSink, check_compare, parse_labels, temp_outputs
from .errors import FineNetError
from .face.crop import crop_frame, crop_matrix, nearest_box
from .face.tracker import Tracker
from .face.detectors import DlibDetector, make_detector
from .face.heatmap import FLIP_68, render_heatmaps
from .layout import model_file
from .models.finenet import FineNet
from .params import DEFAULT_PARAMS
from .release import NETS, installed, verify
from .train import net_config, pick_device
from .video_io import (CONTAINERS, CRF_MAX, DEFAULT_CRF, DEFAULT_PRESET, X264_PRESETS, VideoSink,
                       VideoSource, output_format, parse_encoding, remove_stale_temps)

MAX_GAP = 5             # longest run of frames without a detected face that is bridged
TRUNCATE = 3.0          # box smoothing window: +-ceil(TRUNCATE x sigma) frames (the look-ahead)
FEATHER = 0.15          # blend ramp width, as a fraction of the crop side
DETECT_MAX_SIDE = 640   # faces are searched on frames shrunk to this longer side at most
NUM_FRAMES = 5

HELP = "deblur the faces in a video with the trained FineNet"
FACES = ("all", "largest")
DESCRIPTION = __doc__


def add_arguments(p) -> None:
    p.add_argument("input", help="input video (any length and resolution), or a folder of videos "
                                 "(each deblurred into the -o folder)")
    p.add_argument("-o", "--output", required=True,
                   help=f"output video ({', '.join(CONTAINERS)}); written atomically. With a "
                        f"folder input, the output folder (not the input folder): OUTDIR/<the "
                        f"input's name>, .mp4 where the input's container is not one of these, "
                        f"and OUTDIR/deblur_summary.json")
    p.add_argument("--checkpoint", default=None,
                   help="a models folder: predeblur/, enhance/full/, interp/full/, combine/late/ "
                        "model.pt. Default: the release model installed with the package (the "
                        "bench tier's FineNet, checked against its manifest); `--checkpoint "
                        "models`: what `dvc repro` just trained")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: CUDA when available (default)")
    p.add_argument("--params", default=str(DEFAULT_PARAMS), help="parameter file (default: params.yaml)")
    p.add_argument("--profile", default=None, help="override params.yaml's profile (e.g. paper)")
    p.add_argument("--crf", default=None, metavar="N",
                   help=f"x264 constant rate factor, 0 to {CRF_MAX}, fractions allowed (default: "
                        f"{DEFAULT_CRF}). 0 is mathematically lossless (written as x264 qp 0): the "
                        f"pixels FineNet leaves alone come out bit-identical to the decoded input. "
                        f"Higher values give smaller, lossier files: CRF 1 already costs those "
                        f"pixels 1.5-8 dB of PSNR; CRF 18 files are 1/7-1/20 the lossless size "
                        f"(see README)")
    p.add_argument("--lossless", action="store_true",
                   help="mathematically lossless H.264 (x264 qp 0, the same as --crf 0) in the "
                        "output pixel format, whatever the default CRF; not with another --crf")
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=X264_PRESETS,
                   help=f"x264 speed / size trade-off (default: {DEFAULT_PRESET}); slower presets give "
                        f"smaller files at the same quality")
    p.add_argument("--compare", default=None, metavar="PATH",
                   help="also write a comparison video: the input and the output side by side "
                        "(same frames, rate and encoder settings; written atomically with the "
                        "output). With a folder input, a folder for them (neither the input nor "
                        "the output folder), one per video under the output's name")
    p.add_argument("--labels", default=None, metavar="LEFT,RIGHT",
                   help="with --compare: label its halves, e.g. \"input,FineNet\" (small text bars "
                        "above the video; default: no text)")
    p.add_argument("--faces", choices=FACES, default="all",
                   help="all: deblur every face, each tracked with its own ID (default); largest: "
                        "only the largest face where a track starts, then the one nearest it")
    p.add_argument("--batch", default="1", metavar="N",
                   help="run FineNet on N consecutive five-frame windows per call (default: 1): "
                        "fewer, larger model calls, meant for a GPU; the same output; the "
                        "streaming buffer grows by N-1 frames")
    p.add_argument("--tta", choices=TTA, default="none",
                   help="test-time augmentation. flip: average FineNet's output with the mirrored "
                        "output of the mirrored crops (twice the model's time; see README for what "
                        "it gains on the held-out clips); none: one pass (default)")


def encode_options(args) -> dict:
    """All of ``run``'s keyword options from the parsed command line (the encoder's, the
    comparison video's and the window batch): ``finenet.cli`` passes them as ``**`` keywords."""
    return {"crf": args.crf, "lossless": args.lossless, "preset": args.preset,
            "compare": args.compare, "labels": args.labels, "batch": args.batch, "faces": args.faces,
            "tta": args.tta}


@dataclass(eq=False)
class Frame:
    """One frame on its way through the stages."""

    index: int
    image: np.ndarray                   # (H,W,3) uint8 RGB, as decoded
    box: np.ndarray | None = None       # detected face (x0, y0, x1, y1)
    track: np.ndarray | None = None     # box after bridging gaps; None: the frame passes through
    segment: int = -1                   # which face track the frame belongs to
    value: np.ndarray | None = None     # (cx, cy, log side) before smoothing
    window: np.ndarray | None = None    # smoothed crop window (cx, cy, side)
    crop: torch.Tensor | None = None    # (3,S,S) in [0,1]
    heat: torch.Tensor | None = None    # (68,h,h) in [0,1]


class BufferStats:
    """How many frames each stage holds, the peak of each and of their sum (the streaming bound)."""

    def __init__(self):
        self.now: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.peak_total = 0
        self.detected = self.deblurred = self.passed = 0
        self.faces_deblurred = 0                       # face crops run through FineNet
        self.tracks: list[dict] = []                   # per face track: id, first and last frame

    def for_track(self, track: int) -> "BufferStats":
        """The stats a track's stages report to: their buffers under this track's names (track 0:
        the plain stage names), their own frame counts (the frame-level ones are ``merge``'s)."""
        return TrackStats(self, track)

    def hold(self, stage: str, n: int) -> None:
        self.now[stage] = n
        self.peak[stage] = max(self.peak.get(stage, 0), n)
        self.peak_total = max(self.peak_total, sum(self.now.values()))


class TrackStats:
    """``BufferStats.for_track``."""

    def __init__(self, stats: BufferStats, track: int):
        self.stats, self.track = stats, track
        self.detected = self.deblurred = self.passed = 0

    def hold(self, stage: str, n: int) -> None:
        self.stats.hold(stage if self.track == 0 else f"{stage}[{self.track}]", n)


class _Stall:
    def __repr__(self):
        return "STALL"


STALL = _Stall()   # "no input yet": a track's stages pass it straight on (``TrackChain``)


# ------------------------------------------------------------------------------------- stages

def detect_faces(image: np.ndarray, detector, scale: float) -> list[np.ndarray]:
    """The face boxes dlib finds in ``image`` (searched shrunk by ``scale`` when < 1)."""
    from PIL import Image

    small = image
    if scale < 1:
        h, w = image.shape[:2]
        small = np.asarray(Image.fromarray(image).resize(
            (round(w * scale), round(h * scale)), Image.BILINEAR, reducing_gap=2.0))
    return [b / scale for b in detector.detect_faces(small)]


def bridge_gaps(frames, max_gap: int, stats: BufferStats):
    """Fill runs of at most ``max_gap`` frames without a box; longer runs pass through."""
    last, pending, in_long_gap, segment = None, [], False, 0
    for f in frames:
        if f is STALL:
            yield f
            continue
        if f.box is None:
            if in_long_gap:
                yield f
                continue
            pending.append(f)
            stats.hold("gaps", len(pending))
            if len(pending) > max_gap:                 # too long: these frames keep their pixels
                yield from pending
                pending, in_long_gap, last = [], True, None
                stats.hold("gaps", 0)
            continue
        if in_long_gap:
            segment, in_long_gap = segment + 1, False
        for g in pending:
            if last is None:
                g.track = f.box
            else:
                w = (g.index - last.index) / (f.index - last.index)
                g.track = (1 - w) * last.box + w * f.box
            g.segment = segment
        yield from pending
        pending = []
        stats.hold("gaps", 0)
        f.track, f.segment, last = f.box, segment, f
        yield f
    for g in pending:                                  # the video ends within a short gap
        if last is not None:
            g.track, g.segment = last.box, segment
        yield g


def smooth_windows(frames, sigma: float, margin: float, stats: BufferStats):
    """Square crop windows smoothed over time like ``finenet.face.crop.smooth_boxes``, streamed:
    a frame leaves once the next ``radius`` frames of its track are known."""
    radius = math.ceil(TRUNCATE * sigma) if sigma > 0 else 0
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2) if sigma > 0 else np.ones(1)
    weights = (weights / weights.sum())[:, None]
    past: deque = deque(maxlen=max(radius, 1))        # values of frames already out, same track
    ahead: deque = deque()                            # frames waiting for their look-ahead
    segment = None

    def release() -> Frame:
        f = ahead.popleft()
        before = list(past)[-radius:] if radius else []
        after = [g.value for g in list(ahead)[:radius]]
        before = [before[0] if before else f.value] * (radius - len(before)) + before
        after = after + [after[-1] if after else f.value] * (radius - len(after))
        cx, cy, log_side = (weights * np.stack([*before, f.value, *after])).sum(0)
        f.window = np.array([cx, cy, math.exp(log_side)], dtype=np.float32)
        past.append(f.value)
        stats.hold("smooth", len(ahead))
        return f

    for f in frames:
        if f is STALL:
            yield f
            continue
        if f.track is None or f.segment != segment:    # the track ends: no more look-ahead
            while ahead:
                yield release()
            past.clear()
            segment = f.segment
        if f.track is None:
            stats.passed += 1
            yield f
            continue
        x0, y0, x1, y1 = f.track
        side = max(x1 - x0, y1 - y0) * margin
        f.value = np.array([(x0 + x1) / 2, (y0 + y1) / 2, math.log(max(side, 1.0))], np.float64)
        ahead.append(f)
        stats.hold("smooth", len(ahead))
        if len(ahead) > radius:
            yield release()
    while ahead:
        yield release()


def crop_faces(frames, detector, size: int, margin: float, heatmap_size: int, sigma: float):
    """The face crop and its 68 landmark heatmaps, as the ``sample`` and ``heatmaps`` stages make
    them (landmarks fitted in the face found on the crop nearest its centre, else in the last one
    found on this track, else in the crop's own face window)."""
    half = size / margin / 2
    prior = np.array([size / 2 - half, size / 2 - half, size / 2 + half, size / 2 + half], np.float32)
    carried, segment = None, None
    for f in frames:
        if f is not STALL and f.window is not None:
            if f.segment != segment:
                carried, segment = None, f.segment
            crop = crop_near(f.image, f.window, size)
            found = detector.detect_faces(crop)
            if found:
                carried = min(found, key=lambda b: np.linalg.norm((b[:2] + b[2:]) / 2 - size / 2))
            points = detector.landmarks(crop, carried if carried is not None else prior)
            heat = render_heatmaps(points[None], size, heatmap_size, sigma)[0]
            f.crop = torch.from_numpy(crop).permute(2, 0, 1).float() / 255
            f.heat = torch.from_numpy(heat).float() / 255
        yield f


def crop_near(image: np.ndarray, window: np.ndarray, size: int) -> np.ndarray:
    """``crop_frame`` on the part of the frame the crop reads (its footprint plus the reach of the
    anti-aliasing filter): the same crop (up to rounding, at most one level), without filtering a
    whole HD frame for a small crop."""
    m = crop_matrix(window, size)
    s, h, w = m[0, 0], *image.shape[:2]
    reach = math.ceil(4 * max(s - 1, 0) / 2) + 2 if s > 1.5 else 2
    x0 = max(0, math.floor(m[0, 2]) - reach)
    x1 = min(w, math.ceil(m[0, 2] + (size - 1) * s) + reach + 1)
    y0 = max(0, math.floor(m[1, 2]) - reach)
    y1 = min(h, math.ceil(m[1, 2] + (size - 1) * s) + reach + 1)
    if x0 >= x1 or y0 >= y1:                      # entirely outside the frame: the pipeline's way
        return crop_frame(image, window, size)
    shifted = np.array([window[0] - x0, window[1] - y0, window[2]], dtype=np.float64)
    return crop_frame(image[y0:y1, x0:x1], shifted, size)


def five_frame_windows(frames, stats: BufferStats, n: int = NUM_FRAMES):
    """(frame, its n-frame window) in order; window indices clamped to the face track's ends;
    (frame, None) for frames that pass through."""
    half = n // 2
    buf: deque = deque()          # this track's frames from (next centre - half) on
    start = centre = 0            # the track's first frame index; the next centre to emit

    def emit(final: bool):
        nonlocal centre
        while buf and centre <= buf[-1].index and (final or centre + half <= buf[-1].index):
            by_index = {g.index: g for g in buf}
            ids = np.clip(np.arange(centre - half, centre + half + 1), start, buf[-1].index)
            yield by_index[centre], [by_index[int(i)] for i in ids]
            centre += 1
            while buf and buf[0].index < centre - half:
                buf.popleft()

    for f in frames:
        if f is STALL:
            yield f
            continue
        if buf and (f.crop is None or f.segment != buf[-1].segment):
            yield from emit(final=True)
            buf.clear()
        if f.crop is None:
            yield f, None
            continue
        if not buf:
            start = centre = f.index
        buf.append(f)
        stats.hold("window", len(buf))
        yield from emit(final=False)
    yield from emit(final=True)


def smoothstep(t: np.ndarray) -> np.ndarray:
    return t * t * (3 - 2 * t)


def paste(image: np.ndarray, residual: np.ndarray, window: np.ndarray, size: int,
          feather: float = FEATHER) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """``image`` plus the crop-space ``residual`` (S,S,3, in 0..255 units) mapped back through the
    inverse crop transform, under a feathered mask; pixels outside the crop are not touched.
    Returns (the new image, the rectangle ``(y0, y1, x0, x1)`` it may differ in; None: nowhere)."""
    term = paste_term(image.shape, residual, window, size, feather)
    return compose(image, [term] if term else [])


def compose(image: np.ndarray, terms: list) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """``image`` plus the ``paste_term`` corrections of its faces: each under its mask, and where
    masks overlap beyond a sum of 1 their mask-weighted mean. (new image, the rectangle it may
    differ in, or None)."""
    if not terms:
        return image, None
    y0, y1 = min(t[0][0] for t in terms), max(t[0][1] for t in terms)
    x0, x1 = min(t[0][2] for t in terms), max(t[0][3] for t in terms)
    if len(terms) == 1:
        acc, weight = terms[0][2] * terms[0][1], terms[0][1]
    else:
        acc = np.zeros((y1 - y0, x1 - x0, 3))
        weight = np.zeros((y1 - y0, x1 - x0, 1))
        for (ty0, ty1, tx0, tx1), mask, moved in terms:
            acc[ty0 - y0:ty1 - y0, tx0 - x0:tx1 - x0] += mask * moved
            weight[ty0 - y0:ty1 - y0, tx0 - x0:tx1 - x0] += mask
    out = image.copy()
    region = out[y0:y1, x0:x1].astype(np.float32) + acc / np.maximum(weight, 1)
    out[y0:y1, x0:x1] = np.clip(np.rint(region), 0, 255).astype(np.uint8)
    return out, (y0, y1, x0, x1)


def paste_term(shape, residual: np.ndarray, window: np.ndarray, size: int, feather: float = FEATHER):
    """The crop-space ``residual`` mapped into a frame of ``shape``: (rectangle ``(y0, y1, x0,
    x1)``, its feathered mask (h,w,1), the moved residual (h,w,3)), or None when the crop lies
    outside the frame."""
    m = crop_matrix(window, size)
    s, ox, oy = m[0, 0], m[0, 2], m[1, 2]
    h, w = shape[:2]
    x0, x1 = max(0, math.floor(ox - 0.5 * s)), min(w, math.ceil(ox + (size - 0.5) * s) + 1)
    y0, y1 = max(0, math.floor(oy - 0.5 * s)), min(h, math.ceil(oy + (size - 0.5) * s) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    u = (np.arange(x0, x1) - ox) / s              # crop coordinates of the frame pixels
    v = (np.arange(y0, y1) - oy) / s
    def ramp(c):                                  # 0 at the crop's edge, 1 past the feather band
        return smoothstep(np.clip(np.minimum(c + 0.5, size - 0.5 - c) / (feather * size), 0, 1))

    mask = (ramp(v)[:, None] * ramp(u)[None, :])[..., None]
    if s < 1 / 1.5:                               # crop finer than the frame: anti-alias first
        sd = (1 / s - 1) / 2
        residual = ndimage.gaussian_filter(residual, sigma=(sd, sd, 0))
    vv, uu = np.meshgrid(v, u, indexing="ij")
    moved = np.stack([ndimage.map_coordinates(residual[..., c], [vv, uu], order=1, mode="nearest")
                      for c in range(3)], axis=-1)
    return (y0, y1, x0, x1), mask, moved


def restore(windows, model: FineNet, device: torch.device, size: int, stats: BufferStats,
            checkpoint, batch: int = 1):
    """(frame index, full output RGB frame, the rectangle it differs from the decoded one in or
    None), in frame order: FineNet's correction pasted in (one face track), or the frame as
    decoded; ``restore_residuals`` with the paste."""
    for item in restore_residuals(windows, model, device, size, stats, checkpoint, batch):
        if item is STALL:
            yield item
            continue
        f, residual = item
        yield (f.index, *paste(f.image, residual, f.window, size)) if residual is not None else \
            (f.index, f.image, None)


TTA = ("none", "flip")


def predict(model: FineNet, frames: torch.Tensor, heat: torch.Tensor, tta: str = "none") -> torch.Tensor:
    """FineNet's output (B,3,S,S) in [0, 1] for windows (B,T,3,S,S) and heatmaps (B,T,68,s,s).

    ``tta="flip"``: the mean of the output and the mirrored output of the mirrored window (the
    frames and heatmaps flipped left-right, the heatmap channels swapped left <-> right as the
    training loader's flips swap them, ``FLIP_68``): twice the model's work. Where both passes
    keep the input (FineNet's keep gate), the mean is the input exactly."""
    out = model(frames, heat)["output"].float()
    if tta == "flip":
        mirrored = model(frames.flip(-1), heat[:, :, FLIP_68].flip(-1))["output"].float().flip(-1)
        out = (out + mirrored) / 2
    return out.clamp(0, 1)


@torch.inference_mode()
def restore_residuals(windows, model: FineNet, device: torch.device, size: int, stats: BufferStats,
                      checkpoint, batch: int = 1, tta: str = "none"):
    """(frame, FineNet's correction of its crop (S,S,3, 0..255 units) or None: the frame passes
    through), in frame order.

    ``batch`` consecutive windows go through FineNet in one call (stacked on the batch axis; a
    frame that passes through, or the end, sends the windows gathered so far at once). While a
    batch fills, its first windows' frames wait: at most ``batch - 1`` windows beyond the one just
    formed (the ``batch`` entry of ``stats``, counted only when ``batch > 1``), so the streaming
    bound grows by ``batch - 1`` frames. ``tta``: see ``predict``."""
    pending: list = []            # (frame, its window) waiting for the model call

    def flush():
        if not pending:
            return
        frames = torch.stack([torch.stack([g.crop for g in win]) for _, win in pending]).to(device)
        heat = torch.stack([torch.stack([g.heat for g in win]) for _, win in pending]).to(device)
        try:
            out = predict(model, frames, heat, tta)
        except RuntimeError as exc:
            raise FineNetError(checkpoint, f"the models fail on a {size}x{size} crop "
                                           f"({str(exc).splitlines()[0][:120]})") from None
        c = frames.shape[1] // 2      # the windows' centre (loader.num_frames frames)
        residuals = ((out - frames[:, c]) * 255).permute(0, 2, 3, 1).cpu().numpy()
        done = list(pending)
        pending.clear()
        if batch > 1:
            stats.hold("batch", 0)
        for (f, _), residual in zip(done, residuals):
            stats.deblurred += 1
            yield f, residual

    for item in windows:
        if item is STALL:
            yield item
            continue
        f, win = item
        if win is None:
            yield from flush()
            yield f, None
            continue
        pending.append((f, win))
        if batch > 1:
            stats.hold("batch", len(pending) - 1)
        if len(pending) >= batch:
            yield from flush()
    yield from flush()


# ------------------------------------------------------------------------------ face tracks

class TrackChain:
    """One face track's stages (bridge, smooth, crop, windows, FineNet), driven frame by frame:
    ``push`` a frame, and the corrections that became ready are in ``results``. Its input yields
    STALL while it has no frame, which the stages pass straight through, so a stage that waits
    for look-ahead simply keeps its state until the next push. One result per pushed frame, in
    order: ``(frame, correction or None)``."""

    def __init__(self, track: int, first: int, stages):
        self.track, self.first, self.last = track, first, first - 1
        self.queue: deque = deque()
        self.closed = False
        self.results: deque = deque()
        self.out = stages(self._input())

    def _input(self):
        while True:
            if self.queue:
                yield self.queue.popleft()
            elif self.closed:
                return
            else:
                yield STALL

    def push(self, frame: Frame) -> None:
        self.queue.append(frame)
        self.last = frame.index
        self._drain()

    def close(self) -> None:
        self.closed = True
        self._drain()

    def _drain(self) -> None:
        for item in self.out:
            if item is STALL:
                return
            self.results.append(item)

    def covers(self, index: int) -> bool:
        return self.first <= index <= self.last


def deblur_faces(images, detector, scale: float, faces: str, stages, size: int, stats: BufferStats):
    """(frame index, output RGB frame, the rectangle it may differ in or None), in frame order, for
    the decoded ``images``: every face track's corrections (``stages(track, first_frame)``: a
    ``TrackChain``'s stages) composed into each frame. ``faces``: "all" (``Tracker``) or
    "largest" (one track through the whole video: the largest face where it starts, then the
    nearest; the stages bridge its gaps and split it where a gap is too long)."""
    tracker = Tracker(MAX_GAP) if faces == "all" else None
    chains: list[TrackChain] = []
    live: dict[int, TrackChain] = {}
    waiting: deque = deque()                      # (index, image) not yet composed
    started: list = []                            # (stats entry, chain) of every track
    previous, missed = None, 0

    def start(track: int, first: int) -> TrackChain:
        chain = TrackChain(track, first, lambda feed: stages(feed, track))
        chains.append(chain)
        live[track] = chain
        stats.tracks.append(entry := {"id": track, "first": first})
        started.append((entry, chain))
        return chain

    def ready(final: bool):
        while waiting:
            index, image = waiting[0]
            covering = [c for c in chains if c.covers(index)]
            if any(not c.results for c in covering):
                if final:
                    raise AssertionError(f"track without a result for frame {index}")
                return
            waiting.popleft()
            terms = []
            for c in covering:
                f, residual = c.results.popleft()
                assert f.index == index, (f.index, index)
                if residual is not None:
                    term = paste_term(image.shape, residual, f.window, size)
                    if term is not None:
                        terms.append(term)
            chains[:] = [c for c in chains if not (c.closed and c.last <= index and not c.results)]
            if terms:
                stats.deblurred += 1
                stats.faces_deblurred += len(terms)
            else:
                stats.passed += 1
            yield (index, *compose(image, terms))

    for index, image in enumerate(images):
        found = detect_faces(image, detector, scale)
        waiting.append((index, image))
        if found:
            stats.detected += 1
        if tracker is None:
            box = None
            if found:
                box = previous = nearest_box(found, previous if missed <= MAX_GAP else None)
                missed = 0
            else:
                missed += 1
            (live.get(0) or start(0, index)).push(Frame(index, image, box=box))
        else:
            update = tracker.update(index, found)
            for track in update.ended:         # missed once more than MAX_GAP: this frame
                chain = live.pop(track)           # makes the run of misses too long to bridge,
                chain.push(Frame(index, image))   # so they all pass through
                chain.close()
            for track in update.started:
                start(track, index)
            for track, box in update.boxes.items():
                live[track].push(Frame(index, image, box=box))
        yield from ready(final=False)
    for chain in list(live.values()):
        chain.close()
    live.clear()
    yield from ready(final=True)
    for entry, chain in started:
        entry["last"] = chain.last


# --------------------------------------------------------------------------------- set-up

def check_model(path: Path, arch: str, config: dict, profile: str) -> None:
    """The checkpoint holds ``arch`` with exactly the configuration the parameters give."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        got_arch, got = blob["arch"], dict(blob["config"])
    except Exception as exc:                    # any unreadable file: one line, no traceback
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise FineNetError(path, f"not a loadable FineNet model ({line})") from None
    if got_arch != arch:
        raise FineNetError(path, f"holds a '{got_arch}' network where '{arch}' is expected")
    for key in sorted(set(config) | set(got)):
        if config.get(key) != got.get(key):
            raise FineNetError(path, f"does not match the parameters: trained with {key}={got.get(key)!r}, "
                                     f"profile '{profile}' gives {key}={config.get(key)!r} (pass the "
                                     f"--params / --profile it was trained with)")


def load_finenet(checkpoint, params: dict, device: torch.device) -> FineNet:
    """FineNet assembled from a models folder (None: the installed release), checked against the
    parameters, and byte for byte against the folder's release manifest where it has one."""
    root = Path(checkpoint) if checkpoint is not None else installed()
    if not root.is_dir():
        raise FineNetError(root, "checkpoint folder not found (the pipeline's models/ folder, "
                                 "made by dvc repro, or a release folder)")
    verify(root)
    nets = {}
    for net, variant in NETS:
        path = model_file(root, net, variant)
        if not path.is_file():
            raise FineNetError(path, "model file not found: the checkpoint folder needs predeblur/, "
                                     "enhance/full/, interp/full/ and combine/late/ model.pt")
        arch, config = net_config(params, net, variant)
        check_model(path, arch, config, params["profile"])
        nets[net] = load_model(path, device)
    return FineNet(nets["predeblur"], nets["enhance"], nets["interp"], nets["combine"]).eval()


def make_detectors(params: dict):
    """(face detector for whole frames, landmark detector for crops), as the pipeline uses them."""
    face = DlibDetector(upsample=params["data"]["detect_upsample"])
    lm = params["landmarks"]
    if lm["detector"] == "dlib":               # same models: share them, only the upsampling differs
        marks = copy.copy(face)
        marks.upsample = lm["upsample"]
        return face, marks
    return face, make_detector(lm["detector"], lm["upsample"], lm["device"])


@dataclass(eq=False)
class Loaded:
    """The model and detectors, loaded once (a folder of videos shares them: ``run(loaded=...)``)."""

    model: FineNet
    face_detector: object
    landmark_detector: object


def load(params: dict, checkpoint, device: torch.device) -> Loaded:
    """``load_finenet`` and ``make_detectors`` (one-line errors for a bad checkpoint)."""
    return Loaded(load_finenet(checkpoint, params, device), *make_detectors(params))


def parse_batch(batch) -> int:
    """``--batch``: a whole number of windows, 1 or more; else a one-line ``FineNetError``."""
    text = str(batch).strip()
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise FineNetError("--batch", f"must be a whole number of five-frame windows, 1 or more, "
                                      f"got {batch!r}")
    return int(text)


def check_output(path: Path, source: Path | None = None) -> str:
    """The output's container format; an error now if its folder cannot be written, or if it is
    the input ``source`` itself under any name (the same path, ``./`` or absolute, a symbolic or a
    hard link: the same device and inode), which writing the output would replace."""
    if source is not None:
        try:
            same = os.path.samefile(path, source)
        except OSError:                         # either is missing: they cannot be one file
            same = False
        if same:
            alias = "" if str(path) == str(source) else f" ({source}, under another name)"
            raise FineNetError(path, f"is the input video{alias}: writing the output there would "
                                     f"replace the original; give the output another name")
    fmt = output_format(path)
    if path.is_dir():
        raise FineNetError(path, "is a folder: give the output video's file name")
    folder = path.absolute().parent
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise FineNetError(folder, f"output folder cannot be made: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise FineNetError(folder, "output folder is not writable")
    return fmt


# ------------------------------------------------------------------------------------ run

def run(params: dict, source, output, checkpoint=None, device: str = "auto",
        progress: bool = True, stats: BufferStats | None = None, *, crf=None, lossless: bool = False,
        preset: str | None = None, compare=None, labels=None, batch=1, faces: str = "all",
        tta: str = "none", loaded: Loaded | None = None) -> dict:
    """Deblur ``source`` into ``output``; returns a summary (frames, timings, buffer peaks, the
    output's pixel format and encoder settings). ``crf`` (x264, 0..51; default
    ``video_io.DEFAULT_CRF``) or ``lossless`` (x264 qp 0), ``preset`` (x264). ``compare``: also
    write the side-by-side comparison video there (``finenet.compare``; ``labels``: "left,right"
    text above its halves), atomically with the output: a failure leaves neither. ``batch``:
    windows per model call (``restore``). ``faces``: "all" or "largest" (``deblur_faces``).
    ``tta``: "none" or "flip" (``predict``).
    ``loaded``: the model and detectors, already loaded.

    A folder ``source`` deblurs each of its videos into the folder ``output``
    (``finenet.folder.run_folder``, which returns its summary)."""
    if Path(source).is_dir():
        from .folder import run_folder

        return run_folder(params, source, output, checkpoint, device, progress, crf=crf,
                          lossless=lossless, preset=preset, compare=compare, labels=labels,
                          batch=batch, faces=faces, tta=tta)
    source, output = Path(source), Path(output)
    d, lm = params["data"], params["landmarks"]
    size = d["crop_size"]
    encoding = parse_encoding(crf, lossless, preset)
    batch, labels = parse_batch(batch), parse_labels(labels, compare)
    if faces not in FACES:
        raise FineNetError("--faces", f"must be one of {', '.join(FACES)}, got {faces!r}")
    if tta not in TTA:
        raise FineNetError("--tta", f"must be one of {', '.join(TTA)}, got {tta!r}")
    comparison = check_compare(compare, source, output, check_output)   # (path, format) or None
    dev = pick_device(device, "--device")
    fmt = check_output(output, source)               # also: not the input under another name
    remove_stale_temps(output.absolute().parent)     # left by killed runs, for any output name
    note = lambda msg: tqdm.write(msg, file=sys.stderr)  # noqa: E731
    # damaged frames, an end short of the declared length: warned when decoding gets to the end
    video = VideoSource(source, warn=lambda problem: note(f"finenet: warning: {source}: {problem}"))
    stats = stats or BufferStats()
    try:
        loaded = loaded or load(params, checkpoint, dev)
        model, face_detector, landmark_detector = (loaded.model, loaded.face_detector,
                                                   loaded.landmark_detector)
        scale = min(1.0, DETECT_MAX_SIDE / max(video.width, video.height))
        layout = video.layout
        if video.note:
            note(f"finenet: note: {source}: {video.note}")
        timing = video.check_timing()
        if timing:
            note(f"finenet: warning: {source}: {timing}")
        out_size = layout.padded_size(video.width, video.height)
        if out_size != (video.width, video.height):
            odd = [side for side, n, m in (("width", out_size[0], video.width),
                                           ("height", out_size[1], video.height)) if n != m]
            note(f"finenet: note: {source}: {video.width}x{video.height} padded to "
                 f"{out_size[0]}x{out_size[1]} ({layout.pix_fmt} needs an even {' and '.join(odd)}; "
                 f"last column/row repeated)")
        pictures: deque = deque()       # decoded frames (YUV planes + RGB) not yet written

        def decoded():
            for picture in video:
                pictures.append(picture)
                yield picture.rgb

        def stages(feed, track: int):
            """One face track's steps 2-5 (its buffers reported under its own names)."""
            st = stats.for_track(track)
            frames = bridge_gaps(feed, MAX_GAP, st)
            frames = smooth_windows(frames, d["box_smoothing"], d["crop_margin"], st)
            frames = crop_faces(frames, landmark_detector, size, d["crop_margin"], lm["heatmap_size"],
                                lm["sigma"])
            windows = five_frame_windows(frames, st, params["loader"]["num_frames"])
            return restore_residuals(windows, model, dev, size, st, checkpoint, batch, tta)

        images = deblur_faces(decoded(), face_detector, scale, faces, stages, size, stats)
        start = time.perf_counter()
        if comparison is not None:
            remove_stale_temps(comparison[0].absolute().parent)
        try:
            with temp_outputs(output, comparison and comparison[0]) as (tmp, compare_tmp):
                sink = VideoSink(tmp, video.width, video.height, video.fps, fmt,
                                 audio_from=source if video.has_audio else None, notify=note,
                                 layout=layout, encoding=encoding,
                                 time_base=video.time_base if video.variable_rate else None)
                beside = None               # the comparison video's writer
                try:
                    if comparison is not None:
                        beside = CompareSink(compare_tmp, sink, comparison[1], labels,
                                             where=comparison[0])
                    with tqdm(total=video.frames_hint or None, desc=f"deblur {source.name}",
                              unit="frame", disable=not progress, leave=False) as bar:
                        for index, image, rect in images:
                            picture = pictures.popleft()
                            assert picture.index == index, (picture.index, index)
                            sink.write(picture, image, rect)    # rect None: the planes as decoded
                            if beside is not None:
                                beside.write(picture, image, rect)
                            bar.update(1)
                    if stats.detected == 0:
                        raise FineNetError(source, f"no face detected in any of the {video.count} frames")
                except BaseException:
                    sink.abort()
                    if beside is not None:
                        beside.abort()
                    raise
                sink.close()
                if beside is not None:
                    beside.close()
        except OSError as exc:
            raise FineNetError(output.absolute().parent,
                               f"cannot write the output here ({exc.strerror or exc})") from None
        seconds = time.perf_counter() - start
    finally:
        video.close()
    return {"input": str(source), "output": str(output), "frames": video.count,
            "rotation": layout.rotation, "shortfall": video.shortfall,
            "corrupt_frames": len(video.corrupt),
            "fps": float(video.fps), "size": [video.width, video.height], "output_size": list(out_size),
            "input_pix_fmt": layout.input_pix_fmt, "pix_fmt": layout.pix_fmt,
            "color_range": "full" if layout.full_range else "limited", "matrix": layout.matrix_name,
            **encoding.describe(),
            "faces": faces, "tracks": stats.tracks, "faces_detected": stats.detected,
            "deblurred": stats.deblurred, "faces_deblurred": stats.faces_deblurred,
            "passed_through": stats.passed, "audio": sink.audio_mode, "device": dev.type,
            "seconds": round(seconds, 3), "frames_per_s": round(video.count / max(seconds, 1e-9), 3),
            "buffer_peak": dict(stats.peak), "buffer_peak_total": stats.peak_total,
            "batch": batch, "compare": str(comparison[0]) if comparison else None,
            "compare_size": [beside.width, beside.height] if beside else None}
