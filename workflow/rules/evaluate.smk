# Evaluation of every trained method on every test set with ground truth.
MODELS = (["models/predeblur/model.pt"]
          + [f"models/{net}/{v}/model.pt" for net in ("enhance", "interp", "combine")
             for v in PARAMS["variants"][net]])


rule evaluate:
    input:
        TRAIN_DATA,
        MODELS,
    output:
        "reports/eval/frames.csv",
        "reports/eval/per_clip.csv",
        report("reports/metrics.json", caption="../report/metrics.rst", category="Evaluation"),
    log:
        "logs/evaluate.log",
    shell:
        FINENET.format(stage="evaluate") + " 2> {log}"
