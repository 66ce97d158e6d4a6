"""Loading a recipe: read the YAML, apply overrides, validate, check and resolve paths.

:func:`load_recipe` is the one entry point; it reports *all* problems at once (schema errors,
whole-recipe checks from :mod:`~llm2vec_lite.recipe.consistency`, missing local files), one a
line, before any training starts. Once the recipe is valid its local paths are made absolute and
each data source learns where it was declared (for DataError messages). Those two path steps need
the schema, so they live here rather than in :mod:`~llm2vec_lite.recipe.paths`, which the schema
itself imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from llm2vec_lite.errors import RecipeError
from llm2vec_lite.recipe.consistency import recipe_problems
from llm2vec_lite.recipe.errors import _problem_report, format_validation_errors
from llm2vec_lite.recipe.overrides import apply_overrides
from llm2vec_lite.recipe.paths import (
    _PACKAGE_PREFIX,
    _looks_local,
    _resolve,
    _under_current_folder,
)
from llm2vec_lite.recipe.schema import Recipe, _coerce_source, _stage_ref
from llm2vec_lite.recipe.sources import fetch_recipe


def load_recipe(
    path_or_name: str | Path,
    overrides: Sequence[str] = (),
    *,
    check_paths: bool = True,
    allow_missing_data: bool = False,
) -> Recipe:
    """Read, override, validate and resolve a recipe.

    Args:
        path_or_name: a YAML file, the name of a shipped recipe (see :func:`list_recipes`), an
            ``https://`` URL, ``hf://ORG/REPO/path/recipe.yaml``, a model folder ``convert`` wrote
            (its ``recipe.yaml``) or a hub model id holding one (:mod:`~llm2vec_lite.recipe.sources`).
        overrides: ``"key.path=value"`` strings applied before validation, values parsed as YAML:
            ``"stages.0.steps=10"``, ``"lora.r=8"``, ``"stages[1].data.limit=500"``.
        check_paths: also check that local files named by the recipe exist (data files,
            ``init_from``, a local ``base_model``). Hub ids are never checked.
        allow_missing_data: a missing local data file is not a problem here (``convert --dry-run``
            prints the plan with it marked, and stops after).

    Returns:
        The validated :class:`Recipe`, local paths made absolute. Relative ``output_dir`` resolves
        against the recipe's folder, except for a shipped recipe loaded by name, where it
        resolves against the current directory (the package folder is not a place to write).

    Raises:
        RecipeError: If the file cannot be read or parsed, an override is malformed, or the recipe
            is invalid. The message lists every problem, one a line, as
            ``FILE: field.path = value: what was expected``.
    """
    source = fetch_recipe(path_or_name)
    file, shipped, label, text = source.source_path, source.output_under_cwd, source.label, source.text
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise RecipeError(f"{label}: not valid YAML: {e}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError(f"{label}: a recipe must be a mapping of keys to values, got {type(raw).__name__}")

    raw = apply_overrides(raw, overrides, label=label)
    problems: list[str] = []
    recipe = None
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as e:
        problems += format_validation_errors(e, raw)
    if recipe is not None:
        problems += recipe_problems(recipe)  # checks that need the whole recipe
    if check_paths:
        problems += _missing_paths(raw, file.parent, allow_missing_data)
    if problems or recipe is None:
        raise RecipeError(_problem_report(label, problems))

    recipe._source_path = file
    recipe._raw = raw
    recipe._provenance = source.provenance
    if shipped:  # the package folder is no place to write: output goes under the current folder
        recipe.output_dir = _under_current_folder(recipe.output_dir)
    _resolve_paths(recipe, file.parent, output_base=Path.cwd() if shipped else file.parent)
    _set_origins(recipe, label)
    return recipe


def _resolve_paths(recipe: Recipe, base: Path, output_base: Path) -> None:
    # A hub id "org/name" could also be a folder; treat it as local only when it looks local or exists.
    if _looks_local(recipe.base_model) or (base / recipe.base_model).exists():
        recipe.base_model = _resolve(recipe.base_model, base)
    recipe.output_dir = _resolve(recipe.output_dir, output_base)
    if recipe.eval is not None:
        if recipe.eval.data_dir:
            recipe.eval.data_dir = _resolve(recipe.eval.data_dir, base)
        if recipe.eval.suite:
            recipe.eval.suite = _resolve(recipe.eval.suite, base)
        recipe.eval.tasks = [_resolve(t, base) for t in recipe.eval.tasks]
    if recipe.card_template:
        recipe.card_template = _resolve(recipe.card_template, base)
    for i, stage in enumerate(recipe.stages):
        if i in recipe._stage_refs:
            stage.init_from = str(recipe.stage_dir(recipe._stage_refs[i]))  # made by this run
        elif stage.init_from:
            stage.init_from = _resolve(stage.init_from, base)
        for src in stage.sources():
            if src.path is not None:
                src.path = _resolve(src.path, base)


def _set_origins(recipe: Recipe, label: str) -> None:
    for i, stage in enumerate(recipe.stages):
        multiple = isinstance(stage.data, list)
        for j, src in enumerate(stage.sources()):
            src._origin = f"{label}: stages[{i}].data" + (f"[{j}]" if multiple else "")


def _placeholder_problem(where: str, value: Any) -> str | None:
    """A ``<name>`` left by a shared recipe (llm2vec_lite.sharing.written): ask for the file."""
    if isinstance(value, str) and len(value) > 2 and value.startswith("<") and value.endswith(">"):
        return (
            f"{where} = {value!r}: stands for a file from outside the project the recipe was run in "
            f"(its sha256 is in provenance.json); give the file: {where}=PATH"
        )
    return None


def _missing_paths(raw: dict[str, Any], base: Path, allow_missing_data: bool = False) -> list[str]:
    """Problems with local paths, read from the raw mapping so they join the schema problems."""
    problems = []
    hint = "relative paths resolve against the recipe's folder"
    base_model = raw.get("base_model")
    if placeholder := _placeholder_problem("base_model", base_model):
        problems.append(placeholder)
    elif isinstance(base_model, str) and base_model.startswith(_PACKAGE_PREFIX):
        from llm2vec_lite.paths import resolve_model_path

        try:
            resolve_model_path(base_model)
        except FileNotFoundError as e:
            problems.append(f"base_model = {base_model!r}: {e}")
    elif isinstance(base_model, str) and _looks_local(base_model):
        resolved = Path(_resolve(base_model, base))
        if not resolved.exists():
            problems.append(
                f"base_model = {base_model!r}: not found (resolved to {resolved}); give an existing "
                f"folder or .gguf file ({hint}) or a hub id"
            )
    stages = raw.get("stages")
    for i, stage in enumerate(stages if isinstance(stages, list) else []):
        if not isinstance(stage, dict):
            continue
        init_from = stage.get("init_from")
        ref = isinstance(init_from, str) and _stage_ref(init_from) is not None
        if isinstance(init_from, str) and not ref and not Path(_resolve(init_from, base)).exists():
            problems.append(
                f"stages[{i}].init_from = {init_from!r}: folder not found "
                f"(resolved to {_resolve(init_from, base)}); {hint}"
            )
        data = _coerce_source(stage.get("data"))
        sources = data if isinstance(data, list) else [data]
        for j, src in enumerate(sources):
            path = src.get("path") if isinstance(src, dict) else None
            if not isinstance(path, str):
                continue
            where = f"stages[{i}].data" + (f"[{j}]" if isinstance(data, list) else "") + ".path"
            resolved = Path(_resolve(path, base))
            if placeholder := _placeholder_problem(where, path):
                problems.append(placeholder)
            elif not resolved.is_file() and not allow_missing_data:
                made_by = src.get("made_by")
                how = f"; make it with `{made_by}`" if made_by else f"; {hint}"
                problems.append(f"{where} = {path!r}: file not found (resolved to {resolved}){how}")
    return problems
