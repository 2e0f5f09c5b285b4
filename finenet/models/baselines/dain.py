"""DAIN, Depth-Aware video frame INterpolation (Bao et al., CVPR 2019), in pure PyTorch, as a
frame-interpolation baseline for face deblurring.

Frame t is treated as missing and interpolated at time t = 0.5 between the blurry frames t-1 (I0)
and t+1 (I1); ``frames[:, N//2]`` is never read. DAIN's compiled CUDA extensions and pretrained
sub-networks are replaced as follows (nothing pretrained can be downloaded offline):

- **Flow estimator** — PWC-Net (pretrained, with the CUDA ``Correlation`` layer) → :class:`PyramidFlow`,
  a small PWC-style coarse-to-fine network of our own: a shared strided-conv feature pyramid,
  backward warping of the second image's features by the upsampled flow (``grid_sample``), a
  cost volume computed in pure PyTorch (:func:`correlation`, ``F.unfold`` over a
  (2d+1)² window instead of the CUDA correlation op) and a conv flow estimator per level predicting
  a residual. Both directions (F_{0→1}, F_{1→0}) in one batched pass. No PWC context network.
- **Depth estimator** — MegaDepth's hourglass (pretrained) → :class:`DepthHourglass`, a small
  recursive hourglass (plain conv blocks instead of inception modules) predicting log depth;
  inverse depth = exp(-log depth) as in DAIN (log depth bounded by a ``3·tanh``). Trained from
  scratch through the interpolation loss only.
- **Depth-aware flow projection** (CUDA ``DepthFlowProjection`` with atomicAdd, averaging and
  ``FlowFillhole`` kernels) → :func:`project_flow` + :func:`fill_holes`: every source pixel x of
  frame 0 goes to x + t·F_{0→1}(x); its value −t·F_{0→1}(x) is splatted onto the 4 integer
  neighbours of that point with ``index_add_`` and weights (inverse depth × bilinear weight), then
  divided by the summed weights, so F_{t→0}(y) = −t Σ w(x) F_{0→1}(x) / Σ w(x) and closer pixels
  (larger inverse depth) win where several land on one y. DAIN gives the 4 neighbours equal weight;
  bilinear weights make the projection differentiable w.r.t. the flow's *positions* too. Holes
  (target pixels with bilinear coverage below ``min_coverage``) are filled outside-in like DAIN:
  the mean of the nearest valid flow to the left, right, above and below (found with ``cummax``).
- **Adaptive warping layer** (CUDA ``FilterInterpolation``) → :func:`adaptive_warp`: at the
  projected flow position p = y + F_{t→0}(y) it takes the 16 integer taps ⌊p⌋ + r,
  r ∈ {-1,0,1,2}², weights each by the learned 4×4 kernel times the bilinear coefficient of its
  quadrant (DAIN's TL/TR/BL/BR split), and sums — a single ``gather`` of the 16 taps (the same
  values ``grid_sample`` in nearest mode with border padding gives at integer positions; outside
  the image the taps are clamped to the border, where DAIN copies the input pixel instead).
- **Kernel estimation** — DAIN's U-Net (16..512 channels, 5 max-poolings, skip connections by
  addition, two heads of 16 channels, one per input frame) → :class:`KernelUNet` of the same shape
  with configurable widths. The heads predict a residual over the bilinear kernel (zero-initialised
  last conv), so training from scratch starts from plain bilinear warping.
- **Context extractor** — a 7×7 conv + 2 residual blocks, the three outputs concatenated, plus the
  (detached) log depth, warped with the (detached) flows and kernels, as in DAIN.
- **Frame synthesis** — DAIN's ``MultipleBasicBlock_4`` (7×7 conv → 128, 3 residual blocks, 3×3
  conv → 3) on [blend, warped frames, projected flows, kernels, warped context]; the output is
  the residual over blend = (warped I0 + warped I1)/2 (last conv zero-initialised).

Loss: Charbonnier ``mean(sqrt((Î_t − I_t)² + ε²))``, ε = 1e-6, on the synthesised frame (DAIN's
``alpha = [0, 1]``). Inputs are padded (reflect) to the networks' divisibility and cropped back.

Sizes. Paper scale: flow pyramid 16,32,64,96,128,196 with displacement 4 and estimator convs
128,128,96,64,32 (PWC-Net's, without its dense connections); hourglass width 128, 4 levels;
context 64 channels, 7×7; kernel U-Net 16..512; synthesis 128 channels, 7×7, 3 blocks.
Embedded default: flow 8,16,24 (displacement 2, estimator 16,16), hourglass 8 × 3 levels,
context 8 (3×3), kernel U-Net 8,16,16, synthesis 16 channels (3×3), 3 blocks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register
from .warping import TwoFrameInterpolator, backwarp, base_grid, pad_to


def conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, k // 2)


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.1)


def _up(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


# ---------------------------------------------------------------------------------------------
# Depth-aware flow projection (replaces DAIN's CUDA DepthFlowProjection + FlowFillhole)
# ---------------------------------------------------------------------------------------------

def project_flow(flow: torch.Tensor, weight: torch.Tensor, min_coverage: float = 1e-2):
    """Project ``flow`` (B,2,H,W), the displacement of every source pixel to its position at
    time t (= t·F_{0→1}), to that time: returns F_{t→0} (B,2,H,W), the inverse-depth-weighted mean
    of ``-flow`` over the source pixels landing (bilinearly) on each target pixel, and the mask
    (B,1,H,W) of target pixels that received at least ``min_coverage`` of bilinear weight (the
    others are holes, left at 0). ``weight`` (B,1,H,W) > 0 is the source's inverse depth."""
    b, _, h, w = flow.shape
    xs, ys = base_grid(flow)
    tx, ty = xs + flow[:, 0], ys + flow[:, 1]                       # (B,H,W) landing points
    x0, y0 = torch.floor(tx), torch.floor(ty)
    offset = (torch.arange(b, device=flow.device) * (h * w)).view(b, 1, 1)
    idx, bil = [], []
    for dy in (0, 1):
        for dx in (0, 1):
            cx, cy = x0 + dx, y0 + dy
            wgt = (1 - (tx - cx).abs()) * (1 - (ty - cy).abs())
            inside = (cx >= 0) & (cx <= w - 1) & (cy >= 0) & (cy <= h - 1)
            bil.append(wgt * inside)
            idx.append(offset + cy.clamp(0, h - 1).long() * w + cx.clamp(0, w - 1).long())
    idx = torch.stack(idx, 1).reshape(-1)                           # (B*4*H*W,)
    bil = torch.stack(bil, 1)                                       # (B,4,H,W)
    wd = (bil * weight).reshape(-1)                                 # bilinear × inverse depth
    vals = (-flow).permute(0, 2, 3, 1).unsqueeze(1).expand(b, 4, h, w, 2).reshape(-1, 2)
    num = flow.new_zeros(b * h * w, 2).index_add_(0, idx, vals * wd[:, None])
    den = flow.new_zeros(b * h * w).index_add_(0, idx, wd)
    cov = flow.new_zeros(b * h * w).index_add_(0, idx, bil.detach().reshape(-1))
    valid = (cov > min_coverage).view(b, 1, h, w)
    out = num / den.clamp_min(1e-12)[:, None]
    out = out.view(b, h, w, 2).permute(0, 3, 1, 2)
    return torch.where(valid, out, torch.zeros_like(out)), valid


def fill_holes(flow: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """DAIN's outside-in hole filling: a hole pixel gets the mean of the nearest valid values to
    its left, right, top and bottom (those that exist); a pixel with none stays as it is."""
    b, c, h, w = flow.shape
    v = valid[:, 0]
    total = flow.new_zeros(b, c, h, w)
    count = flow.new_zeros(b, 1, h, w)
    for dim, n in ((2, w), (1, h)):                                 # along x, then along y
        ar = torch.arange(n, device=flow.device)
        ar = ar.view(1, 1, n) if dim == 2 else ar.view(1, n, 1)
        ar = ar.expand_as(v)
        before = torch.where(v, ar, torch.full_like(ar, -1)).cummax(dim).values
        after = torch.where(v, ar, torch.full_like(ar, n)).flip(dim).cummin(dim).values.flip(dim)
        for pos, ok in ((before, before >= 0), (after, after < n)):
            pos = pos.clamp(0, n - 1).unsqueeze(1).expand(b, c, h, w)
            total = total + flow.gather(dim + 1, pos) * ok.unsqueeze(1)
            count = count + ok.unsqueeze(1)
    filled = total / count.clamp_min(1)
    return torch.where(valid | (count == 0), flow, filled)


# ---------------------------------------------------------------------------------------------
# Adaptive warping layer (replaces DAIN's CUDA FilterInterpolation)
# ---------------------------------------------------------------------------------------------

TAPS = (-1, 0, 1, 2)


def bilinear_kernel(like: torch.Tensor) -> torch.Tensor:
    """The 4×4 kernel (B,16,H,W) for which :func:`adaptive_warp` is plain bilinear warping:
    1 on the inner 2×2 taps, 0 on the outer ring."""
    k = torch.zeros(16, dtype=like.dtype, device=like.device)
    for j, ry in enumerate(TAPS):
        for i, rx in enumerate(TAPS):
            if ry in (0, 1) and rx in (0, 1):
                k[4 * j + i] = 1.0
    return k.view(1, 16, 1, 1).expand(like.shape[0], 16, *like.shape[-2:])


def adaptive_warp(img: torch.Tensor, flow: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """out(y) = Σ_r k_r(y) · b_r(α, β) · img(⌊p⌋ + r), p = y + flow(y), r ∈ {-1,0,1,2}²; b_r is the
    bilinear coefficient of the quadrant r lies in ((1-α) for r_x ≤ 0, α for r_x ≥ 1; likewise β
    in y), α, β the fractional parts of p. Taps outside the image are clamped to the border.
    img (B,C,H,W), flow (B,2,H,W), kernel (B,16,H,W) -> (B,C,H,W)."""
    b, c, h, w = img.shape
    xs, ys = base_grid(flow)
    px, py = xs + flow[:, 0], ys + flow[:, 1]
    fx, fy = torch.floor(px), torch.floor(py)
    ax, ay = px - fx, py - fy                       # gradient to the flow flows through these
    fx, fy = fx.long(), fy.long()
    idx, coef = [], []
    for j, ry in enumerate(TAPS):
        by = (1 - ay) if ry <= 0 else ay
        yy = (fy + ry).clamp(0, h - 1)
        for i, rx in enumerate(TAPS):
            bx = (1 - ax) if rx <= 0 else ax
            idx.append(yy * w + (fx + rx).clamp(0, w - 1))
            coef.append(bx * by)
    idx = torch.stack(idx, 1).view(b, 1, 16 * h * w).expand(b, c, 16 * h * w)
    taps = img.reshape(b, c, h * w).gather(2, idx).view(b, c, 16, h, w)
    weights = kernel * torch.stack(coef, 1)                          # (B,16,H,W)
    return (taps * weights.unsqueeze(1)).sum(2)


def correlation(f0: torch.Tensor, f1: torch.Tensor, max_disp: int) -> torch.Tensor:
    """Cost volume (B,(2d+1)²,H,W): mean over channels of f0(x)·f1(x + δ), |δ|∞ ≤ d, zero outside
    (PWC-Net's correlation layer, here with ``F.unfold``)."""
    b, c, h, w = f0.shape
    k = 2 * max_disp + 1
    cols = F.unfold(f1, k, padding=max_disp).view(b, c, k * k, h, w)
    return (f0.unsqueeze(2) * cols).mean(1)


# ---------------------------------------------------------------------------------------------
# Sub-networks
# ---------------------------------------------------------------------------------------------

class PyramidFlow(nn.Module):
    """Small PWC-style flow estimator: flow from a to b (B,2,H,W) in full-resolution pixels.
    Pyramid level l (l = 1..L) at 1/2^l with ``widths[l-1]`` channels; coarse to fine, each level
    warps b's features by the upsampled flow, builds a cost volume and adds a predicted residual."""

    def __init__(self, widths=(8, 16, 24), max_disp: int = 2, est_widths=(16, 16)):
        super().__init__()
        self.max_disp = max_disp
        self.levels = nn.ModuleList()
        prev = 3
        for c in widths:
            self.levels.append(nn.Sequential(conv(prev, c, 3, 2), nn.LeakyReLU(0.1),
                                              conv(c, c), nn.LeakyReLU(0.1)))
            prev = c
        self.estimators = nn.ModuleList()
        for c in widths:
            layers, cin = [], (2 * max_disp + 1) ** 2 + c + 2
            for e in est_widths:
                layers += [conv(cin, e), nn.LeakyReLU(0.1)]
                cin = e
            layers.append(conv(cin, 2))
            self.estimators.append(nn.Sequential(*layers))
        self.downsamplings = len(widths)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        n = a.shape[0]
        x, pyramid = torch.cat([a, b], 0), []
        for level in self.levels:
            x = level(x)
            pyramid.append(x)
        flow = None
        for feats, est in zip(reversed(pyramid), reversed(self.estimators)):
            fa, fb = feats[:n], feats[n:]
            if flow is None:
                flow = fa.new_zeros(n, 2, *fa.shape[-2:])
                warped = fb
            else:
                flow = 2.0 * _up(flow, fa.shape[-2:])
                warped = backwarp(fb, flow)
            corr = _lrelu(correlation(fa, warped, self.max_disp))
            flow = flow + est(torch.cat([corr, fa, flow], 1))
        return 2.0 * _up(flow, a.shape[-2:])


class _HG(nn.Module):
    def __init__(self, feat: int, depth: int):
        super().__init__()
        block = lambda: nn.Sequential(conv(feat, feat), nn.ReLU())  # noqa: E731
        self.skip, self.down, self.up = block(), block(), block()
        self.inner = _HG(feat, depth - 1) if depth > 1 else block()

    def forward(self, x):
        low = self.up(self.inner(self.down(F.avg_pool2d(x, 2))))
        return self.skip(x) + _up(low, x.shape[-2:])


class DepthHourglass(nn.Module):
    """Small recursive hourglass (MegaDepth-like) -> bounded log depth (B,1,H,W)."""

    def __init__(self, feat: int = 8, depth: int = 3):
        super().__init__()
        self.head = nn.Sequential(conv(3, feat), nn.ReLU())
        self.hg = _HG(feat, depth)
        self.tail = conv(feat, 1)
        self.downsamplings = depth

    def forward(self, x):
        return 3.0 * torch.tanh(self.tail(self.hg(self.head(x))) / 3.0)


class BasicBlock(nn.Module):
    """DAIN's residual block: conv-ReLU-conv, identity skip, ReLU after the sum."""

    def __init__(self, feat: int):
        super().__init__()
        self.conv1, self.conv2 = conv(feat, feat), conv(feat, feat)

    def forward(self, x):
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


class ContextExtractor(nn.Module):
    """7×7 conv + 2 residual blocks; the three outputs concatenated (3·feat channels)."""

    def __init__(self, feat: int = 8, kernel: int = 7):
        super().__init__()
        self.head, self.res1, self.res2 = conv(3, feat, kernel), BasicBlock(feat), BasicBlock(feat)

    def forward(self, x):
        x0 = F.relu(self.head(x))
        x1 = self.res1(x0)
        return torch.cat([x0, x1, self.res2(x1)], 1)


class KernelUNet(nn.Module):
    """DAIN's kernel-estimation U-Net on cat(I0, I1): ``widths[0]`` at full resolution, one
    max-pooling per further width, skip connections by addition, two conv-ReLU-conv heads of 16
    channels (the 4×4 kernels for I0 and for I1), predicted as residuals over the bilinear kernel."""

    def __init__(self, widths=(8, 16, 16)):
        super().__init__()
        widths = list(widths)
        self.first = conv(6, widths[0])
        self.enc = nn.ModuleList(conv(widths[i - 1], widths[i]) for i in range(1, len(widths)))
        self.mid = conv(widths[-1], widths[-1])
        self.dec = nn.ModuleList(conv(widths[i], widths[i - 1]) for i in range(len(widths) - 1, 0, -1))
        self.heads = nn.ModuleList()
        for _ in range(2):
            last = conv(widths[0], 16)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.heads.append(nn.Sequential(conv(widths[0], widths[0]), nn.ReLU(), last))
        self.downsamplings = len(widths) - 1

    def forward(self, x):
        x = F.relu(self.first(x))
        skips = []
        for c in self.enc:
            x = F.relu(c(x))
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = F.relu(self.mid(x))
        for c, skip in zip(self.dec, reversed(skips)):
            x = F.relu(c(_up(x, skip.shape[-2:]) + skip))
        base = bilinear_kernel(x)
        return [base + head(x) for head in self.heads]


class FrameSynthesis(nn.Module):
    """DAIN's MultipleBasicBlock_4: conv(k) -> feat, ReLU, ``blocks`` residual blocks, conv -> 3
    (zero-initialised: the synthesis starts as the plain blend)."""

    def __init__(self, cin: int, feat: int = 16, blocks: int = 3, kernel: int = 7):
        super().__init__()
        self.head = conv(cin, feat, kernel)
        self.blocks = nn.Sequential(*[BasicBlock(feat) for _ in range(blocks)])
        self.tail = conv(feat, 3)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x):
        return self.tail(self.blocks(F.relu(self.head(x))))


@register("dain")
class DAIN(TwoFrameInterpolator):

    def __init__(self, flow_widths=(8, 16, 24), flow_est_widths=(16, 16), max_disp: int = 2,
                 depth_feat: int = 8, depth_levels: int = 3, context_feat: int = 8,
                 context_kernel: int = 3, kernel_widths=(8, 16, 16), synth_feat: int = 16,
                 synth_blocks: int = 3, synth_kernel: int = 3, min_coverage: float = 1e-2,
                 t: float = 0.5, num_frames: int = 5, eps: float = 1e-6):
        super().__init__()
        if num_frames < 3:
            raise ValueError("DAIN needs the two neighbours of the centre frame")
        self.t, self.eps, self.min_coverage = float(t), eps, min_coverage
        self.flow = PyramidFlow(flow_widths, max_disp, flow_est_widths)
        self.depth = DepthHourglass(depth_feat, depth_levels)
        self.context = ContextExtractor(context_feat, context_kernel)
        self.kernels = KernelUNet(kernel_widths)
        ctx_ch = 3 * context_feat + 1
        self.synthesis = FrameSynthesis(3 * 3 + 2 * 2 + 2 * 16 + 2 * ctx_ch, synth_feat,
                                        synth_blocks, synth_kernel)
        self.multiple = 2 ** max(self.flow.downsamplings, self.depth.downsamplings,
                                 self.kernels.downsamplings)

    def project(self, flow: torch.Tensor, inv_depth: torch.Tensor, time: float) -> torch.Tensor:
        """F_{0→1}, inverse depth of frame 0, t -> F_{t→0} (projection + hole filling); likewise
        F_{1→0}, frame 1's inverse depth, 1-t -> F_{t→1}."""
        projected, valid = project_flow(time * flow, inv_depth, self.min_coverage)
        return fill_holes(projected, valid)

    def interpolate(self, i0: torch.Tensor, i1: torch.Tensor) -> dict:
        i0, (h, w) = pad_to(i0, self.multiple)
        i1, _ = pad_to(i1, self.multiple)
        n = i0.shape[0]
        both = torch.cat([i0, i1], 0)
        flows = self.flow(both, torch.cat([i1, i0], 0))              # F_{0→1}; F_{1→0}
        log_depth = self.depth(both)
        inv_depth = torch.exp(-log_depth)
        ctx = torch.cat([self.context(both), log_depth.detach()], 1)
        ft = torch.cat([self.project(flows[:n], inv_depth[:n], self.t),        # F_{t→0}
                        self.project(flows[n:], inv_depth[n:], 1 - self.t)], 0)  # F_{t→1}
        k0, k1 = self.kernels(torch.cat([i0, i1], 1))
        kern = torch.cat([k0, k1], 0)
        warped = adaptive_warp(both, ft, kern)
        warped_ctx = adaptive_warp(ctx, ft.detach(), kern.detach())
        w0, w1 = warped[:n], warped[n:]
        blend = (1 - self.t) * w0 + self.t * w1                   # t = 0.5: the mean
        x = torch.cat([blend, w0, w1, ft[:n], ft[n:], k0, k1, warped_ctx[:n], warped_ctx[n:]], 1)
        out = blend + self.synthesis(x)
        crop = lambda x: x[..., :h, :w]  # noqa: E731
        return dict(out=crop(out), blend=crop(blend), ft0=crop(ft[:n]), ft1=crop(ft[n:]),
                    f01=crop(flows[:n]), f10=crop(flows[n:]), inv_depth=crop(inv_depth))

    def loss(self, batch: dict) -> torch.Tensor:
        diff = self._run(batch["frames"])["out"] - batch["target"]
        return torch.sqrt(diff * diff + self.eps ** 2).mean()
