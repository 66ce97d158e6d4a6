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
data can move together. This module does not import torch.

References: BehnamGhader et al. 2024, "LLM2Vec", arXiv:2404.05961 (the three stages);
torchtune's YAML recipes (the shape of a recipe).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import re
import types
import typing
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from llm2vec_lite.errors import RecipeError

__all__ = [
    "DataSource",
    "EvalSettings",
    "LoraOverride",
    "LoraSettings",
    "MNTPStage",
    "NliLabels",
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

DataFormat = Literal["txt", "tsv", "csv", "jsonl", "parquet"]
_SUFFIX_FORMATS: dict[str, str] = {
    ".txt": "txt",
    ".text": "txt",
    ".tsv": "tsv",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}


class _Strict(BaseModel):
    """Base of every recipe model: unknown keys are errors, defaults are validated too."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


# --------------------------------------------------------------------------------------------
# LoRA
# --------------------------------------------------------------------------------------------


class LoraSettings(_Strict):
    """LoRA adapter settings. Each stage trains a fresh adapter and merges it before the next."""

    r: int = Field(16, gt=0, description="LoRA rank (LLM2Vec uses 16)")
    alpha: int = Field(32, gt=0, description="LoRA scaling alpha; the update is scaled by alpha / r")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the LoRA input, in [0, 1)")
    target_modules: Literal["all-linear"] | list[str] = Field(
        "all-linear",
        description="module names to adapt (e.g. [q_proj, v_proj]), or 'all-linear' for every linear "
        "layer except the output head",
    )

    @field_validator("target_modules")
    @classmethod
    def _non_empty_modules(cls, v: Any) -> Any:
        if isinstance(v, list) and not v:
            raise ValueError("must name at least one module, or be 'all-linear'")
        return v


class LoraOverride(_Strict):
    """Per-stage changes to the recipe's ``lora`` block; unset fields keep the recipe's value."""

    r: int | None = Field(None, gt=0, description="LoRA rank for this stage")
    alpha: int | None = Field(None, gt=0, description="LoRA alpha for this stage")
    dropout: float | None = Field(None, ge=0, lt=1, description="LoRA dropout for this stage")
    target_modules: Literal["all-linear"] | list[str] | None = Field(
        None, description="modules to adapt in this stage"
    )


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def _labels_as_text(value: Any) -> Any:
    """YAML reads ``0`` and ``true`` as numbers and booleans; table cells are text, so compare as text."""
    if isinstance(value, (bool, int, float)):
        return str(value).lower() if isinstance(value, bool) else str(value)
    if isinstance(value, list):
        return [_labels_as_text(v) for v in value]
    if isinstance(value, dict):
        return {k: _labels_as_text(v) for k, v in value.items()}
    return value


class NliLabels(_Strict):
    """How a labelled NLI table (premise, hypothesis, label) becomes supervised rows.

    Rows are grouped by premise; each ``positive`` row gives (premise, hypothesis) and, when the
    same premise has a ``negative`` row, that hypothesis as the hard negative. Label values are
    compared as text, so numeric labels (``positive: 0``) work too.
    """

    label_column: str = Field("label", description="column holding each row's label")
    positive: str = Field("entailment", description="label of hypotheses that are positives of their premise")
    negative: str | None = Field(
        "contradiction",
        description="label of hypotheses that are hard negatives of their premise; null = pairs only",
    )

    @field_validator("positive", "negative", mode="before")
    @classmethod
    def _as_text(cls, v: Any) -> Any:
        return _labels_as_text(v)

    @model_validator(mode="after")
    def _distinct_labels(self) -> NliLabels:
        if self.negative is not None and self.negative == self.positive:
            raise ValueError(f"positive and negative are both {self.positive!r}; they must differ")
        return self


class DataSource(_Strict):
    """Where a stage reads its data: a local file or a Hugging Face hub dataset.

    In YAML a source may also be written as a bare string: ``data: ./text.txt`` (a local path) or
    ``data: hub:org/name`` (a hub dataset id).
    """

    path: str | None = Field(
        None,
        description="local file: .txt (one text a line), .tsv, .csv, .jsonl or .parquet; relative "
        "paths resolve against the recipe's folder",
    )
    hub: str | None = Field(
        None, description="hub dataset id, read with datasets.load_dataset(hub, name, split=split)"
    )
    name: str | None = Field(None, description="hub dataset config name")
    data_files: str | list[str] | None = Field(
        None, description="files inside the hub dataset repo to read (datasets' data_files), e.g. a .csv"
    )
    split: str = Field("train", description="hub dataset split")
    format: DataFormat | None = Field(
        None, description="file format of a local path; inferred from the suffix when not set"
    )
    columns: list[str] | None = Field(
        None,
        description="columns to read, in the order the stage wants them (e.g. [query, pos, neg] for "
        "anchor, positive, negative; a supervised source may name two: pairs without a hard "
        "negative); default: the stage's column names",
    )
    limit: int | None = Field(
        None,
        gt=0,
        description="read at most this many rows from this source (training rows: pairs or triplets)",
    )
    where: dict[str, str | list[str]] | None = Field(
        None,
        description="keep only rows whose column holds one of these values, e.g. {split: train} or "
        "{protocol: [base, contrast]}; compared as text",
    )
    weight: float | None = Field(
        None,
        gt=0,
        description="supervised: share of each batch drawn from this source (relative to the other "
        "sources' weights; each source cycles in its own shuffled order); null = sources are "
        "concatenated and shuffled together. Set it on every source of a stage or on none",
    )
    nli: NliLabels | None = Field(
        None,
        description="supervised: read a labelled NLI table; columns name [premise, hypothesis] "
        "(default [sentence1, sentence2]); see NliLabels",
    )
    group_columns: list[str] | None = Field(
        None,
        description="supervised: columns of one row that are positives of each other (e.g. five captions "
        "of one image); each row gives every pair of its non-empty cells once",
    )
    group_column: str | None = Field(
        None,
        description="supervised: rows with the same value here are one group (e.g. image): never each "
        "other's in-batch negatives; default for group_columns: each row is its own group",
    )
    query_instruction: str | None = Field(
        None, description="supervised: instruction before the queries of this source (overrides the stage's)"
    )
    document_instruction: str | None = Field(
        None,
        description="supervised: instruction before the positives and negatives of this source (overrides "
        "the stage's); set it equal to query_instruction for symmetric tasks",
    )
    instruction_column: str | None = Field(
        None,
        description="supervised: column holding each row's own query instruction; an empty cell falls back "
        "to this source's query_instruction, then the stage's",
    )
    instruction_template: str | None = Field(
        None,
        description="how an instruction_column cell becomes the prefix: '{instruction}' stands for the "
        "(stripped) cell, e.g. 'Instruct: {instruction}\nQuery: ' (E5); null = '{instruction} '",
    )

    # Where the source sits in its recipe ("recipe.yaml: stages[0].data"); used in DataError messages.
    _origin: str | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _one_location(self) -> DataSource:
        if (self.path is None) == (self.hub is None):
            raise ValueError("give exactly one of 'path' (a local file) or 'hub' (a hub dataset id)")
        if self.path is not None and self.format is None and self.inferred_format() is None:
            raise ValueError(
                f"cannot infer the format of {self.path!r} from its suffix; set format to one of "
                f"{', '.join(typing.get_args(DataFormat))}"
            )
        if self.data_files is not None and self.hub is None:
            raise ValueError("data_files only applies to hub sources; give the file as 'path' instead")
        if self.columns is not None and not self.columns:
            raise ValueError("columns must name at least one column (or be left out)")
        if self.instruction_template is not None and (
            self.instruction_column is None or "{instruction}" not in self.instruction_template
        ):
            raise ValueError(
                "instruction_template applies to instruction_column cells: set instruction_column and "
                "write '{instruction}' where the cell goes, e.g. 'Instruct: {instruction}\nQuery: '"
            )
        for key in ("instruction_column", "where", "nli", "group_columns", "group_column"):
            if getattr(self, key) is not None and self.inferred_format() == "txt":
                raise ValueError(
                    f"{key} needs a table (.tsv, .csv, .jsonl, .parquet or a hub dataset); "
                    "a .txt file has one text a line"
                )
        self._check_shapes()
        return self

    def _check_shapes(self) -> None:
        """``nli`` and ``group_columns`` each decide which columns are read; they exclude each other."""
        if self.where is not None and (not self.where or any(v == [] for v in self.where.values())):
            raise ValueError("where must map at least one column to at least one value, e.g. {split: train}")
        if self.nli is not None and self.group_columns is not None:
            raise ValueError(
                "give nli (premise/hypothesis/label rows) or group_columns (groups of positives), not both"
            )
        if self.nli is not None and self.columns is not None and len(self.columns) != 2:
            raise ValueError(
                f"with nli, columns names the premise and hypothesis columns (two), got {self.columns}"
            )
        if self.group_columns is not None:
            if self.columns is not None:
                raise ValueError("group_columns replaces columns: leave columns out")
            if len(set(self.group_columns)) < 2:
                raise ValueError(
                    f"group_columns = {self.group_columns}: name at least two different columns "
                    "(their cells are positives of each other)"
                )

    @field_validator("where", mode="before")
    @classmethod
    def _where_as_text(cls, v: Any) -> Any:
        return _labels_as_text(v)

    def inferred_format(self) -> str | None:
        """The file format: ``format`` if set, else from the path's suffix (None for hub sources)."""
        if self.format is not None:
            return self.format
        if self.path is None:
            return None
        return _SUFFIX_FORMATS.get(Path(self.path).suffix.lower())

    @property
    def origin(self) -> str:
        """Where this source was declared (``FILE: stages[i].data``), or a description of it."""
        if self._origin:
            return self._origin
        return f"data source {self.path or 'hub:' + str(self.hub)}"

    def describe(self) -> str:
        """A short human label: the file name or ``hub:id[/name]:split``."""
        if self.path is not None:
            return self.path
        name = f"/{self.name}" if self.name else ""
        files = f"[{self.data_files}]" if isinstance(self.data_files, str) else ""
        return f"hub:{self.hub}{name}{files}:{self.split}"


_SOURCE_INSTRUCTION_KEYS = (
    "query_instruction",
    "document_instruction",
    "instruction_column",
    "instruction_template",
)
# Source keys only the supervised stage reads (besides the instructions).
_SOURCE_SUPERVISED_KEYS = ("weight", "nli", "group_columns", "group_column")
# Source keys added after fingerprints existed: hashed only when set, so older recipes keep theirs.
_SOURCE_LATER_KEYS = (*_SOURCE_INSTRUCTION_KEYS, "where", *_SOURCE_SUPERVISED_KEYS)


def _coerce_source(value: Any) -> Any:
    """Accept ``"./file.tsv"`` and ``"hub:org/name"`` as shorthands for a DataSource."""
    if isinstance(value, str):
        if value.startswith("hub:"):
            return {"hub": value[len("hub:") :]}
        return {"path": value}
    if isinstance(value, list):
        return [_coerce_source(v) if isinstance(v, str) else v for v in value]
    return value


# --------------------------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------------------------


class StageBase(_Strict):
    """Settings every stage shares: data, optimisation schedule, checkpointing."""

    kind: str = Field(description="stage type: mntp, simcse or supervised")
    data: DataSource | list[DataSource] = Field(
        description="training data: one source or a list of sources, concatenated in order"
    )
    steps: int = Field(gt=0, description="optimizer steps to train")
    batch_size: int = Field(gt=0, description="examples per optimizer step (before accumulation)")
    learning_rate: float = Field(gt=0, description="peak learning rate (AdamW)")
    warmup_steps: int = Field(0, ge=0, description="linear warmup steps from 0 to learning_rate")
    schedule: Literal["constant", "linear", "cosine"] = Field(
        "linear",
        description="learning-rate shape after warmup: linear or cosine decay to 0 at the horizon, or "
        "constant (warmup, then the peak)",
    )
    schedule_steps: int | None = Field(
        None,
        gt=0,
        description="decay horizon: the schedule behaves as if the run had this many steps (training "
        "still stops at steps); must be >= steps; null = steps",
    )
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="micro-batches per optimizer step; each micro-batch is batch_size examples"
    )
    gradient_checkpointing: bool = Field(
        False, description="recompute activations in backward to save memory (same results, slower)"
    )
    max_grad_norm: float | None = Field(
        1.0, gt=0, description="clip the gradient norm to this value; null = no clipping"
    )
    max_length: int | None = Field(
        None, gt=0, description="token limit for this stage; null = the recipe's max_length"
    )
    lora: LoraOverride | None = Field(None, description="changes to the recipe's lora block for this stage")
    init_from: str | None = Field(
        None,
        description="start from this model folder instead of the previous stage's output (or the base "
        "model); relative paths resolve against the recipe's folder; 'stages[K]' = the output of an "
        "earlier stage K (e.g. supervised on top of MNTP, skipping SimCSE)",
    )
    checkpoint_every: int = Field(50, ge=1, description="save a resumable checkpoint every N steps")
    log_every: int = Field(1, ge=1, description="log loss and learning rate every N steps")
    seed: int | None = Field(None, description="seed for this stage; null = the recipe's seed")

    @field_validator("data", mode="before")
    @classmethod
    def _coerce_data(cls, v: Any) -> Any:
        return _coerce_source(v)

    def _data_label(self, index: int) -> str:
        return f"data[{index}]" if isinstance(self.data, list) else "data"

    def sources(self) -> list[DataSource]:
        """``data`` as a list (one source becomes a list of one)."""
        return list(self.data) if isinstance(self.data, list) else [self.data]

    @model_validator(mode="after")
    def _non_empty_sources(self) -> StageBase:
        if isinstance(self.data, list) and not self.data:
            raise ValueError("data must name at least one source")
        return self

    @field_validator("schedule_steps")
    @classmethod
    def _horizon_covers_run(cls, v: int | None, info: Any) -> int | None:
        steps = info.data.get("steps")
        if v is not None and isinstance(steps, int) and v < steps:
            raise ValueError(
                f"must be >= steps ({steps}): it is the decay horizon, and training stops at steps; "
                "leave it out to decay over the run"
            )
        return v

    def _no_instructions(self) -> None:
        """Instructions, weights, NLI labels and groups are supervised-stage notions; a source of
        another stage may not set them."""
        for i, src in enumerate(self.sources()):
            for key in (*_SOURCE_INSTRUCTION_KEYS, *_SOURCE_SUPERVISED_KEYS):
                if getattr(src, key) is not None:
                    what = "instructions" if key in _SOURCE_INSTRUCTION_KEYS else key
                    raise ValueError(
                        f"{self._data_label(i)}.{key}: only supervised stages use {what} "
                        f"({self.kind} trains on plain texts); remove it"
                    )


class MNTPStage(StageBase):
    """Masked next-token prediction: mask tokens, predict each from the position before it."""

    kind: Literal["mntp"] = Field(description="masked next-token prediction (LLM2Vec step 2)")
    mask_probability: float = Field(
        0.2, gt=0, lt=1, description="fraction of tokens to mask, in (0, 1) (LLM2Vec: 0.2 Llama, 0.8 Mistral)"
    )
    mask_token: Literal["blank", "eos", "mask"] = Field(
        "blank",
        description="what replaces a masked token: 'blank' = the '_' token (as LLM2Vec), 'eos' = the "
        "EOS token, 'mask' = a new <mask> token (embeddings are resized)",
    )

    mask_replacement: Literal["bert", "all"] = Field(
        "bert",
        description="how chosen tokens are replaced: 'bert' = 80% mask token, 10% random, 10% kept "
        "(LLM2Vec default collator); 'all' = always the mask token (LLM2Vec's Mistral run)",
    )

    @model_validator(mode="after")
    def _one_column(self) -> MNTPStage:
        for i, src in enumerate(self.sources()):
            if src.columns is not None and len(src.columns) != 1:
                raise ValueError(f"{self._data_label(i)}.columns = {src.columns}: mntp reads one text column")
        self._no_instructions()
        return self


class SimCSEStage(StageBase):
    """Unsupervised SimCSE: two dropout views of a sentence are positives, the batch negatives."""

    kind: Literal["simcse"] = Field(description="unsupervised SimCSE (LLM2Vec step 3)")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout applied in the model, in [0, 1)")
    temperature: float = Field(0.05, gt=0, description="softmax temperature tau of InfoNCE")

    @model_validator(mode="after")
    def _one_column(self) -> SimCSEStage:
        for i, src in enumerate(self.sources()):
            if src.columns is not None and len(src.columns) != 1:
                raise ValueError(
                    f"{self._data_label(i)}.columns = {src.columns}: simcse reads one text column"
                )
        self._no_instructions()
        return self


class SupervisedStage(StageBase):
    """Supervised contrastive training (InfoNCE) on (anchor, positive[, hard negative]) rows."""

    kind: Literal["supervised"] = Field(description="supervised contrastive learning on pairs/triplets")
    temperature: float = Field(0.05, gt=0, description="softmax temperature tau of InfoNCE")
    hard_negatives: bool = Field(
        True,
        description="use the third column as a hard negative where a source has one (pair sources add "
        "none); false = in-batch negatives only",
    )
    query_instruction: str | None = Field(
        None, description="instruction put before each anchor (attended to, left out of pooling)"
    )
    document_instruction: str | None = Field(
        None, description="instruction put before each positive and negative"
    )
    gradcache_chunk_size: int | None = Field(
        None, gt=0, description="GradCache micro-batch size (large batches in little memory); null = off"
    )

    def columns(self) -> list[str]:
        """The column names this stage reads by default."""
        return ["anchor", "positive", "negative"] if self.hard_negatives else ["anchor", "positive"]

    @model_validator(mode="after")
    def _column_count(self) -> SupervisedStage:
        for i, src in enumerate(self.sources()):
            if src.columns is not None and len(src.columns) < 2:
                raise ValueError(
                    f"{self._data_label(i)}.columns = {src.columns}: supervised needs 2 columns "
                    "(anchor, positive) or 3 (anchor, positive, hard negative)"
                )
        return self

    @model_validator(mode="after")
    def _weights_on_all_or_none(self) -> SupervisedStage:
        weighted = [src.weight is not None for src in self.sources()]
        if any(weighted) and not all(weighted):
            missing = [self._data_label(i) for i, w in enumerate(weighted) if not w]
            raise ValueError(
                f"{', '.join(missing)}: no weight, while other sources of this stage have one; give "
                "every source a weight (batches mix sources by weight) or none (sources are concatenated)"
            )
        return self


Stage = Annotated[Union[MNTPStage, SimCSEStage, SupervisedStage], Field(discriminator="kind")]  # noqa: UP007
STAGE_KINDS: dict[str, type[StageBase]] = {
    "mntp": MNTPStage,
    "simcse": SimCSEStage,
    "supervised": SupervisedStage,
}


# --------------------------------------------------------------------------------------------
# Recipe
# --------------------------------------------------------------------------------------------


class EvalSettings(_Strict):
    """What to evaluate the final encoder on (used by ``convert`` after the last stage)."""

    datasets: list[str] = Field(default_factory=lambda: ["stsb"], description="evaluation sets, e.g. [stsb]")
    data_dir: str | None = Field(
        None, description="folder with local evaluation data; relative paths resolve against the recipe"
    )


# Fields that do not change the trained weights, left out of fingerprints.
_RECIPE_UNHASHED = {"name", "description", "output_dir", "eval"}
_STAGE_UNHASHED = {"checkpoint_every", "log_every", "gradient_checkpointing"}


class Recipe(_Strict):
    """A whole conversion: base model, global settings and the stages to run in order."""

    recipe_version: Literal[1] = Field(1, description="schema version of this file (1)")
    name: str = Field(min_length=1, description="short name of the recipe, used in logs and model cards")
    description: str | None = Field(None, description="one line saying what the recipe does")
    base_model: str = Field(
        min_length=1,
        description="hub id, local folder, or .gguf file; relative local paths resolve against the recipe",
    )
    gguf_file: str | None = Field(None, description="GGUF file name inside base_model (a hub repo or folder)")
    revision: str | None = Field(
        None,
        description="hub revision of base_model (branch, tag, commit or refs/pr/N); pin one that has "
        "safetensors weights: pickled .bin weights are never loaded",
    )
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field(
        "float32", description="dtype of the weights while training"
    )
    autocast: Literal["auto", "bf16", "fp16", "none"] = Field(
        "auto", description="mixed precision for the forward pass; auto = bf16 where the device supports it"
    )
    attn_implementation: str | None = Field(
        None, description="attention backend: eager, sdpa, flash_attention_2; null = transformers' default"
    )
    max_length: int = Field(512, gt=0, description="token limit per text (stages may override)")
    pooling: Literal["mean", "weighted_mean", "last_token", "first_token"] = Field(
        "mean", description="how token states become one vector"
    )
    bidirectional: bool = Field(
        True,
        description="make attention bidirectional (LLM2Vec); false keeps the decoder causal, as E5-mistral "
        "and the CFT paper do (use last_token pooling then)",
    )
    window: Literal["full", "keep"] = Field(
        "full",
        description="attention span once bidirectional: full = every token sees every token, keep = "
        "keep the model's sliding windows",
    )
    seed: int = Field(0, description="random seed (data order, masking, dropout, LoRA init)")
    output_dir: str = Field(
        "./out", description="where stage folders and the final encoder go; relative to the recipe's folder"
    )
    lora: LoraSettings = Field(default_factory=LoraSettings, description="LoRA adapter settings")
    stages: list[Stage] = Field(min_length=1, description="the stages to run, in order")
    eval: EvalSettings | None = Field(None, description="evaluation after conversion")

    _source_path: Path | None = PrivateAttr(None)
    # stage index -> earlier stage index, for stages declared with init_from: stages[K]
    _stage_refs: dict[int, int] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check_stage_refs(self) -> Recipe:
        for i, stage in enumerate(self.stages):
            ref = _stage_ref(stage.init_from)
            if ref is not None and not 0 <= ref < i:
                raise ValueError(
                    f"stages[{i}].init_from = {stage.init_from!r}: must name an earlier stage "
                    f"(stages[0] .. stages[{i - 1}])"
                    if i > 0
                    else f"stages[0].init_from = {stage.init_from!r}: the first stage has no earlier stage"
                )
            if ref is not None:
                self._stage_refs[i] = ref
        return self

    def parent_stage(self, index: int) -> int | None:
        """The stage whose output stage ``index`` starts from (None: the base model or a folder)."""
        if index in self._stage_refs:
            return self._stage_refs[index]
        if self.stages[index].init_from:
            return None
        return index - 1 if index > 0 else None

    # -- paths ------------------------------------------------------------------------------

    @property
    def source_path(self) -> Path | None:
        """The file this recipe was loaded from (None when built in code)."""
        return self._source_path

    @property
    def base_dir(self) -> Path:
        """The folder relative paths were resolved against."""
        return self._source_path.parent if self._source_path is not None else Path.cwd()

    def stage_dir(self, index: int) -> Path:
        """The output folder of stage ``index`` (0-based): ``output_dir/01-mntp`` etc."""
        stage = self.stages[index]
        return Path(self.output_dir) / f"{index + 1:02d}-{stage.kind}"

    @property
    def final_dir(self) -> Path:
        """Where the finished encoder goes: ``output_dir/final``."""
        return Path(self.output_dir) / "final"

    # -- per-stage effective settings ---------------------------------------------------------

    def lora_for(self, index: int) -> LoraSettings:
        """The recipe's LoRA settings with stage ``index``'s overrides applied."""
        override = self.stages[index].lora
        if override is None:
            return self.lora.model_copy()
        changes = {k: v for k, v in override.model_dump().items() if v is not None}
        return self.lora.model_copy(update=changes)

    def max_length_for(self, index: int) -> int:
        """The token limit of stage ``index``."""
        return self.stages[index].max_length or self.max_length

    def seed_for(self, index: int) -> int:
        """The seed of stage ``index``."""
        stage_seed = self.stages[index].seed
        return self.seed if stage_seed is None else stage_seed

    # -- fingerprints -------------------------------------------------------------------------

    def _hashable(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude=_RECIPE_UNHASHED)
        data["base_model"] = self._portable(data["base_model"], local_only=True)
        _drop_unset(data, ("revision",))
        for i, stage in enumerate(data["stages"]):
            for key in _STAGE_UNHASHED:
                stage.pop(key, None)
            _drop_unset(stage, ("schedule_steps",))
            if stage["schedule"] == "constant" and stage["warmup_steps"]:
                # 'constant' used to skip the warmup; its weights differ now, so must its fingerprint.
                stage["schedule"] = "constant_with_warmup"
            if i in self._stage_refs:
                stage["init_from"] = f"stages[{self._stage_refs[i]}]"
            elif stage.get("init_from"):
                stage["init_from"] = self._portable(stage["init_from"])
            sources = stage["data"] if isinstance(stage["data"], list) else [stage["data"]]
            for src in sources:
                _drop_unset(src, _SOURCE_LATER_KEYS)
                if src.get("path"):
                    src["path"] = self._portable(src["path"])
        return data

    def _portable(self, path: str, local_only: bool = False) -> str:
        """A local path relative to the recipe folder, so moving the project keeps fingerprints."""
        if self._source_path is None or not os.path.isabs(path):
            return path
        if local_only and not _looks_local(path):
            return path
        return Path(os.path.relpath(path, self.base_dir)).as_posix()

    @property
    def fingerprint(self) -> str:
        """sha256[:16] of everything that changes the trained weights.

        Left out: ``name``, ``description``, ``output_dir``, ``eval`` and the per-stage
        ``log_every``, ``checkpoint_every`` and ``gradient_checkpointing``. Key order, comments
        and spelling out a default do not matter. Local paths count relative to the recipe folder;
        the *contents* of data files are not hashed.
        """
        return _digest(self._hashable())

    def stage_fingerprint(self, index: int) -> str:
        """Fingerprint of the model after stage ``index``: the globals plus the stages it builds on.

        That is ``stages[: index + 1]``, or fewer when ``init_from`` skips stages (``stages[K]``)
        or starts from a folder. Changing a later stage leaves an earlier stage's fingerprint
        alone, so finished stages can be reused.
        """
        if not 0 <= index < len(self.stages):
            raise IndexError(f"stage index {index} out of range: the recipe has {len(self.stages)} stages")
        data = self._hashable()
        lineage = [index]
        while (parent := self.parent_stage(lineage[-1])) is not None:
            lineage.append(parent)
        data["stages"] = [data["stages"][i] for i in reversed(lineage)]
        return _digest(data)

    # -- serialization --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict of every field (nulls included, so defaults round-trip)."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        """YAML text that :func:`load_recipe` reads back into an equal recipe."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100)


_STAGE_REF = re.compile(r"^\s*stages?\s*(?:\[\s*(\d+)\s*\]|\.(\d+))\s*$")


def _stage_ref(value: str | None) -> int | None:
    """K for ``init_from: stages[K]`` (or ``stages.K``), else None."""
    if not value:
        return None
    m = _STAGE_REF.match(value)
    return int(m.group(1) or m.group(2)) if m else None


def _drop_unset(mapping: dict[str, Any], keys: Sequence[str]) -> None:
    """Leave fields added after fingerprints existed out of the hash while unset (null), so adding
    them to the schema keeps every finished stage of an older recipe finished."""
    for key in keys:
        if mapping.get(key) is None:
            mapping.pop(key, None)


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


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


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


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


def load_recipe(
    path_or_name: str | Path,
    overrides: Sequence[str] = (),
    *,
    check_paths: bool = True,
) -> Recipe:
    """Read, override, validate and resolve a recipe.

    Args:
        path_or_name: a YAML file, or the name of a shipped recipe (see :func:`list_recipes`).
        overrides: ``"key.path=value"`` strings applied before validation, values parsed as YAML:
            ``"stages.0.steps=10"``, ``"lora.r=8"``, ``"stages[1].data.limit=500"``.
        check_paths: also check that local files named by the recipe exist (data files,
            ``init_from``, a local ``base_model``). Hub ids are never checked.

    Returns:
        The validated :class:`Recipe`, local paths made absolute. Relative ``output_dir`` resolves
        against the recipe's folder, except for a shipped recipe loaded by name, where it
        resolves against the current directory (the package folder is not a place to write).

    Raises:
        RecipeError: If the file cannot be read or parsed, an override is malformed, or the recipe
            is invalid. The message lists every problem, one a line, as
            ``FILE: field.path = value: what was expected``.
    """
    file, shipped = _locate(path_or_name)
    label = _display_path(file)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        raise RecipeError(f"{label}: cannot read recipe: {e}") from None
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
        from llm2vec_lite.checks import recipe_problems  # checks that need the whole recipe

        problems += recipe_problems(recipe)
    if check_paths:
        problems += _missing_paths(raw, file.parent)
    if problems or recipe is None:
        raise RecipeError(_problem_report(label, problems))

    recipe._source_path = file
    if shipped:  # the package folder is no place to write: output goes under the current folder
        recipe.output_dir = _under_current_folder(recipe.output_dir)
    _resolve_paths(recipe, file.parent, output_base=Path.cwd() if shipped else file.parent)
    _set_origins(recipe, label)
    return recipe


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


def _problem_report(label: str, problems: list[str]) -> str:
    if len(problems) == 1:
        return f"{label}: {problems[0]}"
    lines = [f"{label}: {len(problems)} problems:"] + [f"  {label}: {p}" for p in problems]
    return "\n".join(lines)


def _display_path(file: Path) -> str:
    """The file as the user will recognise it: relative when under the current folder."""
    try:
        rel = os.path.relpath(file)
    except ValueError:  # another drive on Windows
        return str(file)
    return str(file) if rel.startswith("..") else rel


_PACKAGE_PREFIX = "package:"  # a file inside an installed Python package (llm2vec_lite.paths)


def _looks_local(value: str) -> bool:
    """True for a path a user clearly meant as local (./x, ../x, /x, ~/x, *.gguf)."""
    if value.startswith(_PACKAGE_PREFIX):
        return False
    return value.startswith((".", "/", "~")) or value.endswith(".gguf") or os.path.isabs(value)


def _resolve(value: str, base: Path) -> str:
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def _resolve_paths(recipe: Recipe, base: Path, output_base: Path) -> None:
    # A hub id "org/name" could also be a folder; treat it as local only when it looks local or exists.
    if _looks_local(recipe.base_model) or (base / recipe.base_model).exists():
        recipe.base_model = _resolve(recipe.base_model, base)
    recipe.output_dir = _resolve(recipe.output_dir, output_base)
    if recipe.eval is not None and recipe.eval.data_dir:
        recipe.eval.data_dir = _resolve(recipe.eval.data_dir, base)
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


def _missing_paths(raw: dict[str, Any], base: Path) -> list[str]:
    """Problems with local paths, read from the raw mapping so they join the schema problems."""
    problems = []
    hint = "relative paths resolve against the recipe's folder"
    base_model = raw.get("base_model")
    if isinstance(base_model, str) and base_model.startswith(_PACKAGE_PREFIX):
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
            resolved = Path(_resolve(path, base))
            if not resolved.is_file():
                where = f"stages[{i}].data" + (f"[{j}]" if isinstance(data, list) else "") + ".path"
                problems.append(f"{where} = {path!r}: file not found (resolved to {resolved}); {hint}")
    return problems


# --------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------

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


def _dotted(parts: Sequence[Any]) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int) or (isinstance(p, str) and p.isdigit()):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out or "(top level)"


# --------------------------------------------------------------------------------------------
# Error formatting
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Field reference (for `recipe fields` and docs/recipes.md)
# --------------------------------------------------------------------------------------------

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
