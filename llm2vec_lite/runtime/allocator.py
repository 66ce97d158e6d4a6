"""The memory allocator of a CPU training run: find jemalloc, and start ``convert`` under it.

This module imports no torch: :func:`restart_with_jemalloc` must run before torch loads.

CPU tensors come from glibc's malloc by default. Each training pass frees activations of new
shapes; glibc keeps the freed blocks in its heap and cannot reuse them for the next shapes, so a
run grows by gigabytes above what any step needs. jemalloc does not. On the README demo's
supervised stage (Gemma 3 on 13 blocks, 2-core AMX CPU) a step took 3.88 s at 3714 MiB under
jemalloc against 4.67 s at 6128 MiB under glibc (docs/performance.md). An allocator cannot be
switched inside a running process (``LD_PRELOAD`` acts when a program starts), so the
``llm2vec-lite convert`` command restarts itself with jemalloc preloaded when jemalloc is installed
and nothing else is preloaded; ``LLM2VEC_LITE_ALLOCATOR=system`` keeps glibc's malloc. Otherwise the
run logs :func:`allocator_advice`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "FAST_ALLOCATORS", "GLIBC_TUNABLES", "allocator_advice", "exec_same_command", "installed_allocator",
    "restart_with_jemalloc",
]

# Allocators that keep a CPU run's heap compact (jemalloc, tcmalloc), by the file LD_PRELOAD takes.
FAST_ALLOCATORS = ("libjemalloc.so.2", "libtcmalloc.so.4", "libtcmalloc_minimal.so.4")
LIBRARY_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib")


def installed_allocator(
    names: tuple[str, ...] = FAST_ALLOCATORS, library_dirs: tuple[str, ...] = LIBRARY_DIRS
) -> Path | None:
    """The first of ``names`` installed in ``library_dirs`` (what ``LD_PRELOAD`` would take), or None.

    One search for both users: :func:`allocator_advice` names it in its hint and
    :func:`restart_with_jemalloc` preloads it.
    """
    return next((Path(d) / n for n in names for d in library_dirs if (Path(d) / n).is_file()), None)


def allocator_advice(maps: str | None = None, library_dirs: tuple[str, ...] = LIBRARY_DIRS) -> str | None:
    """A hint to train on CPU with jemalloc, or None when one is loaded already (or not on Linux).

    For a process that runs without one (a library user, ``LLM2VEC_LITE_ALLOCATOR=system``, no
    jemalloc installed): at full SmolLM2 size a run of 16 plain steps of 32 triplets peaked at 4388
    MiB under jemalloc against 6248 under glibc, and a step was 9% faster (docs/performance.md).

    Args:
        maps: the text of ``/proc/self/maps`` (read when None), where a preloaded allocator shows.
        library_dirs: where to look for an installed allocator to name in the hint.
    """
    if not sys.platform.startswith("linux") or _opted_out(os.environ):
        return None
    if maps is None:
        try:
            maps = Path("/proc/self/maps").read_text()
        except OSError:
            return None
    if _names_fast_allocator(maps):
        return None
    found = installed_allocator(library_dirs=library_dirs)
    how = (
        f"export LD_PRELOAD={found} before the command"
        if found
        else "install jemalloc (Debian/Ubuntu: apt install libjemalloc2) and export "
        "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 before the command"
    )
    return (
        "training on the CPU with glibc malloc, whose heap grows with every batch shape "
        f"(about 1.4x the memory jemalloc needs): {how} (docs/training.md, 'Memory on a CPU')"
    )


_OPT_OUT = "LLM2VEC_LITE_ALLOCATOR"
# glibc's malloc without jemalloc (set before the process starts; glibc reads them once). By default
# glibc raises its mmap threshold to the size of each large block freed, so later activations of
# that size come from the heap, which fragments with every new batch shape and never shrinks. A
# fixed 256 KiB threshold maps every tensor over it on its own and returns it to the kernel when
# freed; two arenas keep the two compute threads from growing heaps of their own. It costs some
# speed (an mmap and fresh pages per tensor): the demo's retrieval stage ran at 548 tokens/s with a
# 4403 MiB peak under it, at 603 tokens/s with a 7536 MiB peak under a 4 MiB threshold
# (docs/performance.md, "Memory of the demo's supervised stage").
GLIBC_TUNABLES = {
    "MALLOC_ARENA_MAX": "2",
    "MALLOC_MMAP_THRESHOLD_": "262144",
    "MALLOC_TRIM_THRESHOLD_": "1048576",
}
_RESTARTED = "_LLM2VEC_LITE_RESTARTED"


def _names_fast_allocator(text: str) -> bool:
    """True when ``text`` (``/proc/self/maps``, ``LD_PRELOAD``) names jemalloc or tcmalloc, any version."""
    return any(name.split(".so")[0] in text for name in FAST_ALLOCATORS)


def _opted_out(environ: Mapping[str, str]) -> bool:
    return environ.get(_OPT_OUT, "").strip().lower() in ("system", "glibc", "off", "0")


def restart_with_jemalloc(
    environ: Mapping[str, str] | None = None,
    execve: Callable[[str, Sequence[str], Mapping[str, str]], object] = os.execve,
    library_dirs: tuple[str, ...] = LIBRARY_DIRS,
) -> str | None:
    """Replace this process by the same command with jemalloc preloaded, or glibc's malloc tuned.

    Nothing happens (None is returned) off Linux, when torch is already imported, when
    ``LD_PRELOAD`` names an allocator already, when ``LLM2VEC_LITE_ALLOCATOR`` is ``system``, after
    one restart (a preload that did not take must not loop), or when jemalloc is not installed and
    a :data:`GLIBC_TUNABLES` variable is set already. Otherwise ``execve`` runs ``sys.executable``
    with ``sys.orig_argv`` again, with jemalloc preloaded when it is installed and with
    :data:`GLIBC_TUNABLES` when not, and does not return; the path of the library (or ``"glibc"``)
    is returned only by a test's ``execve`` that does.

    Args:
        environ: the environment to inspect and extend (``os.environ`` when None).
        execve: what replaces the process (a recorder in tests).
        library_dirs: where to look for ``libjemalloc.so.2``.
    """
    env = dict(os.environ if environ is None else environ)
    if not sys.platform.startswith("linux") or "torch" in sys.modules:
        return None
    if _opted_out(env) or env.get(_RESTARTED):
        return None
    preloaded = env.get("LD_PRELOAD", "")
    if _names_fast_allocator(preloaded):
        return None
    found = installed_allocator(("libjemalloc.so.2",), library_dirs)
    if found is None:
        if any(key in env for key in GLIBC_TUNABLES):
            return None  # the user tuned glibc's malloc already
        env.update(GLIBC_TUNABLES)
        env[_RESTARTED] = "1"
        print(
            "llm2vec-lite: no jemalloc here; restarting with glibc's malloc tuned for training "
            f"({' '.join(f'{k}={v}' for k, v in GLIBC_TUNABLES.items())}: tensors are mapped and "
            f"unmapped whole instead of fragmenting the heap; {_OPT_OUT}=system keeps the defaults)",
            file=sys.stderr,
            flush=True,
        )
        exec_same_command(env, execve)
        return "glibc"
    env["LD_PRELOAD"] = f"{found}:{preloaded}" if preloaded else str(found)
    env[_RESTARTED] = "1"
    print(
        f"llm2vec-lite: restarting under jemalloc ({found}: less memory and faster CPU training than "
        f"glibc's malloc; {_OPT_OUT}=system keeps glibc's)",
        file=sys.stderr,
        flush=True,
    )
    exec_same_command(env, execve)
    return str(found)


def exec_same_command(
    env: Mapping[str, str],
    execve: Callable[[str, Sequence[str], Mapping[str, str]], object] = os.execve,
) -> None:
    """Replace this process by the command line that started it, on this interpreter, with ``env``.

    Output written so far is flushed first (``exec`` drops unflushed buffers). ``execve`` returns only
    in tests. Both restarts of ``convert`` go through here: this module's, and the one between
    stages (:mod:`llm2vec_lite.runtime.stage_restart`).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
