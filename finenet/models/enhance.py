"""Enhancement branch (paper Sec. 3.3, Fig. 7): align the 5 frames t-2..t+2 to frame t with
PCD-FOC, fuse, reconstruct frame t (a residual over its pre-deblurred version)."""

from __future__ import annotations

import torch
from torch import nn

from .align import PyramidAlign
from .blocks import HeatmapEncoder, Upsampler, lrelu, merge_frames, res_blocks, split_frames
from .registry import register
from .losses import branch_loss
from .shared import Branch, Shared


@register("enhance")
class EnhanceBranch(nn.Module):
    def __init__(self, feat: int = 16, num_frames: int = 5, groups: int = 4, levels: int = 3,
                 max_offset: float = 8.0, foc: bool = True, landmarks: bool = True,
                 heatmap_ch: int = 8, heatmap_level: int = 1, recon_blocks: int = 3,
                 input_stride: int = 4):
        super().__init__()
        self.centre, self.heatmap_level = num_frames // 2, heatmap_level
        self.heat = HeatmapEncoder(heatmap_ch) if landmarks else None
        self.align = PyramidAlign(feat, 2, 0, groups, levels, max_offset, foc,
                                  heatmap_ch if landmarks else 0, heatmap_level)
        self.fusion = nn.Conv2d(num_frames * feat, feat, 1)
        self.recon = res_blocks(feat, recon_blocks)
        self.to_image = Upsampler(feat, 3, input_stride)

    def forward(self, shared: Shared, heatmaps: torch.Tensor | None = None) -> Branch:
        """Frame t (B,3,H,W) and the aligned features of all frames (B,N,C,h,w)."""
        n, c = shared.num_frames, self.centre
        ref_idx = [c] * n
        inputs = [[merge_frames(p) for p in shared.pyramid], [merge_frames(p[:, ref_idx]) for p in shared.pyramid]]
        heat = None
        if self.heat is not None:
            size = shared.pyramid[self.heatmap_level - 1].shape[-2:]
            enc = split_frames(self.heat(merge_frames(heatmaps), size), n)
            heat = [merge_frames(enc), merge_frames(enc[:, ref_idx])]
        aligned = split_frames(self.align(inputs, heat), n)
        fused = lrelu(self.fusion(aligned.flatten(1, 2)))
        return Branch(shared.predeblurred[:, c] + self.to_image(self.recon(fused)), aligned)

    def loss(self, batch: dict, shared: Shared) -> torch.Tensor:
        """Eqs. 9-10 on frame t, given the frozen front end's ``shared`` features."""
        return branch_loss(self(shared, batch["heatmaps"]).image, batch["target"])
