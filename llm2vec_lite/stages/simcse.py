"""Unsupervised SimCSE: two dropout views of a text are positives, the batch gives negatives.

Each text of the batch goes through the model twice (in one forward, as two rows) with independent
dropout; the first views are queries, the second views the candidates:

    loss_i = -log( exp(s(h_i, h_i+)/tau) / sum_j exp(s(h_i, h_j+)/tau) ),   s = cosine similarity

Under ``accelerate launch`` the candidates of all processes are gathered (with gradients), so the
negatives are the whole global batch.

Dropout: following LLM2Vec, ``dropout`` is written to the model's ``attention_dropout`` (config and
attention modules) and to any ``nn.Dropout`` the architecture already has. Llama-type models have no
hidden-state dropout, so the noise comes from attention dropout plus the LoRA dropout of the
recipe's ``lora`` block. :meth:`SimCSEStage.cleanup` restores the original values before the model
is saved, so later stages and the final encoder do not inherit training dropout.

``hidden_dropout`` adds what BERT-style SimCSE had and decoders lack: dropout on the output of every
attention and MLP sublayer, before it joins the residual stream (:func:`add_hidden_dropout`, forward
hooks removed in cleanup). Attention dropout alone can leave the two views nearly the same vector:
on Gemma 3 (13 blocks) attention dropout 0.3 gave views at cosine 0.93 with in-batch negatives at
0.45, an InfoNCE loss of 0.01 at temperature 0.05 before any training, so nothing to learn
(docs/results.md, "SimCSE that learns on Gemma").

Inputs: one text column. Embeddings use the recipe's pooling, through the same
``tokenize`` + ``pooling.embed`` path as the encoder.

References:
    Gao et al. 2021, "SimCSE: Simple Contrastive Learning of Sentence Embeddings", arXiv:2104.08821.
    BehnamGhader et al. 2024, "LLM2Vec", arXiv:2404.05961, section 2.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch

from llm2vec_lite.losses import contrastive_stats, gather_with_grad, info_nce, process_rank
from llm2vec_lite.pooling import needs_eos
from llm2vec_lite.stages import register_stage
from llm2vec_lite.stages.base import (
    BatchSampler,
    Stage,
    StageBatch,
    concat_batches,
    local_slice,
)
from llm2vec_lite.tokenization import _pad_id, tokenize

logger = logging.getLogger(__name__)

#: First-batch InfoNCE loss below which the two views are too alike to learn from (Gemma 3 with
#: attention dropout 0.1: 0.004; with hidden_dropout 0.1: 0.17; SmolLM2 through whitening: 0.3-1.3).
SATURATED_LOSS = 0.05


def set_dropout(model, p: float) -> list[tuple[object, str, float]]:
    """Set attention dropout (config and modules) and every ``nn.Dropout`` to ``p``.

    Returns:
        ``(object, attribute, old value)`` triples for :func:`restore_dropout`.
    """
    saved: list[tuple[object, str, float]] = []
    configs = {id(m.config): m.config for m in model.modules() if hasattr(m, "config")}
    for cfg in configs.values():
        if isinstance(getattr(cfg, "attention_dropout", None), float | int):
            saved.append((cfg, "attention_dropout", cfg.attention_dropout))
            cfg.attention_dropout = p
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            saved.append((m, "p", m.p))
            m.p = p
        elif isinstance(getattr(m, "attention_dropout", None), float | int):
            saved.append((m, "attention_dropout", m.attention_dropout))
            m.attention_dropout = p
    return saved


def restore_dropout(saved: list[tuple[object, str, float]]) -> None:
    """Undo :func:`set_dropout`."""
    for obj, attr, value in reversed(saved):
        setattr(obj, attr, value)


_ATTENTION_NAMES = ("self_attn", "attn", "attention", "self_attention")
_MLP_NAMES = ("mlp", "feed_forward", "ffn")


def hidden_dropout_targets(model) -> list[torch.nn.Module]:
    """The attention and the MLP module of every transformer block, in order (two a block).

    One place decides where ``hidden_dropout`` acts: :func:`add_hidden_dropout` hooks these, and
    the preflight check (:mod:`llm2vec_lite.checks`) calls it on a weightless (meta-device) copy
    of the base model, so a family without such submodules fails before any weights load.

    Raises:
        UsageError: If a block has no attention or MLP submodule under a known name.
    """
    from llm2vec_lite.errors import UsageError
    from llm2vec_lite.modeling import decoder_layers

    holder, name = decoder_layers(model)
    targets = []
    for i, block in enumerate(getattr(holder, name)):
        for names in (_ATTENTION_NAMES, _MLP_NAMES):
            sub = next((getattr(block, n) for n in names if isinstance(getattr(block, n, None), torch.nn.Module)), None)
            if sub is None:
                raise UsageError(
                    f"hidden_dropout: block {i} ({type(block).__name__}) has none of {', '.join(names)}; "
                    "leave hidden_dropout unset for this model"
                )
            targets.append(sub)
    return targets


def add_hidden_dropout(model, p: float) -> list:
    """Dropout ``p`` on each block's attention and MLP outputs, in training mode only.

    Forward hooks on the sublayer modules of every transformer block (:func:`hidden_dropout_targets`),
    so it works on any family without touching its code; a module returning a tuple
    (attention: output, weights) has its first element dropped out.

    Returns:
        The hook handles; ``handle.remove()`` each to undo.

    Raises:
        UsageError: If a block has no attention or MLP submodule under a known name (no hook is left).
    """

    def hook(module, inputs, output):
        if not module.training:
            return output
        if isinstance(output, tuple):
            return (torch.nn.functional.dropout(output[0], p, True), *output[1:])
        return torch.nn.functional.dropout(output, p, True)

    return [sub.register_forward_hook(hook) for sub in hidden_dropout_targets(model)]


def warn_if_saturated(loss: float, pos_cos: float, neg_cos: float, cfg) -> bool:
    """Warn (once, at the first batch) when the two views are too alike for SimCSE to learn.

    Before any training the loss is already what the stage will train against: near zero means the
    noise leaves each text's views closer to each other than to anything else by a wide margin,
    so every step's gradient is tiny. Returns whether it warned.
    """
    if loss >= SATURATED_LOSS:
        return False
    hint = (f"raise hidden_dropout (now {cfg.hidden_dropout})" if cfg.hidden_dropout
            else "set hidden_dropout: 0.1 (dropout on every attention/MLP output)")
    logger.warning(
        "simcse: the two dropout views are nearly identical before training (loss %.4f, view cosine %.3f, "
        "in-batch negatives %.3f): the stage has little to learn. %s; benchmarks/simcse_views.py "
        "measures the settings without training", loss, pos_cos, neg_cos, hint,
    )
    return True


class SimCSEStage(Stage):
    """Unsupervised SimCSE over the texts of one column (see module docstring)."""

    kind = "simcse"
    head = "base"

    def __init__(self, cfg, recipe, index: int):
        super().__init__(cfg, recipe, index)
        self.texts: list[str] | None = None
        self._saved: list = []
        self._hooks: list = []
        self._first_batch_checked = False

    def check_data(self) -> None:
        """Read the texts now so a bad file fails before any model loads. Raises DataError."""
        from llm2vec_lite.data import read_texts

        self.texts = read_texts(self.cfg.data)

    def setup(self, model, tokenizer):
        """Turn on training dropout and build the sampler."""
        if self.texts is None:
            self.check_data()
        self.tokenizer = tokenizer
        self.fit_projection(model, tokenizer, self.texts)  # before training dropout is switched on
        self._saved = set_dropout(model, self.cfg.dropout)
        self._hooks = add_hidden_dropout(model, self.cfg.hidden_dropout) if self.cfg.hidden_dropout else []
        self.sampler = BatchSampler(len(self.texts), self.cfg.batch_size, self.seed, what="texts")
        self.rows = local_slice(self.cfg.batch_size)
        return model

    def batches(self, start: int) -> Iterator[StageBatch]:
        """Tokenized texts of this process's slice of global batch ``start``, ``start + 1``, ..."""
        m = start
        if start > 0:  # a resumed run: its first batch is no longer "before training"
            self._first_batch_checked = True
        while True:
            texts = [self.texts[i] for i in self.sampler.batch(m)][self.rows]
            tb = tokenize(self.tokenizer, texts, max_length=self.max_length, add_eos=needs_eos(self.pooling))
            yield StageBatch(tb, 2 * len(texts), 2 * int(tb.attention_mask.sum()))
            m += 1

    def loss(self, model, batch: StageBatch) -> torch.Tensor:
        """InfoNCE between the two dropout views of each text."""
        tb = batch.data.to(next(model.parameters()).device)
        n = tb.input_ids.shape[0]
        both = concat_batches([tb, tb], _pad_id(self.tokenizer))  # (2n, seq): two dropout views
        emb = self.embed(model, both)  # (2n, dim)
        candidates = gather_with_grad(emb[n:])  # (world * n, dim)
        rank, _ = process_rank()
        positive = torch.arange(n, device=emb.device) + rank * n
        stats = contrastive_stats(emb[:n], candidates, positive)
        self.record(**stats)
        loss = info_nce(emb[:n], candidates, self.cfg.temperature, positive)
        if not self._first_batch_checked:
            self._first_batch_checked = True
            warn_if_saturated(float(loss.detach()), float(stats["pos_cos"]), float(stats["neg_cos"]), self.cfg)
        return loss

    def cleanup(self, model) -> None:
        """Restore the model's own dropout settings."""
        restore_dropout(self._saved)
        self._saved = []
        for handle in self._hooks:
            handle.remove()
        self._hooks = []


register_stage("simcse", SimCSEStage)
