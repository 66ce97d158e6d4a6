"""Sibling LoRA layers trained through one product: peft's numbers, ordinary weights afterwards."""

from __future__ import annotations

import pytest
import torch
from llm2vec_lite.patches import get_patch, supported_architectures

from llm2vec_lite.runtime.fused_lora import _GroupProduct, fused_lora, lora_groups


def _peft(model_type: str = "llama", dropout: float = 0.0, seed: int = 0, **overrides):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    torch.manual_seed(seed)
    model = AutoModel.from_config(get_patch(model_type).tiny_config(**overrides), attn_implementation="eager")
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout, target_modules="all-linear", init_lora_weights=False)
    return get_peft_model(model, lora).train()


def _loss_and_grads(model, ids, fused: bool, autocast: bool = False):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast), fused_lora(model, fused) as n:
        hidden = model(input_ids=ids).last_hidden_state.float()
        loss = hidden.pow(2).mean()
        loss.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}
    return n, hidden.detach(), grads


def test_groups_are_the_siblings_that_share_an_input():
    model = _peft("llama")
    layers = model.base_model.model.config.num_hidden_layers
    groups = lora_groups(model)
    names = sorted(tuple(sorted(_name(model, m) for m in g)) for g in groups)
    assert len(groups) == 4 * layers
    assert names.count(("gate_proj", "up_proj")) == layers
    assert names.count(("k_proj", "q_proj", "v_proj")) == layers
    assert names.count(("o_proj",)) == names.count(("down_proj",)) == layers


def _name(model, module) -> str:
    return next(n.rsplit(".", 1)[-1] for n, m in model.named_modules() if m is module)


FAMILIES = supported_architectures()


@pytest.mark.parametrize("model_type", FAMILIES)
def test_fused_training_gives_peft_loss_and_gradients_in_float32(model_type):
    """Every family: the fused products compute what peft computes (biases included: qwen2)."""
    model = _peft(model_type)
    ids = torch.randint(4, 100, (3, 9))
    _, hidden_ref, grads_ref = _loss_and_grads(model, ids, fused=False)
    n, hidden, grads = _loss_and_grads(model, ids, fused=True)
    assert torch.allclose(hidden, hidden_ref, atol=1e-5, rtol=1e-5)
    assert grads.keys() == grads_ref.keys() and grads
    for k in grads:
        assert torch.allclose(grads[k], grads_ref[k], atol=1e-6, rtol=1e-4), k
    if model_type in ("llama", "qwen2", "gemma3_text", "mistral"):
        assert n == 2 * model.base_model.model.config.num_hidden_layers


def test_under_bf16_autocast_as_close_to_float32_as_peft_is():
    model = _peft("llama")
    ids = torch.randint(4, 100, (3, 9))
    _, ref, gref = _loss_and_grads(model, ids, fused=False)
    errors = {}
    for fused in (False, True):
        _, hidden, grads = _loss_and_grads(model, ids, fused=fused, autocast=True)
        assert all(g.dtype == torch.float32 for g in grads.values())  # adapter grads stay float32
        rel = max(((grads[k] - gref[k]).norm() / gref[k].norm()).item() for k in grads)
        errors[fused] = ((hidden - ref).abs().max().item(), rel)
    assert errors[True][0] < 2 * errors[False][0] + 1e-3
    assert errors[True][1] < 2 * errors[False][1] + 1e-3


def test_adapters_the_fused_path_does_not_cover_stay_with_peft():
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    for extra in ({"use_dora": True}, {"lora_bias": True}):
        torch.manual_seed(0)
        model = AutoModel.from_config(get_patch("llama").tiny_config(), attn_implementation="eager")
        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", **extra))
        assert lora_groups(model) == [], extra


def test_weights_are_their_own_again_after_the_block():
    model = _peft("llama")
    bases = [m.base_layer.weight for g in lora_groups(model) for m in g]
    before = [w.detach().clone() for w in bases]
    with fused_lora(model) as n:
        assert n > 0
        storages = {w.untyped_storage().data_ptr() for w in bases}
        assert len(storages) < len(bases)  # siblings share one concatenated storage while training
    assert len({w.untyped_storage().data_ptr() for w in bases}) == len(bases)
    assert all(torch.equal(w, b) for w, b in zip(bases, before, strict=True))
    assert all("forward" not in vars(m) for g in lora_groups(model) for m in g)  # peft's forward again


def test_restored_when_training_fails():
    model = _peft("llama")
    with pytest.raises(RuntimeError, match="boom"), fused_lora(model):
        raise RuntimeError("boom")
    bases = [m.base_layer.weight for g in lora_groups(model) for m in g]
    assert len({w.untyped_storage().data_ptr() for w in bases}) == len(bases)


def test_eval_mode_under_no_grad_gives_peft_outputs_without_dropout():
    model = _peft("llama", dropout=0.5).eval()
    ids = torch.randint(4, 100, (2, 7))
    with torch.no_grad():
        ref = model(input_ids=ids).last_hidden_state
        with fused_lora(model):
            out = model(input_ids=ids).last_hidden_state
            again = model(input_ids=ids).last_hidden_state
    assert torch.allclose(out, ref, atol=1e-5, rtol=1e-5) and torch.equal(out, again)


def test_inference_mode_as_the_in_stage_scoring_runs_it():
    """The Encoder scores under torch.inference_mode, whose tensors have no version counter."""
    model = _peft("llama", dropout=0.1)
    ids = torch.randint(4, 100, (2, 7))
    with torch.no_grad():
        ref = model.eval()(input_ids=ids).last_hidden_state
    with fused_lora(model), torch.inference_mode():
        out = model(input_ids=ids).last_hidden_state
    assert torch.allclose(out, ref, atol=1e-5, rtol=1e-5)


def test_disabled_adapters_run_peft_forward():
    model = _peft("llama").eval()
    ids = torch.randint(4, 100, (2, 7))
    with torch.no_grad(), model.disable_adapter():
        reference = model(input_ids=ids).last_hidden_state
    with torch.no_grad(), fused_lora(model):
        with model.disable_adapter():
            plain = model(input_ids=ids).last_hidden_state
        adapted = model(input_ids=ids).last_hidden_state
    assert torch.equal(plain, reference) and not torch.allclose(plain, adapted)


def test_dropout_is_one_mask_per_group_and_reproducible():
    model = _peft("llama", dropout=0.25)
    ids = torch.randint(4, 100, (3, 9))
    torch.manual_seed(5)
    _, h1, g1 = _loss_and_grads(model, ids, fused=True)
    torch.manual_seed(5)
    _, h2, g2 = _loss_and_grads(model, ids, fused=True)
    assert torch.equal(h1, h2) and all(torch.equal(g1[k], g2[k]) for k in g1)
    _, h0, _ = _loss_and_grads(model.eval(), ids, fused=True)
    assert not torch.allclose(h0, h1)  # dropout acted while training


def test_group_product_gradients_with_dropout():
    """The hand-written backward against finite differences, dropout on (one seeded mask)."""
    torch.manual_seed(0)
    x = torch.randn(2, 5, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(10, 6, dtype=torch.float64)
    bias = torch.randn(10, dtype=torch.float64)
    a = torch.randn(6, 6, dtype=torch.float64, requires_grad=True)  # two members of rank 3
    b1 = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    b2 = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)

    def fn(x, a, b1, b2):
        torch.manual_seed(1)  # the same mask at every evaluation
        return _GroupProduct.apply(x, weight, bias, a, [2.0, 0.5], 0.3, [7, 3], [3, 3], b1, b2)

    assert torch.autograd.gradcheck(fn, (x, a, b1, b2))
    y1, y2 = fn(x, a, b1, b2)
    assert y1.shape == (2, 5, 7) and y2.shape == (2, 5, 3)
