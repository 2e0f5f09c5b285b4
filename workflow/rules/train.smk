# Training: stage one alone, then the two branches (independent: they run in parallel), then the
# combiner on the frozen "full" branches. One rule per network; the ablation variant is a wildcard.
# Each baseline (params.yaml: baselines) is trained from scratch by one rule, its name a wildcard.
TRAIN_DATA = ["data/sets", expand("data/h5/{clip}.h5", clip=CLIPS)]
GPU = 1 if PARAMS["train"]["device"] in ("auto", "cuda") else 0


def train_outputs(net):
    tag = {"predeblur": net, "baselines": "baselines_{name}"}.get(net, f"{net}_{{variant}}")
    run = {"predeblur": net, "baselines": "baselines/{name}"}.get(net, f"{net}/{{variant}}")
    summary = report(f"reports/train/{tag}.json", caption="../report/train.rst", category="Training")
    return [f"models/{run}/model.pt", summary, f"reports/train/{tag}.csv"]


rule train_predeblur:
    input:
        TRAIN_DATA,
    output:
        train_outputs("predeblur"),
    log:
        "logs/train/predeblur.log",
    resources:
        gpu=GPU,
    shell:
        FINENET.format(stage="train predeblur") + " 2> {log}"


rule train_enhance:
    input:
        TRAIN_DATA,
        "models/predeblur/model.pt",
    output:
        train_outputs("enhance"),
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
        "models/predeblur/model.pt",
    output:
        train_outputs("interp"),
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
        "models/predeblur/model.pt",
        "models/enhance/full/model.pt",
        "models/interp/full/model.pt",
    output:
        train_outputs("combine"),
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
    output:
        train_outputs("baselines"),
    wildcard_constraints:
        name="|".join(PARAMS["baselines"]),
    log:
        "logs/train/baselines_{name}.log",
    resources:
        gpu=GPU,
    shell:
        FINENET.format(stage="train {wildcards.name}") + " 2> {log}"
