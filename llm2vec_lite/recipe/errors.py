"""Recipe problems as one-line messages: ``FILE: field.path = value: what was expected``.

Pydantic's :class:`~pydantic.ValidationError` names locations the way its validators see them
(``stages.1.simcse.temperature``, one entry per union branch tried); this module re-parses them
into the paths a user wrote (``stages[1].temperature``), with the value given, the rule broken and
a "did you mean" hint for unknown keys. :func:`format_validation_errors` takes any root model, so
other YAML configs (``llm2vec_lite.synth.config``) get the same messages. (The exception classes
themselves are in :mod:`llm2vec_lite.errors`.)
"""

from __future__ import annotations

import difflib
import json
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from llm2vec_lite.recipe.schema import STAGE_KINDS, Recipe, StageBase


def _problem_report(label: str, problems: list[str]) -> str:
    if len(problems) == 1:
        return f"{label}: {problems[0]}"
    lines = [f"{label}: {len(problems)} problems:"] + [f"  {label}: {p}" for p in problems]
    return "\n".join(lines)


def _dotted(parts: Sequence[Any]) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int) or (isinstance(p, str) and p.isdigit()):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out or "(top level)"


# Common names people type for a field; checked before difflib.
_SYNONYMS = {
    "lr": "learning_rate",
    "bs": "batch_size",
    "batch": "batch_size",
    "max_steps": "steps",
    "num_steps": "steps",
    "warmup": "warmup_steps",
    "temp": "temperature",
    "tau": "temperature",
    "mask_prob": "mask_probability",
    "mlm_probability": "mask_probability",
    "model": "base_model",
    "model_name_or_path": "base_model",
    "rank": "r",
    "lora_alpha": "alpha",
    "lora_r": "r",
    "lora_dropout": "dropout",
    "type": "kind",
    "stage": "kind",
    "pooling_mode": "pooling",
    "scheduler": "schedule",
    "lr_scheduler_type": "schedule",
    "grad_accum": "gradient_accumulation_steps",
    "gradient_accumulation": "gradient_accumulation_steps",
    "output": "output_dir",
    "file": "path",
    "dataset": "hub",
}


def _suggest(key: str, allowed: Sequence[str]) -> str:
    if _SYNONYMS.get(key) in allowed:
        return f" (did you mean {_SYNONYMS[key]!r}?)"
    close = difflib.get_close_matches(key, allowed, n=2, cutoff=0.6)
    if close:
        return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
    return f" (allowed: {', '.join(allowed)})"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Every pydantic model class inside a type annotation (through unions, lists, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(_models_in(arg))
    return found


def _model_at(
    path: list[Any], raw: dict[str, Any], root: type[BaseModel] | None = None
) -> list[type[BaseModel]]:
    """The model class(es) describing the mapping at ``path`` under ``root`` (default: a Recipe)."""
    models: list[type[BaseModel]] = [root or Recipe]
    node: Any = raw
    for seg in path:
        if isinstance(seg, int):
            node = node[seg] if isinstance(node, list) and seg < len(node) else None
            if models and all(issubclass(m, StageBase) for m in models) and isinstance(node, dict):
                kind = node.get("kind")
                if kind in STAGE_KINDS:
                    models = [STAGE_KINDS[kind]]
            continue
        nxt: list[type[BaseModel]] = []
        for m in models:
            field = m.model_fields.get(seg)
            if field is not None:
                nxt.extend(_models_in(field.annotation))
        models = list(dict.fromkeys(nxt))
        node = node.get(seg) if isinstance(node, dict) else None
        if isinstance(node, dict) and models and all(issubclass(m, StageBase) for m in models):
            kind = node.get("kind")
            if kind in STAGE_KINDS:
                models = [STAGE_KINDS[kind]]
    return models


def _fmt_value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else repr(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


_MISSING = object()


def format_validation_errors(
    error: ValidationError, raw: dict[str, Any], root: type[BaseModel] | None = None
) -> list[str]:
    """Turn pydantic's errors into ``field.path = value: expectation`` lines, one per problem.

    ``root`` is the model ``raw`` was validated against (default :class:`Recipe`); other YAML
    configs (``llm2vec_lite.synth.config``) pass theirs to get the same messages and hints.

    Union branches are folded away: for ``data: DataSource | list[DataSource]`` only the branch
    matching what was written (a mapping or a list) is reported, and tagged stage unions report
    ``stages[1].temperature``, not ``stages.1.simcse.temperature``.
    """
    lines: list[str] = []
    seen: set[str] = set()
    for err in error.errors(include_url=False):
        loc = list(err["loc"])
        path: list[Any] = []
        node: Any = raw
        drop = False
        for seg in loc:
            if isinstance(seg, int):
                path.append(seg)
                node = node[seg] if isinstance(node, list) and seg < len(node) else _MISSING
                continue
            if not _is_branch_label(seg) or (isinstance(node, dict) and seg in node):  # a key written
                path.append(seg)
                node = node.get(seg, _MISSING) if isinstance(node, dict) else _MISSING
                continue
            # A union branch label ('simcse', 'DataSource', 'list[...]'): keep only the branch that
            # matches what was written (a mapping or a list), and one message for anything else.
            is_list_branch = seg.startswith("list[")
            if isinstance(node, list) != is_list_branch and (
                isinstance(node, (list, dict)) or is_list_branch
            ):
                drop = True
                break
        if drop:
            continue
        where = _dotted(path)
        if where in seen:
            continue
        seen.add(where)
        lines.append(_describe_error(err, path, node, raw, root))
    return lines


def _is_branch_label(seg: str) -> bool:
    """True for the names pydantic gives union branches in an error location (never a field name)."""
    return seg in STAGE_KINDS or "[" in seg or seg[:1].isupper()


def _num(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _describe_error(
    err: dict[str, Any], path: list[Any], value: Any, raw: dict[str, Any], root: type[BaseModel] | None = None
) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    where = _dotted(path)
    shown = "" if value is _MISSING else f" = {_fmt_value(value)}"
    if kind == "missing":
        models = _model_at(path[:-1], raw, root)
        desc = ""
        for m in models:
            field = m.model_fields.get(path[-1]) if path else None
            if field is not None and field.description:
                desc = f" ({field.description})"
                break
        return f"{where}: required field is missing{desc}"
    if kind == "extra_forbidden":
        key = str(path[-1])
        allowed: list[str] = []
        for m in _model_at(path[:-1], raw, root):
            allowed.extend(k for k in m.model_fields if k not in allowed)
        return f"{where}{shown}: unknown key{_suggest(key, allowed)}"
    if kind == "union_tag_invalid":
        tags = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        tag = str(ctx.get("tag"))
        close = difflib.get_close_matches(tag, tags, n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{where}.kind = {tag!r}: must be one of {', '.join(tags)}{hint}"
    if kind == "union_tag_not_found":
        return f"{where}.kind: required field is missing; must be one of {', '.join(STAGE_KINDS)}"
    bounds = {
        "greater_than": ("gt", ">"),
        "greater_than_equal": ("ge", ">="),
        "less_than": ("lt", "<"),
        "less_than_equal": ("le", "<="),
    }
    if kind in bounds:
        key, sym = bounds[kind]
        return f"{where}{shown}: must be {sym} {_num(ctx.get(key))}"
    if kind == "literal_error":
        return f"{where}{shown}: must be one of {ctx.get('expected')}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{where}{shown}: must be a whole number"
    if kind in ("float_parsing", "float_type"):
        return f"{where}{shown}: must be a number"
    if kind in ("bool_parsing", "bool_type"):
        return f"{where}{shown}: must be true or false"
    if kind in ("string_type",):
        return f"{where}{shown}: must be a string"
    if kind in ("list_type",):
        return f"{where}{shown}: must be a list"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"{where}{shown}: must be a mapping of keys to values"
    if kind == "too_short":
        return f"{where}{shown}: must have at least {ctx.get('min_length')} item(s)"
    msg = str(err.get("msg", kind))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if not path:
        return msg  # a whole-recipe check; its message names the fields itself
    if kind == "value_error" and isinstance(value, dict):
        shown = ""  # the message already says what is wrong with the mapping
    return f"{where}{shown}: {msg}"
