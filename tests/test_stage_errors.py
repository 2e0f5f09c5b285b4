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

    monkeypatch.setattr("finenet.resolved.write", fail)
    assert cli.main(["params", "--params", str(ROOT / "params.yaml"), "--out", str(tmp_path / "p.yaml")]) == 2
    err = capsys.readouterr().err
    assert err == f"finenet: {tmp_path / '.params.yaml.x.tmp.yaml'}: {__import__('os').strerror(code)}\n"
