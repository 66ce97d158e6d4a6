"""keep_first_layers: a decoder cut to its first N blocks computes what the full one computes there."""

from __future__ import annotations

import pytest
import torch

from llm2vec_lite.errors import UsageError
from llm2vec_lite.modeling import keep_first_layers


def _three_blocks(tiny_model, family: str):
    if family == "gpt2":
        return tiny_model(family, n_layer=3)
    if family == "gemma3_text":  # its config lists a type per layer
        return tiny_model(family, num_hidden_layers=3, layer_types=["sliding_attention"] * 2 + ["full_attention"])
    return tiny_model(family, num_hidden_layers=3)


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma3_text"])
def test_pruned_model_equals_the_full_models_intermediate_state(tiny_model, family):
    full = _three_blocks(tiny_model, family)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        states = full(input_ids=ids, output_hidden_states=True).hidden_states  # [embeddings, block 1, ...]
    pruned = keep_first_layers(_three_blocks(tiny_model, family), 2)
    config = pruned.config
    assert getattr(config, "num_hidden_layers", getattr(config, "n_layer", None)) == 2
    if getattr(config, "layer_types", None) is not None:
        assert len(config.layer_types) == 2
    with torch.no_grad():
        out = pruned(input_ids=ids, output_hidden_states=True)
    torch.testing.assert_close(out.hidden_states[1], states[1])  # same blocks, same input
    norm = getattr(pruned, "norm", None) or getattr(pruned, "ln_f", None)
    with torch.no_grad():
        torch.testing.assert_close(out.last_hidden_state, norm(states[2]))  # block 2, then the kept final norm


def test_pruned_model_saves_and_reloads_smaller(tmp_path, tiny_model):
    from transformers import AutoModel

    pruned = keep_first_layers(tiny_model("llama", num_hidden_layers=3), 1)
    pruned.save_pretrained(tmp_path)
    again = AutoModel.from_pretrained(tmp_path)
    assert len(again.layers) == 1 and again.config.num_hidden_layers == 1


@pytest.mark.parametrize("n", [0, 4])
def test_out_of_range_depth_is_a_usage_error(tiny_model, n):
    with pytest.raises(UsageError, match="choose 1..3"):
        keep_first_layers(tiny_model("llama", num_hidden_layers=3), n)


def test_encoder_from_pretrained_num_layers_loads_the_cut_model(tmp_path, tiny_model, tiny_tokenizer):
    """Encoder.from_pretrained(num_layers=N) encodes exactly as the full model cut by keep_first_layers."""
    from llm2vec_lite import Encoder

    full = tiny_model("llama", num_hidden_layers=3)
    full.save_pretrained(tmp_path)
    tiny_tokenizer(full.config.vocab_size).save_pretrained(tmp_path)
    cut = Encoder.from_pretrained(tmp_path, num_layers=2)
    assert len(cut.model.layers) == 2 and cut.model.config.num_hidden_layers == 2
    whole = Encoder.from_pretrained(tmp_path)
    keep_first_layers(whole.model, 2)
    texts = ["w5 w6 w7", "w8 w9"]
    torch.testing.assert_close(cut.encode(texts, convert_to="torch"), whole.encode(texts, convert_to="torch"))
    with pytest.raises(UsageError, match="choose 1..3"):
        Encoder.from_pretrained(tmp_path, num_layers=4)
