"""Where FineNet's gain comes from, on held-out real video: each stage's output on the face crops.

The end-to-end benchmark (``bench_deblur_quality.py``) scores what ``finenet deblur`` writes; this
one opens the model up on the same frames. Per case (the same held-out clips, sizes, degradations:
``bench_deblur_quality``'s ``degrade`` with the same ``--seed`` and case name), every frame is cut
to the model's face crop (``data.crop_size``) on the sharp frames' face track (dlib boxes smoothed as
the ``sample`` stage does), degraded and sharp alike, and the degraded crops go through FineNet
with landmarks found as ``finenet deblur`` finds them (``finenet.deblur.tracking.crop_faces``). Scored on the
crop (PSNR against the sharp crop, capped at 60 dB): the pre-deblur front end, the enhancement
branch (E), the interpolation branch (I) and FineNet's output, per group of frames: left sharp,
mildly blurred (``blur.p_mild``: a short kernel), fully blurred. Also the share of frames where the
output is more than 1 dB below its input (harm).

What it shows that the end-to-end scores do not: which part of the model fails where (on the
bench's first release, the interpolation branch fell 10-16 dB below the input on mildly blurred
frames between heavily blurred ones, and the two-way blend followed it). And the ceiling of any
model at this crop size: the *oracle*, the sharp crop's correction (sharp crop - degraded crop)
pasted back into the degraded frame as ``finenet deblur`` pastes FineNet's
(``finenet.deblur.paste.paste``), scored on the frame's face region (the sharp frame's dlib box x
``data.crop_margin``, as the end-to-end benchmark): what a perfect deblur at ``data.crop_size``
would gain there.

Writes ``reports/benchmarks/<out-name>.json`` and ``.md``.

    python benchmarks/bench_branches.py [--checkpoint DIR (default: the installed release)]
        [--params params.yaml] [--frames 40] [--seed 0] [--cases ...] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from common import write_result_and_tables

import bench_deblur_quality as quality
from finenet.errors import FineNetError

OUTPUTS = ("predeblur", "enhance", "interp", "output")
LABELS = {"predeblur": "pre-deblur", "enhance": "Enh (E)", "interp": "Int (I)", "output": "FineNet"}
GROUPS = ("sharp", "mild", "full", "blurred")
HARM_DB = 1.0


def group_of(deg) -> str:
    return "sharp" if deg.family == "sharp" else "mild" if deg.mild else "full"


def crops_and_heatmaps(images, windows, params, marks):
    """(degraded crops (T,S,S,3) uint8, model inputs (T,3,S,S) and heatmaps (T,68,h,h) as tensors)."""
    from finenet.deblur.tracking import crop_faces

    d, lm = params["data"], params["landmarks"]
    frames = [SimpleNamespace(image=im, window=w, segment=0) for im, w in zip(images, windows)]
    done = list(crop_faces(frames, marks, d["crop_size"], d["crop_margin"], lm["heatmap_size"], lm["sigma"]))
    import torch

    return torch.stack([f.crop for f in done]), torch.stack([f.heat for f in done])


def run_case(case, sources, face, marks, model, params, args) -> dict:
    import torch

    from finenet.data.embedded import resize_frames
    from finenet.deblur.tracking import crop_near
    from finenet.face.crop import smooth_boxes

    d = params["data"]
    size = d["crop_size"]
    native, _ = sources.frames(case.video, case.start, args.frames)
    sharp = resize_frames(native, case.resize)
    boxes, _ = quality.fill_boxes([quality.detect_box(face, f) for f in sharp])
    width = float(np.median(boxes[:, 2] - boxes[:, 0]))
    scale = width / (size / d["crop_margin"])
    degraded, degs = quality.degrade(sharp, params["blur"], scale, args.seed, case.name)
    windows = smooth_boxes(boxes.astype(np.float32), d["box_smoothing"], d["crop_margin"])
    truth = np.stack([crop_near(f, w, size) for f, w in zip(sharp, windows)])
    oracle = oracle_face_psnr(sharp, degraded, truth, windows, boxes, params)
    x, heat = crops_and_heatmaps(degraded, windows, params, marks)
    rows = []
    n = len(x)
    with torch.inference_mode():
        for t in range(n):
            idx = [min(max(i, 0), n - 1) for i in range(t - 2, t + 3)]   # clamped, as finenet deblur
            out = model(x[idx][None], heat[idx][None])
            row = {"frame": case.start + t, "group": group_of(degs[t]), "family": degs[t].family,
                   "length_px": round(float(degs[t].length), 2),
                   "psnr_in": round(quality.psnr(truth[t], to_uint8(x[t])), 3)}
            for k in OUTPUTS:
                row[f"psnr_{k}"] = round(quality.psnr(truth[t], to_uint8(out[k][0])), 3)
            row["face_psnr_in"], row["face_psnr_oracle"] = oracle[t]
            rows.append(row)
    return {"source": case.video, "first_frame": case.start, "resize": case.resize,
            "face_width_px": round(width, 1), "blur_scale": round(scale, 3),
            "groups": summarise(rows), "per_frame": rows}


def oracle_face_psnr(sharp, degraded, truth, windows, boxes, params) -> list[tuple[float, float]]:
    """Per frame: the face region's PSNR of the degraded frame, and of it with the sharp crop's
    correction pasted back (``finenet.deblur.paste.paste``): a perfect deblur at the crop size."""
    from finenet.deblur.paste import paste
    from finenet.deblur.tracking import crop_near

    d = params["data"]
    out = []
    for t in range(len(sharp)):
        y0, y1, x0, x1 = quality.face_region(boxes[t], d["crop_margin"], sharp[t].shape)
        residual = truth[t].astype(np.float32) - crop_near(degraded[t], windows[t], d["crop_size"]).astype(np.float32)
        fixed, _ = paste(degraded[t], residual, windows[t], d["crop_size"])
        region = np.s_[y0:y1, x0:x1]
        out.append((round(quality.psnr(sharp[t][region], degraded[t][region]), 3),
                    round(quality.psnr(sharp[t][region], fixed[region]), 3)))
    return out


def to_uint8(img) -> np.ndarray:
    return (img.float().clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def summarise(rows: list[dict]) -> dict:
    out = {}
    for group in GROUPS:
        part = [r for r in rows if r["group"] == group or (group == "blurred" and r["group"] != "sharp")]
        if not part:
            out[group] = {"frames": 0}
            continue
        s = {"frames": len(part), "psnr_in": round(float(np.mean([r["psnr_in"] for r in part])), 3)}
        for k in OUTPUTS:
            s[f"gain_{k}"] = round(float(np.mean([r[f"psnr_{k}"] - r["psnr_in"] for r in part])), 3)
        s["harmed"] = sum(r["psnr_output"] < r["psnr_in"] - HARM_DB for r in part)
        if all("face_psnr_oracle" in r for r in part):
            s["oracle_face_gain"] = round(float(np.mean([r["face_psnr_oracle"] - r["face_psnr_in"] for r in part])), 3)
        out[group] = s
    return out


def markdown(result: dict) -> str:
    lines = ["# Where the gain comes from: each stage of FineNet on held-out face crops", "",
             f"`benchmarks/bench_branches.py`: the held-out cases of `bench_deblur_quality.py` (seed "
             f"{result['seed']}, {result['frames_per_case']} frames each, the same degradations), on the "
             f"{result['crop_size']}-px face crops the model sees; models: `{result['models']}`. PSNR gain "
             f"(dB) over the degraded crop, mean per group of frames; harmed: frames whose FineNet "
             f"output is more than {HARM_DB:g} dB below its input.", "",
             "| case | face px | frames | group | input PSNR | " + " | ".join(LABELS[k] for k in OUTPUTS)
             + " | harmed | oracle, frame face region |",
             "|:--|--:|--:|:--|--:|" + "--:|" * len(OUTPUTS) + "--:|--:|"]
    for name, case in result["cases"].items():
        for group in GROUPS:
            s = case["groups"][group]
            if not s["frames"]:
                continue
            gains = " | ".join(f"{s[f'gain_{k}']:+.2f}" for k in OUTPUTS)
            oracle = f"{s['oracle_face_gain']:+.2f}" if "oracle_face_gain" in s else "—"
            lines.append(f"| {name} | {case['face_width_px']:g} | {s['frames']} | {group} | "
                         f"{s['psnr_in']:.2f} | {gains} | {s['harmed']} | {oracle} |")
    lines += ["", "Groups: sharp (left as they were), mild (a short kernel), full (the full-length "
              "kernels), blurred (mild and full together). Oracle: the face region's PSNR gain in the "
              "frame when the sharp crop's correction is pasted back as `finenet deblur` pastes "
              "FineNet's (a perfect deblur at this crop size; the end-to-end benchmark's region)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="a models folder (default: the installed release)")
    quality.case_arguments(ap, 40, "branches")
    ap.add_argument("--cases", nargs="+", choices=[c.name for c in quality.CASES], help="only these cases")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = ap.parse_args(argv)
    try:
        return run(args)
    except FineNetError as exc:
        print(f"bench_branches: {exc}", file=sys.stderr)
        return 2


def run(args) -> int:
    import torch
    from tqdm import tqdm

    from finenet.deblur import load_finenet, make_detectors
    from finenet.params import load_params

    quality.check_frames(args.frames)
    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    model = load_finenet(args.checkpoint, params, torch.device("cpu"))
    face, marks = make_detectors(params)
    cases = [c for c in quality.CASES if not args.cases or c.name in args.cases]
    start = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_branches.") as tmp:
        sources = quality.Sources(Path(args.archive), Path(tmp))
        for case in tqdm(cases, desc="branches", unit="case"):
            try:
                results[case.name] = run_case(case, sources, face, marks, model, params, args)
            except ValueError as exc:
                raise FineNetError(case.name, str(exc)) from None
            b = results[case.name]["groups"]["blurred"]
            tqdm.write(f"{case.name}: blurred {b['frames']}: " + ", ".join(
                f"{k} {b[f'gain_{k}']:+.2f}" for k in OUTPUTS), file=sys.stderr)
    result = {"models": args.checkpoint or "installed release (finenet/weights)", "profile": params["profile"],
              "crop_size": params["data"]["crop_size"], "seed": args.seed, "frames_per_case": args.frames,
              "harm_db": HARM_DB, "cases": results, "seconds": round(time.perf_counter() - start, 1)}
    write_result_and_tables(args.out_name, result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
