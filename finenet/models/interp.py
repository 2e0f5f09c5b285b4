"""Interpolation branch (paper Sec. 3.4, Fig. 6): treat frame t as missing and make it from its
neighbours. Forward: the alignment module on [t-2, t-1, t+1] turns t-1's features into t's;
backward: the same module (shared weights) on [t+2, t+1, t-1] (decreasing order) turns t+1's.
The two are fused and frame t reconstructed (a residual over the mean of the pre-deblurred t-1
and t+1). ``interp_frames=4`` uses [t-2, t-1, t+1, t+2] and its reverse (the paper: no gain)."""

from __future__ import annotations

import torch
from torch import nn

from .align import PyramidAlign
from .blocks import HeatmapEncoder, Upsampler, lrelu, merge_frames, res_blocks, split_frames
from .registry import register
from .losses import branch_loss
from .shared import Branch, Shared


def orders(num_frames: int, interp_frames: int) -> tuple[list[int], list[int]]:
    c = num_frames // 2
    if num_frames < 5 or interp_frames not in (3, 4):
        raise ValueError("interpolation needs 5-frame windows and 3 or 4 input frames")
    forward = [c - 2, c - 1, c + 1] + ([c + 2] if interp_frames == 4 else [])
    backward = [c + 2, c + 1, c - 1] + ([c - 2] if interp_frames == 4 else [])
    return forward, backward


@register("interp")
class InterpBranch(nn.Module):
    def __init__(self, feat: int = 16, num_frames: int = 5, groups: int = 4, levels: int = 3,
                 max_offset: float = 8.0, foc: bool = True, landmarks: bool = True,
                 heatmap_ch: int = 8, heatmap_level: int = 1, recon_blocks: int = 3,
                 input_stride: int = 4, interp_frames: int = 3):
        super().__init__()
        self.forward_order, self.backward_order = orders(num_frames, interp_frames)
        self.centre, self.heatmap_level = num_frames // 2, heatmap_level
        self.heat = HeatmapEncoder(heatmap_ch) if landmarks else None
        self.align = PyramidAlign(feat, interp_frames, 1, groups, levels, max_offset, foc,
                                  heatmap_ch if landmarks else 0, heatmap_level)
        self.fusion = nn.Conv2d(2 * feat, feat, 1)
        self.recon = res_blocks(feat, recon_blocks)
        self.to_image = Upsampler(feat, 3, input_stride)

    def forward(self, shared: Shared, heatmaps: torch.Tensor | None = None) -> Branch:
        """Frame t (B,3,H,W) and the forward/backward features (B,2,C,h,w). Frame t itself is
        never read."""
        both = lambda x: torch.cat([x[:, i] for i in (self.forward_order, self.backward_order)], 0)  # noqa: E731
        pyramids = [[both(p)[:, k] for p in shared.pyramid] for k in range(len(self.forward_order))]
        heat = None
        if self.heat is not None:
            n = shared.num_frames
            size = shared.pyramid[self.heatmap_level - 1].shape[-2:]
            enc = both(split_frames(self.heat(merge_frames(heatmaps), size), n))
            heat = [enc[:, k] for k in range(len(self.forward_order))]
        fwd, bwd = self.align(pyramids, heat).chunk(2, dim=0)
        fused = lrelu(self.fusion(torch.cat([fwd, bwd], 1)))
        c = self.centre
        base = (shared.predeblurred[:, c - 1] + shared.predeblurred[:, c + 1]) / 2
        return Branch(base + self.to_image(self.recon(fused)), torch.stack([fwd, bwd], 1))

    def loss(self, batch: dict, shared: Shared) -> torch.Tensor:
        """Eqs. 9-10 on frame t, given the frozen front end's ``shared`` features."""
        return branch_loss(self(shared, batch["heatmaps"]).image, batch["target"])
