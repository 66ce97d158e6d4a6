"""Turn texts (with an optional instruction) into model inputs plus a pooling mask.

The instruction is attended to but left out of pooling. Which tokens belong to the instruction is
decided from the fast tokenizer's character offsets, not from a magic separator: a token is an
instruction token when it ends inside ``instruction`` (the prefix of the joined string); a
token that straddles the boundary (" hello" after "Query: ") belongs to the text.

Used by both :class:`llm2vec_lite.encoder.Encoder` and the contrastive training stages, so a model
sees the same inputs in training and at inference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

PaddingSide = Literal["left", "right"]


@dataclass
class TokenizedBatch:
    """Padded model inputs.

    Attributes:
        input_ids: (batch, seq) token ids.
        attention_mask: (batch, seq) 1 for real tokens, 0 for padding.
        pool_mask: (batch, seq) 1 for tokens that count in mean/weighted/first pooling: real tokens
            that are neither instruction tokens nor special tokens the tokenizer added.
        num_truncated: how many texts were cut to ``max_length``.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    pool_mask: torch.Tensor
    num_truncated: int = 0

    def to(self, device: torch.device | str) -> TokenizedBatch:
        return TokenizedBatch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.pool_mask.to(device),
            self.num_truncated,
        )

    def model_inputs(self) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask}


def tokenizer_appends_eos(tokenizer) -> bool:
    """True when the tokenizer already ends every sequence with its EOS token."""
    eos = tokenizer.eos_token_id
    if eos is None:
        return False
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return len(ids) > 0 and ids[-1] == eos


def _pad_id(tokenizer) -> int:
    for tok_id in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id):
        if tok_id is not None:
            return int(tok_id)
    return 0


def tokenize(
    tokenizer,
    texts: list[str],
    *,
    max_length: int,
    instruction: str | None = None,
    add_eos: bool = False,
    padding_side: PaddingSide = "right",
) -> TokenizedBatch:
    """Tokenize ``texts`` (each prefixed by ``instruction``) into a padded batch.

    Args:
        tokenizer: a Hugging Face fast tokenizer.
        texts: the texts; empty strings are allowed and still give at least one token.
        max_length: sequences longer than this are cut (the EOS, when added, is kept).
        instruction: prefix that is attended to but excluded from ``pool_mask``.
        add_eos: append the EOS token where the tokenizer does not (last-token pooling needs it).
        padding_side: where padding goes; results of a correct model must not depend on it.

    Returns:
        A :class:`TokenizedBatch`.

    Raises:
        ValueError: If ``max_length`` < 2 while ``add_eos`` is set.
    """
    instruction = instruction or ""
    eos = tokenizer.eos_token_id
    append_eos = add_eos and eos is not None and not tokenizer_appends_eos(tokenizer)
    limit = max_length - (1 if append_eos else 0)
    if limit < 1:
        raise ValueError(f"max_length={max_length} is too small to hold a token and the EOS")
    joined = [instruction + t for t in texts]
    enc = tokenizer(
        joined,
        add_special_tokens=True,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        truncation=False,
        verbose=False,
    )
    n_instr_chars = len(instruction)
    rows: list[tuple[list[int], list[int]]] = []
    num_truncated = 0
    for ids, offsets, special in zip(
        enc["input_ids"], enc["offset_mapping"], enc["special_tokens_mask"], strict=True
    ):
        pool = [
            0 if (sp or (n_instr_chars and end <= n_instr_chars)) else 1
            for (_start, end), sp in zip(offsets, special, strict=True)
        ]
        if len(ids) > limit:
            num_truncated += 1
            ids, pool = ids[:limit], pool[:limit]
        if append_eos:
            ids, pool = ids + [eos], pool + [0]
        if not ids:  # an empty text with a tokenizer that adds nothing
            ids, pool = [eos if eos is not None else _pad_id(tokenizer)], [0]
        rows.append((list(ids), pool))

    width = max(len(ids) for ids, _ in rows) if rows else 0
    pad = _pad_id(tokenizer)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    pool_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, pool) in enumerate(rows):
        n = len(ids)
        sl = slice(width - n, width) if padding_side == "left" else slice(0, n)
        input_ids[i, sl] = torch.tensor(ids, dtype=torch.long)
        attention[i, sl] = 1
        pool_mask[i, sl] = torch.tensor(pool, dtype=torch.long)
    return TokenizedBatch(input_ids, attention, pool_mask, num_truncated)
