"""Absolute-position families (GPT-2, GPT-Neo): left padding must not shift positions."""

from __future__ import annotations

import pytest
import torch
from llm2vec_lite.patches import enable_bidirectional


def _left_padded_vs_alone(model, seq: torch.Tensor, pad: int = 3) -> float:
    ids = torch.cat([torch.zeros(pad, dtype=torch.long), seq])[None]  # (1, pad + n)
    mask = torch.cat([torch.zeros(pad, dtype=torch.long), torch.ones(len(seq), dtype=torch.long)])[None]
    with torch.no_grad():
        padded = model(input_ids=ids, attention_mask=mask).last_hidden_state[0, pad:]
        alone = model(input_ids=seq[None]).last_hidden_state[0]
    return (padded - alone).abs().max().item()


@pytest.mark.parametrize("model_type", ["gpt2", "gpt_neo"])
def test_left_padding_matches_unpadded_after_patch(tiny_model, model_type):
    model = enable_bidirectional(tiny_model(model_type, "eager"))
    seq = torch.randint(4, 128, (6,))
    assert _left_padded_vs_alone(model, seq) < 1e-5


def test_gpt2_left_padding_needs_the_position_hook(tiny_model):
    model = enable_bidirectional(tiny_model("gpt2", "sdpa"))
    seq = torch.randint(4, 128, (6,))
    model.base_model._llm2vec_positions_hook.remove()  # what a plain reload gives
    assert _left_padded_vs_alone(model, seq) > 1e-3, "without position ids from the mask, positions shift"


def test_gpt2_caller_position_ids_win_over_the_hook(tiny_model):
    model = enable_bidirectional(tiny_model("gpt2", "eager"))
    ids = torch.randint(4, 128, (1, 5))
    shifted = torch.arange(3, 8)[None]
    with torch.no_grad():
        given = model(input_ids=ids, attention_mask=torch.ones_like(ids), position_ids=shifted).last_hidden_state
        default = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    assert (given - default).abs().max().item() > 1e-4


def test_position_hook_is_installed_once(tiny_model):
    model = enable_bidirectional(enable_bidirectional(tiny_model("gpt2", "eager")))
    assert len(model.base_model._forward_pre_hooks) == 1
