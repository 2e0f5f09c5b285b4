"""The shared front end and first stage: a small image deblurrer whose encoder is the per-frame
feature pyramid both branches use.

Stage one of the paper's two-stage strategy (following EDVR's pre-deblur, which its users found
must be trained separately first): trained alone on single frames, then frozen. Its encoder gives
every frame a pyramid (levels 1..L at 1/stride, 1/(2·stride), …) computed once and shared by the
enhancement and interpolation branches; its decoder gives the pre-deblurred frame, which the
branches refine (their outputs are residuals over it).
"""

from __future__ import annotations

import torch
from torch import nn

from .losses import branch_loss
from .blocks import Downsampler, Upsampler, conv3, lrelu, res_blocks, upsample
from .registry import register


@register("predeblur")
class FrontEnd(nn.Module):
    def __init__(self, feat: int = 16, input_stride: int = 4, levels: int = 3, extract_blocks: int = 2):
        super().__init__()
        self.stride, self.levels = input_stride, levels
        self.stem = Downsampler(3, feat, input_stride)
        self.extract = res_blocks(feat, extract_blocks)
        self.down = nn.ModuleList([nn.Sequential(conv3(feat, feat, 2), nn.LeakyReLU(0.1), conv3(feat, feat),
                                                 nn.LeakyReLU(0.1)) for _ in range(levels - 1)])
        self.fuse = nn.ModuleList([conv3(2 * feat, feat) for _ in range(levels - 1)])
        self.decode = res_blocks(feat, 1)
        self.to_image = Upsampler(feat, 3, input_stride)

    def pyramid(self, image: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.extract(self.stem(image))]
        for down in self.down:
            feats.append(down(feats[-1]))
        return feats

    def decode_image(self, image: torch.Tensor, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        for li in reversed(range(len(feats) - 1)):          # U-Net style: coarse to fine
            x = lrelu(self.fuse[li](torch.cat([feats[li], upsample(x, feats[li].shape[-2:])], 1)))
        return image + self.to_image(self.decode(x))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.decode_image(image, self.pyramid(image))

    def loss(self, batch: dict, blurred_only: bool = False) -> torch.Tensor:
        """Eqs. 9-10, single-image deblurring of every frame of the window. ``blurred_only``: frames
        the blur stage left sharp weigh 0 (the mean stays over all frames, so DDP ranks agree)."""
        pred, sharp = self(batch["frames"].flatten(0, 1)), batch["sharp"].flatten(0, 1)
        if blurred_only:
            w = batch["blurred"].flatten().to(pred.dtype).view(-1, 1, 1, 1)
            pred, sharp = pred * w, sharp * w
        return branch_loss(pred, sharp)
