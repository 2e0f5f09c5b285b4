"""Faults the fault-injection suite (benchmarks/bench_faults.py) found in the stages, each one line:
a truncated or bit-flipped ``.npz`` clip file (zipfile's own errors), and a write that fails for
lack of space or on a read-only file system (an OSError outside any stage's own checks)."""

from __future__ import annotations

import errno

import numpy as np
import pytest

from finenet import cli
from finenet.data.store import load_npz, save_npz
from finenet.errors import FineNetError
from finenet.params import ROOT


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.npz"
    rng = np.random.default_rng(0)
    save_npz(path, {"kind": "test"}, frames=rng.integers(0, 255, (4, 16, 16, 3), dtype=np.uint8))
    return path


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_clip_file_is_one_line_naming_it(clip, damage):
    data = bytearray(clip.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 3] ^= 0x08                      # inside the compressed frames
    clip.write_bytes(bytes(data))
    with pytest.raises(FineNetError) as info:
        load_npz(clip)
    msg = str(info.value)
    assert msg.startswith(f"{clip}: unreadable clip file (") and "\n" not in msg
    assert msg.endswith("delete it and re-run the stage that makes it")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_failed_write_is_one_line(code, monkeypatch, capsys, tmp_path):
    def fail(params, *args, **kwargs):
        raise OSError(code, __import__("os").strerror(code), str(tmp_path / ".params.yaml.x.tmp.yaml"))

    monkeypatch.setattr("finenet.stages.params.write", fail)
    assert cli.main(["params", "--params", str(ROOT / "params.yaml"), "--out", str(tmp_path / "p.yaml")]) == 2
    err = capsys.readouterr().err
    assert err == f"finenet: {tmp_path / '.params.yaml.x.tmp.yaml'}: {__import__('os').strerror(code)}\n"


def test_a_write_that_runs_out_of_room_names_its_output(tmp_path):
    """A real failed write (a file-size limit, as a full disk fails a ``write``: an OSError with no
    file name) through ``atomic_path`` is one line naming the output, and leaves no file behind."""
    import subprocess
    import sys

    target = tmp_path / "data" / "blurred" / "clip.npz"
    code = f"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
from finenet import cli
from finenet.atomic import atomic_path
def run(params, clip=None, plan=None):
    with atomic_path({str(target)!r}) as tmp, open(tmp, "wb") as fh:
        fh.write(bytes(1 << 16))
import finenet.stages.blur
finenet.stages.blur.run = run
sys.exit(cli.main(["blur", "--params", {str(ROOT / 'params.yaml')!r}]))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr == f"finenet: {target}: File too large\n"
    assert list(target.parent.iterdir()) == []


@pytest.fixture
def shard(tmp_path, monkeypatch):
    """``make(frames)``: a one-clip shard ``c0`` in ``tmp_path`` (the working folder) with the fields
    ``pack`` reads (status, kernel), open for writing more: ``with make(8) as group: ...``;
    returns (its ClipSpec, its path) as ``make.spec``, ``make.path``."""
    import contextlib

    import h5py

    from finenet.data.clips import ClipSpec
    from finenet.data.store import shard_path

    monkeypatch.chdir(tmp_path)

    @contextlib.contextmanager
    def make(frames: int):
        make.path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(make.path, "w") as f:
            g = f.create_group("c0")
            g.create_dataset("status", data=np.zeros(frames, np.uint8))
            g.create_dataset("kernel", data=np.full((frames, 3), 5.0), chunks=(8, 3), compression="gzip")
            yield g

    make.spec = ClipSpec(clip_id="c0", set="train", dataset="embedded", source="x")
    make.path = shard_path("c0")
    return make


def refused_naming(spec, path) -> str:
    from finenet.stages import pack

    with pytest.raises(FineNetError) as info:
        pack.shard_row(spec)
    msg = str(info.value)
    assert msg.startswith(f"{path}: unreadable HDF5 shard (") and "\n" not in msg
    return msg


def test_a_truncated_shard_is_one_line_naming_it_when_packed(shard):
    from finenet.stages import pack

    with shard(64) as g:
        g.create_dataset("blurry", data=np.random.default_rng(0).integers(0, 255, (64, 32, 32, 3), np.uint8),
                         chunks=(1, 32, 32, 3), compression="gzip")
    assert pack.shard_row(shard.spec)["frames"] == 64
    data = shard.path.read_bytes()
    shard.path.write_bytes(data[: len(data) // 2])
    refused_naming(shard.spec, shard.path)

def test_a_flipped_bit_in_a_shards_pixels_is_one_line_naming_it_when_packed(shard):
    """pack reads every dataset through: a bit flipped inside a compressed frame (which the
    manifest's own fields never touch) fails at packing time, naming the shard."""
    import h5py

    from finenet.stages import pack

    pixels = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), np.uint8)
    with shard(8) as g:
        g.create_dataset("blurry", data=pixels, chunks=(1, 32, 32, 3), compression="gzip")
        offset, size = g["blurry"].id.get_chunk_info(5).byte_offset, g["blurry"].id.get_chunk_info(5).size
    assert pack.shard_row(shard.spec)["frames"] == 8
    data = bytearray(shard.path.read_bytes())
    data[offset + size // 2] ^= 0x10
    shard.path.write_bytes(bytes(data))
    with h5py.File(shard.path, "r") as f:           # what pack read before: still fine
        assert len(f["c0/status"][:]) == 8 and f["c0/kernel"][:].shape == (8, 3)
    refused_naming(shard.spec, shard.path)


def test_a_shard_whose_chunk_index_misses_a_chunk_is_refused_when_packed(shard):
    """A chunk the index does not list reads back as zeros without an error (what a flipped bit
    in a chunk's coordinates in the index does, found by the fault suite): pack refuses it."""
    import h5py

    with shard(8) as g:
        lm = g.create_dataset("landmarks", shape=(8, 68, 2), dtype=np.float32, chunks=(1, 68, 2),
                              compression="gzip")
        for t in (0, 1, 3, 4, 5, 6, 7):                      # frame 2's chunk never written
            lm[t] = np.full((68, 2), 18.0, np.float32)
    with h5py.File(shard.path, "r") as f:
        assert (f["c0/landmarks"][2] == 0).all()            # read back silently as zeros
    msg = refused_naming(shard.spec, shard.path)
    assert "dataset /c0/landmarks: its chunk index" in msg and "1 of 8 chunks missing" in msg


def test_a_folder_output_written_after_a_killed_write_leaves_no_temp_folder(tmp_path):
    """The fault suite's case (a SIGKILL of the engine while `pack` wrote `data/sets/`): the killed
    write's hidden temporary folder was still there after the re-run. The next successful write of
    the folder now removes it, as a file output's next write removes a stale temporary file."""
    from finenet.atomic import atomic_dir

    target = tmp_path / "sets"
    killed = tmp_path / ".sets.u_2v6x06.tmp"          # as the killed `pack` left it
    (killed / "train.h5").parent.mkdir()
    (killed / "train.h5").write_bytes(b"half")
    other = tmp_path / ".setsX.abc.tmp"                # another output's: not touched
    other.mkdir()
    with atomic_dir(target) as tmp:
        (tmp / "train.h5").write_bytes(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".setsX.abc.tmp", "sets"]
    assert (target / "train.h5").read_bytes() == b"whole"
    with pytest.raises(RuntimeError):                  # a failed write keeps the folder as it was
        with atomic_dir(target) as tmp:
            (tmp / "train.h5").write_bytes(b"other")
            raise RuntimeError("killed")
    assert (target / "train.h5").read_bytes() == b"whole" and len(list(tmp_path.iterdir())) == 2
