"""Paired bootstrap intervals (finenet/reporting/stats.py) and their table."""

import numpy as np
import pandas as pd
import pytest

from finenet.reporting import stats, tables


def test_interval_covers_the_mean_with_the_normal_width():
    rng = np.random.default_rng(3)
    d = rng.normal(0.5, 1.0, 400)
    ci = stats.paired_bootstrap(d, 10000, 0.95, seed=0)
    assert ci.frames == 400 and ci.mean == pytest.approx(d.mean())
    assert ci.lo < d.mean() < ci.hi and ci.significant
    normal = 2 * 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    assert (ci.hi - ci.lo) == pytest.approx(normal, rel=0.1)


def test_no_difference_is_not_significant_and_resampling_is_seeded():
    assert not stats.paired_bootstrap(np.zeros(50), 1000, 0.95, seed=0).significant
    d = np.random.default_rng(4).normal(0.0, 1.0, 60)
    a, b = (stats.paired_bootstrap(d, 2000, 0.95, seed=7) for _ in range(2))
    assert a == b
    assert stats.paired_bootstrap(d, 2000, 0.95, seed=8) != a
    assert stats.paired_bootstrap(np.array([]), 100, 0.95, seed=0).frames == 0


def frames_table() -> pd.DataFrame:
    """Two methods on 6 frames of one clip (2 sharp), plus a frame only one of them has."""
    rows = []
    for t, k in enumerate([5, 7, 9, 3, 1, 1]):
        rows.append(dict(method="blurry", set="s", clip="c", t=t, kernel=k, psnr=30.0, ssim=0.9))
        rows.append(dict(method="finenet/late", set="s", clip="c", t=t, kernel=k,
                         psnr=30.0 if k == 1 else 31.0 + 0.1 * t, ssim=0.9))
    rows.append(dict(method="blurry", set="s", clip="c", t=9, kernel=5, psnr=10.0, ssim=0.5))
    return pd.DataFrame(rows)


def test_comparisons_pair_frames_and_split_blurred_from_sharp():
    cmp = stats.comparisons(frames_table(), 2000, 0.95, seed=0)
    rows = cmp[cmp.comparison == "finenet_vs_input"].set_index("group")
    assert set(cmp.comparison) == {"finenet_vs_input"}          # no other pair was evaluated
    assert rows.at["blurred", "frames"] == 4                     # t=9 has no FineNet row: unpaired
    assert rows.at["blurred", "mean_diff"] == pytest.approx(1.15)   # a - b = FineNet - input
    assert rows.at["blurred", "significant"]
    assert rows.at["sharp", "mean_diff"] == 0 and not rows.at["sharp", "significant"]


def test_table_marks_not_significant():
    md, csv = tables.comparison_table(stats.comparisons(frames_table(), 2000, 0.95, seed=0), 2000, 0.95)
    line = next(x for x in md.splitlines() if x.startswith("| FineNet − input"))
    assert "+1.15 dB [" in line and line.count("n.s.") == 1       # only the sharp frames' cell
    assert "2000 resamples" in md and "95 %" in md
    assert list(csv.columns[:3]) == ["set", "group", "comparison"]
