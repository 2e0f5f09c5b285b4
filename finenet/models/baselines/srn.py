"""SRN-Deblur (Tao et al., CVPR 2018): a scale-recurrent network for single-image deblurring.

One encoder–decoder, its weights shared by all scales, is run coarse to fine on the blurry centre
frame at scales 1/4, 1/2, 1 (``scales`` levels, ×``ratio`` each). At every scale its input is the
blurry image at that scale concatenated with the previous (coarser) scale's estimate, upsampled
(bilinear, no gradient through it, as in the original); at the coarsest scale the blurry image
itself stands in for that estimate. A ConvLSTM at the bottleneck carries its hidden and cell state
across scales (upsampled between them), which makes the network recurrent over scales.

Encoder–decoder (``widths`` = c1, c2, c3): InBlock conv(6→c1) + ``blocks`` ResBlocks; two EBlocks,
stride-2 conv + ResBlocks (c2 at 1/2, c3 at 1/4); ConvLSTM(c3); DBlocks: ResBlocks + 4×4
transposed conv ×2, with *additive* skips from the encoder; OutBlock: ResBlocks + conv → 3.
ResBlocks are conv–ReLU–conv with identity, no normalisation; all kernels ``kernel``×``kernel``
(5 in the paper).

Loss: the paper's multi-scale Euclidean loss, Σ_scales mean((out_s - target_s)²) with the sharp
centre frame downsampled to each scale (``loss_type: l1`` switches to L1).

Matches the paper: the scale recurrence, shared weights, ConvLSTM bottleneck, skip structure,
multi-scale loss. Differs: ``residual`` (embedded default True) adds the blurry input to the output
so that a network trained for a few hundred CPU steps starts from the identity — the original
predicts the sharp image directly (``residual: false`` in the paper-scale config); embedded widths,
kernel 3 and one ResBlock per stage instead of 32/64/128, 5×5 and three.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register
from .deblur_common import check_window, crop_to, pad_to


def _down(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)


def _up(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class KResBlock(nn.Module):
    def __init__(self, feat: int, k: int):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(feat, feat, k, 1, k // 2), nn.Conv2d(feat, feat, k, 1, k // 2)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


def _stage(cin: int, cout: int, k: int, blocks: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2), nn.ReLU(),
                         *[KResBlock(cout, k) for _ in range(blocks)])


class ConvLSTM(nn.Module):
    def __init__(self, feat: int, k: int = 3):
        super().__init__()
        self.gates = nn.Conv2d(2 * feat, 4 * feat, k, 1, k // 2)

    def forward(self, x: torch.Tensor, state):
        h, c = state if state is not None else (torch.zeros_like(x), torch.zeros_like(x))
        i, f, o, g = self.gates(torch.cat([x, h], 1)).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


@register("srn_deblur")
class SRNDeblur(nn.Module):
    task = "deblur"

    def __init__(self, widths: tuple | list = (16, 32, 64), blocks: int = 1, kernel: int = 3,
                 scales: int = 3, ratio: float = 0.5, lstm_kernel: int = 3, residual: bool = True,
                 loss_type: str = "mse"):
        super().__init__()
        c1, c2, c3 = widths
        if loss_type not in ("mse", "l1"):
            raise ValueError(f"loss_type must be 'mse' or 'l1', got {loss_type!r}")
        self.scales, self.ratio, self.residual, self.loss_type = scales, ratio, residual, loss_type
        self.multiple = 4 * round(1 / ratio) ** (scales - 1)
        self.enc1 = _stage(6, c1, kernel, blocks)
        self.enc2 = _stage(c1, c2, kernel, blocks, stride=2)
        self.enc3 = _stage(c2, c3, kernel, blocks, stride=2)
        self.lstm = ConvLSTM(c3, lstm_kernel)
        self.dec3 = nn.Sequential(*[KResBlock(c3, kernel) for _ in range(blocks)])
        self.up3 = nn.ConvTranspose2d(c3, c2, 4, 2, 1)
        self.dec2 = nn.Sequential(*[KResBlock(c2, kernel) for _ in range(blocks)])
        self.up2 = nn.ConvTranspose2d(c2, c1, 4, 2, 1)
        self.dec1 = nn.Sequential(*[KResBlock(c1, kernel) for _ in range(blocks)])
        self.out = nn.Conv2d(c1, 3, kernel, 1, kernel // 2)

    def _scale(self, blurry: torch.Tensor, prev: torch.Tensor, state):
        e1 = self.enc1(torch.cat([blurry, prev], 1))
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        h, state = self.lstm(e3, state)
        d2 = self.dec2(F.relu(self.up3(self.dec3(h))) + e2)
        d1 = self.dec1(F.relu(self.up2(d2)) + e1)
        out = self.out(d1)
        return (blurry + out if self.residual else out), state

    def multiscale(self, image: torch.Tensor) -> list[torch.Tensor]:
        """(B,3,H,W) blurry -> the estimates at every scale, coarsest first, the last at (H,W)."""
        image, size = pad_to(image, self.multiple)
        h, w = image.shape[-2:]
        sizes = [(round(h * self.ratio ** s), round(w * self.ratio ** s)) for s in reversed(range(self.scales))]
        outs, state, prev = [], None, None
        for sz in sizes:
            blurry = _down(image, sz) if sz != (h, w) else image
            prev = blurry if prev is None else _up(prev.detach(), sz)
            if state is not None:
                state = tuple(_up(s, (sz[0] // 4, sz[1] // 4)) for s in state)
            prev, state = self._scale(blurry, prev, state)
            outs.append(prev)
        outs[-1] = crop_to(outs[-1], size)
        return outs

    def forward(self, frames: torch.Tensor, heatmaps: torch.Tensor | None = None) -> torch.Tensor:
        _, c = check_window(frames)
        return self.multiscale(frames[:, c])[-1]

    def loss(self, batch: dict) -> torch.Tensor:
        frames, target = batch["frames"], batch["target"]
        _, c = check_window(frames)
        outs = self.multiscale(frames[:, c])
        padded, size = pad_to(target, self.multiple)
        total = target.new_zeros(())
        for i, out in enumerate(outs):
            gt = target if i == len(outs) - 1 else _down(padded, out.shape[-2:])
            total = total + (F.mse_loss(out, gt) if self.loss_type == "mse" else F.l1_loss(out, gt))
        return total
