"""Super-SloMo (Jiang et al., CVPR 2018) as a frame-interpolation baseline for face deblurring.

Frame t is treated as missing and interpolated at time 0.5 between the blurry frames t-1 (I0)
and t+1 (I1); ``frames[:, N//2]`` is never read.

1. Flow U-Net on cat(I0, I1) (6 -> 4 channels): bidirectional optical flow F_{0→1}, F_{1→0}.
2. Intermediate-flow approximation at t (Eq. 4 of the paper):
   F̂_{t→0} = -(1-t) t F_{0→1} + t² F_{1→0},  F̂_{t→1} = (1-t)² F_{0→1} - t(1-t) F_{1→0}.
3. Backward warping g(I, F) with ``grid_sample`` (:func:`warping.backwarp`).
4. Refinement U-Net on cat(I0, I1, F_{0→1}, F_{1→0}, F̂_{t→1}, F̂_{t→0}, g(I1, F̂_{t→1}),
   g(I0, F̂_{t→0})) (20 -> 5 channels): flow residuals ΔF_{t→0}, ΔF_{t→1} and the visibility map
   V_{t←0} = sigmoid(·), V_{t←1} = 1 - V_{t←0}.
5. Fusion Î_t = ((1-t) V_{t←0} g(I0, F_{t→0}) + t V_{t←1} g(I1, F_{t→1})) / ((1-t) V_{t←0} + t V_{t←1}).

U-Nets as in the paper: per level two convs with leaky ReLU (0.1); average pooling down, bilinear
upsampling + conv up, skip connections by concatenation. Paper size: widths 32,64,128,256,512,512
(5 downsamplings), kernels 7,5,3,3,3,3; embedded default: widths 8,16,24,32, kernels 5,3,3,3.
Inputs are padded (reflect) to a multiple of 2^downsamplings and the output cropped back.
``flow_scale`` (not in the paper; 1 = the original): the flow U-Net predicts F / flow_scale, like
PWC-Net's ``div_flow``; trained from scratch on a few hundred small batches the flows stayed
near zero with 1 (the output stuck at the neighbours' average), 5 lets them grow.

Loss (images in [0,1]; the paper's weights were for [0,255], so λ_r = 0.8, λ_w = 0.4 are kept and
λ_s = 1 becomes 1/255):  λ_r ||Î_t - I_t||_1 + λ_g L_grad(Î_t, I_t) + λ_w L_warp + λ_s L_smooth with
L_warp = ||I0 - g(I1, F_{0→1})||_1 + ||I1 - g(I0, F_{1→0})||_1 + ||I_t - g(I0, F̂_{t→0})||_1
+ ||I_t - g(I1, F̂_{t→1})||_1 (I0, I1 the blurry inputs, I_t the sharp target) and
L_smooth = ||∇F_{0→1}||_1 + ||∇F_{1→0}||_1.
**Substitute:** the paper's perceptual loss (VGG16 conv4_3 features) needs ImageNet weights that
cannot be downloaded offline; it is replaced by the L1 loss on spatial image gradients
(``finenet.models.losses.gradient_loss``, the sharpness term FineNet itself uses), weight λ_g.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import gradient_loss
from ..registry import register
from .warping import TwoFrameInterpolator, backwarp, flow_smoothness, pad_to


def _act(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.1)


class UNet(nn.Module):
    """Super-SloMo's U-Net: ``widths[0]`` at full resolution, one average-pooling per further
    width; ``kernels[i]`` is the kernel size of the two convs of level i."""

    def __init__(self, cin: int, cout: int, widths, kernels):
        super().__init__()
        widths, kernels = list(widths), list(kernels)
        if len(kernels) != len(widths):
            raise ValueError("one kernel size per U-Net level")
        conv = lambda a, b, k: nn.Conv2d(a, b, k, 1, k // 2)  # noqa: E731
        self.enc = nn.ModuleList()
        prev = cin
        for c, k in zip(widths, kernels):
            self.enc.append(nn.ModuleList([conv(prev, c, k), conv(c, c, k)]))
            prev = c
        self.dec = nn.ModuleList()
        for i in range(len(widths) - 1, 0, -1):  # up from level i to level i-1
            self.dec.append(nn.ModuleList([conv(widths[i], widths[i - 1], 3),
                                           conv(2 * widths[i - 1], widths[i - 1], 3)]))
        self.out = conv(widths[0], cout, 3)
        self.downsamplings = len(widths) - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, (c1, c2) in enumerate(self.enc):
            if i:
                x = F.avg_pool2d(x, 2)
            x = _act(c2(_act(c1(x))))
            skips.append(x)
        for (up, merge), skip in zip(self.dec, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = _act(merge(torch.cat([_act(up(x)), skip], 1)))
        return self.out(x)


def intermediate_flows(f01: torch.Tensor, f10: torch.Tensor, t: float = 0.5):
    """Super-SloMo Eq. 4: approximate F_{t→0}, F_{t→1} from the bidirectional flows."""
    ft0 = -(1 - t) * t * f01 + t * t * f10
    ft1 = (1 - t) * (1 - t) * f01 - t * (1 - t) * f10
    return ft0, ft1


def fuse(g0: torch.Tensor, g1: torch.Tensor, v0: torch.Tensor, t: float = 0.5,
         eps: float = 1e-8) -> torch.Tensor:
    """Visibility-weighted fusion of the two warped frames (Super-SloMo Eq. 1 with V_{t←1} = 1 - V_{t←0})."""
    w0, w1 = (1 - t) * v0, t * (1 - v0)
    return (w0 * g0 + w1 * g1) / (w0 + w1 + eps)


@register("superslomo")
class SuperSloMo(TwoFrameInterpolator):

    def __init__(self, flow_widths=(8, 16, 24, 32), flow_kernels=(5, 3, 3, 3),
                 refine_widths=(8, 16, 24, 32), refine_kernels=(5, 3, 3, 3), t: float = 0.5,
                 num_frames: int = 5, w_rec: float = 0.8, w_grad: float = 0.8, w_warp: float = 0.4,
                 w_smooth: float = 1.0 / 255, flow_scale: float = 5.0):
        super().__init__()
        if num_frames < 3:
            raise ValueError("Super-SloMo needs the two neighbours of the centre frame")
        self.t = float(t)  # num_frames: validated only, the centre is N//2 of the input
        self.flow_net = UNet(6, 4, flow_widths, flow_kernels)
        self.refine_net = UNet(20, 5, refine_widths, refine_kernels)
        self.multiple = 2 ** max(self.flow_net.downsamplings, self.refine_net.downsamplings)
        self.w_rec, self.w_grad, self.w_warp, self.w_smooth = w_rec, w_grad, w_warp, w_smooth
        self.flow_scale = float(flow_scale)

    def interpolate(self, i0: torch.Tensor, i1: torch.Tensor) -> dict:
        """Frame at time t between i0, i1 (B,3,H,W) and the intermediate quantities."""
        i0, (h, w) = pad_to(i0, self.multiple)
        i1, _ = pad_to(i1, self.multiple)
        t = self.t
        flows = self.flow_scale * self.flow_net(torch.cat([i0, i1], 1))
        f01, f10 = flows[:, :2], flows[:, 2:]
        ft0_hat, ft1_hat = intermediate_flows(f01, f10, t)
        g0_hat, g1_hat = backwarp(i0, ft0_hat), backwarp(i1, ft1_hat)
        r = self.refine_net(torch.cat([i0, i1, f01, f10, ft1_hat, ft0_hat, g1_hat, g0_hat], 1))
        ft0, ft1 = ft0_hat + r[:, 0:2], ft1_hat + r[:, 2:4]
        v0 = torch.sigmoid(r[:, 4:5])
        out = fuse(backwarp(i0, ft0), backwarp(i1, ft1), v0, t)
        crop = lambda x: x[..., :h, :w]  # noqa: E731
        return dict(out=crop(out), f01=crop(f01), f10=crop(f10), g0_hat=crop(g0_hat),
                    g1_hat=crop(g1_hat), v0=crop(v0), ft0=crop(ft0), ft1=crop(ft1),
                    i0=crop(i0), i1=crop(i1))

    def loss(self, batch: dict) -> torch.Tensor:
        r = self._run(batch["frames"])
        target, out, i0, i1 = batch["target"], r["out"], r["i0"], r["i1"]
        warp = (F.l1_loss(backwarp(i1, r["f01"]), i0) + F.l1_loss(backwarp(i0, r["f10"]), i1)
                + F.l1_loss(r["g0_hat"], target) + F.l1_loss(r["g1_hat"], target))
        smooth = flow_smoothness(r["f01"]) + flow_smoothness(r["f10"])
        return (self.w_rec * F.l1_loss(out, target) + self.w_grad * gradient_loss(out, target)
                + self.w_warp * warp + self.w_smooth * smooth)
