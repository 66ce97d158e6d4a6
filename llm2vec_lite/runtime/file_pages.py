"""Hand the pages of memory-mapped weights back to the kernel while nothing reads them.

A stage loaded from a saved stage folder holds its float32 weights as views of the safetensors
file's memory map. Loading reads every page once, so the whole file (0.94 GB for the demo's
13-block Gemma) stays resident for the rest of the stage, although under bf16 training the frozen
``Linear`` weights are only read again at the merge, and the frozen embedding table only in the
rows the batches use. ``madvise(MADV_PAGEOUT)`` asks the kernel to reclaim those pages now; a
later read faults them back in from the file, so no value can change. The ranges are also marked
``MADV_RANDOM``: looking up one embedding row then reads its page, not the kernel's readahead
window around it. A fault still maps the neighbouring pages that are in the page cache, so the
table comes back faster than the rows used (392 of its 640 MiB by step 170 of the demo's stage).

Only ranges that lie in file-backed mappings are advised: on anonymous memory (weights
dequantized from a GGUF, or copies) the same call would push the pages to swap where a system has
swap, which is not what a training run wants. Everywhere the call is unavailable (not Linux, a
kernel before 5.4) :func:`page_out` does nothing and returns 0.
"""

from __future__ import annotations

import bisect
import ctypes
import functools
import logging
import os
from collections.abc import Iterable

import torch

__all__ = ["file_backed_ranges", "page_out"]

logger = logging.getLogger(__name__)

_MADV_RANDOM = 1  # linux/mman.h: no readahead on faults in the range
_MADV_PAGEOUT = 21  # since Linux 5.4


def file_backed_ranges(maps: str = "/proc/self/maps") -> list[tuple[int, int]]:
    """``(start, end)`` of every mapping of this process backed by a regular file, sorted.

    Args:
        maps: the ``/proc/<pid>/maps`` file to read (tests pass a copy).

    Returns:
        Address ranges, end exclusive; empty where the file cannot be read.
    """
    ranges = []
    try:
        with open(maps) as f:
            for line in f:
                fields = line.split(maxsplit=5)
                # inode 0 means anonymous memory, heap, stack or a pseudo-file like [vdso]
                if len(fields) < 6 or fields[4] == "0" or not fields[5].startswith("/"):
                    continue
                start, end = (int(x, 16) for x in fields[0].split("-"))
                ranges.append((start, end))
    except OSError:
        return []
    return sorted(ranges)


@functools.lru_cache(maxsize=1)
def _madvise():
    """libc's ``madvise`` through ctypes, or None where there is none."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def _inside(ranges: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether ``[start, end)`` lies inside one of the sorted ``ranges``."""
    i = bisect.bisect_right(ranges, (start, float("inf"))) - 1
    return i >= 0 and ranges[i][0] <= start and end <= ranges[i][1]


def page_out(tensors: Iterable[torch.Tensor]) -> int:
    """Ask the kernel to reclaim the file-backed pages under ``tensors``.

    Whole pages inside each tensor's bytes are advised (a partial page at either end is left, so a
    neighbouring tensor's page is never touched). CPU tensors only; others are skipped.

    Args:
        tensors: tensors whose storage may be a view of a memory-mapped file.

    Returns:
        Bytes advised (0 where nothing is file-backed or the call is unavailable).
    """
    madvise = _madvise()
    if madvise is None:
        return 0
    page = os.sysconf("SC_PAGE_SIZE")
    ranges = file_backed_ranges()
    seen: set[int] = set()
    advised = 0
    for tensor in tensors:
        if tensor.device.type != "cpu":
            continue
        if tensor.is_contiguous():  # the tensor's own bytes (a mapped file's storage may hold all of it)
            ptr, size = tensor.data_ptr(), tensor.numel() * tensor.element_size()
        else:
            storage = tensor.untyped_storage()
            ptr, size = storage.data_ptr(), storage.nbytes()
        if ptr in seen or size < page:
            continue
        seen.add(ptr)
        start = -(-ptr // page) * page  # round up: only whole pages of this storage
        end = (ptr + size) // page * page
        if end <= start or not _inside(ranges, start, end):
            continue
        if madvise(start, end - start, _MADV_RANDOM) != 0 or madvise(start, end - start, _MADV_PAGEOUT) != 0:
            logger.debug("madvise(MADV_PAGEOUT) failed: %s", os.strerror(ctypes.get_errno()))
            return advised  # EINVAL: a kernel without MADV_PAGEOUT; the rest would fail too
        advised += end - start
    return advised
