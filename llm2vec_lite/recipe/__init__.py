"""The recipe schema: one YAML file says how to turn a decoder into an encoder, stage by stage.

A recipe names a base model, a few global settings (pooling, max length, dtype, LoRA) and a list of
stages (``mntp``, ``simcse``, ``supervised``) that run in order, each starting from the merged
output of the one before. YAML keys mirror the pydantic fields below one for one; every model is
``extra="forbid"``, so a misspelt key is an error (with a "did you mean" hint), never silently
ignored.

Usage::

    from llm2vec_lite.recipe import load_recipe
    recipe = load_recipe("recipes/llm2vec-sheared-llama-1.3b.yaml", ["stages.0.steps=10"])
    recipe.fingerprint          # changes only when something that changes the weights changes
    recipe.stage_dir(0)         # <output_dir>/01-mntp

Loading validates everything before any training starts and reports *all* problems at once, one
a line, as ``FILE: field.path = value: what was expected`` (the habit of torchtune's
``ConfigError``). Relative local paths (``base_model``, ``data.path``, ``init_from``,
``output_dir``, ``eval.data_dir``) resolve against the recipe file's folder, so a recipe and its
data can move together. This package does not import torch.

References: BehnamGhader et al. 2024, "LLM2Vec", arXiv:2404.05961 (the three stages);
torchtune's YAML recipes (the shape of a recipe).
The package keeps one concern per module:

- :mod:`~llm2vec_lite.recipe.schema`: the pydantic models (stages, data sources, LoRA) and fingerprints;
- :mod:`~llm2vec_lite.recipe.paths`: local paths against the recipe folder, shipped recipe names;
- :mod:`~llm2vec_lite.recipe.overrides`: the ``key.path=value`` override language;
- :mod:`~llm2vec_lite.recipe.errors`: pydantic errors as one-line ``field.path = value: ...`` messages;
- :mod:`~llm2vec_lite.recipe.consistency`: rules across fields (``warmup_steps`` <= ``steps`` ...);
- :mod:`~llm2vec_lite.recipe.reference`: the Markdown field reference (``recipe fields``, docs);
- :mod:`~llm2vec_lite.recipe.sources`: where a recipe's text comes from (file, shipped name, URL,
  ``hf://``, a model folder or hub model id holding ``recipe.yaml``);
- :mod:`~llm2vec_lite.recipe.diff`: field-by-field differences of two recipes (``recipe diff``);
- :mod:`~llm2vec_lite.recipe.loading`: :func:`load_recipe`, which ties the others together.

Every public name is re-exported here, so ``from llm2vec_lite.recipe import X`` keeps working.
"""

from __future__ import annotations

# `X as X`: names kept importable from here for code written before the split into modules (not in
# __all__); new code imports them from their own module.
from llm2vec_lite.recipe.errors import _problem_report as _problem_report
from llm2vec_lite.recipe.errors import format_validation_errors as format_validation_errors
from llm2vec_lite.recipe.loading import load_recipe
from llm2vec_lite.recipe.overrides import apply_overrides as apply_overrides
from llm2vec_lite.recipe.paths import _display_path as _display_path
from llm2vec_lite.recipe.paths import _looks_local as _looks_local
from llm2vec_lite.recipe.paths import _resolve as _resolve
from llm2vec_lite.recipe.paths import list_recipes, recipe_description, shipped_recipe_path
from llm2vec_lite.recipe.reference import field_reference, field_reference_markdown
from llm2vec_lite.recipe.schema import (
    STAGE_KINDS,
    Crops,
    DataSource,
    EvalSettings,
    LoraOverride,
    LoraSettings,
    MNTPStage,
    NliLabels,
    ProjectionSettings,
    Recipe,
    SimCSEStage,
    Stage,
    StageBase,
    SupervisedStage,
)
from llm2vec_lite.recipe.schema import DataFormat as DataFormat
from llm2vec_lite.recipe.schema import _coerce_source as _coerce_source
from llm2vec_lite.recipe.schema import _digest as _digest

__all__ = [
    "DataSource",
    "EvalSettings",
    "LoraOverride",
    "LoraSettings",
    "MNTPStage",
    "Crops",
    "NliLabels",
    "ProjectionSettings",
    "Recipe",
    "SimCSEStage",
    "Stage",
    "StageBase",
    "SupervisedStage",
    "STAGE_KINDS",
    "field_reference",
    "field_reference_markdown",
    "list_recipes",
    "load_recipe",
    "recipe_description",
    "shipped_recipe_path",
]
