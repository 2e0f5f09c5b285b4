# Data stages: sample -> blur -> heatmaps per clip, then pack into one HDF5 per set. Per-clip jobs
# read the clip plan the Snakefile listed (PLAN_FILE) instead of listing the datasets again.
# Paths: finenet/layout.py; parameters: finenet/dag.py (stage_params, common.smk).


rule sample:
    input:
        str(LAYOUT.external),
    output:
        str(LAYOUT.clip_file("{clip}")),
    params:
        resolved=stage_params("sample"),
    log:
        "logs/sample/{clip}.log",
    shell:
        FINENET.format(stage="sample") + f" --clip {{wildcards.clip}} --plan {PLAN_FILE} 2> {{log}}"


rule blur:
    input:
        str(LAYOUT.clip_file("{clip}")),
    output:
        str(LAYOUT.blurred_file("{clip}")),
    params:
        resolved=stage_params("blur"),
    log:
        "logs/blur/{clip}.log",
    shell:
        FINENET.format(stage="blur") + f" --clip {{wildcards.clip}} --plan {PLAN_FILE} 2> {{log}}"


rule heatmaps:
    input:
        str(LAYOUT.clip_file("{clip}")),
        str(LAYOUT.blurred_file("{clip}")),
    output:
        str(LAYOUT.shard_file("{clip}")),
    params:
        resolved=stage_params("heatmaps"),
    resources:
        gpu=1 if PARAMS["landmarks"]["device"].startswith("cuda") else 0,
    log:
        "logs/heatmaps/{clip}.log",
    shell:
        FINENET.format(stage="heatmaps") + f" --clip {{wildcards.clip}} --plan {PLAN_FILE} 2> {{log}}"


rule pack:
    input:
        [str(LAYOUT.shard_file(clip)) for clip in CLIPS],
    output:
        directory(str(LAYOUT.sets)),
        report(str(LAYOUT.data_summary), caption="../report/data_summary.rst", category="Data"),
        report(str(LAYOUT.data_preview), caption="../report/data_preview.rst", category="Data"),
    params:
        resolved=stage_params("pack"),
    log:
        "logs/pack.log",
    shell:
        FINENET.format(stage="pack") + " 2> {log}"
