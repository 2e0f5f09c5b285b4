"""Pure-PyTorch flow primitives shared by the interpolation baselines (Super-SloMo, DAIN).

Flow convention (pixels, channel 0 = x, channel 1 = y): ``flow_{a→b}(p)`` is the displacement
from pixel ``p`` of frame a to where that point is in frame b, so ``I_a(p) = I_b(p + flow_{a→b}(p))``
and *backward warping* ``backwarp(I_b, flow_{a→b})`` rebuilds ``I_a``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TwoFrameInterpolator(nn.Module):
    """An interpolation baseline: frame t from frames t-1 and t+1 of the window (t is never read).
    Subclasses implement ``interpolate(i0, i1) -> dict`` with the estimate under ``"out"``."""

    task = "interp"

    def _run(self, frames: torch.Tensor) -> dict:
        c = frames.shape[1] // 2                                    # frame t: never read
        return self.interpolate(frames[:, c - 1], frames[:, c + 1])

    def forward(self, frames: torch.Tensor, heatmaps: torch.Tensor | None = None) -> torch.Tensor:
        """frames (B,N,3,H,W) -> estimate of the centre frame (B,3,H,W); the centre is not read."""
        return self._run(frames)["out"]


def base_grid(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates x (1,1,W) and y (1,H,1) matching ``flow`` (B,2,H,W)."""
    h, w = flow.shape[-2:]
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device).view(1, 1, w)
    ys = torch.arange(h, dtype=flow.dtype, device=flow.device).view(1, h, 1)
    return xs, ys


def backwarp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warping ``out(p) = img(p + flow(p))`` by bilinear sampling (``grid_sample``,
    ``align_corners=True`` so that integer flows sample pixels exactly); positions outside the
    image take the nearest border value."""
    h, w = img.shape[-2:]
    xs, ys = base_grid(flow)
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    return F.grid_sample(img, torch.stack([gx, gy], -1), mode="bilinear", padding_mode="border",
                         align_corners=True)


def pad_to(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (…,H,W) at the bottom/right to multiples of ``multiple`` (reflect; replicate where the
    image is too small to reflect). Returns the padded tensor and the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        shape = x.shape
        x4 = x.reshape(-1, *shape[-3:]) if x.dim() != 4 else x
        mode = "reflect" if ph < h and pw < w else "replicate"
        x4 = F.pad(x4, (0, pw, 0, ph), mode=mode)
        x = x4.reshape(*shape[:-2], h + ph, w + pw)
    return x, (h, w)


def flow_smoothness(flow: torch.Tensor) -> torch.Tensor:
    """Mean L1 norm of the flow's forward differences (Super-SloMo's smoothness loss)."""
    return ((flow[..., :, 1:] - flow[..., :, :-1]).abs().mean()
            + (flow[..., 1:, :] - flow[..., :-1, :]).abs().mean())
