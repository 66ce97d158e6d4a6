"""Turn texts (with an optional instruction) into model inputs plus a pooling mask.

The instruction is attended to but left out of pooling. Which tokens belong to the instruction is
decided from the fast tokenizer's character offsets, not from a magic separator: a token is an
instruction token when it ends inside ``instruction`` (the prefix of the joined string); a
token that straddles the boundary (" hello" after "Query: ") belongs to the text.

Tokenizing is split in two steps so that the encoder can tokenize a whole corpus once, sort it by
length and pad each batch only to its own longest row: :func:`encode_rows` gives unpadded rows,
:func:`pad_rows` pads a list of them. :func:`tokenize` does both at once for the training stages.

Used by both :class:`llm2vec_lite.encoder.Encoder` and the contrastive training stages, so a model
sees the same inputs in training and at inference.
"""

from __future__ import annotations

from collections.abc import Sequence
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

    def take(self, rows: Sequence[int]) -> TokenizedBatch:
        """Rows ``rows`` (in that order), cut to the columns that hold a real token of one of them.

        Works for either padding side: leading and trailing all-padding columns both go.
        """
        index = torch.as_tensor(list(rows), dtype=torch.long, device=self.input_ids.device)
        attn = self.attention_mask[index]
        used = attn.any(dim=0).nonzero().flatten()  # columns with a real token in some row
        cols = slice(int(used.min()), int(used.max()) + 1) if used.numel() else slice(0, 1)
        return TokenizedBatch(self.input_ids[index][:, cols], attn[:, cols], self.pool_mask[index][:, cols], 0)

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """Keyword arguments for the model's forward.

        Under left padding the rotary positions must start at the first real token, not at the
        first pad, or a text's vector would depend on how long its batch neighbours are; so
        ``position_ids`` are passed whenever a row starts with padding.
        """
        inputs = {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        if self.attention_mask.numel() and not bool(self.attention_mask[:, 0].all()):
            positions = self.attention_mask.long().cumsum(dim=1) - 1  # (batch, seq)
            inputs["position_ids"] = positions.clamp(min=0)
        return inputs


@dataclass
class TokenizedRow:
    """One unpadded text: its token ids and which of them are pooled (1) or not (0)."""

    ids: list[int]
    pool: list[int]
    truncated: bool = False


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


def _trailing_special(special: list[int]) -> int:
    """How many tokens at the end are special tokens the tokenizer added (an EOS, a SEP)."""
    n = 0
    for sp in reversed(special):
        if not sp:
            break
        n += 1
    return n


Instruction = str | None | Sequence[str | None]


def _per_row(instruction: Instruction, n: int) -> list[str]:
    """One instruction string per text ('' for none), from one shared value or a list of ``n``."""
    if instruction is None or isinstance(instruction, str):
        return [instruction or ""] * n
    per_row = [i or "" for i in instruction]
    if len(per_row) != n:
        raise ValueError(f"got {len(per_row)} instructions for {n} texts; give one per text or a single one")
    return per_row


def encode_rows(
    tokenizer,
    texts: list[str],
    *,
    max_length: int,
    instruction: Instruction = None,
    add_eos: bool = False,
) -> list[TokenizedRow]:
    """Tokenize ``texts`` (each prefixed by its instruction) into unpadded rows.

    Args:
        tokenizer: a Hugging Face fast tokenizer (character offsets are needed).
        texts: the texts; empty strings are allowed and still give at least one token.
        max_length: rows longer than this are cut from the right; special tokens the tokenizer
            puts at the end (and the EOS appended for ``add_eos``) are kept.
        instruction: prefix that is attended to but excluded from the pooled tokens: one for
            every text, or a list with one per text (None or '' for none).
        add_eos: append the EOS token where the tokenizer does not (last-token pooling needs it).

    Returns:
        One :class:`TokenizedRow` per text, in the order given.

    Raises:
        ValueError: If ``max_length`` cannot hold one text token plus the special tokens, or a
            list of instructions does not have one per text.
    """
    instructions = _per_row(instruction, len(texts))
    eos = tokenizer.eos_token_id
    append_eos = add_eos and eos is not None and not tokenizer_appends_eos(tokenizer)
    if not texts:
        return []
    joined = [i + t for i, t in zip(instructions, texts, strict=True)]
    enc = tokenizer(
        joined,
        add_special_tokens=True,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        truncation=False,
        verbose=False,
    )
    rows: list[TokenizedRow] = []
    for ids, offsets, special, instr in zip(
        enc["input_ids"], enc["offset_mapping"], enc["special_tokens_mask"], instructions, strict=True
    ):
        n_instr_chars = len(instr)
        ids = list(ids)
        pool = [
            0 if (sp or (n_instr_chars and end <= n_instr_chars)) else 1
            for (_start, end), sp in zip(offsets, special, strict=True)
        ]
        # Keep the tokenizer's own trailing specials (EOS/SEP) when cutting: last-token pooling
        # reads them, and the model was trained with them at the end.
        tail = _trailing_special(list(special))
        limit = max_length - tail - (1 if append_eos else 0)
        if limit < 1:
            raise ValueError(
                f"max_length={max_length} is too small: it must hold at least one token plus "
                f"{tail + int(append_eos)} special token(s). Use max_length >= {tail + int(append_eos) + 1}."
            )
        truncated = len(ids) > max_length - (1 if append_eos else 0)
        if truncated:
            body = len(ids) - tail
            keep = limit
            ids = ids[:keep] + ids[body:]
            pool = pool[:keep] + pool[body:]
        if append_eos:
            ids, pool = ids + [eos], pool + [0]
        if not ids:  # an empty text with a tokenizer that adds nothing
            ids, pool = [eos if eos is not None else _pad_id(tokenizer)], [0]
        rows.append(TokenizedRow(ids, pool, truncated))
    return rows


def pad_rows(rows: list[TokenizedRow], *, pad_id: int, padding_side: PaddingSide = "right") -> TokenizedBatch:
    """Pad rows to the longest one.

    Args:
        rows: output of :func:`encode_rows` (any subset, any order).
        pad_id: token id used for padding (never attended to).
        padding_side: ``"right"`` or ``"left"``; a correct model gives the same vectors for both.

    Raises:
        ValueError: If ``padding_side`` is neither ``"left"`` nor ``"right"``.
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    width = max((len(r.ids) for r in rows), default=0)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (batch, seq)
    attention = torch.zeros((len(rows), width), dtype=torch.long)  # (batch, seq)
    pool_mask = torch.zeros((len(rows), width), dtype=torch.long)  # (batch, seq)
    for i, row in enumerate(rows):
        n = len(row.ids)
        sl = slice(width - n, width) if padding_side == "left" else slice(0, n)
        input_ids[i, sl] = torch.tensor(row.ids, dtype=torch.long)
        attention[i, sl] = 1
        pool_mask[i, sl] = torch.tensor(row.pool, dtype=torch.long)
    return TokenizedBatch(input_ids, attention, pool_mask, sum(r.truncated for r in rows))


def tokenize(
    tokenizer,
    texts: list[str],
    *,
    max_length: int,
    instruction: Instruction = None,
    add_eos: bool = False,
    padding_side: PaddingSide = "right",
) -> TokenizedBatch:
    """Tokenize ``texts`` (each prefixed by its instruction) into a padded batch.

    Args:
        tokenizer: a Hugging Face fast tokenizer.
        texts: the texts; empty strings are allowed and still give at least one token.
        max_length: sequences longer than this are cut (the EOS, when added, is kept).
        instruction: prefix that is attended to but excluded from ``pool_mask``: one for every
            text, or a list with one per text (None or '' for none).
        add_eos: append the EOS token where the tokenizer does not (last-token pooling needs it).
        padding_side: where padding goes; results of a correct model must not depend on it.

    Returns:
        A :class:`TokenizedBatch`.

    Raises:
        ValueError: If ``max_length`` cannot hold a token and the special tokens.
    """
    rows = encode_rows(tokenizer, texts, max_length=max_length, instruction=instruction, add_eos=add_eos)
    return pad_rows(rows, pad_id=_pad_id(tokenizer), padding_side=padding_side)
