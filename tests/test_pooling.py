"""pooling.pool against hand-computed references, under left and right padding."""

from __future__ import annotations

import pytest
import torch

from llm2vec_lite.pooling import POOLING_MODES, check_pooling, needs_eos, pool


def _pad(rows, side):
    """rows: list of (hidden (n, d), pool list) -> padded hidden, attention, pool masks."""
    width = max(h.shape[0] for h, _ in rows)
    d = rows[0][0].shape[1]
    hidden = torch.full((len(rows), width, d), 99.0)  # padding holds garbage on purpose
    attn = torch.zeros(len(rows), width, dtype=torch.long)
    pmask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, (h, p) in enumerate(rows):
        n = h.shape[0]
        sl = slice(width - n, width) if side == "left" else slice(0, n)
        hidden[i, sl], attn[i, sl], pmask[i, sl] = h, 1, torch.tensor(p)
    return hidden, attn, pmask


def _reference(h, p, mode):
    p = torch.tensor(p, dtype=torch.bool)
    if not p.any():
        p = torch.ones_like(p)
    if mode == "last_token":
        return h[-1]
    if mode == "first_token":
        return h[p.nonzero()[0, 0]]
    w = p.float() * (torch.arange(h.shape[0]) + 1 if mode == "weighted_mean" else 1)
    return (w[:, None] * h).sum(0) / w.sum()


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("mode", POOLING_MODES)
def test_pool_matches_reference_under_both_padding_sides(mode, side):
    torch.manual_seed(0)
    rows = [
        (torch.randn(5, 4), [0, 0, 1, 1, 0]),  # 2 instruction tokens, text, appended EOS
        (torch.randn(2, 4), [1, 0]),
        (torch.randn(1, 4), [0]),  # empty text: nothing pooled -> falls back to real tokens
    ]
    hidden, attn, pmask = _pad(rows, side)
    out = pool(hidden, attn, mode, pmask)
    for i, (h, p) in enumerate(rows):
        torch.testing.assert_close(out[i], _reference(h, p, mode))


def test_pool_accumulates_bf16_in_float32():
    torch.manual_seed(0)
    hidden = torch.randn(1, 300, 8).to(torch.bfloat16)
    attn = torch.ones(1, 300, dtype=torch.long)
    exact = hidden.float().mean(dim=1)
    got = pool(hidden, attn, "mean").float()
    # only the final rounding to bf16: at most one bf16 ulp (8 significant bits) of each value;
    # summing 300 values in bf16 would be off by several ulps
    assert ((got - exact).abs() <= exact.abs() * 2**-8 + 1e-7).all(), (got - exact).abs().max()


def test_unknown_mode_lists_valid_modes():
    with pytest.raises(ValueError, match="Valid modes: mean, weighted_mean, last_token, first_token"):
        check_pooling("cls")


def test_only_last_token_needs_an_eos():
    assert [m for m in POOLING_MODES if needs_eos(m)] == ["last_token"]


def test_length_bucketed_embedding_equals_one_padded_batch():
    """embed(bucket_tokens=...) runs length-sorted groups; every row's vector must stay the same."""
    from transformers import LlamaConfig, LlamaModel

    from llm2vec_lite.pooling import embed
    from llm2vec_lite.tokenization import TokenizedBatch

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    from llm2vec_lite.patches import enable_bidirectional

    # bidirectional, as in training: padding after a short row would change its vector if a group
    # leaked attention across rows or its padding, which a causal model would hide
    model = enable_bidirectional(LlamaModel(cfg).eval())
    lengths = [9, 2, 5, 9, 1, 7, 3, 6]
    width = max(lengths)
    ids = torch.randint(1, 64, (len(lengths), width))
    attn = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        attn[i, :n] = 1
    batch = TokenizedBatch(ids * attn, attn, attn.clone())
    with torch.no_grad():
        whole = embed(model, batch, "mean")
        bucketed = embed(model, batch, "mean", bucket_tokens=12)  # several groups of similar length
        last = embed(model, batch, "last_token", bucket_tokens=12)
        last_ref = embed(model, batch, "last_token")
    torch.testing.assert_close(bucketed, whole, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(last, last_ref, rtol=1e-5, atol=1e-5)
    # gradients reach the parameters through every group
    model.train()
    embed(model, batch, "mean", bucket_tokens=12).pow(2).sum().backward()
    assert model.embed_tokens.weight.grad is not None and model.embed_tokens.weight.grad.abs().sum() > 0
