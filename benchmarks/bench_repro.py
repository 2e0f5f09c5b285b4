"""Wall time of the default ``dvc repro`` from a clean clone, and of a second, no-op ``dvc repro``.

Clones the current commit into a temporary folder (the source archives in data/external are
copied, as ``make setup`` would fetch them), runs with this venv's tools on PATH.

    python benchmarks/bench_repro.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import write_result

REPO = Path(__file__).resolve().parents[1]


def timed(cmd, cwd, env) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        shutil.copytree(REPO / "data" / "external", clone / "data" / "external")
        clean = timed(["dvc", "repro"], clone, env)
        noop = timed(["dvc", "repro"], clone, env)
    write_result("repro", {"commit": commit, "profile": "embedded",
                           "clean_repro_s": round(clean, 1), "noop_repro_s": round(noop, 2)})


if __name__ == "__main__":
    main()
