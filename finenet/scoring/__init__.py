"""Scores shared by training, evaluation and the benchmarks: ``metrics`` (PSNR, SSIM) and
``temporal`` (the warping error of Lai et al.)."""
