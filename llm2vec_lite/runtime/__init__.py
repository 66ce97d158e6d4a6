"""How training and encoding run fast: the speed machinery, one module per trick.

The core of the package (recipe, stages, encoder, patches) says *what* is computed; the modules
here change only *how fast* and *in how much memory*, never the numbers beyond float rounding.
Each trick, what it bought where it was measured (docs/performance.md), and its switch:

- :mod:`~llm2vec_lite.runtime.policy`: one precision policy for training and encoding: bf16 only
  where the device has bf16 units (CUDA, AMX, AVX512-BF16). On an AVX2-only CPU a 1024x1024 bf16
  matmul ran at 1 GFLOP/s against 136 in float32, so ``auto`` keeps float32 there. Eager
  attention while a stage trains in bf16 on a CPU: a supervised step 16.0 -> 11.7 s. Switch: the
  recipe's ``autocast`` (``auto``, ``bf16``, ``fp16``, ``none``), ``Encoder(autocast=...)``.
- :mod:`~llm2vec_lite.runtime.allocator`: ``convert`` restarts itself under jemalloc: the demo's
  supervised stage 4.67 -> 3.88 s a step, 6128 -> 3714 MiB peak. Switch:
  ``LLM2VEC_LITE_ALLOCATOR=system`` keeps glibc's malloc.
- :mod:`~llm2vec_lite.runtime.stage_restart`: ``convert`` restarts itself between the stages of a
  CPU run, so none trains on what an earlier one left: the demo's retrieval stage peaked at 4901
  MiB after two stages in the same process, 4126-4403 MiB alone. Switch: ``--one-process``.
- :mod:`~llm2vec_lite.runtime.threads`: ``OMP_WAIT_POLICY=PASSIVE`` before torch loads: on a
  loaded 2-core machine a supervised step 93 -> 21.5 s. Switch: a value already in the
  environment wins.
- :mod:`~llm2vec_lite.runtime.frozen_base`: frozen base weights stored in bf16 while a stage trains
  under bf16 autocast: 0.9 GiB less and 5% faster a supervised step. Switch: on whenever a stage
  trains in bf16 (``autocast``).
- :mod:`~llm2vec_lite.runtime.file_pages`: the mapped float32 originals handed back to the kernel
  (``madvise``): the demo's supervised stage peaked at 3621 MiB against 3842. Switch: none; only
  file-backed mappings on Linux 5.4 and later are advised.
- :mod:`~llm2vec_lite.runtime.block_compile`: each transformer block through ``torch.compile``:
  the demo's supervised stage 5.06 -> 3.37 s a step (1.5x), for a minute or two of compiling.
  Switch: ``compile: true`` or ``auto`` on a stage (off by default).
- :mod:`~llm2vec_lite.runtime.fused_lora`: q/k/v and gate/up adapters trained through one product
  each: the demo's supervised stage 5.02 -> 4.70 s a step, 125 MiB less. Switch: on for every
  stage that trains eager (compiled blocks fuse on their own).
- :mod:`~llm2vec_lite.runtime.lora`: the stage's peft config, one LoRA dropout draw per shared
  input and cheaper CPU masks: dropout time -27%, a supervised step 10.6 -> 9.2 s. Switch: on for
  eager stages with ``lora.dropout`` above 0.

This package's ``__init__`` imports nothing heavy: :mod:`~llm2vec_lite.runtime.allocator` and
:mod:`~llm2vec_lite.runtime.threads` must run before torch loads. The modules used to sit at the
package root; the old names (``llm2vec_lite.allocator``, ``from llm2vec_lite.runtime import
mixed_precision`` ...) give the same modules and objects, with a ``DeprecationWarning``, until the
next release.
"""

from __future__ import annotations

import sys
import warnings
from importlib import import_module
from typing import Any

# Names of the policy module that `from llm2vec_lite.runtime import X` gave when the runtime was
# one file (llm2vec_lite/runtime.py): kept for one release, imported on first use so that this
# package stays free of torch. New code imports them from llm2vec_lite.runtime.policy.
_POLICY_NAMES = frozenset(
    {"PeakRSS", "bf16_is_fast", "cpu_has_fast_bf16", "current_rss_mib", "mixed_precision",
     "training_attention", "training_device"}
)


def __getattr__(name: str) -> Any:
    """The policy names at their old place, imported only when asked for (this package loads no torch)."""
    if name in _POLICY_NAMES:
        warnings.warn(
            f"llm2vec_lite.runtime.{name} moved to llm2vec_lite.runtime.policy.{name}; the old name "
            "goes in the next release", DeprecationWarning, stacklevel=2,
        )
        return getattr(import_module("llm2vec_lite.runtime.policy"), name)
    raise AttributeError(f"module 'llm2vec_lite.runtime' has no attribute {name!r}")


def _moved(old: str) -> None:
    """Make the top-level module ``old`` (``llm2vec_lite.allocator`` ...) its new runtime module.

    The old module object is replaced in ``sys.modules`` by the new one, so both names give one
    module: private names import too, and a test that patches either name patches the code that
    runs. Called by the old files, which go in the next release.
    """
    new = "llm2vec_lite.runtime." + old.rsplit(".", 1)[1]
    warnings.warn(f"{old} moved to {new}; the old name goes in the next release", DeprecationWarning, stacklevel=3)
    sys.modules[old] = import_module(new)
