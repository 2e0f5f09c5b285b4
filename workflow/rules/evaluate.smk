# Evaluation of every trained method on every test set, then the paper's tables and figures.
# Paths: finenet/layout.py; parameters: finenet/dag.py (stage_params, common.smk).
MODELS = ([model_pt("predeblur")]
          + [model_pt(net, v) for net in ("enhance", "interp", "combine") for v in PARAMS["variants"][net]]
          + [model_pt(name) for name in PARAMS["baselines"]])


rule evaluate:
    input:
        TRAIN_DATA,
        MODELS,
    output:
        str(LAYOUT.eval_frames),
        str(LAYOUT.eval_per_clip),
        str(LAYOUT.eval_noref),
        str(LAYOUT.eval_samples),
        str(LAYOUT.eval_temporal),
        str(LAYOUT.eval_clips),
        report(str(LAYOUT.metrics), caption="../report/metrics.rst", category="Evaluation"),
    params:
        resolved=stage_params("evaluate"),
    log:
        "logs/evaluate.log",
    shell:
        FINENET.format(stage="evaluate") + " 2> {log}"


VAL_CURVES = [str(LAYOUT.train_curve(net, v, suffix="_val"))
              for net, v in training_runs(PARAMS["variants"], PARAMS["baselines"])]


rule report:
    input:
        str(LAYOUT.eval_frames),
        str(LAYOUT.eval_noref),
        str(LAYOUT.eval_samples),
        str(LAYOUT.eval_temporal),
        str(LAYOUT.eval_clips),
        VAL_CURVES,
    output:
        report(directory(str(LAYOUT.tables)), caption="../report/tables.rst", category="Tables",
               patterns=["{name}.md"]),
        report(directory(str(LAYOUT.qualitative)), caption="../report/qualitative.rst",
               category="Figures", patterns=["{name}.png"]),
        report(directory(str(LAYOUT.motion_clips)), caption="../report/motion.rst",
               category="Figures", patterns=["{name}.mp4"]),
        str(LAYOUT.report_index),
        str(LAYOUT.severity),
        report(str(LAYOUT.pies), caption="../report/pies.rst", category="Figures"),
        report(str(LAYOUT.pies_figure), caption="../report/pies.rst", category="Figures"),
        report(str(LAYOUT.severity_figure), caption="../report/severity.rst", category="Figures"),
        report(str(LAYOUT.curves_figure), caption="../report/curves.rst", category="Training"),
    params:
        resolved=stage_params("report"),
    log:
        "logs/report.log",
    shell:
        FINENET.format(stage="report") + " 2> {log}"
