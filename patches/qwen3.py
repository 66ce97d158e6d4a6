"""Qwen3: like Qwen2 (optional sliding layers via ``layer_types``), plus q/k norms that need nothing.

``window="full"`` writes :data:`NO_WINDOW` into ``config.sliding_window``; ``"keep"`` keeps it symmetric.
"""

from llm2vec_lite.patches.base import TINY_LLAMA_LIKE, BidirectionalPatch, register_patch


class Qwen3Patch(BidirectionalPatch):
    model_type = "qwen3"
    window_attr = "sliding_window"
    window_note = "full: sliding_window=2**30 (layer_types kept); keep: symmetric |i-j| <= sliding_window"
    tiny_kwargs = {**TINY_LLAMA_LIKE, "use_sliding_window": True, "sliding_window": 4, "max_window_layers": 1}


register_patch("qwen3", Qwen3Patch)
