"""Stage ``blur``: random motion blur per frame (imgaug MotionBlur semantics), seeded per clip.

Each frame draws its own kernel: with probability ``p_sharp`` none (the severity mix includes sharp
frames, as real video does), else k, angle and direction uniformly from the configured ranges —
random kernels, which the paper found better than face-motion-based ones. Real-blur clips (no
ground truth) pass through unblurred. Output: ``data/blurred/<clip>.npz`` with the blurry frames
and every frame's (k, angle, direction).
"""

from __future__ import annotations

import numpy as np

from .data.clips import ClipSpec, clip_rng
from .data.store import blurred_path, clip_path, load_npz, save_npz
from .ops.motion_blur import apply_kernel, motion_blur_kernel, sample_kernel_params
from .stages import for_each_clip, select_clips


def blur_clip(spec: ClipSpec, params: dict) -> None:
    meta, arrays = load_npz(clip_path(spec.clip_id))
    frames = arrays["frames"]
    n = len(frames)
    kparams = np.zeros((n, 3), dtype=np.float32)   # k (0: real blur, 1: sharp), angle, direction
    if not spec.has_gt:
        blurry = frames
    else:
        rng = clip_rng(params["seed"], spec.clip_id, "blur")
        blurry = np.empty_like(frames)
        for t in range(n):
            k, angle, direction = sample_kernel_params(rng, params["blur"])
            kparams[t] = (k, angle, direction)
            blurry[t] = apply_kernel(frames[t], motion_blur_kernel(k, angle, direction))
    save_npz(blurred_path(spec.clip_id), meta, blurry=blurry, kernel=kparams)


def run(params: dict, clip_ids=None) -> None:
    clips = select_clips(params, clip_ids)
    for_each_clip("blur", clips, lambda spec: blur_clip(spec, params))


if __name__ == "__main__":
    import sys

    from .cli import main

    sys.exit(main(["blur", *sys.argv[1:]]))
