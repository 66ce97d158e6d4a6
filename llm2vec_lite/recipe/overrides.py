"""The override language: ``key.path=value`` strings applied to a recipe before validation.

``llm2vec-lite convert RECIPE stages.0.steps=10 lora.r=8`` and ``load_recipe(path, overrides)``
both come here. Values are parsed as YAML, ``stages[0]`` and ``stages.0`` are the same, and every
malformed override is reported at once, before the recipe is validated.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any

import yaml

from llm2vec_lite.errors import RecipeError
from llm2vec_lite.recipe.errors import _dotted, _problem_report
from llm2vec_lite.recipe.schema import _coerce_source

_INDEX = re.compile(r"\[(\d+)\]")


def apply_overrides(
    raw: dict[str, Any], overrides: Sequence[str], *, label: str = "overrides"
) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``"a.b.0.c=value"`` applied (value parsed as YAML).

    Mappings and lists must be written in flow style (``{r: 4}``, ``[a, b]``); any other value
    that YAML would read as a mapping (``Query: what is``) is kept as the literal string. A key
    that does not exist yet is added (validation then says whether it is allowed); a list
    index must exist. ``stages[0].steps`` and ``stages.0.steps`` are the same.

    Raises:
        RecipeError: If an override has no ``=``, an empty key, walks into a non-container or
            indexes past the end of a list (all problems are reported together).
    """
    out = copy.deepcopy(raw)
    problems = []
    for item in overrides:
        if "=" not in item:
            problems.append(f"override {item!r}: expected KEY=VALUE, e.g. stages.0.steps=10")
            continue
        key, _, value_text = item.partition("=")
        key = _INDEX.sub(r".\1", key.strip())
        parts = [p for p in key.split(".")]
        if not key or any(not p for p in parts):
            problems.append(f"override {item!r}: malformed key {key!r}, e.g. stages.0.steps=10")
            continue
        try:
            value = yaml.safe_load(value_text) if value_text.strip() else ""
        except yaml.YAMLError as e:
            if value_text.lstrip().startswith(("{", "[")):
                problems.append(f"override {item!r}: value is not valid YAML: {e}")
                continue
            value = value_text
        if isinstance(value, (dict, list)) and not value_text.lstrip().startswith(("{", "[")):
            # "Query: what is" parses as a mapping; mappings and lists must be written in flow style.
            value = value_text
        node: Any = out
        walked: list[str] = []
        error = None
        for part in parts[:-1]:
            node, error = _step(node, part, walked, create=True)
            if error:
                break
            walked.append(part)
        if error is None:
            last = parts[-1]
            if isinstance(node, list):
                if not last.isdigit() or int(last) >= len(node):
                    error = f"{_dotted(walked)} has {len(node)} item(s); {last!r} is not an index into it"
                else:
                    node[int(last)] = value
            elif isinstance(node, dict):
                node[last] = value
            else:
                error = f"{_dotted(walked)} is a {type(node).__name__}, not a mapping"
        if error:
            problems.append(f"override {item!r}: {error}")
    if problems:
        raise RecipeError(_problem_report(label, problems))
    return out


def _step(node: Any, part: str, walked: list[str], create: bool) -> tuple[Any, str | None]:
    if isinstance(node, list):
        if not part.isdigit():
            return None, f"{_dotted(walked)} is a list; use a number, e.g. {_dotted([*walked, '0'])}"
        i = int(part)
        if i >= len(node):
            return None, f"{_dotted(walked)} has {len(node)} item(s); index {i} is out of range"
        return node[i], None
    if isinstance(node, dict):
        if part not in node or node[part] is None:
            if not create:
                return None, f"no key {_dotted([*walked, part])}"
            node[part] = {}
        if isinstance(node[part], str) and walked and walked[-1].isdigit() and part == "data":
            node[part] = _coerce_source(node[part])  # "data: ./x.txt" shorthand, then "data.limit=5"
        return node[part], None
    return None, f"{_dotted(walked)} is a {type(node).__name__}, not a mapping"
