"""Supervised contrastive training on (query, positive[, hard negative]) rows, with optional GradCache.

Queries (anchors, with their query instruction) are scored against a pool of candidates: every
positive of the global batch, then every hard negative (documents, with their document instruction):

    loss_i = -log( exp(s(q_i, d_i+)/tau) / ( sum_j exp(s(q_i, d_j+)/tau) + sum_j exp(s(q_i, d_j-)/tau) ) )

with ``s`` the cosine similarity. Under ``accelerate launch`` candidates are gathered from all
processes WITH gradients (:func:`llm2vec_lite.losses.gather_with_grad`), so two processes with 4
rows each train exactly like one process with 8.

GradCache (``gradcache_chunk_size``): a batch too large for memory is embedded in chunks without
gradients; the loss and its gradient with respect to the (detached) embeddings are computed once;
then each chunk is embedded again with gradients and ``sum(emb * d loss / d emb)`` is
back-propagated. The torch RNG state is saved before each chunk's first pass and restored for its
second, so dropout masks match and the parameter gradients equal those of the plain loss
(``tests/stages/test_supervised.py`` checks it). Memory then scales with the chunk, not the batch.

Inputs: columns ``anchor, positive, negative`` (``anchor, positive`` with ``hard_negatives: false``).
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
from collections.abc import Iterator

import torch

from llm2vec_lite.data import InstructedRow
from llm2vec_lite.losses import gather_with_grad, info_nce, process_rank
from llm2vec_lite.pooling import embed, needs_eos
from llm2vec_lite.stages import register_stage
from llm2vec_lite.stages.base import (
    EMBED_BUCKET_TOKENS,
    BatchSampler,
    Stage,
    StageBatch,
    concat_batches,
    local_slice,
    slice_batch,
)
from llm2vec_lite.tokenization import TokenizedBatch, _pad_id, tokenize


class SupervisedStage(Stage):
    """InfoNCE with in-batch and hard negatives, gathered across processes (see module docstring)."""

    kind = "supervised"
    head = "base"

    def __init__(self, cfg, recipe, index: int):
        super().__init__(cfg, recipe, index)
        self.rows_data: list[InstructedRow] | None = None

    def check_data(self) -> None:
        """Read the rows now so a bad file fails before any model loads. Raises DataError."""
        from llm2vec_lite.data import read_instructed_rows

        self.rows_data = read_instructed_rows(
            self.cfg.data,
            self.cfg.columns(),
            query_instruction=self.cfg.query_instruction,
            document_instruction=self.cfg.document_instruction,
        )

    def setup(self, model, tokenizer):
        """Build the sampler; nothing changes in the model."""
        if self.rows_data is None:
            self.check_data()
        self.tokenizer = tokenizer
        self.sampler = BatchSampler(len(self.rows_data), self.cfg.batch_size, self.seed)
        self.rows = local_slice(self.cfg.batch_size)
        return model

    def batches(self, start: int) -> Iterator[StageBatch]:
        """This process's slice of global batch ``start``, ``start + 1``, ... as one tokenized batch.

        Rows of the batch: ``n`` queries, then ``n`` positives, then ``n`` hard negatives (if used).
        """
        eos = needs_eos(self.pooling)
        m = start
        while True:
            rows = [self.rows_data[i] for i in self.sampler.batch(m)][self.rows]
            q = tokenize(
                self.tokenizer,
                [r.texts[0] for r in rows],
                max_length=self.max_length,
                instruction=[r.query_instruction for r in rows],
                add_eos=eos,
            )
            sides = 2 if self.cfg.hard_negatives else 1  # positives, then negatives
            d = tokenize(
                self.tokenizer,
                [r.texts[k] for k in range(1, 1 + sides) for r in rows],
                max_length=self.max_length,
                instruction=[r.document_instruction for _ in range(sides) for r in rows],
                add_eos=eos,
            )
            tb = concat_batches([q, d], _pad_id(self.tokenizer))  # (n * (2 or 3), seq)
            yield StageBatch(tb, tb.input_ids.shape[0], int(tb.attention_mask.sum()))
            m += 1

    def embedding_loss(self, emb: torch.Tensor) -> torch.Tensor:
        """InfoNCE from the embeddings of one batch (queries, positives[, negatives] stacked)."""
        n = emb.shape[0] // (3 if self.cfg.hard_negatives else 2)
        queries, docs = emb[:n], emb[n:]  # (n, dim), (n or 2n, dim)
        candidates = gather_with_grad(docs[:n])  # all positives: (world * n, dim)
        if self.cfg.hard_negatives:
            candidates = torch.cat([candidates, gather_with_grad(docs[n:])])  # + negatives: (2 world n, dim)
        rank, _ = process_rank()
        positive = torch.arange(n, device=emb.device) + rank * n
        return info_nce(queries, candidates, self.cfg.temperature, positive)

    def loss(self, model, batch: StageBatch) -> torch.Tensor:
        """Embed the whole batch in one forward and take the InfoNCE loss."""
        tb: TokenizedBatch = batch.data.to(next(model.parameters()).device)
        return self.embedding_loss(embed(model, tb, self.pooling, bucket_tokens=EMBED_BUCKET_TOKENS))

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
        size, chunk = tb.input_ids.shape[0], self.cfg.gradcache_chunk_size
        chunks = [slice(i, min(i + chunk, size)) for i in range(0, size, chunk)]
        cpu_states, cuda_states, parts = [], [], []
        with torch.no_grad():  # pass 1: embeddings only, remembering each chunk's RNG state
            for rows in chunks:
                cpu_states.append(torch.get_rng_state())
                cuda_states.append(torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
                parts.append(
                    embed(model, slice_batch(tb, rows), self.pooling, bucket_tokens=EMBED_BUCKET_TOKENS)
                )
        emb = torch.cat(parts).detach().requires_grad_(True)  # (size, dim)
        loss = self.embedding_loss(emb)
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
                part = embed(
                    model, slice_batch(tb, rows), self.pooling, bucket_tokens=EMBED_BUCKET_TOKENS
                )  # (chunk, dim)
                accelerator.backward((part.float() * grad[rows]).sum())  # chain rule through the cache
        return loss.detach()


register_stage("supervised", SupervisedStage)
