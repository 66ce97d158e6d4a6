"""benchmarks/gguf_slice.py: the sliced GGUF is the same model as the full one cut to N blocks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from benchmark_module import load_benchmark

pytest.importorskip("gguf")


gguf_slice = load_benchmark("gguf_slice")


def test_sliced_gguf_equals_the_full_model_cut_to_its_first_blocks(smollm2_gguf, tmp_path):
    from llm2vec_lite.modeling import keep_first_layers, load_model

    out = tmp_path / "two.gguf"
    info = gguf_slice.slice_gguf(smollm2_gguf, out, blocks=2)
    assert info["blocks"] == 2 and info["of_blocks"] == 30
    assert info["tensors"] == 2 + 2 * 9  # embeddings + final norm, 9 tensors a block
    assert info["bytes"] < Path(smollm2_gguf).stat().st_size / 2

    small, tokenizer = load_model(str(out))
    full, _ = load_model(smollm2_gguf)
    keep_first_layers(full, 2)
    assert small.config.num_hidden_layers == 2
    batch = tokenizer(["A man is playing a guitar.", "Two dogs run on the beach."], return_tensors="pt", padding=True)
    with torch.no_grad():
        torch.testing.assert_close(small(**batch).last_hidden_state, full(**batch).last_hidden_state, rtol=0, atol=0)


def test_too_many_blocks_is_refused_with_the_range(smollm2_gguf, tmp_path):
    with pytest.raises(ValueError, match="has 30 blocks; give 1 to 30"):
        gguf_slice.slice_gguf(smollm2_gguf, tmp_path / "x.gguf", blocks=31)
