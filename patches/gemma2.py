"""Gemma 2: alternating sliding/full layers and attention logit softcapping.

Softcapping rules out sdpa (transformers refuses it), so eager and flex_attention (and flash-attn
on GPU) are the backends. ``window="full"`` writes :data:`NO_WINDOW` into ``config.sliding_window``
(``layer_types`` unchanged); ``"keep"`` keeps a symmetric ``|i - j| <= sliding_window`` window.
"""

from llm2vec_lite.patches.base import TINY_LLAMA_LIKE, BidirectionalPatch, register_patch


class Gemma2Patch(BidirectionalPatch):
    model_type = "gemma2"
    window_attr = "sliding_window"
    window_note = "full: sliding_window=2**30 (layer_types kept); keep: symmetric |i-j| <= sliding_window"
    tiny_kwargs = {**TINY_LLAMA_LIKE, "sliding_window": 4, "query_pre_attn_scalar": 8}


register_patch("gemma2", Gemma2Patch)
