"""Stage ``params``: validate params.yaml and write the resolved parameters to build/params.yaml.

The first stage of the DVC pipeline. It loads ``params.yaml`` exactly as every stage does
(``finenet.params.load_params``: the selected profile merged, then validated against the schema)
and writes the result, ``profiles`` left out (already applied), atomically to
``build/params.yaml``. Every later DVC stage tracks only the keys of that file it reads
(``finenet/dag.py``), so a parameter edit re-runs only the stages that read it, and a typo fails
here, before any stage removes its outputs to re-run.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..atomic import atomic_path
from ..layout import BUILD_PARAMS

HEADER = ("# Written by `finenet params` (DVC stage `params`) from params.yaml, profile '{profile}'\n"
          "# merged and validated. Do not edit: edit params.yaml.\n")


def resolved(params: dict) -> dict:
    """The effective parameters as the stages see them, without the (merged) ``profiles``."""
    return {k: v for k, v in params.items() if k != "profiles"}


def write(params: dict, path=BUILD_PARAMS) -> Path:
    path = Path(path)
    body = yaml.safe_dump(resolved(params), sort_keys=False, default_flow_style=None, width=100)
    with atomic_path(path) as tmp:
        tmp.write_text(HEADER.format(profile=params["profile"]) + body)
    return path
