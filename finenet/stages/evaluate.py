"""Stage ``evaluate``: run every trained method on every test set and score each frame, so any
table can be rebuilt from the rows without re-running a model.

Methods: ``blurry`` (the input itself, the identity baseline), ``predeblur`` (stage one),
``enhance/<variant>``, ``interp/<variant>``, ``finenet/<combine variant>`` (the full model),
``finenet_oracle/late`` (heatmaps from the sharp frames) and every baseline of
``params.baselines``. Each network runs once per batch: the front end's pyramids are shared, the
combiners reuse the "full" branches' outputs.

- Sets with ground truth: PSNR and SSIM on the face crop (scikit-image) and, where the set has
  ground-truth landmarks, the landmark NME of the detector on each method's output (mean point
  error over the inter-ocular distance, outer eye corners). Rows: ``reports/eval/frames.csv``;
  means per clip ``reports/eval/per_clip.csv``; means per set and method ``reports/metrics.json``.
- Sets without ground truth (real blur): scikit-image's no-reference ``blur_effect`` (lower is
  sharper) and whether the detector finds a face on the output: ``reports/eval/noref.csv``.
- A few qualitative samples per set (every method's output on the same frames):
  ``reports/eval/samples.h5``.
- Temporal stability: every method on a run of ``evaluate.temporal_frames`` consecutive frames from
  the middle of each test clip. With ground truth, Lai et al.'s warping error of the run
  (``finenet/scoring/temporal.py``: flow and occlusion masks from the sharp frames, the same for every
  method), ×10³, in ``reports/eval/temporal.csv``; method ``sharp`` is the sharp frames' own (the
  floor the flow's errors leave). Without ground truth the run's frames of every method are kept in
  ``reports/eval/clips.h5`` for the report's side-by-side clips (the paper's Fig. 9 in motion).

``evaluate.frame_stride`` scores every k-th frame (embedded default: every 3rd, to keep CPU time
small; paper profile: every frame).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch
from skimage.measure import blur_effect
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from tqdm import tqdm

from ..atomic import atomic_path
from ..checkpoint import load_model
from ..data.store import FIT_SETS, SETS_DIR
from ..data.windows import H5_ERRORS, REBUILD, ShardError, WindowDataset, check_group, h5_problem, open_set
from ..scoring.metrics import PSNR_CAP
from ..face.detectors import make_detector
from ..models.finenet import combiner_inputs
from ..layout import DEFAULT as LAYOUT, model_path
from ..scoring.temporal import REPORT_SCALE, Flows, TemporalInputError
from ..device import pick_device

EVAL, METRICS, SAMPLES = LAYOUT.eval, LAYOUT.metrics, LAYOUT.eval_samples
TEMPORAL, CLIPS = LAYOUT.eval_temporal, LAYOUT.eval_clips
TEMPORAL_COLUMNS = ["method", "set", "clip", "t0", "frames", "warp_error"]
REFERENCE = "sharp"              # temporal.csv's row of the sharp frames themselves
SAMPLES_PER_SET = 3
LEFT_EYE, RIGHT_EYE = 36, 45     # outer eye corners (iBUG 68): the inter-ocular normaliser


def test_sets(ground_truth: bool) -> list[Path]:
    """The packed test sets with (or without) ground-truth frames (not the training or val set)."""
    out = []
    for path in sorted(SETS_DIR.glob("*.h5")):
        with open_set(path) as f:       # every clip's shard checked: a damaged one is one line
            if path.stem not in FIT_SETS and any([("sharp" in check_group(path, f, c)) == ground_truth
                                                  for c in f]):
                out.append(path)
    return out


class Methods:
    """Every trained method on one batch of windows, each network run once."""

    def __init__(self, params: dict, device):
        self.device = device
        self.frontend = load_model(model_path("predeblur"), device)
        self.branches = {(net, v): load_model(model_path(net, v), device)
                         for net in ("enhance", "interp") for v in params["variants"][net]}
        self.combiners = {v: load_model(model_path("combine", v), device) for v in params["variants"]["combine"]}
        self.baselines = {name: load_model(model_path(name), device) for name in params["baselines"]}

    @torch.no_grad()
    def __call__(self, frames, heat, heat_oracle=None) -> dict:
        c = frames.shape[1] // 2
        full = (self.frontend, self.branches["enhance", "full"], self.branches["interp", "full"])
        enh, inp, shared = combiner_inputs(*full, frames, heat)       # FineNet below its combiner
        out = {"blurry": frames[:, c], "predeblur": shared.predeblurred[:, c]}
        full_out = {("enhance", "full"): enh, ("interp", "full"): inp}          # and the ablations:
        res = {key: full_out[key] if key in full_out else m(shared, heat) for key, m in self.branches.items()}
        out.update({f"{net}/{v}": r.image for (net, v), r in res.items()})
        for v, combiner in self.combiners.items():
            out[f"finenet/{v}"] = combiner(enh, inp, shared).image
        if "late" in self.combiners and heat_oracle is not None:
            out["finenet_oracle/late"] = self.combiners["late"](*combiner_inputs(*full, frames, heat_oracle)).image
        out.update({name: m(frames, heat) for name, m in self.baselines.items()})
        return {k: v.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() for k, v in out.items()}


def score(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    psnr = min(PSNR_CAP, float(peak_signal_noise_ratio(target, pred, data_range=1.0)))
    ssim = float(structural_similarity(target, pred, data_range=1.0, channel_axis=-1))
    return psnr, ssim


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.rint(image * 255).astype(np.uint8)


def landmark_nme(detector, image: np.ndarray, truth: np.ndarray) -> float:
    """NME of the detector's 68 points on ``image`` (fitted in the box of the true points)."""
    box = np.concatenate([truth.min(0), truth.max(0)])
    points = detector.landmarks(to_uint8(image), box)
    return float(np.linalg.norm(points - truth, axis=1).mean() / np.linalg.norm(truth[LEFT_EYE] - truth[RIGHT_EYE]))


def windows(set_path: Path, params: dict, ground_truth: bool, oracle: bool = False):
    """The evaluation windows of a set (every ``frame_stride``-th centre), in batches."""
    ev, n = params["evaluate"], params["loader"]["num_frames"]
    ds = WindowDataset(set_path, n, pad=True, oracle=oracle, ground_truth=ground_truth)
    keep = [i for i, (_, t) in enumerate(ds.index) if t % ev["frame_stride"] == 0]
    return ds, torch.utils.data.DataLoader(torch.utils.data.Subset(ds, keep), batch_size=ev["batch_size"])


def sample_frames(ds: WindowDataset, stride: int) -> set:
    """(clip, t) of the qualitative samples: the middle scored frame of the first few clips."""
    picks = set()
    for clip in sorted(ds.lengths)[:SAMPLES_PER_SET]:
        scored = [t for c, t in ds.index if c == clip and t % stride == 0]
        picks.add((clip, scored[len(scored) // 2]))
    return picks


def evaluate_set(methods: Methods, detector, set_path: Path, params: dict, samples: list) -> list[dict]:
    ds, loader = windows(set_path, params, ground_truth=True)
    _, oracle = windows(set_path, params, ground_truth=True, oracle=True)
    picks = sample_frames(ds, params["evaluate"]["frame_stride"])
    kernels, truth = {}, {}
    with open_set(set_path) as f:
        for c in ds.lengths:
            try:
                kernels[c] = f[c]["kernel"][:, 0]
                if "landmarks_gt" in f[c]:
                    truth[c] = f[c]["landmarks_gt"][:]
            except H5_ERRORS as exc:
                raise ShardError(ds.files[c], f"cannot read clip {c} ({h5_problem(exc)}): {REBUILD}") from None
    rows = []
    for b, bo in tqdm(zip(loader, oracle), total=len(loader), desc=f"evaluate {set_path.stem}", unit="batch"):
        dev = methods.device
        outputs = methods(b["frames"].to(dev), b["heatmaps"].to(dev), bo["heatmaps"].to(dev))
        target = b["target"].permute(0, 2, 3, 1).numpy()
        for k in range(len(target)):
            clip, t = b["clip"][k], int(b["t"][k])
            for name, images in outputs.items():
                psnr, ssim = score(images[k], target[k])
                nme = landmark_nme(detector, images[k], truth[clip][t]) if clip in truth else float("nan")
                rows.append(dict(method=name, set=set_path.stem, clip=clip, t=t,
                                 kernel=int(kernels[clip][t]), psnr=psnr, ssim=ssim, nme=nme))
            if (clip, t) in picks:
                samples.append(sample(set_path.stem, clip, t, int(kernels[clip][t]), outputs, k,
                                      target[k], {r["method"]: r["psnr"] for r in rows[-len(outputs):]}))
    return rows


def evaluate_noref(methods: Methods, detector, set_path: Path, params: dict, samples: list) -> list[dict]:
    ds, loader = windows(set_path, params, ground_truth=False)
    picks = sample_frames(ds, params["evaluate"]["frame_stride"])
    rows = []
    for b in tqdm(loader, desc=f"evaluate {set_path.stem} (no ground truth)", unit="batch"):
        outputs = methods(b["frames"].to(methods.device), b["heatmaps"].to(methods.device))
        for k in range(len(b["t"])):
            clip, t = b["clip"][k], int(b["t"][k])
            for name, images in outputs.items():
                rows.append(dict(method=name, set=set_path.stem, clip=clip, t=t,
                                 blur_effect=float(blur_effect(images[k], channel_axis=-1)),
                                 face_found=int(bool(detector.detect_faces(to_uint8(images[k]))))))
            if (clip, t) in picks:
                samples.append(sample(set_path.stem, clip, t, 0, outputs, k, None, {}))
    return rows


def temporal_run(ds: WindowDataset, frames: int) -> list[int]:
    """Indices into ``ds`` of each clip's run of ``frames`` consecutive centre frames (the whole
    clip when shorter), taken from the middle of the clip."""
    keep = []
    for clip, length in sorted(ds.lengths.items()):
        k = min(frames, length)
        t0 = (length - k) // 2
        keep += [i for i, (c, t) in enumerate(ds.index) if c == clip and t0 <= t < t0 + k]
    return keep


def run_clips(methods: Methods, set_path: Path, params: dict, ground_truth: bool) -> dict:
    """clip -> {"t0", "outputs": {method: (K,H,W,3) float}, "target": (K,H,W,3) or None} on each
    clip's temporal run (``evaluate.temporal_frames``)."""
    ev, n = params["evaluate"], params["loader"]["num_frames"]
    ds = WindowDataset(set_path, n, pad=True, ground_truth=ground_truth)
    keep = temporal_run(ds, ev["temporal_frames"])
    loaders = [torch.utils.data.DataLoader(torch.utils.data.Subset(ds, keep), batch_size=ev["batch_size"])]
    if ground_truth:
        oracle = WindowDataset(set_path, n, pad=True, oracle=True, ground_truth=True)
        loaders.append(torch.utils.data.DataLoader(torch.utils.data.Subset(oracle, keep), batch_size=ev["batch_size"]))
    runs: dict = {}
    for batches in tqdm(zip(*loaders), total=len(loaders[0]), unit="batch",
                        desc=f"temporal {set_path.stem}"):
        b, dev = batches[0], methods.device
        outputs = methods(b["frames"].to(dev), b["heatmaps"].to(dev),
                          batches[1]["heatmaps"].to(dev) if ground_truth else None)
        target = b["target"].permute(0, 2, 3, 1).numpy() if ground_truth else None
        for k in range(len(b["t"])):
            entry = runs.setdefault(b["clip"][k], {"t0": int(b["t"][k]), "outputs": {}, "target": []})
            for name, images in outputs.items():
                entry["outputs"].setdefault(name, []).append(images[k])
            if target is not None:
                entry["target"].append(target[k])
    for entry in runs.values():
        entry["outputs"] = {name: np.stack(v) for name, v in entry["outputs"].items()}
        entry["target"] = np.stack(entry["target"]) if entry["target"] else None
    return runs


def temporal_rows(set_name: str, runs: dict) -> list[dict]:
    """Warping error ×10³ of each method's run, with the flow of the run's sharp frames."""
    rows = []
    for clip, entry in sorted(runs.items()):
        flows = Flows.from_reference(entry["target"])
        frames = len(entry["target"])
        for name, video in [*entry["outputs"].items(), (REFERENCE, entry["target"])]:
            try:
                value = REPORT_SCALE * flows.error(np.clip(video, 0, 1))
            except TemporalInputError:      # no pixel of any pair passed the occlusion check
                value = float("nan")
            rows.append(dict(method=name, set=set_name, clip=clip, t0=entry["t0"], frames=frames,
                             warp_error=value))
    return rows


def write_clips(runs_by_set: dict) -> None:
    """The temporal runs of the sets without ground truth, as uint8 (M,K,H,W,3) per clip."""
    with atomic_path(CLIPS) as tmp, h5py.File(tmp, "w") as f:
        for set_name, runs in runs_by_set.items():
            for clip, entry in sorted(runs.items()):
                g = f.create_group(f"{set_name}/{clip}")
                g.attrs["t0"] = entry["t0"]
                g.attrs["methods"] = json.dumps(list(entry["outputs"]))
                g.create_dataset("frames", data=np.stack([to_uint8(v) for v in entry["outputs"].values()]),
                                 compression="gzip", track_times=False)


def sample(set_name, clip, t, kernel, outputs: dict, k: int, target, psnr: dict) -> dict:
    names = list(outputs) + (["sharp"] if target is not None else [])
    images = [outputs[n][k] for n in outputs] + ([target] if target is not None else [])
    return dict(set=set_name, clip=clip, t=t, kernel=kernel, methods=names,
                images=np.stack([to_uint8(i) for i in images]),
                psnr=np.array([psnr.get(n, np.nan) for n in names], dtype=np.float32))


def write_samples(samples: list) -> None:
    with atomic_path(SAMPLES) as tmp, h5py.File(tmp, "w") as f:
        for i, s in enumerate(samples):
            g = f.create_group(f"samples/{i}")
            for key in ("set", "clip", "t", "kernel"):
                g.attrs[key] = s[key]
            g.attrs["methods"] = json.dumps(s["methods"])
            g.create_dataset("images", data=s["images"], compression="gzip", track_times=False)
            g.create_dataset("psnr", data=s["psnr"], track_times=False)


def summarise(frames: pd.DataFrame, temporal: pd.DataFrame | None = None) -> dict:
    """Means per set and method over all frames, over the blurred frames (the deblurring task) and
    over the frames the blur stage left sharp (what a method does to an already sharp frame); and
    the mean warping error ×10³ over the set's clips (``temporal``)."""
    out = {}
    warp = ({} if temporal is None or temporal.empty
            else temporal.groupby(["set", "method"]).warp_error.mean().to_dict())
    for (set_name, method), part in frames.groupby(["set", "method"]):
        entry = {"frames": int(len(part))}
        for name, rows in (("all", part), ("blurred", part[part.kernel > 1]), ("sharp", part[part.kernel == 1])):
            if len(rows):
                entry[f"psnr_{name}"] = round(float(rows.psnr.mean()), 3)
                entry[f"ssim_{name}"] = round(float(rows.ssim.mean()), 4)
        if part.nme.notna().any():
            entry["nme"] = round(float(part.nme.mean()), 4)
        if (set_name, method) in warp:
            entry["warp_error"] = round(float(warp[set_name, method]), 4)
        out.setdefault(set_name, {})[method] = entry
    return out


def write_csv(path: Path, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")


def run(params: dict, clip_ids=None) -> None:
    torch.manual_seed(params["train"]["seed"])
    methods = Methods(params, pick_device(params["train"]["device"]))
    lm = params["landmarks"]
    detector = make_detector(lm["detector"], lm["upsample"], lm["device"])
    samples: list = []
    rows = [r for p in test_sets(True) for r in evaluate_set(methods, detector, p, params, samples)]
    noref = [r for p in test_sets(False) for r in evaluate_noref(methods, detector, p, params, samples)]
    temporal = pd.DataFrame([r for p in test_sets(True) for r in
                             temporal_rows(p.stem, run_clips(methods, p, params, ground_truth=True))],
                            columns=TEMPORAL_COLUMNS)
    clips = {p.stem: run_clips(methods, p, params, ground_truth=False) for p in test_sets(False)}
    frames = pd.DataFrame(rows)
    per_clip = frames.groupby(["set", "clip", "method"])[["psnr", "ssim"]].mean().round(4).reset_index()
    EVAL.mkdir(parents=True, exist_ok=True)
    write_csv(EVAL / "frames.csv", frames)
    write_csv(EVAL / "per_clip.csv", per_clip)
    write_csv(EVAL / "noref.csv", pd.DataFrame(noref, columns=["method", "set", "clip", "t", "blur_effect",
                                                               "face_found"]))
    write_csv(TEMPORAL, temporal)
    write_samples(samples)
    write_clips(clips)
    with atomic_path(METRICS) as tmp:
        tmp.write_text(json.dumps(summarise(frames, temporal), indent=2) + "\n")


if __name__ == "__main__":
    import sys

    from ..cli import main

    sys.exit(main(["evaluate", *sys.argv[1:]]))
