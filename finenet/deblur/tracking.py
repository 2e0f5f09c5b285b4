"""``finenet deblur``'s face tracks, streamed frame by frame (steps 1-5 of the package's
docstring): detection, gap bridging, the smoothed crop windows, the crops and their
landmark heatmaps, the five-frame windows, and the per-track chains that drive them.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from ..face.crop import crop_frame, crop_matrix, nearest_box
from ..face.tracker import Tracker
from ..face.heatmap import render_heatmaps
from .paste import compose, paste_term


MAX_GAP = 5             # longest run of frames without a detected face that is bridged
TRUNCATE = 3.0          # box smoothing window: +-ceil(TRUNCATE x sigma) frames (the look-ahead)
DETECT_MAX_SIDE = 640   # faces are searched on frames shrunk to this longer side at most
NUM_FRAMES = 5
FACES = ("all", "largest")


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


