"""InfoNCE against an independent numpy computation, its arguments, and the gather helper."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from llm2vec_lite.losses import cosine_scores, gather_with_grad, info_nce


def _reference_info_nce(q: np.ndarray, c: np.ndarray, tau: float, pos: list[int]) -> float:
    """The formula written out element by element in float64."""
    total = 0.0
    for i, qi in enumerate(q):
        sims = [float(qi @ cj / (np.linalg.norm(qi) * np.linalg.norm(cj))) for cj in c]
        denom = sum(math.exp(s / tau) for s in sims)
        total += -math.log(math.exp(sims[pos[i]] / tau) / denom)
    return total / len(q)


def test_info_nce_matches_the_formula_with_hard_negatives():
    g = torch.Generator().manual_seed(0)
    q, d, n = (torch.randn(5, 16, generator=g, dtype=torch.float64) for _ in range(3))
    got = info_nce(q, torch.cat([d, n]), temperature=0.3)
    want = _reference_info_nce(q.numpy(), torch.cat([d, n]).numpy(), 0.3, list(range(5)))
    assert got.item() == pytest.approx(want, rel=1e-5)


def test_info_nce_uses_positive_index_when_given():
    g = torch.Generator().manual_seed(1)
    q, c = torch.randn(3, 8, generator=g), torch.randn(7, 8, generator=g)
    pos = torch.tensor([6, 0, 3])
    want = _reference_info_nce(q.double().numpy(), c.double().numpy(), 0.05, pos.tolist())
    assert info_nce(q, c, 0.05, pos).item() == pytest.approx(want, rel=1e-4)


def test_info_nce_is_low_when_each_query_matches_its_positive():
    q = torch.eye(4) * 3
    noisy = q + 0.01 * torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    shuffled = noisy[[1, 2, 3, 0]]
    assert info_nce(q, noisy, 0.05) < 0.01 < info_nce(q, shuffled, 0.05)


def test_info_nce_ignores_vector_length_because_it_uses_cosine():
    g = torch.Generator().manual_seed(2)
    q, c = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    torch.testing.assert_close(info_nce(q, c, 0.1), info_nce(q * 7.0, c * 0.2, 0.1))


def test_info_nce_gradient_passes_gradcheck():
    """gradcheck of the real info_nce (float64 in, float64 out), hard-negative pool and custom positives."""
    g = torch.Generator().manual_seed(3)
    q = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    c = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert info_nce(q, c, 0.5).dtype == torch.float64
    assert torch.autograd.gradcheck(lambda q, c: info_nce(q, c, 0.5), (q, c))
    positives = torch.tensor([4, 0, 2])
    assert torch.autograd.gradcheck(lambda q, c: info_nce(q, c, 0.05, positive_index=positives), (q, c))


def test_info_nce_matches_a_hand_computed_value():
    # q0 = (1, 0), q1 = (0, 1); candidates c0 = (1, 0), c1 = (1, 1)/sqrt2, c2 = (0, -1)
    q = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    c = torch.tensor([[5.0, 0.0], [1.0, 1.0], [0.0, -2.0]])
    s = 1 / math.sqrt(2)
    tau = 0.5
    # row 0: positive c0 (cos 1), others cos s, cos 0; row 1: positive c1 (cos s), others cos 0, cos -1
    l0 = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + math.exp(s / tau) + math.exp(0)))
    l1 = -math.log(math.exp(s / tau) / (math.exp(0) + math.exp(s / tau) + math.exp(-1 / tau)))
    assert info_nce(q, c, tau).item() == pytest.approx((l0 + l1) / 2, rel=1e-6)


@pytest.mark.parametrize("tau", [0.0, -0.02])
def test_info_nce_rejects_non_positive_temperature(tau):
    with pytest.raises(ValueError, match="must be > 0"):
        info_nce(torch.randn(2, 4), torch.randn(2, 4), tau)


def test_info_nce_rejects_mismatched_dims_and_too_few_candidates():
    with pytest.raises(ValueError, match="dim"):
        info_nce(torch.randn(2, 4), torch.randn(2, 5), 0.05)
    with pytest.raises(ValueError, match="positive_index"):
        info_nce(torch.randn(3, 4), torch.randn(2, 4), 0.05)


def test_cosine_scores_shape_and_range():
    s = cosine_scores(torch.randn(3, 8), torch.randn(5, 8))
    assert s.shape == (3, 5)
    assert (s.abs() <= 1 + 1e-6).all()


def test_cosine_scores_match_hand_computed_values():
    q = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    c = torch.tensor([[4.0, 3.0], [0.0, 2.0], [-1.0, 0.0]])
    # (3,4).(4,3) = 24 over 5*5; (3,4).(0,2) = 8 over 5*2; (3,4).(-1,0) = -3 over 5*1
    want = torch.tensor([[24 / 25, 8 / 10, -3 / 5], [4 / 5, 0.0, -1.0]])
    torch.testing.assert_close(cosine_scores(q, c), want, rtol=0, atol=1e-6)
    assert cosine_scores(q.bfloat16(), c.bfloat16()).dtype == torch.float32  # bf16 in: float32 scores


def test_gather_with_grad_is_identity_in_one_process():
    x = torch.randn(4, 3, requires_grad=True)
    y = gather_with_grad(x)
    y.sum().backward()
    assert y is x
    torch.testing.assert_close(x.grad, torch.ones_like(x))


# -- the false-negative mask ----------------------------------------------------------------


def test_masked_candidate_gets_zero_probability_and_no_gradient():
    g = torch.Generator().manual_seed(2)
    q = torch.randn(2, 6, generator=g, dtype=torch.float64)
    c = torch.randn(4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.zeros(2, 4, dtype=torch.bool)
    mask[0, 2] = True  # candidate 2 is a false negative of query 0 (same image, say)
    loss = info_nce(q, c, 0.1, mask=mask)
    # the same as leaving candidate 2 out of query 0's denominator, by hand
    keep = [0, 1, 3]
    want = 0.5 * (
        _reference_info_nce(q[:1].numpy(), c.detach()[keep].numpy(), 0.1, [0])
        + _reference_info_nce(q[1:].numpy(), c.detach().numpy(), 0.1, [1])
    )
    assert loss.item() == pytest.approx(want, rel=1e-10)
    loss.backward()
    # candidate 2 still gets gradient from query 1, which does count it; masked for both: none at all
    assert c.grad[2].abs().sum() > 0
    c.grad = None
    both = mask.clone()
    both[1, 2] = True
    info_nce(q, c, 0.1, mask=both).backward()
    assert torch.equal(c.grad[2], torch.zeros(6, dtype=torch.float64))
    scores = cosine_scores(q, c.detach()) / 0.1
    probs = torch.softmax(scores.masked_fill(both, float("-inf")), dim=1)
    assert probs[:, 2].tolist() == [0.0, 0.0] and torch.isfinite(probs).all()


def test_masked_info_nce_passes_gradcheck():
    g = torch.Generator().manual_seed(3)
    q = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    c = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(3, 6, generator=g) < 0.4
    mask[torch.arange(3), torch.arange(3)] = False
    assert torch.autograd.gradcheck(lambda a, b: info_nce(a, b, 0.2, mask=mask), (q, c))


def test_mask_must_fit_the_scores_and_spare_the_positives():
    q, c = torch.randn(2, 4), torch.randn(3, 4)
    with pytest.raises(ValueError, match=r"mask has shape \(2, 2\), the scores \(2, 3\)"):
        info_nce(q, c, 0.05, mask=torch.zeros(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="own positive"):
        info_nce(
            q, c, 0.05, torch.tensor([2, 0]), mask=torch.tensor([[False, False, True], [False, False, False]])
        )


def test_same_key_matches_equal_ids_and_never_minus_one():
    from llm2vec_lite.losses import same_key

    got = same_key(torch.tensor([3, -1, 5]), torch.tensor([3, -1, 7, 5]))
    assert got.tolist() == [
        [True, False, False, False],
        [False, False, False, False],
        [False, False, False, True],
    ]


def test_gather_is_identity_in_one_process():
    from llm2vec_lite.losses import gather

    ids = torch.tensor([[1, 2], [3, 4]])
    assert gather(ids) is ids


def test_contrastive_stats_match_hand_computed_cosines():
    from llm2vec_lite.losses import contrastive_stats

    q = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    c = torch.tensor([[1.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])  # positives of q0, q1, then a hard negative
    stats = contrastive_stats(q, c, torch.tensor([0, 1]))
    r = 2**-0.5
    assert stats["pos_cos"].item() == pytest.approx((r + 1.0) / 2)
    assert stats["neg_cos"].item() == pytest.approx((0.0 + -1.0 + r + 0.0) / 4)
    assert stats["top1"].item() == pytest.approx(1.0)
    # masking q1's candidate 0 (a false negative) drops it from neg_cos; masking q0's better-scoring
    # candidate would change top1, so mask the one that outscores: make q0's positive lose first
    worse = contrastive_stats(q, c, torch.tensor([1, 1]))
    assert worse["top1"].item() == pytest.approx(0.5)  # q0 prefers candidate 0 over its "positive" 1
    mask = torch.tensor([[True, False, False], [True, False, False]])
    masked = contrastive_stats(q, c, torch.tensor([1, 1]), mask)
    assert masked["top1"].item() == pytest.approx(1.0)  # candidate 0 no longer competes
    assert masked["neg_cos"].item() == pytest.approx((-1.0 + 0.0) / 2)
