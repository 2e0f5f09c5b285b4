"""Ren et al. (ICCV 2019), "Face video deblurring using 3D facial priors" — the closest variant
that can be built offline.

The paper fits a 3D morphable face model (3DMM) to each (coarsely deblurred) frame, renders the
fitted face as a structural prior, feeds the rendered face and the 3DMM identity coefficients into a
deblurring network, and deblurs the video with a recurrent network that passes features from the
previous frame on to the next.

What this module does instead (no 3DMM, renderer or face-reconstruction weights offline):

- **rendered face → landmark structure map** (``deblur_common.structure_map``): for each processed
  frame, 6 channels rendered from its 68 landmark heatmaps at image resolution — the union of the
  landmark blobs of the face contour (0–16), eyebrows (17–26), nose (27–35), eyes (36–47) and mouth
  (48–67), and the soft face region (morphological closing of all blobs). It carries the face's 2D
  layout and part positions, but no shading, depth or dense surface as a rendered 3DMM does.
- **3DMM identity coefficients → learned identity embedding**: a small CNN (three stride-2 convs,
  global average pooling, linear) over each processed frame, averaged over them, giving an
  ``id_dim`` vector tiled over the bottleneck. It is trained end to end with the deblurring loss,
  not fitted to a face model, and is not an identity *code* in any supervised sense.
- **recurrent deblurring**: frames t−2, t−1, t are processed in order by one encoder–decoder
  (shared weights) whose bottleneck holds a ConvGRU state carried from frame to frame; each step
  sees its blurry frame, the previous step's deblurred output (its own blurry frame at the first
  step) and its structure map; the output of the last step is the estimate of frame t. The model
  is causal: frames t+1, t+2 are never read.

Loss: L1 on frame t plus ``aux_weight`` × the mean L1 of the earlier steps' outputs against their
sharp frames (every recurrent step is a deblurred frame, as in the paper's per-frame supervision).
Also different: widths and depths are ours; no 3DMM fitting stage, no expression/pose coefficients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import conv3, lrelu, res_blocks, upsample
from ..registry import register
from .deblur_common import COMPONENTS, check_window, crop_to, need_heatmaps, pad_to, structure_map

PRIOR_CH = len(COMPONENTS) + 1


class ConvGRU(nn.Module):
    def __init__(self, cin: int, feat: int):
        super().__init__()
        self.gates = conv3(cin + feat, 2 * feat)
        self.cand = conv3(cin + feat, feat)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        if h is None:
            h = x.new_zeros(x.shape[0], self.cand.out_channels, *x.shape[-2:])
        z, r = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, 1)
        n = torch.tanh(self.cand(torch.cat([x, r * h], 1)))
        return (1 - z) * h + z * n


class IdentityEncoder(nn.Module):
    def __init__(self, feat: int, id_dim: int):
        super().__init__()
        self.convs = nn.ModuleList([conv3(3, feat, 2), conv3(feat, 2 * feat, 2), conv3(2 * feat, 2 * feat, 2)])
        self.fc = nn.Linear(2 * feat, id_dim)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(B,T,3,H,W) -> (B,id_dim): per-frame embeddings averaged over the frames."""
        x = frames.flatten(0, 1)
        for conv in self.convs:
            x = lrelu(conv(x))
        emb = self.fc(x.mean((2, 3)))
        return emb.view(*frames.shape[:2], -1).mean(1)


@register("ren")
class RenFacePrior(nn.Module):
    task = "deblur"

    def __init__(self, feat: int = 12, blocks: int = 1, id_dim: int = 16, id_feat: int = 8,
                 past_frames: int = 2, aux_weight: float = 0.5, close_radius: int = 8):
        super().__init__()
        self.past, self.aux_weight, self.close_radius = past_frames, aux_weight, close_radius
        self.identity = IdentityEncoder(id_feat, id_dim)
        self.inp = conv3(3 + 3 + PRIOR_CH, feat)
        self.down1, self.down2 = conv3(feat, 2 * feat, 2), conv3(2 * feat, 4 * feat, 2)
        self.gru = ConvGRU(4 * feat + id_dim, 4 * feat)
        self.body = res_blocks(4 * feat, blocks)
        self.up2, self.up1 = conv3(4 * feat, 2 * feat), conv3(2 * feat, feat)
        self.out = conv3(feat, 3)

    def _step(self, blurry, prev, prior, ident, h):
        e1 = lrelu(self.inp(torch.cat([blurry, prev, prior], 1)))
        e2 = lrelu(self.down1(e1))
        e3 = lrelu(self.down2(e2))
        tiled = ident[:, :, None, None].expand(-1, -1, *e3.shape[-2:])
        h = self.gru(torch.cat([e3, tiled], 1), h)
        d = self.body(h)
        d = lrelu(self.up2(upsample(d, e2.shape[-2:]))) + e2
        d = lrelu(self.up1(upsample(d, e1.shape[-2:]))) + e1
        return blurry + self.out(d), h

    def _run(self, frames: torch.Tensor, heatmaps) -> tuple[list[torch.Tensor], list[int]]:
        n, c = check_window(frames)
        heatmaps = need_heatmaps(heatmaps, frames, "ren")
        steps = list(range(max(c - self.past, 0), c + 1))               # t-2, t-1, t
        clip, size = pad_to(frames[:, steps], 4)
        ident = self.identity(clip)
        outs, h, prev = [], None, None
        for i, t in enumerate(steps):
            blurry = clip[:, i]
            prior = structure_map(heatmaps[:, t], size, self.close_radius)
            prior = F.pad(prior, (0, blurry.shape[-1] - size[1], 0, blurry.shape[-2] - size[0]), mode="replicate")
            prev, h = self._step(blurry, blurry if prev is None else prev, prior, ident, h)
            outs.append(crop_to(prev, size))
        return outs, steps

    def forward(self, frames: torch.Tensor, heatmaps: torch.Tensor | None = None) -> torch.Tensor:
        return self._run(frames, heatmaps)[0][-1]

    def loss(self, batch: dict) -> torch.Tensor:
        outs, steps = self._run(batch["frames"], batch["heatmaps"])
        loss = F.l1_loss(outs[-1], batch["target"])
        if self.aux_weight and len(outs) > 1:
            aux = sum(F.l1_loss(o, batch["sharp"][:, t]) for o, t in zip(outs[:-1], steps[:-1]))
            loss = loss + self.aux_weight * aux / (len(outs) - 1)
        return loss
