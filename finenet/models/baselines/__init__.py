"""Baselines the paper compares FineNet with, one network per file, registered by name on import
(``build(name, **cfg)``); each has ``task`` ("interp" or "deblur"), ``forward(frames, heatmaps)``
-> the sharp centre frame, and ``loss(batch)``."""

from . import dain, superslomo  # noqa: F401  (frame interpolation: register "dain", "superslomo")
from . import deblurgan, edvr, ren, srn, umsn  # noqa: F401,E402  (deblurring: "deblurgan", "edvr", "ren", "srn_deblur", "umsn")
