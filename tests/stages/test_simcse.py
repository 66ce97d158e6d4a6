"""SimCSE: dropout is switched on for training and restored after; the loss pairs the two views."""

from __future__ import annotations

import torch
from tiny_project import load_tiny

from llm2vec_lite.losses import info_nce
from llm2vec_lite.pooling import embed
from llm2vec_lite.stages.simcse import SimCSEStage


def _stage(recipe, **changes):
    return SimCSEStage(recipe.stages[1].model_copy(update=changes), recipe, 1)


def _attention_dropouts(model) -> set[float]:
    return {m.attention_dropout for m in model.modules() if hasattr(m, "attention_dropout")}


def test_setup_sets_attention_dropout_and_cleanup_restores_it(recipe):
    model, tok = load_tiny(recipe)
    base = model.base_model.model
    assert base.config.attention_dropout == 0.0
    stage = _stage(recipe, dropout=0.3)
    stage.setup(base, tok)
    assert base.config.attention_dropout == 0.3 and _attention_dropouts(base) == {0.3}
    stage.cleanup(base)
    assert base.config.attention_dropout == 0.0 and _attention_dropouts(base) == {0.0}


def test_without_dropout_both_views_are_the_same_embedding(recipe):
    model, tok = load_tiny(recipe)
    stage = _stage(recipe, dropout=0.0)
    stage.setup(model, tok)
    model.train()
    batch = next(stage.batches(0))
    emb = embed(model, batch.data, recipe.pooling)  # one view
    torch.testing.assert_close(stage.loss(model, batch), info_nce(emb, emb, 0.05), rtol=1e-4, atol=1e-5)


def test_dropout_makes_the_two_views_differ(recipe):
    model, tok = load_tiny(recipe)
    stage = _stage(recipe, dropout=0.5)
    stage.setup(model, tok)
    model.train()
    batch = next(stage.batches(0))
    torch.manual_seed(0)
    first = stage.loss(model, batch)
    torch.manual_seed(1)
    second = stage.loss(model, batch)
    emb = embed(model.eval(), batch.data, recipe.pooling)
    no_dropout = info_nce(emb, emb, 0.05)
    # Dropout masks come from the RNG: the loss moves away from the dropout-free value, and with it.
    assert abs(first.item() - no_dropout.item()) > 1e-4
    assert abs(first.item() - second.item()) > 1e-5
