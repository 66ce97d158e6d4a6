"""The recipe schema: every pydantic model a recipe YAML file is validated against.

:class:`Recipe` holds the global settings and a list of stages (:class:`MNTPStage`,
:class:`SimCSEStage`, :class:`SupervisedStage`, told apart by ``kind``), each reading one or more
:class:`DataSource`. Every model is ``extra="forbid"``: a misspelt key is an error, never silently
ignored. The fingerprints (:attr:`Recipe.fingerprint`, :meth:`Recipe.stage_fingerprint`) live here
too, beside the fields they hash, so a new field and its place in the hash are decided together.

This module only describes and validates; reading files, overrides and error messages live in the
sibling modules of :mod:`llm2vec_lite.recipe`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from llm2vec_lite.recipe.paths import _looks_local

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


class Crops(_Strict):
    """Label-free pairs from plain text: two random spans of one text are positives (Contriever).

    Each text long enough gives ``per_text`` pairs: a query span of ``query_words`` words and a
    positive span of ``passage_words`` words, both drawn at random positions of the same text
    (they may overlap: the shared words are the lexical signal keyword search rewards). The spans
    come from a generator seeded with ``seed`` and read in file order, so the rows are a fixed
    list: the same on every rerun and every process. The pairs of one text form a group (never
    each other's negatives).

    Reference: Izacard et al. 2022, "Unsupervised Dense Information Retrieval with Contrastive
    Learning" (Contriever), arXiv:2112.09118, independent cropping.
    """

    query_words: list[int] = Field(
        [8, 32], min_length=2, max_length=2, description="[min, max] words of the query span"
    )
    passage_words: list[int] = Field(
        [32, 128], min_length=2, max_length=2, description="[min, max] words of the positive span"
    )
    per_text: int = Field(1, gt=0, description="pairs drawn from each text")
    seed: int = Field(0, description="seed of the span positions and lengths")

    @model_validator(mode="after")
    def _ranges(self) -> Crops:
        for name in ("query_words", "passage_words"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} = [{low}, {high}]: give [min, max] with 0 < min <= max")
        return self

    def min_words(self) -> int:
        """Words a text needs to give pairs: the longer of the two shortest spans, plus one."""
        return max(self.query_words[0], self.passage_words[0]) + 1


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
    crops: Crops | None = Field(
        None,
        description="supervised: label-free pairs, two random spans of each text (columns names the "
        "text column, as for MNTP); see Crops",
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
    made_by: str | None = Field(
        None,
        description="the command that writes this local file (e.g. 'llm2vec-lite synth recipes/synth/x.yaml'); "
        "named when the file is missing, not part of the fingerprint",
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
        """``nli``, ``group_columns`` and ``crops`` each decide which columns are read; they exclude each other."""
        if self.where is not None and (not self.where or any(v == [] for v in self.where.values())):
            raise ValueError("where must map at least one column to at least one value, e.g. {split: train}")
        shapes = [k for k in ("nli", "group_columns", "crops") if getattr(self, k) is not None]
        if len(shapes) > 1:
            raise ValueError(
                f"give one of nli (premise/hypothesis/label rows), group_columns (groups of positives) "
                f"or crops (spans of one text), not {' and '.join(shapes)}"
            )
        if self.crops is not None and self.columns is not None and len(self.columns) != 1:
            raise ValueError(f"with crops, columns names the one text column, got {self.columns}")
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
        return _SUFFIX_FORMATS.get(Path(self.path.strip("<>")).suffix.lower())  # <name>: a shared recipe's placeholder

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
_SOURCE_SUPERVISED_KEYS = ("weight", "nli", "group_columns", "group_column", "crops")
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
    compile: bool | Literal["auto"] = Field(
        False,
        description="torch.compile each transformer block while this stage trains: faster steps after a "
        "compile of a minute or two, so for stages of many steps (same results within rounding); "
        "auto = compile where it can run (a GPU, or a CPU with a C++ compiler), eager elsewhere",
    )
    max_grad_norm: float | None = Field(
        1.0, gt=0, description="clip the gradient norm to this value; null = no clipping"
    )
    max_length: int | None = Field(
        None, gt=0, description="token limit for this stage; null = the recipe's max_length"
    )
    lora: LoraOverride | None = Field(None, description="changes to the recipe's lora block for this stage")
    merge_weight: float = Field(
        1.0,
        gt=0,
        le=1,
        description="fraction of the trained adapter merged into the model: 1 = all of it; below 1 the "
        "merged weights lie between this stage's input and its trained result (WiSE-FT), keeping more "
        "of what the input knew about text unlike the stage's data",
    )
    init_from: str | None = Field(
        None,
        description="start from this model folder instead of the previous stage's output (or the base "
        "model); relative paths resolve against the recipe's folder; 'stages[K]' = the output of an "
        "earlier stage K (e.g. supervised on top of MNTP, skipping SimCSE)",
    )
    checkpoint_every: int = Field(50, ge=1, description="save a resumable checkpoint every N steps")
    eval_every: int | None = Field(
        None,
        ge=1,
        description="score the recipe's eval: datasets every N steps while training (and after the last), "
        "appending to the stage's eval_curve.jsonl: the score against steps and minutes; needs an eval: block",
    )
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


class ProjectionSettings(_Strict):
    """Fit a projection (whitening) on this stage's own texts before training, then train through it.

    Why: mean-pooled decoder states are dominated by a few massive-activation dimensions, so the
    cosine of any two sentences is high and a contrastive loss can fall without changing what
    cosine similarity sees. Whitening (fitted without labels) removes that; the stage's loss and the
    final encoder then use the same whitened vectors (docs/training.md, "SimCSE", its projection paragraph).
    """

    mode: Literal["whiten", "standardize", "center"] = Field(
        "whiten", description="whiten (PCA whitening), standardize (per-dimension z-score) or center"
    )
    dims: int | None = Field(
        None, gt=0, description="whiten: keep this many principal directions; null = all (the hidden size)"
    )
    samples: int = Field(
        2048, ge=16, description="texts of the stage's data encoded to fit it (the first rows of its shuffled order)"
    )
    refit: bool | None = Field(
        None,
        description="fit again on the same texts after training and ship that map (the trained model's "
        "statistics); false ships the map the stage trained through; null = the stage kind's default: "
        "true after simcse (+2.6 STS-B dev), false after supervised (refitting cost 0.5, docs/results.md)",
    )

    @model_validator(mode="after")
    def _dims_for_whiten(self) -> ProjectionSettings:
        if self.dims is not None and self.mode != "whiten":
            raise ValueError(f"dims applies to mode 'whiten' only, not {self.mode!r}; remove dims")
        return self


def _with_refit_default(stage, default: bool):
    """Fill ``projection.refit`` left null with the stage kind's measured default.

    Resolved here, in the recipe, so the fingerprint, ``convert --dry-run`` and ``stage.json`` all
    show the value the run uses.
    """
    if stage.projection is not None and stage.projection.refit is None:
        stage.projection = stage.projection.model_copy(update={"refit": default})
    return stage


_PROJECTION_DESCRIPTION = (
    "fit a projection (whitening) on this stage's texts with the input model, then train through it and "
    "save it with the model (sentence-transformers applies it too); null = keep the input's projection, if any"
)


class SimCSEStage(StageBase):
    """Unsupervised SimCSE: two dropout views of a sentence are positives, the batch negatives."""

    kind: Literal["simcse"] = Field(description="unsupervised SimCSE (LLM2Vec step 3)")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout applied in the model, in [0, 1)")
    hidden_dropout: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="dropout on every attention and MLP sublayer output (BERT's hidden dropout, which "
        "decoders lack), in [0, 1); null = none. Use it when attention dropout leaves the two views "
        "nearly identical (the stage's pos_cos near 1 and loss near 0 from the first steps)",
    )
    temperature: float = Field(0.05, gt=0, description="softmax temperature tau of InfoNCE")
    projection: ProjectionSettings | None = Field(None, description=_PROJECTION_DESCRIPTION)

    @model_validator(mode="after")
    def _refit_default(self) -> SimCSEStage:
        return _with_refit_default(self, True)  # SimCSE moves the vectors' statistics: refit adds 2.6

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
    symmetric: bool = Field(
        False,
        description="also score each positive against every anchor of the batch and average the two "
        "losses (in-batch negatives on both sides of a pair)",
    )
    single_source_batches: bool = Field(
        False,
        description="with weighted sources, draw each batch from one source (picked by weight) instead "
        "of each row: in-batch negatives then share the positives' source and style",
    )
    gradcache_chunk_size: int | None = Field(
        None,
        gt=0,
        description="GradCache chunk: texts sorted by length, at most this many texts of the batch's longest "
        "length (in padded tokens) per forward pass; large batches in little memory, same gradients; null = off",
    )
    projection: ProjectionSettings | None = Field(None, description=_PROJECTION_DESCRIPTION)

    def columns(self) -> list[str]:
        """The column names this stage reads by default."""
        return ["anchor", "positive", "negative"] if self.hard_negatives else ["anchor", "positive"]

    @model_validator(mode="after")
    def _refit_default(self) -> SupervisedStage:
        return _with_refit_default(self, False)  # the map it trained through scores 0.5 higher

    @model_validator(mode="after")
    def _column_count(self) -> SupervisedStage:
        for i, src in enumerate(self.sources()):
            if src.columns is not None and len(src.columns) < 2 and src.crops is None:
                raise ValueError(
                    f"{self._data_label(i)}.columns = {src.columns}: supervised needs 2 columns "
                    "(anchor, positive) or 3 (anchor, positive, hard negative), or one text column "
                    "with crops"
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
        if self.single_source_batches and not any(weighted):
            raise ValueError(
                "single_source_batches: true needs a weight on every data source (each "
                "batch picks its source by weight); add weights, or remove single_source_batches"
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
    suite: str | None = Field(
        None,
        description="folder of local tasks (retrieval/, classification/, clustering/, sts/) scored with "
        "MTEB's evaluators beside the STS datasets; relative paths resolve against the recipe",
    )
    tasks: list[str] = Field(
        default_factory=list,
        description="single local task folders or files (a BEIR retrieval folder, a classification folder, "
        "a clustering or STS .tsv), scored like suite tasks",
    )
    instruction_template: str | None = Field(
        "Instruct: {instruction}\nQuery: ",
        description="how a suite task's instruction becomes the query prefix; null = the encoder's own "
        "query_instruction for every task",
    )
    max_length: int | None = Field(
        None, gt=0, description="token limit when scoring suite tasks; null = the encoder's max_length"
    )
    compile: bool | Literal["auto"] = Field(
        False,
        description="torch.compile the final encoder's blocks before scoring it (a minute first): 2.2x "
        "faster on 512-token documents on a 2-core AMX CPU, no faster on short texts, so worth it for "
        "a suite; auto = where it can run (a GPU, or a CPU with a C++ compiler)",
    )

    @field_validator("instruction_template")
    @classmethod
    def _template_has_slot(cls, value: str | None) -> str | None:
        if value is not None and "{instruction}" not in value:
            raise ValueError(f"{value!r} has no '{{instruction}}' where the task's instruction goes")
        return value

    def suite_tasks(self) -> bool:
        """Whether any local suite task is named (else only the STS datasets are scored)."""
        return self.suite is not None or bool(self.tasks)


# Fields that do not change the trained weights, left out of fingerprints.
_RECIPE_UNHASHED = {"name", "description", "output_dir", "eval", "encoder_max_length", "card_template", "base_model_id"}
_STAGE_UNHASHED = {"checkpoint_every", "eval_every", "log_every", "gradient_checkpointing", "compile"}


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
    base_model_id: str | None = Field(
        None,
        description="hub id of base_model for the model card's base_model, when base_model is a local "
        "folder or file whose metadata names none; not part of the fingerprint",
    )
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
    encoder_max_length: int | None = Field(
        None,
        gt=0,
        description="token limit the final encoder is saved with (e.g. longer than training's for "
        "retrieval documents); null = max_length. Does not change the trained weights",
    )
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
    num_layers: int | None = Field(
        None,
        gt=0,
        description="keep only the first N transformer blocks of base_model before stage 1 (layer pruning, "
        "as L3Prune, arXiv:2410.14578): a smaller, faster encoder; null = keep every block",
    )
    seed: int = Field(0, description="random seed (data order, masking, dropout, LoRA init)")
    output_dir: str = Field(
        "./out", description="where stage folders and the final encoder go; relative to the recipe's folder"
    )
    lora: LoraSettings = Field(default_factory=LoraSettings, description="LoRA adapter settings")
    stages: list[Stage] = Field(min_length=1, description="the stages to run, in order")
    eval: EvalSettings | None = Field(None, description="evaluation after conversion")
    card_template: str | None = Field(
        None,
        description="model card template for final/README.md (a Jinja file; relative to the recipe); "
        "null = the built-in one (docs/recipes.md, 'Sharing a recipe')",
    )

    _source_path: Path | None = PrivateAttr(None)
    # The mapping as read (overrides applied, defaults not filled in): what final/recipe.yaml writes.
    _raw: dict[str, Any] | None = PrivateAttr(None)
    # provenance.json of the model folder the recipe was read from (convert compares the data).
    _provenance: dict[str, Any] | None = PrivateAttr(None)
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
        _drop_unset(data, ("revision", "num_layers"))
        for i, stage in enumerate(data["stages"]):
            for key in _STAGE_UNHASHED:
                stage.pop(key, None)
            _drop_unset(stage, ("schedule_steps", "projection", "hidden_dropout"))
            _drop_unset(stage, ("symmetric", "single_source_batches"), unset=False)
            _drop_unset(stage, ("merge_weight",), unset=1.0)
            if stage["schedule"] == "constant" and stage["warmup_steps"]:
                # 'constant' used to skip the warmup; its weights differ now, so must its fingerprint.
                stage["schedule"] = "constant_with_warmup"
            if i in self._stage_refs:
                stage["init_from"] = f"stages[{self._stage_refs[i]}]"
            elif stage.get("init_from"):
                stage["init_from"] = self._portable(stage["init_from"])
            sources = stage["data"] if isinstance(stage["data"], list) else [stage["data"]]
            for src in sources:
                src.pop("made_by", None)  # says where the file comes from, not what it holds
                _drop_unset(src, _SOURCE_LATER_KEYS)
                if src.get("path"):
                    src["path"] = self._portable(src["path"])
        return data

    def _portable(self, path: str, local_only: bool = False) -> str:
        """A local path as it survives moving the project, so fingerprints do not depend on where
        the repository is checked out.

        Inside the project (the recipe folder's parent: ``recipes/../data``) a path counts relative
        to the recipe folder. Outside it, under the home folder (a model assembled into
        ``~/.cache``), it counts as ``~/...``: relative to the recipe folder it would change with
        the checkout's depth (a clone two folders deep against one four deep). Anything else stays absolute.
        """
        if self._source_path is None or not os.path.isabs(path):
            return path
        if local_only and not _looks_local(path):
            return path
        target = Path(path).resolve()
        if not target.is_relative_to(self.base_dir.resolve().parent):
            home = Path.home().resolve()
            return "~/" + target.relative_to(home).as_posix() if target.is_relative_to(home) else target.as_posix()
        return Path(os.path.relpath(path, self.base_dir)).as_posix()

    @property
    def fingerprint(self) -> str:
        """sha256[:16] of everything that changes the trained weights.

        Left out: ``name``, ``description``, ``output_dir``, ``eval``, ``card_template``,
        ``base_model_id``, the sources' ``made_by`` and the per-stage
        ``log_every``, ``checkpoint_every``, ``eval_every``, ``gradient_checkpointing`` and ``compile``. Key order, comments
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


def _drop_unset(mapping: dict[str, Any], keys: Sequence[str], unset: Any = None) -> None:
    """Leave fields added after fingerprints existed out of the hash while unset (``unset``: null,
    or the value a later flag's default keeps, e.g. False), so adding them to the schema keeps
    every finished stage of an older recipe finished."""
    for key in keys:
        if key in mapping and mapping[key] == unset and type(mapping[key]) is type(unset):
            mapping.pop(key)


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
