"""Saving and loading models (arch name + config + weights) and resumable training state."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import torch

from .atomic import atomic_path
from .errors import FineNetError
from .models import build


def stable_bytes(obj) -> bytes:
    """``torch.save`` into memory: the zip's inner folder is then always named ``archive`` (saved to
    a file, it is named after the file, a random temp name here), so the same content gives the same
    bytes and DVC / the training fingerprints see no change where there is none."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def save_model(path, arch: str, config: dict, module: torch.nn.Module, **extra) -> None:
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    data = stable_bytes({"arch": arch, "config": config, "state_dict": state, **extra})
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def content_digest(path) -> bytes:
    """SHA-256 of a saved model's content: its metadata (arch, config, ...) as sorted JSON and its
    ``state_dict`` tensors (name, dtype, shape, raw values) in name order. Two files holding the
    same weights and metadata get the same digest whatever their bytes (zip layout, pickle
    details); a file that does not load as a model is hashed by its bytes."""
    path = Path(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        state = blob["state_dict"]
    except Exception:                   # unreadable: its bytes (loading it later says what is wrong)
        return hashlib.sha256(path.read_bytes()).digest()
    h = hashlib.sha256()
    meta = {k: v for k, v in blob.items() if k != "state_dict"}
    h.update(json.dumps(meta, sort_keys=True, default=repr).encode())
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous().reshape(-1)
        h.update(json.dumps([name, str(t.dtype), list(state[name].shape)]).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.digest()


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
    data = stable_bytes(state)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def load_state(path) -> dict | None:
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError):
        return None   # unreadable checkpoint: start over rather than fail (nothing else is lost)
