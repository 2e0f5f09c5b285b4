"""What both branches read, computed once per window by the frozen front end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from .blocks import merge_frames, split_frames
from .frontend import FrontEnd


@dataclass
class Shared:
    pyramid: list[torch.Tensor]      # per level: (B,N,C,H/s/2^l,W/s/2^l)
    predeblurred: torch.Tensor       # (B,N,3,H,W): the first stage's output
    frames: torch.Tensor             # (B,N,3,H,W): the input frames themselves

    @property
    def num_frames(self) -> int:
        return self.predeblurred.shape[1]


class Branch(NamedTuple):
    """What a branch returns: frame t, and the features early fusion reads."""
    image: torch.Tensor              # (B,3,H,W)
    features: torch.Tensor           # enhancement: the aligned frames (B,N,C,h,w); interpolation:
                                     # the forward and backward features (B,2,C,h,w)


def shared_features(frontend: FrontEnd, frames: torch.Tensor) -> Shared:
    n = frames.shape[1]
    flat = merge_frames(frames)
    feats = frontend.pyramid(flat)
    image = frontend.decode_image(flat, feats)
    return Shared([split_frames(f, n) for f in feats], split_frames(image, n), frames)
