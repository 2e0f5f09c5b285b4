"""Combination module (paper Sec. 3.5): late fusion of the two branch outputs — two stride-2
downsampling convs, nine residual blocks, two upsampling steps (bilinear + conv, no transposed-conv
checkerboard) — predicting a per-pixel blend of the two images plus a correction. The early-fusion
variant fuses the branches' feature maps instead (five aligned maps from enhancement, two from
interpolation)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ResBlock, Upsampler, conv3, lrelu, res_blocks, upsample, zero_init
from .registry import register


def sharpness(frames: torch.Tensor) -> torch.Tensor:
    """(B,N,3,H,W) -> (B,N,2): log mean squared Laplacian of each frame's grey image, at full and
    at half resolution: a classic focus / blur measure (motion blur removes the high frequencies it
    sees; the half-resolution one is not fooled by sensor noise, which the full one also sees)."""
    grey = frames.mean(2, keepdim=True).flatten(0, 1)
    out = []
    for image in (grey, F.avg_pool2d(grey, 2)):
        lap = F.conv2d(F.pad(image, (1, 1, 1, 1), mode="replicate"), LAPLACIAN.to(image))
        out.append(torch.log(lap.pow(2).mean((1, 2, 3)) + 1e-6))
    return torch.stack(out, -1).view(*frames.shape[:2], 2)


SHARPNESS_CENTRE = (-6.0, -5.0)   # about a face crop's ``sharpness`` (images in [0, 1]): centres the input
LAPLACIAN = torch.tensor([[[[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]]])


@register("combine_late")
class LateFusion(nn.Module):
    """Late fusion of the two branch outputs, with the input window as a third input (do no harm).

    ``out = x + (1 - keep) * (alpha * E + (1 - alpha) * I + correction - x)``: ``alpha`` blends the
    enhancement (E) and interpolation (I) outputs per pixel, and ``keep`` = sigmoid(a per-frame
    logit) says whether frame x = frame t needs deblurring at all. The logit is learnt (a logistic
    model) from two measures of how sharp x is: its Laplacian energy (``sharpness``), and that energy
    relative to the median of its neighbours in the window (camera shake blurs frames one by one, so
    a sharp frame stands out among blurred ones). Trained on a blur mix with sharp frames, with a
    classification loss against which frames the blur stage left sharp (``frame_loss``,
    ``train.keep_weight``; first alone for ``train.judge_steps``), the combiner learns to return a
    sharp frame unchanged, which neither branch can do: at inference (``eval()``) the gate is the
    classifier's decision (keep iff its probability > 0.5), so a frame judged sharp comes back bit
    for bit (measured on the embedded test set at one commit: 15 of 16 sharp frames kept, 58.4 dB
    against 54.8 with the soft gate; blurred frames 31.70 against 31.83 dB). ``keep``
    starts at ``keep_init``, ``alpha`` at 0.5 and the correction at 0 (zero-initialised tail): the
    combiner starts as (nearly) the plain average of the branches.
    """

    def __init__(self, feat: int = 16, blocks: int = 9, keep_init: float = 0.05):
        super().__init__()
        self.head = nn.Conv2d(9, feat, 7, 1, 3)
        self.down1, self.down2 = conv3(feat, 2 * feat, 2), conv3(2 * feat, 4 * feat, 2)
        self.body = nn.Sequential(*[ResBlock(4 * feat) for _ in range(blocks)])
        self.up1, self.up2 = conv3(4 * feat, 2 * feat), conv3(2 * feat, feat)
        self.tail = zero_init(nn.Conv2d(feat, 4, 7, 1, 3))   # blend, 3 correction channels
        self.frame_keep = nn.Linear(4, 1)            # keep logit from [sharpness, relative] x 2 scales
        nn.init.zeros_(self.frame_keep.weight)
        self.keep_gain = 10.0        # as blend_gain: Adam steps of about lr must reach logits of ~10
        nn.init.constant_(self.frame_keep.bias, math.log(keep_init / (1 - keep_init)) / self.keep_gain)
        # The blend logit is scaled up: Adam moves a parameter by about lr per step, so with a unit
        # scale the blend could barely leave 0.5 within a short run (measured: +0.03 dB over the
        # enhancement branch with x10 at the embedded budget, -0.01 dB without). The keep logit is
        # not: a per-pixel keep gate with that gain saturated at 1 within a few steps (every frame
        # passed through, measured); a learnt classifier of the frame alone learnt only the prior
        # in 400 steps (measured), hence the sharpness measures.
        self.blend_gain = 10.0

    def judge_logit(self, frames: torch.Tensor) -> torch.Tensor:
        """(B,) logit that the centre frame of the window (B,N,3,H,W) needs no deblurring."""
        s = sharpness(frames)
        c = frames.shape[1] // 2
        others = torch.cat([s[:, :c], s[:, c + 1:]], 1)
        relative = s[:, c] - (others.median(1).values if others.shape[1] else s[:, c])
        centred = s[:, c] - s.new_tensor(SHARPNESS_CENTRE)
        return self.keep_gain * self.frame_keep(torch.cat([centred, relative], 1))[:, 0]

    def forward(self, enhanced: torch.Tensor, interpolated: torch.Tensor, frames: torch.Tensor,
                with_logit: bool = False):
        """Frame t (B,3,H,W) from the branch outputs and the input window (B,N,3,H,W); with
        ``with_logit`` also the per-frame keep logit (B,)."""
        frame = frames[:, frames.shape[1] // 2]
        h0 = lrelu(self.head(torch.cat([enhanced, interpolated, frame], 1)))
        h1 = lrelu(self.down1(h0))
        h = self.body(lrelu(self.down2(h1)))
        h = lrelu(self.up1(upsample(h, h1.shape[-2:]))) + h1
        h = lrelu(self.up2(upsample(h, h0.shape[-2:]))) + h0
        out = self.tail(h)
        alpha = torch.sigmoid(self.blend_gain * out[:, :1])
        logit = self.judge_logit(frames)
        # training: the soft gate (gradients reach both the blend and the keep model); inference:
        # the classifier's decision, so a frame judged sharp comes back exactly as it is
        keep = torch.sigmoid(logit) if self.training else (logit > 0).to(frame.dtype)
        keep = keep[:, None, None, None]
        fixed = alpha * enhanced + (1 - alpha) * interpolated + out[:, 1:]
        result = frame + (1 - keep) * (fixed - frame)
        return (result, logit) if with_logit else result

    @staticmethod
    def frame_loss(logit: torch.Tensor, sharp: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy of the keep logit against "the blur stage left this frame sharp"."""
        return F.binary_cross_entropy_with_logits(logit, sharp.float())


@register("combine_early")
class EarlyFusion(nn.Module):
    def __init__(self, feat: int = 16, blocks: int = 9, num_frames: int = 5, input_stride: int = 4):
        super().__init__()
        self.fusion = nn.Conv2d((num_frames + 2) * feat, feat, 1)
        self.recon = res_blocks(feat, blocks)
        self.to_image = Upsampler(feat, 3, input_stride)

    def forward(self, enhance_feats: torch.Tensor, interp_feats: torch.Tensor, base: torch.Tensor):
        x = torch.cat([enhance_feats.flatten(1, 2), interp_feats.flatten(1, 2)], 1)
        return base + self.to_image(self.recon(lrelu(self.fusion(x))))


def fuse(combiner: nn.Module, enhanced: tuple, interpolated: tuple, shared) -> torch.Tensor:
    """Frame t from the two branches' ``(image, features)`` outputs, by late or early fusion (late
    fusion also sees the input window)."""
    if isinstance(combiner, EarlyFusion):
        return combiner(enhanced[1], interpolated[1], shared.predeblurred[:, shared.num_frames // 2])
    return combiner(enhanced[0], interpolated[0], shared.frames)
