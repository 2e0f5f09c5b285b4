"""Each network's constructor config, from the parameters: the one place that maps ``params.yaml``
(``model``, ``variants``, ``baselines``, ``loader.num_frames``) to the arguments of the networks in
``finenet.models`` (built by name: ``finenet.models.build(arch, **config)``). Training, evaluation,
``finenet deblur`` and the benchmarks all ask here."""

from __future__ import annotations

from ..errors import FineNetError
from ..layout import NETS


def net_config(params: dict, net: str, variant: str | None) -> tuple[str, dict]:
    """(architecture name, its constructor config) for a network and variant."""
    if net not in NETS:
        if net not in params["baselines"]:
            raise FineNetError("finenet train", f"unknown network '{net}' ({', '.join(NETS)} or a "
                                                f"baseline: {', '.join(params['baselines'])})")
        config = {k: v for k, v in params["baselines"][net].items() if k not in TRAINING_OPTIONS}
        if net == "edvr":   # a fair protocol, by construction: FineNet's widths, depth, stride, offsets
            m = params["model"]
            config = dict(feat=m["feat"], num_frames=params["loader"]["num_frames"], groups=m["groups"],
                          levels=m["levels"], extract_blocks=m["extract_blocks"], recon_blocks=m["recon_blocks"],
                          input_stride=m["input_stride"], max_offset=m["max_offset"], **config)
        return net, config
    m = params["model"]
    if net != "predeblur":
        variants = params["variants"][net]
        if variant not in variants:
            raise FineNetError("--variant", f"'{variant}' is not a {net} variant ({', '.join(variants)})")
        m = {**m, **variants[variant]}
    common = dict(feat=m["feat"], input_stride=m["input_stride"])
    if net == "predeblur":
        return "predeblur", dict(common, levels=m["levels"], extract_blocks=m["extract_blocks"])
    branch = dict(common, num_frames=params["loader"]["num_frames"], groups=m["groups"], levels=m["levels"],
                  max_offset=m["max_offset"], foc=m["foc"], landmarks=m["landmarks"],
                  heatmap_ch=m["heatmap_ch"], heatmap_level=m["heatmap_level"], recon_blocks=m["recon_blocks"])
    if net == "enhance":
        return "enhance", branch
    if net == "interp":
        return "interp", dict(branch, interp_frames=m["interp_frames"])
    if m["fusion"] == "late":
        return "combine_late", dict(feat=m["combine_feat"], blocks=m["combine_blocks"],
                                    num_frames=params["loader"]["num_frames"],
                                    blend_gain=m["blend_gain"], keep_gain=m["keep_gain"],
                                    predeblur=m["combine_predeblur"])
    return "combine_early", dict(branch_feat=m["feat"], feat=m["combine_feat"], blocks=m["combine_blocks"],
                                 num_frames=params["loader"]["num_frames"], input_stride=m["input_stride"])


def learning_rate(params: dict, net: str) -> float:
    """Adam's learning rate for a network: ``train.lr.<net>``; for a baseline its own
    ``baselines.<name>.lr``, else ``train.lr.baseline``."""
    rates = params["train"]["lr"]
    if net in NETS:
        return float(rates[net])
    return float(params["baselines"][net].get("lr", rates["baseline"]))


# keys of a baseline's params that configure its training, not its constructor
TRAINING_OPTIONS = ("pretrained_predeblur", "lr")
