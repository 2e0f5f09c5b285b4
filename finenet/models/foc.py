"""Face-aware Offset Calculation (FOC, paper Sec. 3.2, Fig. 4) and EDVR's plain offset convs.

FOC takes the features of several frames (and, at the landmark level, their heatmap encodings)
concatenated, plus the upsampled offset features of the coarser pyramid level, and computes offset
features with a small encoder-decoder; a ``DCNPack`` turns them into offsets and masks. Without
heatmaps it is the paper's "simplified FOC" used at the other levels. ``PlainOffset`` is EDVR's
two/three-conv offset estimator, the "no FOC" ablation.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import conv3, lrelu, upsample


class FOC(nn.Module):
    def __init__(self, in_ch: int, feat: int, with_prev: bool):
        super().__init__()
        self.inp = conv3(in_ch, feat)
        self.prev = conv3(2 * feat, feat) if with_prev else None
        self.down = conv3(feat, feat, 2)
        self.mid = conv3(feat, feat)
        self.up = conv3(feat, feat)
        self.out = conv3(2 * feat, feat)

    def forward(self, x: torch.Tensor, prev: torch.Tensor | None = None) -> torch.Tensor:
        h = lrelu(self.inp(x))
        if self.prev is not None:
            h = lrelu(self.prev(torch.cat([h, prev], 1)))
        d = lrelu(self.mid(lrelu(self.down(h))))
        u = lrelu(self.up(upsample(d, size=h.shape[-2:])))
        return lrelu(self.out(torch.cat([h, u], 1)))


class PlainOffset(nn.Module):
    def __init__(self, in_ch: int, feat: int, with_prev: bool):
        super().__init__()
        self.conv1 = conv3(in_ch, feat)
        self.conv2 = conv3(2 * feat, feat) if with_prev else None
        self.conv3 = conv3(feat, feat)

    def forward(self, x: torch.Tensor, prev: torch.Tensor | None = None) -> torch.Tensor:
        h = lrelu(self.conv1(x))
        if self.conv2 is not None:
            h = lrelu(self.conv2(torch.cat([h, prev], 1)))
        return lrelu(self.conv3(h))


def offset_module(foc: bool, in_ch: int, feat: int, with_prev: bool) -> nn.Module:
    return (FOC if foc else PlainOffset)(in_ch, feat, with_prev)
