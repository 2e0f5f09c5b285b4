"""The paper-size dry run and the capacity plan (issue 14).

    python benchmarks/bench_scale.py [--workdir DIR] [--frames 12] [--videos 2] [--iterations 1]
        [--batch 12] [--reduced] [--out-name scale]

**Dry run.** ``tools/paper_tree.py`` builds small dataset trees in VoxCeleb2's, 300VW's and the
real-blur folder's exact layouts from real talking-head video; then the whole DAG (every rule of
the ``Snakefile``: sample, blur, heatmaps per clip, pack, every training run, evaluate, report) runs
under Snakemake in ``--workdir`` with ``profile: paper``. What is overridden, and only that
(``overrides``; everything else is ``profiles.paper``: 256² crops, 128 channels, 40
reconstruction blocks, 68×64×64 heatmaps at σ 2, batch 12, 8 loader workers, every ablation
variant and every baseline at its original paper's widths):

- the three dataset roots (the trees above) and their sample sizes (videos per split);
- the iteration counts (``--iterations`` each, the late combiner's solo keep-model phase too),
  validation and checkpoint intervals to match, and how many frames validation and evaluation score;
- ``landmarks.detector: dlib`` on ``cpu`` and ``train.device: cpu``: FAN's weights cannot be
  downloaded here (``landmarks.detector: fan`` without them fails with one line naming where they
  go; ``tests/test_paper_dryrun.py``), and this machine has no GPU.

Each ``finenet`` command Snakemake runs goes through a shim on ``PATH`` that records its wall
time, CPU time and the peak resident memory of its largest process (``getrusage`` of its reaped
descendants, DataLoader workers included) in ``usage.jsonl``. From the run: per training run the
seconds per step (its training loop's time over its steps, one validation included) and the peak
memory; per data stage the CPU seconds per frame; per HDF5 dataset the bytes per frame as stored
(gzip); each model file's size. Then, on the dry run's own training set: the loader's windows/s
per worker at the paper's 256² patch, the FLOPs of one training step of every network (torch's
``FlopCounterMode``: convolutions and matrix products; the deformable sampling is not counted),
and the cost of the heatmaps stored dense vs rendered in the loader from the stored 68 points.

**Capacity plan** (``plan``): those measured per-unit costs times the paper's sizes (``PAPER``,
each number with its source) — disk, CPU-hours of the data stages and their Snakemake fan-out,
loader throughput vs what one GPU consumes (a GPU step estimated from the measured FLOPs at a
stated peak and utilisation, replaced by ``reports/benchmarks/gpu.json``'s measured step where a
GPU check has run), and what to change where the numbers show a bottleneck.

Writes ``reports/benchmarks/<out-name>.json`` and ``.md`` (atomically). ``--reduced`` is the test's
version (``tests/test_paper_dryrun.py``: one utterance per identity, 6 frames, one step at batch
1): the DAG trains one variant of each branch and one baseline (EDVR), the step probe counts the
FLOPs of every network untimed, and nothing is written under ``reports/``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from finenet.atomic import atomic_path  # noqa: E402
from finenet.params import deep_merge, resolve  # noqa: E402

GIB = 1024 ** 3

# The paper's run, for the projection. Each value with where it comes from.
PAPER = {
    "train_videos": (1300, "the paper, Sec. 4.1 (VoxCeleb2 training videos)"),
    "train_frames": (700_000, "the paper, Sec. 4.1 (about 700K training frames)"),
    "val_videos": (50, "params.yaml data.voxceleb.val_videos"),
    "voxceleb_test_videos": (130, "the paper, Sec. 4.1"),
    "vw300_test_videos": (30, "the paper, Sec. 4.1 (300VW test videos)"),
    "vw300_frames_per_video": (1918, "300VW: 218,595 frames in 114 videos (Shen et al. 2015)"),
    "voxceleb2_files": (1_128_246, "VoxCeleb2: 1,092,009 dev + 36,237 test utterances (Chung et al. 2018)"),
    "batch": (12, "params.yaml profiles.paper train.batch_size"),
    "gpu_peak_tflops": (989.0, "NVIDIA H100 SXM datasheet, dense BF16 tensor-core peak"),
    "gpu_utilisation": (0.25, "assumed share of peak a conv/deformable net sustains; replaced by "
                              "reports/benchmarks/gpu.json's measured step where a GPU check ran"),
    "checkpoints_kept": (2, "last.pt and prev.pt per run (finenet/checkpoint.py)"),
}

DATA_STAGES = ("sample", "blur", "heatmaps")


def overrides(tree: dict, iterations: int, batch: int | None, reduced: bool, videos: int) -> dict:
    """What the dry run changes in ``profiles.paper`` (and only this: see the module docstring)."""
    it = int(iterations)
    over = {
        # the dev tree has two identities: one training video leaves the other for val, whose
        # identities must be disjoint from training's
        "data": {"voxceleb": {"root": str(tree["voxceleb"]), "train_videos": 1,
                              "val_videos": 1, "test_videos": videos},
                 "vw300": {"root": str(tree["vw300"]), "test_videos": videos},
                 "youtube": {"root": str(tree["youtube"])}},
        "landmarks": {"detector": "dlib", "device": "cpu"},
        "train": {"device": "cpu", "checkpoint_every": it, "judge_steps": it,
                  "validation": {"every": it, "frame_stride": 1000},
                  "iterations": {k: it for k in ("predeblur", "enhance", "interp", "combine", "baseline")}},
        "evaluate": {"frame_stride": 1000, "temporal_frames": 2},
    }
    if batch is not None:
        over["train"]["batch_size"] = int(batch)
    if reduced:                         # the test's version: fewer runs, same sizes
        over["train"]["workers"] = 1
    return over


def reduced_lists(raw: dict) -> dict:
    """The test's version trains one variant of each branch and one baseline (EDVR, whose
    paper-size config is FineNet's own) through the DAG, at full paper sizes; the step probe
    still runs every network of the paper profile once."""
    return {"variants": {"enhance": {"full": {}}, "interp": {"full": {}}, "combine": {"late": {"fusion": "late"}}},
            "baselines": {"edvr": raw["baselines"]["edvr"]}}


SHIM = """#!{python}
# finenet, with its wall time, CPU time and peak memory (largest process) appended to $FINENET_USAGE
import json, os, resource, subprocess, sys, time
t0 = time.perf_counter()
rc = subprocess.call([os.environ["FINENET_REAL"], *sys.argv[1:]])
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
rec = dict(argv=sys.argv[1:], rc=rc, wall_s=round(time.perf_counter() - t0, 3),
           cpu_s=round(ru.ru_utime + ru.ru_stime, 3), peak_rss_mb=round(ru.ru_maxrss / 1024, 1))
with open(os.environ["FINENET_USAGE"], "a") as f:
    f.write(json.dumps(rec) + "\\n")
sys.exit(rc)
"""


def dry_run(workdir: Path, frames: int, videos: int, iterations: int, batch: int | None,
            reduced: bool, cores: int = 2) -> dict:
    """The whole DAG at paper sizes on the trees; what it measured."""
    import paper_tree

    workdir.mkdir(parents=True, exist_ok=True)
    tree_dir = workdir / "tree"
    roots = {"voxceleb": tree_dir / "voxceleb2", "vw300": tree_dir / "300VW", "youtube": tree_dir / "youtube"}
    if not (tree_dir / ".complete").is_file():       # deterministic: built once per workdir
        shutil.rmtree(tree_dir, ignore_errors=True)
        paper_tree.build(tree_dir, frames=frames, videos=videos)
        (tree_dir / ".complete").write_text("")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["profile"] = "paper"
    raw["profiles"]["paper"] = deep_merge(raw["profiles"]["paper"], overrides(roots, iterations, batch, reduced, videos))
    if reduced:
        raw.update(reduced_lists(raw))
        paper_baselines = raw["profiles"]["paper"].get("baselines", {})
        raw["profiles"]["paper"]["baselines"] = {k: v for k, v in paper_baselines.items() if k in raw["baselines"]}
    (workdir / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    params = resolve(raw)
    external = workdir / "data" / "external"
    if not external.exists():
        external.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(ROOT / "data" / "external", external)

    bin_dir = Path(sys.executable).parent
    shim = workdir / "shim"
    shim.mkdir(exist_ok=True)
    (shim / "finenet").write_text(SHIM.format(python=sys.executable))
    (shim / "finenet").chmod(0o755)
    usage = workdir / "usage.jsonl"                  # appended to: a re-run resumes, what ran is kept
    env = {**os.environ, "PATH": f"{shim}{os.pathsep}{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "FINENET_REAL": str(bin_dir / "finenet"), "FINENET_USAGE": str(usage)}
    snakemake = shutil.which("snakemake", path=str(bin_dir)) or "snakemake"
    t0 = time.perf_counter()
    cmd = [snakemake, "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", str(cores),
           "--quiet", "rules"]
    done = subprocess.run(cmd, env=env)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"bench_scale: the paper-profile DAG failed (logs in {workdir / 'logs'})")
    latest = {}                                       # the last successful run of each job
    for line in usage.read_text().splitlines():
        job = json.loads(line)
        if job["rc"] == 0:
            latest[tuple(job["argv"])] = job
    jobs = list(latest.values())
    return {"params": params, "wall_s": round(wall, 1), "jobs": jobs,
            "measured": measure(workdir, params, jobs)}


def job_key(argv: list[str]) -> tuple[str, str]:
    """(stage, what) of a recorded ``finenet`` command: ``("train", "enhance/full")``,
    ``("sample", "<clip>")``, ``("evaluate", "")``."""
    stage = argv[0]
    if stage == "train":
        net = argv[1]
        variant = argv[argv.index("--variant") + 1] if "--variant" in argv else None
        from finenet.layout import run_name
        return stage, run_name(net, variant)
    return stage, argv[argv.index("--clip") + 1] if "--clip" in argv else ""


def measure(workdir: Path, params: dict, jobs: list[dict]) -> dict:
    import h5py

    from finenet.layout import Layout

    lay = Layout(workdir)
    out: dict = {"training": {}, "data_stages": {}, "hdf5_bytes_per_frame": {}, "model_bytes": {}, "other_stages": {}}
    frames_of: dict[str, int] = {}
    sizes: dict[str, list[int]] = {}
    from finenet.data.clips import plan_clips

    planned = {c.clip_id for c in plan_clips(params)}
    for shard in sorted(p for p in lay.shards.glob("*.h5") if p.stem in planned):
        with h5py.File(shard, "r") as f:
            (clip, g), = f.items()
            n = len(g["blurry"])
            frames_of[clip] = n
            for name, ds in g.items():
                sizes.setdefault(name, []).extend([ds.id.get_storage_size(), n])
    for name, pairs in sorted(sizes.items()):
        stored, n = sum(pairs[0::2]), sum(pairs[1::2])
        out["hdf5_bytes_per_frame"][name] = round(stored / n)
    for kind, folder in (("clip_npz", lay.clips), ("blurred_npz", lay.blurred)):
        files = sorted(p for p in folder.glob("*.npz") if p.stem in planned)
        out["hdf5_bytes_per_frame"][kind] = round(sum(p.stat().st_size for p in files)
                                                  / sum(frames_of[p.stem] for p in files))
    for job in jobs:
        stage, what = job_key(job["argv"])
        if stage == "train":
            report = json.loads((lay.train_reports / f"{what.replace('/', '_')}.json").read_text())
            out["training"][what] = {"iterations": report["iterations"], "loop_s": report["seconds"],
                                     "s_per_step": round(report["seconds"] / report["iterations"], 2),
                                     "job_wall_s": job["wall_s"], "peak_rss_mb": job["peak_rss_mb"],
                                     "parameters": report["parameters"]}
        elif stage in DATA_STAGES:
            entry = out["data_stages"].setdefault(stage, {"jobs": 0, "frames": 0, "cpu_s": 0.0, "wall_s": 0.0,
                                                          "peak_rss_mb": 0.0})
            entry["jobs"] += 1
            entry["frames"] += frames_of.get(what, 0)
            entry["cpu_s"] += job["cpu_s"]
            entry["wall_s"] += job["wall_s"]
            entry["peak_rss_mb"] = max(entry["peak_rss_mb"], job["peak_rss_mb"])
        else:
            out["other_stages"][stage] = {k: job[k] for k in ("wall_s", "cpu_s", "peak_rss_mb")}
    for entry in out["data_stages"].values():
        entry["cpu_s_per_frame"] = round(entry["cpu_s"] / max(entry["frames"], 1), 4)
        entry["cpu_s"], entry["wall_s"] = round(entry["cpu_s"], 1), round(entry["wall_s"], 1)
    for model in sorted(lay.models.glob("**/model.pt")):
        out["model_bytes"][model.parent.relative_to(lay.models).as_posix()] = model.stat().st_size
    out["state_bytes"] = {state.parent.relative_to(lay.checkpoints).as_posix(): state.stat().st_size
                          for state in sorted(lay.checkpoints.glob("**/last.pt"))}
    out["loader_workers"] = params["train"]["workers"]
    return out


def probe(workdir: Path, params: dict, batches: tuple[int, ...], timed: bool = True, threads: int = 2) -> dict:
    """On the dry run's training set: loader windows/s per worker at the paper's patch, dense vs
    rendered heatmaps, and one training step of every network of the paper profile (its full
    lists, whatever the DAG ran) at each batch of ``batches``, each in a fresh process: seconds,
    peak memory, FLOPs per window."""
    import torch

    from finenet.data.store import set_file
    from finenet.data.windows import WindowDataset
    from finenet.face.heatmap import render_heatmaps
    from finenet.layout import run_name, training_runs

    torch.set_num_threads(threads)
    here = Path.cwd()
    os.chdir(workdir)                      # the stages' paths are relative to the pipeline's root
    try:
        lp = params["loader"]
        ds = WindowDataset(set_file("train"), lp["num_frames"], lp["patch_size"], lp["flip"], blurred_centres=True)
        rng = np.random.default_rng(0)
        keys = [(int(i), int(s)) for i, s in zip(rng.integers(0, len(ds), 24), rng.integers(0, 2 ** 31, 24))]
        ds[keys[0]]                       # open the file
        t0 = time.perf_counter()
        for k in keys:
            ds[k]
        loader = {"windows_per_s_per_worker": round(len(keys) / (time.perf_counter() - t0), 2),
                  "patch": lp["patch_size"], "num_frames": lp["num_frames"]}
        heat = heatmap_costs(ds, params, render_heatmaps)
        planning = planning_cost(workdir)
    finally:
        os.chdir(here)
    cache = workdir / "probe.jsonl"                  # one line a measured step: a re-run resumes
    done_steps = {}
    if cache.is_file():
        for line in cache.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("timed") == timed:
                done_steps[(rec["run"], rec["batch"])] = rec
    full = paper_params()
    runs = [run_name(net, variant) for net, variant in training_runs(full["variants"], full["baselines"])]
    # timed: one process at a time on every core; untimed (--reduced): FLOPs only, one process a core
    steps: dict = {}
    for (run, b), rec in done_steps.items():
        if run in runs and b in batches:
            steps.setdefault(run, {})[b] = rec
    jobs = [(run, b) for run in runs for b in batches if b not in steps.get(run, {})]
    at_once = 1 if timed else max(1, threads)
    with tqdm(total=len(jobs), desc="step probe", unit="step") as bar:
        for k in range(0, len(jobs), at_once):
            procs = []
            for run, b in jobs[k:k + at_once]:
                cmd = [sys.executable, __file__, "--step-probe", run, "--batch", str(b), "--workdir", str(workdir),
                       "--threads", str(threads if timed else 1)]
                cmd += ["--flops"] if b == batches[0] else []
                cmd += [] if timed else ["--untimed"]
                procs.append((run, b, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
            for run, b, proc in procs:
                out, err = proc.communicate()
                if proc.returncode != 0:
                    raise SystemExit(f"bench_scale: one training step of {run} at batch {b} failed:\n{err[-2000:]}")
                rec = {**json.loads(out.strip().splitlines()[-1]), "timed": timed}
                steps.setdefault(run, {})[b] = rec
                with open(cache, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
                bar.update(1)
    return {"loader": loader, "heatmaps": heat, "planning": planning, "steps": steps,
            "flops_per_window": {run: s[batches[0]]["flops"] // batches[0] for run, s in steps.items()}}


def paper_params() -> dict:
    """``profile: paper`` as committed (every variant and baseline), on this machine's devices."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["profile"] = "paper"
    params = resolve(raw)
    params["train"]["device"] = params["landmarks"]["device"] = "cpu"
    return params


def step_probe(workdir: Path, run: str, batch: int, flops: bool, timed: bool = True, threads: int = 2) -> dict:
    """One training step (forward, backward, Adam) of ``run`` at the paper profile's sizes on a
    batch of the dry run's real windows, in this fresh process: its seconds, this process's peak
    memory, and (``flops``) the FLOPs of a second forward + backward (``timed`` False: that pass
    only, no timing)."""
    import torch

    from finenet.data.store import set_file
    from finenet.data.windows import WindowDataset
    from finenet.models import build
    from finenet.models.config import learning_rate, net_config
    from finenet.stages.train import Trainee, frozen_inputs, step_on

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    params = paper_params()
    net, _, variant = run.partition("/")
    net, variant = (variant, None) if net == "baselines" else (net, variant or None)
    os.chdir(workdir)
    lp = params["loader"]
    ds = WindowDataset(set_file("train"), lp["num_frames"], lp["patch_size"], lp["flip"],
                       blurred_centres=net != "combine", whole=net == "combine")
    batch = torch.utils.data.default_collate([ds[(i % len(ds), i)] for i in range(batch)])

    def model(n, v):
        arch, config = net_config(params, n, v)
        return build(arch, **config)

    # the frozen networks it sits on, as training loads them (train.frozen_inputs: their model
    # paths, models/<net>[/<variant>]/model.pt), built untrained: a step's cost is the weights'
    frozen = [model(*(Path(p).parent.parts[-2:] if len(Path(p).parent.parts) > 2 else (Path(p).parent.name, None)))
              for p in frozen_inputs(net)]
    trainee = Trainee(net, model(net, variant), frozen).train()
    critic = getattr(trainee.model, "critic", None)
    params_main = [p for n, p in trainee.model.named_parameters() if not (critic is not None and n.startswith("critic."))]
    out = {"run": run, "batch": len(batch["frames"]),
           "parameters": int(sum(p.numel() for p in trainee.model.parameters()))}
    if timed:                             # one optimiser step as training takes it (train.step_on)
        tp, fp32 = params["train"], contextlib.nullcontext()
        t0 = time.perf_counter()
        if critic is not None:            # one critic step before the generator's, as training does
            step_on(torch.optim.Adam(critic.parameters(), lr=learning_rate(params, net)), lambda: trainee(batch, critic=True),
                    critic.parameters(), tp, fp32)
        step_on(torch.optim.Adam(params_main, lr=learning_rate(params, net)), lambda: trainee(batch), params_main, tp, fp32)
        out["s_per_step"] = round(time.perf_counter() - t0, 2)
        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if flops:
        counter = FlopCounter()
        with counter:
            if critic is not None:
                trainee(batch, critic=True).backward()
            trainee(batch).backward()
        out["flops"] = counter.total
    return out


def FlopCounter():
    """torch's FLOP formulas (``torch.utils.flop_counter.flop_registry``: convolutions, matrix
    products, attention) summed over every op dispatched, backward included. Not torch's
    ``FlopCounterMode`` itself: its per-module hooks break ``autograd.grad`` (DeblurGAN's
    gradient penalty)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Counter(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            result = func(*args, **kwargs)
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                self.total += int(formula(*args, **kwargs, out_val=result))
            return result

    return Counter()


def planning_cost(workdir: Path, files: int = 20_000) -> dict:
    """What planning the clips costs per file of the VoxCeleb2 tree (``voxceleb.plan``: a sorted
    listing of ``dev`` and ``test``, then the seeded choice), timed on a scratch tree of ``files``
    empty ``.mp4`` files in the real layout (listing reads names, not videos) against one of
    ``files // 10``: the slope, without the fixed cost. Every per-clip job plans the run."""
    from finenet.data import voxceleb

    def timed(n: int) -> float:
        root = workdir / "planning" / f"vox{n}"
        if not (root / ".complete").is_file():
            shutil.rmtree(root, ignore_errors=True)
            for k in range(n):       # 100 identities, 10 utterances per YouTube video
                part = "test" if k % 30 == 0 else "dev"
                path = root / part / "mp4" / f"id{k % 100:05d}" / f"yt{k // 10:06d}" / f"{k:05d}.mp4"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            (root / ".complete").write_text("")
        cfg = dict(root=str(root), train_videos=1300, val_videos=50, test_videos=130, frames_per_clip=None)
        t0 = time.perf_counter()
        voxceleb.plan(cfg, seed=0)
        return time.perf_counter() - t0

    small, large = timed(files // 10), timed(files)
    return {"tree_files": files, "plan_s": round(large, 4),
            "s_per_file": max(large - small, 0.0) / (files - files // 10)}


def heatmap_costs(ds, params: dict, render) -> dict:
    """Reading a window's 5 dense heatmaps from HDF5 vs rendering them from its 5 x 68 points."""
    import h5py

    lm, crop, n = params["landmarks"], params["data"]["crop_size"], params["loader"]["num_frames"]
    clip, t = ds.index[0]
    with h5py.File(ds.path, "r") as f:
        g = f[clip]
        reps = 20
        t0 = time.perf_counter()
        for _ in range(reps):
            g["heatmaps"][max(0, t - n // 2): t + n // 2 + 1]
        read = (time.perf_counter() - t0) / reps
        pts = g["landmarks"][max(0, t - n // 2): t + n // 2 + 1]
        t0 = time.perf_counter()
        for _ in range(reps):
            render(pts, crop, lm["heatmap_size"], lm["sigma"])
        rendered = (time.perf_counter() - t0) / reps
    return {"read_dense_ms_per_window": round(read * 1e3, 2),
            "render_from_points_ms_per_window": round(rendered * 1e3, 2)}


def gpu_steps(gpu: dict | None) -> dict[str, float]:
    """Measured paper-profile step seconds at batch 12 per FineNet network, from a GPU check that
    ran on CUDA (``benchmarks/gpu_check.sh``); empty where none has."""
    section = (gpu or {}).get("sections", {}).get("train_step", {}) if (gpu or {}).get("gpu") else {}
    if section.get("status") != "ok":
        return {}
    return {net: v["step_s"] for net, v in section.get("nets", {}).items() if v.get("status") == "ok"}


def plan(measured: dict, probed: dict, gpu: dict | None) -> dict:
    """The paper's run from the measured per-unit costs."""
    p = {k: v for k, (v, _) in PAPER.items()}
    vox_frames = p["train_frames"] / p["train_videos"]
    frames = {"train": p["train_frames"], "val": p["val_videos"] * vox_frames,
              "test": p["voxceleb_test_videos"] * vox_frames + p["vw300_test_videos"] * p["vw300_frames_per_video"]}
    total_frames = sum(frames.values())
    clips = p["train_videos"] + p["val_videos"] + p["voxceleb_test_videos"] + p["vw300_test_videos"]
    bpf = measured["hdf5_bytes_per_frame"]
    shard_bpf = sum(v for k, v in bpf.items() if not k.endswith("_npz"))
    disk = {"clips_npz_gib": bpf["clip_npz"] * total_frames / GIB,
            "blurred_npz_gib": bpf["blurred_npz"] * total_frames / GIB,
            "hdf5_shards_gib": shard_bpf * total_frames / GIB,
            "of_which_dense_heatmaps_gib": (bpf.get("heatmaps", 0) + bpf.get("heatmaps_sharp", 0)) * total_frames / GIB,
            "landmark_points_gib": (bpf.get("landmarks", 0) + bpf.get("landmarks_sharp", 0)) * total_frames / GIB}
    runs = measured["training"]
    # every run's model file, and its training states (weights, Adam's moments, history) kept twice
    disk["checkpoints_gib"] = (sum(measured["model_bytes"].values())
                               + p["checkpoints_kept"] * sum(measured["state_bytes"].values())) / GIB
    disk = {k: round(v, 1) for k, v in disk.items()}
    disk["total_gib"] = round(sum(v for k, v in disk.items() if not k.startswith(("of_which", "landmark"))), 1)

    data = {}
    for stage, entry in measured["data_stages"].items():
        data[stage] = {"cpu_s_per_frame": entry["cpu_s_per_frame"],
                       "cpu_hours": round(entry["cpu_s_per_frame"] * total_frames / 3600, 1),
                       "snakemake_jobs": clips,
                       "hours_on_64_cores": round(entry["cpu_s_per_frame"] * total_frames / 3600 / 64, 2)}

    iterations = {"predeblur": 100_000, "enhance": 200_000, "interp": 200_000, "combine": 50_000, "baseline": 200_000}
    peak = p["gpu_peak_tflops"] * 1e12 * p["gpu_utilisation"]
    gpu_step = {}
    for run, flops in probed["flops_per_window"].items():
        net = run.split("/")[0]
        per_step = flops * p["batch"] / peak
        measured_step = gpu_steps(gpu).get(net if net in ("predeblur", "enhance", "interp", "combine") else run)
        gpu_step[run] = {"flops_per_window": flops, "step_s_estimate": round(per_step, 4),
                         "step_s_measured": measured_step,
                         "windows_per_s": round(p["batch"] / (measured_step or per_step), 1),
                         "gpu_hours": round(iterations.get(net, iterations["baseline"])
                                            * (measured_step or per_step) / 3600, 1),
                         "dry_run_cpu_s_per_step": runs.get(run, {}).get("s_per_step"),
                         "dry_run_peak_rss_mb": runs.get(run, {}).get("peak_rss_mb")}
    cpu12 = {}
    for run, by_batch in probed["steps"].items():
        (b1, one), *rest = sorted(by_batch.items())
        if rest:                             # linear in the batch, from two measured batches
            b2, two = rest[0]
            slope_s = (two["s_per_step"] - one["s_per_step"]) / (b2 - b1)
            slope_m = (two["peak_rss_mb"] - one["peak_rss_mb"]) / (b2 - b1)
            cpu12[run] = {"s_per_step": round(one["s_per_step"] + slope_s * (p["batch"] - b1), 1),
                          "peak_rss_gib": round((one["peak_rss_mb"] + slope_m * (p["batch"] - b1)) / 1024, 1),
                          "activation_mb_per_window": round(slope_m, 1)}
    need = max(v["windows_per_s"] for v in gpu_step.values())
    per_worker = probed["loader"]["windows_per_s_per_worker"]
    loader = {"windows_per_s_per_worker": per_worker, "fastest_network_consumes_windows_per_s": need,
              "workers_needed": int(np.ceil(need / per_worker)),
              "workers_in_profile": measured["loader_workers"]}
    heat = probed["heatmaps"]
    per_job = probed["planning"]["s_per_file"] * p["voxceleb2_files"]
    planning = {"s_per_job": round(per_job, 1), "jobs": len(DATA_STAGES) * clips,
                "cpu_hours": round(per_job * len(DATA_STAGES) * clips / 3600, 1)}
    advice = []
    if planning["cpu_hours"] > 1:
        advice.append(f"planning lists VoxCeleb2's {p['voxceleb2_files']:,} files in every per-clip job: "
                      f"~{planning['s_per_job']} s a job, {planning['cpu_hours']} CPU-hours over "
                      f"{planning['jobs']} jobs (more on a network file system): build a dataset manifest once")
    dense, shards = disk["of_which_dense_heatmaps_gib"], disk["hdf5_shards_gib"]
    render_ms, read_ms = heat["render_from_points_ms_per_window"], heat["read_dense_ms_per_window"]
    if dense > 0.5 * shards or render_ms < read_ms:
        advice.append(f"dense heatmaps are {dense:.0f} of the shards' {shards:.0f} GiB, the points "
                      f"{disk['landmark_points_gib']:.1f} GiB: render them in the loader from the stored "
                      f"points ({render_ms} ms a window, against {read_ms} ms to read them dense)")
    else:
        advice.append(f"keep the heatmaps stored dense: gzip leaves them {dense:.0f} of the shards' {shards:.0f} "
                      f"GiB, and reading a window's ({read_ms} ms) costs less than rendering them from the "
                      f"points in the loader ({render_ms} ms)")
    npz = disk["clips_npz_gib"] + disk["blurred_npz_gib"]
    advice.append(f"the shards hold every frame again: the sample and blur stages' .npz files ({npz:.0f} GiB) "
                  f"are intermediates once the shards exist; keep them in a DVC remote (dvc push), not on "
                  f"the training nodes, and plan {shards:.0f} GiB of fast local disk for the shards")
    if loader["workers_needed"] > loader["workers_in_profile"]:
        advice.append(f"the loader needs {loader['workers_needed']} workers per GPU at {per_worker} windows/s each "
                      f"to feed {need} windows/s: more CPU cores per GPU, or decode fewer bytes per window")
    top = max(data, key=lambda s: data[s]["cpu_hours"]) if data else None
    if top:
        advice.append(f"the data stages' largest cost is {top} ({data[top]['cpu_hours']} CPU-hours): one "
                      f"Snakemake job per clip ({clips} jobs) on a cluster executor")
    return {"assumptions": {k: {"value": v, "source": s} for k, (v, s) in PAPER.items()},
            "frames": {k: int(v) for k, v in frames.items()}, "disk": disk, "data_stages": data,
            "gpu_training": gpu_step,
            "gpu_hours_total": round(sum(v["gpu_hours"] for v in gpu_step.values()), 1),
            "cpu_step_at_paper_batch": cpu12,
            "loader": loader, "planning": planning, "advice": advice}


def render_md(result: dict) -> str:
    m, pl = result["dry_run"], result["plan"]
    job_s = sum(j["wall_s"] for j in m["jobs"])
    lines = ["# Paper-size dry run and capacity plan", "",
             f"`benchmarks/bench_scale.py {result['args']}` at commit {result['commit']}: the whole DAG "
             f"at the paper profile's sizes on real-video trees in the datasets' layouts, {len(m['jobs'])} "
             f"jobs, {job_s:.0f} s of job time in all, on this machine ({result['machine']['cpus']} CPUs; "
             f"load average {result['load_average']} when it ended: CPU seconds below are upper bounds "
             f"where the machine was shared).", "",
             "## Measured: training runs (CPU, batch "
             f"{result['batch']}, {result['iterations']} step each)", "",
             "| run | parameters | training loop s (its steps + one validation) | job peak RSS MB | FLOPs/window |",
             "|:--|--:|--:|--:|--:|"]
    for run, t in m["measured"]["training"].items():
        flops = result["probe"]["flops_per_window"].get(run, 0)
        lines.append(f"| {run} | {t['parameters']:,} | {t['loop_s']} | {t['peak_rss_mb']:.0f} | {flops / 1e9:.0f} G |")
    cpu12 = result["plan"]["cpu_step_at_paper_batch"]
    if cpu12:
        lines += ["", "## Projected: one CPU training step at the paper's batch of 12", "",
                  "From the step probe's two batches (one step each, a fresh process, fp32), linear in the "
                  "batch: memory grows by the activations of one window.", "",
                  "| run | s/step | peak GiB | MB per window |", "|:--|--:|--:|--:|"]
        lines += [f"| {r} | {c['s_per_step']} | {c['peak_rss_gib']} | {c['activation_mb_per_window']:.0f} |"
                  for r, c in cpu12.items()]
    lines += ["", "## Measured: data stages and storage", "", "| stage | jobs | frames | CPU s/frame | peak RSS MB |",
              "|:--|--:|--:|--:|--:|"]
    for stage, d in m["measured"]["data_stages"].items():
        lines.append(f"| {stage} | {d['jobs']} | {d['frames']} | {d['cpu_s_per_frame']} | {d['peak_rss_mb']:.0f} |")
    lines += ["", "| stored per frame | bytes |", "|:--|--:|"]
    lines += [f"| {k} | {v:,} |" for k, v in m["measured"]["hdf5_bytes_per_frame"].items()]
    lines += ["", "## Projected: the paper's run", "", "| disk | GiB |", "|:--|--:|"]
    lines += [f"| {k} | {v} |" for k, v in pl["disk"].items()]
    lines += ["", "| data stage | CPU-hours | Snakemake jobs | hours on 64 cores |", "|:--|--:|--:|--:|"]
    lines += [f"| {s} | {d['cpu_hours']} | {d['snakemake_jobs']} | {d['hours_on_64_cores']} |" for s, d in pl["data_stages"].items()]
    lines += ["", "| run | GPU step s (estimate) | windows/s | GPU-hours |", "|:--|--:|--:|--:|"]
    lines += [f"| {r} | {g['step_s_measured'] or g['step_s_estimate']}{'' if g['step_s_measured'] else ' (est.)'} | "
              f"{g['windows_per_s']} | {g['gpu_hours']} |" for r, g in pl["gpu_training"].items()]
    lo = pl["loader"]
    lines += ["", f"GPU-hours, every run: {pl['gpu_hours_total']}. Loader: {lo['windows_per_s_per_worker']} "
              f"windows/s per worker; the fastest network consumes {lo['fastest_network_consumes_windows_per_s']}: "
              f"{lo['workers_needed']} workers per GPU (the profile has {lo['workers_in_profile']}).", "",
              "## What to change", ""]
    lines += [f"- {a}" for a in pl["advice"]]
    lines += ["", "## Assumptions", ""]
    lines += [f"- {k}: {a['value']} ({a['source']})" for k, a in pl["assumptions"].items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "paper-dryrun")
    ap.add_argument("--frames", type=int, default=12, help="frames per video of the trees (default 12)")
    ap.add_argument("--videos", type=int, default=2, help="utterances per identity / 300VW videos (default 2)")
    ap.add_argument("--iterations", type=int, default=1, help="steps of every training run (default 1)")
    ap.add_argument("--batch", type=int, default=None, help="override the paper's batch of 12 (the test: 2)")
    ap.add_argument("--reduced", action="store_true", help="the test's version (writes nothing under reports/)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--out-name", default="scale")
    ap.add_argument("--step-probe", metavar="RUN", help=argparse.SUPPRESS)   # one run's step (internal)
    ap.add_argument("--flops", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--untimed", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.step_probe:
        print(json.dumps(step_probe(args.workdir, args.step_probe, args.batch or 1, args.flops,
                                    not args.untimed, args.threads)))
        return 0
    run = dry_run(args.workdir, args.frames, args.videos, args.iterations, args.batch, args.reduced, args.cores)
    probed = probe(args.workdir, run["params"], (1,) if args.reduced else (1, 2), timed=not args.reduced,
                   threads=args.cores)
    gpu_file = RESULTS / "gpu.json"
    gpu = json.loads(gpu_file.read_text()) if gpu_file.is_file() else None
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    result = {"args": " ".join(argv if argv is not None else sys.argv[1:]), "commit": commit,
              "load_average": [round(x, 2) for x in os.getloadavg()],
              "batch": run["params"]["train"]["batch_size"], "iterations": args.iterations,
              "dry_run": {"wall_s": run["wall_s"], "measured": run["measured"], "jobs": run["jobs"]},
              "probe": probed, "plan": plan(run["measured"], probed, gpu)}
    if args.reduced:
        with atomic_path(args.workdir / "scale.json") as tmp:
            tmp.write_text(json.dumps({**result, "machine": machine()}, indent=2) + "\n")
        return 0
    write_result(args.out_name, result)
    with atomic_path(RESULTS / f"{args.out_name}.md") as tmp:
        tmp.write_text(render_md({**result, "machine": machine()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
