"""What a Snakemake per-clip job spends finding its clip: listing the datasets itself (before the
plan file) vs reading the plan the Snakefile listed once (``--plan``), and a data-stage command's
start-up.

Scratch VoxCeleb2 trees in the real layout (``<root>/{dev,test}/mp4/idNNNNN/<yt>/NNNNN.mp4``, empty
files: listing reads names, not videos) of ``--files`` and ``--files // 10`` files; on each, the
clip selection a ``finenet blur --clip X`` job makes (``finenet.stages.select_clips``) is timed
both ways (median of ``--repeats``). The slope per file of the listing, times the 1,128,246 files
of VoxCeleb2's dev and test trees, is the listing's cost per job at the paper's scale; the plan
file holds only the planned clips, so reading it does not grow with the tree. Also timed, in
fresh processes: ``finenet blur --help`` and ``python -c 'import finenet.stages.blur'``, with whether
torch was imported (a data-stage job needs neither torch nor pandas). The 1-minute load average
before and after is recorded: on a busy machine every time here is longer.

    python benchmarks/bench_plan.py [--files 20000] [--repeats 5]

Writes ``reports/benchmarks/plan.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import write_result

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PAPER_FILES = 1_128_246         # VoxCeleb2: 1,092,009 dev + 36,237 test utterances (bench_scale.PAPER)


def scratch_tree(root: Path, n: int) -> Path:
    for k in range(n):           # 100 identities, 10 utterances per YouTube video, 1 in 30 in test
        part = "test" if k % 30 == 0 else "dev"
        path = root / part / "mp4" / f"id{k % 100:05d}" / f"yt{k // 10:06d}" / f"{k:05d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    return root


def timed(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def selection_costs(work: Path, n: int, repeats: int) -> dict:
    from finenet.data.clips import plan_clips, write_plan
    from finenet.params import load_params
    from finenet.stages.clip_loop import select_clips

    root = scratch_tree(work / f"vox{n}", n)
    params = load_params(ROOT / "params.yaml")
    params["data"]["embedded"]["enabled"] = False
    params["data"]["voxceleb"].update(root=str(root), train_videos=1300, val_videos=50, test_videos=130)
    planned = plan_clips(params)
    plan = write_plan(planned, params, work / f"plan{n}.json")
    clip = [planned[len(planned) // 2].clip_id]
    assert select_clips(params, clip) == select_clips(params, clip, plan)
    return {"files": n, "planned_clips": len(planned), "plan_file_bytes": plan.stat().st_size,
            "listing_s": timed(lambda: select_clips(params, clip), repeats),
            "plan_file_s": timed(lambda: select_clips(params, clip, plan), repeats)}


def process_start(args: list[str], repeats: int) -> float:
    return timed(lambda: subprocess.run(args, check=True, capture_output=True, cwd=ROOT), repeats)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        small = selection_costs(Path(tmp), args.files // 10, args.repeats)
        large = selection_costs(Path(tmp), args.files, args.repeats)
    slope = max(large["listing_s"] - small["listing_s"], 0.0) / (large["files"] - small["files"])
    probe = "import sys, finenet.stages.blur; print('torch' in sys.modules, 'pandas' in sys.modules)"
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                              cwd=ROOT).stdout.split()
    result = {
        "trees": [small, large],
        "listing_s_per_file": slope,
        "paper_tree_files": PAPER_FILES,
        "per_job_listing_s_at_paper_scale": round(slope * PAPER_FILES, 1),
        "per_job_plan_file_s": large["plan_file_s"],
        "finenet_blur_help_s": round(process_start([str(Path(sys.executable).parent / "finenet"), "blur", "--help"],
                                                   args.repeats), 3),
        "import_finenet_blur_s": round(process_start([sys.executable, "-c", "import finenet.stages.blur"], args.repeats), 3),
        "data_stage_imports_torch": imported[0] == "True",
        "data_stage_imports_pandas": imported[1] == "True",
        "repeats": args.repeats,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],   # before, after
    }
    write_result("plan", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
