"""Wall time of the default ``dvc repro`` from a clean clone, and of a second, no-op ``dvc repro``.

Clones the current commit into a temporary folder (the source archives in data/external are
copied, as ``make setup`` would fetch them), runs with this venv's tools on PATH.

    python benchmarks/bench_repro.py            # FINENET_REPRO_KEEP=DIR keeps a copy of the clone
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import write_result

REPO = Path(__file__).resolve().parents[1]
KEEP = os.environ.get("FINENET_REPRO_KEEP")   # a folder: keep a copy of the clone there


def cpu_times() -> list[int] | None:
    """The aggregate ``cpu`` line of /proc/stat (user nice system idle iowait irq softirq steal …)."""
    try:
        return [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    except (OSError, ValueError, IndexError):
        return None


def steal_fraction(before, after) -> float | None:
    """Share of CPU time the hypervisor gave to other guests between two ``cpu_times`` (a busy
    host slows every figure here by about 1 / (1 - steal))."""
    if not before or not after:
        return None
    delta = [b - a for a, b in zip(before, after)]
    return round(delta[7] / max(sum(delta), 1), 3)


STAGE = re.compile(r"Running stage '([^']+)':")


def timed(cmd, cwd, env) -> tuple[float, dict]:
    """Wall time of ``cmd`` and of each DVC stage it runs (from one "Running stage" line to the next)."""
    start = time.perf_counter()
    marks, tail = [], []
    with subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace") as proc:
        for line in proc.stdout:
            tail = (tail + [line])[-40:]
            if m := STAGE.search(line):
                marks.append((m.group(1), time.perf_counter()))
    end = time.perf_counter()
    if proc.returncode:
        sys.exit("".join(tail) + f"{' '.join(cmd)} failed in {cwd} (exit {proc.returncode})")
    stages = {name: round(((marks[i + 1][1] if i + 1 < len(marks) else end) - t), 1)
              for i, (name, t) in enumerate(marks)}
    return end - start, stages


def main() -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        shutil.copytree(REPO / "data" / "external", clone / "data" / "external")
        # this venv's finenet is an editable install of the checkout, whose working tree may differ
        # from the commit: the clone's own package goes first on the path (checked)
        env["PYTHONPATH"] = str(clone)
        where = subprocess.run([sys.executable, "-c", "import finenet; print(finenet.__file__)"], cwd=clone,
                               env=env, capture_output=True, text=True, check=True).stdout.strip()
        if not Path(where).resolve().is_relative_to(clone.resolve()):
            sys.exit(f"finenet imports from {where}, not from the clone {clone}")
        before = cpu_times()
        clean, stages = timed(["dvc", "repro"], clone, env)
        steal = steal_fraction(before, cpu_times())
        noop, _ = timed(["dvc", "repro"], clone, env)
        if KEEP:                 # the clone's outputs, for `dvc commit` in the checkout (same commit)
            shutil.rmtree(KEEP, ignore_errors=True)
            shutil.copytree(clone, KEEP, symlinks=True, ignore=shutil.ignore_patterns(".venv", "data"))
    write_result("repro", {"commit": commit, "profile": "embedded",
                           "clean_repro_s": round(clean, 1), "noop_repro_s": round(noop, 2),
                           "cpu_steal_during_clean_repro": steal,
                           "stage_s": dict(sorted(stages.items(), key=lambda kv: -kv[1]))})


if __name__ == "__main__":
    main()
