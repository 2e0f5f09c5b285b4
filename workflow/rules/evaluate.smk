# Evaluation of every trained method on every test set, then the paper's tables and figures.
MODELS = (["models/predeblur/model.pt"]
          + [f"models/{net}/{v}/model.pt" for net in ("enhance", "interp", "combine")
             for v in PARAMS["variants"][net]]
          + [f"models/baselines/{name}/model.pt" for name in PARAMS["baselines"]])


rule evaluate:
    input:
        TRAIN_DATA,
        MODELS,
    output:
        "reports/eval/frames.csv",
        "reports/eval/per_clip.csv",
        "reports/eval/noref.csv",
        "reports/eval/samples.h5",
        report("reports/metrics.json", caption="../report/metrics.rst", category="Evaluation"),
    log:
        "logs/evaluate.log",
    shell:
        FINENET.format(stage="evaluate") + " 2> {log}"


rule report:
    input:
        "reports/eval/frames.csv",
        "reports/eval/noref.csv",
        "reports/eval/samples.h5",
    output:
        report(directory("reports/tables"), caption="../report/tables.rst", category="Tables",
               patterns=["{name}.md"]),
        report(directory("reports/figures/qualitative"), caption="../report/qualitative.rst",
               category="Figures", patterns=["{name}.png"]),
        "reports/report.md",
        "reports/eval/severity.csv",
        report("reports/pies.json", caption="../report/pies.rst", category="Figures"),
        report("reports/figures/fig10_pies.png", caption="../report/pies.rst", category="Figures"),
        report("reports/figures/psnr_vs_severity.png", caption="../report/severity.rst", category="Figures"),
    log:
        "logs/report.log",
    shell:
        FINENET.format(stage="report") + " 2> {log}"
