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
    num_layers: int | None = None,
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
        num_layers: keep only the first N transformer blocks (:func:`keep_first_layers`; a
            recipe's ``num_layers``). ``None`` keeps them all.
        **hf_kwargs: passed to ``from_pretrained`` (``trust_remote_code``, ``revision``...).

    Returns:
        ``(model, tokenizer)``.

    Raises:
        UnsupportedArchitectureError: If ``bidirectional`` and the architecture has no patch.
        UsageError: If ``num_layers`` is not between 1 and the model's number of blocks.
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
    if num_layers is not None:
        keep_first_layers(model, num_layers)
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


def decoder_layers(model) -> tuple[Any, str]:
    """The module holding the transformer blocks of ``model`` and the name of its ModuleList.

    Llama-style families keep them in ``<base>.layers``, GPT-2 / GPT-Neo in ``<base>.h``.

    Raises:
        UsageError: If no such list is found.
    """
    from llm2vec_lite.errors import UsageError

    base = getattr(model, "base_model", model)
    for holder in (base, getattr(base, "model", None), getattr(base, "language_model", None)):
        for name in ("layers", "h"):
            if holder is not None and isinstance(getattr(holder, name, None), torch.nn.ModuleList):
                return holder, name
    raise UsageError(f"cannot find the transformer blocks of {type(model).__name__} (no .layers or .h list)")


def keep_first_layers(model, n: int):
    """Drop every transformer block after the first ``n`` (in place) and say so in the config.

    Why: the middle layers of a small decoder give better sentence vectors than its last ones, and
    a shallower model trains and encodes proportionally faster (layer pruning before LLM2Vec
    training: L3Prune, Thennal et al. 2024, arXiv:2410.14578). The final norm stays, so the output
    is ``norm(h_n)``; ``config.num_hidden_layers`` (and ``layer_types``, where a family has it) is
    cut to match, so the saved folder reloads as the smaller model in transformers and
    sentence-transformers.

    Raises:
        UsageError: If ``n`` is not between 1 and the number of blocks.
    """
    from llm2vec_lite.errors import UsageError

    holder, name = decoder_layers(model)
    blocks = getattr(holder, name)
    if not 1 <= n <= len(blocks):
        raise UsageError(f"num_layers = {n}: the model has {len(blocks)} transformer blocks; choose 1..{len(blocks)}")
    setattr(holder, name, torch.nn.ModuleList(list(blocks)[:n]))
    configs = {id(c): c for c in (model.config, getattr(holder, "config", None)) if c is not None}
    for config in configs.values():
        for key in ("num_hidden_layers", "n_layer", "num_layers"):
            if isinstance(getattr(config, key, None), int):
                setattr(config, key, n)
        if isinstance(getattr(config, "layer_types", None), list):
            config.layer_types = config.layer_types[:n]
    return model
