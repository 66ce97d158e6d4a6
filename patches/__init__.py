"""Bidirectional attention patches (bootstrap version: generic mechanism only).

The full per-architecture registry replaces this file.
"""

from __future__ import annotations

from typing import Any


def _base(model):
    inner = model
    for attr in ("base_model", "model"):
        pass
    return inner


def enable_bidirectional(model, *, window: str = "full"):
    seen = set()
    for m in model.modules():
        cfg = getattr(m, "config", None)
        if cfg is not None and id(cfg) not in seen:
            seen.add(id(cfg))
            cfg.is_causal = False
        if hasattr(m, "is_causal"):
            m.is_causal = False
    return model


def prepare_config(path: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Extra ``from_pretrained`` kwargs some families need (MiniCPM maps onto Granite)."""
    return {}


def supported_architectures() -> list[str]:
    return ["llama"]
