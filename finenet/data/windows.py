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


class WindowDataset(Dataset):
    def __init__(self, set_file, num_frames: int = 5, patch_size: int | None = None,
                 flip: bool = False, oracle: bool = False, pad: bool = False, ground_truth: bool = True,
                 blurred_centres: bool = False):
        self.path = Path(set_file)
        if not self.path.is_file():
            raise FineNetError(self.path, "packed set not found: run the pipeline (dvc repro)")
        if num_frames % 2 == 0:
            raise FineNetError("loader.num_frames", f"must be odd, got {num_frames}")
        self.num_frames, self.patch_size, self.flip, self.oracle = num_frames, patch_size, flip, oracle
        self.ground_truth = ground_truth
        half = num_frames // 2
        self.index: list[tuple[str, int]] = []
        self.lengths: dict[str, int] = {}
        self.sharp_centres = 0                 # windows whose centre frame the blur stage left sharp
        with h5py.File(self.path, "r") as f:
            for clip in sorted(f.keys()):
                g = f[clip]
                if ("sharp" in g) != ground_truth or (oracle and "heatmaps_sharp" not in g):
                    continue  # real-blur clips have no target; ground_truth=False serves only them
                n = len(g["blurry"])
                self.lengths[clip] = n
                centres = range(n) if pad else range(half, n - half)
                kernel = g["kernel"][:, 0]
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
        g = self._h5()[clip]
        half, n = self.num_frames // 2, self.lengths[clip]
        ids = np.clip(np.arange(t - half, t + half + 1), 0, n - 1)
        uniq, inverse = np.unique(ids, return_inverse=True)       # h5py wants increasing indices
        frames = g["blurry"][uniq][inverse]
        whole = frames[half]                   # the whole centre crop, before the patch is cut
        sharp = g["sharp"][uniq][inverse] if self.ground_truth else frames[:0]
        heat = g["heatmaps_sharp" if self.oracle else "heatmaps"][uniq][inverse]
        if self.patch_size:
            p, s = self.patch_size, self.stride
            cells = (self.crop - p) // s + 1
            y, x = (int(v) * s for v in rng.integers(cells, size=2))
            frames, sharp = frames[:, y:y + p, x:x + p], sharp[:, y:y + p, x:x + p]
            heat = heat[:, :, y // s:(y + p) // s, x // s:(x + p) // s]
        if self.flip and rng.random() < 0.5:
            frames, sharp, whole = frames[:, :, ::-1], sharp[:, :, ::-1], whole[:, ::-1]
            heat = heat[:, FLIP_68, :, ::-1]
        to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float() / 255  # noqa: E731
        item = {"frames": to_t(frames), "heatmaps": torch.from_numpy(np.ascontiguousarray(heat)).float() / 255,
                "blurred": torch.from_numpy(g["kernel"][uniq, 0][inverse] > 1), "clip": clip, "t": t,
                "whole": to_t(whole[None])[0]}
        if self.ground_truth:
            item["sharp"] = to_t(sharp)
            item["target"] = item["sharp"][half]
        return item
