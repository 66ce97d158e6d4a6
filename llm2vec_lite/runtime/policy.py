"""Runtime policy: which precision a device should compute in, for training and encoding alike.

One place decides "is bf16 worth it here", so that training (:func:`llm2vec_lite.trainer.make_accelerator`)
and encoding (:class:`llm2vec_lite.encoder.Encoder`) never disagree:

- CUDA: bf16 when the GPU supports it (Ampere and later).
- CPU: bf16 only with native bf16 matrix units (AMX, or AVX512-BF16). Elsewhere oneDNN emulates bf16
  matmuls, and emulation is not a little slower but hundreds of times slower: on an AVX2-only AMD
  EPYC, a 1024x1024 bf16 matmul ran at ~1 GFLOP/s against ~100 GFLOP/s in float32
  (``benchmarks/train.py`` prints both peaks). Autocasting to bf16 there would turn a one-hour CPU
  conversion into days, so ``auto`` keeps float32.
- Anything else (MPS, XPU...): float32 unless asked.

A user can still force a precision (``autocast: bf16`` in a recipe, ``autocast=True`` in the
encoder); forcing bf16 on a CPU without bf16 units logs a warning that says what it costs.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

__all__ = [
    "PeakRSS",
    "bf16_is_fast",
    "cpu_has_fast_bf16",
    "current_rss_mib",
    "mixed_precision",
    "training_attention",
    "training_device",
]


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True when this CPU multiplies bf16 matrices natively (AMX or AVX512-BF16)."""
    flags: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags.update(line.split(":", 1)[1].split())
                break
    if flags:
        return bool(flags & {"amx_bf16", "avx512_bf16"})
    with contextlib.suppress(Exception):  # no /proc (macOS, Windows): ask torch
        return torch.backends.cpu.get_cpu_capability() == "AMX"
    return False


def bf16_is_fast(device: torch.device | str) -> bool:
    """Whether bf16 matmuls on ``device`` are faster than float32 ones (see the module docstring)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_fast_bf16()
    return False


def training_device() -> torch.device:
    """The device accelerate will train on: CUDA unless absent or ``ACCELERATE_USE_CPU`` is set."""
    use_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    return torch.device("cuda" if torch.cuda.is_available() and not use_cpu else "cpu")


def mixed_precision(requested: str, device: torch.device | str) -> str:
    """accelerate's ``mixed_precision`` value (``"bf16"``, ``"fp16"`` or ``"no"``) for a recipe's ``autocast``.

    Args:
        requested: ``"auto"`` (bf16 where :func:`bf16_is_fast`, else none), ``"bf16"``, ``"fp16"``
            or ``"none"``.
        device: the device that will compute.

    Raises:
        ValueError: If ``requested`` is not one of the four values.
    """
    if requested == "auto":
        return "bf16" if bf16_is_fast(device) else "no"
    try:
        mixed = {"bf16": "bf16", "fp16": "fp16", "none": "no"}[requested]
    except KeyError:
        raise ValueError(f"autocast = {requested!r}; valid: auto, bf16, fp16, none") from None
    if mixed == "bf16" and torch.device(device).type == "cpu" and not cpu_has_fast_bf16():
        logger.warning(
            "autocast: bf16 on a CPU without AMX or AVX512-BF16: bf16 matmuls are emulated there and "
            "run about 100x slower than float32. Use autocast: auto (or none) on this machine."
        )
    return mixed


def training_attention(loaded: str | None, device: torch.device | str, mixed: str) -> str | None:
    """The attention backend to train with, when it should differ from the one the model loaded with.

    Why: on a CPU in bf16, torch's fused sdpa kernel has a slow backward pass. On a 2-core AMX
    Xeon, forward + backward of a (24, 9, 64, 64) bf16 attention took 25-31 ms through sdpa and
    6-7 ms written out as matmul + softmax (``eager``); a SmolLM2 supervised step of 64 triplets
    went from 16.0 to 11.7 s (docs/performance.md). In float32 sdpa is the faster of the two, and
    on CUDA its flash kernels are, so only the CPU + bf16 case switches. Inference keeps the
    loaded backend: the saved model is switched back before it is written.

    Args:
        loaded: the model's ``config._attn_implementation``.
        device: the training device.
        mixed: accelerate's mixed precision (``"bf16"``, ``"fp16"``, ``"no"``).

    Returns:
        ``"eager"`` to train with, or None to keep ``loaded``.
    """
    if torch.device(device).type == "cpu" and mixed == "bf16" and loaded == "sdpa":
        return "eager"
    return None


def current_rss_mib() -> float | None:
    """Resident memory of this process now (Linux ``/proc``; None elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRSS:
    """The highest resident memory seen while the block runs, sampled by a daemon thread.

    ``ru_maxrss`` only knows the whole process's peak, so a conversion running three stages in one
    process could not tell which stage needed the memory; sampling every ``interval`` seconds can.
    A peak shorter than the interval may be missed (the forward/backward peak of a step lasts
    seconds on a CPU). ``peak_mib`` is None where ``/proc`` is absent.

    Example:
        >>> with PeakRSS() as rss:
        ...     train_step()
        >>> rss.peak_mib
    """

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak_mib: float | None = None
        self._stop = None

    def __enter__(self) -> PeakRSS:
        import threading

        self.peak_mib = current_rss_mib()
        if self.peak_mib is None:
            return self
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.wait(self.interval):
                now = current_rss_mib() or 0.0
                self.peak_mib = max(self.peak_mib or 0.0, now)

        self._thread = threading.Thread(target=sample, name="llm2vec-lite-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._stop is not None:
            self._stop.set()
            self._thread.join()
            self.peak_mib = max(self.peak_mib or 0.0, current_rss_mib() or 0.0)
