"""Mistral: one ``config.sliding_window`` shared by all layers (``None`` means full attention).

``window="full"`` sets it to ``None``, so the model builds full bidirectional masks and flash runs
without a window; ``window="keep"`` keeps it symmetric: token i sees j when ``|i - j| <= window``
(transformers' bidirectional sliding mask; flash-attn uses ``|i - j| < window``).
"""

from llm2vec_lite.patches.base import TINY_LLAMA_LIKE, BidirectionalPatch, register_patch


class MistralPatch(BidirectionalPatch):
    model_type = "mistral"
    window_attr = "sliding_window"
    window_off = None
    window_note = "full: sliding_window=None; keep: symmetric |i-j| <= sliding_window"
    tiny_kwargs = {**TINY_LLAMA_LIKE, "sliding_window": 4}


register_patch("mistral", MistralPatch)
