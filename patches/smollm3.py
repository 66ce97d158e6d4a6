"""SmolLM3: NoPE every few layers (no rotary there) and optional sliding layers via ``layer_types``.

NoPE layers attend with no position signal at all, so bidirectional attention there is order-free;
that is the model's design, not something to patch. ``window="full"`` writes :data:`NO_WINDOW`
into ``config.sliding_window`` when one is set; ``"keep"`` keeps it symmetric.
"""

from llm2vec_lite.patches.base import TINY_LLAMA_LIKE, BidirectionalPatch, register_patch


class SmolLM3Patch(BidirectionalPatch):
    model_type = "smollm3"
    window_attr = "sliding_window"
    window_note = "full: sliding_window=2**30 when set (layer_types kept); keep: symmetric window"
    tiny_kwargs = {**TINY_LLAMA_LIKE, "no_rope_layer_interval": 2}


register_patch("smollm3", SmolLM3Patch)
