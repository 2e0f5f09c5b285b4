"""EDVR (Wang et al., CVPRW 2019), the video deblurring variant, built from FineNet's own blocks.

Pipeline for a 5-frame window t-2..t+2:

1. **Pre-deblur + feature pyramid** — ``finenet.models.frontend.FrontEnd`` (trainable, this model's
   own copy): ``.pyramid()`` gives every frame levels L1..L3 (L1 at 1/``input_stride``);
   ``.decode_image()`` gives the pre-deblurred centre frame. ``input_stride`` defaults to 4, as in
   EDVR's deblurring model (``hr_in``: the pre-deblur downsamples ×4, features live at 1/4) —
   also what keeps a 5-frame PCD affordable on 2 CPU cores.
2. **PCD alignment** — ``finenet.models.align.PyramidAlign`` with ``foc=False`` and no heatmaps is
   EDVR's Pyramid, Cascading and Deformable alignment: plain offset convs on cat(neighbour,
   reference) per level, offsets upsampled ×2 and doubled between levels, a final cascading DCN at
   L1. Every frame (the reference too) is aligned to frame t.
3. **TSA fusion** (``TSAFusion`` below, the only new code): temporal attention = sigmoid of the
   per-pixel dot product between each aligned frame's embedding and the reference's, weighting the
   frames before a 1×1 fusion conv; spatial attention = a small two-level max/avg-pool pyramid
   producing a multiplicative (×2·sigmoid) and an additive map.
4. **Reconstruction** — ``recon_blocks`` residual blocks without BN, PixelShuffle upsampling back
   to the input size (``Upsampler``), output = pre-deblurred centre frame + residual.

Loss: Charbonnier (ε = 1e-3) on the output, plus ``predeblur_weight`` × Charbonnier on the
pre-deblurred centre frame (deep supervision of the pre-deblur, standing in for EDVR's separately
pre-trained pre-deblur module, which its users found necessary).

Differences from the paper/BasicSR: the pre-deblur is FineNet's front end (a small U-Net-like
deblurrer whose encoder is the pyramid) instead of EDVR's PredeblurModule, and the output residual is
added to the pre-deblurred centre frame rather than to the raw blurry one; offsets are bounded
(``max_offset``·tanh) by FineNet's DCNPack; no TSA-free warm-up and no separate DCN learning rate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..align import PyramidAlign
from ..blocks import Upsampler, conv3, lrelu, merge_frames, res_blocks, split_frames, upsample
from ..frontend import FrontEnd
from ..registry import register
from .deblur_common import charbonnier, check_window, crop_to, pad_to


class TSAFusion(nn.Module):
    """Temporal and Spatial Attention fusion of N aligned feature maps (B,N,C,H,W) -> (B,C,H,W)."""

    def __init__(self, feat: int, num_frames: int, centre: int):
        super().__init__()
        self.centre = centre
        self.embed_ref, self.embed = conv3(feat, feat), conv3(feat, feat)
        self.fuse = nn.Conv2d(num_frames * feat, feat, 1)
        # spatial attention: level 1 (1/2) and level 2 (1/4) of the fused map
        self.sa_in = nn.Conv2d(num_frames * feat, feat, 1)
        self.sa_pool1 = nn.Conv2d(2 * feat, feat, 1)
        self.sa_l2_in = nn.Conv2d(feat, feat, 1)
        self.sa_l2_pool = conv3(2 * feat, feat)
        self.sa_l2_out = conv3(feat, feat)
        self.sa_l1 = conv3(feat, feat)
        self.sa_l1_out = nn.Conv2d(feat, feat, 1)
        self.sa_full = conv3(feat, feat)
        self.sa_add1, self.sa_add2 = nn.Conv2d(feat, feat, 1), nn.Conv2d(feat, feat, 1)

    @staticmethod
    def _pool(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.max_pool2d(x, 3, 2, 1), F.avg_pool2d(x, 3, 2, 1)], 1)

    def forward(self, aligned: torch.Tensor) -> torch.Tensor:
        b, n, c, h, w = aligned.shape
        ref = self.embed_ref(aligned[:, self.centre])                       # (B,C,H,W)
        emb = split_frames(self.embed(merge_frames(aligned)), n)            # (B,N,C,H,W)
        weight = torch.sigmoid((emb * ref.unsqueeze(1)).sum(2, keepdim=True))  # (B,N,1,H,W)
        weighted = (aligned * weight).flatten(1, 2)                         # (B,N*C,H,W)
        fused = lrelu(self.fuse(weighted))
        attn = lrelu(self.sa_in(weighted))
        attn = lrelu(self.sa_pool1(self._pool(attn)))                        # 1/2
        lvl2 = lrelu(self.sa_l2_in(attn))
        lvl2 = lrelu(self.sa_l2_out(lrelu(self.sa_l2_pool(self._pool(lvl2)))))   # 1/4
        attn = lrelu(self.sa_l1(attn)) + upsample(lvl2, attn.shape[-2:])
        attn = upsample(lrelu(self.sa_l1_out(attn)), (h, w))
        attn = self.sa_full(attn)
        add = self.sa_add2(lrelu(self.sa_add1(attn)))
        return fused * torch.sigmoid(attn) * 2 + add


@register("edvr")
class EDVR(nn.Module):
    task = "deblur"

    def __init__(self, feat: int = 16, num_frames: int = 5, groups: int = 4, levels: int = 3,
                 extract_blocks: int = 2, recon_blocks: int = 3, input_stride: int = 4,
                 max_offset: float = 8.0, tsa: bool = True, predeblur_weight: float = 0.5):
        super().__init__()
        self.centre, self.predeblur_weight = num_frames // 2, predeblur_weight
        self.multiple = input_stride * 2 ** max(levels - 1, 2)
        self.frontend = FrontEnd(feat, input_stride, levels, extract_blocks)
        self.align = PyramidAlign(feat, 2, 0, groups, levels, max_offset, foc=False, heatmap_ch=0)
        self.fusion = TSAFusion(feat, num_frames, self.centre) if tsa else nn.Conv2d(num_frames * feat, feat, 1)
        self.recon = res_blocks(feat, recon_blocks)
        self.to_image = Upsampler(feat, 3, input_stride)

    def _run(self, frames: torch.Tensor):
        n, c = check_window(frames)
        frames, size = pad_to(frames, self.multiple)
        pyramid = [split_frames(p, n) for p in self.frontend.pyramid(merge_frames(frames))]  # per level (B,N,C,h,w)
        base = self.frontend.decode_image(frames[:, c], [p[:, c] for p in pyramid])
        ref = [c] * n
        aligned = split_frames(self.align([[merge_frames(p) for p in pyramid],
                                           [merge_frames(p[:, ref]) for p in pyramid]]), n)
        if isinstance(self.fusion, TSAFusion):
            fused = self.fusion(aligned)
        else:                                                                       # tsa: false
            fused = lrelu(self.fusion(aligned.flatten(1, 2)))
        out = base + self.to_image(self.recon(fused))
        return crop_to(out, size), crop_to(base, size)

    def forward(self, frames: torch.Tensor, heatmaps: torch.Tensor | None = None) -> torch.Tensor:
        return self._run(frames)[0]

    def loss(self, batch: dict) -> torch.Tensor:
        out, base = self._run(batch["frames"])
        loss = charbonnier(out, batch["target"])
        if self.predeblur_weight:
            loss = loss + self.predeblur_weight * charbonnier(base, batch["target"])
        return loss
