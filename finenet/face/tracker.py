"""Multi-face tracking for ``finenet deblur --faces all``: detections of each frame assigned to
face tracks, an ID per track.

Each live track predicts its next box from its last one and its velocity (boxes per frame,
smoothed); the frame's detections are matched to the predictions by the Hungarian algorithm
(``scipy.optimize.linear_sum_assignment``) on 1 - IoU, a match needing an IoU of at least
``MIN_IOU``. So one detection goes to one track (two tracks never merge onto one face), and two
faces that cross keep their IDs as long as their predicted boxes overlap their own detections
more than each other's. A track that finds no detection is carried (its prediction, not a
detection: the frame is a miss for it) for at most ``max_gap`` frames, then ends; a detection
that matches no track starts a new one. IDs count up from 0 in the order tracks start (within a
frame, left to right).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

MIN_IOU = 0.2            # a detection continues a track only if it overlaps its prediction this much
VELOCITY_SMOOTHING = 0.5  # weight of the newest displacement in the track's velocity


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes (x0, y0, x1, y1): (N,4) x (M,4) -> (N,M)."""
    a, b = np.asarray(a, np.float64)[:, None], np.asarray(b, np.float64)[None]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


@dataclass
class Track:
    id: int
    box: np.ndarray                       # the last detected box
    last: int                             # the frame it was detected in
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    misses: int = 0

    def predict(self, index: int) -> np.ndarray:
        return self.box + self.velocity * (index - self.last)


@dataclass
class Update:
    """What one frame did to the tracks."""

    boxes: dict[int, np.ndarray | None]   # every live track: its detection here, or None (a miss)
    started: list[int]                    # tracks that start here (also in ``boxes``)
    ended: list[int]                      # tracks that ended before this frame (missed too long)


class Tracker:
    def __init__(self, max_gap: int):
        self.max_gap = max_gap
        self.tracks: dict[int, Track] = {}
        self.next_id = 0

    def update(self, index: int, detections: list[np.ndarray]) -> Update:
        """Assign frame ``index``'s detections to the tracks."""
        dets = [np.asarray(d, np.float64) for d in detections]
        ids = list(self.tracks)
        matched: dict[int, int] = {}
        if ids and dets:
            pred = np.stack([self.tracks[t].predict(index) for t in ids])
            overlap = iou(pred, np.stack(dets))
            rows, cols = linear_sum_assignment(1 - overlap)
            matched = {ids[r]: c for r, c in zip(rows, cols) if overlap[r, c] >= MIN_IOU}
        boxes: dict[int, np.ndarray | None] = {}
        ended = []
        for t in ids:
            track = self.tracks[t]
            if t in matched:
                box = dets[matched[t]]
                step = (box - track.box) / (index - track.last)
                track.velocity = VELOCITY_SMOOTHING * step + (1 - VELOCITY_SMOOTHING) * track.velocity
                track.box, track.last, track.misses = box, index, 0
                boxes[t] = box
            else:
                track.misses += 1
                if track.misses > self.max_gap:
                    ended.append(t)
                    del self.tracks[t]
                else:
                    boxes[t] = None
        used = set(matched.values())
        fresh = sorted((c for c in range(len(dets)) if c not in used), key=lambda c: (dets[c][0], dets[c][1]))
        started = []
        for c in fresh:
            t = self.next_id
            self.next_id += 1
            self.tracks[t] = Track(t, dets[c], index)
            boxes[t] = dets[c]
            started.append(t)
        return Update(boxes, started, ended)

    def finish(self) -> list[int]:
        """The tracks still live at the end of the video (they end there)."""
        ids = list(self.tracks)
        self.tracks.clear()
        return ids
