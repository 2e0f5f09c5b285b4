"""Pyramid, cascading deformable alignment with FOC (paper Eqs. 3–8, Figs. 5–7).

One module serves both branches: it deforms the features of one *source* frame using offsets
computed from all its input frames —

- enhancement (PCD-FOC): inputs ``[t', t]``, source ``t'``: align a neighbour to the target;
- interpolation: inputs ``[t-2, t-1, t+1]`` (or 4 frames), source the middle one ``t-1``: turn it
  into the missing frame ``t``.

Coarse to fine over the pyramid levels (level 1 = finest, the feature-extraction output):
``ΔP^l = FOC(F^l of the inputs [+ heatmaps at the landmark level], 2·up(ΔP^{l+1}))``,
``A^l = Conv(DConv(F^l_src, ΔP^l) ⊕ up(A^{l+1}))``, then EDVR's cascading DCN at level 1.
Landmark heatmap encodings enter the FOC of ``heatmap_level`` only (the paper: level 1).
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import conv3, lrelu, upsample
from .dcn import DCNPack
from .foc import offset_module


class PyramidAlign(nn.Module):
    def __init__(self, feat: int, n_inputs: int, source: int, groups: int, levels: int,
                 max_offset: float, foc: bool = True, heatmap_ch: int = 0, heatmap_level: int = 1):
        super().__init__()
        self.levels, self.source, self.heatmap_level = levels, source, heatmap_level
        self.use_heatmaps = heatmap_ch > 0
        self.offset = nn.ModuleList()
        self.dcn = nn.ModuleList()
        self.merge = nn.ModuleList()
        for level in range(1, levels + 1):                      # index 0 = level 1 (finest)
            in_ch = n_inputs * feat + (n_inputs * heatmap_ch if self.use_heatmaps and level == heatmap_level else 0)
            scale = 2 ** (level - 1)
            self.offset.append(offset_module(foc, in_ch, feat, with_prev=level < levels))
            self.dcn.append(DCNPack(feat, feat, groups, max_offset / scale))
            self.merge.append(conv3(2 * feat, feat) if level < levels else nn.Identity())
        self.cascade_offset = offset_module(False, n_inputs * feat, feat, with_prev=False)
        self.cascade_dcn = DCNPack(feat, feat, groups, max_offset)

    def forward(self, pyramids: list[list[torch.Tensor]], heat: list[torch.Tensor] | None = None):
        """``pyramids[i][l]``: input i's features at level l+1, (B,C,H/2^l,W/2^l); ``heat[i]``:
        its heatmap encoding at the heatmap level. Returns the aligned source features (B,C,H,W)."""
        up_offset = up_aligned = None
        for li in reversed(range(self.levels)):
            level = li + 1
            x = [p[li] for p in pyramids]
            if self.use_heatmaps and level == self.heatmap_level:
                x += heat
            offset = self.offset[li](torch.cat(x, 1), up_offset)
            aligned = self.dcn[li](pyramids[self.source][li], offset)
            if up_aligned is not None:
                aligned = self.merge[li](torch.cat([aligned, up_aligned], 1))
            aligned = lrelu(aligned) if level > 1 else aligned
            if level > 1:
                size = pyramids[0][li - 1].shape[-2:]
                up_offset, up_aligned = 2 * upsample(offset, size), upsample(aligned, size)
        others = [p[0] for i, p in enumerate(pyramids) if i != self.source]
        offset = self.cascade_offset(torch.cat([aligned, *others], 1))
        return lrelu(self.cascade_dcn(aligned, offset))
