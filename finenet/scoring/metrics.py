"""Image quality measures shared by validation during training and the evaluate stage."""

from __future__ import annotations

import torch

PSNR_CAP = 60.0          # a frame returned exactly would be infinite


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of (B,C,H,W) images in [0, 1], capped at ``PSNR_CAP``: the same value as
    scikit-image's ``peak_signal_noise_ratio(target, pred, data_range=1)`` on each image."""
    mse = (pred.double().clamp(0, 1) - target.double()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(1.0 / mse.clamp(min=1e-30))).clamp(max=PSNR_CAP)
