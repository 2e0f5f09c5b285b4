"""FineNet's networks: shapes, offsets, ablation switches, gradient flow, what each branch reads."""

import logging

import pytest
import torch

from finenet.models import ARCHS, build
from finenet.models.dcn import DCNPack
from finenet.models.foc import FOC, PlainOffset
from finenet.models.interp import orders
from finenet.models.shared import shared_features

CFG = dict(feat=8, input_stride=2)
BRANCH = dict(CFG, groups=2, levels=3, heatmap_ch=4, recon_blocks=1, max_offset=4.0)


@pytest.fixture(scope="module")
def window():
    torch.manual_seed(0)
    return torch.rand(2, 5, 3, 32, 32), torch.rand(2, 5, 68, 16, 16)


def test_registry_names():
    assert {"predeblur", "enhance", "interp", "combine_late", "combine_early", "finenet"} <= set(ARCHS)
    with pytest.raises(KeyError, match="unknown architecture"):
        build("edsr")


def test_frontend_pyramid_and_image(window):
    frames, _ = window
    fe = build("predeblur", levels=3, **CFG)
    pyr = fe.pyramid(frames[:, 0])
    assert [tuple(p.shape) for p in pyr] == [(2, 8, 16, 16), (2, 8, 8, 8), (2, 8, 4, 4)]
    assert fe(frames[:, 0]).shape == (2, 3, 32, 32)


@pytest.mark.parametrize("net,extra", [("enhance", {}), ("interp", {}), ("interp", {"interp_frames": 4})])
def test_branch_shapes(window, net, extra):
    frames, heat = window
    shared = shared_features(build("predeblur", **CFG), frames)
    out, feats = build(net, **BRANCH, **extra)(shared, heat)
    assert out.shape == (2, 3, 32, 32)
    assert feats.shape == ((2, 5, 8, 16, 16) if net == "enhance" else (2, 2, 8, 16, 16))


def test_interp_orders_follow_the_paper():
    assert orders(5, 3) == ([0, 1, 3], [4, 3, 1])
    assert orders(5, 4) == ([0, 1, 3, 4], [4, 3, 1, 0])


def input_gradients(net: str, window):
    """Gradients of a branch's output with respect to its frames and heatmaps."""
    frames, heat = (x.clone().requires_grad_(True) for x in window)
    out, _ = build(net, **BRANCH)(shared_features(build("predeblur", **CFG), frames), heat)
    out.sum().backward()
    return frames.grad, heat.grad


def test_interpolation_never_reads_the_target_frame(window):
    frames, heat = input_gradients("interp", window)
    assert frames[:, 2].abs().max() == 0 and heat[:, 2].abs().max() == 0
    assert frames[:, [0, 1, 3, 4]].abs().min(dim=0).values.sum() > 0


def test_enhancement_reads_every_frame_and_heatmap(window):
    frames, _ = input_gradients("enhance", window)
    for k in range(5):
        assert frames[:, k].abs().sum() > 0


def test_gradients_reach_foc_and_dcn_weights(window):
    frames, heat = window
    torch.manual_seed(1)
    branch = build("enhance", **BRANCH)
    shared = shared_features(build("predeblur", **CFG), frames)
    # one step makes the zero-initialised offset convs non-zero; then gradients flow through them
    opt = torch.optim.SGD(branch.parameters(), lr=0.5)
    for _ in range(2):
        opt.zero_grad()
        branch(shared, heat)[0].square().mean().backward(retain_graph=True)
        opt.step()
    foc = branch.align.offset[0]
    assert isinstance(foc, FOC)
    for p in (foc.inp.weight, foc.out.weight, branch.align.dcn[0].weight,
              branch.align.dcn[0].conv_offset.weight, branch.heat.conv1.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_ablation_switches_change_the_network(window):
    frames, heat = window
    shared = shared_features(build("predeblur", **CFG), frames)
    no_foc = build("enhance", **{**BRANCH, "foc": False, "landmarks": False})
    assert isinstance(no_foc.align.offset[0], PlainOffset) and no_foc.heat is None
    no_lm = build("enhance", **{**BRANCH, "landmarks": False})
    assert isinstance(no_lm.align.offset[0], FOC) and no_lm.heat is None
    # without landmarks the heatmaps are not read at all
    h = heat.clone().requires_grad_(True)
    out, _ = no_lm(shared, h)
    assert not out.requires_grad or h.grad is None
    with_lm = build("enhance", **BRANCH)
    a = with_lm(shared, heat)[0]
    b = with_lm(shared, torch.zeros_like(heat))[0]
    assert torch.allclose(a, b)          # offset convs start at zero: heatmaps cannot act yet
    torch.nn.init.normal_(with_lm.align.dcn[0].conv_offset.weight, std=0.1)
    a = with_lm(shared, heat)[0]
    b = with_lm(shared, torch.zeros_like(heat))[0]
    assert not torch.allclose(a, b)                       # heatmaps change the output


def test_dcn_offsets_start_at_zero_and_stay_bounded(caplog):
    dcn = DCNPack(8, 8, groups=2, max_offset=3.0)
    x = torch.rand(1, 8, 12, 12)
    offset, mask = dcn.offsets(torch.rand(1, 8, 12, 12))
    assert offset.abs().max() == 0 and torch.allclose(mask, torch.full_like(mask, 0.5))
    torch.nn.init.constant_(dcn.conv_offset.bias, 100.0)   # a blown-up offset predictor
    offset, _ = dcn.offsets(torch.rand(1, 8, 12, 12))
    assert offset.abs().max() <= 3.0
    with caplog.at_level(logging.WARNING):
        dcn(x, torch.rand(1, 8, 12, 12))
    assert "offsets are large" in caplog.text


def test_zero_offsets_make_dcn_a_plain_convolution():
    dcn = DCNPack(4, 4, groups=1, max_offset=2.0)
    x = torch.rand(1, 4, 10, 10)
    plain = torch.nn.functional.conv2d(x, dcn.weight, dcn.bias, padding=1)
    # zero offsets and mask 0.5: DCNv2 is the plain convolution with weights halved
    half = torch.nn.functional.conv2d(x, dcn.weight * 0.5, dcn.bias, padding=1)
    assert torch.allclose(dcn(x, torch.rand(1, 4, 10, 10)), half, atol=1e-5)
    assert not torch.allclose(plain, half)


@pytest.mark.parametrize("groups,size", [(1, (9, 9)), (4, (12, 7))])
def test_sampled_dcn_equals_torchvision_values_and_gradients(groups, size):
    """The CPU path (grid_sample) is torchvision's deform_conv2d: same values, same gradients for
    the input, offsets (including samples that fall outside the image), mask, weight and bias."""
    from torchvision.ops import deform_conv2d

    from finenet.models.dcn import deform_conv_sampled

    g = torch.Generator().manual_seed(0)
    b, c, (h, w) = 2, 8, size
    leaves = [torch.randn(b, c, h, w, generator=g), 4 * torch.randn(b, 2 * groups * 9, h, w, generator=g),
              torch.randn(6, c, 3, 3, generator=g), torch.randn(6, generator=g),
              torch.rand(b, groups * 9, h, w, generator=g)]
    x, off, wt, bias, mask = [t.requires_grad_() for t in leaves]
    ref = deform_conv2d(x, off, wt, bias, padding=1, mask=mask)
    ours = deform_conv_sampled(x, off, wt, bias, mask)
    assert (off.abs() > max(h, w) / 2).any()                     # some taps sample outside
    assert torch.allclose(ours, ref, atol=1e-4)
    upstream = torch.randn(ref.shape, generator=g)
    for a, r in zip(torch.autograd.grad(ours, leaves, upstream), torch.autograd.grad(ref, leaves, upstream)):
        assert torch.allclose(a, r, atol=2e-3, rtol=1e-3)


@pytest.mark.parametrize("fusion", ["late", "early"])
def test_finenet_combines_both_branches(window, fusion):
    frames, heat = window
    combiner = (build("combine_late", feat=8, blocks=2) if fusion == "late"
                else build("combine_early", feat=8, blocks=1, input_stride=2))
    model = build("finenet", frontend=build("predeblur", **CFG), enhance=build("enhance", **BRANCH),
                  interp=build("interp", **BRANCH), combiner=combiner)
    out = model(frames, heat)
    assert set(out) == {"predeblur", "enhance", "interp", "output"}
    assert all(v.shape == (2, 3, 32, 32) for v in out.values())
    if fusion == "late":   # zero-initialised tail: starts as the average of the two branches
        assert torch.allclose(out["output"], (out["enhance"] + out["interp"]) / 2, atol=1e-6)
