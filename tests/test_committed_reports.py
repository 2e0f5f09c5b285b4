"""The reports committed to git are the ones the committed locks record: every output that a
pipeline keeps out of DVC's cache (``cache: false``, so git holds it) exists and has the md5 of its
lock. A commit taken while ``dvc repro`` was rewriting outputs once dropped two training curves."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = ["dvc.yaml", "bench/dvc.yaml"]


def uncached_outputs(dvc_yaml: dict) -> list[re.Pattern]:
    """Patterns of the output paths (outs, metrics, plots) a dvc.yaml declares with ``cache:
    false``, relative to their stage's working folder as its lock records them; a ``foreach``
    stage's ``${...}`` matches one path component."""
    found = []
    for stage in dvc_yaml["stages"].values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get("do", stage).get(kind, []):
                if isinstance(entry, dict):
                    (path, opts), = entry.items()
                    if opts and opts.get("cache") is False:
                        parts = re.split(r"\$\{[^}]*\}", path)
                        found.append(re.compile("[^/]+".join(map(re.escape, parts))))
    return found


def lock_outputs(lock: dict) -> dict[str, str]:
    """{path: md5} of the outputs a dvc.lock records (a folder's md5 ends in ``.dir``)."""
    return {o["path"]: o["md5"] for stage in lock["stages"].values() for o in stage.get("outs", [])}


def md5_of(path: Path) -> str:
    """DVC 3's md5 of a file (its bytes) or of a folder (the md5 of its sorted listing of
    ``{"md5", "relpath"}`` entries, as JSON, followed by ``.dir``)."""
    if path.is_file():
        return hashlib.md5(path.read_bytes()).hexdigest()
    listing = sorted(({"md5": md5_of(f), "relpath": f.relative_to(path).as_posix()}
                      for f in path.rglob("*") if f.is_file()), key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(listing, sort_keys=True).encode()).hexdigest() + ".dir"


def uncached(patterns: list[re.Pattern], recorded: dict[str, str]) -> list[str]:
    return sorted(p for p in recorded if any(pattern.fullmatch(p) for pattern in patterns))


def mismatches(folder: Path, paths: list[str], recorded: dict[str, str]) -> list[str]:
    problems = []
    for path in paths:
        target = folder / path
        if not target.exists():
            problems.append(f"{path}: missing")
        elif md5_of(target) != recorded[path]:
            problems.append(f"{path}: differs from its lock")
    return problems


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_committed_reports_match_their_lock(pipeline):
    spec = yaml.safe_load((ROOT / pipeline).read_text())
    folder = (ROOT / pipeline).parent
    wdirs = {stage.get("wdir", ".") for stage in spec["stages"].values()}
    assert len(wdirs) == 1, f"{pipeline}: stages in several working folders"
    recorded = lock_outputs(yaml.safe_load((folder / "dvc.lock").read_text()))
    paths = uncached(uncached_outputs(spec), recorded)
    assert paths, f"{pipeline}: no uncached output in its lock"
    assert mismatches((folder / wdirs.pop()).resolve(), paths, recorded) == []


def test_a_dropped_or_changed_report_is_found(tmp_path):
    (tmp_path / "a.csv").write_text("x\n")
    (tmp_path / "b.csv").write_text("y\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "e.csv").write_text("x\n")
    recorded = {"a.csv": hashlib.md5(b"x\n").hexdigest(), "b.csv": hashlib.md5(b"z\n").hexdigest(),
                "c.csv": hashlib.md5(b"").hexdigest(), "d": md5_of(tmp_path / "d")}
    patterns = uncached_outputs({"stages": {"s": {"foreach": ["a", "b", "c"], "do": {"outs": [
        {"${item}.csv": {"cache": False}}, "d"]}}, "t": {"outs": [{"d": {"cache": False}}]}}})
    paths = uncached(patterns, recorded)
    assert paths == ["a.csv", "b.csv", "c.csv", "d"]
    assert mismatches(tmp_path, paths, recorded) == ["b.csv: differs from its lock", "c.csv: missing"]
    (tmp_path / "d" / "f.csv").write_text("x\n")
    assert mismatches(tmp_path, ["d"], recorded) == ["d: differs from its lock"]
