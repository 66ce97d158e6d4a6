"""MiniCPM-1/2 without remote code: their config maps onto transformers' native Granite classes.

MiniCPM ships only ``trust_remote_code`` modeling. Its forward is Llama plus three scalars:

    h_0    = embed(ids) * scale_emb
    h_l+1  = h_l + block(h_l) * scale_depth / sqrt(num_hidden_layers)   (after attention and after MLP)
    logits = lm_head(norm(h_L) / (hidden_size / dim_model_base))

Granite computes ``embed * embedding_multiplier``, ``residual + out * residual_multiplier`` and
``lm_head(h) / logits_scaling``, with ``attention_multiplier`` as the softmax scale. So
``embedding_multiplier = scale_emb``, ``residual_multiplier = scale_depth / sqrt(L)``,
``logits_scaling = hidden_size / dim_model_base`` (Granite divides the logits; MiniCPM divides the
hidden state before the bias-free ``lm_head``: the same number) and ``attention_multiplier =
1 / sqrt(head_dim)``. Weight names are Llama's in both, so the safetensors load unchanged.
``tests/patches/test_minicpm.py`` checks the mapping against a from-scratch MiniCPM forward.

References: MiniCPM, Hu et al. 2024, arXiv:2404.06395 (muP-style scaling).
Requirements: a local folder (or cached hub id) with MiniCPM's ``config.json`` + safetensors.
Relations: loaded models are ``granite`` models, made bidirectional by ``patches/granite.py``.
"""

from __future__ import annotations

import math
from typing import Any

from llm2vec_lite.patches.base import register_patch
from llm2vec_lite.patches.granite import GranitePatch

from llm2vec_lite.errors import PatchError

_REQUIRED = ("hidden_size", "num_hidden_layers", "num_attention_heads", "scale_emb", "scale_depth", "dim_model_base")

# Copied from MiniCPM's config when present (same meaning in Granite); defaults are MiniCPMConfig's.
_PASSTHROUGH = {
    "vocab_size": 32000,
    "intermediate_size": 11008,
    "hidden_act": "silu",
    "max_position_embeddings": 2048,
    "initializer_range": 0.02,
    "rms_norm_eps": 1e-6,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": None,
    "tie_word_embeddings": True,
    "attention_bias": False,
    "attention_dropout": 0.0,
    "use_cache": True,
}


def minicpm_to_granite(config_dict: dict[str, Any]):
    """Map a MiniCPM-1/2 ``config.json`` dict onto an equivalent ``GraniteConfig``.

    Args:
        config_dict: the parsed MiniCPM ``config.json``.

    Returns:
        A ``transformers.GraniteConfig`` whose model computes MiniCPM's forward.

    Raises:
        PatchError: If a field MiniCPM needs is missing, or the checkpoint is a MiniCPM variant
            Granite cannot express (MoE experts, MiniCPM3's latent attention).
    """
    from transformers import GraniteConfig

    missing = [k for k in _REQUIRED if config_dict.get(k) is None]
    if missing:
        raise PatchError(f"MiniCPM config.json lacks {', '.join(missing)}; cannot map it onto Granite.")
    for key in ("num_experts", "q_lora_rank", "kv_lora_rank"):
        if config_dict.get(key):
            raise PatchError(
                f"MiniCPM config has {key}={config_dict[key]!r}: only dense MiniCPM-1/2 map onto Granite "
                f"(MoE and MiniCPM3 latent attention are not supported)."
            )
    hidden, layers, heads = (int(config_dict[k]) for k in ("hidden_size", "num_hidden_layers", "num_attention_heads"))
    head_dim = hidden // heads
    kwargs = {k: config_dict.get(k, default) for k, default in _PASSTHROUGH.items()}
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": float(config_dict.get("rope_theta", 10000.0))}
    scaling = config_dict.get("rope_scaling")
    if scaling:
        rope = {**scaling, "rope_type": scaling.get("rope_type", scaling.get("type")), "rope_theta": rope["rope_theta"]}
        rope.pop("type", None)
    granite = GraniteConfig(
        **kwargs,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=int(config_dict.get("num_key_value_heads") or heads),
        rope_parameters=rope,
        embedding_multiplier=float(config_dict["scale_emb"]),
        residual_multiplier=float(config_dict["scale_depth"]) / math.sqrt(layers),
        logits_scaling=hidden / float(config_dict["dim_model_base"]),
        attention_multiplier=head_dim**-0.5,
        architectures=["GraniteForCausalLM"],
    )
    dtype = config_dict.get("torch_dtype", config_dict.get("dtype"))
    if dtype is not None:
        granite.dtype = dtype
    granite.converted_from = "minicpm"
    return granite


class MiniCPMPatch(GranitePatch):
    """MiniCPM loads as Granite (:func:`minicpm_to_granite`); the Granite mechanism then applies."""

    model_type = "minicpm"
    reload_note = "saved as granite; bidirectional (config.is_causal=false)"
    tiny_minicpm: dict[str, Any] = {
        "model_type": "minicpm",
        "vocab_size": 128,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 64,
        "scale_emb": 12,
        "scale_depth": 1.4,
        "dim_model_base": 8,
        "pad_token_id": 0,
        "tie_word_embeddings": True,
    }

    @classmethod
    def tiny_config(cls, **overrides: Any):
        return minicpm_to_granite({**cls.tiny_minicpm, **overrides})

    @classmethod
    def prepare_config(cls, path: str, config_dict: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        if "config" in kwargs:  # the caller chose a config; respect it
            return {}
        return {"config": minicpm_to_granite(config_dict)}


register_patch("minicpm", MiniCPMPatch)
