"""Saving and loading models (arch name + config + weights) and resumable training state."""

from __future__ import annotations

from pathlib import Path

import torch

from .atomic import atomic_path
from .errors import FineNetError
from .models import build


def save_model(path, arch: str, config: dict, module: torch.nn.Module, **extra) -> None:
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"arch": arch, "config": config, "state_dict": state, **extra}, tmp)


def load_model(path, device="cpu") -> torch.nn.Module:
    path = Path(path)
    if not path.is_file():
        raise FineNetError(path, "model file not found: train it first (dvc repro)")
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
        model = build(blob["arch"], **blob["config"])
        model.load_state_dict(blob["state_dict"])
    except (RuntimeError, KeyError, EOFError) as exc:
        raise FineNetError(path, f"not a loadable FineNet model ({str(exc).splitlines()[0][:120]})") from None
    return model.to(device).eval()


def save_state(path, **state) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path) -> dict | None:
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError):
        return None   # unreadable checkpoint: start over rather than fail (nothing else is lost)
