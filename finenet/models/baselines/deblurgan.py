"""DeblurGAN (Kupyn et al., CVPR 2018): a conditional WGAN-GP for single-image blind deblurring,
applied to the blurry centre frame.

Generator (ResNet): 7×7 conv (``ngf``) → two stride-2 3×3 convs (2·ngf, 4·ngf) → ``blocks``
residual blocks (reflect pad, 3×3 conv, InstanceNorm, ReLU, optional dropout, reflect pad, conv,
InstanceNorm) → two ×2 upsamplings → 7×7 conv → tanh. Images are mapped to [-1, 1]; the output is
``clamp(x + tanh(G(x)), -1, 1)`` (DeblurGAN's learned residual), mapped back to [0, 1].
**The upsamplings are nearest-neighbour ×2 followed by a 3×3 conv, not transposed convolutions**:
DeblurGAN's transposed convs are its most reported source of checkerboard artifacts.

Critic: PatchGAN (``ndf``, ``critic_layers`` stride-2 4×4 convs, InstanceNorm — never BatchNorm
under a gradient penalty — LeakyReLU 0.2, a stride-1 conv, a 1-channel stride-1 conv) with **no
sigmoid**: it outputs a map of Wasserstein scores. ``critic_loss`` = E[D(fake)] − E[D(real)] +
``gp_weight`` (10) · E[(‖∇D(x̂)‖₂ − 1)²] at random interpolates x̂ of real and fake (WGAN-GP; ∇ of
the critic's summed patch map, E[D] its mean).

Generator loss = ``content_weight`` · content + ``adv_weight`` · (−E[D(G(x))]); the defaults
1 : 0.01 are the paper's λ = 100 ratio (L = L_GAN + 100·L_X), divided through by 100 so the loss
is on the scale of the other baselines' losses.

**The content loss is not the paper's.** DeblurGAN's perceptual loss is the MSE between ImageNet
VGG-19 conv3_3 features of the output and of the sharp image; those weights cannot be downloaded
here (no network), and a randomly initialised VGG would not be a perceptual metric. It is replaced
by a fixed, parameter-free multi-scale feature loss: L1 between the Laplacian pyramids (5-tap
binomial filter; ``content_levels`` band-pass levels plus the low-pass, a mean L1 per level,
summed) of the output and the sharp frame. Like conv3_3 features it compares local structure
(edges, texture) at several scales, not just pixels; unlike VGG it knows nothing about
natural-image semantics, so it does not reward "plausible" texture the way a perceptual loss does.

Other differences: the training loop takes one critic step per generator step (the paper used 5)
and its own Adam settings (the paper: lr 1e-4, β₁ 0.5); the critic sees only images (as in
DeblurGAN), not the blurry input.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register
from .deblur_common import check_window, crop_to, frozen, laplacian_loss, pad_to


class _ResBlock(nn.Module):
    def __init__(self, feat: int, dropout: float):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(feat, feat, 3), nn.InstanceNorm2d(feat), nn.ReLU(True),
            *([nn.Dropout(dropout)] if dropout > 0 else []),
            nn.ReflectionPad2d(1), nn.Conv2d(feat, feat, 3), nn.InstanceNorm2d(feat))

    def forward(self, x):
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    def __init__(self, ngf: int, blocks: int, dropout: float):
        super().__init__()
        norm_act = lambda c: [nn.InstanceNorm2d(c), nn.ReLU(True)]  # noqa: E731
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), *norm_act(ngf)]
        for m in (1, 2):                                               # downsample ×2 ×2
            layers += [nn.Conv2d(ngf * m, ngf * 2 * m, 3, 2, 1), *norm_act(ngf * 2 * m)]
        layers += [_ResBlock(4 * ngf, dropout) for _ in range(blocks)]
        for m in (4, 2):                                               # upsample + conv, no ConvTranspose
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ngf * m, ngf * m // 2, 3, 1, 1),
                       *norm_act(ngf * m // 2)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:     # x in [-1, 1]
        return torch.clamp(x + self.net(x), -1, 1)


class PatchCritic(nn.Module):
    def __init__(self, ndf: int, layers: int):
        super().__init__()
        seq = [nn.Conv2d(3, ndf, 4, 2, 2), nn.LeakyReLU(0.2, True)]
        ch = ndf
        for n in range(1, layers + 1):
            out = ndf * min(2 ** n, 8)
            seq += [nn.Conv2d(ch, out, 4, 2 if n < layers else 1, 2), nn.InstanceNorm2d(out),
                    nn.LeakyReLU(0.2, True)]
            ch = out
        seq += [nn.Conv2d(ch, 1, 4, 1, 2)]
        self.net = nn.Sequential(*seq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:     # x in [-1, 1]; no sigmoid
        return self.net(x)


@register("deblurgan")
class DeblurGAN(nn.Module):
    task = "deblur"

    def __init__(self, ngf: int = 16, blocks: int = 9, dropout: float = 0.0, ndf: int = 16,
                 critic_layers: int = 3, gp_weight: float = 10.0, content_weight: float = 1.0,
                 adv_weight: float = 0.01, content_levels: int = 3):
        super().__init__()
        self.generator = ResnetGenerator(ngf, blocks, dropout)
        self.critic = PatchCritic(ndf, critic_layers)
        self.gp_weight, self.content_weight, self.adv_weight = gp_weight, content_weight, adv_weight
        self.content_levels = content_levels
        self.last_terms: dict = {}

    def _generate(self, frames: torch.Tensor) -> torch.Tensor:
        _, c = check_window(frames)
        x, size = pad_to(frames[:, c], 4)
        return crop_to((self.generator(x * 2 - 1) + 1) / 2, size)

    def forward(self, frames: torch.Tensor, heatmaps: torch.Tensor | None = None) -> torch.Tensor:
        return self._generate(frames)

    def score(self, image: torch.Tensor) -> torch.Tensor:
        """Mean critic score of [0,1] images (one value per image)."""
        return self.critic(image * 2 - 1).flatten(1).mean(1)

    def content_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return laplacian_loss(pred, target, self.content_levels)

    def terms(self, batch: dict) -> dict:
        """The generator's loss terms: content (VGG substitute) and adversarial (−E[D(G(x))])."""
        pred = self._generate(batch["frames"])
        with frozen(self.critic):
            adv = -self.score(pred).mean()
        return {"content": self.content_loss(pred, batch["target"]), "adversarial": adv}

    def loss(self, batch: dict) -> torch.Tensor:
        t = self.terms(batch)
        self.last_terms = {k: float(v.detach()) for k, v in t.items()}
        return self.content_weight * t["content"] + self.adv_weight * t["adversarial"]

    def gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """E[(‖∇_x̂ D(x̂)‖₂ − 1)²] at x̂ = α·real + (1−α)·fake, α ~ U(0,1) per sample, taken in the
        critic's [-1, 1] input space on [0,1] images ``real``/``fake``; always ≥ 0."""
        real, fake = real * 2 - 1, fake * 2 - 1          # in the critic's [-1, 1] input space
        alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
        mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        grad, = torch.autograd.grad(self.critic(mixed).sum(), mixed, create_graph=True)
        return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()

    def critic_terms(self, batch: dict) -> dict:
        with torch.no_grad():
            fake = self._generate(batch["frames"])
        real = batch["target"]
        return {"wasserstein": self.score(fake).mean() - self.score(real).mean(),
                "gradient_penalty": self.gradient_penalty(real, fake)}

    def critic_loss(self, batch: dict) -> torch.Tensor:
        t = self.critic_terms(batch)
        self.last_terms.update({k: float(v.detach()) for k, v in t.items()})
        return t["wasserstein"] + self.gp_weight * t["gradient_penalty"]
