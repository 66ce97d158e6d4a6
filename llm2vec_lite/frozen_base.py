"""Frozen base weights stored lean while a stage trains: bf16 under bf16 autocast, float32 on disk.

Under ``torch.autocast`` every matmul casts its float32 weight to bf16. autocast caches those
casts only for leaf tensors that require grad, so the frozen base (all of it, under LoRA) is cast
again in every forward, and each cast copy is kept alive for the backward pass: a contrastive step
that embeds its batch in several length buckets holds one bf16 copy per bucket at its peak (on a
SmolLM2 supervised step of 64 triplets, 0.9 GiB and 5% of the step time; docs/performance.md). Storing the frozen ``Linear`` weights in bf16 for the length of the stage gives the
same numbers (the cast autocast would make is the cast made here, once) without any of the copies.

Only the frozen weights of LoRA-wrapped layers are cast: embeddings, norms and a tied LM head keep
float32, so the residual stream stays float32 as under plain autocast. The float32 originals are
put back before the adapter is merged: a LoRA delta merged into bf16 weights would lose most of its
bits.

With ``spill_dir`` nothing frozen stays in memory that a step does not read. The float32
originals wait on disk instead of beside their bf16 copies, and a frozen input embedding table
is memory-mapped from a file: a step reads only the rows of the tokens in its batch, so only those
pages are resident. For Gemma 3 (a 262k x 640 table, 640 MiB in float32, of which an NLI training
set touches a small part) that is most of the table; the numbers are unchanged, since the mapped
table holds the same float32 values. Everything is loaded back into memory on exit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch

__all__ = ["frozen_linears_in"]

_ORIGINALS = "frozen-float32.pt"
_EMBEDDING = "frozen-embedding.pt"


def _frozen_embedding(model: torch.nn.Module) -> torch.nn.Parameter | None:
    """The input embedding weight when it is frozen and floating point (else None)."""
    get = getattr(model, "get_input_embeddings", None)
    embedding = get() if get is not None else None
    weight = getattr(embedding, "weight", None)
    if not isinstance(weight, torch.nn.Parameter) or weight.requires_grad or not weight.is_floating_point():
        return None
    return weight if weight.device.type == "cpu" else None  # a GPU table cannot be mapped from a file


@contextlib.contextmanager
def frozen_linears_in(
    model: torch.nn.Module, dtype: torch.dtype | None, spill_dir: str | Path | None = None
) -> Iterator[int]:
    """Store the frozen base weights of ``model``'s LoRA layers in ``dtype`` inside the block.

    Args:
        model: a peft model (LoRA layers expose ``base_layer``).
        dtype: the storage dtype while training (bf16); ``None`` casts nothing.
        spill_dir: a folder for the float32 originals and the memory-mapped input embedding
            while the block runs (files removed on exit; CPU tensors only); ``None`` keeps
            everything in memory.

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
    spill = Path(spill_dir) if spill_dir is not None else None
    embedding = _frozen_embedding(model) if spill is not None else None
    files: list[Path] = []
    mapped = False
    try:
        if spill is not None:
            spill.mkdir(parents=True, exist_ok=True)
            if originals and all(data.device.type == "cpu" for _, data in originals):
                files.append(spill / _ORIGINALS)
                torch.save([data for _, data in originals], files[-1])
                originals = [(weight, None) for weight, _ in originals]  # the file holds them now
            if embedding is not None:
                files.append(spill / _EMBEDDING)
                torch.save(embedding.data, files[-1])
                embedding.data = torch.load(files[-1], mmap=True, weights_only=True)
                mapped = True
        yield len(originals)
    finally:
        if spill is not None and originals and originals[0][1] is None:
            saved = torch.load(spill / _ORIGINALS, weights_only=True)
            originals = [(weight, data) for (weight, _), data in zip(originals, saved, strict=True)]
        for weight, data in originals:
            weight.data = data
        if mapped:
            embedding.data = torch.load(spill / _EMBEDDING, weights_only=True)  # into memory again
        for path in files:
            path.unlink(missing_ok=True)
