"""``compile: true`` on a stage: each transformer block goes through ``torch.compile`` while it trains.

Why per block and not the whole model: every block of a decoder has the same code, so dynamo
traces one block, and the compiled graph is reused by the others (one compile, not thirty); a
small graph also compiles in tens of seconds. What it buys is fusion: the element-wise work around
the matmuls (norms, rotary, SiLU, residual adds, LoRA scaling, dtype casts, dropout masks drawn in
the fused kernel) that eager mode runs as hundreds of separate passes over memory. Measured on
SmolLM2-135M (docs/performance.md): once compiled, supervised steps run 11-34% faster in float32
on an AVX2 CPU, and 1.25x faster in bf16 on an AMX one (10.6 -> 8.5 s for 64 triplets);
compiling costs one to two minutes (plus a recompile per new batch shape, made rarer by
``dynamic=True``), so it pays for stages of many steps and is off by default.

The results match eager within float rounding; dropout masks come from inductor's own generator,
so a run with dropout is reproducible with itself but not mask-for-mask equal to an eager run.
After the stage the blocks are restored to eager mode: the merged model is saved and encoded as
plain modules.
"""

from __future__ import annotations

import os
import shutil

import torch

__all__ = ["blocks_compiled", "compile_blocks", "compile_problems", "compiler_problem", "compiles", "uncompile_blocks"]


def _blocks(model) -> list[torch.nn.Module]:
    from llm2vec_lite.modeling import decoder_layers
    from llm2vec_lite.patches import unwrap_model

    holder, name = decoder_layers(unwrap_model(model))
    return list(getattr(holder, name))


def compile_blocks(model) -> int:
    """Compile every transformer block of ``model`` (a model or its peft wrapper) in place.

    Returns:
        The number of blocks compiled.
    """
    blocks = _blocks(model)
    for block in blocks:
        block.compile(dynamic=True)
    return len(blocks)


def uncompile_blocks(model) -> None:
    """Put the blocks of ``model`` back in eager mode (undoes :func:`compile_blocks`)."""
    for block in _blocks(model):
        block._compiled_call_impl = None  # what nn.Module.compile sets; None = the plain __call__


def blocks_compiled(model) -> bool:
    """Whether every block of ``model`` runs through ``torch.compile`` now (read from the blocks)."""
    return all(block._compiled_call_impl is not None for block in _blocks(model))


def _cpu_compiler() -> str | None:
    """The C++ compiler inductor would build CPU kernels with (None when there is none)."""
    for name in (os.environ.get("CXX") or "", "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def compiles(setting: bool | str, device) -> bool:
    """Whether a stage with ``compile: setting`` trains compiled on ``device``.

    ``auto`` compiles where inductor can build kernels: always on a GPU, on a CPU only with a C++
    compiler. A recipe can then ask for the faster path and still run on a slim machine (eager
    there, with a log line) instead of failing on its first step.
    """
    if setting == "auto":
        return compiler_problem(device) is None
    return bool(setting)


def compiler_problem(device) -> str | None:
    """Why ``torch.compile`` cannot build kernels for ``device`` here (None when it can).

    On a CPU inductor writes C++ and builds it with the system compiler; without one the first
    compiled call fails deep inside inductor, after the model loaded. A GPU needs no C++ compiler.
    """
    if torch.device(device).type != "cpu" or _cpu_compiler() is not None:
        return None
    return "torch.compile needs a C++ compiler on a CPU and none was found (set CXX, or install one: apt install g++)"


def compile_problems(stages, device) -> list[str]:
    """Why a stage's ``compile: true`` cannot work here, before any weights load (empty when it can).

    ``compile: auto`` is never a problem: it falls back to eager (:func:`compiles`).
    """
    wanted = [i for i, stage in enumerate(stages) if getattr(stage, "compile", False) is True]
    problem = compiler_problem(device) if wanted else None
    if problem is None:
        return []
    return [f"stages[{wanted[0]}].compile = true: {problem}; or set compile: auto (eager where it cannot) or false"]
