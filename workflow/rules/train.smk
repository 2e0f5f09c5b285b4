# Training: stage one alone, then the two branches (independent: they run in parallel), then the
# combiner on the frozen "full" branches. One rule per network; the ablation variant is a wildcard.
# Each baseline (params.yaml: baselines) is trained from scratch by one rule, its name a wildcard.
# Run names and paths: finenet/layout.py; parameters: finenet/dag.py (stage_params, common.smk).
TRAIN_DATA = [str(LAYOUT.sets), [str(LAYOUT.shard_file(clip)) for clip in CLIPS]]
GPU = 1 if PARAMS["train"]["device"] in ("auto", "cuda") else 0


def train_run(net):
    """(net, variant) of a rule's run, its variant or baseline name a wildcard."""
    return {"predeblur": (net,), "baselines": ("{name}",)}.get(net, (net, "{variant}"))


def model_pt(net, variant=None):
    return str(LAYOUT.model_path(net, variant))


def train_outputs(net):
    summary = report(str(LAYOUT.train_summary(*train_run(net))), caption="../report/train.rst",
                     category="Training")
    return [model_pt(*train_run(net)), summary, str(LAYOUT.train_curve(*train_run(net))),
            str(LAYOUT.train_curve(*train_run(net), suffix="_val"))]


rule train_predeblur:
    input:
        TRAIN_DATA,
    output:
        train_outputs("predeblur"),
    params:
        resolved=stage_params("train_predeblur"),
    log:
        "logs/train/predeblur.log",
    resources:
        gpu=GPU,
    shell:
        FINENET.format(stage="train predeblur") + " 2> {log}"


rule train_enhance:
    input:
        TRAIN_DATA,
        model_pt("predeblur"),
    output:
        train_outputs("enhance"),
    params:
        resolved=stage_params("train_enhance"),
    wildcard_constraints:
        variant="|".join(PARAMS["variants"]["enhance"]),
    log:
        "logs/train/enhance_{variant}.log",
    resources:
        gpu=GPU,
    shell:
        FINENET.format(stage="train enhance") + " --variant {wildcards.variant} 2> {log}"


rule train_interp:
    input:
        TRAIN_DATA,
        model_pt("predeblur"),
    output:
        train_outputs("interp"),
    params:
        resolved=stage_params("train_interp"),
    wildcard_constraints:
        variant="|".join(PARAMS["variants"]["interp"]),
    log:
        "logs/train/interp_{variant}.log",
    resources:
        gpu=GPU,
    shell:
        FINENET.format(stage="train interp") + " --variant {wildcards.variant} 2> {log}"


rule train_combine:
    input:
        TRAIN_DATA,
        model_pt("predeblur"),
        model_pt("enhance", "full"),
        model_pt("interp", "full"),
    output:
        train_outputs("combine"),
    params:
        resolved=stage_params("train_combine"),
    wildcard_constraints:
        variant="|".join(PARAMS["variants"]["combine"]),
    log:
        "logs/train/combine_{variant}.log",
    resources:
        gpu=GPU,
    shell:
        FINENET.format(stage="train combine") + " --variant {wildcards.variant} 2> {log}"


rule train_baseline:
    input:
        TRAIN_DATA,
        model_pt("predeblur"),   # EDVR's pre-deblur starts from stage one's
    output:
        train_outputs("baselines"),
    params:
        resolved=stage_params("train_baseline"),
    wildcard_constraints:
        name="|".join(PARAMS["baselines"]),
    log:
        "logs/train/baselines_{name}.log",
    resources:
        gpu=GPU,
    shell:
        FINENET.format(stage="train {wildcards.name}") + " 2> {log}"
