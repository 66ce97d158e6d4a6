"""Score an encoder on local tasks of every type with MTEB's own evaluators.

Each :class:`~llm2vec_lite.tasks.LocalTask` becomes an MTEB 2.x task (``AbsTaskRetrieval``,
``AbsTaskClassification``, ``AbsTaskClustering``, ``AbsTaskSTS``) whose ``load_data`` hands over
the rows already read from disk, so the metrics and protocols are MTEB's: nDCG@10 (and
recall@100) through its retrieval evaluator, accuracy of a logistic regression on
``samples_per_label`` examples a class averaged over ``n_experiments`` draws, V-measure of
mini-batch k-means averaged over bootstrap draws, Spearman of cosine for STS.

The model side is a :class:`TextEmbedder`: any ``embed(texts, prefix) -> (n, dim)`` function plus
a :class:`Prompts` policy that says which prefix each side of each task gets. Within one run each
(prefix, text) is encoded once (classification's train draws, clustering's samples and a corpus
shared by two tasks reuse vectors); nothing is kept across runs or models.

The report (:func:`run_suite`) has a score per task, a mean per task type, and the overall mean
of the type means (every type weighs the same, however many tasks it has).

References: Muennighoff et al. 2023, "MTEB", arXiv:2210.07316; Wang et al. 2024, "Improving Text
Embeddings with Large Language Models" (E5-mistral: a task instruction on the query side only).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from llm2vec_lite.tasks import TASK_TYPES, LocalTask

logger = logging.getLogger(__name__)

__all__ = ["E5_TEMPLATE", "METRICS", "Prompts", "TextEmbedder", "format_suite_table", "run_suite"]

E5_TEMPLATE = "Instruct: {instruction}\nQuery: "
# The main score of each type (MTEB's name) and how the table labels it.
METRICS: dict[str, tuple[str, str]] = {
    "retrieval": ("ndcg_at_10", "nDCG@10"),
    "classification": ("accuracy", "accuracy"),
    "clustering": ("v_measure", "V-measure"),
    "sts": ("cosine_spearman", "Spearman"),
}
_MTEB_TYPES = {"retrieval": "Retrieval", "classification": "Classification", "clustering": "Clustering", "sts": "STS"}


@dataclass(frozen=True)
class Prompts:
    """Which text goes before each side of each task.

    ``query_template`` turns a task's instruction into the query-side prefix (``None``: the
    instruction is not used and ``query_prefix`` applies); retrieval documents get
    ``document_prefix``. Classification, clustering and STS texts are all query side, as E5 and
    LLM2Vec evaluate symmetric tasks. ``by_type`` gives a fixed prefix per task type and side
    (``"retrieval.query"``, ``"retrieval.document"``, ``"classification"``, ...), for models with
    their own prompts (EmbeddingGemma's ``task: search result | query: ``); it wins over the rest.
    """

    query_template: str | None = None
    query_prefix: str | None = None
    document_prefix: str | None = None
    by_type: dict[str, str] | None = None

    def prefix(self, task: LocalTask, side: str) -> str | None:
        """The prefix for ``side`` (``query`` or ``document``) of ``task``."""
        if self.by_type is not None:
            key = f"{task.type}.{side}" if task.type == "retrieval" else task.type
            if key in self.by_type:
                return self.by_type[key]
        if side == "document":
            return self.document_prefix
        if self.query_template is not None:
            return self.query_template.format(instruction=task.instruction)
        return self.query_prefix


@dataclass
class TextEmbedder:
    """A model as the suite sees it: ``embed(texts, prefix)`` and its prompt policy.

    ``embed`` returns (n, dim) float32, unit length or not (MTEB scores by cosine).
    """

    name: str
    embed: Callable[[list[str], str | None], np.ndarray]
    prompts: Prompts


class _Cache:
    """(prefix, text) -> vector for one run; encodes only what it has not seen, longest first."""

    def __init__(self, embedder: TextEmbedder) -> None:
        self.embedder = embedder
        self.vectors: dict[tuple[str | None, str], np.ndarray] = {}
        self.seconds = 0.0
        self.encoded = 0

    def get(self, texts: Sequence[str], prefix: str | None) -> np.ndarray:
        todo = sorted({t for t in texts if (prefix, t) not in self.vectors}, key=len, reverse=True)
        if todo:
            start = time.perf_counter()
            out = np.asarray(self.embedder.embed(todo, prefix), dtype=np.float32)
            self.seconds += time.perf_counter() - start
            self.encoded += len(todo)
            if out.shape[0] != len(todo):
                raise ValueError(f"{self.embedder.name}: embed returned {out.shape[0]} vectors for {len(todo)} texts")
            for t, v in zip(todo, out, strict=True):
                self.vectors[(prefix, t)] = v
        return np.stack([self.vectors[(prefix, t)] for t in texts]) if texts else np.zeros((0, 1), np.float32)


def _mteb_model(cache: _Cache, task: LocalTask):
    """An MTEB encoder that serves ``task``'s texts from ``cache`` with the task's prefixes."""
    from mteb.models.abs_encoder import AbsEncoder

    class _Model(AbsEncoder):
        mteb_model_meta = None

        def __init__(self) -> None:
            pass

        def encode(self, inputs, *, task_metadata=None, hf_split=None, hf_subset=None, prompt_type=None, **kwargs):
            texts = [t for batch in inputs for t in batch["text"]]
            side = "document" if getattr(prompt_type, "value", prompt_type) == "document" else "query"
            return cache.get(texts, cache.embedder.prompts.prefix(task, side))

    return _Model()


def _metadata(task: LocalTask, main_score: str):
    from mteb.abstasks.task_metadata import TaskMetadata

    return TaskMetadata(
        name=task.name,
        description=f"local {task.type} task read from {task.path}",
        dataset={"path": str(task.path), "revision": "local"},
        type=_MTEB_TYPES[task.type],
        category="t2t",
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        main_score=main_score,
        bibtex_citation="",
    )


def _mteb_task(task: LocalTask, *, samples_per_label: int, n_experiments: int, seed: int):
    """The MTEB task object for ``task``, its data already loaded."""
    from datasets import Dataset, DatasetDict

    main_score = METRICS[task.type][0]
    d = task.data
    if task.type == "retrieval":
        from mteb.abstasks.retrieval import AbsTaskRetrieval as base
    elif task.type == "classification":
        from mteb.abstasks.classification import AbsTaskClassification as base
    elif task.type == "clustering":
        from mteb.abstasks.clustering import AbsTaskClustering as base
    else:
        from mteb.abstasks.sts import AbsTaskSTS as base

    def load_data(self, **kwargs: Any) -> None:
        if task.type == "retrieval":
            self.dataset = {
                "default": {
                    "test": {
                        "corpus": Dataset.from_list(d["corpus"]),
                        "queries": Dataset.from_list(d["queries"]),
                        "relevant_docs": d["qrels"],
                        "top_ranked": None,
                    }
                }
            }
        elif task.type == "classification":
            # label ids, not names: MTEB scores a two-label task's average precision with pos_label=1
            ids = {name: i for i, name in enumerate(sorted(set(d["train"]["label"])))}
            self.dataset = DatasetDict(
                {
                    s: Dataset.from_dict({"text": d[s]["text"], "label": [ids[x] for x in d[s]["label"]]})
                    for s in ("train", "test")
                }
            )
        elif task.type == "clustering":
            self.dataset = DatasetDict({"test": Dataset.from_dict({"sentences": d["text"], "labels": d["label"]})})
        else:
            self.dataset = DatasetDict({"test": Dataset.from_dict(d)})
        self.data_loaded = True

    attrs: dict[str, Any] = {"metadata": _metadata(task, main_score), "load_data": load_data}
    if task.type == "classification":
        attrs.update(samples_per_label=samples_per_label, n_experiments=n_experiments)
    elif task.type == "clustering":
        # embed every text once; MTEB then clusters bootstrap samples of them
        attrs.update(max_fraction_of_documents_to_embed=None, n_clusters=n_experiments)
    elif task.type == "sts":
        attrs.update(min_score=min(d["score"]), max_score=max(d["score"]))
    cls = type(f"Local{base.__name__}", (base,), attrs)
    return cls(seed=seed)


def run_suite(
    embedder: TextEmbedder,
    tasks: Sequence[LocalTask],
    *,
    samples_per_label: int = 16,
    n_experiments: int = 10,
    seed: int = 42,
    batch_size: int = 32,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score ``embedder`` on every task; the report as a JSON-ready dict.

    Args:
        samples_per_label: classification: training examples drawn per label for each experiment.
        n_experiments: classification draws, and clustering's bootstrap rounds.
        seed: MTEB's seed for the draws (same seed, same draws for every model).

    Returns:
        ``{"model", "tasks": {name: {"type", "metric", "score", ... MTEB's scores}}, "type_means",
        "mean", "seconds", "encode_seconds", "texts_encoded"}``; scores x100.
    """
    import datasets

    cache = _Cache(embedder)
    start = time.perf_counter()
    results: dict[str, Any] = {}
    # MTEB logs every phase at INFO and datasets draws a bar per map; the table says what matters.
    logging.getLogger("mteb").setLevel(logging.WARNING)
    datasets.disable_progress_bars()
    for task in tasks:
        t0 = time.perf_counter()
        mteb_task = _mteb_task(task, samples_per_label=samples_per_label, n_experiments=n_experiments, seed=seed)
        mteb_task.load_data()
        scores = mteb_task.evaluate(_mteb_model(cache, task), "test", encode_kwargs={"batch_size": batch_size})
        scores = scores.get("default", next(iter(scores.values())))
        metric, label = METRICS[task.type]
        entry = {
            "type": task.type,
            "metric": label,
            "score": 100.0 * float(scores[metric]),
            "size": task.size,
            "instruction": task.instruction,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        if task.type == "retrieval":
            entry["recall@100"] = 100.0 * float(scores["recall_at_100"])
        results[task.name] = entry
        if progress is not None:
            progress(f"{task.name}: {label} {entry['score']:.2f} ({entry['seconds']:.0f} s)")
    type_means = {
        kind: float(np.mean([r["score"] for r in results.values() if r["type"] == kind]))
        for kind in TASK_TYPES
        if any(r["type"] == kind for r in results.values())
    }
    return {
        "model": embedder.name,
        "tasks": results,
        "type_means": type_means,
        "mean": float(np.mean(list(type_means.values()))) if type_means else float("nan"),
        "seconds": round(time.perf_counter() - start, 1),
        "encode_seconds": round(cache.seconds, 1),
        "texts_encoded": cache.encoded,
        "protocol": {"samples_per_label": samples_per_label, "n_experiments": n_experiments, "seed": seed},
    }


def format_suite_table(report: dict[str, Any], *, others: Sequence[dict[str, Any]] = ()) -> str:
    """The report as a text table: one row per task, then the type means and the overall mean.

    ``others`` adds a column per further report (same tasks), e.g. anchors beside a model.
    """
    reports = [report, *others]
    names = [r["model"] for r in reports]
    width = max(12, *(min(len(n), 24) for n in names))
    first = max(16, *(len(n) for n in report["tasks"]))
    label = first + 28  # task, type and metric columns
    head = f"{'task':<{first}} {'type':<15} {'metric':<10} " + " ".join(f"{n[-24:]:>{width}}" for n in names)
    lines = [head, "-" * len(head)]
    for name, entry in report["tasks"].items():
        cells = " ".join(f"{r['tasks'].get(name, {}).get('score', float('nan')):>{width}.2f}" for r in reports)
        lines.append(f"{name:<{first}} {entry['type']:<15} {entry['metric']:<10} {cells}")
    lines.append("-" * len(head))
    for kind in report["type_means"]:
        cells = " ".join(f"{r['type_means'].get(kind, float('nan')):>{width}.2f}" for r in reports)
        lines.append(f"{'mean ' + kind:<{label}} {cells}")
    cells = " ".join(f"{r['mean']:>{width}.2f}" for r in reports)
    lines.append(f"{'mean of type means':<{label}} {cells}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# models


def encoder_embedder(
    encoder: Any, *, name: str, instruction_template: str | None = E5_TEMPLATE, batch_size: int = 32
) -> TextEmbedder:
    """A :class:`~llm2vec_lite.encoder.Encoder` as a suite model.

    The query side gets each task's instruction through ``instruction_template`` (``None``: the
    encoder's own ``query_instruction`` instead); documents get ``document_instruction``.
    Instructions are attended to and left out of pooling, as in training.
    """

    def embed(texts: list[str], prefix: str | None) -> np.ndarray:
        return encoder.encode(texts, batch_size=batch_size, instruction=prefix or None, normalize=True)

    prompts = Prompts(
        query_template=instruction_template,
        query_prefix=encoder.query_instruction,
        document_prefix=encoder.document_instruction,
    )
    return TextEmbedder(name=name, embed=embed, prompts=prompts)


# sentence-transformers prompt names (as EmbeddingGemma's config names them) for each type and side
_ST_PROMPT_KEYS = {
    "retrieval.query": ("query", "Retrieval-query"),
    "retrieval.document": ("document", "Retrieval-document"),
    "classification": ("Classification", "classification"),
    "clustering": ("Clustering", "clustering"),
    "sts": ("STS", "sts"),
}


def st_prompts(prompts: dict[str, str]) -> Prompts:
    """The suite's prompts for a sentence-transformers model that ships its own ``prompts``."""
    by_type = {}
    for key, names in _ST_PROMPT_KEYS.items():
        found = next((prompts[n] for n in names if prompts.get(n)), None)
        if found is not None:
            by_type[key] = found
    return Prompts(by_type=by_type or None)


def sentence_transformers_embedder(
    path: str,
    *,
    batch_size: int = 32,
    max_length: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
) -> TextEmbedder:
    """A sentence-transformers model folder (or hub id) as a suite model, with its own prompts.

    ``dtype`` (``"bfloat16"``...) loads the weights in that type: on a CPU with bf16 units a
    300M-parameter model encodes a suite several times faster than in float32.
    """
    from sentence_transformers import SentenceTransformer

    model_kwargs = {"dtype": dtype} if dtype not in (None, "auto") else None
    model = SentenceTransformer(path, device=device or "cpu", model_kwargs=model_kwargs)
    if max_length is not None:
        model.max_seq_length = max_length

    def embed(texts: list[str], prefix: str | None) -> np.ndarray:
        return model.encode(
            texts, prompt=prefix or None, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )

    return TextEmbedder(name=path, embed=embed, prompts=st_prompts(dict(getattr(model, "prompts", {}) or {})))


def is_sentence_transformers_folder(path: str) -> bool:
    """A folder sentence-transformers wrote, and not an llm2vec-lite encoder folder."""
    from pathlib import Path

    from llm2vec_lite.encoder import SETTINGS_FILE

    p = Path(path)
    return p.is_dir() and (p / "modules.json").is_file() and not (p / SETTINGS_FILE).is_file()
