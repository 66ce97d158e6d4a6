"""SimCSE: dropout is switched on for training and restored after; the loss pairs the two views."""

from __future__ import annotations

import pytest
import torch
from tiny_project import load_tiny

from llm2vec_lite.losses import info_nce
from llm2vec_lite.pooling import embed
from llm2vec_lite.stages.simcse import SimCSEStage


def _stage(recipe, **changes):
    return SimCSEStage(recipe.stages[1].model_copy(update=changes), recipe, 1)


def _training(recipe, model, tok, **changes):
    """A set-up stage with the model in training mode, and its first batch."""
    stage = _stage(recipe, **changes)
    stage.setup(model, tok)
    model.train()
    return stage, next(stage.batches(0))


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
    stage, batch = _training(recipe, model, tok, dropout=0.0)
    emb = embed(model, batch.data, recipe.pooling)  # one view
    torch.testing.assert_close(stage.loss(model, batch), info_nce(emb, emb, 0.05), rtol=1e-4, atol=1e-5)


def test_dropout_makes_the_two_views_differ(recipe):
    model, tok = load_tiny(recipe)
    stage, batch = _training(recipe, model, tok, dropout=0.5)
    torch.manual_seed(0)
    first = stage.loss(model, batch)
    torch.manual_seed(1)
    second = stage.loss(model, batch)
    emb = embed(model.eval(), batch.data, recipe.pooling)
    no_dropout = info_nce(emb, emb, 0.05)
    # Dropout masks come from the RNG: the loss moves away from the dropout-free value, and with it.
    assert abs(first.item() - no_dropout.item()) > 1e-4
    assert abs(first.item() - second.item()) > 1e-5


def _views(stage, model, batch, recipe):
    """The two dropout views' embeddings of one batch, as the stage's loss sees them."""
    from llm2vec_lite.stages.base import concat_batches
    from llm2vec_lite.tokenization import _pad_id

    both = concat_batches([batch.data, batch.data], _pad_id(stage.tokenizer))
    emb = embed(model, both, recipe.pooling)
    n = batch.data.input_ids.shape[0]
    return emb[:n], emb[n:]


def test_hidden_dropout_separates_views_that_attention_dropout_alone_leaves_equal(recipe):
    model, tok = load_tiny(recipe)
    plain, batch = _training(recipe, model, tok, dropout=0.0)
    a, b = _views(plain, model, batch, recipe)
    torch.testing.assert_close(a, b)  # no noise at all: identical views
    plain.cleanup(model)

    stage, _ = _training(recipe, model, tok, dropout=0.0, hidden_dropout=0.3)
    torch.manual_seed(0)
    a, b = _views(stage, model, batch, recipe)
    assert (a - b).abs().max() > 1e-3  # the sublayer hooks alone make the views differ
    model.eval()
    a, b = _views(stage, model, batch, recipe)
    torch.testing.assert_close(a, b)  # hooks act in training mode only
    stage.cleanup(model)
    model.train()
    a, b = _views(plain, model, batch, recipe)
    torch.testing.assert_close(a, b)  # cleanup removed every hook


def test_hidden_dropout_hooks_every_attention_and_mlp_sublayer(recipe):
    from llm2vec_lite.modeling import decoder_layers
    from llm2vec_lite.stages.simcse import add_hidden_dropout

    model, _ = load_tiny(recipe)
    holder, name = decoder_layers(model)
    handles = add_hidden_dropout(model, 0.1)
    assert len(handles) == 2 * len(getattr(holder, name))
    for block in getattr(holder, name):
        assert block.self_attn._forward_hooks and block.mlp._forward_hooks
    for h in handles:
        h.remove()
    assert not any(block.mlp._forward_hooks for block in getattr(holder, name))


def test_hidden_dropout_unset_keeps_the_stage_fingerprint(recipe):
    """Adding the field changed no finished stage: unset (null) is left out of the hash; a value counts."""
    assert recipe.stages[1].hidden_dropout is None
    assert "hidden_dropout" not in recipe._hashable()["stages"][1]
    changed = recipe.model_copy(deep=True)
    changed.stages[1] = changed.stages[1].model_copy(update={"hidden_dropout": 0.1})
    assert changed.stage_fingerprint(1) != recipe.stage_fingerprint(1)
    assert changed.stage_fingerprint(0) == recipe.stage_fingerprint(0)


def test_saturated_first_batch_warns_with_the_fix(recipe, caplog):
    from llm2vec_lite.stages.simcse import warn_if_saturated

    cfg = recipe.stages[1]
    with caplog.at_level("WARNING", logger="llm2vec_lite.stages.simcse"):
        assert warn_if_saturated(0.004, 0.976, 0.44, cfg)
    assert "set hidden_dropout: 0.1" in caplog.text and "0.976" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="llm2vec_lite.stages.simcse"):
        assert not warn_if_saturated(0.17, 0.82, 0.47, cfg)  # views far enough apart: learns
        assert warn_if_saturated(0.01, 0.93, 0.45, cfg.model_copy(update={"hidden_dropout": 0.05}))
    assert "raise hidden_dropout (now 0.05)" in caplog.text


def test_only_the_first_batch_is_checked(recipe, monkeypatch):
    from llm2vec_lite.stages import simcse

    seen = []
    monkeypatch.setattr(simcse, "warn_if_saturated", lambda loss, pos, neg, cfg: seen.append(loss) or False)
    model, tok = load_tiny(recipe)
    stage = _stage(recipe, dropout=0.1)
    stage.setup(model, tok)
    model.train()
    batches = stage.batches(0)
    first = stage.loss(model, next(batches))
    stage.loss(model, next(batches))
    assert seen == [pytest.approx(float(first))]
    resumed = _stage(recipe, dropout=0.1)
    resumed.setup(model, tok)
    resumed.loss(model, next(resumed.batches(5)))  # a resumed run's first batch is mid-training
    assert len(seen) == 1
