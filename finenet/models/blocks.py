"""Small building blocks shared by the networks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.1)


class ResBlock(nn.Module):
    """conv-ReLU-conv with identity skip, no normalisation (EDVR's ResidualBlockNoBN)."""

    def __init__(self, feat: int, scale: float = 1.0):
        super().__init__()
        self.conv1, self.conv2, self.scale = conv3(feat, feat), conv3(feat, feat), scale

    def forward(self, x):
        return x + self.scale * self.conv2(F.relu(self.conv1(x)))


def res_blocks(feat: int, n: int) -> nn.Sequential:
    return nn.Sequential(*[ResBlock(feat) for _ in range(n)])


class Downsampler(nn.Sequential):
    """Image -> features at 1/stride resolution: a conv, then stride-2 convs (stride = 1, 2, 4, …)."""

    def __init__(self, cin: int, feat: int, stride: int):
        layers = [conv3(cin, feat), nn.LeakyReLU(0.1)]
        for _ in range(stride.bit_length() - 1):
            layers += [conv3(feat, feat, 2), nn.LeakyReLU(0.1)]
        super().__init__(*layers)


class Upsampler(nn.Sequential):
    """Features -> image at ×stride: PixelShuffle ×2 steps (no transposed-conv checkerboard)."""

    def __init__(self, feat: int, cout: int, stride: int):
        layers = []
        for _ in range(stride.bit_length() - 1):
            layers += [conv3(feat, 4 * feat), nn.PixelShuffle(2), nn.LeakyReLU(0.1)]
        layers += [conv3(feat, feat), nn.LeakyReLU(0.1), conv3(feat, cout)]
        super().__init__(*layers)


def upsample(x: torch.Tensor, size=None) -> torch.Tensor:
    return F.interpolate(x, size=size, scale_factor=None if size else 2, mode="bilinear",
                         align_corners=False)


def zero_init(module: nn.Conv2d) -> nn.Conv2d:
    nn.init.zeros_(module.weight)
    nn.init.zeros_(module.bias)
    return module


class HeatmapEncoder(nn.Module):
    """68 landmark heatmaps -> a few feature channels at the feature resolution."""

    def __init__(self, out_ch: int, points: int = 68):
        super().__init__()
        self.conv1, self.conv2 = conv3(points, 2 * out_ch), conv3(2 * out_ch, out_ch)

    def forward(self, heatmaps: torch.Tensor, size) -> torch.Tensor:
        if heatmaps.shape[-1] > size[-1]:
            heatmaps = F.adaptive_avg_pool2d(heatmaps, size)
        elif heatmaps.shape[-1] < size[-1]:
            heatmaps = F.interpolate(heatmaps, size=tuple(size), mode="bilinear", align_corners=False)
        return lrelu(self.conv2(lrelu(self.conv1(heatmaps))))


def merge_frames(x: torch.Tensor) -> torch.Tensor:
    """(B,N,…) -> (B*N,…)."""
    return x.reshape(-1, *x.shape[2:])


def split_frames(x: torch.Tensor, n: int) -> torch.Tensor:
    """(B*N,…) -> (B,N,…)."""
    return x.reshape(-1, n, *x.shape[1:])
