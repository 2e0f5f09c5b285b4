"""``finenet deblur``'s models: loading FineNet and the detectors (checked against the parameters
and the release manifest), and running FineNet on the windows of a stream (``predict``,
``restore_residuals``, with the optional mirrored pass).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint import load_model
from ..errors import FineNetError
from ..face.detectors import DlibDetector, make_detector
from ..face.heatmap import FLIP_68
from ..layout import model_file
from ..models.finenet import FineNet, combiner_inputs
from ..models.registry import full_config
from ..tiers.release import FINENET_RUNS, installed, verify
from ..models.config import net_config
from .paste import paste
from .tracking import STALL, BufferStats


def restore(windows, model: FineNet, device: torch.device, size: int, stats: BufferStats,
            checkpoint, batch: int = 1, face: int | None = None):
    """(frame index, full output RGB frame, the rectangle it differs from the decoded one in or
    None), in frame order: FineNet's correction pasted in (one face track), or the frame as
    decoded; ``restore_residuals`` with the paste."""
    for item in restore_residuals(windows, model, device, size, stats, checkpoint, batch, face=face):
        if item is STALL:
            yield item
            continue
        f, residual = item
        yield (f.index, *paste(f.image, residual, f.window, size)) if residual is not None else \
            (f.index, f.image, None)


TTA = ("none", "flip")
KEEP_BIAS = 2.0         # a frame is kept as it is where the keep logit > -KEEP_BIAS (``--keep-bias``;
                        # README: chosen on val)


def check_keep_bias(bias) -> float:
    """``bias`` (``--keep-bias``) when it is a number from 0 to 10, else a one-line ``FineNetError``."""
    if isinstance(bias, bool) or not (isinstance(bias, (int, float)) and math.isfinite(bias)
                                      and 0 <= bias <= 10):
        raise FineNetError("--keep-bias", f"must be a number from 0 to 10 (keep-logit units), got {bias!r}")
    return float(bias)


def output(model: FineNet, frames: torch.Tensor, heat: torch.Tensor,
           judged: torch.Tensor | None = None, keep_bias: float = 0.0) -> torch.Tensor:
    """FineNet's output frame t (``model(frames, heat)["output"]``); with ``judged``, the windows
    its combiner's keep model judges instead of ``frames`` (the composition of ``FineNet.forward``,
    ``models.finenet.combiner_inputs``, then the combiner with ``judged``). ``keep_bias`` > 0: a
    frame is also returned as it is where the keep logit is above -``keep_bias`` (the combiner
    keeps it above 0): a lean towards leaving frames alone (late fusion only; early fusion has no
    keep model)."""
    if judged is None and not keep_bias:
        return model(frames, heat)["output"]
    shared = combiner_inputs(model.frontend, model.enhance, model.interp, frames, heat)
    fused = model.combiner(*shared, judged=judged)
    if keep_bias and fused.keep_logit is not None:
        keep = (fused.keep_logit + keep_bias > 0)[:, None, None, None]
        return torch.where(keep, frames[:, frames.shape[1] // 2], fused.image)
    return fused.image


def predict(model: FineNet, frames: torch.Tensor, heat: torch.Tensor, tta: str = "none",
            judged: torch.Tensor | None = None, keep_bias: float = 0.0) -> torch.Tensor:
    """FineNet's output (B,3,S,S) in [0, 1] for windows (B,T,3,S,S) and heatmaps (B,T,68,s,s);
    ``judged``: the windows its keep model judges (default ``frames``), ``keep_bias``: see ``output``.

    ``tta="flip"``: the mean of the output and the mirrored output of the mirrored window (the
    frames and heatmaps flipped left-right, the heatmap channels swapped left <-> right as the
    training loader's flips swap them, ``FLIP_68``): twice the model's work. Where both passes
    keep the input (FineNet's keep gate), the mean is the input exactly."""
    out = output(model, frames, heat, judged, keep_bias).float()
    if tta == "flip":
        mirrored = output(model, frames.flip(-1), heat[:, :, FLIP_68].flip(-1),
                          None if judged is None else judged.flip(-1), keep_bias).float().flip(-1)
        out = (out + mirrored) / 2
    return out.clamp(0, 1)


@torch.inference_mode()
def restore_residuals(windows, model: FineNet, device: torch.device, size: int, stats: BufferStats,
                      checkpoint, batch: int = 1, tta: str = "none", face: int | None = None,
                      keep_bias: float = 0.0):
    """(frame, FineNet's correction of its crop (S,S,3, 0..255 units) or None: the frame passes
    through), in frame order.

    ``batch`` consecutive windows go through FineNet in one call (stacked on the batch axis; a
    frame that passes through, or the end, sends the windows gathered so far at once). While a
    batch fills, its first windows' frames wait: at most ``batch - 1`` windows beyond the one just
    formed (the ``batch`` entry of ``stats``, counted only when ``batch > 1``), so the streaming
    bound grows by ``batch - 1`` frames. ``tta``: see ``predict``. ``face``: the side of the face
    crop centred in each ``size`` crop (``paste.ContextCrop``), which the keep model judges
    (None: the whole crop). ``keep_bias``: see ``output``."""
    inner = None if face is None or face == size else slice((size - face) // 2, (size - face) // 2 + face)
    pending: list = []            # (frame, its window) waiting for the model call

    def flush():
        if not pending:
            return
        frames = torch.stack([torch.stack([g.crop for g in win]) for _, win in pending]).to(device)
        heat = torch.stack([torch.stack([g.heat for g in win]) for _, win in pending]).to(device)
        try:
            out = predict(model, frames, heat, tta,
                          judged=None if inner is None else frames[..., inner, inner], keep_bias=keep_bias)
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
    config, got = full_config(arch, config), full_config(arch, got)   # an omitted argument: its default
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
    for net, variant in FINENET_RUNS:
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


