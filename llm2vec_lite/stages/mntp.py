"""Masked next-token prediction (MNTP), LLM2Vec step 2: teach a now-bidirectional decoder to use
the tokens after a position.

Texts are joined (with EOS) and cut into blocks of ``max_length`` tokens. A fraction
``mask_probability`` of the tokens (never the first of a block) is replaced by a mask token, and the
ORIGINAL token at masked position ``i`` is predicted from the output at position ``i - 1``, with the
model's own causal-LM head:

    loss = -1/|M| * sum_{i in M} log p(x_i | h_{i-1}),   M = masked positions

The shift is the one the causal-LM loss already applies (``labels[i]`` is scored against
``logits[i - 1]``), so the labels are the original ids at masked positions and -100 elsewhere.

Mask token (``mask_token``): ``blank`` = the ``_`` token (what LLM2Vec uses for Llama), ``eos``, or
``mask`` = a new ``<mask>`` special token (embeddings are resized; the new row starts at the mean
embedding, the transformers default).

Inputs: one text column. Requirements: a model with a causal-LM head (``head = "causal_lm"``).

References:
    BehnamGhader et al. 2024, "LLM2Vec: Large Language Models Are Secretly Powerful Text Encoders",
    arXiv:2404.05961, section 2.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from llm2vec_lite.stages import register_stage
from llm2vec_lite.stages.base import BatchSampler, Stage, StageBatch, local_slice


@contextlib.contextmanager
def head_on_rows(model, flat_positions: torch.Tensor):
    """Within the block, the model's LM head runs on the given positions only.

    A forward pre-hook on the output embedding flattens its input (batch, length, hidden) and keeps
    rows ``flat_positions`` (indices into batch * length), so ``logits`` comes back as
    (len(flat_positions), vocab). Going through the model's own forward (rather than calling its
    inner transformer) keeps DDP's and peft's wrappers in the path, and any logit post-processing a
    family applies (soft-capping, scaling) is element-wise, so it works on the smaller tensor too.
    """
    inner = getattr(model, "module", model)  # DDP
    head = inner.get_output_embeddings()
    if head is None:
        raise TypeError(f"{type(inner).__name__} has no LM head; MNTP needs a *ForCausalLM model")

    def keep_rows(module, args):
        hidden = args[0]  # (batch, length, hidden)
        return (hidden.reshape(-1, hidden.shape[-1]).index_select(0, flat_positions), *args[1:])

    handle = head.register_forward_pre_hook(keep_rows)
    try:
        yield
    finally:
        handle.remove()


class MNTPStage(Stage):
    """Masked next-token prediction on packed text blocks (see module docstring)."""

    kind = "mntp"
    head = "causal_lm"

    def __init__(self, cfg, recipe, index: int):
        super().__init__(cfg, recipe, index)
        self.texts: list[str] | None = None

    def check_data(self) -> None:
        """Read the texts now so a bad file fails before any model loads. Raises DataError."""
        from llm2vec_lite.data import read_texts

        self.texts = read_texts(self.cfg.data)

    def setup(self, model, tokenizer):
        """Pick the mask token (resizing embeddings for a new one), pack the texts into blocks."""
        from llm2vec_lite.data import MNTPCollator, mask_token_id, pack_texts

        if self.texts is None:
            self.check_data()
        self.mask_id = mask_token_id(tokenizer, self.cfg.mask_token)
        if self.mask_id >= model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(len(tokenizer))
        self.blocks = pack_texts(tokenizer, self.texts, self.max_length)
        self.sampler = BatchSampler(
            len(self.blocks), self.cfg.batch_size, self.seed, what=f"blocks of {self.max_length} tokens"
        )
        self.collator = MNTPCollator.for_stage(tokenizer, self.cfg, self.mask_id)  # probability, replacement
        self.rows = local_slice(self.cfg.batch_size)
        return model

    def batches(self, start: int) -> Iterator[StageBatch]:
        """Masked blocks from micro-batch ``start`` on; the masking of batch m depends on (seed, m) only."""
        m = start
        while True:
            blocks = [self.blocks[i] for i in self.sampler.batch(m)]
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + m + 7)
            full = self.collator(blocks, gen)  # the global batch, so masks do not depend on #processes
            local = {k: v[self.rows] for k, v in full.items()}  # (local_batch, max_length) each
            yield StageBatch(local, local["input_ids"].shape[0], int(local["attention_mask"].sum()))
            m += 1

    def loss(self, model, batch: StageBatch) -> torch.Tensor:
        """Cross-entropy of the original token at masked positions, predicted one position earlier.

        The same value as the causal-LM loss of ``model(..., labels=labels)``, but the LM head only
        sees the hidden states that predict a masked token (about ``mask_probability`` of them): with
        a 49k-262k vocabulary the head over every position costs a third of the model's forward and
        backward, and a logits tensor of ``batch x length x vocab`` floats.
        """
        device = next(model.parameters()).device
        inputs = {k: v.to(device) for k, v in batch.data.items()}
        labels = inputs.pop("labels")  # (batch, length), -100 where not masked
        width = labels.shape[1]
        shifted = labels[:, 1:]  # shifted[b, i] is predicted from position i
        rows, cols = (shifted != -100).nonzero(as_tuple=True)
        with head_on_rows(model, rows * width + cols):
            logits = model(**inputs, use_cache=False).logits  # (masked tokens, vocab)
        targets = shifted[rows, cols]
        self.record(masked_acc=(logits.detach().argmax(dim=-1) == targets).float().mean())
        return torch.nn.functional.cross_entropy(logits.float(), targets)


register_stage("mntp", MNTPStage)
