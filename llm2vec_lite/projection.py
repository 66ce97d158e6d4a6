"""A fitted linear map after pooling: centring and whitening of the sentence vectors.

Why: a decoder's mean-pooled hidden states are dominated by a few "massive activation" dimensions
(Sun et al. 2024, arXiv:2402.17762). In SmolLM2-135M five of 576 dimensions hold most of the squared
norm, so the cosine of two unrelated sentences is about 0.7 and cosine similarity sees little
else. Subtracting the mean vector and rescaling each principal direction to unit variance
("whitening", Su et al. 2021, arXiv:2103.15316) fixes that without labels: it is fitted on the
vectors of unlabelled text. A contrastive stage that trains *through* the projection then computes
its loss on the same features that cosine similarity sees at inference time.

The projection is stored in a model folder as ``projection/`` in sentence-transformers' ``Dense``
layout (``config.json`` + ``model.safetensors`` with ``linear.weight`` / ``linear.bias``, identity
activation), plus ``fit.json`` saying how it was fitted. An encoder folder lists it in
``modules.json`` between pooling and normalization, so sentence-transformers applies it too.

Modes:
- ``whiten``: ``W = diag(1 / sqrt(lambda_k)) U_k^T`` on the top ``dims`` principal directions
  (all when ``dims`` is None); the output has ``dims`` dimensions.
- ``standardize``: per-dimension ``(x - mean) / std``; keeps the dimension count and the axes.
- ``center``: ``x - mean`` only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch

__all__ = ["PROJECTION_DIR", "PROJECTION_MODES", "Projection", "fit_projection", "load_projection", "sample_texts"]

PROJECTION_DIR = "projection"
ProjectionMode = Literal["whiten", "standardize", "center"]
PROJECTION_MODES: tuple[str, ...] = ("whiten", "standardize", "center")


class Projection(torch.nn.Module):
    """``y = x W^T + b``, fixed (no gradients): maps pooled vectors (dim) to (out_dim).

    Args:
        weight: (out_dim, dim).
        bias: (out_dim,).
        info: how it was fitted (mode, dims, number of texts); saved in ``fit.json``.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, info: dict[str, Any] | None = None):
        super().__init__()
        if weight.ndim != 2 or bias.shape != (weight.shape[0],):
            raise ValueError(f"weight must be (out, in) and bias (out,), got {tuple(weight.shape)} and {tuple(bias.shape)}")
        self.register_buffer("weight", weight.detach().float().clone())
        self.register_buffer("bias", bias.detach().float().clone())
        self.info = dict(info or {})

    @property
    def in_dim(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_dim(self) -> int:
        return int(self.weight.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project (batch, dim) vectors in float32 (gradients flow to ``x``, not to the map)."""
        w, b = self.weight.to(x.device), self.bias.to(x.device)
        return torch.addmm(b, x.float(), w.T)

    def save(self, model_folder: str | Path) -> Path:
        """Write ``model_folder/projection/`` (sentence-transformers ``Dense`` layout + ``fit.json``)."""
        from safetensors.torch import save_file

        folder = Path(model_folder) / PROJECTION_DIR
        folder.mkdir(parents=True, exist_ok=True)
        save_file(
            {"linear.weight": self.weight.contiguous(), "linear.bias": self.bias.contiguous()},
            str(folder / "model.safetensors"),
        )
        config = {
            "in_features": self.in_dim,
            "out_features": self.out_dim,
            "bias": True,
            "activation_function": "torch.nn.modules.linear.Identity",
        }
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        (folder / "fit.json").write_text(json.dumps(self.info, indent=2) + "\n", encoding="utf-8")
        return folder


def load_projection(model_folder: str | Path) -> Projection | None:
    """The projection saved in ``model_folder``, or None when it has none (or is not a local folder).

    Raises:
        ModelError: If ``projection/`` exists but its files are missing or inconsistent.
    """
    folder = Path(model_folder) / PROJECTION_DIR
    if not folder.is_dir():
        return None
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from llm2vec_lite.errors import ModelError

    try:
        tensors = load_file(str(folder / "model.safetensors"))
        weight, bias = tensors["linear.weight"], tensors["linear.bias"]
        info_file = folder / "fit.json"
        info = json.loads(info_file.read_text(encoding="utf-8")) if info_file.is_file() else {}
        return Projection(weight, bias, info)
    except (OSError, KeyError, ValueError, SafetensorError) as e:
        raise ModelError(
            f"{folder}: not a valid projection ({type(e).__name__}: {e}); expected model.safetensors with "
            "linear.weight and linear.bias (delete the folder to use the model without it)"
        ) from e


def fit_projection(
    vectors: torch.Tensor, mode: ProjectionMode = "whiten", dims: int | None = None, *, eps: float = 1e-6
) -> Projection:
    """Fit a :class:`Projection` on pooled vectors of unlabelled text.

    Args:
        vectors: (n, dim) pooled, unnormalized sentence vectors.
        mode: ``whiten``, ``standardize`` or ``center`` (module docstring).
        dims: ``whiten`` only: keep this many principal directions (None = all). Fewer than ``dim``
            drops the low-variance directions, where a small sample's estimate is noise.
        eps: added to variances, relative to the largest, so near-constant directions stay finite.

    Raises:
        ValueError: If ``mode`` is unknown, ``dims`` is out of range, or there are fewer than two vectors.
    """
    if mode not in PROJECTION_MODES:
        raise ValueError(f"projection mode {mode!r}: expected one of {', '.join(PROJECTION_MODES)}")
    x = vectors.detach().double()
    n, dim = x.shape
    if n < 2:
        raise ValueError(f"fitting a projection needs at least 2 vectors, got {n}")
    if dims is not None and not 1 <= dims <= dim:
        raise ValueError(f"dims = {dims}: must be between 1 and the vector size {dim}")
    if dims is not None and mode != "whiten":
        raise ValueError(f"dims applies to mode 'whiten' only, not {mode!r}")
    mean = x.mean(dim=0)
    centered = x - mean
    if mode == "center":
        weight = torch.eye(dim, dtype=torch.float64)
    elif mode == "standardize":
        var = centered.pow(2).sum(dim=0) / (n - 1)
        weight = torch.diag(1.0 / torch.sqrt(var + eps * var.max()))
    else:
        cov = centered.T @ centered / (n - 1)  # (dim, dim)
        values, vectors_ = torch.linalg.eigh(cov)  # ascending
        values, vectors_ = values.flip(0).clamp(min=0), vectors_.flip(1)
        k = dim if dims is None else dims
        weight = (vectors_[:, :k] / torch.sqrt(values[:k] + eps * values[0])).T  # (k, dim)
    bias = -(weight @ mean)
    info = {"mode": mode, "dims": dims, "texts": n, "in_features": dim, "out_features": int(weight.shape[0])}
    return Projection(weight.float(), bias.float(), info)


def fit_on_texts(
    encoder, texts: list[str], mode: ProjectionMode = "whiten", dims: int | None = None, *, batch_size: int = 32
) -> Projection:
    """Encode ``texts`` with ``encoder`` (pooled, unnormalized, no projection) and fit a projection.

    Args:
        encoder: an :class:`~llm2vec_lite.encoder.Encoder`; its current projection is ignored.
        texts: unlabelled texts like those the encoder will see (a few thousand are enough for
            ``dims`` up to a few hundred).
    """
    saved, encoder.projection = encoder.projection, None
    try:
        vectors = encoder.encode(texts, batch_size=batch_size, normalize=False, convert_to="torch")
    finally:
        encoder.projection = saved
    return fit_projection(vectors, mode, dims)


def sample_texts(texts: list[str], n: int, seed: int) -> list[str]:
    """Up to ``n`` distinct texts drawn with ``seed``: the same sample on every process and rerun."""
    import random

    unique = list(dict.fromkeys(texts))
    return random.Random(seed).sample(unique, min(n, len(unique)))
