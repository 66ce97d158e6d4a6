"""Contrastive losses for the SimCSE and supervised stages, and the cross-process gather they need.

Both contrastive stages reduce to one function, :func:`info_nce`: each query has one positive among
a pool of candidates, and every other candidate is a negative. What changes between stages is only
what goes into the pool:

- SimCSE: queries are one dropout view of each text, candidates the other view of every text.
- Supervised: queries are the anchors, candidates are all positives of the (global) batch followed
  by all hard negatives.

Multi-process training (``accelerate launch``) widens the pool to every process's candidates with
:func:`gather_with_grad`. Its backward sums, for each process's own slice, the gradients that every
process's loss sends to it, so after DDP averages parameter gradients the update equals that of one
process holding the whole global batch (checked by ``tests/test_distributed.py``).

References:
    - van den Oord et al. 2018, "Representation Learning with Contrastive Predictive Coding",
      arXiv:1807.03748 (InfoNCE).
    - Gao et al. 2021, "SimCSE: Simple Contrastive Learning of Sentence Embeddings", arXiv:2104.08821.
    - BehnamGhader et al. 2024, "LLM2Vec", arXiv:2404.05961 (supervised stage with hard negatives).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["CITATION", "contrastive_stats", "cosine_scores", "gather", "gather_with_grad", "info_nce", "same_key"]

CITATION = """@inproceedings{gao2021simcse,
  title={{SimCSE}: Simple Contrastive Learning of Sentence Embeddings},
  author={Gao, Tianyu and Yao, Xingcheng and Chen, Danqi},
  booktitle={EMNLP},
  year={2021}
}"""


def cosine_scores(queries: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every query with every candidate.

    Args:
        queries: (n_queries, dim).
        candidates: (n_candidates, dim).

    Returns:
        (n_queries, n_candidates) similarities in [-1, 1], computed in float32 (float64 inputs stay
        float64, so ``torch.autograd.gradcheck`` can check the real loss).
    """
    dtype = torch.promote_types(torch.promote_types(queries.dtype, candidates.dtype), torch.float32)
    q = F.normalize(queries.to(dtype), dim=-1)
    c = F.normalize(candidates.to(dtype), dim=-1)
    return q @ c.T  # (n_queries, n_candidates)


def info_nce(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    temperature: float,
    positive_index: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE with cosine similarity: cross-entropy of each query against its positive.

    ``loss = mean_i -log( exp(s(q_i, c_{p(i)}) / tau) / sum_j exp(s(q_i, c_j) / tau) )``

    where ``s`` is cosine similarity, ``tau`` the temperature and ``p(i)`` the index of query
    ``i``'s positive among the candidates. Every other candidate (the other rows' positives, i.e.
    in-batch negatives, and any hard negatives appended to the pool) is a negative.

    Args:
        queries: (n_queries, dim) query embeddings.
        candidates: (n_candidates, dim) candidate embeddings, n_candidates >= n_queries when
            ``positive_index`` is omitted.
        temperature: softmax temperature ``tau`` > 0 (SimCSE and LLM2Vec use 0.05).
        positive_index: (n_queries,) long tensor, the candidate index of each query's positive.
            Defaults to ``arange(n_queries)``: query ``i``'s positive is candidate ``i``.
        mask: optional (n_queries, n_candidates) bool tensor; True leaves the candidate out of that
            query's denominator (its score becomes -inf, so it gets zero probability and no
            gradient). For false negatives: another caption of the query's image, a duplicate of
            its positive, a padding slot. A query's own positive may not be masked.

    Returns:
        Scalar mean loss (float32).

    Raises:
        ValueError: If ``temperature`` is not positive, the shapes do not fit, or ``mask`` masks
            a positive.

    References:
        van den Oord et al. 2018, arXiv:1807.03748; Gao et al. 2021, arXiv:2104.08821.

    Example:
        >>> q, d, n = torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 8)
        >>> loss = info_nce(q, torch.cat([d, n]), temperature=0.05)  # in-batch + hard negatives
    """
    if temperature <= 0:
        raise ValueError(f"temperature = {temperature}: must be > 0 (SimCSE uses 0.05)")
    if queries.shape[-1] != candidates.shape[-1]:
        raise ValueError(f"queries have dim {queries.shape[-1]} but candidates dim {candidates.shape[-1]}")
    if positive_index is None:
        if candidates.shape[0] < queries.shape[0]:
            raise ValueError(
                f"{queries.shape[0]} queries but only {candidates.shape[0]} candidates; pass "
                "positive_index or give each query its positive at the same row"
            )
        positive_index = torch.arange(queries.shape[0], device=queries.device)
    scores = cosine_scores(queries, candidates) / temperature  # (n_queries, n_candidates)
    positive_index = positive_index.to(scores.device)
    if mask is not None:
        if mask.shape != scores.shape:
            raise ValueError(f"mask has shape {tuple(mask.shape)}, the scores {tuple(scores.shape)}")
        mask = mask.to(device=scores.device, dtype=torch.bool)
        if mask.gather(1, positive_index[:, None]).any():
            raise ValueError("mask leaves out a query's own positive; only negatives may be masked")
        scores = scores.masked_fill(mask, float("-inf"))
    return F.cross_entropy(scores, positive_index)


def same_key(query_keys: torch.Tensor, candidate_keys: torch.Tensor) -> torch.Tensor:
    """(n, m) bool: query ``i`` and candidate ``j`` carry the same key; negative keys match nothing.

    Keys are ids of whatever makes two rows the same for a contrastive loss (a group, a text);
    -1 marks "no key".
    """
    q, c = query_keys[:, None], candidate_keys[None, :]
    return (q == c) & (q >= 0) & (c >= 0)


def _world() -> tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) when not distributed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_with_grad(local: torch.Tensor) -> torch.Tensor:
    """Concatenate ``local`` from every process along dim 0, keeping gradients.

    Unlike ``torch.distributed.all_gather`` (whose outputs are cut from the graph), this uses
    ``torch.distributed.nn.functional.all_gather``: in backward each process receives the sum of
    the gradients all processes computed for its slice, which is what a single process holding
    the whole batch would compute. All processes must pass the same shape.

    Args:
        local: (n, ...) this process's rows.

    Returns:
        (world_size * n, ...) rows of process 0, then process 1, ...; ``local`` itself when not
        running distributed.
    """
    _rank, world = _world()
    if world == 1:
        return local
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(local.contiguous()), dim=0)  # (world * n, ...)


def gather(local: torch.Tensor) -> torch.Tensor:
    """Concatenate ``local`` from every process along dim 0, without gradients (ids, flags).

    All processes must pass the same shape; ``local`` itself when not running distributed.
    """
    _rank, world = _world()
    if world == 1:
        return local
    import torch.distributed as dist

    parts = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(parts, local.contiguous())
    return torch.cat(parts, dim=0)  # (world * n, ...)


def process_rank() -> tuple[int, int]:
    """Public alias of the (rank, world size) lookup used by the stages to slice batches."""
    return _world()


@torch.no_grad()
def contrastive_stats(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    positive_index: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """What a contrastive stage learns, beyond its loss: mean positive and negative cosine, top-1.

    A falling InfoNCE loss can come from a tiny gap between ``pos_cos`` and ``neg_cos`` sharpened by
    the temperature; the two cosines themselves show whether the embedding space spreads out
    (``neg_cos`` falling) or stays crowded, which is what cosine-similarity tasks see.

    Args:
        queries: (n, dim); candidates: (m, dim); positive_index: (n,) index of each positive.
        mask: (n, m) True where a candidate is not a negative of that query (the InfoNCE mask:
            false negatives, empty hard-negative slots); left out of ``neg_cos`` and ``top1``.

    Returns:
        ``pos_cos`` (mean cosine of query and positive), ``neg_cos`` (mean cosine of query and every
        other candidate) and ``top1`` (share of queries whose positive scores highest).
    """
    scores = cosine_scores(queries.detach(), candidates.detach())  # (n, m)
    rows = torch.arange(scores.shape[0], device=scores.device)
    positive_index = positive_index.to(scores.device)
    pos = scores[rows, positive_index]
    masked = torch.zeros_like(scores, dtype=torch.bool) if mask is None else mask.to(scores.device).clone()
    masked[rows, positive_index] = False  # a query's own positive is never masked
    negatives = ~masked
    negatives[rows, positive_index] = False
    neg = scores[negatives].mean() if negatives.any() else scores.new_zeros(())
    scores = scores.masked_fill(masked, float("-inf"))
    return {
        "pos_cos": pos.mean(),
        "neg_cos": neg,
        "top1": (scores.argmax(dim=1) == positive_index).float().mean(),
    }

