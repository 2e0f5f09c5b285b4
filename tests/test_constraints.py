"""constraints.txt pins every package this project declares, so `make setup` installs what was
tested: a new release upstream (PyAV 18.1.1 changed ``frame.side_data``) cannot change CI."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def pins(text: str) -> dict[str, str]:
    """{normalised name: version} of the ``name==version`` lines of a constraints file."""
    found = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"constraints.txt: {line!r} is not name==version"
            found[_name(name)] = version
    return found


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        names |= {_name(r) for r in extra}
    reqs = (ROOT / "requirements.txt").read_text().splitlines()
    return names | {_name(r) for r in reqs if r.strip() and not r.startswith("#")}


def test_every_declared_package_is_pinned():
    pinned = pins((ROOT / "constraints.txt").read_text())
    assert declared() - set(pinned) == set()


def test_an_unpinned_package_is_found():
    pinned = pins("torch==2.14.1\n# a comment\nav==18.1.1\n")
    assert {"torch", "av", "h5py"} - set(pinned) == {"h5py"}


def test_the_makefile_installs_under_the_constraints():
    make = (ROOT / "Makefile").read_text()
    installs = [line for line in make.splitlines() if "pip install" in line]
    assert installs and all("-c constraints.txt" in line for line in installs)
