"""FineNet (paper Fig. 3): the shared front end, both branches, and the combination module.

The frame pyramids and pre-deblurred frames are computed once per window and read by both
branches, so FineNet costs less than running its branches separately."""

from __future__ import annotations

import torch
from torch import nn

from .registry import register
from .shared import Branch, Shared, shared_features


def combiner_inputs(frontend: nn.Module, enhance: nn.Module, interp: nn.Module, frames: torch.Tensor,
                    heatmaps: torch.Tensor | None = None) -> tuple[Branch, Branch, Shared]:
    """FineNet's composition below the combiner (paper Fig. 3), the one place it is written: the
    front end once per window (B,N,3,H,W), then both branches on its features. Returns what every
    combiner takes, ``(enhanced, interpolated, shared)``: ``FineNet`` runs it, training feeds it
    to the combiner it trains, the evaluate stage scores it."""
    shared = shared_features(frontend, frames)
    return enhance(shared, heatmaps), interp(shared, heatmaps), shared


@register("finenet")
class FineNet(nn.Module):
    def __init__(self, frontend: nn.Module, enhance: nn.Module, interp: nn.Module, combiner: nn.Module):
        super().__init__()
        self.frontend, self.enhance, self.interp, self.combiner = frontend, enhance, interp, combiner

    def forward(self, frames: torch.Tensor, heatmaps: torch.Tensor | None = None) -> dict:
        """Frame t of each window (B,N,3,H,W) as every stage makes it: ``predeblur``, ``enhance``,
        ``interp`` and FineNet's ``output``."""
        enh, inp, shared = combiner_inputs(self.frontend, self.enhance, self.interp, frames, heatmaps)
        return {"predeblur": shared.predeblurred[:, shared.num_frames // 2], "enhance": enh.image,
                "interp": inp.image, "output": self.combiner(enh, inp, shared).image}
