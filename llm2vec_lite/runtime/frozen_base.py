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

Those float32 originals, and the frozen embedding table, are often views of a memory-mapped
safetensors file (a stage loaded from the previous stage's folder): their pages stay resident after
loading though the stage reads the originals again only at the merge, and the table only in the
rows its batches use. They are handed back to the kernel once the bf16 copies exist
(:func:`llm2vec_lite.runtime.file_pages.page_out`); what is read later faults back in from the file.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch

from llm2vec_lite.runtime.file_pages import page_out

__all__ = ["frozen_linears_in"]

logger = logging.getLogger(__name__)


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
    if originals:
        frozen = [p.data for p in model.parameters() if not p.requires_grad]  # the embedding table
        released = page_out([data for _, data in originals] + frozen)
        if released:
            logger.info("frozen base in %s: %.0f MiB of memory-mapped float32 weights handed back to "
                        "the kernel until the merge", dtype, released / 2**20)
    try:
        yield len(originals)
    finally:
        for weight, data in originals:
            weight.data = data
