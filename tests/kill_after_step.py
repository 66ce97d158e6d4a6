"""Test-only entry: ``llm2vec-lite`` with a step callback that dies like ``kill -9``.

    python tests/kill_after_step.py KIND STEP convert RECIPE [KEY=VALUE ...]

runs the real CLI, with a :data:`llm2vec_lite.trainer.StepCallback` installed on
:func:`llm2vec_lite.pipeline.convert` that calls ``os._exit(137)`` (no cleanup, no atexit, no
flushing) right after optimizer step STEP of the stage of kind KIND, once that step is checkpointed.
The resume tests run it in a subprocess; production code carries no test hook.
"""

from __future__ import annotations

import functools
import os
import sys

import llm2vec_lite.pipeline as pipeline
from llm2vec_lite.cli import main


def die_after(kind: str, step: int):
    """A step callback that hard-exits the process after ``step`` of stage ``kind``."""

    def callback(stage_kind: str, done: int) -> None:
        if stage_kind == kind and done == step:
            os._exit(137)  # like kill -9: nothing after this runs

    return callback


if __name__ == "__main__":
    kind, step, *argv = sys.argv[1:]
    pipeline.convert = functools.partial(pipeline.convert, callbacks=[die_after(kind, int(step))])
    raise SystemExit(main(argv))
