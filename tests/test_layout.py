"""The README's layout section matches the package tree: every folder of ``finenet/`` is named, and
every module of the folders it describes module by module (the top level, the stages, the tiers,
the deblur application, reporting, scoring, video I/O)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "finenet"
BY_MODULE = ("", "stages", "tiers", "deblur", "reporting", "scoring", "video")


def layout_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Layout\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def named(section: str) -> set[str]:
    """Every backticked name, and each part of a backticked path (``video/stream``)."""
    names = set()
    for token in re.findall(r"`([^`]+)`", section):
        names.update(p for p in re.split(r"[/.{},\s]+", token) if p)
    return names


def unnamed(section: str) -> list[str]:
    """The package's folders and by-module folders' modules that ``section`` does not name."""
    names = named(section)
    folders = sorted(p for p in PACKAGE.rglob("*") if p.is_dir() and "__pycache__" not in p.parts
                     and (p / "__init__.py").is_file())
    missing = [f.relative_to(PACKAGE).as_posix() for f in folders if f.name not in names]
    for folder in BY_MODULE:
        for module in sorted((PACKAGE / folder).glob("*.py")):
            if module.stem not in ("__init__", "__main__") and module.stem not in names:
                missing.append(module.relative_to(PACKAGE).as_posix())
    return missing


def test_every_folder_and_module_is_named():
    missing = unnamed(layout_section())
    assert not missing, f"README's layout section does not name: {missing}"


def test_a_module_left_out_is_found():
    section = layout_section()
    assert "`clip_loop`" in section and "`scoring/`" in section
    assert unnamed(section.replace("`clip_loop`", "the loop")) == ["stages/clip_loop.py"]
    assert unnamed(section.replace("`scoring/`", "scores")) == ["scoring"]
