"""One process per stage: ``llm2vec-lite convert`` replaces itself by the same command between stages.

A CPU training process keeps much of what it frees (glibc's heap fragments shaped by each batch,
compiled kernels, library caches), so in a conversion that trains its stages one after the other
in one process every stage starts on top of what the earlier ones left. On the README demo (13
Gemma 3 blocks, 2-core AMX CPU, ``convert``'s glibc settings) the retrieval stage peaked at 4901
MiB after MNTP and NLI in the same process, against 4126-4403 MiB in a process of its own
(docs/performance.md, "One process per stage").

After a stage is saved, ``convert`` therefore ``exec``\\ s the command line it was started with (same
interpreter, same arguments, same environment): the new process plans again, skips the finished
stages by their fingerprints, as any rerun does, and trains the next one; after the last stage it
restarts once more to write ``final/`` and score it (the recipe's ``eval`` block scored the demo at
4.2-4.5 GB after three stages in one process, 3.3 GB in a fresh one). Nothing stays behind: no
parent process waits with its own copy of torch. The one thing a fresh plan cannot see is a stage
that must be retrained though its folder carries the right fingerprint, because its input was
retrained earlier in this command; :func:`restart_for_next_stages` passes those on in
:data:`RETRAIN_ENV`, tied to the recipe's fingerprint, and :func:`stages_to_retrain` reads them.
This module imports no torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

from llm2vec_lite.runtime.allocator import exec_same_command

__all__ = ["RETRAIN_ENV", "restart_for_next_stages", "stages_to_retrain"]

RETRAIN_ENV = "LLM2VEC_LITE_RETRAIN"
"""``RECIPE_FINGERPRINT:I,J``: stages (0-based) the process before this one left to train; the number
of stages stands for ``final/`` and the ``eval`` block."""


def restart_for_next_stages(
    recipe_fingerprint: str,
    pending: Sequence[int],
    environ: Mapping[str, str] | None = None,
    execve: Callable[[str, Sequence[str], Mapping[str, str]], object] = os.execve,
) -> None:
    """Replace this process by the command that started it, to train stages ``pending`` afresh.

    Args:
        recipe_fingerprint: the running recipe's fingerprint; a later process honours the list only
            for the same recipe.
        pending: indices of the stages still to train, in order.
        environ: the environment to pass on (``os.environ`` when None).
        execve: what replaces the process (a recorder in tests, which may return).
    """
    env = dict(os.environ if environ is None else environ)
    env[RETRAIN_ENV] = f"{recipe_fingerprint}:{','.join(str(i) for i in pending)}"
    exec_same_command(env, execve)


def stages_to_retrain(recipe_fingerprint: str, environ: Mapping[str, str] | None = None) -> set[int]:
    """The stages an earlier process of this command left to train, if it ran this recipe; else none."""
    value = (os.environ if environ is None else environ).get(RETRAIN_ENV, "")
    fingerprint, _, indices = value.partition(":")
    if fingerprint != recipe_fingerprint or not indices:
        return set()
    return {int(i) for i in indices.split(",") if i.strip().isdigit()}
