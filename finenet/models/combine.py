"""Combination module (paper Sec. 3.5): late fusion of the two branch outputs — two stride-2
downsampling convs, nine residual blocks, two upsampling steps (bilinear + conv, no transposed-conv
checkerboard) — predicting a per-pixel blend of the two images plus a correction. The early-fusion
variant fuses the branches' feature maps instead (five aligned maps from enhancement, two from
interpolation)."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .losses import combine_loss
from .blocks import ResBlock, Upsampler, conv3, lrelu, res_blocks, upsample, zero_init
from .registry import register
from .shared import Branch, Shared


class Fused(NamedTuple):
    """What a combiner returns (both combiners share one interface: ``combiner(enhanced,
    interpolated, shared)`` with the branches' ``Branch`` outputs and the front end's ``Shared``)."""
    image: torch.Tensor                     # frame t (B,3,H,W)
    keep_logit: torch.Tensor | None = None  # late fusion: (B,) logit that frame t needs no deblurring


def blur_measure(image: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) in [0, 1] -> (B,2): the re-blur measure of Crete et al. (2007, "The blur effect";
    ``skimage.measure.blur_effect`` is a variant with Sobel derivatives) of the grey image, at full and at half resolution; 0 = sharp,
    1 = fully blurred. It compares the image's neighbour differences with those left after a 9-tap
    box blur along each axis: a sharp image loses most of them, a blurred one little. Being a ratio
    of the image with itself, it depends far less on the content (texture, contrast, a soft webcam)
    than an energy does (measured on held-out crops: sharp frames of four videos in 0.36-0.42, where
    their log Laplacian energies spread over -6.2 .. -4.6, overlapping blurred frames of other
    videos). The half-resolution one is not fooled by sensor noise, which the full one also sees."""
    grey = image.mean(1, keepdim=True)
    out = []
    for g in (grey, F.avg_pool2d(grey, 2)):
        per_axis = []
        for dim, pad, box in ((2, (0, 0, 4, 4), BOX9.view(1, 1, 9, 1)), (3, (4, 4, 0, 0), BOX9.view(1, 1, 1, 9))):
            blurred = F.conv2d(F.pad(g, pad, mode="replicate"), box.to(g))
            d_image, d_blurred = g.diff(dim=dim).abs(), blurred.diff(dim=dim).abs()
            lost = (d_image - d_blurred).clamp(min=0).sum((1, 2, 3))
            total = d_image.sum((1, 2, 3))
            per_axis.append(1 - lost / total.clamp(min=1e-8))
        out.append(torch.stack(per_axis, -1).amax(-1))          # the blurrier axis, as Crete et al.
    return torch.stack(out, -1)


BOX9 = torch.full((9,), 1 / 9)
BLUR_CENTRE = (0.45, 0.35)   # about a face crop's ``blur_measure`` (full, half resolution) and a unit
BLUR_UNIT = 0.05             # of it: only scales the keep model's input to order 1 for Adam
JUDGE_FEATURES = 4


def window_blur(window: torch.Tensor) -> torch.Tensor:
    """(B,N,3,H,W) whole face crops -> (B,N,2): each frame's ``blur_measure``."""
    b, n = window.shape[:2]
    return blur_measure(window.flatten(0, 1)).view(b, n, 2)


def judge_features(window: torch.Tensor, measures: torch.Tensor | None = None) -> torch.Tensor:
    """(B,N,3,H,W) whole face crops, frame t at the centre -> (B,4): frame t's ``blur_measure``
    (full, half resolution), centred and scaled, and how far above the window's least blurred frame
    it is (>= 0: the minimum includes frame t), in the same unit. The frames of a window show the
    same face, so the second pair does not depend on how soft the face itself looks.
    ``measures``: ``window_blur(window)`` when already computed."""
    m = window_blur(window) if measures is None else measures
    centre = m[:, m.shape[1] // 2]
    return torch.cat([centre - window.new_tensor(BLUR_CENTRE), centre - m.amin(1)], -1) / BLUR_UNIT


def neighbour_context(measures: torch.Tensor) -> torch.Tensor:
    """(B,N,2) ``window_blur`` -> (B,2(N-1)): how much blurrier each other frame of the window is
    than frame t (negative: sharper), in ``BLUR_UNIT``s. The interpolation branch rebuilds frame t
    from its neighbours and the enhancement branch fuses them: where they are blurrier than frame t,
    both inherit their blur (measured on a held-out clip: -10 to -16 dB for the interpolation
    branch on mildly blurred frames between heavily blurred ones), which the images alone do not
    show the combiner."""
    n = measures.shape[1]
    others = torch.cat([measures[:, :n // 2], measures[:, n // 2 + 1:]], 1)
    return ((others - measures[:, n // 2:n // 2 + 1]) / BLUR_UNIT).flatten(1)


@register("combine_late")
class LateFusion(nn.Module):
    """Late fusion of the two branch outputs, with the input window as a third input (do no harm).

    ``out = x + (1 - keep) * (w_E * E + w_I * I + w_x * x + correction - x)``: per-pixel softmax
    weights blend the enhancement (E) and interpolation (I) outputs and the input frame x itself
    (a mildly blurred frame among blurrier neighbours is best left nearly as it is: both branches
    inherit the neighbours' blur), predicted from the three images and, broadcast over the image,
    how much blurrier each neighbour is than frame t (``neighbour_context``), and ``keep`` = sigmoid(a per-frame
    logit) says whether frame x = frame t needs deblurring at all. The logit is learnt (a logistic
    model, ``judge_features``) from the re-blur measure of x at two scales (``blur_measure``) and
    from how much blurrier x is than the sharpest frame of its window, computed on the whole face
    crops (in training too, not on the training patch: ``judged``). Trained on a blur mix with
    sharp frames, with a cost-weighted classification loss against which frames the blur stage
    left sharp (``frame_loss``, ``train.keep_weight``, ``train.keep_cost``; first alone for
    ``train.judge_steps``), the combiner learns to return a sharp frame unchanged, which neither
    branch can do: at inference (``eval()``) the gate is the classifier's decision (keep iff its
    logit > 0), so a frame judged sharp comes back bit for bit. Earlier designs, measured and
    replaced: the log Laplacian energy of x and its value relative to the window's median (sharp
    frames of a soft webcam clip were judged blurred: -3 to -20 dB on them end to end; a sharp
    frame among sharp neighbours has no relative contrast); the measure of x alone (its value on
    a sharp face depends on the face: 13 % of the test set's sharp frames and 5 of 17 of a held-out
    webcam clip's at 0.6x and 2x were judged blurred, -7 and -14 dB on them end to end); a loss
    weighted by the training mix's prior (20 % sharp), which leans towards deblurring. The window
    term cancels the face's own softness (its frames share it), and it is 0 for a frame sharp
    among sharp neighbours, where the absolute terms decide. ``keep``
    starts at ``keep_init``, the weights at (0.49, 0.49, 0.02) and the correction at 0
    (zero-initialised tail): the combiner starts as (nearly) the plain average of the branches.
    Replaced: a two-way blend of E and I from the images alone (at the bench tier -4 to -14 dB
    below the input on a held-out clip's mildly blurred frames, where the interpolation branch
    failed and the blend could not tell).

    ``predeblur`` (``model.combine_predeblur``): the pre-deblurred frame t (P, the front end's
    single-frame output) is a fourth candidate of the blend (its weight too starts at 0.02). On a
    mildly blurred frame among blurrier neighbours both branches inherit the neighbours' blur,
    while P, which reads frame t alone, does not (measured at the bench tier on a held-out clip's
    frames: ``benchmarks/bench_branches.py``).
    """

    def __init__(self, feat: int = 16, blocks: int = 9, keep_init: float = 0.05, num_frames: int = 5,
                 blend_gain: float = 10.0, keep_gain: float = 10.0, predeblur: bool = False):
        super().__init__()
        self.context = 2 * (num_frames - 1)       # neighbour_context channels
        self.predeblur = predeblur                # a fourth candidate: the pre-deblurred frame t
        self.candidates = 4 if predeblur else 3
        self.head = nn.Conv2d(3 * self.candidates + self.context, feat, 7, 1, 3)
        self.down1, self.down2 = conv3(feat, 2 * feat, 2), conv3(2 * feat, 4 * feat, 2)
        self.body = nn.Sequential(*[ResBlock(4 * feat) for _ in range(blocks)])
        self.up1, self.up2 = conv3(4 * feat, 2 * feat), conv3(2 * feat, feat)
        # blend logits (E, I, x[, P]), then a 3-channel correction
        self.tail = zero_init(nn.Conv2d(feat, self.candidates + 3, 7, 1, 3))
        # The blend logits are scaled up by ``blend_gain`` (``model.blend_gain``; the paper has no
        # such factor): Adam moves a parameter by about lr per step, so with a unit scale the blend
        # could barely leave 0.5 within a short run (measured: +0.03 dB over the enhancement branch
        # with x10 at the embedded budget, -0.01 dB without). The keep logit is scaled by
        # ``keep_gain`` (``model.keep_gain``) on the output of a linear model of ``judge_features``:
        # a per-pixel keep gate with that gain saturated at 1 within a few steps (every frame passed
        # through, measured); a learnt classifier of the frame alone learnt only the prior in 400
        # steps (measured), hence the blur measure.
        self.blend_gain, self.keep_gain = float(blend_gain), float(keep_gain)
        with torch.no_grad():                     # x's (and P's) weight starts at 0.02
            self.tail.bias[2:self.candidates] = -math.log(0.49 / 0.02) / self.blend_gain
        self.frame_keep = nn.Linear(JUDGE_FEATURES, 1)   # keep logit from ``judge_features``
        nn.init.zeros_(self.frame_keep.weight)
        nn.init.constant_(self.frame_keep.bias, math.log(keep_init / (1 - keep_init)) / self.keep_gain)

    def judge_logit(self, window: torch.Tensor) -> torch.Tensor:
        """(B,) logit that the centre frame of ``window`` (B,N,3,H,W; whole face crops) needs no
        deblurring."""
        return self.keep_gain * self.frame_keep(judge_features(window))[:, 0]

    def forward(self, enhanced: Branch, interpolated: Branch, shared: Shared,
                judged: torch.Tensor | None = None) -> Fused:
        """Frame t (B,3,H,W) from the branch outputs and the input window ``shared.frames``
        (B,N,3,H,W), and the per-frame keep logit (B,). ``judged``: the window the keep model
        judges (B,N,3,H',W'), default the input window; training passes the whole crops its
        patches are cut from."""
        frames = shared.frames
        frame = frames[:, frames.shape[1] // 2]
        judged = frames if judged is None else judged
        measures = window_blur(judged)
        context = neighbour_context(measures)[:, :, None, None].expand(-1, -1, *frame.shape[-2:])
        candidates = [enhanced.image, interpolated.image, frame]
        if self.predeblur:
            candidates.append(shared.predeblurred[:, shared.num_frames // 2])
        h0 = lrelu(self.head(torch.cat([*candidates, context.to(frame.dtype)], 1)))
        h1 = lrelu(self.down1(h0))
        h = self.body(lrelu(self.down2(h1)))
        h = lrelu(self.up1(upsample(h, h1.shape[-2:]))) + h1
        h = lrelu(self.up2(upsample(h, h0.shape[-2:]))) + h0
        out = self.tail(h)
        k = self.candidates
        w = torch.softmax(self.blend_gain * out[:, :k], 1)
        logit = self.keep_gain * self.frame_keep(judge_features(judged, measures))[:, 0]
        # training: the soft gate (gradients reach both the blend and the keep model); inference:
        # the classifier's decision, so a frame judged sharp comes back exactly as it is
        keep = torch.sigmoid(logit) if self.training else (logit > 0).to(frame.dtype)
        keep = keep[:, None, None, None]
        fixed = sum(w[:, i:i + 1] * c for i, c in enumerate(candidates)) + out[:, k:]
        return Fused(frame + (1 - keep) * (fixed - frame), logit)

    def loss(self, batch: dict, enhanced: Branch, interpolated: Branch, shared: Shared,
             keep_weight: float = 1.0, sharp_weight: float = 1.0) -> torch.Tensor:
        """L_combine on frame t plus ``keep_weight`` x the keep model's ``frame_loss`` (do no harm:
        it also learns which frames the blur stage left sharp), judged on the whole crops."""
        out = self(enhanced, interpolated, shared, judged=batch["whole"])
        sharp = ~batch["blurred"][:, shared.num_frames // 2]
        return combine_loss(out.image, batch["target"]) + keep_weight * self.frame_loss(out.keep_logit, sharp, sharp_weight)

    def judge_loss(self, batch: dict, sharp_weight: float = 1.0) -> torch.Tensor:
        """The keep model's loss alone (its first ``train.judge_steps``): no branch runs."""
        frames = batch["whole"]
        return self.frame_loss(self.judge_logit(frames), ~batch["blurred"][:, frames.shape[1] // 2], sharp_weight)

    @staticmethod
    def frame_loss(logit: torch.Tensor, sharp: torch.Tensor, sharp_weight: float = 1.0) -> torch.Tensor:
        """Binary cross-entropy of the keep logit against "the blur stage left this frame sharp",
        sharp frames weighted by ``sharp_weight`` (the trainer passes ``train.keep_cost`` x the
        blurred / sharp frame counts of the training set: at cost 1 both classes weigh the same)."""
        return F.binary_cross_entropy_with_logits(logit, sharp.float(), pos_weight=logit.new_tensor(sharp_weight))


@register("combine_early")
class EarlyFusion(nn.Module):
    """Early fusion (the paper's ablation): the branches' feature maps (five aligned maps from
    enhancement, two from interpolation, ``branch_feat`` channels each) fused by a 1x1 conv to
    ``feat`` channels, ``blocks`` residual blocks, frame t as a residual over the pre-deblurred
    frame t. Its width and depth are the combination module's (``model.combine_feat``,
    ``model.combine_blocks``), as late fusion's are."""

    def __init__(self, branch_feat: int = 16, feat: int = 16, blocks: int = 9, num_frames: int = 5,
                 input_stride: int = 4):
        super().__init__()
        self.fusion = nn.Conv2d((num_frames + 2) * branch_feat, feat, 1)
        self.recon = res_blocks(feat, blocks)
        self.to_image = Upsampler(feat, 3, input_stride)

    def forward(self, enhanced: Branch, interpolated: Branch, shared: Shared, judged=None) -> Fused:
        x = torch.cat([enhanced.features.flatten(1, 2), interpolated.features.flatten(1, 2)], 1)
        base = shared.predeblurred[:, shared.num_frames // 2]
        return Fused(base + self.to_image(self.recon(lrelu(self.fusion(x)))))

    def loss(self, batch: dict, enhanced: Branch, interpolated: Branch, shared: Shared) -> torch.Tensor:
        """L_combine on frame t."""
        return combine_loss(self(enhanced, interpolated, shared).image, batch["target"])
