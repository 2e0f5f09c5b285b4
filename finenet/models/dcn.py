"""Modulated deformable convolution (DCNv2) with no compiled extension.

On CUDA it is ``torchvision.ops.deform_conv2d``. On CPU, torchvision's backward pass is a slow
single-threaded loop (about 80% of a training step), so ``deform_conv_sampled`` computes the same
operator from ``grid_sample``: every kernel tap of every deformable group bilinearly samples the
input at ``p + p_k + Δp_k`` (zero outside the image, as torchvision does), the samples are weighted
by the modulation mask, and a matrix product with the kernel finishes the convolution. It matches
torchvision to float precision, values and gradients (tests/test_models.py), at ~10x the speed.

Offsets and modulation masks come from one zero-initialised conv over *offset features* (computed
by FOC or plain convs), as in EDVR's DCNv2Pack. Offsets are bounded smoothly
(``max_offset·tanh(o/max_offset)``, in feature pixels), and a warning is logged once when their
mean magnitude gets large in training — EDVR's most reported training failure is offsets blowing up."""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

from .blocks import zero_init

log = logging.getLogger(__name__)


def deform_conv_sampled(x, offset, weight, bias, mask):
    """``deform_conv2d(x, offset, weight, bias, padding=k//2, mask=mask)`` (stride 1, torchvision's
    offset layout: per group and tap, (dy, dx)) from ``grid_sample``."""
    b, c, h, w = x.shape
    cout, _, kh, kw = weight.shape
    taps = kh * kw
    groups = offset.shape[1] // (2 * taps)
    off = offset.view(b, groups, taps, 2, h, w)
    ky, kx = torch.meshgrid(torch.arange(kh, dtype=x.dtype, device=x.device) - kh // 2,
                            torch.arange(kw, dtype=x.dtype, device=x.device) - kw // 2, indexing="ij")
    ys = torch.arange(h, dtype=x.dtype, device=x.device).view(h, 1) + ky.reshape(taps, 1, 1) + off[:, :, :, 0]
    xs = torch.arange(w, dtype=x.dtype, device=x.device).view(1, w) + kx.reshape(taps, 1, 1) + off[:, :, :, 1]
    grid = torch.stack([xs * (2 / max(w - 1, 1)) - 1, ys * (2 / max(h - 1, 1)) - 1], -1)
    sampled = F.grid_sample(x.reshape(b * groups, c // groups, h, w), grid.view(b * groups, taps * h, w, 2),
                            mode="bilinear", padding_mode="zeros", align_corners=True)
    sampled = sampled.view(b, groups, c // groups, taps, h, w) * mask.view(b, groups, 1, taps, h, w)
    out = torch.einsum("ok,bkhw->bohw", weight.reshape(cout, c * taps), sampled.reshape(b, c * taps, h, w))
    return out + bias.view(1, -1, 1, 1)


class DCNPack(nn.Module):
    def __init__(self, feat: int, offset_feat: int, groups: int, max_offset: float, kernel: int = 3,
                 warn_at: float | None = None):
        super().__init__()
        if feat % groups:
            raise ValueError(f"feature channels {feat} not divisible by deformable groups {groups}")
        self.kernel, self.groups, self.max_offset = kernel, groups, float(max_offset)
        self.warn_at = warn_at if warn_at is not None else 0.5 * self.max_offset
        self.weight = nn.Parameter(torch.empty(feat, feat, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(feat))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.conv_offset = zero_init(nn.Conv2d(offset_feat, 3 * groups * kernel * kernel, 3, 1, 1))
        self._warned = False

    def offsets(self, offset_feat: torch.Tensor):
        o1, o2, m = torch.chunk(self.conv_offset(offset_feat), 3, dim=1)
        offset = torch.cat([o1, o2], dim=1)
        offset = self.max_offset * torch.tanh(offset / self.max_offset)
        return offset, torch.sigmoid(m)

    def forward(self, x: torch.Tensor, offset_feat: torch.Tensor) -> torch.Tensor:
        offset, mask = self.offsets(offset_feat)
        if self.training and not self._warned:   # training only: the check syncs a GPU
            mean = float(offset.detach().abs().mean())
            if mean > self.warn_at:
                self._warned = True
                log.warning("deformable offsets are large (mean |offset| %.1f px, bound %.0f): "
                            "alignment may be unstable", mean, self.max_offset)
        args = (x, offset.to(x.dtype), self.weight.to(x.dtype), self.bias.to(x.dtype))
        if x.is_cuda:
            return deform_conv2d(*args, padding=self.kernel // 2, mask=mask.to(x.dtype))
        return deform_conv_sampled(*args, mask.to(x.dtype))
