"""Llama (and SmolLM2, which ships as ``llama``): the default mechanism is all it needs.

Rotary positions, no sliding window; ``config.is_causal=False`` plus ``module.is_causal=False``.
"""

from llm2vec_lite.patches.base import BidirectionalPatch, register_patch


class LlamaPatch(BidirectionalPatch):
    model_type = "llama"


register_patch("llama", LlamaPatch)
