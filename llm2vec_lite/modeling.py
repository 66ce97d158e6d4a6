"""Load a base decoder (hub id, local folder, or GGUF file) and make it bidirectional.

This is the one place that turns "a model name a user typed" into ``(model, tokenizer)``:
GGUF handling, dtype and attention backend choice, and applying the bidirectional patch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import torch

from llm2vec_lite.errors import UsageError
from llm2vec_lite.paths import PACKAGE_PREFIX, resolve_model_path  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)

Head = Literal["base", "causal_lm"]

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
DTYPE_NAMES = tuple(_DTYPES)  # what --dtype and the recipe accept, besides "auto"


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | str | None:
    """Map a recipe/CLI dtype name to a ``torch.dtype`` (``"auto"`` and ``None`` pass through).

    Raises:
        UsageError: If the name is unknown (a ``ValueError``).
    """
    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    try:
        return _DTYPES[dtype]
    except (KeyError, TypeError):
        raise UsageError(f"Unknown dtype {dtype!r}. Valid: auto, {', '.join(_DTYPES)}.") from None


def resolve_gguf(path_or_id: str | Path, gguf_file: str | None = None) -> tuple[str, str | None]:
    """Split a path to a ``.gguf`` file into (folder, file name), as transformers expects."""
    path = resolve_model_path(path_or_id)
    if gguf_file is None and path.endswith(".gguf"):
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"GGUF file not found: {path}")
        return str(p.parent), p.name
    return path, gguf_file


def load_tokenizer(path_or_id: str | Path, *, gguf_file: str | None = None, **hf_kwargs: Any):
    """Load the tokenizer and make sure it can pad."""
    from transformers import AutoTokenizer

    path, gguf_file = resolve_gguf(path_or_id, gguf_file)
    kwargs = dict(hf_kwargs)
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    tok = AutoTokenizer.from_pretrained(path, **kwargs)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    return tok


def load_model(
    path_or_id: str | Path,
    *,
    head: Head = "base",
    dtype: str | torch.dtype | None = None,
    attn_implementation: str | None = None,
    gguf_file: str | None = None,
    device: str | torch.device | None = None,
    bidirectional: bool = True,
    window: str = "full",
    **hf_kwargs: Any,
):
    """Load a decoder and its tokenizer, bidirectional unless ``bidirectional=False``.

    Args:
        path_or_id: hub id, local folder, or a path ending in ``.gguf``.
        head: ``"base"`` for the bare transformer (encoding, contrastive stages) or
            ``"causal_lm"`` for the LM head too (MNTP).
        dtype: weight dtype (``"float32"``, ``"bfloat16"``, ``"auto"``...). ``None`` keeps float32,
            which with bf16 autocast is the fast and safe choice on CPUs.
        attn_implementation: ``eager``, ``sdpa``, ``flex_attention`` or ``flash_attention_2``.
        gguf_file: GGUF file name inside ``path_or_id`` (dequantized on load).
        device: where to put the model.
        bidirectional: apply the bidirectional patch (the point of this library).
        window: ``"full"`` or ``"keep"`` for sliding-window families (see docs/patches.md).
        **hf_kwargs: passed to ``from_pretrained`` (``trust_remote_code``, ``revision``...).

    Returns:
        ``(model, tokenizer)``.

    Raises:
        UnsupportedArchitectureError: If ``bidirectional`` and the architecture has no patch.
    """
    from transformers import AutoModel, AutoModelForCausalLM

    from llm2vec_lite.patches import enable_bidirectional, prepare_config

    path, gguf_file = resolve_gguf(path_or_id, gguf_file)
    tokenizer = load_tokenizer(path, gguf_file=gguf_file, **{
        k: v for k, v in hf_kwargs.items() if k in ("revision", "trust_remote_code", "token", "cache_dir")
    })
    kwargs = dict(hf_kwargs)
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    torch_dtype = resolve_dtype(dtype)
    if torch_dtype is not None:
        kwargs["dtype"] = torch_dtype
    config_kwargs = prepare_config(path, kwargs)
    kwargs.update(config_kwargs)
    cls = AutoModelForCausalLM if head == "causal_lm" else AutoModel
    model = cls.from_pretrained(path, **kwargs)
    if gguf_file:
        # GGUF weights are dequantized on load; transformers still flags the model as quantized,
        # which blocks .to(dtype), merging LoRA and saving. The weights are plain tensors now.
        _forget_gguf_quantization(model)
        if torch_dtype is None:
            model.to(torch.float32)
    if bidirectional:
        enable_bidirectional(model, window=window)
    if device is not None:
        model = model.to(device)
    return model, tokenizer


def _forget_gguf_quantization(model) -> None:
    """Clear the 'quantized' flags transformers leaves on a model loaded from (dequantized) GGUF."""
    for attr in ("hf_quantizer", "quantization_method"):
        if getattr(model, attr, None) is not None:
            setattr(model, attr, None)
    if getattr(model, "is_quantized", False):
        model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
