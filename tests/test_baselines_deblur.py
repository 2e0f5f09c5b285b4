"""The five deblurring baselines (EDVR, SRN-Deblur, DeblurGAN, UMSN, Ren et al.): registry and
interface, shapes, which frames each one reads, training on a small synthetic blurry video, the
WGAN-GP critic, the landmark-derived face masks, determinism."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import finenet.models.baselines  # noqa: F401  (registers the baselines)
from finenet.face.heatmap import render_heatmaps
from finenet.models import build
from finenet.models.baselines.deblur_common import CLASSES, face_region, semantic_masks, structure_map

NAMES = ["edvr", "srn_deblur", "deblurgan", "umsn", "ren"]
SINGLE_IMAGE = {"srn_deblur", "deblurgan", "umsn"}


def face_points(size: int, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """A synthetic iBUG-68 face (jaw, brows, nose, eyes, lips in their index order) centred in a
    ``size`` crop, shifted by (dx, dy) pixels."""
    cx, cy, a = size / 2 + dx, size / 2 + dy, size * 0.3
    th = np.linspace(np.pi, 0, 17)
    jaw = np.stack([cx + a * np.cos(th), cy - 0.1 * a + 1.1 * a * np.sin(th)], 1)
    brow = lambda x0: np.stack([x0 + np.linspace(0, 0.45 * a, 5),  # noqa: E731
                                cy - 0.55 * a - 0.08 * a * np.sin(np.linspace(0, np.pi, 5))], 1)
    nose = np.concatenate([np.stack([np.full(4, cx), cy - 0.35 * a + np.arange(4) * 0.12 * a], 1),
                           np.stack([cx + np.linspace(-0.15, 0.15, 5) * a, np.full(5, cy + 0.15 * a)], 1)])
    def ring(x0, y0, rx, ry, n):
        t = np.linspace(np.pi, -np.pi, n, endpoint=False)
        return np.stack([x0 + rx * np.cos(t), y0 + ry * np.sin(t)], 1)

    eyes = [ring(cx + s * 0.35 * a, cy - 0.35 * a, 0.13 * a, 0.05 * a, 6) for s in (-1, 1)]
    lips = [ring(cx, cy + 0.45 * a, 0.3 * a, 0.12 * a, 12), ring(cx, cy + 0.45 * a, 0.2 * a, 0.04 * a, 8)]
    pts = np.concatenate([jaw, brow(cx - 0.6 * a), brow(cx + 0.15 * a), nose, *eyes, *lips]).astype(np.float32)
    assert pts.shape == (68, 2)
    return pts


def make_batch(batch: int = 2, size: int = 32, frames: int = 5, seed: int = 0) -> dict:
    """A small synthetic blurry video: a smooth random image panned one pixel per frame (the sharp
    frames), box-blurred 5x5 (the blurry frames), and 68 landmark heatmaps at size/2 of a
    synthetic face moving with the pan."""
    g = torch.Generator().manual_seed(seed)
    big = F.interpolate(torch.rand(batch, 3, 8, 8, generator=g), size=(size + frames, size + frames),
                        mode="bicubic", align_corners=False).clamp(0, 1)
    sharp = torch.stack([big[:, :, 2:2 + size, t:t + size] for t in range(frames)], 1)
    blurry = F.avg_pool2d(F.pad(sharp.flatten(0, 1), (2, 2, 2, 2), mode="replicate"), 5, 1)
    blurry = (blurry.view_as(sharp) + 0.01 * torch.randn(sharp.shape, generator=g)).clamp(0, 1)
    pts = np.stack([face_points(size, dx=-t) for t in range(frames)])
    heat = torch.from_numpy(render_heatmaps(pts, size, size // 2, 1.5)).float() / 255
    return {"frames": blurry, "sharp": sharp, "target": sharp[:, frames // 2],
            "heatmaps": heat.unsqueeze(0).expand(batch, -1, -1, -1, -1).contiguous()}


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # conftest.py


@pytest.fixture(scope="module")
def batch32():
    return make_batch(2, 32)


def model(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return build(name)


@pytest.mark.parametrize("name", NAMES)
def test_registered_with_the_deblur_interface(name):
    net = model(name)
    assert type(net).task == "deblur" and net.task == "deblur"
    assert callable(net.loss)
    assert hasattr(net, "critic") == (name == "deblurgan") == hasattr(net, "critic_loss")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [32, 96])
def test_output_shape(name, size):
    b = make_batch(1, size)
    with torch.no_grad():
        out = model(name).eval()(b["frames"], b["heatmaps"])
    assert out.shape == (1, 3, size, size) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_non_square_and_coarser_heatmaps(name):
    b = make_batch(1, 32)
    frames = torch.cat([b["frames"], b["frames"][..., :16]], -1)             # 32 x 48
    heat = F.avg_pool2d(torch.cat([b["heatmaps"], b["heatmaps"][..., :8]], -1).flatten(0, 1), 2)
    with torch.no_grad():
        out = model(name).eval()(frames, heat.view(1, 5, 68, 8, 12))      # heatmaps at H/4
    assert out.shape == (1, 3, 32, 48)


@pytest.mark.parametrize("name", NAMES)
def test_which_frames_are_read(name, batch32):
    """Every model reads the centre frame; the single-image ones read nothing else; Ren et al. is
    causal (t-2..t); EDVR reads the whole window."""
    net = model(name).eval()
    frames = batch32["frames"].clone().requires_grad_(True)
    net(frames, batch32["heatmaps"]).sum().backward()
    reads = [bool(frames.grad[:, k].abs().sum() > 0) for k in range(5)]
    expected = {"edvr": [True] * 5, "ren": [True, True, True, False, False]}.get(
        name, [False, False, True, False, False])
    assert reads == expected
    # and changing the centre frame changes the output
    with torch.no_grad():
        a = net(batch32["frames"], batch32["heatmaps"])
        other = batch32["frames"].clone()
        other[:, 2] = other[:, 2].flip(-1)
        assert (net(other, batch32["heatmaps"]) - a).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["umsn", "ren"])
def test_landmark_models_need_and_read_heatmaps(name, batch32):
    net = model(name).eval()
    with pytest.raises(ValueError, match="heatmaps"):
        net(batch32["frames"])
    with torch.no_grad():
        a = net(batch32["frames"], batch32["heatmaps"])
        b = net(batch32["frames"], batch32["heatmaps"].roll(6, dims=-1))
    assert (a - b).abs().max() > 1e-4


def adam_steps(net, batch, steps: int, lr: float = 2e-3) -> None:
    critic = getattr(net, "critic", None)
    gen = [p for n, p in net.named_parameters() if not n.startswith("critic.")]
    opt = torch.optim.Adam(gen, lr=lr)
    copt = torch.optim.Adam(critic.parameters(), lr=lr) if critic is not None else None
    for _ in range(steps):
        if copt is not None:                     # one critic step before each generator step
            copt.zero_grad()
            net.critic_loss(batch).backward()
            copt.step()
        opt.zero_grad()
        net.loss(batch).backward()
        opt.step()


def reference_loss(net, batch) -> float:
    with torch.no_grad():
        if hasattr(net, "critic"):               # DeblurGAN: the generator's content part
            return float(net.terms(batch)["content"])
        return float(net.loss(batch))


@pytest.mark.parametrize("name", NAMES)
def test_training_reduces_the_loss(name, batch32):
    net = model(name)
    before = reference_loss(net, batch32)
    adam_steps(net, batch32, steps=15)
    after = reference_loss(net, batch32)
    assert np.isfinite(after) and after < 0.8 * before, (before, after)


def test_deblurgan_critic_and_gradient_penalty(batch32):
    net = model("deblurgan")
    loss = net.critic_loss(batch32)
    terms = net.critic_terms(batch32)
    assert torch.isfinite(loss) and float(terms["gradient_penalty"].detach()) >= 0
    loss.backward()
    assert all(p.grad is not None for p in net.critic.parameters())
    assert all(p.grad is None for p in net.generator.parameters())     # the fake is detached
    net.zero_grad(set_to_none=True)
    net.loss(batch32).backward()                                       # the critic stays untouched
    assert all(p.grad is None for p in net.critic.parameters())
    assert all(p.requires_grad for p in net.critic.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.generator.parameters())
    # a constant critic has zero input gradient: the penalty is exactly (0 - 1)^2 = 1
    for p in net.critic.parameters():
        torch.nn.init.zeros_(p)
    gp = net.gradient_penalty(batch32["target"], batch32["frames"][:, 2])
    assert torch.allclose(gp, torch.tensor(1.0))


def test_deblurgan_architecture():
    net = model("deblurgan")
    mods = list(net.modules())
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in mods)      # no checkerboards
    assert not any(isinstance(m, (torch.nn.Sigmoid, torch.nn.BatchNorm2d)) for m in net.critic.modules())
    assert sum(isinstance(m, torch.nn.InstanceNorm2d) for m in net.generator.modules()) == 2 * 9 + 5
    b = make_batch(1, 32)
    out = net(b["frames"])
    assert out.min() >= 0 and out.max() <= 1


def test_srn_shares_weights_over_three_scales(batch32):
    net = model("srn_deblur")
    outs = net.multiscale(batch32["frames"][:, 2])
    assert [tuple(o.shape[-2:]) for o in outs] == [(8, 8), (16, 16), (32, 32)]
    calls = []
    hook = net.lstm.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[-1]))
    net(batch32["frames"])
    hook.remove()
    assert calls == [2, 4, 8]                    # one ConvLSTM, state carried coarse to fine


def test_edvr_reuses_finenet_blocks_with_plain_pcd_and_tsa():
    from finenet.models.align import PyramidAlign
    from finenet.models.baselines.edvr import TSAFusion
    from finenet.models.foc import PlainOffset
    from finenet.models.frontend import FrontEnd

    net = model("edvr")
    assert isinstance(net.frontend, FrontEnd) and isinstance(net.align, PyramidAlign)
    assert all(isinstance(m, PlainOffset) for m in net.align.offset) and not net.align.use_heatmaps
    assert isinstance(net.fusion, TSAFusion)


def test_semantic_masks_follow_the_landmarks():
    size = 96
    pts = face_points(size)
    heat = torch.from_numpy(render_heatmaps(pts[None], size, size // 2, 1.5)).float() / 255
    masks = semantic_masks(heat, (size, size))
    assert masks.shape == (1, len(CLASSES), size, size)
    assert torch.allclose(masks.sum(1), torch.ones(1, size, size), atol=1e-5)
    at = lambda p: masks[0, :, int(round(p[1])), int(round(p[0]))]  # noqa: E731
    k = {c: i for i, c in enumerate(CLASSES)}
    assert at(pts[36:42].mean(0)).argmax() == k["eyes_brows"]           # eye centre
    assert at(pts[48:60].mean(0)).argmax() == k["nose_mouth"]           # mouth centre
    cheek = (pts[3] + pts[31]) / 2
    assert at(cheek).argmax() == k["skin"]
    assert at((2, 2)).argmax() == k["background"] and at((2, 2))[k["background"]] > 0.9
    # heatmaps at a coarser resolution give nearly the same face region
    coarse = F.avg_pool2d(heat, 2)
    diff = (face_region(heat, (size, size), 8) - face_region(coarse, (size, size), 8)).abs().mean()
    assert diff < 0.1
    assert structure_map(heat, (size, size)).shape == (1, 6, size, size)


def test_umsn_confidence_guides_each_stream(batch32):
    """Stream k's data term is weighted per pixel by its confidence c_k and class mask M_k, and the
    confidence is pushed up by −λ·log c (its gradient there is |error| − λ/c)."""
    net = model("umsn")
    y = batch32["target"]
    r = net._run(batch32["frames"], batch32["heatmaps"])
    assert len(r["streams"]) == len(r["confidence"]) == 4
    assert all(((c > 0) & (c < 1)).all() for c in r["confidence"])
    k = 2                                                        # eyes + eyebrows
    out, conf, m = r["streams"][k], r["confidence"][k], r["masks"][:, k:k + 1]
    g_out, g_conf = torch.autograd.grad(net.confidence_loss(r, y), [out, conf])
    scale = 1 / (len(r["streams"]) * m.sum())
    expected_out = scale * conf * m * torch.sign(out - y) / 3
    err = (out - y).abs().mean(1, keepdim=True)
    expected_conf = scale * m * (err - net.conf_weight / conf)
    assert torch.allclose(g_out, expected_out.detach(), atol=1e-9, rtol=1e-4)
    assert torch.allclose(g_conf, expected_conf.detach(), atol=1e-9, rtol=1e-4)
    assert (g_out[(m.expand_as(g_out) < 1e-3)].abs().max() < 1e-3 * g_out.abs().max())   # outside its class


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_under_a_seed(name, batch32):
    a, b = model(name, seed=3), model(name, seed=3)
    torch.manual_seed(7)
    la = a.loss(batch32)
    torch.manual_seed(7)
    lb = b.loss(batch32)
    assert torch.equal(la.detach(), lb.detach())
    with torch.no_grad():
        assert torch.equal(a.eval()(batch32["frames"], batch32["heatmaps"]),
                           b.eval()(batch32["frames"], batch32["heatmaps"]))
    c = model(name, seed=4)
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))
