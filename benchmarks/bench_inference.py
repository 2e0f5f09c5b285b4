"""Per-frame inference time of FineNet vs EDVR vs FineNet's branches at equal width (EDVR built with
FineNet's width, groups, levels, blocks and input stride), and what sharing the front end saves:
FineNet (front end computed once) against running the enhancement and interpolation branches as
separate models (each with its own front-end pass). CPU, and CUDA + bf16 when present.

    python benchmarks/bench_inference.py [--size 96] [--batch 4] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import torch
from common import write_result

from finenet.models import build
from finenet.models.shared import shared_features
from finenet.params import load_params
from finenet.models.config import net_config


def timed(fn, repeats: int, sync) -> float:
    fn()                                           # warm-up
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


@torch.no_grad()
def measure(params, device: str, size: int, batch: int, repeats: int) -> dict:
    dev = torch.device(device)
    nets = {}
    for n, v in (("predeblur", None), ("enhance", "full"), ("interp", "full"), ("combine", "late")):
        arch, config = net_config(params, n, v)
        nets[n] = build(arch, **config).to(dev).eval()
    model = build("finenet", frontend=nets["predeblur"], enhance=nets["enhance"], interp=nets["interp"],
                  combiner=nets["combine"]).eval()
    m = params["model"]
    edvr = build("edvr", **{**params["baselines"]["edvr"], **{k: m[k] for k in (
        "feat", "groups", "levels", "extract_blocks", "recon_blocks", "input_stride", "max_offset")}}).to(dev).eval()
    hm = params["landmarks"]["heatmap_size"] * size // params["data"]["crop_size"]
    x = torch.rand(batch, 5, 3, size, size, device=dev)
    h = torch.rand(batch, 5, 68, hm, hm, device=dev)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else nullcontext()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def branch(name):
        return lambda: nets[name](shared_features(nets["predeblur"], x), h)

    with amp:
        t = {"finenet": timed(lambda: model(x, h), repeats, sync),
             "edvr_equal_width": timed(lambda: edvr(x, h), repeats, sync),
             "enhance_alone": timed(branch("enhance"), repeats, sync),
             "interp_alone": timed(branch("interp"), repeats, sync)}
    per_frame = {k: round(1000 * v / batch, 2) for k, v in t.items()}
    separate = per_frame["enhance_alone"] + per_frame["interp_alone"]
    return {"ms_per_frame": per_frame, "branches_run_separately_ms": round(separate, 2),
            "finenet_vs_separate_branches": round(per_frame["finenet"] / separate, 3),
            "finenet_vs_enhance": round(per_frame["finenet"] / per_frame["enhance_alone"], 3),
            "finenet_vs_edvr": round(per_frame["finenet"] / per_frame["edvr_equal_width"], 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=None, help="frame side (default: data.crop_size)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    params = load_params()
    size = args.size or params["data"]["crop_size"]
    torch.manual_seed(0)
    result = {"size": size, "batch": args.batch, "feat": params["model"]["feat"],
              "input_stride": params["model"]["input_stride"],
              "cpu": measure(params, "cpu", size, args.batch, args.repeats)}
    if torch.cuda.is_available():
        result["cuda_bf16"] = measure(params, "cuda", size, args.batch, args.repeats)
    write_result("inference", result)


if __name__ == "__main__":
    main()
