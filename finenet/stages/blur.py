"""Stage ``blur``: a realistic degradation per frame (``finenet/ops/degrade.py``), seeded per clip.

Each frame of a clip with ground truth draws its own degradation from the ``blur`` parameters,
with the clip's generator (``clip_rng(seed, clip, "blur")``, so a clip always gets the same
draws): with probability ``p_sharp`` none at all (the frame is stored exactly as it is: real video
has sharp frames, and the deblurrer must learn to leave them alone); else a random blur kernel
(random kernels, which the paper found better than face-motion-based ones) that is mild
(``p_mild``, extent in ``mild_length``) or not, of one of two families by ``families``: imgaug's
straight MotionBlur line (the paper's; k drawn from the odd values in ``line.kernel_size``) or a
curved camera-shake trajectory (Boracchi & Foi 2012, ``finenet/ops/trajectory.py``); then,
independently, Gaussian sensor noise (``noise``) and a JPEG round trip (``jpeg``). Real-blur clips
(no ground truth) pass through as they are.

Output: ``data/blurred/<clip>.npz`` with the degraded frames (``blurry``) and one row per frame
(``kernel``, (T,4) float32): [length, family, noise sigma, JPEG quality], where length is the
severity the tables group by (0: real blur passed through, 1: left sharp, >= 2: the kernel's
extent in pixels rounded up, imgaug's k for a line), family 0 sharp / 1 line / 2 trajectory, sigma
in 8-bit levels (0: none) and quality 0 for no JPEG.
"""

from __future__ import annotations

import numpy as np

from ..data.clips import ClipSpec, clip_rng
from ..data.store import blurred_path, clip_path, load_npz, save_npz
from ..ops.degrade import apply_degradation, sample_degradation
from .clip_loop import for_each_clip, select_clips

RECORD_COLUMNS = ("length", "family", "noise_sigma", "jpeg_quality")


def blur_clip(spec: ClipSpec, params: dict) -> None:
    meta, arrays = load_npz(clip_path(spec.clip_id))
    frames = arrays["frames"]
    n = len(frames)
    record = np.zeros((n, len(RECORD_COLUMNS)), dtype=np.float32)   # all 0: real blur, passed through
    if not spec.has_gt:
        blurry = frames
    else:
        rng = clip_rng(params["seed"], spec.clip_id, "blur")
        blurry = np.empty_like(frames)
        for t in range(n):
            deg = sample_degradation(rng, params["blur"])
            record[t] = deg.record()
            blurry[t] = apply_degradation(frames[t], deg, rng)
    save_npz(blurred_path(spec.clip_id), meta, blurry=blurry, kernel=record)


def run(params: dict, clip_ids=None, plan=None) -> None:
    clips = select_clips(params, clip_ids, plan)
    for_each_clip("blur", clips, lambda spec: blur_clip(spec, params))


if __name__ == "__main__":
    import sys

    from ..cli import main

    sys.exit(main(["blur", *sys.argv[1:]]))
