"""Every registered patch, on a tiny random model of its family, on every CPU backend.

Parametrized over ``supported_architectures()``: adding ``patches/<family>.py`` (with its
``tiny_config``) is enough to get it checked here. flex_attention compiles per shape on CPU
(~10 s a family), so it runs for llama by default and for every family under ``-m slow``.
"""

from __future__ import annotations

import json

import pytest
import torch
from llm2vec_lite.patches import enable_bidirectional, get_patch, supported_architectures, verify

ARCHS = supported_architectures()


def _cpu_backends(model_type: str) -> list[str]:
    return [b for b in get_patch(model_type).backends() if b in ("eager", "sdpa")]


CASES = [(mt, b) for mt in ARCHS for b in _cpu_backends(mt)]
FLEX = [
    pytest.param(mt, marks=() if mt == "llama" else pytest.mark.slow)
    for mt in ARCHS
    if "flex_attention" in get_patch(mt).backends()
]


def _first_position(model, ids):
    out = model(input_ids=ids, output_hidden_states=True, use_cache=False)
    return out.hidden_states[-1][0, 0]


@pytest.mark.parametrize(("model_type", "backend"), CASES)
def test_patch_makes_attention_bidirectional_and_padding_invariant(tiny_model, model_type, backend):
    model = tiny_model(model_type, backend)
    before = verify(model)
    assert before.first_token_change == 0.0, "the unpatched model should be causal"

    assert enable_bidirectional(model) is model
    report = verify(model)
    assert report.passed, str(report)
    assert report.attn_implementation == backend
    assert report.first_token_change > 10 * report.tolerance


@pytest.mark.parametrize("model_type", ARCHS)
def test_patch_works_on_causal_lm_head(tiny_model, model_type):
    backend = _cpu_backends(model_type)[-1]
    model = enable_bidirectional(tiny_model(model_type, backend, head="causal_lm"))
    ids = torch.randint(0, 128, (1, 6))
    changed = ids.clone()
    changed[0, -1] = (changed[0, -1] + 1) % 128
    with torch.no_grad():
        logits_a = model(input_ids=ids).logits[0, 0]
        logits_b = model(input_ids=changed).logits[0, 0]
    assert not torch.allclose(logits_a, logits_b), "first-position logits ignore the last token"


@pytest.mark.parametrize("model_type", ARCHS)
def test_patch_survives_lora_and_merge(tiny_model, model_type):
    from peft import LoraConfig, get_peft_model

    backend = _cpu_backends(model_type)[-1]
    model = tiny_model(model_type, backend)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    peft_model = get_peft_model(model, lora)
    enable_bidirectional(peft_model)  # patching through the wrapper
    report = verify(peft_model)
    assert report.passed, str(report)

    ids = torch.randint(0, 128, (2, 7))
    with torch.no_grad():
        wrapped = peft_model(input_ids=ids).last_hidden_state
    merged = peft_model.merge_and_unload()
    assert verify(merged).passed
    with torch.no_grad():
        unwrapped = merged(input_ids=ids).last_hidden_state
    torch.testing.assert_close(unwrapped, wrapped, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("model_type", ["llama", "gpt2", "gpt_neo"])  # default, hook, buffer patches
def test_patch_before_lora_is_kept_by_the_wrapper(tiny_model, model_type):
    from peft import LoraConfig, get_peft_model

    model = enable_bidirectional(tiny_model(model_type, _cpu_backends(model_type)[-1]))
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules="all-linear", init_lora_weights=False))
    assert verify(peft_model).passed


@pytest.mark.parametrize("model_type", ARCHS)
def test_saved_folder_reloads_bidirectional_with_plain_automodel(tiny_model, tmp_path, model_type):
    from transformers import AutoModel

    patch = get_patch(model_type)
    backend = _cpu_backends(model_type)[-1]  # sdpa where supported: the backend that can go causal
    model = enable_bidirectional(tiny_model(model_type, backend))
    ids = torch.randint(0, 128, (1, 8))
    with torch.no_grad():
        expected = model(input_ids=ids).last_hidden_state
    model.save_pretrained(tmp_path)

    saved = json.loads((tmp_path / "config.json").read_text())
    assert patch.config_is_bidirectional(type(model.config).from_dict(saved)), saved

    reloaded = AutoModel.from_pretrained(tmp_path, attn_implementation=backend).eval()
    report = verify(reloaded)
    assert report.right_padding_ok, str(report)
    if patch.reload_bidirectional:
        assert report.bidirectional, f"plain reload went causal:\n{report}"
        with torch.no_grad():
            torch.testing.assert_close(reloaded(input_ids=ids).last_hidden_state, expected)
    else:  # documented: e.g. gpt_neo rebuilds its causal buffer; patching again restores it exactly
        assert not report.bidirectional
        enable_bidirectional(reloaded)
        with torch.no_grad():
            torch.testing.assert_close(reloaded(input_ids=ids).last_hidden_state, expected)
    if patch.reload_left_padding:
        assert report.left_padding_ok, str(report)
    else:  # documented: position ids from the mask come back with the patch
        assert verify(enable_bidirectional(reloaded)).passed


@pytest.mark.parametrize("model_type", FLEX)
def test_patch_works_with_flex_attention(tiny_model, model_type):
    model = enable_bidirectional(tiny_model(model_type, "flex_attention"))
    report = verify(model)
    assert report.passed, str(report)
    assert report.attn_implementation == "flex_attention"


@pytest.mark.gpu
@pytest.mark.parametrize("model_type", ["llama", "gemma3_text", "mistral"])
def test_patch_works_with_flash_attention_2(tiny_model, model_type):
    pytest.importorskip("flash_attn")
    if not torch.cuda.is_available():
        pytest.skip("flash_attention_2 needs CUDA")
    model = enable_bidirectional(tiny_model(model_type, "flash_attention_2").to("cuda", torch.bfloat16))
    report = verify(model)
    assert report.passed, str(report)


def test_patching_twice_changes_nothing(tiny_model):
    model = enable_bidirectional(tiny_model("gemma3_text", "sdpa"), window="keep")
    window = model.config.sliding_window
    ids = torch.randint(0, 128, (2, 9))
    with torch.no_grad():
        once = model(input_ids=ids).last_hidden_state
        enable_bidirectional(model, window="keep")
        twice = model(input_ids=ids).last_hidden_state
    assert model.config.sliding_window == window
    torch.testing.assert_close(twice, once)


@pytest.mark.parametrize("model_type", ["llama", "gpt2", "minicpm", "gemma2"])
def test_verify_is_dtype_aware_in_bfloat16(tiny_model, model_type):
    model = tiny_model(model_type, _cpu_backends(model_type)[-1]).to(torch.bfloat16)
    assert verify(model).first_token_change == 0.0  # causal stays exactly causal in bf16
    report = verify(enable_bidirectional(model))
    assert report.dtype == "bfloat16" and report.passed, str(report)
    assert report.tolerance > 1e-2  # bf16 tolerance, not the float32 one


@pytest.mark.parametrize("model_type", [mt for mt in ARCHS if {"eager", "sdpa"} <= set(_cpu_backends(mt))])
def test_switching_sdpa_to_eager_after_the_patch_keeps_it_bidirectional(tiny_model, model_type):
    """The pipeline trains with eager attention on a bf16 CPU (runtime.training_attention) by
    switching a loaded, patched sdpa model at run time: the switch must keep both the bidirectional
    mask and the numbers, and switching back must too."""
    model = enable_bidirectional(tiny_model(model_type, "sdpa"))
    ids = torch.randint(4, 128, (2, 7))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # padding must stay masked in both backends
    with torch.no_grad():
        sdpa = model(input_ids=ids, attention_mask=mask).last_hidden_state
        model.set_attn_implementation("eager")
        eager = model(input_ids=ids, attention_mask=mask).last_hidden_state
        report = verify(model)
        model.set_attn_implementation("sdpa")
        back = model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert report.passed and report.attn_implementation == "eager", str(report)
    real = mask.bool()
    torch.testing.assert_close(eager[real], sdpa[real], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(back, sdpa)
