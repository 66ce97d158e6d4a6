"""Where a recipe's files are: local paths against the recipe folder, and shipped recipe names.

Relative local paths in a recipe (``base_model``, ``data.path``, ``init_from``, ``output_dir``,
``eval.data_dir``) resolve against the recipe file's folder, so a recipe and its data move
together; a hub id (``org/name``) is left alone unless it clearly looks local. A recipe can also be
named instead of given as a file: the recipes shipped in ``llm2vec_lite.recipes`` (the repository's
``recipes/`` folder). This module imports nothing else from :mod:`llm2vec_lite.recipe`, so the
schema and the loader can both use it.
"""

from __future__ import annotations

import difflib
import os
from importlib import resources
from pathlib import Path

import yaml

from llm2vec_lite.errors import RecipeError

_PACKAGE_PREFIX = "package:"  # a file inside an installed Python package (llm2vec_lite.paths)


def _looks_local(value: str) -> bool:
    """True for a path a user clearly meant as local (./x, ../x, /x, ~/x, *.gguf)."""
    if value.startswith(_PACKAGE_PREFIX):
        return False
    return value.startswith((".", "/", "~")) or value.endswith(".gguf") or os.path.isabs(value)


def _resolve(value: str, base: Path) -> str:
    if value.startswith("<") and value.endswith(">"):
        return value  # a shared recipe's stand-in for a file it could not name: reported, never resolved
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def _display_path(file: Path) -> str:
    """The file as the user will recognise it: relative when under the current folder."""
    try:
        rel = os.path.relpath(file)
    except ValueError:  # another drive on Windows
        return str(file)
    return str(file) if rel.startswith("..") else rel


def _under_current_folder(path: str) -> str:
    """A relative ``path`` with its leading ``../`` parts dropped (absolute paths unchanged).

    The shipped CPU recipes say ``output_dir: ../runs/NAME``: from their ``recipes/`` folder that is
    ``runs/NAME`` at the repository root. Loaded by name, the same recipe writes ``./runs/NAME``
    under the current folder, never above it, so both ways agree when run from the repository root.
    """
    p = Path(path).expanduser()
    if p.is_absolute():
        return str(p)
    parts = list(p.parts)
    while parts and parts[0] in ("..", "."):
        parts.pop(0)
    return str(Path(*parts)) if parts else "."


# --------------------------------------------------------------------------------------------
# Shipped recipes
# --------------------------------------------------------------------------------------------


def _shipped_dir() -> Path:
    return Path(str(resources.files("llm2vec_lite.recipes")))


def list_recipes() -> list[str]:
    """Names of the recipes shipped in ``llm2vec_lite.recipes`` (file stems), sorted."""
    folder = _shipped_dir()
    return sorted(p.stem for p in folder.glob("*.yaml") if p.is_file())


def shipped_recipe_path(name: str) -> Path:
    """The file of shipped recipe ``name`` (with or without ``.yaml``).

    Raises:
        RecipeError: If no shipped recipe has that name (the message lists close names).
    """
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    path = _shipped_dir() / f"{stem}.yaml"
    if path.is_file():
        return path
    known = list_recipes()
    close = difflib.get_close_matches(stem, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise RecipeError(
        f"Unknown recipe {name!r}: not a file and not a shipped recipe.{hint} "
        f"Shipped: {', '.join(known) or '(none)'}. Run `llm2vec-lite recipe ls`."
    )


def recipe_description(name_or_path: str | Path) -> str:
    """The ``description`` of a recipe file, read without validating it ('' if absent)."""
    path = Path(name_or_path)
    if not path.is_file():
        path = shipped_recipe_path(str(name_or_path))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return ""
    desc = data.get("description") if isinstance(data, dict) else None
    return " ".join(str(desc).split()) if desc else ""


def _locate(path_or_name: str | Path) -> tuple[Path, bool]:
    """(file, shipped?) for a path or a shipped recipe name."""
    path = Path(path_or_name).expanduser()
    if path.is_file():
        return path.resolve(), False
    text = str(path_or_name)
    looks_like_path = (
        os.sep in text or "/" in text or (text.endswith((".yaml", ".yml")) and path.parent != Path("."))
    )
    if looks_like_path:
        raise RecipeError(f"{text}: recipe file not found. Run `llm2vec-lite recipe ls` for shipped recipes.")
    return shipped_recipe_path(text).resolve(), True
