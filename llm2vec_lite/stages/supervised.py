"""Supervised contrastive training on (query, positive[, hard negative]) rows, with optional GradCache.

Queries (anchors, with their query instruction) are scored against a pool of candidates: every
positive of the global batch, then every hard negative (documents, with their document instruction):

    loss_i = -log( exp(s(q_i, d_i+)/tau) / ( sum_j exp(s(q_i, d_j+)/tau) + sum_j exp(s(q_i, d_j-)/tau) ) )

with ``s`` the cosine similarity. With ``symmetric: true`` the loss also runs the other way, each
positive against every anchor of the batch (its own is the target; hard negatives take no part),
and the two are averaged: both sides of a pair get in-batch negatives, as STS's symmetric scoring
treats them. Under ``accelerate launch`` candidates are gathered from all
processes WITH gradients (:func:`llm2vec_lite.losses.gather_with_grad`), so two processes with 4
rows each train exactly like one process with 8.

Pairs and triplets mix in one batch: a row without a hard negative adds none to the pool. The
negatives part of the pool has a fixed shape by design, one slot per row: a row without a negative
leaves its slot empty (zeros, masked out), so every process gathers the same shape whatever mix of
pairs and triplets it holds, and the result does not depend on how rows fall across processes.

False negatives are masked out of the denominator (:func:`llm2vec_lite.losses.info_nce` ``mask``):
for query ``i``, another row's positive is left out when the two rows share a group (captions of
one image, a source's ``group_column``), share their query text (NLI rows of one premise: each
entailed hypothesis is a positive of it), or when the candidate's text is the query's own text or
its positive's text (a duplicate); a hard negative is left out when its text is the query's or its
positive's. Rows are compared through integer ids (:class:`BatchLayout`), gathered across processes
like the embeddings, so the mask is the same on one process or many, with or without GradCache.

GradCache (``gradcache_chunk_size``): a batch too large for memory is embedded in chunks (texts
sorted by length, at most ``chunk`` texts of the batch's longest length in padded tokens each:
:func:`~llm2vec_lite.stages.base.gradcache_chunks`) without gradients; the loss and its gradient with respect to the (detached) embeddings are computed once;
then each chunk is embedded again with gradients and ``sum(emb * d loss / d emb)`` is
back-propagated. The torch RNG state is saved before each chunk's first pass and restored for its
second, so dropout masks match and the parameter gradients equal those of the plain loss
(``tests/stages/test_supervised.py`` checks it). Memory then scales with the chunk, not the batch.

Inputs: columns ``anchor, positive, negative`` (``anchor, positive`` with ``hard_negatives: false``;
a source may give pairs, NLI rows or caption groups, see :mod:`llm2vec_lite.data`). With a
``weight`` on its sources, batches mix them by weight (:class:`~llm2vec_lite.stages.base.WeightedBatchSampler`).
Instructions are per row (:func:`llm2vec_lite.data.read_instructed_rows`): a row's own
``instruction_column`` cell, else its source's, else the stage's ``query_instruction`` on the query;
the source's or the stage's ``document_instruction`` on its positive and negative. A per-row
instruction goes on the query side only (the E5 rule); for symmetric tasks (LLM2Vec's Quora and
half of NLI) a source sets ``document_instruction`` too. Instructions are attended to and left out
of pooling.

References:
    BehnamGhader et al. 2024, "LLM2Vec", arXiv:2404.05961 (supervised stage, E5 data).
    Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup",
    arXiv:2101.06983 (GradCache).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from llm2vec_lite.data import InstructedRow
from llm2vec_lite.losses import contrastive_stats, gather, gather_with_grad, info_nce, process_rank, same_key
from llm2vec_lite.pooling import needs_eos
from llm2vec_lite.stages import register_stage
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
from llm2vec_lite.tokenization import TokenizedBatch, _pad_id, tokenize

# Columns of BatchLayout.keys: ids (-1 = none) that say when two rows are the same for the loss.
GROUP, QUERY, POSITIVE, NEGATIVE, HAS_NEGATIVE = range(5)
# The same columns with query and positive exchanged: the keys as the symmetric loss's reverse
# direction (positives as queries, anchors as candidates) sees them.
SWAPPED = [GROUP, POSITIVE, QUERY, NEGATIVE, HAS_NEGATIVE]


@dataclass
class BatchLayout:
    """What the loss needs to know about this process's part of a batch besides the embeddings.

    Attributes:
        n: rows (queries) of this process.
        negative_rows: (k,) long, the row of each hard negative embedded after the positives.
        keys: (n, 5) long: the row's group id, the ids of its query, positive and negative texts
            (-1 = none) and 1 when it has a hard negative (columns ``GROUP`` .. ``HAS_NEGATIVE``).
    """

    n: int
    negative_rows: torch.Tensor
    keys: torch.Tensor


def row_keys(rows: Sequence[InstructedRow]) -> torch.Tensor:
    """(len(rows), 5) long ids for :class:`BatchLayout`: equal texts and groups get equal ids.

    Ids come from the rows' order, so every process, reading the same data, gives the same ids
    (Python's ``hash`` of a string differs between processes).
    """
    texts: dict[str, int] = {}
    groups: dict[str, int] = {}
    out = []
    for r in rows:
        group = groups.setdefault(r.group, len(groups)) if r.group is not None else -1
        negative = texts.setdefault(r.texts[2], len(texts)) if len(r.texts) > 2 else -1
        query, positive = texts.setdefault(r.texts[0], len(texts)), texts.setdefault(r.texts[1], len(texts))
        out.append((group, query, positive, negative, int(len(r.texts) > 2)))
    return torch.tensor(out, dtype=torch.long).view(-1, 5)


def false_negative_mask(
    local: torch.Tensor, everyone: torch.Tensor, positive: torch.Tensor, hard_negatives: bool
) -> torch.Tensor:
    """(n, candidates) bool: the candidates each query must not count as negatives.

    Args:
        local: (n, 5) keys of this process's rows (the queries).
        everyone: (world * n, 5) keys of all processes' rows, in candidate order.
        positive: (n,) candidate index of each query's own positive (never masked).
        hard_negatives: the pool ends with one hard-negative slot per row of ``everyone``.
    """
    q, c = local, everyone
    mask = (
        same_key(q[:, GROUP], c[:, GROUP])
        | same_key(q[:, QUERY], c[:, QUERY])
        | same_key(q[:, POSITIVE], c[:, POSITIVE])
        | same_key(q[:, QUERY], c[:, POSITIVE])
    )  # (n, world n): other rows' positives
    if hard_negatives:
        empty = (c[:, HAS_NEGATIVE] == 0)[None, :].expand(q.shape[0], -1)
        duplicate = same_key(q[:, POSITIVE], c[:, NEGATIVE]) | same_key(q[:, QUERY], c[:, NEGATIVE])
        mask = torch.cat([mask, empty | duplicate], dim=1)  # (n, 2 world n)
    mask[torch.arange(q.shape[0], device=mask.device), positive] = False
    return mask


class SupervisedStage(Stage):
    """InfoNCE with in-batch and hard negatives, gathered across processes (see module docstring)."""

    kind = "supervised"
    head = "base"

    def __init__(self, cfg, recipe, index: int):
        super().__init__(cfg, recipe, index)
        self.rows_data: list[InstructedRow] | None = None
        self.source_sizes: list[int] = []

    def check_data(self) -> None:
        """Read the rows now so a bad file fails before any model loads. Raises DataError."""
        from llm2vec_lite.data import read_instructed_rows

        per_source = [
            read_instructed_rows(
                src,
                self.cfg.columns(),
                query_instruction=self.cfg.query_instruction,
                document_instruction=self.cfg.document_instruction,
                min_columns=2,
            )
            for src in self.cfg.sources()
        ]
        self.source_sizes = [len(rows) for rows in per_source]
        self.rows_data = [row for rows in per_source for row in rows]

    def setup(self, model, tokenizer):
        """Build the sampler and the rows' ids, fit the projection if asked; the model is unchanged."""
        if self.rows_data is None:
            self.check_data()
        self.tokenizer = tokenizer
        self.fit_projection(model, tokenizer, [t for r in self.rows_data for t in r.texts[:2] if t])
        weights = [src.weight for src in self.cfg.sources()]
        if all(w is not None for w in weights):
            self.sampler = WeightedBatchSampler(
                self.source_sizes, weights, self.cfg.batch_size, self.seed, per_batch=self.cfg.single_source_batches
            )
        else:
            self.sampler = BatchSampler(len(self.rows_data), self.cfg.batch_size, self.seed)
        self.rows = local_slice(self.cfg.batch_size)
        self.keys = row_keys(self.rows_data)  # (rows, 5)
        return model

    def batches(self, start: int) -> Iterator[StageBatch]:
        """This process's slice of global batch ``start``, ``start + 1``, ... as one tokenized batch.

        Rows of the batch: ``n`` queries, then ``n`` positives, then the hard negatives of the rows
        that have one (in row order); ``meta`` is the :class:`BatchLayout`.
        """
        eos = needs_eos(self.pooling)
        m = start
        while True:
            index = self.sampler.batch(m)[self.rows]
            rows = [self.rows_data[i] for i in index]
            with_negative = [k for k, r in enumerate(rows) if len(r.texts) > 2]
            q = tokenize(
                self.tokenizer,
                [r.texts[0] for r in rows],
                max_length=self.max_length,
                instruction=[r.query_instruction for r in rows],
                add_eos=eos,
            )
            documents = rows + [rows[k] for k in with_negative]
            d = tokenize(
                self.tokenizer,
                [r.texts[1] for r in rows] + [rows[k].texts[2] for k in with_negative],
                max_length=self.max_length,
                instruction=[r.document_instruction for r in documents],
                add_eos=eos,
            )
            tb = concat_batches([q, d], _pad_id(self.tokenizer))  # (2n + negatives, seq)
            layout = BatchLayout(len(rows), torch.tensor(with_negative, dtype=torch.long), self.keys[index])
            yield StageBatch(tb, tb.input_ids.shape[0], int(tb.attention_mask.sum()), layout)
            m += 1

    def _uniform_layout(self, emb: torch.Tensor) -> BatchLayout:
        """The layout of embeddings given without one: all triplets (or all pairs), no ids."""
        n = emb.shape[0] // (3 if self.cfg.hard_negatives else 2)
        keys = torch.full((n, 5), -1, dtype=torch.long)
        keys[:, HAS_NEGATIVE] = int(self.cfg.hard_negatives)
        negatives = torch.arange(n) if self.cfg.hard_negatives else torch.empty(0, dtype=torch.long)
        return BatchLayout(n, negatives, keys)

    def embedding_loss(self, emb: torch.Tensor, layout: BatchLayout | None = None) -> torch.Tensor:
        """InfoNCE from the embeddings of one batch (queries, positives, hard negatives stacked).

        Args:
            emb: (2n + k, dim) this process's embeddings in :meth:`batches` order.
            layout: the batch's :class:`BatchLayout` (``StageBatch.meta``); None = every row is a
                triplet (a pair with ``hard_negatives: false``) and nothing is masked.
        """
        layout = layout if layout is not None else self._uniform_layout(emb)
        n, device = layout.n, emb.device
        queries, positives, negatives = emb[:n], emb[n : 2 * n], emb[2 * n :]  # (n, dim), (n, dim), (k, dim)
        candidates = gather_with_grad(positives)  # all positives: (world n, dim)
        if self.cfg.hard_negatives:  # one slot per row, zeros where a row has no negative (masked)
            slots = emb.new_zeros(n, emb.shape[1]).index_copy(0, layout.negative_rows.to(device), negatives)
            candidates = torch.cat([candidates, gather_with_grad(slots)])  # (2 world n, dim)
        rank, _ = process_rank()
        positive = torch.arange(n, device=device) + rank * n
        local = layout.keys.to(device)
        everyone = gather(local)  # one all-gather of the ids serves both directions
        mask = false_negative_mask(local, everyone, positive, self.cfg.hard_negatives)
        self.record(**contrastive_stats(queries, candidates, positive, mask))
        loss = info_nce(queries, candidates, self.cfg.temperature, positive, mask)
        if not self.cfg.symmetric:
            return loss
        # the other way: each positive picks its own anchor out of every anchor of the batch
        back_mask = false_negative_mask(local[:, SWAPPED], everyone[:, SWAPPED], positive, False)
        back = info_nce(positives, gather_with_grad(queries), self.cfg.temperature, positive, back_mask)
        return (loss + back) / 2

    def loss(self, model, batch: StageBatch) -> torch.Tensor:
        """Embed the whole batch in one forward and take the InfoNCE loss."""
        tb: TokenizedBatch = batch.data.to(next(model.parameters()).device)
        return self.embedding_loss(
            self.embed(model, tb), batch.meta
        )

    def supports_gradcache(self) -> bool:
        """True when the stage sets ``gradcache_chunk_size``: the loop then calls :meth:`gradcache_backward`."""
        return self.cfg.gradcache_chunk_size is not None

    def gradcache_backward(
        self, model, batch: StageBatch, *, scale: float, accelerator, sync: bool
    ) -> torch.Tensor:
        """GradCache: the gradients of :meth:`loss` computed chunk by chunk; returns the loss.

        Args:
            scale: multiply gradients by this (1 / gradient accumulation steps).
            accelerator: the loop's accelerator (for ``backward`` and ``no_sync``).
            sync: all-reduce gradients after the last chunk (False inside accumulation).
        """
        tb: TokenizedBatch = batch.data.to(next(model.parameters()).device)
        chunk = self.cfg.gradcache_chunk_size
        chunks = gradcache_chunks(tb.attention_mask.sum(dim=1).tolist(), chunk)  # length-sorted, no wider than `chunk` rows
        cpu_states, cuda_states, parts = [], [], []
        with torch.no_grad():  # pass 1: embeddings only, remembering each chunk's RNG state
            for rows in chunks:
                cpu_states.append(torch.get_rng_state())
                cuda_states.append(torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
                parts.append(
                    self.embed(model, slice_batch(tb, rows))
                )
        order = torch.tensor([i for rows in chunks for i in rows], device=tb.input_ids.device)
        emb = torch.cat(parts)[torch.argsort(order)].requires_grad_(True)  # batch order: (size, dim)
        loss = self.embedding_loss(emb, batch.meta)
        loss.backward()  # d loss / d emb (across processes through gather_with_grad)
        grad = emb.grad * scale  # (size, dim)
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        for k, rows in enumerate(chunks):  # pass 2: same chunks, same dropout, with gradients
            last = k == len(chunks) - 1
            with (
                torch.random.fork_rng(devices=devices),
                contextlib.nullcontext() if (last and sync) else accelerator.no_sync(model),
            ):
                torch.set_rng_state(cpu_states[k])
                if cuda_states[k] is not None:
                    torch.cuda.set_rng_state_all(cuda_states[k])
                part = self.embed(model, slice_batch(tb, rows))  # (chunk, dim)
                accelerator.backward((part.float() * grad[rows]).sum())  # chain rule through the cache
        return loss.detach()


register_stage("supervised", SupervisedStage)
