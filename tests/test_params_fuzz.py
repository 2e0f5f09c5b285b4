"""Params fuzzing (issue 16): seeded type and value mutations of every key of ``params.yaml``.
Each mutated file either validates, or is refused with one line that names the file and a key;
never another exception, never a traceback. A mutation that validates is then checked to be
usable by what reads it first (the blur mix draws a degradation; the profile merges)."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import yaml

from finenet.errors import FineNetError
from finenet.params import ROOT, resolve

RAW = yaml.safe_load((ROOT / "params.yaml").read_text())
CASES = 1000


def leaves(node, prefix=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaves(v, (*prefix, k))
    else:
        yield prefix, node


def mutations(value, rng: random.Random):
    """Values a hand-edit or a `-S key=value` could put in place of ``value``."""
    out = [None, "", "abc", [], {}, True, -1, 0, 10 ** 9, 1.5, -0.5, float("nan"), [1, 2, 3], {"x": 1}]
    if isinstance(value, bool):
        out += ["yes", 1]
    elif isinstance(value, (int, float)):
        out += [str(value), value * -1, value * 1000, value + 0.5, [value]]
    elif isinstance(value, list) and value:
        out += [value[::-1], value[:1], value * 2, [str(v) for v in value], value[0]]
    elif isinstance(value, str):
        out += [value.upper(), value + "x", 3]
    return rng.choice(out)


def mutate(raw: dict, rng: random.Random):
    raw = copy.deepcopy(raw)
    paths = [p for p, _ in leaves(raw) if p[0] != "profiles"]
    path = rng.choice(paths)
    node = raw
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = mutations(node[path[-1]], rng)
    return raw, ".".join(map(str, path)), node[path[-1]]


@pytest.mark.parametrize("seed", range(4))
def test_mutated_params_validate_or_name_the_key(seed):
    rng = random.Random(seed)
    refused = 0
    for case in range(CASES // 4):
        raw, key, value = mutate(RAW, rng)
        try:
            params = resolve(raw, where="params.yaml")
        except FineNetError as exc:
            msg = str(exc)
            refused += 1
            assert "\n" not in msg and msg.startswith("params.yaml: "), (key, value, msg)
            named = msg.split(": ", 1)[1]
            assert any(part in named for part in (key, key.split(".")[-1], key.rsplit(".", 1)[0])) or \
                "profile" in named, (key, value, msg)
            continue
        except Exception as exc:                     # pragma: no cover - what the test is for
            pytest.fail(f"seed {seed} case {case} ({key} = {value!r}): {type(exc).__name__}: {exc}")
        usable(params, key)
    assert refused > CASES // 8                       # the mutations do reach the checks


def usable(params: dict, key: str) -> None:
    """A mutation that validated can be used by the code that reads it first."""
    from finenet.ops.degrade import sample_degradation

    if key.startswith("blur"):
        rng = np.random.default_rng(0)
        for _ in range(20):
            deg = sample_degradation(rng, params["blur"], scale=1.0)
            assert deg.sharp or deg.length > 0, key
