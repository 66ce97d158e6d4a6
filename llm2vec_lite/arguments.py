"""Argument checks shared by the command line and :meth:`Encoder.from_pretrained`.

:func:`check_max_length`, :func:`check_device`, :func:`check_dtype` and :func:`check_window` raise
:class:`~llm2vec_lite.errors.UsageError`, which the CLI turns into exit status 2, before any weights
load. They sit below the encoder (which calls them) and need no stage, so the encoder does not
depend on the recipe preflight in :mod:`llm2vec_lite.checks` (which re-exports them).
"""

from __future__ import annotations

from typing import Any

from llm2vec_lite.errors import UsageError

__all__ = ["check_device", "check_dtype", "check_max_length", "check_window"]


def check_max_length(value: int | None, name: str = "max_length") -> int | None:
    """Return ``value`` (``None`` = the folder's own) or raise UsageError when it is below 1."""
    if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
        raise UsageError(f"{name} must be a whole number >= 1 (tokens per text), got {value!r}")
    return value


def check_window(window: str, name: str = "window") -> str:
    """Return ``window`` or raise UsageError naming the valid choices (``full``, ``keep``)."""
    from llm2vec_lite.patches.base import check_window as _check

    try:
        return _check(window)
    except ValueError as e:
        raise UsageError(f"{name}: {e}") from None


def check_dtype(dtype: Any, name: str = "dtype") -> None:
    """Raise UsageError unless ``dtype`` is ``None``, ``"auto"``, a known name or a ``torch.dtype``."""
    from llm2vec_lite.modeling import DTYPE_NAMES, resolve_dtype

    try:
        resolve_dtype(dtype)
    except UsageError:
        raise UsageError(f"{name} {dtype!r} is not a dtype; valid: auto, {', '.join(DTYPE_NAMES)}") from None


def check_device(device: Any, name: str = "device") -> None:
    """Raise UsageError when ``device`` is malformed or names hardware this machine lacks.

    torch would otherwise fail later, after the weights load, with an ``AssertionError`` ("Torch
    not compiled with CUDA enabled") or an index error.
    """
    if device is None:
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as e:
        raise UsageError(f"{name} {device!r} is not a device ({e}); use cpu, cuda, cuda:1, mps ...") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "torch was built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise UsageError(f"{name} {device!r}: CUDA is not available here ({why}); use cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise UsageError(f"{name} {device!r}: this machine has {count} CUDA device(s) (cuda:0 .. cuda:{count - 1})")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"{name} {device!r}: MPS is not available here; use cpu")
