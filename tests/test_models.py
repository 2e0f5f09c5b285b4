"""FineNet's networks: shapes, offsets, ablation switches, gradient flow, what each branch reads."""

import logging

import pytest
import numpy as np
import torch

from finenet.models import ARCHS, build
from finenet.models.dcn import DCNPack
from finenet.models.foc import FOC, PlainOffset
from finenet.models.interp import orders
from finenet.models.shared import Branch, Shared, shared_features

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
        branch(shared, heat).image.square().mean().backward(retain_graph=True)
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
    # without landmarks the heatmaps are not read at all: no gradient path, and NaN heatmaps
    # leave the output finite
    h = heat.clone().requires_grad_(True)
    out, _ = no_lm(shared, h)
    assert out.requires_grad and torch.autograd.grad(out.sum(), h, allow_unused=True) == (None,)
    poisoned = torch.full_like(heat, float("nan"))
    assert torch.isfinite(no_lm(shared, poisoned)[0]).all()
    with_lm = build("enhance", **BRANCH)
    a = with_lm(shared, heat)[0]
    b = with_lm(shared, torch.zeros_like(heat))[0]
    assert torch.allclose(a, b)          # offset convs start at zero: heatmaps cannot act yet
    torch.nn.init.normal_(with_lm.align.dcn[0].conv_offset.weight, std=0.1)
    h = heat.clone().requires_grad_(True)
    a = with_lm(shared, h)[0]
    b = with_lm(shared, torch.zeros_like(heat))[0]
    assert not torch.allclose(a, b)                       # heatmaps change the output
    (grad,) = torch.autograd.grad(a.sum(), h)
    assert grad.abs().sum() > 0                           # through a gradient path
    assert torch.isnan(with_lm(shared, poisoned)[0]).any()  # and NaN heatmaps reach the output


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
                else build("combine_early", branch_feat=8, feat=8, blocks=1, input_stride=2))
    model = build("finenet", frontend=build("predeblur", **CFG), enhance=build("enhance", **BRANCH),
                  interp=build("interp", **BRANCH), combiner=combiner)
    out = model(frames, heat)
    assert set(out) == {"predeblur", "enhance", "interp", "output"}
    assert all(v.shape == (2, 3, 32, 32) for v in out.values())
    if fusion == "late":   # zero-initialised tail: starts as (nearly) the average of the two
        k = 0.05           # branches, weights (1, 1, 1/24.5) / (2 + 1/24.5) on (E, I, x), with
        w = torch.tensor([1, 1, 1 / 24.5]) / (2 + 1 / 24.5)    # keep_init of the input frame t
        blend = w[0] * out["enhance"] + w[1] * out["interp"] + w[2] * frames[:, 2]
        start = (1 - k) * blend + k * frames[:, 2]
        assert torch.allclose(out["output"], start, atol=1e-5)
        assert not torch.allclose(out["output"], (out["enhance"] + out["interp"]) / 2, atol=1e-4)


def test_late_fusion_keep_gate_returns_the_input_exactly():
    """Do no harm: with the keep logit saturated, the combiner gives back frame t bit for bit,
    whatever the branches say; with it closed, the initial blend (about the branches' average); and
    the logit's loss pulls it towards "sharp" on sharp frames."""
    g = torch.Generator().manual_seed(3)
    e, i = (torch.rand(2, 3, 16, 16, generator=g) for _ in range(2))
    window = torch.rand(2, 5, 3, 16, 16, generator=g)
    x = window[:, 2]
    late = build("combine_late", feat=4, blocks=1)
    blend = (e + i + x / 24.5) / (2 + 1 / 24.5)           # the initial weights on (E, I, x)
    with torch.no_grad():
        late.frame_keep.bias.fill_(100.0)
        out, logit = fuse(late, e, i, window)
        assert torch.equal(out, x) and logit.shape == (2,)
        late.frame_keep.bias.fill_(-100.0)
        assert torch.allclose(fuse(late, e, i, window).image, blend, atol=1e-6)
        late.frame_keep.bias.fill_(0.01)              # p(sharp) just above 0.5: soft in training,
        assert not torch.equal(fuse(late, e, i, window).image, x)  # the decision (keep x exactly) in eval
        assert torch.equal(fuse(late.eval(), e, i, window).image, x)
        late.frame_keep.bias.fill_(-0.01)
        assert torch.allclose(fuse(late, e, i, window).image, blend, atol=1e-6)
        late.train().frame_keep.bias.fill_(0.0)
    logit = fuse(late, e, i, window).keep_logit
    grad, = torch.autograd.grad(late.frame_loss(logit, torch.tensor([True, False])), late.frame_keep.bias)
    assert torch.allclose(grad, torch.zeros(1), atol=1e-6)     # one sharp, one blurred: balanced at 0.5
    grad, = torch.autograd.grad(late.frame_loss(fuse(late, e, i, window).keep_logit, torch.tensor([True, True])),
                                late.frame_keep.bias)
    assert grad.item() < 0                                     # gradient descent raises keep


def fuse(combiner, enhanced, interpolated, window):
    """A combiner on two branch images and an input window (its ``Shared``: the window itself)."""
    return combiner(Branch(enhanced, None), Branch(interpolated, None), Shared([], window, window))


def test_blur_measure_ranks_blur_and_ignores_contrast(carphone):
    """The keep model's measure (Crete et al.'s re-blur ratio): in [0, 1], it rises with the motion
    blur's length at both scales, it matches a direct numpy reading of the definition, and halving
    the contrast does not change it (an energy would drop by 4x)."""
    from scipy.ndimage import uniform_filter1d

    from finenet.models.combine import blur_measure
    from finenet.ops.motion_blur import apply_kernel, motion_blur_kernel

    sharp = carphone[10]
    images = [sharp] + [apply_kernel(sharp, motion_blur_kernel(k, 30, 0)) for k in (3, 7, 11)]
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    m = blur_measure(x)
    assert m.shape == (4, 2) and ((m > 0) & (m < 1)).all()
    assert (m[1:] > m[:-1]).all()                                 # longer blur, higher measure
    grey = x.mean(1)[0].double().numpy()
    per_axis = []
    for ax in (0, 1):
        d = np.abs(np.diff(grey, axis=ax))
        d_blur = np.abs(np.diff(uniform_filter1d(grey, 9, axis=ax, mode="nearest"), axis=ax))
        per_axis.append(1 - np.maximum(d - d_blur, 0).sum() / d.sum())
    assert abs(m[0, 0].item() - max(per_axis)) < 1e-4
    low = 0.25 + 0.5 * x                                          # half the contrast
    assert torch.allclose(blur_measure(low), m, atol=1e-4)
    late = build("combine_late", feat=4, blocks=1)
    with torch.no_grad():
        late.frame_keep.weight.copy_(torch.tensor([[-1.0, -1.0, 0.0, 0.0]]))   # blurrier: less likely kept
        late.frame_keep.bias.zero_()
    logits = late.judge_logit(x[:, None])                          # windows of one frame
    assert (logits[1:] < logits[:-1]).all()


def test_judge_features_compare_the_frame_with_its_window(carphone):
    """The keep model's inputs: frame t's measure (centred, scaled) and how far above the window's
    least blurred frame it is: 0 for a sharp frame among blurred ones and for one among its
    equals, > 0 for a blurred frame next to a sharp one, on a soft face too (box-blurred frames),
    whose sharp frames the absolute measure alone rates blurrier than a crisp face's."""
    from scipy.ndimage import uniform_filter

    from finenet.models.combine import BLUR_CENTRE, BLUR_UNIT, blur_measure, judge_features
    from finenet.ops.motion_blur import apply_kernel, motion_blur_kernel

    sharp = carphone[10:15]
    blurred = np.stack([apply_kernel(f, motion_blur_kernel(9, 30, 0)) for f in sharp])
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float() / 255  # noqa: E731
    among_blurred = to_t(np.concatenate([blurred[:2], sharp[2:3], blurred[3:]]))
    blurred_next_to_sharp = to_t(np.concatenate([sharp[:2], blurred[2:3], sharp[3:]]))
    all_sharp = to_t(sharp)
    f = judge_features(torch.stack([among_blurred, blurred_next_to_sharp, all_sharp]))
    assert f.shape == (3, 4)
    m = blur_measure(among_blurred[2:3])[0]
    assert torch.allclose(f[0, :2], (m - torch.tensor(BLUR_CENTRE)) / BLUR_UNIT)
    assert torch.equal(f[0, 2:], torch.zeros(2)) and torch.equal(f[2, 2:], torch.zeros(2))
    assert (f[1, 2:] > 1).all()                                    # 9 px of blur: > one unit
    soft = to_t(uniform_filter(np.concatenate([sharp[:2], blurred[2:3], sharp[3:]]).astype(np.float32),
                               size=(1, 3, 3, 1)).round().clip(0, 255).astype(np.uint8))
    g = judge_features(soft[None])[0]
    assert (g[2:] > 1).all()               # the blurred frame still stands out from its window
    soft_sharp = judge_features(soft[[0, 0, 0, 0, 0]][None])[0]       # a soft face, a still
    assert (soft_sharp[:2] > f[2, :2]).all() and torch.equal(soft_sharp[2:], torch.zeros(2))


def test_neighbour_context_tells_the_combiner_which_neighbours_are_blurrier(carphone):
    """The blend's window input: for each other frame of the window, how much blurrier it is than
    frame t (BLUR_UNITs, both scales): positive for blurred neighbours of a sharp frame, negative
    for sharp neighbours of a blurred one, zero in a still; and the late-fusion combiner reads it
    (the same images with other neighbours give another blend)."""
    from finenet.models.combine import BLUR_UNIT, neighbour_context, window_blur
    from finenet.ops.motion_blur import apply_kernel, motion_blur_kernel

    sharp = carphone[10:15]
    blurred = np.stack([apply_kernel(f, motion_blur_kernel(9, 30, 0)) for f in sharp])
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float() / 255  # noqa: E731
    sharp_among_blurred = to_t(np.concatenate([blurred[:2], sharp[2:3], blurred[3:]]))
    blurred_among_sharp = to_t(np.concatenate([sharp[:2], blurred[2:3], sharp[3:]]))
    still = to_t(sharp[[2, 2, 2, 2, 2]])
    windows = torch.stack([sharp_among_blurred, blurred_among_sharp, still])
    m = window_blur(windows)
    c = neighbour_context(m)
    assert c.shape == (3, 8)
    assert torch.allclose(c[0].view(4, 2), (m[0, [0, 1, 3, 4]] - m[0, 2]) / BLUR_UNIT)
    assert (c[0] > 1).all() and (c[1] < -1).all() and torch.equal(c[2], torch.zeros(8))
    late = build("combine_late", feat=4, blocks=1)
    with torch.no_grad():
        torch.nn.init.normal_(late.tail.weight, std=0.1)
        e, i = blurred_among_sharp[2:3], sharp_among_blurred[2:3]
        a = fuse(late, e, i, sharp_among_blurred[None]).image
        b = fuse(late, e, i, torch.cat([sharp_among_blurred[:2], sharp_among_blurred[2:3].expand(3, -1, -1, -1)])[None]).image
    assert not torch.allclose(a, b, atol=1e-4)


def test_keep_loss_balances_the_classes():
    """With ``sharp_weight`` = blurred/sharp counts, a batch's two classes pull the bias equally."""
    late = build("combine_late", feat=4, blocks=1)
    logit = torch.zeros(4, requires_grad=True)
    sharp = torch.tensor([True, False, False, False])
    grad, = torch.autograd.grad(late.frame_loss(logit, sharp, sharp_weight=3.0).sum(), logit)
    assert torch.isclose(-grad[0], grad[1:].sum())
    grad, = torch.autograd.grad(late.frame_loss(logit, sharp).sum(), logit)
    assert -grad[0] < grad[1:].sum()                              # unweighted: the prior wins


def test_saved_model_bytes_depend_only_on_the_content(tmp_path):
    """Two saves of the same weights give the same file (DVC and the training fingerprints hash the
    bytes); a changed weight gives another file."""
    from finenet.checkpoint import load_model, save_model

    net = build("predeblur", **CFG)
    a, b, c = tmp_path / "a.pt", tmp_path / "b" / "model.pt", tmp_path / "c.pt"
    save_model(a, "predeblur", CFG, net, fingerprint="x")
    save_model(b, "predeblur", CFG, net, fingerprint="x")
    assert a.read_bytes() == b.read_bytes()
    with torch.no_grad():
        next(net.parameters()).view(-1)[0] += 1e-3
    save_model(c, "predeblur", CFG, net, fingerprint="x")
    assert c.read_bytes() != a.read_bytes()
    assert torch.equal(next(load_model(c).parameters()), next(net.parameters()))


def test_late_fusion_can_take_the_pre_deblurred_frame_as_a_fourth_candidate():
    """``model.combine_predeblur``: P (the front end's frame t) enters the blend. It starts at the
    weight x has (0.02); a blend logit for it selects it alone; the keep gate still returns frame t
    bit for bit; without the option P is not read at all."""
    g = torch.Generator().manual_seed(5)
    e, i = (torch.rand(2, 3, 16, 16, generator=g) for _ in range(2))
    window, pre = torch.rand(2, 5, 3, 16, 16, generator=g), torch.rand(2, 5, 3, 16, 16, generator=g)
    x, p = window[:, 2], pre[:, 2]
    call = lambda m, pre: m(Branch(e, None), Branch(i, None), Shared([], pre, window)).image  # noqa: E731
    four = build("combine_late", feat=4, blocks=1, predeblur=True)
    with torch.no_grad():
        four.frame_keep.bias.fill_(-100.0)                           # deblur every frame
        start = (0.49 * e + 0.49 * i + 0.02 * x + 0.02 * p) / 1.02
        assert torch.allclose(call(four, pre), start, atol=1e-6)
        four.tail.bias.zero_()
        four.tail.bias[3] = 1.0                                       # P's logit x blend_gain = 10
        assert torch.allclose(call(four, pre), p, atol=2e-4)
        four.frame_keep.bias.fill_(100.0)
        assert torch.equal(call(four, pre), x)
    three = build("combine_late", feat=4, blocks=1).eval()
    assert torch.equal(call(three, pre), call(three, torch.full_like(pre, float("nan"))))
