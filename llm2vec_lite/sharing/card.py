"""``final/README.md``: a model card the Hugging Face hub recognises, written from the recipe.

The metadata block (library, task, tags, base model, licence, datasets, ``model-index``) is built
with ``huggingface_hub``'s :class:`~huggingface_hub.ModelCardData` and
:class:`~huggingface_hub.EvalResult`, so it is the hub's own format and is validated by the same
code the hub client uses. The body comes from a Jinja template (:data:`DEFAULT_TEMPLATE`, or the
recipe's ``card_template``, or ``convert --card-template``) filled with what the recipe and the run
recorded: the stages that ran, their steps, batch, LoRA rank, data with row counts, wall time and
hardware, usage with the encoder's instructions, the evaluation table and ``recipe.yaml``.

Template variables: ``card_data`` (the YAML block, required between ``---`` lines), ``name``,
``description``, ``base_model_text``, ``version``, ``method``, ``license_note``, ``stages`` (each
with ``folder``, ``kind``, ``steps``, ``batch``, ``lora_r``, ``data``, ``wall_time``,
``hardware``), ``pooling``, ``pooling_text``, ``max_length``, ``attention``, ``fingerprint``,
``repo``, ``query_instruction``, ``document_instruction``, ``eval_table``, ``eval`` (eval.json),
``provenance`` (provenance.json), ``recipe_yaml``.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from pathlib import Path
from typing import Any

from llm2vec_lite.errors import RecipeError

__all__ = ["DEFAULT_TEMPLATE", "REPO_PLACEHOLDER", "build_card", "card_metadata", "write_card"]

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "card_template.md"
# Where usage examples name the model; `llm2vec-lite push` writes the repo id in its place.
REPO_PLACEHOLDER = "path/to/this/folder"
TAGS = ["llm2vec-lite", "sentence-transformers", "feature-extraction"]

_KIND_TEXT = {
    "mntp": "masked next-token prediction",
    "simcse": "unsupervised SimCSE (two dropout views of a sentence)",
    "supervised": "supervised contrastive learning",
}
_POOLING_TEXT = {
    "mean": "average the token vectors (attention mask applied, instruction tokens left out)",
    "weighted_mean": "take a position-weighted mean of the token vectors",
    "last_token": "take the last token's vector",
    "first_token": "take the first token's vector",
}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _gguf_metadata(path: Path) -> dict[str, Any]:
    """``general.*`` fields of a GGUF file ({} without the gguf package or on a read error)."""
    try:
        import gguf

        reader = gguf.GGUFReader(str(path))
        return {k: f.contents() for k, f in reader.fields.items() if k.startswith("general.")}
    except Exception:  # noqa: BLE001 (metadata is optional; a card is still written)
        return {}


def _hub_id_from_gguf(meta: dict[str, Any]) -> str | None:
    for key in ("general.base_model.0.repo_url", "general.source.repo_url", "general.source.huggingface.repository"):
        value = meta.get(key)
        if isinstance(value, str) and value:
            prefix = "https://huggingface.co/"
            return value[len(prefix):].strip("/") if value.startswith(prefix) else value
    return None


def _card_license(readme: Path | None) -> str | None:
    if readme is None or not readme.is_file():
        return None
    try:
        from huggingface_hub import ModelCard

        return ModelCard.load(readme).data.license
    except Exception:  # noqa: BLE001 (a broken card upstream is not our problem)
        return None


def _base_model_facts(recipe, provenance: dict[str, Any]) -> tuple[str | None, str | None, str]:
    """(hub id, licence, why no id) of the base model, from the recipe, the files, and the hub cache."""
    from llm2vec_lite.paths import resolve_model_path

    given = getattr(recipe, "base_model_id", None)
    recorded = provenance.get("base_model", {})
    try:
        path = Path(resolve_model_path(str(recipe.base_model)))
    except FileNotFoundError:
        path = Path(str(recipe.base_model))
    hub_id, licence, why = given, None, ""
    if path.exists():
        gguf_file = path if path.is_file() else (path / recipe.gguf_file if recipe.gguf_file else None)
        if gguf_file is not None and gguf_file.suffix == ".gguf":
            meta = _gguf_metadata(gguf_file)
            hub_id = hub_id or _hub_id_from_gguf(meta)
            licence = meta.get("general.license") if isinstance(meta.get("general.license"), str) else None
        elif path.is_dir():
            licence = _card_license(path / "README.md")
        hub_id = hub_id or recorded.get("id")
        if hub_id is None:
            why = "the base model is a local folder or file whose metadata names no hub id; set base_model_id in the recipe"
    else:
        hub_id = hub_id or str(recipe.base_model)
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(hub_id, "README.md", revision=recipe.revision)
            licence = _card_license(Path(cached)) if isinstance(cached, str) else None
        except Exception:  # noqa: BLE001
            licence = None
    return hub_id, licence, why


def _family(final: Path) -> str | None:
    return _read_json(final / "config.json").get("model_type")


def _hub_datasets(recipe) -> list[str]:
    return list(dict.fromkeys(src.hub for stage in recipe.stages for src in stage.sources() if src.hub))


def _eval_results(results: dict[str, Any]) -> list:
    """One EvalResult per score in eval.json: STS datasets (Spearman, Pearson) and suite tasks.

    Task types follow MTEB's model cards (``STS``, ``Retrieval``, ...); a registered STS dataset
    read from the hub is named by its hub id, a local file or task by its name.
    """
    from huggingface_hub import EvalResult

    from llm2vec_lite.evaluate import STS_DATASETS

    out = []
    for name, r in results.get("datasets", {}).items():
        spec = STS_DATASETS.get(name)
        from_hub = spec is not None and str(r.get("source", "")).startswith(spec.hub_id)
        for metric in ("spearman", "pearson"):
            if metric in r:
                out.append(EvalResult(
                    task_type="STS", dataset_type=spec.hub_id if from_hub else name, dataset_name=name,
                    dataset_config=spec.subset if from_hub else None, dataset_split=spec.split if from_hub else None,
                    metric_type=f"cosine_{metric}", metric_name=f"cosine {metric.capitalize()} x100",
                    metric_value=round(float(r[metric]), 2),
                ))
    if results.get("suite"):
        from llm2vec_lite.suite import METRICS

        for name, r in results["suite"].get("tasks", {}).items():
            kind = r.get("type")
            out.append(EvalResult(
                task_type={"sts": "STS"}.get(kind, str(kind).capitalize()), dataset_type=name, dataset_name=name,
                metric_type=METRICS[kind][0] if kind in METRICS else str(r.get("metric")),
                metric_name=f"{r.get('metric')} x100", metric_value=round(float(r["score"]), 2),
            ))
    return out


def card_metadata(recipe, final: Path, provenance: dict[str, Any], results: dict[str, Any]):
    """The :class:`~huggingface_hub.ModelCardData` of the card, and a licence note (or '')."""
    from huggingface_hub import ModelCardData

    hub_id, licence, why = _base_model_facts(recipe, provenance)
    family = _family(final)
    note = ""
    if licence is None:
        licence = "other"
        note = (
            "License: `other`: the base model's licence was not found in its card, config or file "
            "metadata; check the base model's terms before using or sharing this model."
        )
    data = ModelCardData(
        model_name=recipe.name,
        base_model=hub_id,
        library_name="sentence-transformers",
        pipeline_tag="sentence-similarity",
        tags=[*TAGS, *([family] if family else [])],
        license=licence,
        datasets=_hub_datasets(recipe) or None,
        eval_results=_eval_results(results) or None,
    )
    if why:
        note = f"{note}\n\nbase_model: not given: {why}.".strip()
    return data, note


def _stage_rows(recipe, provenance: dict[str, Any]) -> list[dict[str, Any]]:
    by_stage: dict[int, list[dict[str, Any]]] = {}
    for d in provenance.get("data", []):
        by_stage.setdefault(d.get("stage"), []).append(d)
    rows = []
    for i, stage in enumerate(recipe.stages):
        info = provenance.get("stages", [{}] * (i + 1))[i] if i < len(provenance.get("stages", [])) else {}
        data = []
        for d in by_stage.get(i + 1, []):
            label = d.get("file") or f"{d.get('hub')}" + (f"/{d['name']}" if d.get("name") else "")
            count = f"{d['rows']:,} rows" if isinstance(d.get("rows"), int) else ""
            limit = f"limit {d['limit']:,}" if d.get("limit") else ""
            extra = ", ".join(x for x in (count, limit) if x)
            data.append(f"`{label}`" + (f" ({extra})" if extra else ""))
        hw = info.get("hardware") or {}
        hardware = hw.get("gpu") or hw.get("cpu") or "?"
        if hw.get("autocast"):
            hardware += f", {hw['autocast']}"
        wall = info.get("wall_time_s")
        rows.append({
            "folder": info.get("stage", f"{i + 1:02d}-{stage.kind}"),
            "kind": stage.kind,
            "steps": info.get("steps", stage.steps),
            "batch": stage.batch_size * stage.gradient_accumulation_steps,
            "lora_r": recipe.lora_for(i).r,
            "data": "<br>".join(data),
            "wall_time": _duration(wall),
            "hardware": hardware,
        })
    return rows


def _duration(seconds: float | None) -> str:
    if not isinstance(seconds, (int, float)):
        return "?"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _method(recipe) -> str:
    kinds = list(dict.fromkeys(s.kind for s in recipe.stages))
    attention = (
        "bidirectional attention (LLM2Vec, BehnamGhader et al. 2024, arXiv:2404.05961)"
        if recipe.bidirectional
        else "causal attention kept"
    )
    steps = ", then ".join(_KIND_TEXT[k] for k in kinds)
    return f"{attention}; {steps}; each stage trains a LoRA adapter that is merged before the next."


def _template_text(recipe, template: str | Path | None) -> str:
    chosen = template or getattr(recipe, "card_template", None)
    if chosen is None:
        return resources.files("llm2vec_lite.sharing").joinpath(DEFAULT_TEMPLATE).read_text(encoding="utf-8")
    try:
        return Path(chosen).read_text(encoding="utf-8")
    except OSError as e:
        raise RecipeError(f"card_template = {chosen}: cannot read the model card template: {e}") from None


def build_card(recipe, final: Path, *, template: str | Path | None = None):
    """The :class:`~huggingface_hub.ModelCard` of ``final`` (reads its provenance, eval and recipe files)."""
    from huggingface_hub import ModelCard

    from llm2vec_lite import __version__
    from llm2vec_lite.recipe_eval import EVAL_FILE, evaluation_tables
    from llm2vec_lite.sharing.provenance import PROVENANCE_FILE

    final = Path(final)
    provenance = _read_json(final / PROVENANCE_FILE)
    results = _read_json(final / EVAL_FILE)
    settings = _read_json(final / "llm2vec_lite.json")
    data, note = card_metadata(recipe, final, provenance, results)
    try:
        recipe_yaml = (final / "recipe.yaml").read_text(encoding="utf-8")
    except OSError:
        recipe_yaml = ""
    base_text = f"`{data.base_model}`" if data.base_model else "a local base model"
    try:
        return ModelCard.from_template(
            data,
            template_str=_template_text(recipe, template),
            name=recipe.name,
            description=recipe.description or "A text encoder converted from a decoder-only language model.",
            base_model_text=base_text,
            version=__version__,
            method=_method(recipe),
            license_note=note,
            stages=_stage_rows(recipe, provenance),
            pooling=recipe.pooling,
            pooling_text=_POOLING_TEXT.get(recipe.pooling, recipe.pooling),
            max_length=recipe.encoder_max_length or recipe.max_length,  # what the saved encoder uses
            attention="bidirectional" if recipe.bidirectional else "causal",
            fingerprint=recipe.fingerprint,
            repo=REPO_PLACEHOLDER,
            query_instruction=settings.get("query_instruction"),
            document_instruction=settings.get("document_instruction"),
            eval_table=evaluation_tables(results) if results.get("datasets") or results.get("suite") else "",
            eval=results,
            provenance=provenance,
            recipe_yaml=recipe_yaml,
        )
    except Exception as e:  # jinja2's syntax and undefined-variable errors
        if template is None and getattr(recipe, "card_template", None) is None:
            raise
        raise RecipeError(f"model card template: {type(e).__name__}: {e}") from None


def write_card(recipe, final: Path, *, template: str | Path | None = None) -> Path:
    """Write ``final/README.md`` from :func:`build_card`; returns its path."""
    card = build_card(recipe, final, template=template)
    path = Path(final) / "README.md"
    card.save(path)
    return path
