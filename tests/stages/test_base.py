"""The shared stage machinery: deterministic resumable sampler, batch slicing, registry."""

from __future__ import annotations

import pytest
import torch

from llm2vec_lite.errors import DataError, RecipeError
from llm2vec_lite.stages import get_stage, register_stage, registered_stages
from llm2vec_lite.stages.base import (
    BatchSampler,
    Stage,
    StageBatch,
    WeightedBatchSampler,
    concat_batches,
    gradcache_chunks,
    local_slice,
    slice_batch,
)
from llm2vec_lite.tokenization import TokenizedBatch


def test_sampler_is_a_pure_function_of_seed_and_index():
    a, b = BatchSampler(50, 8, seed=3), BatchSampler(50, 8, seed=3)
    first = [a.batch(i) for i in range(20)]
    assert [b.batch(i) for i in reversed(range(20))] == list(reversed(first))
    assert BatchSampler(50, 8, seed=4).batch(0) != first[0]


def test_sampler_epoch_covers_rows_without_repeats_inside_a_batch():
    s = BatchSampler(20, 6, seed=0)  # 3 batches an epoch, 2 rows dropped
    epoch = [i for k in range(3) for i in s.batch(k)]
    assert len(set(epoch)) == 18 and all(0 <= i < 20 for i in epoch)
    assert all(len(set(s.batch(k))) == 6 for k in range(12))
    assert s.batch(3) != s.batch(0)  # next epoch reshuffles


def test_sampler_refuses_fewer_rows_than_batch_size():
    with pytest.raises(DataError, match="3 texts but batch_size is 4"):
        BatchSampler(3, 4, seed=0, what="texts")


def _source(index: int, sizes: list[int]) -> int:
    """Which source a row index into the concatenated sources belongs to."""
    return next(s for s in range(len(sizes)) if index < sum(sizes[: s + 1]))


def test_weighted_sampler_draws_sources_in_proportion_to_their_weights():
    sizes, weights = [30, 500, 7], [1.0, 2.0, 1.0]
    s = WeightedBatchSampler(sizes, weights, 16, seed=0)
    counts = [0, 0, 0]
    for k in range(600):  # crosses two chunks of CHUNK batches
        batch = s.batch(k)
        assert len(batch) == 16 and all(0 <= i < sum(sizes) for i in batch)
        for i in batch:
            counts[_source(i, sizes)] += 1
    shares = [c / sum(counts) for c in counts]
    assert shares == pytest.approx([0.25, 0.5, 0.25], abs=0.02)


def test_weighted_sampler_is_a_pure_function_of_seed_and_index():
    sizes, weights = [40, 9, 300], [3.0, 1.0, 1.0]
    first = [WeightedBatchSampler(sizes, weights, 8, seed=5).batch(k) for k in (0, 700, 3)]
    s = WeightedBatchSampler(sizes, weights, 8, seed=5)
    forward = [s.batch(k) for k in range(800)]
    assert [forward[0], forward[700], forward[3]] == first  # a fresh sampler resumes anywhere
    resumed = WeightedBatchSampler(sizes, weights, 8, seed=5)
    assert [resumed.batch(k) for k in range(500, 800)] == forward[500:]
    assert WeightedBatchSampler(sizes, weights, 8, seed=6).batch(0) != forward[0]


def test_weighted_sampler_cycles_each_source_through_all_its_rows_before_repeating():
    sizes = [10, 1000]
    s = WeightedBatchSampler(sizes, [1.0, 1.0], 4, seed=1)
    small = [i for k in range(200) for i in s.batch(k) if i < 10]  # about 400 draws of a 10-row source
    assert len(small) >= 30
    for start in range(0, len(small) - 9, 10):
        assert sorted(small[start : start + 10]) == list(range(10))  # each pass is a permutation
    assert small[:10] != small[10:20]  # and each pass reshuffles


def test_single_source_batches_keep_each_batch_in_one_source_and_the_shares():
    sizes, weights = [32, 500, 8], [1.0, 2.0, 1.0]  # multiples of 4: no batch straddles two passes
    s = WeightedBatchSampler(sizes, weights, 4, seed=0, per_batch=True)
    counts = [0, 0, 0]
    for k in range(2000):
        batch = s.batch(k)
        sources = {_source(i, sizes) for i in batch}
        assert len(sources) == 1 and len(set(batch)) == 4  # one source, no row twice
        counts[sources.pop()] += 1
    assert [c / sum(counts) for c in counts] == pytest.approx([0.25, 0.5, 0.25], abs=0.03)
    resumed = WeightedBatchSampler(sizes, weights, 4, seed=0, per_batch=True)
    assert [resumed.batch(k) for k in (1999, 3, 700)] == [s.batch(k) for k in (1999, 3, 700)]


def test_weighted_sampler_refuses_bad_weights_and_empty_sources():
    with pytest.raises(DataError, match="every weight must be > 0"):
        WeightedBatchSampler([3, 3], [1.0, 0.0], 2, seed=0)
    with pytest.raises(DataError, match="at least one row"):
        WeightedBatchSampler([3, 0], [1.0, 1.0], 2, seed=0)
    with pytest.raises(DataError, match="2 sources but 1 weights"):
        WeightedBatchSampler([3, 3], [1.0], 2, seed=0)


def test_local_slice_is_whole_batch_in_one_process():
    assert local_slice(6) == slice(0, 6)


def test_local_slice_refuses_batch_not_divisible_by_processes(monkeypatch):
    import llm2vec_lite.losses as losses

    monkeypatch.setattr(losses, "_world", lambda: (1, 4))
    assert local_slice(8) == slice(2, 4)
    with pytest.raises(RecipeError, match="not a multiple of the 4 processes"):
        local_slice(6)


def _tb(rows: list[list[int]]) -> TokenizedBatch:
    width = max(map(len, rows))
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    attn = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return TokenizedBatch(ids, attn, attn.clone(), 0)


def test_concat_then_slice_gives_back_each_part_trimmed():
    a, b = _tb([[5, 6], [7]]), _tb([[1, 2, 3, 4]])
    both = concat_batches([a, b], pad_id=0)
    assert both.input_ids.shape == (3, 4)
    back = slice_batch(both, slice(0, 2))
    torch.testing.assert_close(back.input_ids, a.input_ids)
    torch.testing.assert_close(back.attention_mask, a.attention_mask)


def test_gradcache_chunks_cover_every_row_once_sorted_and_no_wider_than_chunk_rows():
    # 24 queries of 20 tokens, 48 documents of 60-128 tokens: a retrieval batch of 24 triplets
    gen = torch.Generator().manual_seed(0)
    lengths = [20] * 24 + torch.randint(60, 129, (48,), generator=gen).tolist()
    chunks = gradcache_chunks(lengths, 8)
    assert sorted(i for c in chunks for i in c) == list(range(72))
    budget = 8 * max(lengths)
    assert all(len(c) * max(lengths[i] for i in c) <= budget for c in chunks)
    flat = [lengths[i] for c in chunks for i in c]
    assert flat == sorted(flat)  # consecutive in length order: no query padded to a document
    assert set(chunks[0]) == set(range(24))  # the queries: one chunk, not spread over nine
    padded = sum(len(c) * max(lengths[i] for i in c) for c in chunks)
    assert padded < 0.8 * 9 * budget  # fixed chunks of 8 would each pad to a document's length
    # equal lengths: ceil(size / chunk) chunks of at most `chunk` rows, as a plain batch of `chunk`
    even = gradcache_chunks([50] * 10, 4)
    assert [len(c) for c in even] == [4, 4, 2]
    assert gradcache_chunks([], 4) == []


def test_slice_batch_takes_listed_rows():
    both = concat_batches([_tb([[5, 6], [7]]), _tb([[1, 2, 3, 4]])], pad_id=0)
    picked = slice_batch(both, [1, 0])
    torch.testing.assert_close(picked.input_ids, torch.tensor([[7, 0], [5, 6]]))


def test_registry_knows_the_three_stages_and_refuses_duplicates():
    assert registered_stages() == ["mntp", "simcse", "supervised"]
    with pytest.raises(ValueError, match="already registered"):
        register_stage("mntp", get_stage("mntp"))
    with pytest.raises(RecipeError, match="Unknown stage kind 'dpo'"):
        get_stage("dpo")


class _Toy(Stage):
    """Fit one weight to 0; counts which of its hooks the loop called."""

    kind = "toy"

    def __init__(self, gradcache: bool) -> None:  # no recipe: the loop reads only the hooks
        self.gradcache, self.calls = gradcache, {"loss": 0, "gradcache_backward": 0}

    def check_data(self) -> None:
        pass

    def batches(self, start: int):
        while True:
            yield StageBatch(torch.ones(1), 1, 1)

    def loss(self, model, batch: StageBatch) -> torch.Tensor:
        self.calls["loss"] += 1
        return (model(batch.data) ** 2).sum()

    def backward(self, *args, **kwargs):  # a method of this name no longer means GradCache
        raise AssertionError("the loop called stage.backward")

    def supports_gradcache(self) -> bool:
        return self.gradcache

    def gradcache_backward(
        self, model, batch: StageBatch, *, scale: float, accelerator, sync: bool
    ) -> torch.Tensor:
        self.calls["gradcache_backward"] += 1
        loss = (model(batch.data) ** 2).sum()
        accelerator.backward(loss * scale)
        return loss.detach()


@pytest.mark.parametrize("gradcache", [False, True])
def test_the_loop_asks_the_stage_whether_it_does_gradcache(gradcache, tmp_path):
    from llm2vec_lite.trainer import LoopSettings, make_accelerator, train

    stage, model = _Toy(gradcache), torch.nn.Linear(1, 1, bias=False)
    settings = LoopSettings(steps=3, learning_rate=0.1, gradient_accumulation_steps=2, checkpoint_every=100)
    torch.nn.init.ones_(model.weight)  # Adam moves it by the step's lr, towards 0
    train(stage, model, settings, work_dir=tmp_path, accelerator=make_accelerator("none"))
    want = {"loss": 0, "gradcache_backward": 6} if gradcache else {"loss": 6, "gradcache_backward": 0}
    assert stage.calls == want
    assert model.weight.item() == pytest.approx(0.8, abs=1e-3)  # 3 Adam steps, lr 0.1 decaying linearly


def test_register_stage_wants_a_stage_with_every_hook():
    class NotAStage:
        def check_data(self): ...
        def setup(self, model, tokenizer): ...
        def batches(self, start): ...
        def loss(self, model, batch): ...
        def cleanup(self, model): ...

    class NoLoss(Stage):
        kind = "no-loss"

        def check_data(self): ...
        def batches(self, start): ...

    with pytest.raises(ValueError, match="must subclass llm2vec_lite.stages.base.Stage"):
        register_stage("duck", NotAStage)
    with pytest.raises(ValueError, match="NoLoss lacks loss"):
        register_stage("no-loss", NoLoss)
    assert "duck" not in registered_stages() and "no-loss" not in registered_stages()
    assert not _Toy(False).supports_gradcache()
    with pytest.raises(NotImplementedError, match="'toy' does not support GradCache"):
        Stage.gradcache_backward(_Toy(True), None, None, scale=1.0, accelerator=None, sync=True)
