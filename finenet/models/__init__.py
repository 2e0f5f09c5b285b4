"""Networks, one file each, built by name from params (``build(name, **cfg)``)."""

from .registry import ARCHS, build, register  # noqa: F401
from . import combine, enhance, finenet, frontend, interp  # noqa: F401,E402  (register the archs)
from . import baselines  # noqa: F401,E402  (register the baselines the paper compares with)
