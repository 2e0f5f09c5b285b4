"""Modulated deformable convolution (DCNv2) on ``torchvision.ops.deform_conv2d`` — no compiled
extension. Offsets and modulation masks come from one zero-initialised conv over *offset features*
(computed by FOC or plain convs), as in EDVR's DCNv2Pack. Offsets are bounded smoothly
(``max_offset·tanh(o/max_offset)``, in feature pixels), and a warning is logged once when their
mean magnitude gets large — EDVR's most reported training failure is offsets blowing up."""

from __future__ import annotations

import logging
import math

import torch
from torch import nn
from torchvision.ops import deform_conv2d

from .blocks import zero_init

log = logging.getLogger(__name__)


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
        self.last_offset_mean = 0.0

    def offsets(self, offset_feat: torch.Tensor):
        o1, o2, m = torch.chunk(self.conv_offset(offset_feat), 3, dim=1)
        offset = torch.cat([o1, o2], dim=1)
        offset = self.max_offset * torch.tanh(offset / self.max_offset)
        return offset, torch.sigmoid(m)

    def forward(self, x: torch.Tensor, offset_feat: torch.Tensor) -> torch.Tensor:
        offset, mask = self.offsets(offset_feat)
        mean = float(offset.detach().abs().mean())
        self.last_offset_mean = mean
        if mean > self.warn_at and not self._warned:
            self._warned = True
            log.warning("deformable offsets are large (mean |offset| %.1f px, bound %.0f): "
                        "alignment may be unstable", mean, self.max_offset)
        return deform_conv2d(x, offset.to(x.dtype), self.weight.to(x.dtype), self.bias.to(x.dtype),
                             padding=self.kernel // 2, mask=mask.to(x.dtype))
