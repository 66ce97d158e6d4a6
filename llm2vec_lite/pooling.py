"""Pooling: turn per-token hidden states into one vector per text.

Modes:
- ``mean``: average of the pooled tokens (``pool_mask``), the LLM2Vec default.
- ``weighted_mean``: position-weighted mean, weight ``i`` for the token at (1-based) position ``i``
  counted from the first real token (SGPT, Muennighoff 2022, arXiv:2202.08904): later tokens have
  seen more context in a causal model.
- ``last_token``: the hidden state of the last real token (the EOS the tokenizer step appends),
  found from ``attention_mask`` so it is right under left and right padding.
- ``first_token``: the first pooled token.

Every mode falls back to all real tokens for a row whose ``pool_mask`` is empty (an empty text),
so an empty string still gets a valid vector.
"""

from __future__ import annotations

import torch

POOLING_MODES = ("mean", "weighted_mean", "last_token", "first_token")


def check_pooling(mode: str) -> str:
    """Return ``mode`` or raise ``UsageError`` (a ``ValueError``) listing the valid modes."""
    if mode not in POOLING_MODES:
        from llm2vec_lite.errors import UsageError

        raise UsageError(f"Unknown pooling mode {mode!r}. Valid modes: {', '.join(POOLING_MODES)}.")
    return mode


def pool(
    hidden: torch.Tensor,
    attention_mask: torch.Tensor,
    mode: str,
    pool_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pool ``hidden`` (batch, seq, dim) to (batch, dim).

    Args:
        hidden: final hidden states, (batch, seq, dim).
        attention_mask: (batch, seq), 1 for real tokens.
        mode: one of :data:`POOLING_MODES`.
        pool_mask: (batch, seq), 1 for tokens that count (instruction and special tokens are 0);
            defaults to ``attention_mask``.

    Raises:
        ValueError: If ``mode`` is unknown.
    """
    check_pooling(mode)
    attn = attention_mask.to(hidden.device).bool()
    if mode == "last_token":
        seq = attn.shape[1]
        positions = torch.arange(seq, device=hidden.device).expand_as(attn)
        last = torch.where(attn, positions, -1).max(dim=1).values  # (batch,)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]

    mask = attn if pool_mask is None else pool_mask.to(hidden.device).bool() & attn
    empty = ~mask.any(dim=1, keepdim=True)  # rows with nothing to pool: use every real token
    mask = torch.where(empty, attn, mask)
    if mode == "first_token":
        first = mask.int().argmax(dim=1)  # (batch,)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), first]

    weights = mask.to(torch.float32)  # (batch, seq)
    if mode == "weighted_mean":
        # weight = the token's 1-based position counted from the first real token, so padding on
        # either side changes nothing and an excluded instruction keeps the text's own positions
        # (the convention sentence-transformers' "weightedmean" uses too).
        weights = attn.to(torch.float32).cumsum(dim=1) * weights
    weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=1e-9)
    # Accumulate in float32 even for bf16 hidden states: a bf16 sum over hundreds of tokens loses
    # about two significant digits, enough to move cosine similarities in the third decimal.
    pooled = torch.einsum("bs,bsd->bd", weights, hidden.float())  # (batch, dim)
    return pooled.to(hidden.dtype)


def needs_eos(mode: str) -> bool:
    """Last-token pooling reads the EOS position, so the tokenizer step must append one."""
    return mode == "last_token"


def embed(model, batch, mode: str, *, bucket_tokens: int | None = None, projection=None) -> torch.Tensor:
    """Forward a :class:`~llm2vec_lite.tokenization.TokenizedBatch` and pool: (batch, dim).

    The single place where "model + batch -> embedding" happens, used by the encoder and by the
    contrastive training stages alike (with gradients when the caller allows them).
    ``model`` may be a base ``*Model``, a ``*ForCausalLM`` or a peft wrapper of either.

    Args:
        bucket_tokens: when set, rows are sorted by length and run in groups of at most this many
            (padded) tokens, each group cut to its own longest row. A contrastive batch mixes short
            and long texts (NLI: 4 to 60 tokens), so padding to the batch's longest row wastes most of
            the compute; bucketing removes that waste. Each row's vector is the same either way
            (attention never crosses rows), so this changes speed, not results. Gradients flow
            through every group.
        projection: a :class:`~llm2vec_lite.projection.Projection` applied to the pooled vectors
            (whitening), so training stages and the encoder see the same features.
    """
    pooled = _embed_bucketed(model, batch, mode, bucket_tokens)
    return pooled if projection is None else projection(pooled)  # (batch, out_dim)


def length_groups(lengths: list[int], budget: int) -> list[list[int]]:
    """Row indices sorted by ``lengths`` (ascending, stable), cut into groups of at most ``budget``
    padded tokens: a group of ``n`` rows whose longest has length ``L`` holds ``n * L <= budget``.

    A row longer than ``budget`` gets a group of its own. The one rule for cutting texts of mixed
    lengths into forward passes, shared by :func:`embed`'s buckets and GradCache's chunks
    (:func:`llm2vec_lite.stages.base.gradcache_chunks`): rows of similar length travel together, so
    little compute goes to padding, and no pass holds more than ``budget`` tokens of activations.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    for i in order:  # ascending length: a group's widest row is its last
        if not groups or (len(groups[-1]) + 1) * int(lengths[i]) > budget:
            groups.append([])
        groups[-1].append(i)
    return groups


def _embed_bucketed(model, batch, mode: str, bucket_tokens: int | None) -> torch.Tensor:
    if bucket_tokens is None or batch.input_ids.shape[0] <= 1:
        return _embed_padded(model, batch, mode)
    groups = length_groups(batch.attention_mask.sum(dim=1).tolist(), bucket_tokens)
    order = [i for rows in groups for i in rows]
    parts = [_embed_padded(model, batch.take(rows), mode) for rows in groups]
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    return torch.cat(parts)[inverse.to(parts[0].device)]  # back to the caller's row order


def _embed_padded(model, batch, mode: str) -> torch.Tensor:
    inputs = batch.model_inputs()
    out = model(**inputs, use_cache=False, return_dict=True)
    hidden = getattr(out, "last_hidden_state", None)
    if hidden is None:  # a *ForCausalLM: ask again for hidden states
        out = model(**inputs, use_cache=False, output_hidden_states=True, return_dict=True)
        hidden = out.hidden_states[-1]
    # float32 pooling: under autocast a bf16 sum over many tokens moves cosines in the 3rd decimal
    return pool(hidden.float(), batch.attention_mask, mode, batch.pool_mask)  # (batch, dim)
