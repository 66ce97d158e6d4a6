"""What every training stage shares: the :class:`Stage` base class, the batch sampler, batch helpers.

A stage has the shape of a torchtune recipe, cut down to what differs between stages; the one
training loop (:mod:`llm2vec_lite.trainer`) does everything else. Its hooks, in the order they run::

    stage = SimCSEStage(cfg, recipe, index)  # reads settings only
    stage.check_data()                       # reads the data; DataError before any model loads
    model = stage.setup(model, tokenizer)    # e.g. add a <mask> token, set dropout
    ... the pipeline attaches LoRA, the trainer calls stage.batches(start) and stage.loss(model, b)
    ... (or stage.gradcache_backward(...) when stage.supports_gradcache())
    stage.cleanup(model)                     # undo training-only changes before the model is saved

:class:`Stage` holds the settings every stage reads and the defaults (no setup, no cleanup, no
GradCache); a stage overrides what it needs. GradCache is a declared capability, asked for with
:meth:`Stage.supports_gradcache`, not an attribute the loop probes for.

Batches are a pure function of (seed, micro-batch index): :class:`BatchSampler` shuffles each epoch
with a generator seeded from (seed, epoch). Resuming therefore needs only the number of micro-batches
consumed (the "position"), and a run on N processes sees the same global batches as a run on one:
each process takes its contiguous slice (:func:`local_slice`).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from llm2vec_lite.errors import DataError, RecipeError
from llm2vec_lite.tokenization import TokenizedBatch

__all__ = [
    "BatchSampler",
    "Stage",
    "StageBatch",
    "WeightedBatchSampler",
    "concat_batches",
    "gradcache_chunks",
    "local_slice",
    "slice_batch",
]

# Contrastive stages embed their batch in length-sorted groups of at most this many padded tokens
# (llm2vec_lite.pooling.embed): same vectors, a fraction of the padding. Measured on SmolLM2-135M,
# 192 NLI texts a step on 2 CPU cores: 14.8 s unbucketed, 5.8 s at 1024 tokens, 5.1 s at 512.
EMBED_BUCKET_TOKENS = 1024


@dataclass
class StageBatch:
    """One micro-batch as the loop sees it.

    Attributes:
        data: whatever the stage's ``loss`` reads (tensors, TokenizedBatch objects...).
        sequences: number of sequences this process runs forward (for seq/s).
        tokens: number of real (non-padding) tokens this process runs forward (for tok/s).
        meta: what else the stage's loss needs to know about the batch (the supervised stage: which
            rows have a hard negative, the ids that mark false negatives); None when nothing.
    """

    data: Any
    sequences: int
    tokens: int
    meta: Any = None


class Stage(ABC):
    """Base class of the training stages: settings, hooks and capabilities the loop relies on.

    Args:
        cfg: the recipe's stage block (``recipe.stages[index]``).
        recipe: the whole :class:`~llm2vec_lite.recipe.Recipe` (global max_length, seed, pooling).
        index: the stage's 0-based position in the recipe.

    Attributes:
        kind: the recipe's ``kind`` string, the registry key.
        head: ``"causal_lm"`` (MNTP needs the LM head) or ``"base"``.
        cfg, max_length, seed, pooling: the stage's effective settings.
    """

    kind: ClassVar[str]
    head: ClassVar[str] = "base"
    # A fitted map after pooling (whitening) that came with the input model; the pipeline sets it
    # and carries it to the stage's output, so the loss sees the features the encoder will give.
    projection = None

    def __init__(self, cfg, recipe, index: int):
        self.cfg = cfg
        self.max_length: int = recipe.max_length_for(index)
        self.seed: int = recipe.seed_for(index)
        self.pooling: str = recipe.pooling

    @abstractmethod
    def check_data(self) -> None:
        """Read and validate the stage's data, before any model loads. Raises DataError."""

    def setup(self, model, tokenizer):
        """Prepare the (not yet LoRA-wrapped) model; returns it. Default: unchanged."""
        return model

    @abstractmethod
    def batches(self, start: int) -> Iterator[StageBatch]:
        """Micro-batches from micro-batch index ``start`` on, endlessly and deterministically."""

    @abstractmethod
    def loss(self, model, batch: StageBatch) -> torch.Tensor:
        """Scalar loss of one micro-batch, with gradients."""

    def embed(self, model, batch: TokenizedBatch) -> torch.Tensor:
        """Embed a tokenized batch as the final encoder will: pooling, then the projection if any."""
        from llm2vec_lite.pooling import embed

        return embed(model, batch, self.pooling, bucket_tokens=EMBED_BUCKET_TOKENS, projection=self.projection)

    def fit_projection(self, model, tokenizer, texts: list[str]) -> None:
        """With ``projection:`` set on the stage, fit it on a sample of ``texts`` with the input model.

        Runs in ``setup``, before LoRA and training dropout, so the map describes the model the stage
        starts from; the stage then trains through it and the pipeline saves it with the output.
        The sample is the first ``samples`` texts of a seeded shuffle: the same on every process
        and every rerun.
        """
        settings = getattr(self.cfg, "projection", None)
        if settings is None:
            return
        temperature = getattr(self.cfg, "temperature", None)
        if settings.mode == "whiten" and temperature is not None and temperature < 0.1:
            import logging

            logging.getLogger(__name__).warning(
                "stage %s: temperature %s with a whitening projection: whitened in-batch cosines are near 0, "
                "so InfoNCE is saturated from the first step (top1 = 1, loss ~ 0) and little is learned; "
                "0.2-0.5 works (docs/results.md)", self.kind, temperature,
            )
        from llm2vec_lite.projection import sample_texts

        self._projection_sample = sample_texts(texts, settings.samples, self.seed)
        self._fit(model, tokenizer, "fitted")

    def refit_projection(self, model, tokenizer) -> None:
        """After training (on the merged model): fit the map again on the same texts, if ``refit``.

        The stage trained through the map fitted on its input model; the trained model's vectors
        have moved, and a map fitted on them scores better (docs/results.md), so that one is shipped.
        """
        settings = getattr(self.cfg, "projection", None)
        if settings is not None and settings.refit and getattr(self, "_projection_sample", None):
            self._fit(model, tokenizer, "refitted")

    def _fit(self, model, tokenizer, verb: str) -> None:
        import logging
        import time

        from llm2vec_lite.encoder import Encoder
        from llm2vec_lite.projection import fit_on_texts

        settings, sample, t0 = self.cfg.projection, self._projection_sample, time.perf_counter()
        encoder = Encoder(model, tokenizer, pooling=self.pooling, max_length=self.max_length, bidirectional=True)
        self.projection = fit_on_texts(encoder, sample, settings.mode, settings.dims)
        logging.getLogger(__name__).info(
            "stage %s: %s a %s projection (%d -> %d) on %d texts in %.0fs",
            self.kind, verb, settings.mode, self.projection.in_dim, self.projection.out_dim, len(sample),
            time.perf_counter() - t0,
        )

    def record(self, **values: torch.Tensor | float) -> None:
        """Note diagnostics of the current micro-batch (e.g. ``pos_cos=...``) for the step's log.

        The loop averages them over the step's micro-batches and processes and writes them to the
        progress bar and ``metrics.jsonl`` beside the loss: a falling loss alone does not show that
        a stage learns what the encoder needs (SimCSE can lower its loss without moving the vectors).
        """
        if "_metrics" not in self.__dict__:
            self._metrics: dict[str, list[torch.Tensor]] = {}
        for name, value in values.items():
            self._metrics.setdefault(name, []).append(torch.as_tensor(value).detach().float().reshape(()))

    def take_metrics(self) -> dict[str, torch.Tensor]:
        """The diagnostics recorded since the last call, each the mean over its micro-batches."""
        out = {name: torch.stack(vals).mean() for name, vals in self.__dict__.get("_metrics", {}).items()}
        self._metrics = {}
        return out

    def cleanup(self, model) -> None:  # noqa: B027 (a hook: most stages have nothing to undo)
        """Undo training-only changes (dropout) before the merged model is saved. Default: nothing."""

    def supports_gradcache(self) -> bool:
        """Whether the loop must call :meth:`gradcache_backward` instead of ``loss`` + backward.

        Default False; a stage that can embed its batch in chunks (supervised, with
        ``gradcache_chunk_size`` set) says True.
        """
        return False

    def gradcache_backward(
        self, model, batch: StageBatch, *, scale: float, accelerator, sync: bool
    ) -> torch.Tensor:
        """Accumulate the gradients of ``loss(model, batch) * scale`` chunk by chunk; return the loss.

        Called only when :meth:`supports_gradcache` is True.

        Args:
            scale: multiply gradients by this (1 / gradient accumulation steps).
            accelerator: the loop's accelerator (for ``backward`` and ``no_sync``).
            sync: all-reduce gradients after the last chunk (False inside accumulation).
        """
        raise NotImplementedError(f"stage {self.kind!r} does not support GradCache")


class BatchSampler:
    """Deterministic, resumable global batches of row indices.

    Epoch ``e`` is a permutation of ``range(n)`` drawn from a generator seeded with ``(seed, e)``,
    cut into ``n // batch_size`` batches (the remainder is dropped so that no batch holds the same
    row twice, which would be a false negative for contrastive losses).

    Args:
        n: number of rows.
        batch_size: rows per global micro-batch (all processes together).
        seed: shuffling seed.

    Raises:
        DataError: If there are fewer rows than ``batch_size``.
    """

    def __init__(self, n: int, batch_size: int, seed: int, *, what: str = "rows"):
        if n < batch_size:
            raise DataError(
                f"the data has {n} {what} but batch_size is {batch_size}: add data or lower batch_size"
            )
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = n // batch_size
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def batch(self, index: int) -> list[int]:
        """Row indices of global micro-batch ``index`` (0-based, over all epochs)."""
        epoch, k = divmod(index, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return self._perm[k * self.batch_size : (k + 1) * self.batch_size].tolist()


class WeightedBatchSampler:
    """Deterministic, resumable global batches that mix several sources by weight.

    Each row slot of a batch picks its source at random in proportion to the weights, so a source
    with a small weight still shows up, and over many steps its share of the rows approaches its
    weight's share. Each source is read in its own shuffled order, a fresh permutation each time
    it is used up (its own "epochs"), so a small source repeats while a large one is still on its
    first pass, and no row is seen twice before every row of its source was seen once.

    Like :class:`BatchSampler`, ``batch(index)`` is a pure function of ``(seed, index)``: slot
    sources are drawn in chunks of ``CHUNK`` batches from a generator seeded with ``(seed, chunk)``,
    and how far each source has been read at the start of each chunk is kept (a few integers a
    chunk), so resuming at step 100000 costs one cheap pass over the chunk counts, not a replay.

    Args:
        sizes: rows of each source; the indices returned run over the sources concatenated.
        weights: one weight > 0 a source.
        batch_size: rows per global micro-batch.
        seed: shuffling seed.
        per_batch: draw one source per batch instead of one per row slot: every row of a batch
            then comes from the same source, so in-batch negatives cannot be told apart by their
            source's style alone (a caption among NLI premises), and over many steps each source
            still takes its weight's share of the rows.

    Raises:
        DataError: If a source has no rows, a weight is not > 0, or the lists differ in length.
    """

    CHUNK = 256

    def __init__(
        self, sizes: list[int], weights: list[float], batch_size: int, seed: int, *, per_batch: bool = False
    ):
        if len(sizes) != len(weights) or not sizes:
            raise DataError(f"{len(sizes)} sources but {len(weights)} weights; give one weight a source")
        if any(n < 1 for n in sizes):
            raise DataError(f"source sizes {sizes}: every weighted source needs at least one row")
        if any(not w > 0 for w in weights):
            raise DataError(f"weights {weights}: every weight must be > 0")
        self.sizes, self.batch_size, self.seed, self.per_batch = list(sizes), batch_size, seed, per_batch
        self.offsets = [sum(sizes[:i]) for i in range(len(sizes))]
        self._probs = torch.tensor(weights, dtype=torch.float64) / sum(weights)
        self._starts = [torch.zeros(len(sizes), dtype=torch.long)]  # rows read per source before chunk c
        self._slots: tuple[int, torch.Tensor] = (-1, torch.empty(0, dtype=torch.long))
        self._perms: dict[tuple[int, int], torch.Tensor] = {}

    def _generator(self, *parts: int) -> torch.Generator:
        """A generator seeded from (seed, parts): one stream per chunk and per source epoch."""
        digest = hashlib.blake2b(repr((self.seed, *parts)).encode(), digest_size=8).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))

    def _chunk_slots(self, chunk: int) -> torch.Tensor:
        """(CHUNK, batch_size) source of every slot of the chunk's batches."""
        if self._slots[0] != chunk:
            per_chunk = self.CHUNK if self.per_batch else self.CHUNK * self.batch_size
            draws = torch.multinomial(self._probs, per_chunk, replacement=True, generator=self._generator(0, chunk))
            if self.per_batch:
                draws = draws[:, None].expand(self.CHUNK, self.batch_size)
            self._slots = (chunk, draws.reshape(self.CHUNK, self.batch_size))
        return self._slots[1]

    def _start(self, chunk: int) -> torch.Tensor:
        """Rows read from each source before ``chunk`` (computed once per chunk, then kept)."""
        while len(self._starts) <= chunk:
            c = len(self._starts) - 1
            used = torch.bincount(self._chunk_slots(c).flatten(), minlength=len(self.sizes))
            self._starts.append(self._starts[c] + used)
        return self._starts[chunk]

    def _row(self, source: int, position: int) -> int:
        """Row ``position`` (0-based, over all its epochs) of ``source``'s shuffled order."""
        epoch, k = divmod(position, self.sizes[source])
        key = (source, epoch)
        if key not in self._perms:
            if len(self._perms) > 4 * len(self.sizes):  # keep only recent epochs
                self._perms.clear()
            self._perms[key] = torch.randperm(self.sizes[source], generator=self._generator(1, source, epoch))
        return self.offsets[source] + int(self._perms[key][k])

    def batch(self, index: int) -> list[int]:
        """Row indices (into the concatenated sources) of global micro-batch ``index``."""
        chunk, k = divmod(index, self.CHUNK)
        start = self._start(chunk)
        slots = self._chunk_slots(chunk)
        read = (start + torch.bincount(slots[:k].flatten(), minlength=len(self.sizes))).tolist()
        out = []
        for source in slots[k].tolist():
            out.append(self._row(source, read[source]))
            read[source] += 1
        return out


def local_slice(batch_size: int) -> slice:
    """This process's contiguous part of a global batch of ``batch_size`` rows.

    Raises:
        RecipeError: If ``batch_size`` is not a multiple of the number of processes.
    """
    from llm2vec_lite.losses import process_rank

    rank, world = process_rank()
    if batch_size % world:
        raise RecipeError(
            f"batch_size = {batch_size} is not a multiple of the {world} processes; batch_size is the "
            f"global batch, split evenly across processes (use {batch_size - batch_size % world or world})"
        )
    per = batch_size // world
    return slice(rank * per, (rank + 1) * per)


def concat_batches(batches: list[TokenizedBatch], pad_id: int) -> TokenizedBatch:
    """Stack tokenized batches of different widths into one, right-padding to the widest."""
    width = max(b.input_ids.shape[1] for b in batches)

    def pad(t: torch.Tensor, value: int) -> torch.Tensor:
        return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)

    return TokenizedBatch(
        torch.cat([pad(b.input_ids, pad_id) for b in batches]),  # (sum rows, width)
        torch.cat([pad(b.attention_mask, 0) for b in batches]),
        torch.cat([pad(b.pool_mask, 0) for b in batches]),
        sum(b.num_truncated for b in batches),
    )


def slice_batch(batch: TokenizedBatch, rows: slice | Sequence[int]) -> TokenizedBatch:
    """Rows ``rows`` of ``batch`` (a GradCache chunk), with all-padding columns removed."""
    if isinstance(rows, slice):
        rows = range(batch.input_ids.shape[0])[rows]
    return batch.take(rows)


def gradcache_chunks(lengths: list[int], chunk: int) -> list[list[int]]:
    """GradCache's chunks of a batch whose texts have ``lengths`` real tokens, for ``chunk`` texts a chunk.

    Texts are sorted by length and cut into groups of at most ``chunk * max(lengths)`` padded
    tokens (:func:`llm2vec_lite.pooling.length_groups`): the widest chunk holds ``chunk`` texts of
    the batch's longest length, what a plain batch of ``chunk`` texts would, so the peak memory
    stays that of such a batch, while chunks of short texts (queries, NLI hypotheses) hold more of
    them and pad none of them to a document's length. Chunks of a fixed count taken with a stride,
    which mix queries and documents as the batch does, padded each query to its chunk's longest
    document: on the demo's retrieval stage (24 rows of query, passage, negative up to 128 tokens,
    chunks of 8) a step took 13.5 s against 5.2-5.4 s plain, and 8.1 s with sorted chunks
    (docs/performance.md, "GradCache memory").
    """
    from llm2vec_lite.pooling import length_groups

    return length_groups(lengths, chunk * max(lengths, default=1))
