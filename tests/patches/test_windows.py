"""Sliding-window semantics of ``window="keep"`` and ``window="full"``, measured by influence.

One attention layer, so token q's output depends on token k exactly when the mask lets q see k.
"""

from __future__ import annotations

import json

import pytest
import torch
from llm2vec_lite.patches import NO_WINDOW, enable_bidirectional


def _influenced(model, query: int, key: int, length: int = 14) -> bool:
    """Does changing token ``key`` change the final hidden state at ``query``?"""
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(4, 128, (1, length), generator=gen)
    changed = ids.clone()
    changed[0, key] = 4 + (changed[0, key] - 4 + 7) % 124
    with torch.no_grad():
        a = model(input_ids=ids).last_hidden_state[0, query]
        b = model(input_ids=changed).last_hidden_state[0, query]
    return (a - b).abs().max().item() > 1e-6


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_mistral_keep_window_is_symmetric_and_inclusive(tiny_model, backend):
    model = enable_bidirectional(tiny_model("mistral", backend, num_hidden_layers=1), window="keep")
    assert model.config.sliding_window == 4
    assert _influenced(model, 6, 2) and _influenced(model, 6, 10)  # |i - j| = 4: inside
    assert not _influenced(model, 6, 1) and not _influenced(model, 6, 11)  # |i - j| = 5: outside


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_mistral_full_window_removes_the_window(tiny_model, backend):
    model = enable_bidirectional(tiny_model("mistral", backend, num_hidden_layers=1), window="full")
    assert model.config.sliding_window is None
    assert _influenced(model, 0, 13) and _influenced(model, 13, 0)


@pytest.mark.parametrize("model_type", ["qwen2", "gemma2"])
def test_layer_typed_families_keep_or_remove_the_window(tiny_model, model_type):
    kwargs = {"num_hidden_layers": 1}
    if model_type == "qwen2":
        kwargs["max_window_layers"] = 0
    else:
        kwargs["layer_types"] = ["sliding_attention"]
    keep = enable_bidirectional(tiny_model(model_type, "eager", **kwargs), window="keep")
    assert keep.config.layer_types == ["sliding_attention"]
    assert _influenced(keep, 6, 2) and _influenced(keep, 6, 10)
    assert not _influenced(keep, 6, 1) and not _influenced(keep, 6, 11)

    full = enable_bidirectional(tiny_model(model_type, "eager", **kwargs), window="full")
    assert full.config.layer_types == ["sliding_attention"], "layer_types must not be rewritten"
    assert full.config.sliding_window == NO_WINDOW
    assert _influenced(full, 0, 13) and _influenced(full, 13, 0)


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_gemma3_keep_uses_embeddinggemma_halved_window(tiny_model, backend):
    layers = ["sliding_attention"]
    model = tiny_model("gemma3_text", backend, num_hidden_layers=1, layer_types=layers)
    assert model.config.sliding_window == 8
    enable_bidirectional(model, window="keep")
    assert model.config.use_bidirectional_attention is True
    assert model.config.sliding_window == 8 // 2 + 1  # as Gemma3TextConfig halves it
    assert model.config.layer_types == layers
    # overlay |i - j| < 5: distance 4 is seen, 5 is not, both directions
    assert _influenced(model, 6, 2) and _influenced(model, 6, 10)
    assert not _influenced(model, 6, 1) and not _influenced(model, 6, 11)


def test_gemma3_keep_window_round_trips_through_save(tiny_model, tmp_path):
    from transformers import AutoModel

    model = enable_bidirectional(tiny_model("gemma3_text", "sdpa"), window="keep")
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["sliding_window"] == 8 and saved["use_bidirectional_attention"] is True
    assert saved["layer_types"] == ["sliding_attention", "full_attention"]
    reloaded = AutoModel.from_pretrained(tmp_path, attn_implementation="sdpa").eval()
    assert reloaded.config.sliding_window == 5
    ids = torch.randint(0, 128, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids).last_hidden_state, model(input_ids=ids).last_hidden_state)


def test_gemma3_full_window_sees_everything(tiny_model):
    model = tiny_model("gemma3_text", "sdpa", num_hidden_layers=1, layer_types=["sliding_attention"])
    enable_bidirectional(model, window="full")
    assert model.config.layer_types == ["sliding_attention"]
    assert _influenced(model, 0, 13) and _influenced(model, 13, 0)


def test_gpt_neo_local_layers_keep_a_symmetric_band(tiny_model):
    kwargs = {"num_layers": 1, "attention_types": [[["local"], 1]]}
    keep = enable_bidirectional(tiny_model("gpt_neo", "eager", **kwargs), window="keep")
    assert _influenced(keep, 6, 3) and _influenced(keep, 6, 9)  # |i - j| = 3 < window_size 4
    assert not _influenced(keep, 6, 2) and not _influenced(keep, 6, 10)
    full = enable_bidirectional(tiny_model("gpt_neo", "eager", **kwargs), window="full")
    assert _influenced(full, 0, 13) and _influenced(full, 13, 0)
