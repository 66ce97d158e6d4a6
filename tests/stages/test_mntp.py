"""MNTP: the loss is next-token cross-entropy at masked positions, and batches resume exactly."""

from __future__ import annotations

import torch
from tiny_project import load_tiny

from llm2vec_lite.stages.mntp import MNTPStage


def _stage(recipe, **changes):
    cfg = recipe.stages[0].model_copy(update=changes)
    return MNTPStage(cfg, recipe, 0)


def test_loss_predicts_original_token_from_previous_position(recipe):
    model, tok = load_tiny(recipe, head="causal_lm")
    stage = _stage(recipe)
    stage.setup(model, tok)
    batch = next(stage.batches(0))
    model.eval()
    got = stage.loss(model, batch)

    ids, labels = batch.data["input_ids"], batch.data["labels"]
    logits = model(input_ids=ids, attention_mask=batch.data["attention_mask"]).logits  # (B, T, V)
    masked = labels[:, 1:] != -100  # label at i is scored by the output at i - 1
    want = torch.nn.functional.cross_entropy(logits[:, :-1][masked].float(), labels[:, 1:][masked])
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert (labels[:, 0] == -100).all()
    assert (ids[labels != -100] == stage.mask_id).float().mean() > 0.5  # most chosen tokens are masked


def test_batches_resume_from_any_position(recipe):
    model, tok = load_tiny(recipe, head="causal_lm")
    stage = _stage(recipe)
    stage.setup(model, tok)
    it = stage.batches(0)
    run = [next(it) for _ in range(5)]
    resumed = next(stage.batches(3))
    for key in ("input_ids", "labels", "attention_mask"):
        torch.testing.assert_close(resumed.data[key], run[3].data[key])
    assert not torch.equal(run[0].data["labels"], run[1].data["labels"])


def test_mask_strategy_adds_a_mask_token_and_resizes_embeddings(recipe):
    model, tok = load_tiny(recipe, head="causal_lm")
    before = model.get_input_embeddings().weight.shape[0]
    stage = _stage(recipe, mask_token="mask")
    stage.setup(model.base_model.model, tok)
    assert tok.convert_ids_to_tokens(stage.mask_id) == "<mask>"
    assert model.get_input_embeddings().weight.shape[0] == before + 1 == len(tok)
