"""OLMo 2: post-norm blocks and q/k norms; the default mechanism suffices."""

from llm2vec_lite.patches.base import BidirectionalPatch, register_patch


class Olmo2Patch(BidirectionalPatch):
    model_type = "olmo2"


register_patch("olmo2", Olmo2Patch)
