"""Phi (Phi-1/1.5/2): partial rotary, parallel attention+MLP block; the default mechanism suffices."""

from llm2vec_lite.patches.base import TINY_LLAMA_LIKE, BidirectionalPatch, register_patch


class PhiPatch(BidirectionalPatch):
    model_type = "phi"
    tiny_kwargs = {**TINY_LLAMA_LIKE, "resid_pdrop": 0.0, "embd_pdrop": 0.0}


register_patch("phi", PhiPatch)
