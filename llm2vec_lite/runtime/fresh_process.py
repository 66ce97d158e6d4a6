"""Run a piece of work in a fresh Python process, so the memory it leaves behind dies with it.

A CPU training process under glibc's malloc keeps much of what it frees: heap fragments shaped by
each batch, compiled kernels, library caches. A conversion that trains its stages one after the
other in one process starts every stage on top of what the earlier ones left. On the README demo
(13 Gemma 3 blocks, 2-core AMX CPU, ``convert``'s glibc settings) the retrieval stage peaked at
4901 MiB after MNTP and NLI in the same process, against 4126-4403 MiB in a process of its own
(docs/performance.md, "One process per stage"). ``convert`` therefore trains each stage of a
single-process CPU run in a process of its own through :func:`run_in_fresh_process`.

The process is *spawned* (a new interpreter that imports what it needs), not forked: a fork
would inherit the parent's heap and threads, the very state this is meant to leave behind. It
inherits the environment, so the allocator ``convert`` chose (:mod:`.allocator`) and the OpenMP
policy (:mod:`.threads`) hold in it too. ``fn`` and its arguments must be picklable (a
module-level function; a recipe, a plan). This module imports no torch.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from llm2vec_lite.errors import TrainingError

__all__ = ["LOG_FORMAT", "run_in_fresh_process"]

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
"""The log line format of the command line, in its process and in the ones it spawns."""

T = TypeVar("T")


def run_in_fresh_process(fn: Callable[..., T], *args: Any, what: str) -> T:
    """Return ``fn(*args)``, computed in a newly spawned Python process that exits afterwards.

    The child logs at the level this process's root logger has, in :data:`LOG_FORMAT`, to the same
    stderr. An exception ``fn`` raises is raised here, with the child's traceback as its cause.

    Args:
        fn: a module-level (picklable) function.
        *args: its picklable arguments.
        what: names the work in the error raised when the child dies without a Python error.

    Raises:
        TrainingError: If the child process ended without returning or raising (killed by a signal,
            by the kernel's out-of-memory killer, or ``os._exit``).
    """
    level = logging.getLogger().getEffectiveLevel()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=1, mp_context=context, initializer=_configure_logging, initargs=(level,)
    ) as pool:
        future = pool.submit(fn, *args)
        try:
            return future.result()
        except BrokenProcessPool as e:
            raise TrainingError(
                f"{what}: its process ended without a Python error (killed by a signal or out of "
                "memory: see `dmesg`); run the same command again to resume from its last checkpoint"
            ) from e


def _configure_logging(level: int) -> None:
    """Log in the child as the parent does (the spawned interpreter starts with no handler)."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
