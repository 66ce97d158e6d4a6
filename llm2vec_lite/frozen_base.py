"""Frozen base weights stored in bf16 while a stage trains under bf16 autocast.

Under ``torch.autocast`` every matmul casts its float32 weight to bf16. autocast caches those
casts only for leaf tensors that require grad, so the frozen base (all of it, under LoRA) is cast
again in every forward, and each cast copy is kept alive for the backward pass: a contrastive step
that embeds its batch in several length buckets holds one bf16 copy per bucket at its peak (on a
SmolLM2 supervised step of 64 triplets, 0.9 GiB and 5% of the step time; docs/performance.md). Storing the frozen ``Linear`` weights in bf16 for the length of the stage gives the
same numbers (the cast autocast would make is the cast made here, once) without any of the copies.

Only the frozen weights of LoRA-wrapped layers are cast: embeddings, norms and a tied LM head keep
float32, so the residual stream stays float32 as under plain autocast. The float32 originals are
kept aside (the same storage, not a copy) and put back before the adapter is merged: a LoRA delta
merged into bf16 weights would lose most of its bits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["frozen_linears_in"]


@contextlib.contextmanager
def frozen_linears_in(model: torch.nn.Module, dtype: torch.dtype | None) -> Iterator[int]:
    """Store the frozen base weights of ``model``'s LoRA layers in ``dtype`` inside the block.

    Args:
        model: a peft model (LoRA layers expose ``base_layer``).
        dtype: the storage dtype while training (bf16); ``None`` changes nothing.

    Yields:
        The number of weights cast (0 when ``dtype`` is None or already their dtype).
    """
    originals: list[tuple[torch.nn.Parameter, torch.Tensor]] = []
    if dtype is not None:
        for module in model.modules():
            base = getattr(module, "base_layer", None)
            if not isinstance(base, torch.nn.Linear) or not hasattr(module, "lora_A"):
                continue
            weight = base.weight
            if weight.requires_grad or weight.dtype == dtype or not weight.is_floating_point():
                continue
            originals.append((weight, weight.data))
            weight.data = weight.data.to(dtype)
    try:
        yield len(originals)
    finally:
        for weight, data in originals:
            weight.data = data
