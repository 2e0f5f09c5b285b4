"""UMSN (Yasarla, Perazzi & Patel 2019, "Deblurring face images using uncertainty guided
multi-stream semantic networks"), applied to the blurry centre frame.

Architecture: a face is split into ``K = 4`` soft semantic classes (background, face skin,
eyes+eyebrows, nose+mouth). One stream per class — an encoder–decoder (conv, two stride-2 convs,
residual blocks, two bilinear-upsample+conv steps with additive skips) — takes the blurry image
concatenated with its class mask and outputs a deblurred image (a residual over the blurry input)
and a confidence map c_k ∈ (0, 1) (sigmoid). A final encoder–decoder takes the blurry image, the
K stream outputs and the K masks and produces the result (again a residual over the blurry image).

Loss (confidence/uncertainty-guided, "CUL"): for every stream,
``L_k = Σ M_k·(c_k·|x̂_k − y| − λ·log c_k) / Σ M_k`` (|·| averaged over RGB, sums over pixels),
minimised per pixel by c = min(1, λ/|error|): the stream is told where it is unsure, and its data
term is down-weighted there instead of being dominated by it. Total = L1(final, y) +
mean_k(w_k·L_k), λ = ``conf_weight``, w_k = ``class_weights``.

**Semantic masks come from the landmark heatmaps, not from a face-parsing network** (UMSN's
segmentation network and its training labels are not available offline). ``semantic_masks`` in
``deblur_common`` derives them from the 68 heatmaps of the centre frame: face region = morphological
closing (radius ``close_radius`` image px) of the union of all 68 landmark blobs; eyes+eyebrows =
blobs of points 17–26 and 36–47, nose+mouth = blobs of 27–35 and 48–67 (dilated by ``part_radius``
px, kept inside the face region); skin = face region minus the parts; background = the rest; the
four are normalised to sum to 1 per pixel. The grouping into these four classes is ours (the FineNet
paper describes UMSN's parsing as four face parts).

Differences from the paper: masks from landmarks instead of a parsing CNN (so they come from the
detector run on the blurry frame, like FineNet's heatmaps); streams are plain residual
encoder–decoders rather than UMSN's dense-block U-Nets; no VGG perceptual term (no ImageNet weights
offline) and no half-resolution auxiliary output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import conv3, lrelu, res_blocks, upsample
from ..registry import register
from .deblur_common import CLASSES, check_window, crop_to, need_heatmaps, pad_to, semantic_masks


class EncDec(nn.Module):
    """Small residual encoder–decoder: full, 1/2, 1/4 resolution (``feat``, 2·feat, 4·feat)."""

    def __init__(self, cin: int, cout: int, feat: int, blocks: int):
        super().__init__()
        self.inp = conv3(cin, feat)
        self.down1, self.down2 = conv3(feat, 2 * feat, 2), conv3(2 * feat, 4 * feat, 2)
        self.body = res_blocks(4 * feat, blocks)
        self.up2, self.up1 = conv3(4 * feat, 2 * feat), conv3(2 * feat, feat)
        self.out = conv3(feat, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = lrelu(self.inp(x))
        e2 = lrelu(self.down1(e1))
        d = self.body(lrelu(self.down2(e2)))
        d = lrelu(self.up2(upsample(d, e2.shape[-2:]))) + e2
        d = lrelu(self.up1(upsample(d, e1.shape[-2:]))) + e1
        return self.out(d)


@register("umsn")
class UMSN(nn.Module):
    task = "deblur"
    classes = CLASSES

    def __init__(self, feat: int = 8, blocks: int = 1, final_feat: int = 16, final_blocks: int = 2,
                 conf_weight: float = 0.05, class_weights: tuple | list | None = None,
                 close_radius: int = 8, part_radius: int = 1):
        super().__init__()
        k = len(CLASSES)
        self.streams = nn.ModuleList([EncDec(3 + 1, 3 + 1, feat, blocks) for _ in range(k)])
        self.final = EncDec(3 + 3 * k + k, 3, final_feat, final_blocks)
        self.conf_weight = conf_weight
        self.class_weights = list(class_weights) if class_weights is not None else [1.0] * k
        if len(self.class_weights) != k:
            raise ValueError(f"class_weights needs {k} values ({', '.join(CLASSES)})")
        self.close_radius, self.part_radius = close_radius, part_radius

    def masks(self, heatmaps: torch.Tensor, size) -> torch.Tensor:
        """(B,68,h,w) centre-frame heatmaps -> (B,4,H,W) soft class masks."""
        return semantic_masks(heatmaps, size, self.close_radius, self.part_radius)

    def _run(self, frames: torch.Tensor, heatmaps) -> dict:
        _, c = check_window(frames)
        heat = need_heatmaps(heatmaps, frames, "umsn")[:, c]
        image, size = pad_to(frames[:, c], 4)
        masks = self.masks(heat, size)
        masks = F.pad(masks, (0, image.shape[-1] - size[1], 0, image.shape[-2] - size[0]), mode="replicate")
        outs, confs = [], []
        for k, stream in enumerate(self.streams):
            o = stream(torch.cat([image, masks[:, k:k + 1]], 1))
            outs.append(image + o[:, :3])
            confs.append(torch.sigmoid(o[:, 3:]))
        final = image + self.final(torch.cat([image, *outs, masks], 1))
        crop = lambda x: crop_to(x, size)  # noqa: E731
        return {"output": crop(final), "streams": [crop(o) for o in outs],
                "confidence": [crop(c_) for c_ in confs], "masks": crop(masks)}

    def forward(self, frames: torch.Tensor, heatmaps: torch.Tensor | None = None) -> torch.Tensor:
        return self._run(frames, heatmaps)["output"]

    def confidence_loss(self, r: dict, y: torch.Tensor) -> torch.Tensor:
        """mean_k w_k · Σ M_k·(c_k·|x̂_k − y| − λ·log c_k) / Σ M_k, from ``_run``'s outputs."""
        cul = y.new_zeros(())
        for k, (out, conf) in enumerate(zip(r["streams"], r["confidence"])):
            m = r["masks"][:, k:k + 1]
            err = (out - y).abs().mean(1, keepdim=True)
            per_pixel = conf * err - self.conf_weight * torch.log(conf.clamp_min(1e-6))
            cul = cul + self.class_weights[k] * (m * per_pixel).sum() / m.sum().clamp_min(1e-6)
        return cul / len(self.streams)

    def loss(self, batch: dict) -> torch.Tensor:
        r = self._run(batch["frames"], batch["heatmaps"])
        return F.l1_loss(r["output"], batch["target"]) + self.confidence_loss(r, batch["target"])
