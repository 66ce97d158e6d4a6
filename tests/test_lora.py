"""Shared LoRA dropout: one mask per distinct input tensor, identical gradients to an explicit version."""

from __future__ import annotations

import pytest
import torch

from llm2vec_lite.runtime.lora import (
    SharedInputDropout,
    _LastInput,
    cpu_dropout,
    scale_adapters,
    share_lora_dropout,
)


def _peft(p: float):
    from llm2vec_lite.patches import get_patch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    torch.manual_seed(0)
    model = AutoModel.from_config(get_patch("llama").tiny_config(), attn_implementation="eager")
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=p, target_modules="all-linear", init_lora_weights=False)
    return get_peft_model(model, lora)


def _dropout_outputs(model, ids):
    """Per adapted module name, the tensor its LoRA dropout returned in one forward."""
    seen: dict[str, torch.Tensor] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, SharedInputDropout):
            short = name.rsplit(".lora_dropout", 1)[0]
            hooks.append(module.register_forward_hook(lambda m, a, out, k=short: seen.setdefault(k, out)))
    model(input_ids=ids)
    for h in hooks:
        h.remove()
    return seen


def test_projections_reading_one_input_share_one_mask():
    model = _peft(0.5)
    layers = model.base_model.model.config.num_hidden_layers
    assert share_lora_dropout(model) == 7 * layers  # q k v o gate up down in every layer
    model.train()
    out = _dropout_outputs(model, torch.randint(4, 100, (2, 9)))
    attn, mlp = "base_model.model.layers.0.self_attn", "base_model.model.layers.0.mlp"
    assert out[f"{attn}.q_proj"] is out[f"{attn}.k_proj"] is out[f"{attn}.v_proj"]
    assert out[f"{mlp}.gate_proj"] is out[f"{mlp}.up_proj"]
    assert out[f"{attn}.o_proj"] is not out[f"{attn}.q_proj"]
    assert out[f"{mlp}.down_proj"] is not out[f"{mlp}.gate_proj"]
    # a real dropout: about half the entries zeroed, the rest scaled by 1 / (1 - p)
    q_in = out[f"{attn}.q_proj"]
    assert 0.3 < (q_in == 0).float().mean() < 0.7
    assert len({id(t) for t in out.values()}) == 4 * layers  # 4 draws a layer instead of 7


def test_equal_values_in_a_new_tensor_get_a_new_mask():
    drop = SharedInputDropout(0.5, _LastInput())
    x = torch.ones(64, 64)
    a = drop(x)
    assert drop(x) is a  # the same tensor again: the same draw
    b = drop(x.clone())
    assert not torch.equal(a, b)
    x.add_(0)  # an in-place change bumps the version: a new draw, even for the same object
    assert drop(x) is not b and drop(x) is not a


def test_eval_mode_and_zero_probability_are_identity():
    model = _peft(0.5)
    share_lora_dropout(model)
    model.eval()
    ids = torch.randint(4, 100, (2, 7))
    with torch.no_grad():
        ref = model(input_ids=ids).last_hidden_state
        model.train()
        for m in model.modules():
            if isinstance(m, SharedInputDropout):
                m.p = 0.0
        torch.testing.assert_close(model(input_ids=ids).last_hidden_state, ref)
    assert share_lora_dropout(_peft(0.0)) == 0  # peft uses Identity for p = 0: nothing to share


@pytest.mark.parametrize("seed", [0, 1])
def test_gradients_match_one_explicit_mask_per_input(seed):
    """The LoRA gradients equal those of a hand-written block that drops each shared input once."""
    model = _peft(0.4)
    share_lora_dropout(model)
    model.train()
    ids = torch.randint(4, 100, (2, 6))
    torch.manual_seed(seed)
    model(input_ids=ids).last_hidden_state.square().sum().backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    # the same model with peft's own per-adapter dropout, fed the shared masks explicitly
    explicit = _peft(0.4)
    explicit.load_state_dict(model.state_dict())
    explicit.train()
    torch.manual_seed(seed)
    masks: list[tuple[torch.Tensor, torch.Tensor]] = []  # (input, dropped), inputs kept alive

    def make(p):
        def drop(x):
            for seen, dropped in masks:
                if seen is x:
                    return dropped
            masks.append((x, cpu_dropout(x, p)))  # the mask the shared dropout draws on a CPU
            return masks[-1][1]
        return drop

    for module in explicit.modules():
        if isinstance(getattr(module, "lora_dropout", None), torch.nn.ModuleDict):
            module.lora_dropout["default"].forward = make(0.4)
    explicit(input_ids=ids).last_hidden_state.square().sum().backward()
    want = {n: p.grad for n, p in explicit.named_parameters() if p.grad is not None}
    assert got.keys() == want.keys() and got
    for name in got:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("p", [0.05, 0.3])
def test_cpu_dropout_drops_at_rate_p_and_keeps_the_expectation(p):
    torch.manual_seed(0)
    x = torch.full((400, 500), 2.0)
    out = cpu_dropout(x, p)
    dropped = (out == 0).float().mean().item()
    assert abs(dropped - p) < 4 * (p * (1 - p) / x.numel()) ** 0.5  # within 4 standard errors
    kept = out[out != 0]
    cut = round(p * 65536)
    torch.testing.assert_close(kept, torch.full_like(kept, 2.0 * 65536 / (65536 - cut)))
    assert abs(out.mean().item() - 2.0) < 0.01


def test_cpu_dropout_follows_the_torch_seed_and_passes_gradients():
    x = torch.randn(64, 48, dtype=torch.bfloat16, requires_grad=True)
    torch.manual_seed(1)
    a = cpu_dropout(x, 0.2)
    torch.manual_seed(1)
    b = cpu_dropout(x, 0.2)
    assert torch.equal(a, b) and a.dtype == torch.bfloat16
    a.float().sum().backward()
    keep = a != 0
    assert torch.equal(x.grad != 0, keep)  # gradient flows through kept entries only


@pytest.mark.parametrize("p", [0.0, 1e-6, 1.0])
def test_cpu_dropout_outside_the_16_bit_grid_is_plain_dropout(p):
    x = torch.ones(100, 100)
    torch.manual_seed(2)
    want = torch.nn.functional.dropout(x, p, training=True)
    torch.manual_seed(2)
    assert torch.equal(cpu_dropout(x, p), want)


def test_merge_weight_merges_that_fraction_of_the_trained_change():
    """``merge_weight: w``: each merged weight is ``(1 - w) * input + w * (input + change)``."""
    model = _peft(0.0)  # init_lora_weights=False: B is non-zero, so every adapter holds a change
    base = {n: p.detach().clone() for n, p in model.named_parameters() if "base_layer.weight" in n}
    full = _peft(0.0).merge_and_unload().state_dict()
    assert scale_adapters(model, 1.0) == 0
    layers = model.base_model.model.config.num_hidden_layers
    assert scale_adapters(model, 0.25) == 7 * layers
    merged = model.merge_and_unload().state_dict()
    checked = 0
    for name, before in base.items():
        key = name.removeprefix("base_model.model.").replace(".base_layer", "")
        change = full[key] - before
        assert change.abs().max() > 1e-4  # the adapter did change this weight
        torch.testing.assert_close(merged[key], before + 0.25 * change, rtol=1e-5, atol=1e-6)
        checked += 1
    assert checked == 7 * layers


def test_merge_weight_is_validated_and_only_a_real_change_moves_the_fingerprint(tmp_path):
    import sys
    from pathlib import Path

    from llm2vec_lite.errors import RecipeError
    from llm2vec_lite.recipe import load_recipe

    sys.path.insert(0, str(Path(__file__).resolve().parent / "recipes"))
    from tiny_project import make_tiny_project

    project = make_tiny_project(tmp_path)
    plain = load_recipe(project, [])
    assert load_recipe(project, ["stages.2.merge_weight=1"]).fingerprint == plain.fingerprint
    half = load_recipe(project, ["stages.2.merge_weight=0.5"])
    assert half.stage_fingerprint(2) != plain.stage_fingerprint(2)
    assert half.stage_fingerprint(1) == plain.stage_fingerprint(1)  # earlier stages stay finished
    for bad in ("0", "1.5"):
        with pytest.raises(RecipeError, match="merge_weight"):
            load_recipe(project, [f"stages.2.merge_weight={bad}"])
