"""The recipe as the user wrote it, made shareable: ``final/recipe.yaml``.

A recipe validated by :func:`~llm2vec_lite.recipe.load_recipe` has every default filled in and its
local paths made absolute; neither belongs in a file meant for someone else. This module starts
from the mapping that was read (overrides applied, defaults left out) and rewrites each local path:

- inside the project (the recipe folder's parent, as the fingerprint counts it) a path is written
  relative to the recipe folder, as the fingerprint hashes it, so the copy re-runs to the same
  fingerprint;
- a path the user wrote with ``~/`` (the shipped GGUF recipes' ``~/.cache/NAME/FILE``) stays as
  written: it names no user or machine, and the fingerprint counts it the same way everywhere;
- anything else (an absolute path outside the project: another disk, a home folder spelt out) is
  written as ``<file name>``: the name says what it was, its sha256 is in ``provenance.json``, and
  loading the copy asks for the file (``base_model=PATH``) instead of guessing a path of the
  machine that made it.

The folder that relative paths resolve against is recorded in ``provenance.json`` as a path
relative to the model folder (``recipe_folder``), so ``convert runs/x/final`` finds the data where
``x`` found it.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from llm2vec_lite.recipe.paths import _looks_local, _resolve
from llm2vec_lite.recipe.schema import _coerce_source, _stage_ref

__all__ = ["OutsidePath", "is_placeholder", "recipe_as_written", "written_recipe_text"]


@dataclass
class OutsidePath:
    """A local path of the run that is not written into the shared recipe.

    Attributes:
        field: the recipe field (``base_model``, ``stages[0].data[1].path``).
        shown: what the shared recipe says instead (``<name>``, or nothing for ``output_dir``).
        path: the absolute path on this machine (hashed into provenance, never written out).
    """

    field: str
    shown: str | None
    path: Path


def is_placeholder(value: Any) -> bool:
    """True for ``<name>``: a path the shared recipe could not name (see :func:`recipe_as_written`)."""
    return isinstance(value, str) and len(value) > 2 and value.startswith("<") and value.endswith(">")


def _project(recipe) -> Path:
    return recipe.base_dir.resolve().parent


def _share(value: str, recipe, field: str, outside: list[OutsidePath], *, drop: bool = False) -> str | None:
    """``value`` as the shared recipe writes it (see the module docstring)."""
    if is_placeholder(value):
        return value
    base = recipe.base_dir
    resolved = Path(_resolve(value, base)).resolve()
    if value.startswith("~/") and not drop:
        # written with ~ by the user (the shipped GGUF recipes: ~/.cache/NAME/...): names no user or
        # machine, and the fingerprint counts it so too; kept, and hashed into provenance
        outside.append(OutsidePath(field, value, resolved))
        return value
    if resolved.is_relative_to(_project(recipe)):
        return value if not os.path.isabs(value) else Path(os.path.relpath(resolved, base.resolve())).as_posix()
    shown = None if drop else f"<{resolved.name}>"
    outside.append(OutsidePath(field, shown, resolved))
    return shown


def recipe_as_written(recipe) -> tuple[dict[str, Any], list[OutsidePath]]:
    """The mapping for ``final/recipe.yaml`` and the local paths it leaves out.

    Without the mapping that was read (a recipe built in code), the validated recipe's own fields
    that differ from their defaults are used.
    """
    raw = copy.deepcopy(recipe._raw) if recipe._raw is not None else _non_default_fields(recipe)
    outside: list[OutsidePath] = []
    base_model = raw.get("base_model")
    if isinstance(base_model, str) and (_looks_local(base_model) or (recipe.base_dir / base_model).exists()):
        raw["base_model"] = _share(base_model, recipe, "base_model", outside)
    if isinstance(raw.get("output_dir"), str):
        shown = _share(raw["output_dir"], recipe, "output_dir", outside, drop=True)
        if shown is None:
            raw.pop("output_dir")
    for key in ("card_template",):
        if isinstance(raw.get(key), str):
            raw[key] = _share(raw[key], recipe, key, outside)
    evaluation = raw.get("eval")
    if isinstance(evaluation, dict):
        for key in ("data_dir", "suite"):
            if isinstance(evaluation.get(key), str):
                evaluation[key] = _share(evaluation[key], recipe, f"eval.{key}", outside)
        if isinstance(evaluation.get("tasks"), list):
            evaluation["tasks"] = [
                _share(t, recipe, f"eval.tasks[{k}]", outside) if isinstance(t, str) else t
                for k, t in enumerate(evaluation["tasks"])
            ]
    for i, stage in enumerate(raw.get("stages") or []):
        if not isinstance(stage, dict):
            continue
        init_from = stage.get("init_from")
        if isinstance(init_from, str) and _stage_ref(init_from) is None:
            stage["init_from"] = _share(init_from, recipe, f"stages[{i}].init_from", outside)
        data = _coerce_source(stage.get("data"))
        many = isinstance(data, list)
        for j, src in enumerate(data if many else [data]):
            if isinstance(src, dict) and isinstance(src.get("path"), str):
                where = f"stages[{i}].data" + (f"[{j}]" if many else "") + ".path"
                src["path"] = _share(src["path"], recipe, where, outside)
        stage["data"] = data
    return raw, outside


def written_recipe_text(recipe) -> tuple[str, list[OutsidePath]]:
    """YAML text of :func:`recipe_as_written`, with a header saying what it is and what it left out."""
    raw, outside = recipe_as_written(recipe)
    lines = [
        f"# Recipe {recipe.name} (fingerprint {recipe.fingerprint}), as it was run: overrides applied,",
        "# defaults left out. Re-run it with `llm2vec-lite convert FOLDER` (this model folder).",
    ]
    for o in outside:
        if o.shown is not None and not is_placeholder(o.shown):
            continue  # a ~/ path, kept as written
        if o.shown is None:
            lines.append(f"# {o.field}: a folder outside the project, left out (default ./out)")
        else:
            lines.append(
                f"# {o.field}: {o.shown} is a file from outside the project (sha256 in provenance.json); "
                f"give it as {o.field}=PATH"
            )
    body = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True, width=100)
    return "\n".join(lines) + "\n" + body, outside


def _non_default_fields(recipe) -> dict[str, Any]:
    """The recipe's fields minus defaults, paths made portable (a recipe built in code)."""
    data = recipe.model_dump(mode="json", exclude_defaults=True)
    data.setdefault("name", recipe.name)
    data.setdefault("base_model", recipe.base_model)
    data["stages"] = [
        {"kind": s.kind, **s.model_dump(mode="json", exclude_defaults=True)} for s in recipe.stages
    ]
    return data
