"""Frozen base weights in bf16 while training under bf16 autocast: same numbers, float32 restored."""

from __future__ import annotations

import pytest
import torch

from llm2vec_lite.runtime.frozen_base import frozen_linears_in


def _peft_llama():
    from llm2vec_lite.patches import get_patch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    torch.manual_seed(0)
    model = AutoModel.from_config(get_patch("llama").tiny_config(), attn_implementation="eager")
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear", init_lora_weights=False)
    return get_peft_model(model, lora)


def _base_weights(model) -> list[torch.nn.Parameter]:
    return [m.base_layer.weight for m in model.modules() if hasattr(m, "base_layer") and hasattr(m, "lora_A")]


def test_only_lora_base_weights_are_cast_and_the_originals_come_back():
    model = _peft_llama()
    layers = model.base_model.model.config.num_hidden_layers
    weights = _base_weights(model)
    before = {id(w): (w.data_ptr(), w.detach().clone()) for w in weights}
    with frozen_linears_in(model, torch.bfloat16) as cast:
        assert cast == 7 * layers == len(weights)
        assert all(w.dtype == torch.bfloat16 for w in weights)
        others = {n: p.dtype for n, p in model.named_parameters() if id(p) not in before}
        assert others and set(others.values()) == {torch.float32}  # embeddings, norms and LoRA stay fp32
        assert all(p.requires_grad for n, p in model.named_parameters() if "lora_" in n)
    for w in weights:
        ptr, value = before[id(w)]
        assert w.dtype == torch.float32 and w.data_ptr() == ptr  # the original storage, not a copy
        assert torch.equal(w, value)


def test_none_changes_nothing():
    model = _peft_llama()
    with frozen_linears_in(model, None) as cast:
        assert cast == 0
        assert all(w.dtype == torch.float32 for w in _base_weights(model))


def test_restored_when_training_fails():
    model = _peft_llama()
    with pytest.raises(RuntimeError, match="boom"), frozen_linears_in(model, torch.bfloat16):
        raise RuntimeError("boom")
    assert all(w.dtype == torch.float32 for w in _base_weights(model))


def _loss_and_grads(model, ids, low: torch.dtype | None):
    model.zero_grad(set_to_none=True)
    with frozen_linears_in(model, low), torch.autocast("cpu", dtype=torch.bfloat16):
        hidden = model(input_ids=ids).last_hidden_state
        loss = hidden.float().pow(2).mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_same_loss_and_adapter_gradients_as_plain_autocast():
    """autocast casts a float32 weight to bf16 on each use; the stored bf16 weight is that cast."""
    model = _peft_llama()
    ids = torch.randint(4, 128, (3, 9))
    loss_ref, grads_ref = _loss_and_grads(model, ids, None)
    loss, grads = _loss_and_grads(model, ids, torch.bfloat16)
    torch.testing.assert_close(loss, loss_ref, rtol=1e-6, atol=0)
    assert grads.keys() == grads_ref.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, grads_ref[name], rtol=1e-5, atol=1e-7, msg=name)


def test_weights_mapped_from_a_saved_folder_are_handed_back_and_come_back_unchanged(tmp_path, monkeypatch):
    """A stage loaded from a stage folder: its float32 weights are views of the safetensors map."""
    from llm2vec_lite.patches import get_patch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    import llm2vec_lite.runtime.frozen_base as frozen_base
    from llm2vec_lite.runtime.file_pages import file_backed_ranges

    config = get_patch("llama").tiny_config()
    config.vocab_size = 4096  # a table of whole pages, as a real one is
    AutoModel.from_config(config).save_pretrained(tmp_path)  # a merged stage's folder
    model = get_peft_model(AutoModel.from_pretrained(tmp_path), LoraConfig(r=4, target_modules="all-linear"))
    saved = {n: p.detach().clone() for n, p in model.named_parameters()}
    ranges = file_backed_ranges()
    mapped = [w for w in _base_weights(model) if any(a <= w.data_ptr() < b for a, b in ranges)]
    if not mapped:
        pytest.skip("this transformers copies safetensors weights onto the heap")
    handed: list[int] = []
    real = frozen_base.page_out
    monkeypatch.setattr(frozen_base, "page_out", lambda ts: handed.append(real(ts)) or handed[-1])
    with frozen_linears_in(model, torch.bfloat16):
        pass
    assert len(handed) == 1 and handed[0] > 0  # once, when the bf16 copies exist: the table's pages
    assert all(torch.equal(p, saved[n]) for n, p in model.named_parameters())
