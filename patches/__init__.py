"""Bidirectional attention for decoder-only transformers (transformers 5.x), one patch per family.

Usage:
    >>> from llm2vec_lite.patches import enable_bidirectional, verify
    >>> model = enable_bidirectional(model)          # in place; *ForCausalLM, *Model or PeftModel
    >>> print(verify(model, tokenizer))              # proves it on this very model

The shared mechanism and the registry live in :mod:`llm2vec_lite.patches.base`; each family module
(``llama.py``, ``gemma3.py``...) holds only its differences and ends with ``register_patch(...)``.
``docs/patches.md`` explains the mechanism and lists families x backends.

References: LLM2Vec, BehnamGhader et al. 2024, arXiv:2404.05961 (bidirectional attention + MNTP).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from llm2vec_lite.patches import (  # noqa: F401  (importing a family registers it)
    gemma,
    gemma2,
    gemma3,
    gpt2,
    gpt_neo,
    granite,
    llama,
    minicpm,
    mistral,
    olmo2,
    phi,
    phi3,
    qwen2,
    qwen3,
    smollm3,
)
from llm2vec_lite.patches.base import (
    NO_WINDOW,
    WINDOWS,
    BidirectionalPatch,
    check_window,
    get_patch,
    register_patch,
    registered_patches,
    unwrap_model,
)
from llm2vec_lite.patches.verify import VerifyReport, verify

from llm2vec_lite.errors import PatchError

__all__ = [
    "NO_WINDOW",
    "WINDOWS",
    "BidirectionalPatch",
    "VerifyReport",
    "enable_bidirectional",
    "get_patch",
    "is_bidirectional",
    "mark_bidirectional",
    "prepare_config",
    "register_patch",
    "registered_patches",
    "supported_architectures",
    "verify",
]

logger = logging.getLogger(__name__)


def supported_architectures() -> list[str]:
    """The ``config.model_type`` names that have a patch, sorted."""
    return registered_patches()


def enable_bidirectional(model, *, window: str = "full"):
    """Make ``model`` attend bidirectionally, in place, and return it.

    Args:
        model: a transformers ``*ForCausalLM`` or base ``*Model``, or a peft wrapper of either.
        window: ``"full"`` removes sliding windows; ``"keep"`` keeps them, made symmetric
            (each family's choice is documented in its module and in docs/patches.md).

    Returns:
        The same ``model`` object.

    Raises:
        UnsupportedArchitectureError: If ``config.model_type`` has no patch (nothing is changed).
        ValueError: If ``window`` is not ``"full"`` or ``"keep"``.
        PatchError: If ``model`` contains no transformers model.
    """
    check_window(window)
    inner = unwrap_model(model)
    patch = get_patch(inner.config.model_type)
    patch.apply(inner, window=window)
    logger.debug("bidirectional patch %s applied (window=%s)", type(patch).__name__, window)
    return model


def _family(config):
    """The registered patch class for ``config.model_type``, or the default mechanism's class."""
    try:
        return type(get_patch(getattr(config, "model_type", None) or ""))
    except PatchError:
        return BidirectionalPatch


def is_bidirectional(model_or_config) -> bool:
    """Whether a model (or a config) attends both ways, as its family's patch reads it.

    The one place that answers this: most families say it with ``config.is_causal = False``,
    Gemma 3 with ``use_bidirectional_attention``; :class:`~llm2vec_lite.encoder.Encoder` and the
    saved folders ask here instead of reading either flag themselves.
    """
    config = getattr(model_or_config, "config", model_or_config)
    if not hasattr(config, "model_type") and hasattr(model_or_config, "get_base_model"):
        config = unwrap_model(model_or_config).config
    return _family(config).config_is_bidirectional(config)


def mark_bidirectional(config, bidirectional: bool) -> None:
    """Write ``bidirectional`` into ``config`` in the flag its family's plain reload reads."""
    _family(config).mark_config(config, bidirectional=bidirectional)


def _read_config_dict(path: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    folder = Path(path)
    if folder.is_dir():
        file = folder / "config.json"
        return json.loads(file.read_text()) if file.is_file() else None
    try:  # a hub id: only what is already cached or reachable; from_pretrained reports real errors
        from transformers import PretrainedConfig

        hub = {k: kwargs[k] for k in ("revision", "cache_dir", "token", "subfolder") if k in kwargs}
        config_dict, _ = PretrainedConfig.get_config_dict(path, **hub)
        return config_dict
    except Exception:  # noqa: BLE001
        return None


def prepare_config(path: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Extra ``from_pretrained`` kwargs the checkpoint's family needs (MiniCPM maps onto Granite).

    Args:
        path: the folder or hub id about to be loaded.
        kwargs: the ``from_pretrained`` kwargs so far (not modified).

    Returns:
        kwargs to add (often empty).
    """
    if kwargs.get("gguf_file"):
        return {}
    config_dict = _read_config_dict(str(path), kwargs)
    model_type = (config_dict or {}).get("model_type")
    if model_type not in registered_patches():
        return {}
    return get_patch(model_type).prepare_config(str(path), config_dict, kwargs)
