"""llm2vec-lite: turn a decoder-only language model into a text encoder, the LLM2Vec way.

Usage::

    from llm2vec_lite import Encoder
    enc = Encoder.from_pretrained("path/to/converted")
    vectors = enc.encode(["a sentence", "another one"])

Heavy modules (torch, transformers) are imported lazily so that ``llm2vec-lite recipe check``
and ``--help`` stay fast.

References: BehnamGhader et al. 2024, "LLM2Vec: Large Language Models Are Secretly Powerful
Text Encoders", arXiv:2404.05961.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Encoder": "llm2vec_lite.encoder",
    "evaluate_sts": "llm2vec_lite.evaluate",
    "Recipe": "llm2vec_lite.recipe",
    "load_recipe": "llm2vec_lite.recipe",
    "convert": "llm2vec_lite.pipeline",
    "load_model": "llm2vec_lite.modeling",
    "Llm2VecError": "llm2vec_lite.errors",
    "RecipeError": "llm2vec_lite.errors",
    "PatchError": "llm2vec_lite.errors",
    "UnsupportedArchitectureError": "llm2vec_lite.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'llm2vec_lite' has no attribute {name!r}")
