"""Throughput of the HDF5 window loader (windows/s), as training would use it: random patches and
flips, shuffled, batched, with 0 and 2 worker processes; against what each training stage of the
last ``dvc repro`` consumed (batch x steps / seconds, from ``reports/train/*.json``): the loader
must be the faster, or training waits on data. Needs the packed train set (dvc repro).

    python benchmarks/bench_loader.py [--set data/sets/train.h5] [--batches 60]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from common import write_result

from finenet.data.windows import WindowDataset
from finenet.params import load_params


def measure(ds, workers: int, batch: int, batches: int) -> float:
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                         drop_last=True, persistent_workers=workers > 0,
                                         generator=torch.Generator().manual_seed(0))
    seen, it = 0, iter(loader)
    next(it)                                   # exclude worker start-up and first file opens
    start = time.perf_counter()
    while seen < batches * batch:
        try:
            b = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        seen += len(b["clip"])
    return seen / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", default="data/sets/train.h5")
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=12)
    args = ap.parse_args()
    p = load_params()
    ds = WindowDataset(args.set, p["loader"]["num_frames"], p["loader"]["patch_size"], p["loader"]["flip"])
    rates = {f"workers_{w}": round(measure(ds, w, args.batch_size, args.batches), 1) for w in (0, 2)}
    consumed = {}
    for path in sorted(Path("reports/train").glob("*.json")):
        run = json.loads(path.read_text())
        consumed[path.stem] = round(run["iterations"] * p["train"]["batch_size"] / run["seconds"], 1)
    write_result("loader", {"set": args.set, "windows": len(ds), "batch_size": args.batch_size,
                            "patch_size": p["loader"]["patch_size"], "num_frames": p["loader"]["num_frames"],
                            "windows_per_s": rates, "training_consumes_windows_per_s": consumed,
                            "loader_headroom_vs_fastest_training":
                                round(rates["workers_0"] / max(consumed.values()), 2) if consumed else None})


if __name__ == "__main__":
    main()
