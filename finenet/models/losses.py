"""Training losses (paper Sec. 3.6), all means (a sum makes losses look huge, as EDVR users found)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gradient_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||G_x(gt) - G_x(pred)||_1 + ||G_y(gt) - G_y(pred)||_1 with forward differences."""
    dx = lambda x: x[..., :, 1:] - x[..., :, :-1]  # noqa: E731
    dy = lambda x: x[..., 1:, :] - x[..., :-1, :]  # noqa: E731
    return F.l1_loss(dx(pred), dx(target)) + F.l1_loss(dy(pred), dy(target))


def branch_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eqs. 9–10: L1 + spatial gradient loss (enhancement, interpolation, pre-deblur)."""
    return F.l1_loss(pred, target) + gradient_loss(pred, target)


def combine_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_combine = ||I_gt - Î||_1."""
    return F.l1_loss(pred, target)
