"""Stage ``evaluate``: run every trained method on every test set with ground truth and score each
frame (PSNR, SSIM on the face crop, scikit-image), so any table can be rebuilt from the rows.

Methods: ``blurry`` (the input itself), ``predeblur`` (stage one), ``enhance/<variant>``,
``interp/<variant>``, ``finenet/<combine variant>`` (the full model), and ``finenet_oracle/late``
(heatmaps from the sharp frames); ``evaluate.frame_stride`` scores every k-th frame (embedded
default: every 3rd, to keep CPU time small; paper profile: every frame). Writes
``reports/eval/frames.csv`` (a row per method, clip and frame), ``reports/eval/per_clip.csv`` and
``reports/metrics.json`` (means per set and method).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from tqdm import tqdm

from .atomic import atomic_path
from .checkpoint import load_model
from .data.store import SETS
from .data.windows import WindowDataset
from .models.combine import fuse
from .models.shared import shared_features
from .train import model_path, pick_device

EVAL = Path("reports/eval")
METRICS = Path("reports/metrics.json")
PSNR_CAP = 60.0   # a frame the method returns exactly (sharp input frames) would be infinite


def test_sets() -> list[Path]:
    out = []
    for path in sorted(SETS.glob("*.h5")):
        with h5py.File(path, "r") as f:
            if path.stem != "train" and any("sharp" in f[c] for c in f):
                out.append(path)
    return out


class Methods:
    """Every trained method on one batch of windows, each network run once: the front end's
    pyramids are shared, the combiners reuse the "full" branches' outputs."""

    def __init__(self, params: dict, device):
        self.variants, self.device = params["variants"], device
        self.frontend = load_model(model_path("predeblur"), device)
        self.branches = {(net, v): load_model(model_path(net, v), device)
                         for net in ("enhance", "interp") for v in params["variants"][net]}
        self.combiners = {v: load_model(model_path("combine", v), device) for v in params["variants"]["combine"]}

    @torch.no_grad()
    def __call__(self, frames, heat, heat_oracle) -> dict:
        c = frames.shape[1] // 2
        shared = shared_features(self.frontend, frames)
        out = {"blurry": frames[:, c], "predeblur": shared.predeblurred[:, c]}
        res = {key: m(shared, heat) for key, m in self.branches.items()}
        out.update({f"{net}/{v}": r[0] for (net, v), r in res.items()})
        for v in self.combiners:
            out[f"finenet/{v}"] = fuse(self.combiners[v], res["enhance", "full"], res["interp", "full"], shared)
        if "late" in self.combiners:
            enh = self.branches["enhance", "full"](shared, heat_oracle)
            inp = self.branches["interp", "full"](shared, heat_oracle)
            out["finenet_oracle/late"] = fuse(self.combiners["late"], enh, inp, shared)
        return out


def score(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    psnr = min(PSNR_CAP, float(peak_signal_noise_ratio(target, pred, data_range=1.0)))
    ssim = float(structural_similarity(target, pred, data_range=1.0, channel_axis=-1))
    return psnr, ssim


def evaluate_set(methods: Methods, set_path: Path, params: dict) -> list[dict]:
    ev, n = params["evaluate"], params["loader"]["num_frames"]
    ds, oracle = WindowDataset(set_path, n, pad=True), WindowDataset(set_path, n, pad=True, oracle=True)
    keep = [i for i, (_, t) in enumerate(ds.index) if t % ev["frame_stride"] == 0]
    loaders = [torch.utils.data.DataLoader(torch.utils.data.Subset(d, keep), batch_size=ev["batch_size"])
               for d in (ds, oracle)]
    with h5py.File(set_path, "r") as f:
        kernels = {c: f[c]["kernel"][:, 0] for c in ds.lengths}
    rows = []
    for b, bo in tqdm(zip(*loaders), total=len(loaders[0]), desc=f"evaluate {set_path.stem}", unit="batch"):
        dev = methods.device
        outputs = methods(b["frames"].to(dev), b["heatmaps"].to(dev), bo["heatmaps"].to(dev))
        target = b["target"].permute(0, 2, 3, 1).numpy()
        for name, images in outputs.items():
            images = images.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
            for k in range(len(images)):
                psnr, ssim = score(images[k], target[k])
                clip, t = b["clip"][k], int(b["t"][k])
                rows.append(dict(method=name, set=set_path.stem, clip=clip, t=t,
                                 kernel=int(kernels[clip][t]), psnr=psnr, ssim=ssim))
    return rows


def summarise(frames: pd.DataFrame) -> dict:
    """Means per set and method over all frames, over the blurred frames (the deblurring task) and
    over the frames the blur stage left sharp (what a method does to an already sharp frame)."""
    out = {}
    for (set_name, method), part in frames.groupby(["set", "method"]):
        entry = {"frames": int(len(part))}
        for name, rows in (("all", part), ("blurred", part[part.kernel > 1]), ("sharp", part[part.kernel == 1])):
            if len(rows):
                entry[f"psnr_{name}"] = round(float(rows.psnr.mean()), 3)
                entry[f"ssim_{name}"] = round(float(rows.ssim.mean()), 4)
        out.setdefault(set_name, {})[method] = entry
    return out


def run(params: dict, clip_ids=None) -> None:
    torch.manual_seed(params["seed"])
    methods = Methods(params, pick_device(params["train"]["device"]))
    rows = [row for set_path in test_sets() for row in evaluate_set(methods, set_path, params)]
    frames = pd.DataFrame(rows)
    per_clip = (frames.groupby(["set", "clip", "method"])[["psnr", "ssim"]].mean().round(4)
                .reset_index())
    EVAL.mkdir(parents=True, exist_ok=True)
    for path, table_ in ((EVAL / "frames.csv", frames), (EVAL / "per_clip.csv", per_clip)):
        with atomic_path(path) as tmp:
            table_.to_csv(tmp, index=False, float_format="%.4f")
    with atomic_path(METRICS) as tmp:
        tmp.write_text(json.dumps(summarise(frames), indent=2) + "\n")


if __name__ == "__main__":
    import sys

    from .cli import main

    sys.exit(main(["evaluate", *sys.argv[1:]]))
