"""Phi-3: fused qkv/gate_up projections and an optional global ``config.sliding_window``.

Like Mistral, ``None`` means no window: ``window="full"`` sets it to ``None``; ``"keep"`` keeps a
symmetric ``|i - j| <= sliding_window`` window.
"""

from llm2vec_lite.patches.base import TINY_LLAMA_LIKE, BidirectionalPatch, register_patch


class Phi3Patch(BidirectionalPatch):
    model_type = "phi3"
    window_attr = "sliding_window"
    window_off = None
    window_note = "full: sliding_window=None; keep: symmetric |i-j| <= sliding_window"
    tiny_kwargs = {**TINY_LLAMA_LIKE, "sliding_window": 4, "resid_pdrop": 0.0, "embd_pdrop": 0.0}


register_patch("phi3", Phi3Patch)
