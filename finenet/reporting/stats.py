"""Paired bootstrap confidence intervals on per-frame PSNR differences, for the comparisons the
paper makes (FineNet vs its branches and EDVR, FOC vs none, landmarks vs none, late vs early
fusion) and for "does a method beat its input".

A comparison pairs two methods' PSNR on the same frames (matched by set, clip and frame index),
resamples the per-frame differences with replacement ``samples`` times, and reports the mean
difference with its percentile interval at ``confidence``. An interval that holds 0 is printed
as not significant. Frames of one clip are correlated, so a frame-level interval is narrower than
a clip-level one would be: it says what these frames support, not what another set of clips
would show (the README says so too). Deterministic: the resampling is seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# (key, label, a, b): the difference is PSNR(a) - PSNR(b) per frame
COMPARISONS = [
    ("comb_vs_enh", "FineNet − Enh", "finenet/late", "enhance/full"),     # keys as the Fig. 10 pies
    ("comb_vs_int", "FineNet − Int", "finenet/late", "interp/full"),
    ("enh_vs_int", "Enh − Int", "enhance/full", "interp/full"),
    ("finenet_vs_edvr", "FineNet − EDVR", "finenet/late", "edvr"),
    ("finenet_vs_input", "FineNet − input", "finenet/late", "blurry"),
    ("edvr_vs_input", "EDVR − input", "edvr", "blurry"),
    ("srn_vs_input", "SRN-Deblur − input", "srn_deblur", "blurry"),
    ("enh_foc", "Enh: FOC − no FOC (both w/o landmarks)", "enhance/no_landmarks", "enhance/no_foc"),
    ("int_foc", "Int: FOC − no FOC (both w/o landmarks)", "interp/no_landmarks", "interp/no_foc"),
    ("enh_landmarks", "Enh: landmarks − none", "enhance/full", "enhance/no_landmarks"),
    ("int_landmarks", "Int: landmarks − none", "interp/full", "interp/no_landmarks"),
    ("late_vs_early", "late − early fusion", "finenet/late", "finenet/early"),
]
GROUPS = {"blurred": lambda f: f.kernel > 1, "sharp": lambda f: f.kernel == 1}


@dataclass(frozen=True)
class Interval:
    frames: int
    mean: float
    lo: float
    hi: float

    @property
    def significant(self) -> bool:
        return not (self.lo <= 0.0 <= self.hi)


def paired_bootstrap(diff: np.ndarray, samples: int, confidence: float, seed: int) -> Interval:
    """Mean of ``diff`` and its percentile bootstrap interval (resampling the frames)."""
    diff = np.asarray(diff, dtype=np.float64)
    n = len(diff)
    if n == 0:
        return Interval(0, float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    for start in range(0, samples, 1000):             # 1000 resamples at a time: bounded memory
        k = min(1000, samples - start)
        means[start:start + k] = diff[rng.integers(0, n, size=(k, n))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return Interval(n, float(diff.mean()), float(lo), float(hi))


def paired_differences(frames: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Rows (set, clip, t, kernel, diff) for the frames both methods were scored on."""
    cols = ["set", "clip", "t", "kernel", "psnr"]
    fa, fb = frames[frames.method == a][cols], frames[frames.method == b][cols]
    both = fa.merge(fb, on=["set", "clip", "t", "kernel"], suffixes=("_a", "_b"))
    both = both.dropna(subset=["psnr_a", "psnr_b"])
    return both.assign(diff=both.psnr_a - both.psnr_b)[["set", "clip", "t", "kernel", "diff"]]


def comparisons(frames: pd.DataFrame, samples: int, confidence: float, seed: int) -> pd.DataFrame:
    """One row per (set, frame group, comparison) whose two methods were both evaluated."""
    rows = []
    for key, label, a, b in COMPARISONS:
        pairs = paired_differences(frames, a, b)
        for s in sorted(set(pairs.set)):
            part = pairs[pairs.set == s]
            for group, select in GROUPS.items():
                d = part[select(part)]["diff"].to_numpy()
                if not len(d):
                    continue
                ci = paired_bootstrap(d, samples, confidence, seed)
                rows.append(dict(set=s, group=group, comparison=key, label=label, a=a, b=b,
                                 frames=ci.frames, mean_diff=ci.mean, ci_lo=ci.lo, ci_hi=ci.hi,
                                 significant=ci.significant))
    return pd.DataFrame(rows, columns=["set", "group", "comparison", "label", "a", "b", "frames",
                                       "mean_diff", "ci_lo", "ci_hi", "significant"])


def describe(mean: float, lo: float, hi: float, significant: bool) -> str:
    """``+0.42 dB [+0.20, +0.65]``, or ``… n.s.`` when the interval holds 0."""
    text = f"{mean:+.2f} dB [{lo:+.2f}, {hi:+.2f}]"
    return text if significant else text + " n.s."
