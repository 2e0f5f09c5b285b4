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
    write_summary()
    return path


def write_result_and_tables(name: str, result: dict, markdown: str) -> Path:
    """``write_result``, then the result's tables as ``reports/benchmarks/<name>.md``."""
    write_result(name, result)
    md = RESULTS / f"{name}.md"
    with atomic_path(md) as tmp:
        tmp.write_text(markdown)
    print(f"wrote {md}", file=sys.stderr)
    return md


def write_summary() -> Path:
    """``reports/benchmarks.md``: every benchmark result present, rendered from its JSON."""
    lines = ["# Benchmarks", "",
             "Written by `benchmarks/*.py` (`make bench`) from `reports/benchmarks/*.json`; each section",
             "is the latest run of that script, on the machine it names.", ""]
    for path in sorted(RESULTS.glob("*.json")):
        result = json.loads(path.read_text())
        lines += [f"## {path.stem}", "", f"`{path.as_posix()}`", "", "| measure | value |", "|:--|--:|"]
        lines += [f"| {key} | {value} |" for key, value in flatten(result)]
        lines.append("")
    out = RESULTS.parent / "benchmarks.md"
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(lines))
    return out


def flatten(value, prefix: str = ""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, json.dumps(value) if isinstance(value, list) else value
