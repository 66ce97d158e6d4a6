"""The synth config: one small YAML file says which generator writes which kind of training data.

Usage::

    from llm2vec_lite.synth.config import load_synth_config
    cfg = load_synth_config("synth.yaml", ["generator.temperature=0.7"])
    cfg.output_path, cfg.tasks_path     # resolved against the config's folder

Keys mirror the pydantic fields one for one and unknown keys are errors, as in recipes; loading
reports every problem at once, ``FILE: field.path = value: what was expected``, with the same
formatting helpers as :mod:`llm2vec_lite.recipe.errors`. Checked before any model loads: the backend
name, the family names (against the prompt set), the prompt set itself, and that every
``exclude:`` file exists. This module does not import torch.

References: Wang et al. 2023, "Improving Text Embeddings with Large Language Models",
arXiv:2401.00368 (the two-step brainstorm-then-generate recipe this config drives).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from llm2vec_lite.errors import RecipeError, SynthError
from llm2vec_lite.recipe.errors import _problem_report, format_validation_errors
from llm2vec_lite.recipe.overrides import apply_overrides
from llm2vec_lite.recipe.paths import _display_path, _resolve

__all__ = [
    "REFERENCE_MODELS",
    "FamilySettings",
    "FilterSettings",
    "GeneratorSettings",
    "SynthConfig",
    "load_synth_config",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class GeneratorSettings(_Strict):
    """Which model writes the data, through which backend, with which sampling settings."""

    backend: str = Field(
        "transformers",
        description="transformers (local model, default), openai (any OpenAI-compatible HTTP server: "
        "vLLM, llama.cpp, TGI, hosted) or vllm (vLLM's Python API, when installed)",
    )
    model: str = Field(
        min_length=1,
        description="transformers/vllm: local folder, hub id, .gguf file or package: path; openai: the "
        "model name the server expects",
    )
    gguf_file: str | None = Field(None, description="GGUF file name inside model (a folder or hub repo)")
    base_url: str | None = Field(
        None, description="openai backend: the server's base URL, e.g. http://127.0.0.1:8000/v1"
    )
    api_key_env: str | None = Field(
        None, description="openai backend: environment variable holding the API key (null = no key)"
    )
    chat: bool = Field(
        True,
        description="wrap prompts in the model's chat template (chat completions over HTTP); false for "
        "base models, which then continue the few-shot prompt as plain text",
    )
    temperature: float = Field(0.8, ge=0, description="sampling temperature; 0 = greedy")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling: keep the smallest token set of this mass")
    max_new_tokens: int = Field(256, gt=0, description="token limit of one generated answer")
    batch_size: int = Field(
        8, gt=0, description="prompts per generator call (transformers: one padded batch; openai: parallel requests)"
    )
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field(
        "float32", description="transformers/vllm weight dtype (float32 on CPUs without fast bf16)"
    )
    timeout: float = Field(120.0, gt=0, description="openai backend: seconds to wait for one response")
    retries: int = Field(2, ge=0, description="openai backend: retries of a failed request (5xx, timeouts)")

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        from llm2vec_lite.synth.backends import registered_backends

        known = registered_backends()
        if v not in known:
            raise ValueError(f"unknown backend; known: {', '.join(known)}")
        return v


class FamilySettings(_Strict):
    """One task family (see the prompt set's manifest) and how much of it to generate."""

    name: str = Field(min_length=1, description="task family, e.g. retrieval or sts (see docs/synth.md)")
    tasks: int = Field(
        10, gt=0, description="task descriptions to brainstorm (families with a fixed task ignore it)"
    )
    examples_per_task: int = Field(4, gt=0, description="examples to generate for each task")


class FilterSettings(_Strict):
    """What a generated example must pass to be kept."""

    min_words: int = Field(2, ge=1, description="fewest words in any field")
    max_words: int = Field(400, gt=0, description="most words in any field")
    language: Literal["en"] | None = Field(
        "en", description="keep texts that look like this language (a script + stopword heuristic); null = off"
    )
    near_duplicate: float = Field(
        0.8, gt=0, le=1, description="drop an example whose query+positive word-3-gram Jaccard with a kept one is >= this"
    )
    ngram: int = Field(
        8, ge=3, description="decontamination: drop an example sharing a run of this many words with an exclude file"
    )
    max_failures_in_a_row: int = Field(
        50, gt=0, description="stop with an error after this many unparseable answers in a row"
    )


class SynthConfig(_Strict):
    """A whole generation run: generator, families, prompts, filters, output."""

    synth_version: Literal[1] = Field(1, description="schema version of this file (1)")
    generator: GeneratorSettings = Field(description="the model that writes the data")
    families: list[FamilySettings] = Field(min_length=1, description="task families to generate, in order")
    prompts: str = Field(
        "v2", description="prompt set: a shipped version (v2, or v1) or a folder with a manifest.yaml of your own"
    )
    format: Literal["json", "fields"] = Field(
        "json",
        description="json = one answer holds every field as JSON; fields = one short generation per "
        "field (for small models that cannot keep JSON)",
    )
    instruction_format: str = Field(
        "Instruct: {task}\nQuery: ", description="how a task becomes the query instruction ({task} is replaced)"
    )
    output: str = Field("./synth.jsonl", description="the JSONL file of kept examples (appended to on resume)")
    tasks_file: str | None = Field(
        None, description="the brainstormed task list; reused (and hand-editable) when it exists; null = OUTPUT.tasks.jsonl"
    )
    parquet: bool = Field(False, description="also write OUTPUT.parquet at the end")
    exclude: list[str] = Field(
        default_factory=list, description="files whose long n-grams no example may share (pass the STS sets)"
    )
    filters: FilterSettings = Field(default_factory=FilterSettings, description="parsing and filtering")
    seed: int = Field(0, description="seed of constraint sampling and generation")

    _source_path: Path | None = PrivateAttr(None)

    @field_validator("instruction_format")
    @classmethod
    def _has_task(cls, v: str) -> str:
        if "{task}" not in v:
            raise ValueError("must contain {task}, e.g. 'Instruct: {task}\\nQuery: '")
        return v

    @property
    def output_path(self) -> Path:
        """The kept examples (JSONL)."""
        return Path(self.output)

    def sidecar(self, suffix: str) -> Path:
        """A file next to the output: ``synth.jsonl`` -> ``synth.rejects.jsonl`` etc."""
        out = self.output_path
        stem = out.name[: -len(out.suffix)] if out.suffix else out.name
        return out.with_name(f"{stem}.{suffix}")

    @property
    def tasks_path(self) -> Path:
        """The task list of step 1."""
        return Path(self.tasks_file) if self.tasks_file else self.sidecar("tasks.jsonl")

    @property
    def fingerprint(self) -> str:
        """sha256[:16] of what decides the examples; an output file belongs to one fingerprint.

        Left out: output paths, ``parquet``, ``batch_size`` for the openai backend (requests are
        independent there) and HTTP ``timeout``/``retries``.
        """
        data = self.model_dump(mode="json", exclude={"output", "tasks_file", "parquet"})
        data["generator"].pop("timeout")
        data["generator"].pop("retries")
        if self.generator.backend == "openai":
            data["generator"].pop("batch_size")
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# The sections of docs/synth.md's field reference (recipe.field_reference_markdown(REFERENCE_MODELS)).
REFERENCE_MODELS: list[tuple[str, type[BaseModel]]] = [
    ("", SynthConfig),
    ("generator", GeneratorSettings),
    ("families[]", FamilySettings),
    ("filters", FilterSettings),
]


def load_synth_config(
    path: str | Path | None,
    overrides: Sequence[str] = (),
    *,
    base: dict[str, Any] | None = None,
    check_paths: bool = True,
) -> SynthConfig:
    """Read, override, validate and resolve a synth config.

    Args:
        path: the YAML file, or None to build the config from ``base`` and ``overrides`` alone.
        overrides: ``"key.path=value"`` strings, as for recipes (``"generator.temperature=0.7"``).
        base: a mapping to start from when ``path`` is None.
        check_paths: check that every ``exclude:`` file exists (off to validate a shipped config
            whose data is not fetched yet).

    Returns:
        The validated config; relative ``output``, ``tasks_file``, ``exclude``, ``prompts`` folder
        and local ``generator.model`` paths resolved against the config's folder (or the current one).

    Raises:
        SynthError: If the file cannot be read, is not valid YAML, or anything in it is invalid:
            every problem, one a line, as ``FILE: field.path = value: what was expected``.
    """
    from llm2vec_lite.synth.prompts import PromptSet, prompt_set_problems

    if path is not None:
        file = Path(path).expanduser().resolve()
        label = _display_path(file)
        try:
            raw = yaml.safe_load(file.read_text(encoding="utf-8"))
        except OSError as e:
            raise SynthError(f"{label}: cannot read synth config: {e}") from None
        except yaml.YAMLError as e:
            raise SynthError(f"{label}: not valid YAML: {e}") from None
        folder = file.parent
    else:
        file, label, raw, folder = None, "synth flags", dict(base or {}), Path.cwd()
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SynthError(f"{label}: a synth config must be a mapping of keys to values, got {type(raw).__name__}")
    try:
        raw = apply_overrides(raw, overrides, label=label)
    except RecipeError as e:  # the shared override parser's message, under this module's error type
        raise SynthError(str(e)) from None

    problems: list[str] = []
    cfg = None
    try:
        cfg = SynthConfig.model_validate(raw)
    except ValidationError as e:
        problems += format_validation_errors(e, raw, SynthConfig)
    excludes = raw.get("exclude") if check_paths and isinstance(raw.get("exclude"), list) else []
    for i, item in enumerate(excludes):
        if isinstance(item, str) and not Path(_resolve(item, folder)).is_file():
            problems.append(
                f"exclude[{i}] = {item!r}: file not found (resolved to {_resolve(item, folder)}); "
                "relative paths resolve against the config's folder"
            )
    prompts = None
    if cfg is not None:
        prompts_ref = cfg.prompts if not _is_folder_ref(cfg.prompts) else _resolve(cfg.prompts, folder)
        try:
            prompts = PromptSet.load(prompts_ref)
        except SynthError as e:
            problems.append(f"prompts = {cfg.prompts!r}: {e}")
        if prompts is not None:
            problems += prompt_set_problems(prompts, [f.name for f in cfg.families], cfg.format)
    if problems or cfg is None:
        raise SynthError(_problem_report(label, problems))

    cfg._source_path = file
    cfg.output = _resolve(cfg.output, folder)
    if cfg.tasks_file:
        cfg.tasks_file = _resolve(cfg.tasks_file, folder)
    cfg.exclude = [_resolve(p, folder) for p in cfg.exclude]
    if _is_folder_ref(cfg.prompts):
        cfg.prompts = _resolve(cfg.prompts, folder)
    model = cfg.generator.model
    local = model.startswith((".", "/", "~")) or model.endswith(".gguf")
    if cfg.generator.backend != "openai" and local and not model.startswith("package:"):
        cfg.generator.model = _resolve(model, folder)
    return cfg


def _is_folder_ref(value: str) -> bool:
    """True when ``prompts`` names a folder rather than a shipped version like ``v1``."""
    return "/" in value or value.startswith((".", "~"))
