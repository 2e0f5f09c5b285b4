# Data stages: sample -> blur -> heatmaps per clip, then pack into one HDF5 per set.


rule sample:
    input:
        "data/external",
    output:
        "data/clips/{clip}.npz",
    log:
        "logs/sample/{clip}.log",
    shell:
        FINENET.format(stage="sample") + " --clip {wildcards.clip} 2> {log}"


rule blur:
    input:
        "data/clips/{clip}.npz",
    output:
        "data/blurred/{clip}.npz",
    log:
        "logs/blur/{clip}.log",
    shell:
        FINENET.format(stage="blur") + " --clip {wildcards.clip} 2> {log}"


rule heatmaps:
    input:
        "data/clips/{clip}.npz",
        "data/blurred/{clip}.npz",
    output:
        "data/h5/{clip}.h5",
    resources:
        gpu=1 if PARAMS["landmarks"]["device"].startswith("cuda") else 0,
    log:
        "logs/heatmaps/{clip}.log",
    shell:
        FINENET.format(stage="heatmaps") + " --clip {wildcards.clip} 2> {log}"


rule pack:
    input:
        expand("data/h5/{clip}.h5", clip=CLIPS),
    output:
        directory("data/sets"),
        report("reports/data_summary.json", caption="../report/data_summary.rst", category="Data"),
        report("reports/figures/data_preview.png", caption="../report/data_preview.rst", category="Data"),
    log:
        "logs/pack.log",
    shell:
        FINENET.format(stage="pack") + " 2> {log}"
