"""The pipeline's stages, one module each, as ``dvc.yaml`` and the Snakemake rules run them
(``finenet <stage>``): ``params``, ``sample``, ``blur``, ``heatmaps``, ``pack``, ``train``,
``evaluate``, ``report``; ``clip_loop`` is the per-clip loop the data stages share."""
