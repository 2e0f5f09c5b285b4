"""The report stage's figures (matplotlib, Agg): Fig. 10's win-rate pies, PSNR against blur
severity, the qualitative grids of Figs. 8/9/11, and every network's validation curve. Saved without a Software/time stamp, so the
same inputs give byte-identical PNGs. And Fig. 9 in motion: a side-by-side clip of every method
(H.264, lossless, PyAV)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_path
from .tables import METHODS, PAIRS, order_methods

DPI = 110
COLORS = {"enh": "#4C72B0", "int": "#DD8452", "comb": "#55A868", "tie": "#B0B0B0"}
NAMES = {"enh": "Enh", "int": "Int", "comb": "Comb (FineNet)", "tie": "tie"}


@contextlib.contextmanager
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"font.size": 8, "axes.titlesize": 8, "figure.dpi": DPI,
                                "savefig.dpi": DPI, "path.simplify": True}):
        yield plt


def save(fig, path: Path, dpi: int = DPI) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})


def pies(rates: dict, path: Path, paper_fig10: dict | None = None) -> None:
    """One row of three pies per test set: Enh vs Int, Comb vs Enh, Comb vs Int (per-frame PSNR)."""
    sets = list(rates) or ["(no test set)"]
    with _pyplot() as plt:
        height = 2.4 * len(sets) + 0.9
        fig, axes = plt.subplots(len(sets), 3, figsize=(7.8, height), squeeze=False)
        for row, s in zip(axes, sets):
            row[0].annotate(s, xy=(-0.12, 0.5), xycoords="axes fraction", rotation=90, ha="center",
                            va="center", fontsize=9, fontweight="bold")
            for ax, (key, (a, _), (b, _)) in zip(row, PAIRS):
                entry = rates.get(s, {}).get(key)
                title = f"{NAMES[a]} vs {NAMES[b]}"
                if not entry:
                    ax.text(0.5, 0.5, "not evaluated", ha="center", va="center", transform=ax.transAxes)
                    ax.set_title(title)
                    ax.axis("off")
                    continue
                parts = [(k, entry[k]) for k in (a, b, "tie") if entry[k] > 0]
                ax.pie([v for _, v in parts], colors=[COLORS[k] for k, _ in parts], startangle=90,
                       counterclock=False, autopct=lambda p: f"{p:.1f}%", pctdistance=0.7,
                       wedgeprops={"linewidth": 1, "edgecolor": "white"}, textprops={"fontsize": 7})
                ci = entry.get("psnr_diff_blurred")
                delta = ("" if ci is None else f"\nΔ blurred {ci['mean']:+.2f} dB [{ci['ci_lo']:+.2f}, "
                         f"{ci['ci_hi']:+.2f}]" + ("" if ci["significant"] else " n.s."))
                ax.set_title(f"{title}\n({entry['frames']} frames){delta}", fontsize=8)
                ax.set_aspect("equal")
        handles = [plt.matplotlib.patches.Patch(color=COLORS[k], label=f"{NAMES[k]} higher PSNR"
                                                if k != "tie" else "equal PSNR") for k in COLORS]
        fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False)
        note = ""
        if paper_fig10:
            quoted = [f"Comb beats {k.split('_vs_')[1].capitalize()} {100 * v['comb']:.1f}%"
                      for k, v in paper_fig10.items() if isinstance(v, dict) and "comb" in v]
            note = f"  Paper, Fig. 10 ({paper_fig10.get('dataset', '300VW')}): " + ", ".join(quoted) + "."
        fig.suptitle("Per-frame PSNR win rates (cf. paper Fig. 10)." + note, fontsize=8)
        fig.tight_layout(rect=(0.03, 0.45 / height, 1, 1 - 0.35 / height))
        save(fig, path)
        plt.close(fig)


SEVERITY_METHODS = ["blurry", "enhance/full", "interp/full", "finenet/late", "edvr", "srn_deblur",
                    "deblurgan", "umsn", "ren", "superslomo", "dain"]


def severity(table: pd.DataFrame, path: Path) -> None:
    """Mean PSNR per motion-blur kernel length (1 = frame left sharp), one panel per test set."""
    sets = list(dict.fromkeys(table.set)) or ["(no test set)"]
    with _pyplot() as plt:
        fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 3.4), squeeze=False)
        cmap = plt.get_cmap("tab10")
        for ax, s in zip(axes[0], sets):
            part = table[table.set == s]
            shown = [m for m in order_methods(set(part.method)) if m in SEVERITY_METHODS]
            for method in shown:
                rows = part[part.method == method].sort_values("kernel")
                style = {"finenet/late": dict(lw=2.2, color="black", zorder=4),
                         "blurry": dict(lw=1.2, color="0.45", ls="--", zorder=5)}.get(
                    method, dict(lw=1.2, color=cmap(SEVERITY_METHODS.index(method) % 10)))
                ax.plot(rows.kernel, rows.psnr, marker="o", ms=3, label=METHODS.get(method, method), **style)
            kernels = sorted(set(part.kernel))
            ax.set_xticks(kernels, [f"{k}\n(sharp)" if k == 1 else str(k) for k in kernels])
            ax.set_xlabel("motion-blur kernel length (pixels)")
            ax.set_ylabel("mean PSNR (dB)")
            ax.set_title(s)
            ax.grid(alpha=0.3)
            if shown:
                ax.legend(fontsize=6, frameon=False)
        fig.tight_layout()
        save(fig, path)
        plt.close(fig)


def learning_curves(curves: dict, path: Path) -> None:
    """Validation PSNR against training step, every trained network: FineNet's on the left,
    the baselines on the right; the checkpoint kept (best on validation) is marked; a curve with a
    ``val_psnr_sd`` column (the mean over training seeds) gets a ±sd band."""
    groups = {"FineNet's networks": {k: v for k, v in curves.items() if not k.startswith("baselines/")},
              "baselines": {k: v for k, v in curves.items() if k.startswith("baselines/")}}
    with _pyplot() as plt:
        fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.6), squeeze=False)
        cmap = plt.get_cmap("tab20")
        for ax, (title, runs) in zip(axes[0], groups.items()):
            for i, (name, curve) in enumerate(runs.items()):
                color = cmap(i % 20)
                ax.plot(curve.step, curve.val_psnr, marker="o", ms=2.5, lw=1.1, color=color,
                        label=name.removeprefix("baselines/"))
                if "val_psnr_sd" in curve:       # several training seeds: mean ± sd
                    ax.fill_between(curve.step, curve.val_psnr - curve.val_psnr_sd,
                                    curve.val_psnr + curve.val_psnr_sd, color=color, alpha=0.15, lw=0)
                best = curve.loc[curve.val_psnr.idxmax()]
                ax.plot([best.step], [best.val_psnr], marker="*", ms=8, color=color, zorder=5)
            ax.set_xlabel("training step")
            ax.set_ylabel("val PSNR (dB)")
            ax.set_title(f"{title} (* = checkpoint kept)")
            ax.grid(alpha=0.3)
            if runs:
                ax.legend(fontsize=5.5, frameon=False, ncol=2)
        fig.tight_layout()
        save(fig, path)
        plt.close(fig)


def qualitative(samples: list[dict], path: Path, title: str) -> None:
    """One row per sample: blurry | each method | sharp, with the PSNR stored for each tile."""
    columns = ["blurry"] + order_methods({m for s in samples for m in s["methods"]} - {"blurry", "sharp"})
    if any("sharp" in s["methods"] for s in samples):
        columns.append("sharp")
    tile = 1.25
    with _pyplot() as plt:
        fig, axes = plt.subplots(len(samples), len(columns), squeeze=False,
                                 figsize=(max(3.5, tile * len(columns) + 0.3), (tile + 0.35) * len(samples) + 0.5))
        for r, (row, sample) in enumerate(zip(axes, samples)):
            index = {m: i for i, m in enumerate(sample["methods"])}
            for ax, method in zip(row, columns):
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
                if r == 0:
                    ax.set_title({"sharp": "Ground truth"}.get(method, METHODS.get(method, method)),
                                 fontsize=6)
                if method not in index:
                    continue
                i = index[method]
                ax.imshow(sample["images"][i], interpolation="nearest")
                psnr = sample["psnr"][i] if sample["psnr"] is not None else np.nan
                if np.isfinite(psnr):
                    ax.set_xlabel(f"{psnr:.2f} dB", fontsize=7, labelpad=2)
            row[0].set_ylabel(f"{sample['clip']}\nt={sample['t']}, k={sample['kernel']}", fontsize=6)
        fig.suptitle(title, fontsize=8)
        fig.tight_layout(rect=(0, 0, 1, 0.97))
        save(fig, path, dpi=max(DPI, min(200, int(max(s["images"].shape[1] for s in samples) / tile))))
        plt.close(fig)


CLIP_COLUMNS = 6
CLIP_LABEL = 14          # px of the label strip above each tile
CLIP_RATE = 4            # frames per second: a short run, slow enough to follow


def _label_strip(text: str, width: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (width, CLIP_LABEL), (0, 0, 0))
    ImageDraw.Draw(strip).text((2, 1), text[: max(1, width // 6)], fill=(255, 255, 255))
    return np.asarray(strip)


def motion_clip(frames: np.ndarray, methods: list[str], path: Path) -> None:
    """``frames`` (M,K,H,W,3) uint8, one run of K frames per method, as one video of K frames: a grid
    of tiles (blurry input first, then the tables' order), each labelled; lossless H.264 (yuv444p),
    played at ``CLIP_RATE`` frames per second."""
    from ..video.stream import encode_frames

    order = ["blurry"] + [m for m in order_methods(set(methods) - {"blurry"})]
    index = {m: i for i, m in enumerate(methods)}
    order = [m for m in order if m in index]
    _, k, h, w, _ = frames.shape
    cols = min(CLIP_COLUMNS, len(order))
    rows = -(-len(order) // cols)
    tile_h = h + CLIP_LABEL
    grid = np.zeros((k, rows * tile_h + (rows * tile_h) % 2, cols * w + (cols * w) % 2, 3), np.uint8)
    for n, method in enumerate(order):
        r, c = divmod(n, cols)
        y, x = r * tile_h, c * w
        grid[:, y:y + CLIP_LABEL, x:x + w] = _label_strip(METHODS.get(method, method), w)
        grid[:, y + CLIP_LABEL:y + tile_h, x:x + w] = frames[index[method]]
    with atomic_path(path) as tmp:
        encode_frames(tmp, grid, codec="libx264", pix_fmt="yuv444p", rate=CLIP_RATE,
                      options={"qp": "0", "preset": "medium", "threads": "1"}, in_format="rgb24")
