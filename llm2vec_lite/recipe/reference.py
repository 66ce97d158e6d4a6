"""The field reference: every recipe field as a row, from the schema itself.

``llm2vec-lite recipe fields`` prints it and docs/recipes.md keeps it as Markdown tables (a test
checks the page is current), so the documentation cannot drift from the pydantic models. Other
configs pass their own models (``llm2vec_lite.synth.config.REFERENCE_MODELS``).
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel

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
    StageBase,
    SupervisedStage,
)

_REFERENCE_MODELS: list[tuple[str, type[BaseModel]]] = [
    ("", Recipe),
    ("lora", LoraSettings),
    ("eval", EvalSettings),
    ("stages[] (every kind)", StageBase),
    ("stages[] kind: mntp", MNTPStage),
    ("stages[] kind: simcse", SimCSEStage),
    ("stages[] kind: supervised", SupervisedStage),
    ("stages[].lora", LoraOverride),
    ("stages[].data", DataSource),
    ("stages[].data.nli", NliLabels),
    ("stages[].data.crops", Crops),
    ("stages[].projection (simcse, supervised)", ProjectionSettings),
]


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args).replace("NoneType", "null")
    if origin is Annotated:
        return _type_name(args[0])
    if origin is list:
        return f"list[{_type_name(args[0])}]"
    if origin is dict:
        return f"dict[{_type_name(args[0])}, {_type_name(args[1])}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _default_text(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, BaseModel):
            return "(see below)"
        return json.dumps(value)
    return "null" if field.default is None else json.dumps(field.default)


def _constraints(field: Any) -> str:
    out = []
    for meta in field.metadata:
        for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            v = getattr(meta, attr, None)
            if v is not None:
                out.append(f"{sym} {v}")
        if getattr(meta, "min_length", None):
            out.append("non-empty")
    return ", ".join(out)


def field_reference(
    models: Sequence[tuple[str, type[BaseModel]]] | None = None,
) -> list[tuple[str, str, str, str, str]]:
    """Every recipe field as (section, field, type, default, description), from the schema itself.

    Stage-kind sections list only the fields that kind adds to (or narrows from) ``StageBase``.
    ``models`` lists other (section, model) pairs to describe instead, e.g. the synth config's.
    """
    rows = []
    base_fields = StageBase.model_fields
    for section, model in models or _REFERENCE_MODELS:
        for name, field in model.model_fields.items():
            if model in STAGE_KINDS.values() and name in base_fields and name != "kind":
                continue
            kind_text = _type_name(field.annotation)
            cons = _constraints(field)
            if cons:
                kind_text += f" ({cons})"
            rows.append((section, name, kind_text, _default_text(field), field.description or ""))
    return rows


def field_reference_markdown(models: Sequence[tuple[str, type[BaseModel]]] | None = None) -> str:
    """The field reference as Markdown tables, one per section (kept in docs/recipes.md)."""
    out: list[str] = []
    current = None
    for section, name, kind_text, default, desc in field_reference(models):
        if section != current:
            if current is not None:
                out.append("")
            title = section or "top level"
            out += [f"### `{title}`", "", "| field | type | default | description |", "|---|---|---|---|"]
            current = section
        cell = kind_text.replace("|", "\\|")
        out.append(f"| `{name}` | {cell} | {default.replace('|', '/')} | {desc.replace('|', '/')} |")
    return "\n".join(out) + "\n"
