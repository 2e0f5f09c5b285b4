"""Helpers shared by the deblurring baselines (EDVR, SRN-Deblur, DeblurGAN, UMSN, Ren et al.):
input checks, reflect padding to the divisibility an architecture needs, Charbonnier loss, a
parameter-free Laplacian-pyramid loss, and soft face-part masks / structure maps derived from the
68 landmark heatmaps (the offline stand-in for a face-parsing network or a rendered 3D face).

iBUG-68 index groups (0-based) used for the face parts:

- jaw / face contour ``0–16``
- eyebrows ``17–21`` (image-left brow), ``22–26`` (image-right brow)
- nose bridge ``27–30``, nostrils ``31–35``
- eyes ``36–41``, ``42–47``
- mouth: outer lips ``48–59``, inner lips ``60–67``
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

JAW = list(range(0, 17))
BROWS = list(range(17, 27))
NOSE = list(range(27, 36))
EYES = list(range(36, 48))
MOUTH = list(range(48, 68))
#: the structure-map components (Ren et al. stand-in): one channel each
COMPONENTS = {"jaw": JAW, "brows": BROWS, "nose": NOSE, "eyes": EYES, "mouth": MOUTH}
#: the semantic classes (UMSN stand-in), background and skin derived, the parts from the groups
CLASSES = ("background", "skin", "eyes_brows", "nose_mouth")
PARTS = {"eyes_brows": EYES + BROWS, "nose_mouth": NOSE + MOUTH}


def check_window(frames: torch.Tensor) -> tuple[int, int]:
    """``frames`` must be (B,N,3,H,W); returns (N, centre index)."""
    if frames.dim() != 5 or frames.shape[2] != 3:
        raise ValueError(f"frames must be (B,N,3,H,W), got {tuple(frames.shape)}")
    return frames.shape[1], frames.shape[1] // 2


def need_heatmaps(heatmaps, frames: torch.Tensor, who: str) -> torch.Tensor:
    if heatmaps is None:
        raise ValueError(f"{who} needs the 68 landmark heatmaps (B,N,68,h,w); got None")
    if heatmaps.dim() != 5 or heatmaps.shape[:2] != frames.shape[:2] or heatmaps.shape[2] != 68:
        raise ValueError(f"{who}: heatmaps must be (B,N,68,h,w) matching frames {tuple(frames.shape)}, "
                         f"got {tuple(heatmaps.shape)}")
    return heatmaps


def pad_to(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad the last two dims (bottom/right) up to a multiple; returns the original size."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        lead = x.shape[:-3]
        flat = x.reshape(-1, *x.shape[-3:])
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(flat, (0, pw, 0, ph), mode=mode).reshape(*lead, x.shape[-3], h + ph, w + pw)
    return x, (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return x[..., :size[0], :size[1]]


def resize(x: torch.Tensor, size) -> torch.Tensor:
    """Bilinear resize of (…,C,H,W) to ``size`` (a no-op when it already has it)."""
    size = tuple(int(s) for s in size)
    if tuple(x.shape[-2:]) == size:
        return x
    lead = x.shape[:-3]
    out = F.interpolate(x.reshape(-1, *x.shape[-3:]), size=size, mode="bilinear", align_corners=False)
    return out.reshape(*lead, *out.shape[-3:])


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """mean sqrt((pred-target)^2 + eps^2) (EDVR's loss, eps 1e-3 as in its paper)."""
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def _gauss5(x: torch.Tensor) -> torch.Tensor:
    k1 = x.new_tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16
    k = (k1[:, None] * k1[None, :]).expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), k, groups=x.shape[1])


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Band-pass images (finest first) and the final low-pass; fixed 5-tap binomial filter."""
    bands = []
    for _ in range(levels):
        low = _gauss5(x)
        if min(low.shape[-2:]) < 2:
            break
        down = low[..., ::2, ::2]
        bands.append(x - F.interpolate(down, size=x.shape[-2:], mode="bilinear", align_corners=False))
        x = down
    return bands + [x]


def laplacian_loss(pred: torch.Tensor, target: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """Σ_l mean |band_l(pred) − band_l(target)| over the band-pass levels and the low-pass: a mean
    per level, so a coarse band weighs as much as a fine one although it has 4× fewer pixels."""
    total = pred.new_zeros(())
    for a, b in zip(laplacian_pyramid(pred, levels), laplacian_pyramid(target, levels)):
        total = total + F.l1_loss(a, b)
    return total


@contextmanager
def frozen(module: nn.Module):
    """Parameters of ``module`` need no gradient inside the block (the generator's loss must not
    fill the critic's ``.grad``); restores each parameter's flag afterwards."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, f in zip(module.parameters(), flags):
            p.requires_grad_(f)


# ---------------------------------------------------------------- landmark heatmaps -> face parts

def _dilate(x: torch.Tensor, r: int) -> torch.Tensor:
    return F.max_pool2d(x, 2 * r + 1, 1, r) if r > 0 else x


def _erode(x: torch.Tensor, r: int) -> torch.Tensor:
    return -F.max_pool2d(-x, 2 * r + 1, 1, r) if r > 0 else x


def _smooth(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)


def _step(x: torch.Tensor, lo: float = 0.25, hi: float = 0.75) -> torch.Tensor:
    """Soft threshold of a blob map: 0 below ``lo``, 1 above ``hi`` (a Gaussian blob of peak 1 is
    cut at about 1.2–1.7 sigma from its landmark), linear in between."""
    return ((x - lo) / (hi - lo)).clamp(0, 1)


def group_maps(heatmaps: torch.Tensor, groups: dict, size) -> torch.Tensor:
    """(B,68,h,w) heatmaps -> (B,len(groups),H,W): per group the max (union) of its landmarks'
    Gaussians, bilinearly resized to ``size``."""
    maps = torch.stack([heatmaps[:, idx].amax(1) for idx in groups.values()], 1)
    return resize(maps, size).clamp(0, 1)


def face_region(heatmaps: torch.Tensor, size, close_radius: int) -> torch.Tensor:
    """(B,1,H,W) soft face region: the morphological closing (dilate then erode, radius
    ``close_radius`` image pixels) of the union of all 68 landmark blobs. Closing fills the cheeks,
    nose and mouth area between the landmark groups without growing the region past the jaw much;
    it spans brows to chin (the forehead, which has no landmarks, counts as background). Local in
    space, so it also works on training patches that show only part of the face."""
    union = _step(resize(heatmaps.amax(1, keepdim=True), size))
    return _smooth(_erode(_dilate(union, close_radius), close_radius)).clamp(0, 1)


def semantic_masks(heatmaps: torch.Tensor, size, close_radius: int = 8, part_radius: int = 1) -> torch.Tensor:
    """(B,68,h,w) -> (B,4,H,W) soft class masks summing to 1 over ``CLASSES``: background
    (1 - face region), skin (face region minus the parts), eyes+eyebrows (17–26, 36–47), nose+mouth
    (27–35, 48–67); parts are their landmark blobs dilated by ``part_radius`` image pixels."""
    face = face_region(heatmaps, size, close_radius)
    parts = _smooth(_dilate(_step(group_maps(heatmaps, PARTS, size)), part_radius))
    parts = torch.minimum(parts, face)                                  # parts lie in the face
    skin = (face - parts.amax(1, keepdim=True)).clamp_min(0)
    raw = torch.cat([(1 - face).clamp_min(0), skin, parts], 1) + 1e-4
    return raw / raw.sum(1, keepdim=True)


def structure_map(heatmaps: torch.Tensor, size, close_radius: int = 8) -> torch.Tensor:
    """(B,68,h,w) -> (B,6,H,W): the five component maps of ``COMPONENTS`` (contour, brows, nose,
    eyes, mouth; union of each group's landmark blobs) and the soft face region — a 2D rendering
    of the face's structure from the landmarks."""
    return torch.cat([group_maps(heatmaps, COMPONENTS, size), face_region(heatmaps, size, close_radius)], 1)
