"""Supervised InfoNCE: hard negatives and instructions, and GradCache matching the plain gradients."""

from __future__ import annotations

import pytest
import torch
from tiny_project import load_tiny

from llm2vec_lite.losses import info_nce
from llm2vec_lite.pooling import embed
from llm2vec_lite.stages.simcse import set_dropout
from llm2vec_lite.stages.supervised import SupervisedStage
from llm2vec_lite.tokenization import tokenize


def _stage(recipe, **changes):
    return SupervisedStage(recipe.stages[2].model_copy(update=changes), recipe, 2)


def _grads(model) -> dict[str, torch.Tensor]:
    out = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out


def test_loss_scores_queries_against_all_positives_and_hard_negatives(recipe):
    model, tok = load_tiny(recipe)
    stage = _stage(recipe, query_instruction="Query: ", document_instruction="Doc: ")
    stage.setup(model, tok)
    model.eval()
    batch = next(stage.batches(0))
    rows = [stage.rows_data[i] for i in stage.sampler.batch(0)]

    def emb(texts, instruction):
        return embed(model, tokenize(tok, texts, max_length=64, instruction=instruction), "mean")

    q = emb([r.texts[0] for r in rows], "Query: ")
    pos, neg = emb([r.texts[1] for r in rows], "Doc: "), emb([r.texts[2] for r in rows], "Doc: ")
    want = info_nce(q, torch.cat([pos, neg]), 0.05)
    torch.testing.assert_close(stage.loss(model, batch), want, rtol=1e-4, atol=1e-5)
    assert batch.sequences == 3 * len(rows)


def test_pairs_without_hard_negatives_use_in_batch_negatives_only(recipe):
    """hard_negatives: false on triplet data: the third column must not enter the candidate pool."""
    model, tok = load_tiny(recipe)
    stage = _stage(recipe, hard_negatives=False)
    stage.setup(model, tok)
    model.eval()
    batch = next(stage.batches(0))
    assert batch.sequences == 2 * 4
    rows = [stage.rows_data[i] for i in stage.sampler.batch(0)]
    assert all(len(r.texts) == 2 for r in rows)  # the negative column was never read

    def emb(texts):
        return embed(model, tokenize(tok, texts, max_length=64), "mean")

    negatives = [line.split("\t")[2] for line in (recipe.base_dir / "triplets.tsv").read_text().splitlines()[1:]]
    q, pos = emb([r.texts[0] for r in rows]), emb([r.texts[1] for r in rows])
    neg = emb(negatives[:4])
    loss = stage.loss(model, batch)
    torch.testing.assert_close(loss, info_nce(q, pos, 0.05), rtol=1e-4, atol=1e-5)  # pool = the positives
    assert not torch.allclose(loss, info_nce(q, torch.cat([pos, neg]), 0.05), rtol=1e-3)


def test_symmetric_adds_positives_scored_against_all_anchors(recipe):
    """symmetric: true = the mean of anchor -> (positives + hard negatives) and positive -> anchors."""
    model, tok = load_tiny(recipe)
    stage = _stage(recipe, symmetric=True)
    stage.setup(model, tok)
    model.eval()
    batch = next(stage.batches(0))
    rows = [stage.rows_data[i] for i in stage.sampler.batch(0)]
    assert len({r.texts[0] for r in rows}) == len(rows)  # distinct anchors: nothing to mask

    def emb(texts):
        return embed(model, tokenize(tok, texts, max_length=64), "mean")

    q, pos, neg = (emb([r.texts[k] for r in rows]) for k in range(3))
    forward = info_nce(q, torch.cat([pos, neg]), 0.05)
    got = stage.loss(model, batch)
    torch.testing.assert_close(got, (forward + info_nce(pos, q, 0.05)) / 2, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(got, forward, rtol=1e-3)


def test_symmetric_masks_duplicate_texts_both_ways(recipe):
    """Row 0's positive "b" is row 1's anchor: each direction leaves that copy out of the negatives."""
    from llm2vec_lite.data import InstructedRow
    from llm2vec_lite.stages.supervised import BatchLayout, row_keys

    stage = _stage(recipe, symmetric=True, hard_negatives=False)
    rows = [InstructedRow(texts=("a", "b")), InstructedRow(texts=("b", "c")), InstructedRow(texts=("d", "e"))]
    layout = BatchLayout(n=3, negative_rows=torch.zeros(0, dtype=torch.long), keys=row_keys(rows))
    torch.manual_seed(0)
    q, pos = torch.randn(3, 8), torch.randn(3, 8)
    forward_mask, back_mask = torch.zeros(3, 3, dtype=torch.bool), torch.zeros(3, 3, dtype=torch.bool)
    forward_mask[1, 0] = True  # anchor "b" against row 0's positive "b"
    back_mask[0, 1] = True  # positive "b" against row 1's anchor "b"
    want = (info_nce(q, pos, 0.05, mask=forward_mask) + info_nce(pos, q, 0.05, mask=back_mask)) / 2
    torch.testing.assert_close(stage.embedding_loss(torch.cat([q, pos]), layout), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("symmetric", [False, True])
def test_gradcache_gives_the_plain_loss_and_parameter_gradients(recipe, accelerator, symmetric):
    model, tok = load_tiny(recipe)
    plain, cached = _stage(recipe, symmetric=symmetric), _stage(recipe, gradcache_chunk_size=5, symmetric=symmetric)
    plain.setup(model, tok)
    cached.setup(model, tok)
    assert not plain.supports_gradcache() and cached.supports_gradcache()
    model.train()  # dropout is 0 in the tiny model, so the two passes see the same function
    batch = next(plain.batches(0))
    loss = plain.loss(model, batch)
    loss.backward()
    want = _grads(model)
    got_loss = cached.gradcache_backward(model, batch, scale=1.0, accelerator=accelerator, sync=True)
    got = _grads(model)
    torch.testing.assert_close(got_loss, loss.detach(), rtol=1e-5, atol=1e-5)
    assert want.keys() == got.keys() and len(want) > 0
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)


def test_gradcache_replays_each_chunks_dropout(recipe, accelerator):
    """With dropout on, GradCache equals embedding the chunks one after another with gradients."""
    model, tok = load_tiny(recipe, lora_dropout=0.3)
    set_dropout(model, 0.3)
    stage = _stage(recipe, gradcache_chunk_size=4)
    stage.setup(model, tok)
    model.train()
    batch = next(stage.batches(0))

    from llm2vec_lite.stages.base import EMBED_BUCKET_TOKENS, gradcache_chunks, slice_batch

    torch.manual_seed(123)
    chunks = gradcache_chunks(batch.data.attention_mask.sum(dim=1).tolist(), 4)  # 12 texts by length
    assert len(chunks) > 1
    parts = [embed(model, slice_batch(batch.data, rows), "mean", bucket_tokens=EMBED_BUCKET_TOKENS) for rows in chunks]
    order = torch.tensor([i for rows in chunks for i in rows])
    ref_loss = stage.embedding_loss(torch.cat(parts)[torch.argsort(order)])
    ref_loss.backward()
    want = _grads(model)

    torch.manual_seed(123)
    got_loss = stage.gradcache_backward(model, batch, scale=1.0, accelerator=accelerator, sync=True)
    got = _grads(model)
    torch.testing.assert_close(got_loss, ref_loss.detach(), rtol=1e-5, atol=1e-5)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)


def test_rows_carry_their_own_query_instruction_and_none_on_documents(recipe, tmp_path):
    """instruction_column: each query gets its row's cell (an empty cell: the stage's), documents none."""
    from llm2vec_lite.recipe import DataSource
    from llm2vec_lite.tokenization import encode_rows

    model, tok = load_tiny(recipe)
    own = ["Retrieve the answer: ", "", "Find a paraphrase of this: ", "Classify it: "]
    lines = ["anchor\tpositive\tnegative\tinstruction"] + [
        f"query {i} the\tpositive {i} a\tnegative {i} of\t{own[i]}" for i in range(4)
    ]
    (tmp_path / "rows.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    source = DataSource(path=str(tmp_path / "rows.tsv"), instruction_column="instruction")
    stage = _stage(recipe, data=source, batch_size=4, query_instruction="Stage: ", document_instruction=None)
    stage.setup(model, tok)
    batch = next(stage.batches(0)).data
    order = stage.sampler.batch(0)
    want_query = {i: own[i].strip() + " " if own[i] else "Stage: " for i in range(4)}  # default template

    def check(row: int, text: str, instruction: str | None) -> None:
        (expected,) = encode_rows(tok, [text], max_length=64, instruction=instruction)
        n = len(expected.ids)
        assert int(batch.attention_mask[row].sum()) == n
        assert batch.input_ids[row, :n].tolist() == expected.ids
        assert batch.pool_mask[row, :n].tolist() == expected.pool

    for k, i in enumerate(order):
        check(k, f"query {i} the", want_query[i])
        assert int(batch.pool_mask[k].sum()) < int(batch.attention_mask[k].sum())  # instruction unpooled
        check(4 + k, f"positive {i} a", None)
        check(8 + k, f"negative {i} of", None)


def test_symmetric_off_keeps_the_stage_fingerprint(recipe):
    """Adding the field changed no finished stage: false (the default) hashes as before; true counts."""
    assert recipe.stages[2].symmetric is False
    assert "symmetric" not in recipe._hashable()["stages"][2]
    changed = recipe.model_copy(deep=True)
    changed.stages[2] = changed.stages[2].model_copy(update={"symmetric": True})
    assert changed.stage_fingerprint(2) != recipe.stage_fingerprint(2)
    assert changed.stage_fingerprint(1) == recipe.stage_fingerprint(1)
