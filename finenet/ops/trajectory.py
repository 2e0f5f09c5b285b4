"""Camera-shake blur kernels: random 2-D trajectories after Boracchi & Foi (2012), the model behind
DeblurGAN's blur generator, rasterised into small odd ``k x k`` kernels.

The trajectory is the path of a particle (the image point, seen by the shaking camera) sampled at
``samples`` equal time steps. It starts in a random direction at constant speed; at every step its
velocity gets

- a Gaussian perturbation (random tremor), of strength ``anxiety x shake``,
- an inertial pull back towards the starting point (``anxiety x centripetal x position``), which
  keeps the path compact, and
- with probability ``anxiety x p_impulse`` an impulsive shake: a kick of twice the velocity in
  roughly the opposite direction (the sharp turns of real camera shake),

after which the speed is reset to the constant step length, so the path is traversed at uniform
speed (uniform weight along it). ``shake``, ``centripetal`` and ``p_impulse`` are drawn per
trajectory (uniform in [0, 10], [0, 0.7], [0, 0.2], the paper's ranges); ``anxiety`` (0: a straight
line, ~0.1: a strongly curved, jittery path) is the caller's. The walk is simulated at a nominal
path length of REFERENCE_LENGTH pixels (the scale at which those constants were chosen), then the
part of it the shutter was open for (the first ``exposure`` fraction of the samples) is scaled so
that its extent (the largest distance between two of its points, plus one pixel: a straight path
of extent L covers L pixel centres, as imgaug's k-line does) is ``length`` pixels, shifted so its
centre of mass is the kernel's centre, and splatted bilinearly (each sample's unit weight shared
by the 4 pixels around it). The kernel is float32, odd-sized, sums to 1.
"""

from __future__ import annotations

import math

import numpy as np

REFERENCE_LENGTH = 64.0      # px: nominal path length the walk is simulated at before rescaling
DEFAULT_SAMPLES = 1000       # time steps (sub-pixel sampling; DeblurGAN uses 2000 at 64 px)
_DIRECTIONS = np.exp(1j * np.linspace(0.0, np.pi, 90, endpoint=False))


def random_walk(rng: np.random.Generator, anxiety: float, samples: int = DEFAULT_SAMPLES) -> np.ndarray:
    """The particle's positions (complex: x + i y, y down), ``samples`` of them, starting at 0."""
    if samples < 2:
        raise ValueError(f"samples must be >= 2, got {samples}")
    anxiety = float(anxiety)
    if anxiety < 0:
        raise ValueError(f"anxiety must be >= 0, got {anxiety}")
    centripetal = 0.7 * rng.random()
    p_impulse = 0.2 * rng.random()
    shake = 10.0 * rng.random()
    heading = 2.0 * math.pi * rng.random()
    steps = samples - 1
    step = REFERENCE_LENGTH / steps
    # every random number up front (fast, and the draw count does not depend on the path)
    tremor = rng.standard_normal((steps, 2))
    impulse = (rng.random(steps) < p_impulse * anxiety).tolist()
    kick_angle = (math.pi + rng.random(steps) - 0.5).tolist()
    noise = (tremor[:, 0] + 1j * tremor[:, 1]).tolist()
    v = complex(math.cos(heading), math.sin(heading)) * step
    x = 0j
    out = [0j] * samples
    gain = anxiety * step
    for t in range(steps):
        dv = gain * (shake * noise[t] - centripetal * x)
        if impulse[t]:
            dv += 2.0 * v * complex(math.cos(kick_angle[t]), math.sin(kick_angle[t]))
        v += dv
        speed = abs(v)
        v = v * (step / speed) if speed > 0 else complex(math.cos(heading), math.sin(heading)) * step
        x += v
        out[t + 1] = x
    return np.asarray(out, dtype=np.complex128)


def extent(points: np.ndarray) -> float:
    """Largest distance between two of the points (their diameter; over 90 directions, < 0.1 % off)."""
    proj = (points[:, None] * _DIRECTIONS.conj()[None, :]).real
    return float((proj.max(0) - proj.min(0)).max())


def splat(points: np.ndarray) -> np.ndarray:
    """Bilinear rasterisation of equal-weight points (complex, about 0) into the smallest odd square
    kernel centred on 0 that holds them; normalised to sum 1."""
    half = int(math.ceil(max(np.abs(points.real).max(), np.abs(points.imag).max()) - 1e-9))
    k = 2 * half + 1
    col, row = points.real + half, points.imag + half
    c0, r0 = np.floor(col).astype(int), np.floor(row).astype(int)
    fc, fr = col - c0, row - r0
    acc = np.zeros((k + 1, k + 1), dtype=np.float64)   # the extra row/column only ever gets weight 0
    np.add.at(acc, (r0, c0), (1 - fr) * (1 - fc))
    np.add.at(acc, (r0, c0 + 1), (1 - fr) * fc)
    np.add.at(acc, (r0 + 1, c0), fr * (1 - fc))
    np.add.at(acc, (r0 + 1, c0 + 1), fr * fc)
    kernel = acc[:k, :k]
    return (kernel / kernel.sum()).astype(np.float32)


def path_kernel(points: np.ndarray, length: float) -> np.ndarray:
    """The kernel of a path (complex points, uniform speed) scaled to extent ``length`` pixels."""
    length = float(length)
    if length < 1:
        raise ValueError(f"length must be >= 1 pixel, got {length}")
    span = extent(points)
    if length == 1 or span <= 0:
        return np.ones((1, 1), dtype=np.float32)
    points = points * ((length - 1.0) / span)
    return splat(points - points.mean())          # centre of mass on the kernel's centre pixel


def trajectory_kernel(rng: np.random.Generator, length: float, anxiety: float, exposure: float = 1.0,
                      samples: int = DEFAULT_SAMPLES) -> np.ndarray:
    """A camera-shake kernel: a random trajectory (``anxiety``), integrated over the first
    ``exposure`` (0, 1] of it, of extent ``length`` pixels; float32, odd square, sums to 1."""
    if not 0 < exposure <= 1:
        raise ValueError(f"exposure must be in (0, 1], got {exposure}")
    path = random_walk(rng, anxiety, samples)
    used = max(2, int(math.ceil(exposure * samples)))
    return path_kernel(path[:used], length)


def line_kernel(length: float, angle: float) -> np.ndarray:
    """A straight, uniform motion of extent ``length`` pixels (any real length >= 1, unlike imgaug's
    odd k) at ``angle`` degrees, imgaug's convention: 0 = vertical, turning clockwise on screen."""
    theta = math.radians(angle)
    n = max(64, 16 * int(math.ceil(length)))
    t = np.linspace(-0.5, 0.5, n)
    return path_kernel(t * complex(math.sin(theta), math.cos(theta)), length)
