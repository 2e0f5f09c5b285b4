"""Which torch device a run uses: the one place that reads ``train.device`` / ``--device``."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from .errors import FineNetError


def pick_device(name: str, where: str = "train.device") -> torch.device:
    """``auto`` (CUDA when present), ``cpu`` or ``cuda[:N]``; under torchrun, this rank's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name != "cpu" and not name.startswith("cuda"):
        raise FineNetError(where, f"unknown device '{name}' (auto, cpu or cuda)")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FineNetError(where, "CUDA requested but no GPU is available")
    if name.startswith("cuda") and dist.is_initialized():
        name = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return torch.device(name)
