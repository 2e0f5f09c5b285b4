"""Architectures by name: ``@register("name")`` on an ``nn.Module``, ``build("name", **cfg)``."""

from __future__ import annotations

ARCHS: dict = {}


def register(name: str):
    def deco(cls):
        if name in ARCHS:
            raise KeyError(f"architecture '{name}' registered twice")
        ARCHS[name] = cls
        return cls
    return deco


def full_config(name: str, cfg: dict) -> dict:
    """``cfg`` with every constructor argument it leaves out at its default: what ``build(name,
    **cfg)`` builds. A checkpoint saved before an argument existed was built with its default."""
    import inspect

    defaults = {k: p.default for k, p in inspect.signature(ARCHS[name]).parameters.items()
                if p.default is not inspect.Parameter.empty}
    return {**defaults, **cfg}


def build(name: str, **cfg):
    if name not in ARCHS:
        raise KeyError(f"unknown architecture '{name}' (known: {', '.join(sorted(ARCHS))})")
    return ARCHS[name](**cfg)
