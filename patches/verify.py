"""Prove on a given model that it attends both ways and that padding does not change its outputs.

``verify(model, tokenizer=None)`` runs two checks with the model's own weights, dtype and
attention backend, and returns a :class:`VerifyReport`:

1. Bidirectional: change only the LAST token of a sequence; the FIRST position's final hidden
   state must change (in a causal model it cannot). Run with no attention mask and with an
   all-ones mask, the two cases where sdpa skips the mask and would fall back to ``is_causal``.
2. Padding-invariant: a right-padded and a left-padded batch must give, at every real token, the
   final hidden states of each sequence run alone unpadded.

Tolerances are dtype-aware and scaled by the size of the hidden states:
``tol = base[dtype] * max(1, max |h|)``, with base 1e-4 (float32), 5e-3 (float16), 3e-2 (bfloat16).
The first-token change must exceed ``tol / 10``: in a causal model it is exactly 0 (position 0
only ever multiplies token 0's values), so any change well above rounding noise proves the model
reads ahead, while a whole padding tolerance would be too strict a bar in bfloat16.

Example:
    >>> report = verify(model)            # random token ids from the vocabulary
    >>> report.passed, report.to_dict()["left_padding_diff"]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

_BASE_TOL = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 3e-2}
_SAMPLE_TEXTS = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "A short one.",
    "Encoders read every token in both directions at once.",
)
_RANDOM_LENGTHS = (9, 4, 7)


@dataclass
class VerifyReport:
    """What :func:`verify` measured on one model.

    Attributes:
        model_type: ``config.model_type`` of the model checked.
        attn_implementation: the attention backend the model ran with.
        dtype: dtype of the model's weights.
        inputs: ``"tokenizer"`` (sample sentences) or ``"random ids"``.
        lengths: lengths of the sequences in the padded batch.
        tolerance: absolute tolerance used for the padding checks; the first-token change must
            exceed ``tolerance / 10``.
        first_token_change: max abs change of position 0's final hidden state when only the last
            token changes (0 for a causal model).
        right_padding_diff: max abs difference, right-padded batch vs each sequence alone.
        left_padding_diff: max abs difference, left-padded batch vs each sequence alone.
    """

    model_type: str
    attn_implementation: str
    dtype: str
    inputs: str
    lengths: list[int]
    tolerance: float
    first_token_change: float
    right_padding_diff: float
    left_padding_diff: float
    notes: list[str] = field(default_factory=list)

    @property
    def change_threshold(self) -> float:
        return self.tolerance / 10

    @property
    def bidirectional(self) -> bool:
        return self.first_token_change > self.change_threshold

    @property
    def right_padding_ok(self) -> bool:
        return self.right_padding_diff <= self.tolerance

    @property
    def left_padding_ok(self) -> bool:
        return self.left_padding_diff <= self.tolerance

    @property
    def passed(self) -> bool:
        return self.bidirectional and self.right_padding_ok and self.left_padding_ok

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            change_threshold=self.change_threshold,
            bidirectional=self.bidirectional,
            right_padding_ok=self.right_padding_ok,
            left_padding_ok=self.left_padding_ok,
            passed=self.passed,
        )
        return out

    def __str__(self) -> str:
        def mark(ok: bool) -> str:
            return "ok" if ok else "FAILED"

        lines = [
            f"verify {self.model_type} ({self.attn_implementation}, {self.dtype}, {self.inputs}, "
            f"lengths {'/'.join(map(str, self.lengths))}): {'PASSED' if self.passed else 'FAILED'}",
            f"  bidirectional: first-token change when only the last token changes = "
            f"{self.first_token_change:.3g} (must be > {self.change_threshold:.2g}) {mark(self.bidirectional)}",
            f"  right padding: max |batched - alone| = {self.right_padding_diff:.3g} "
            f"(<= {self.tolerance:.2g}) {mark(self.right_padding_ok)}",
            f"  left padding:  max |batched - alone| = {self.left_padding_diff:.3g} "
            f"(<= {self.tolerance:.2g}) {mark(self.left_padding_ok)}",
        ]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _final_hidden(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Final hidden states (batch, seq, dim) in float32, from a base model, an LM or a peft wrapper."""
    kwargs: dict[str, Any] = {"input_ids": input_ids, "return_dict": True, "use_cache": False}
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask
    out = model(**kwargs, output_hidden_states=True)
    hidden = getattr(out, "last_hidden_state", None)
    if hidden is None:
        hidden = out.hidden_states[-1]
    return hidden.float()


def _pad(seqs: list[torch.Tensor], pad_id: int, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)  # (batch, width)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        sl = slice(width - len(s), width) if side == "left" else slice(0, len(s))
        ids[i, sl] = s
        mask[i, sl] = 1
    return ids, mask


def _sequences(model, tokenizer, vocab: int) -> tuple[list[torch.Tensor], str, int]:
    if tokenizer is not None:
        seqs = [torch.tensor(tokenizer(t)["input_ids"], dtype=torch.long) for t in _SAMPLE_TEXTS]
        from llm2vec_lite.tokenization import pad_token_id

        return seqs, "tokenizer", pad_token_id(tokenizer)
    gen = torch.Generator().manual_seed(0)
    seqs = [torch.randint(0, vocab, (n,), generator=gen) for n in _RANDOM_LENGTHS]
    pad = getattr(getattr(model, "config", None), "pad_token_id", None)
    return seqs, "random ids", int(pad) if isinstance(pad, int) else 0


@torch.no_grad()
def verify(model, tokenizer=None) -> VerifyReport:
    """Check that ``model`` is bidirectional and padding-invariant, on its own backend and dtype.

    Args:
        model: a transformers model (``*Model`` or ``*ForCausalLM``) or a peft wrapper of one.
        tokenizer: when given, sample sentences are tokenized; otherwise random token ids from
            the vocabulary are used.

    Returns:
        A :class:`VerifyReport`; ``report.passed`` says whether both checks held.
    """
    from llm2vec_lite.patches.base import unwrap_model

    inner = unwrap_model(model)
    param = next(p for p in inner.parameters() if p.is_floating_point())
    device, dtype = param.device, param.dtype
    vocab = inner.get_input_embeddings().num_embeddings
    seqs, inputs, pad_id = _sequences(inner, tokenizer, vocab)
    was_training = model.training
    model.eval()
    try:
        # 1. Bidirectional: only the last token differs; look at position 0.
        base = seqs[0].to(device)[None]  # (1, n)
        changed = base.clone()
        changed[0, -1] = (changed[0, -1] + 1) % vocab
        ones = torch.ones_like(base)
        change = min(
            (_final_hidden(model, base, mask)[0, 0] - _final_hidden(model, changed, mask)[0, 0]).abs().max().item()
            for mask in (None, ones)
        )

        # 2. Padding: each sequence alone vs inside a padded batch, both sides.
        alone = [_final_hidden(model, s.to(device)[None], None)[0] for s in seqs]  # each (n_i, dim)
        scale = max(1.0, max(a.abs().max().item() for a in alone))
        tol = _BASE_TOL.get(dtype, 3e-2) * scale
        diffs = {}
        for side in ("right", "left"):
            ids, mask = _pad(seqs, pad_id, side)
            hidden = _final_hidden(model, ids.to(device), mask.to(device))  # (batch, width, dim)
            width = ids.shape[1]
            worst = 0.0
            for i, a in enumerate(alone):
                n = a.shape[0]
                rows = hidden[i, width - n :] if side == "left" else hidden[i, :n]
                worst = max(worst, (rows - a).abs().max().item())
            diffs[side] = worst
    finally:
        model.train(was_training)

    notes = []
    if change <= tol / 10:
        notes.append("position 0 ignored the last token: the model still attends causally (or a window hides it)")
    return VerifyReport(
        model_type=str(inner.config.model_type),
        attn_implementation=str(getattr(inner.config, "_attn_implementation", None)),
        dtype=str(dtype).replace("torch.", ""),
        inputs=inputs,
        lengths=[len(s) for s in seqs],
        tolerance=tol,
        first_token_change=change,
        right_padding_diff=diffs["right"],
        left_padding_diff=diffs["left"],
        notes=notes,
    )
