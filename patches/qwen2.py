"""Qwen2: per-layer ``layer_types``; sliding layers exist only with ``use_sliding_window``.

``window="full"`` writes :data:`NO_WINDOW` into ``config.sliding_window`` (sliding layers need an
int) and leaves ``layer_types`` alone; ``window="keep"`` keeps a symmetric window.
"""

from llm2vec_lite.patches.base import TINY_LLAMA_LIKE, BidirectionalPatch, register_patch


class Qwen2Patch(BidirectionalPatch):
    model_type = "qwen2"
    window_attr = "sliding_window"
    window_note = "full: sliding_window=2**30 (layer_types kept); keep: symmetric |i-j| <= sliding_window"
    tiny_kwargs = {**TINY_LLAMA_LIKE, "use_sliding_window": True, "sliding_window": 4, "max_window_layers": 1}


register_patch("qwen2", Qwen2Patch)
