"""Gemma (1): the default mechanism; embeddings scaled by sqrt(hidden) need nothing special.

Gemma's attention reads ``config.use_bidirectional_attention`` only at construction; the
``is_causal`` flag that ``merge_with_config_defaults`` passes down covers a plain reload.
"""

from llm2vec_lite.patches.base import TINY_LLAMA_LIKE, BidirectionalPatch, register_patch


class GemmaPatch(BidirectionalPatch):
    model_type = "gemma"
    tiny_kwargs = {**TINY_LLAMA_LIKE}


register_patch("gemma", GemmaPatch)
