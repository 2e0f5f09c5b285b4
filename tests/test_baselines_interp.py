"""Frame-interpolation baselines (Super-SloMo, DAIN): registration, shapes, the centre frame is
never read, the warping / flow-projection primitives on known flows, training, determinism."""

import math

import pytest
import torch

import finenet.models.baselines  # noqa: F401  (registers the baselines)
from finenet.models import ARCHS, build
from finenet.models.baselines.dain import (
    adaptive_warp, bilinear_kernel, correlation, fill_holes, project_flow)
from finenet.models.baselines.superslomo import fuse, intermediate_flows
from finenet.models.baselines.warping import backwarp, pad_to

NAMES = ["superslomo", "dain"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # conftest.py


def smooth_image(h: int, w: int, shift_x: float = 0.0, shift_y: float = 0.0) -> torch.Tensor:
    """(1,3,h,w) smooth colour pattern S(x - shift_x, y - shift_y), evaluated analytically."""
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                          indexing="ij")
    x, y = x - shift_x, y - shift_y
    chans = [0.5 + 0.3 * torch.sin(2 * math.pi * x / 23 + 0.4) * torch.cos(2 * math.pi * y / 19),
             0.5 + 0.3 * torch.cos(2 * math.pi * (x + y) / 29),
             0.5 + 0.2 * torch.sin(2 * math.pi * (x - 0.5 * y) / 17 + 1.0)]
    return torch.stack(chans).unsqueeze(0).float()


def const_flow(h: int, w: int, fx: float, fy: float) -> torch.Tensor:
    return torch.tensor([fx, fy]).view(1, 2, 1, 1).expand(1, 2, h, w).clone()


def window(b=2, h=32, w=32, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 5, 3, h, w, generator=g)


# ----------------------------------------------------------------------------- registry, shapes

@pytest.mark.parametrize("name", NAMES)
def test_registered_and_built_by_name(name):
    assert name in ARCHS
    net = build(name)
    assert net.task == "interp"
    assert isinstance(net, torch.nn.Module)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [32, 96])
def test_output_shape(name, size):
    torch.manual_seed(0)
    net = build(name).eval()
    frames = window(1, size, size)
    with torch.no_grad():
        out = net(frames, torch.rand(1, 5, 68, size // 2, size // 2))
    assert out.shape == (1, 3, size, size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_non_square_and_padding(name):
    torch.manual_seed(0)
    net = build(name).eval()
    with torch.no_grad():
        out = net(window(1, 48, 80))
    assert out.shape == (1, 3, 48, 80)
    x, size = pad_to(torch.rand(2, 3, 48, 80), 32)
    assert x.shape == (2, 3, 64, 96) and size == (48, 80)


@pytest.mark.parametrize("name", NAMES)
def test_centre_frame_is_never_read(name):
    torch.manual_seed(0)
    net = build(name).eval()
    frames = window()
    changed = frames.clone()
    changed[:, 2] = float("nan")            # any read of frame t would poison the output
    other = frames.clone()
    other[:, 1] = torch.rand_like(other[:, 1])  # frame t-1 is an input: the output must change
    with torch.no_grad():
        ref, out, out_other = net(frames), net(changed), net(other)
    assert torch.isfinite(out).all()
    assert torch.equal(ref, out)
    assert not torch.allclose(ref, out_other)


# ----------------------------------------------------------------------------- warping primitives

@pytest.mark.parametrize("d", [2.0, 1.5])
def test_backward_warping_undoes_a_translation(d):
    """t-1 = S(x - d), t+1 = S(x + d): backwarp(t-1, +d) and backwarp(t+1, -d) give S = frame t."""
    h, w, m = 32, 40, 4
    s, i0, i1 = smooth_image(h, w), smooth_image(h, w, d, 0.5 * d), smooth_image(h, w, -d, -0.5 * d)
    g0 = backwarp(i0, const_flow(h, w, d, 0.5 * d))
    g1 = backwarp(i1, const_flow(h, w, -d, -0.5 * d))
    tol = 1e-5 if d == int(d) else 1e-2     # bilinear sampling of a smooth image
    for g in (g0, g1):
        assert (g - s)[..., m:-m, m:-m].abs().max() < tol
    # the wrong direction is far off: the test can fail
    assert (backwarp(i0, const_flow(h, w, -d, -0.5 * d)) - s)[..., m:-m, m:-m].abs().max() > 0.1


def test_superslomo_intermediate_flow_and_fusion_on_a_translation():
    """With F_{0→1} = -2d, F_{1→0} = +2d (the true flows of the shifted pair) Super-SloMo's
    approximation gives F_{t→0} = d, F_{t→1} = -d and the fused frame is S whatever V is."""
    h, w, d, m = 32, 32, 2.0, 4
    s, i0, i1 = smooth_image(h, w), smooth_image(h, w, d, 0), smooth_image(h, w, -d, 0)
    f01, f10 = const_flow(h, w, -2 * d, 0), const_flow(h, w, 2 * d, 0)
    assert (backwarp(i1, f01) - i0)[..., m + 4:-m - 4].abs().max() < 1e-5  # I0(p) = I1(p + F01)
    ft0, ft1 = intermediate_flows(f01, f10, 0.5)
    assert torch.allclose(ft0, const_flow(h, w, d, 0)) and torch.allclose(ft1, const_flow(h, w, -d, 0))
    v0 = torch.rand(1, 1, h, w)
    out = fuse(backwarp(i0, ft0), backwarp(i1, ft1), v0, 0.5)
    assert (out - s)[..., m:-m, m:-m].abs().max() < 1e-5
    # V weights the two warps: V_{t←0} = 1 takes warped I0 only
    a, b = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    assert torch.allclose(fuse(a, b, torch.ones(1, 1, 4, 4)), a)
    assert torch.allclose(fuse(a, b, torch.full((1, 1, 4, 4), 0.25)), torch.full((1, 3, 4, 4), 0.75))


@pytest.mark.parametrize("d", [2.0, 1.5])
def test_dain_projection_and_adaptive_warp_on_a_translation(d):
    """Projecting t·F_{0→1} = -d of the shifted pair gives F_{t→0} = +d everywhere (the holes the
    shift leaves at the border are filled from neighbours), and adaptive warping with the
    bilinear kernel at those flows gives frame t."""
    h, w, m = 32, 32, 4
    s, i0 = smooth_image(h, w), smooth_image(h, w, d, 0)
    inv_depth = torch.rand(1, 1, h, w) + 0.5
    projected, valid = project_flow(const_flow(h, w, -d, 0), inv_depth)
    assert not valid.all()                                  # a border band no source lands on
    assert not valid[..., -1].any() and valid[..., : w - int(math.ceil(d)) - 1].all()
    assert torch.allclose(projected[valid.expand_as(projected)],
                          const_flow(h, w, d, 0)[valid.expand_as(projected)], atol=1e-5)
    ft0 = fill_holes(projected, valid)
    assert torch.allclose(ft0, const_flow(h, w, d, 0), atol=1e-5)
    warped = adaptive_warp(i0, ft0, bilinear_kernel(ft0))
    tol = 1e-5 if d == int(d) else 1e-2
    assert (warped - s)[..., m:-m, m:-m].abs().max() < tol
    assert (warped - backwarp(i0, ft0))[..., m:-m, m:-m].abs().max() < 1e-5


def test_projection_collision_resolved_by_inverse_depth():
    """Two sources landing on one pixel: the projected flow is their inverse-depth-weighted mean
    (the closer one dominates)."""
    h, w = 3, 8
    flow = torch.zeros(1, 2, h, w)
    flow[0, 0, 1, 1] = 2.0      # (1,1) -> (1,3)
    flow[0, 0, 1, 5] = -2.0     # (1,5) -> (1,3)
    flow[0, 0, 1, 3] = 4.0      # (1,3) moves away to (1,7)

    def at_target(near: float, far: float) -> float:
        inv_depth = torch.ones(1, 1, h, w)
        inv_depth[0, 0, 1, 1], inv_depth[0, 0, 1, 5] = near, far
        out, valid = project_flow(flow, inv_depth)
        assert valid[0, 0, 1, 3]
        assert out[0, 1, 1, 3].abs() < 1e-6                  # no vertical motion
        return out[0, 0, 1, 3].item()

    assert at_target(1.0, 1.0) == pytest.approx(0.0, abs=1e-6)
    assert at_target(4.0, 1.0) == pytest.approx((4 * -2 + 1 * 2) / 5, abs=1e-6)   # -1.2
    assert at_target(1.0, 4.0) == pytest.approx(1.2, abs=1e-6)
    assert at_target(1000.0, 1.0) == pytest.approx(-2.0, abs=1e-2)                # closer wins
    # pixel (1,7) gets the source from (1,3) and its own zero flow, equal weights
    out, _ = project_flow(flow, torch.ones(1, 1, h, w))
    assert out[0, 0, 1, 7].item() == pytest.approx(-2.0, abs=1e-6)


def test_fill_holes_outside_in():
    """A hole takes the mean of the nearest valid values left, right, above and below."""
    flow = torch.arange(2 * 5 * 6, dtype=torch.float32).view(1, 2, 5, 6)
    valid = torch.ones(1, 1, 5, 6, dtype=torch.bool)
    valid[..., 1:4, 1:5] = False
    out = fill_holes(flow, valid)
    assert torch.equal(out[valid.expand_as(out)], flow[valid.expand_as(flow)])
    for c in range(2):
        expect = (flow[0, c, 2, 0] + flow[0, c, 2, 5] + flow[0, c, 0, 2] + flow[0, c, 4, 2]) / 4
        assert out[0, c, 2, 2] == pytest.approx(expect.item())
    # a hole on the border has no left neighbour: mean of the three others
    valid2 = torch.ones(1, 1, 5, 6, dtype=torch.bool)
    valid2[..., 2, 0:2] = False
    out2 = fill_holes(flow, valid2)
    expect = (flow[0, 0, 2, 2] + flow[0, 0, 1, 0] + flow[0, 0, 3, 0]) / 3
    assert out2[0, 0, 2, 0] == pytest.approx(expect.item())
    # nothing valid anywhere: left unchanged
    none = torch.zeros(1, 1, 5, 6, dtype=torch.bool)
    assert torch.equal(fill_holes(flow, none), flow)


def test_adaptive_warp_tap_layout():
    """Zero flow with a one-hot kernel on tap r = (-1,-1) reads the up-left neighbour; the
    bilinear kernel at fractional flows equals grid_sample's bilinear warp."""
    torch.manual_seed(0)
    img = torch.rand(1, 2, 6, 7)
    zero = torch.zeros(1, 2, 6, 7)
    kernel = torch.zeros(1, 16, 6, 7)
    kernel[:, 0] = 1.0                                     # tap (rx, ry) = (-1, -1)
    out = adaptive_warp(img, zero, kernel)
    assert torch.equal(out[..., 1:, 1:], img[..., :-1, :-1])
    assert torch.equal(out[..., 0, 1:], img[..., 0, :-1])  # clamped at the top border
    flow = (torch.rand(1, 2, 6, 7) - 0.5) * 2
    ref = backwarp(img, flow)
    assert torch.allclose(adaptive_warp(img, flow, bilinear_kernel(flow))[..., 2:-2, 2:-2],
                          ref[..., 2:-2, 2:-2], atol=1e-5)
    # gradients reach the flow through the bilinear coefficients
    flow.requires_grad_(True)
    adaptive_warp(img, flow, bilinear_kernel(flow)).sum().backward()
    assert flow.grad.abs().sum() > 0


def test_correlation_peaks_at_the_true_displacement():
    torch.manual_seed(0)
    f0 = torch.nn.functional.normalize(torch.randn(1, 16, 12, 12), dim=1)  # unit feature vectors
    f1 = torch.roll(f0, shifts=(1, -2), dims=(2, 3))     # f1(y + 1, x - 2) = f0(y, x)
    corr = correlation(f0, f1, 2)                         # channel (dy+2)*5 + (dx+2)
    assert corr.shape == (1, 25, 12, 12)
    best = corr[..., 3:-3, 3:-3].argmax(1)
    assert (best == (1 + 2) * 5 + (-2 + 2)).all()
    assert torch.allclose(corr[:, 15, 3:-3, 3:-3], torch.full((1, 6, 6), 1 / 16))


def test_full_models_with_the_true_flows_rebuild_frame_t(monkeypatch):
    """End to end: given the true flows of a translated pair (flow networks replaced), an untrained
    Super-SloMo (zero refinement) and DAIN (kernels start bilinear, synthesis starts as the blend)
    output frame t; with the flows' sign flipped they don't."""
    h = w = 32
    d, m = 2.0, 6
    s = smooth_image(h, w)
    frames = torch.stack([smooth_image(h, w, -k * d, 0) for k in (-2, -1, 0, 1, 2)], 1)  # t±1: S(x∓d)
    frames[:, 2] = 0.0

    def run(name, sign):
        torch.manual_seed(0)
        net = build(name).eval()
        f01, f10 = sign * const_flow(h, w, -2 * d, 0), sign * const_flow(h, w, 2 * d, 0)
        if name == "superslomo":
            monkeypatch.setattr(net.flow_net, "forward",
                                lambda x: torch.cat([f01, f10], 1) / net.flow_scale)
            monkeypatch.setattr(net.refine_net, "forward", lambda x: x.new_zeros(1, 5, h, w))
        else:
            monkeypatch.setattr(net.flow, "forward", lambda a, b: torch.cat([f01, f10], 0))
        with torch.no_grad():
            return (net(frames) - s)[..., m:-m, m:-m].abs().max()

    for name in NAMES:
        assert run(name, 1.0) < 1e-4, name
        assert run(name, -1.0) > 0.1, name


def test_paper_scale_configs_build():
    """The paper-scale sizes (reported in params.yaml's paper profile) are accepted."""
    ss = build("superslomo", flow_widths=[32, 64, 128, 256, 512, 512], flow_kernels=[7, 5, 3, 3, 3, 3],
               refine_widths=[32, 64, 128, 256, 512, 512], refine_kernels=[7, 5, 3, 3, 3, 3])
    assert ss.multiple == 32
    assert sum(p.numel() for p in ss.parameters()) == 39_610_473   # the original's 39.6M
    dn = build("dain", flow_widths=[16, 32, 64, 96, 128, 196], flow_est_widths=[128, 128, 96, 64, 32],
               max_disp=4, depth_feat=128, depth_levels=4, context_feat=64, context_kernel=7,
               kernel_widths=[16, 32, 64, 128, 256, 512], synth_feat=128, synth_blocks=3, synth_kernel=7)
    assert dn.multiple == 64


# ----------------------------------------------------------------------------- training, seeds

def moving_batch(b: int = 2, size: int = 32) -> dict:
    """Sharp frames of a smooth pattern moving 1.5 px/frame; the inputs are those frames + noise."""
    sharp = torch.stack([torch.cat([smooth_image(size, size, 1.5 * (k - 2) + 3 * j, 0.7 * (k - 2))
                                    for j in range(b)]) for k in range(5)], 1)
    g = torch.Generator().manual_seed(1)
    frames = (sharp + 0.02 * torch.randn(sharp.shape, generator=g)).clamp(0, 1)
    return dict(frames=frames, heatmaps=torch.zeros(b, 5, 68, size // 2, size // 2),
                target=sharp[:, 2], sharp=sharp)


@pytest.mark.parametrize("name", NAMES)
def test_a_few_adam_steps_reduce_the_loss(name):
    torch.manual_seed(0)
    net = build(name)
    batch = moving_batch()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    with torch.no_grad():
        before = net.loss(batch).item()
    for _ in range(15):
        opt.zero_grad()
        loss = net.loss(batch)
        assert loss.dim() == 0 and torch.isfinite(loss)
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = net.loss(batch).item()
    assert after < 0.85 * before, (before, after)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_under_a_seed(name):
    batch = moving_batch()
    results = []
    for _ in range(2):
        torch.manual_seed(123)
        net = build(name)
        loss = net.loss(batch)
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])
        with torch.no_grad():
            results.append((loss.detach(), grads, net(batch["frames"])))
    (l1, g1, o1), (l2, g2, o2) = results
    assert torch.equal(l1, l2) and torch.equal(g1, g2) and torch.equal(o1, o2)
    torch.manual_seed(124)
    assert not torch.equal(build(name)(batch["frames"]), o1)
