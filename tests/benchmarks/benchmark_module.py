"""Import a script under benchmarks/ (not a package) by its file path, for the tests beside this file."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_benchmark(name: str, relative: str | None = None) -> ModuleType:
    """``benchmarks/<relative or name.py>`` as module ``name``, registered in ``sys.modules``
    (dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / (relative or f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
