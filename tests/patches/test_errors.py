"""Failure modes: unsupported architectures, registry misuse, bad arguments."""

from __future__ import annotations

import pytest
from llm2vec_lite.patches import (
    BidirectionalPatch,
    enable_bidirectional,
    register_patch,
    supported_architectures,
)
from llm2vec_lite.patches.base import TINY_LLAMA_LIKE

from llm2vec_lite.errors import PatchError, UnsupportedArchitectureError


def test_unsupported_model_type_names_it_and_lists_supported_and_changes_nothing():
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.for_model(
        "gpt_neox", vocab_size=128, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64
    )
    model = AutoModel.from_config(config)
    with pytest.raises(UnsupportedArchitectureError) as err:
        enable_bidirectional(model)
    msg = str(err.value)
    assert "'gpt_neox'" in msg and "llama" in msg and "gemma3_text" in msg and "patches/gpt_neox.py" in msg
    assert err.value.supported == supported_architectures()
    assert getattr(model.config, "is_causal", True) is not False
    assert all(getattr(m, "is_causal", True) is not False for m in model.modules())


def test_registering_a_model_type_twice_is_refused():
    class AnotherLlama(BidirectionalPatch):
        model_type = "llama"
        tiny_kwargs = TINY_LLAMA_LIKE

    with pytest.raises(PatchError, match=r"patch 'llama' is already registered \(.*llama\.py\)"):
        register_patch("llama", AnotherLlama)


def test_register_refuses_mismatched_or_foreign_classes():
    class Falcon(BidirectionalPatch):
        model_type = "falcon"

    with pytest.raises(PatchError, match="model_type='falcon'"):
        register_patch("falcon2", Falcon)
    with pytest.raises(PatchError, match="BidirectionalPatch subclass"):
        register_patch("falcon", object)


def test_unknown_window_is_a_value_error(tiny_model):
    with pytest.raises(ValueError, match="full, keep"):
        enable_bidirectional(tiny_model("llama"), window="half")


def test_non_model_input_is_a_patch_error():
    import torch

    with pytest.raises(PatchError, match="PreTrainedModel"):
        enable_bidirectional(torch.nn.Linear(2, 2))
