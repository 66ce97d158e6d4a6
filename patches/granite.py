"""Granite: Llama with embedding/residual/attention/logit multipliers; the default mechanism suffices.

MiniCPM-1/2 checkpoints load onto these classes (see ``patches/minicpm.py``).
"""

from llm2vec_lite.patches.base import BidirectionalPatch, register_patch


class GranitePatch(BidirectionalPatch):
    model_type = "granite"


register_patch("granite", GranitePatch)
