"""A PyTorch ``Dataset`` of N-frame windows (default 5: t-2 … t+2) read from a packed set.

Each item: ``frames`` (N,3,P,P) blurry input in [0,1], ``heatmaps`` (N,68,p,p) in [0,1] (p = P /
heatmap stride), ``target`` (3,P,P) the sharp centre frame, ``sharp`` (N,3,P,P) all sharp frames
(for the two-stage pre-deblur), and the clip id and centre index. Training mode takes random
P x P crops aligned to the heatmap grid and random horizontal flips (heatmap channels mirrored
with the iBUG-68 permutation). ``oracle=True`` serves heatmaps from the sharp frames instead.
``ground_truth=False`` serves the clips without ground truth (real blur): no ``sharp``/``target``.
``blurred_centres=True`` serves only the windows whose centre frame the blur stage blurred (the
deblurring networks train on those: a frame left sharp is the combiner's lesson, see
``train.sharp_centres``); ``blurred`` (N,) marks which frames of a window were blurred.
``whole=True`` also serves ``whole`` (N,3,S,S), the window's uncropped frames, flipped with the
patch (late fusion's keep model judges the whole face crops).

Windows whose centre is within N//2 of a clip end are skipped in training; in evaluation
(``pad=True``) every frame is a centre and the window indices are clamped at the ends.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import FineNetError
from ..face.heatmap import FLIP_68

H5_ERRORS = (OSError, KeyError, RuntimeError, ValueError)   # what h5py raises on a damaged file
REBUILD = "rebuild it (delete it, then dvc repro)"


class ShardError(FineNetError):
    """An unreadable HDF5 shard, as one ``<file>: <problem>`` line. It survives a DataLoader
    worker: torch re-raises a worker's exception as ``type(message)``, the message being the
    formatted traceback, whose last line (``...ShardError: <file>: <problem>``) is parsed back."""

    def __init__(self, where, problem: str | None = None):
        if problem is None:
            last = (str(where).strip().splitlines() or [""])[-1]
            where, _, problem = last.split("ShardError: ", 1)[-1].partition(": ")
        super().__init__(where, problem)


def h5_problem(exc: BaseException) -> str:
    return ((str(exc).strip().strip("'\"").splitlines() or [type(exc).__name__])[0])[:160]


def open_set(path) -> h5py.File:
    """A packed set, read-only; a file HDF5 cannot open is one line naming it."""
    try:
        return h5py.File(path, "r")
    except H5_ERRORS as exc:
        raise ShardError(path, f"unreadable HDF5 set ({h5_problem(exc)}): {REBUILD}") from None


def shard_file(set_path, f: h5py.File, clip: str) -> Path:
    """The file a packed set's clip group lives in: its external link's target (relative to the
    set's folder), else the set file itself."""
    link = f.get(clip, getlink=True)
    if isinstance(link, h5py.ExternalLink):
        return Path(os.path.normpath(Path(set_path).parent / link.filename))
    return Path(set_path)


def check_group(set_path, f: h5py.File, clip: str) -> h5py.Group:
    """Open a clip's group and touch every dataset's metadata (shape, type, chunk index), so a
    missing, truncated or damaged shard fails here, naming the file, before any step runs."""
    where = shard_file(set_path, f, clip)
    if not where.is_file():
        raise ShardError(where, f"shard of clip {clip} not found: {REBUILD}")
    try:
        g = f[clip]
        for name in g:
            ds = g[name]
            if isinstance(ds, h5py.Dataset):
                _ = ds.shape, ds.dtype, ds.chunks, ds.id.get_storage_size()
    except H5_ERRORS as exc:
        raise ShardError(where, f"unreadable HDF5 shard ({h5_problem(exc)}): {REBUILD}") from None
    return g


class WindowDataset(Dataset):
    def __init__(self, set_file, num_frames: int = 5, patch_size: int | None = None,
                 flip: bool = False, oracle: bool = False, pad: bool = False, ground_truth: bool = True,
                 blurred_centres: bool = False, whole: bool = False):
        self.path = Path(set_file)
        if not self.path.is_file():
            raise FineNetError(self.path, "packed set not found: run the pipeline (dvc repro)")
        if num_frames % 2 == 0:
            raise FineNetError("loader.num_frames", f"must be odd, got {num_frames}")
        self.num_frames, self.patch_size, self.flip, self.oracle = num_frames, patch_size, flip, oracle
        self.ground_truth, self.whole = ground_truth, whole   # whole: also serve the uncropped centre frame
        half = num_frames // 2
        self.index: list[tuple[str, int]] = []
        self.lengths: dict[str, int] = {}
        self.sharp_centres = 0                 # windows whose centre frame the blur stage left sharp
        self.files: dict[str, Path] = {}      # clip -> the shard it is read from (error messages)
        with open_set(self.path) as f:
            for clip in sorted(f.keys()):
                g = check_group(self.path, f, clip)
                self.files[clip] = shard_file(self.path, f, clip)
                if ("sharp" in g) != ground_truth or (oracle and "heatmaps_sharp" not in g):
                    continue  # real-blur clips have no target; ground_truth=False serves only them
                n = len(g["blurry"])
                self.lengths[clip] = n
                centres = range(n) if pad else range(half, n - half)
                try:
                    kernel = g["kernel"][:, 0]
                except H5_ERRORS as exc:
                    raise ShardError(self.files[clip], f"cannot read clip {clip}'s kernels "
                                                       f"({h5_problem(exc)}): {REBUILD}") from None
                if blurred_centres:
                    centres = [t for t in centres if kernel[t] > 1]
                self.index += [(clip, t) for t in centres]
                self.sharp_centres += sum(int(kernel[t] <= 1) for t in centres)
                self.crop = g["blurry"].shape[1]
                self.stride = self.crop // g["heatmaps"].shape[-1]
        if not self.index:
            kind = "with" if ground_truth else "without"
            centre = " and a blurred centre frame" if blurred_centres else ""
            raise FineNetError(self.path, f"no {num_frames}-frame windows {kind} ground truth{centre} in this set")
        if patch_size and (patch_size > self.crop or patch_size % self.stride):
            raise FineNetError("loader.patch_size", f"{patch_size} must be <= {self.crop} and a "
                                                    f"multiple of the heatmap stride {self.stride}")
        self._file = None
        self._pid = None

    def __len__(self) -> int:
        return len(self.index)

    def _h5(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():   # one handle per worker process
            self._file, self._pid = h5py.File(self.path, "r"), os.getpid()
        return self._file

    def __getitem__(self, key) -> dict:
        """``key``: an index, or ``(index, seed)`` to draw the crop and flip from that seed (the
        trainer does, so that a batch depends only on the step number and resuming is exact)."""
        i, seed = key if isinstance(key, tuple) else (key, int(torch.randint(2 ** 31, ())))
        rng = np.random.default_rng(seed)
        clip, t = self.index[i]
        half, n = self.num_frames // 2, self.lengths[clip]
        ids = np.clip(np.arange(t - half, t + half + 1), 0, n - 1)
        uniq, inverse = np.unique(ids, return_inverse=True)       # h5py wants increasing indices
        try:                                   # a damaged chunk: one line naming the shard
            g = self._h5()[clip]
            frames = g["blurry"][uniq][inverse]
            sharp = g["sharp"][uniq][inverse] if self.ground_truth else frames[:0]
            heat = g["heatmaps_sharp" if self.oracle else "heatmaps"][uniq][inverse]
            blurred = g["kernel"][uniq, 0][inverse] > 1
        except H5_ERRORS as exc:
            raise ShardError(self.files.get(clip, self.path),
                             f"cannot read clip {clip} frames {int(uniq[0])}-{int(uniq[-1])} "
                             f"({h5_problem(exc)}): the shard is damaged; {REBUILD}") from None
        whole = frames                         # the whole crops, before the patch is cut
        if self.patch_size:
            p, s = self.patch_size, self.stride
            cells = (self.crop - p) // s + 1
            y, x = (int(v) * s for v in rng.integers(cells, size=2))
            frames, sharp = frames[:, y:y + p, x:x + p], sharp[:, y:y + p, x:x + p]
            heat = heat[:, :, y // s:(y + p) // s, x // s:(x + p) // s]
        if self.flip and rng.random() < 0.5:
            frames, sharp, whole = frames[:, :, ::-1], sharp[:, :, ::-1], whole[:, :, ::-1]
            heat = heat[:, FLIP_68, :, ::-1]
        to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float() / 255  # noqa: E731
        item = {"frames": to_t(frames), "heatmaps": torch.from_numpy(np.ascontiguousarray(heat)).float() / 255,
                "blurred": torch.from_numpy(blurred), "clip": clip, "t": t,
                **({"whole": to_t(whole)} if self.whole else {})}
        if self.ground_truth:
            item["sharp"] = to_t(sharp)
            item["target"] = item["sharp"][half]
        return item
