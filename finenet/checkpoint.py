"""Saving and loading models (arch name + config + weights) and resumable training state.

Both are read with ``torch.load(weights_only=True)``: tensors, dicts, lists, numbers and strings
only, never arbitrary pickled objects (a checkpoint shared through a DVC remote cannot run code).
A model file carries the SHA-256 of its own content (``digest``, ``content_digest``), checked on
load: a flipped byte in a tensor is an error naming the file, not a silently different model.
A training state is kept as ``last.pt`` and the one before it as ``prev.pt``; an unreadable
``last.pt`` is reported, moved aside (``last.pt.corrupt``) and the run resumes from ``prev.pt``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import sys
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


LOAD_ERRORS = (RuntimeError, KeyError, EOFError, OSError, ValueError, TypeError, AttributeError,
               pickle.UnpicklingError)     # what torch.load / build / load_state_dict raise on a bad file


def save_model(path, arch: str, config: dict, module: torch.nn.Module, **extra) -> None:
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    blob = {"arch": arch, "config": config, "state_dict": state, **extra}
    blob["digest"] = _digest(blob).hexdigest()
    data = stable_bytes(blob)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _digest(blob: dict):
    """SHA-256 of a model's content (see ``content_digest``); the ``digest`` entry itself is left
    out, so a file's recorded digest is its content digest."""
    state = blob["state_dict"]
    h = hashlib.sha256()
    meta = {k: v for k, v in blob.items() if k not in ("state_dict", "digest")}
    h.update(json.dumps(meta, sort_keys=True, default=repr).encode())
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous().reshape(-1)
        h.update(json.dumps([name, str(t.dtype), list(state[name].shape)]).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h


def content_digest(path) -> bytes:
    """SHA-256 of a saved model's content: its metadata (arch, config, ...) as sorted JSON and its
    ``state_dict`` tensors (name, dtype, shape, raw values) in name order. Two files holding the
    same weights and metadata get the same digest whatever their bytes (zip layout, pickle
    details); a file that does not load as a model is hashed by its bytes."""
    path = Path(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        return _digest(blob).digest()
    except Exception:                   # unreadable: its bytes (loading it later says what is wrong)
        return hashlib.sha256(path.read_bytes()).digest()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]


def load_model(path, device="cpu") -> torch.nn.Module:
    """The model a ``save_model`` file holds, its recorded digest checked (a file written before
    digests were recorded has none to check)."""
    path = Path(path)
    if not path.is_file():
        raise FineNetError(path, "model file not found: train it first (dvc repro)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or "state_dict" not in blob:
            raise KeyError("no state_dict")
        recorded = blob.get("digest")
        if recorded is not None and _digest(blob).hexdigest() != recorded:
            raise FineNetError(path, "corrupt model file: its weights do not match the SHA-256 recorded "
                                     "when it was saved (re-fetch it: dvc pull, or retrain: dvc repro)")
        model = build(blob["arch"], **blob["config"])
        model.load_state_dict(blob["state_dict"])
    except FineNetError:
        raise
    except LOAD_ERRORS as exc:
        raise FineNetError(path, f"not a loadable FineNet model ({_first_line(exc)})") from None
    return model.to(device).eval()


def previous_state(path) -> Path:
    """Where the training state before ``path``'s is kept (``prev.pt`` next to ``last.pt``)."""
    path = Path(path)
    return path.with_name("prev" + path.suffix)


def save_state(path, **state) -> None:
    """Write the training state to ``path`` (atomically), keeping the one it replaces as
    ``previous_state(path)``: a state that turns out unreadable still has a good one before it."""
    path = Path(path)
    data = stable_bytes(state)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
        if path.is_file():
            os.replace(path, previous_state(path))


def _read_state(path: Path):
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "step" not in state:
        raise KeyError("not a training state")
    return state


def load_state(path, warn=None) -> dict | None:
    """The training state saved at ``path``, or None when there is none. An unreadable one is not
    silently dropped: it is reported (``warn``, default a line on stderr), moved aside to
    ``<path>.corrupt``, and the previous state (``prev.pt``) is used if it reads."""
    path = Path(path)
    warn = warn or (lambda msg: print(f"finenet: {msg}", file=sys.stderr))
    for candidate in (path, previous_state(path)):
        if not candidate.is_file():
            continue
        try:
            state = _read_state(candidate)
        except LOAD_ERRORS as exc:
            aside = candidate.with_name(candidate.name + ".corrupt")
            os.replace(candidate, aside)
            warn(f"{candidate}: unreadable training checkpoint ({_first_line(exc)}); kept aside as {aside}")
            continue
        if candidate != path:
            warn(f"{path}: resuming from the previous checkpoint {candidate} (step {state['step']})")
        return state
    return None
