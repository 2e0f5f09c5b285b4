"""Shared by the benchmark scripts: where results go, and writing them atomically."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finenet.atomic import atomic_path  # noqa: E402

RESULTS = Path("reports/benchmarks")


def machine() -> dict:
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__,
            "cpus": os.cpu_count(), "cuda": torch.cuda.is_available(),
            "processor": platform.processor() or platform.machine()}


def write_result(name: str, result: dict) -> Path:
    path = RESULTS / f"{name}.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({**result, "machine": machine()}, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return path
