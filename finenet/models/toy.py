"""Small random-initialised FineNet checkpoint folders, for the tests and benchmarks that exercise
``finenet deblur`` end to end without training (its decoding, tracking, paste-back and encoding
do not depend on what the networks learnt)."""

from __future__ import annotations

import copy
from pathlib import Path

# small widths and depths, and 64-pixel crops: a few milliseconds per window on a CPU
TOY_MODEL = dict(feat=8, groups=2, extract_blocks=1, recon_blocks=1, heatmap_ch=4, max_offset=4.0,
                 combine_feat=4, combine_blocks=1)
TOY_CROP, TOY_HEATMAP = 64, 32
TOY_OFFSET = 0.15        # the combiner's correction starts at this offset: the face visibly changes


def write_toy_finenet(root, raw_params: dict) -> dict:
    """``raw_params`` (a params.yaml as loaded) with ``TOY_MODEL`` networks and ``TOY_CROP``-pixel
    crops, resolved for the embedded profile, and a models folder ``root/models`` of
    random-initialised networks of that configuration (seeded: the same files every time).
    Returns the resolved parameters."""
    import torch

    from ..checkpoint import save_model
    from ..layout import model_file
    from ..params import resolve
    from ..tiers.release import FINENET_RUNS
    from . import build
    from .config import net_config

    raw = copy.deepcopy(raw_params)
    raw["model"].update(TOY_MODEL)
    raw["data"]["crop_size"], raw["landmarks"]["heatmap_size"] = TOY_CROP, TOY_HEATMAP
    params = resolve(raw, "embedded")
    torch.manual_seed(0)
    for net, variant in FINENET_RUNS:
        arch, config = net_config(params, net, variant)
        model = build(arch, **config)
        if net == "combine":
            with torch.no_grad():
                model.tail.bias[1:] = TOY_OFFSET
        save_model(model_file(Path(root) / "models", net, variant), arch, config, model)
    return params
