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


def build(name: str, **cfg):
    if name not in ARCHS:
        raise KeyError(f"unknown architecture '{name}' (known: {', '.join(sorted(ARCHS))})")
    return ARCHS[name](**cfg)
