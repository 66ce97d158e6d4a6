"""Field-by-field differences between two recipes (``llm2vec-lite recipe diff A B``).

Both recipes are validated first, so a default one recipe spells out and the other leaves out is
no difference, and a difference shows the default it was compared with. Local paths are compared
the way the fingerprint counts them (relative to each recipe's folder), so the same recipe in two
checkouts does not differ. Global fields come first, then the stages one by one; a stage only one
recipe has is one line.
"""

from __future__ import annotations

from typing import Any

__all__ = ["diff_recipes", "format_diff"]


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else k, out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            _flatten(v, f"{prefix}[{i}]", out)
    else:
        out[prefix] = value


def _portable_dump(recipe) -> dict[str, Any]:
    data = recipe.model_dump(mode="json")
    data["base_model"] = recipe._portable(data["base_model"], local_only=True)
    data["output_dir"] = recipe._portable(data["output_dir"])
    if data.get("eval"):
        for key in ("data_dir", "suite"):
            if data["eval"].get(key):
                data["eval"][key] = recipe._portable(data["eval"][key])
        data["eval"]["tasks"] = [recipe._portable(t) for t in data["eval"].get("tasks") or []]
    for i, stage in enumerate(data["stages"]):
        if i in recipe._stage_refs:
            stage["init_from"] = f"stages[{recipe._stage_refs[i]}]"
        elif stage.get("init_from"):
            stage["init_from"] = recipe._portable(stage["init_from"])
        if not isinstance(stage["data"], list):
            stage["data"] = [stage["data"]]
        for src in stage["data"]:
            if src.get("path"):
                src["path"] = recipe._portable(src["path"])
    return data


def diff_recipes(a, b) -> list[tuple[str, Any, Any]]:
    """``(field, value in a, value in b)`` for every field that differs, globals then stage by stage.

    A stage only one recipe has gives ``("stages[i]", kind or None, kind or None)``.
    """
    da, db = _portable_dump(a), _portable_dump(b)
    stages_a, stages_b = da.pop("stages"), db.pop("stages")
    out: list[tuple[str, Any, Any]] = []
    fa: dict[str, Any] = {}
    fb: dict[str, Any] = {}
    _flatten(da, "", fa)
    _flatten(db, "", fb)
    out += [(k, fa.get(k), fb.get(k)) for k in dict.fromkeys([*fa, *fb]) if fa.get(k) != fb.get(k)]
    for i in range(max(len(stages_a), len(stages_b))):
        if i >= len(stages_a) or i >= len(stages_b):
            only = stages_a[i] if i < len(stages_a) else stages_b[i]
            out.append((f"stages[{i}]", only["kind"] if i < len(stages_a) else None,
                        only["kind"] if i < len(stages_b) else None))
            continue
        sa: dict[str, Any] = {}
        sb: dict[str, Any] = {}
        _flatten(stages_a[i], f"stages[{i}]", sa)
        _flatten(stages_b[i], f"stages[{i}]", sb)
        out += [(k, sa.get(k), sb.get(k)) for k in dict.fromkeys([*sa, *sb]) if sa.get(k) != sb.get(k)]
    return out


def _show(value: Any) -> str:
    if value is None:
        return "null"
    return repr(value) if isinstance(value, str) else str(value)


def format_diff(a_label: str, b_label: str, diffs: list[tuple[str, Any, Any]], a=None, b=None) -> str:
    """The report: a header naming both recipes (and fingerprints), then one line a difference."""
    head = [f"A: {a_label}" + (f" (fingerprint {a.fingerprint})" if a is not None else ""),
            f"B: {b_label}" + (f" (fingerprint {b.fingerprint})" if b is not None else "")]
    if not diffs:
        return "\n".join([*head, "no differences"])
    lines = []
    for field, va, vb in diffs:
        if field.count(".") == 0 and field.startswith("stages[") and (va is None or vb is None):
            lines.append(f"{field}: only in {'A' if vb is None else 'B'} ({va or vb})")
        else:
            lines.append(f"{field}: {_show(va)} -> {_show(vb)}")
    return "\n".join([*head, *lines, f"{len(diffs)} field(s) differ"])
