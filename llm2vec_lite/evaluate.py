"""The STS evaluation suite: Spearman of cosine similarity against gold scores.

Semantic textual similarity (STS) is the standard quick check of a sentence encoder: each pair of
sentences carries a human similarity score, the encoder embeds both sentences, and the Spearman
rank correlation between the cosine similarities and the gold scores (x100) is the number reported.
LLM2Vec (BehnamGhader et al. 2024) and SimCSE (Gao et al. 2021) report it this way, and MTEB uses
Spearman of cosine as the main STS score too. Pearson is reported alongside.

Usage::

    from llm2vec_lite import Encoder, evaluate_sts
    from llm2vec_lite.evaluate import format_table

    enc = Encoder.from_pretrained("out/final")
    results = evaluate_sts(enc, ["stsb"], data_dir="data/sts")
    print(format_table(results))

Where each dataset comes from (see docs/evaluate.md):

- With ``data_dir``: a local TSV with the header ``sentence1<TAB>sentence2<TAB>score``, unquoted.
  A registered name ``stsb`` is looked up as ``DIR/stsb.tsv``, then ``DIR/stsb-test.tsv``, then
  ``DIR/stsb-dev.tsv`` (never ``-train``); any other name is taken as a file name, so
  ``stsb-dev`` reads ``DIR/stsb-dev.tsv``. A path ending in ``.tsv`` is read as it is.
- Without ``data_dir``: the MTEB copy on the Hugging Face hub through ``datasets.load_dataset``
  (split ``test``), for example ``mteb/stsbenchmark-sts``.

``encoder`` is anything with ``encode(list[str], batch_size=...) -> np.ndarray`` of shape
(n, dim), so :class:`llm2vec_lite.encoder.Encoder` and a sentence-transformers model both work.

The statistics are plain numpy (average ranks for ties), so scipy is not a dependency.

References:
    Cer et al. 2017, "SemEval-2017 Task 1: Semantic Textual Similarity", arXiv:1708.00055.
    Muennighoff et al. 2022, "MTEB: Massive Text Embedding Benchmark", arXiv:2210.07316.
    BehnamGhader et al. 2024, "LLM2Vec", arXiv:2404.05961.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from llm2vec_lite.errors import DataError

logger = logging.getLogger(__name__)

__all__ = [
    "STS_DATASETS",
    "StsDataset",
    "StsPairs",
    "evaluate_sts",
    "format_table",
    "load_sts",
    "load_sts_suite",
    "model_metadata",
    "pearson",
    "read_json_dict",
    "spearman",
]

REQUIRED_COLUMNS = ("sentence1", "sentence2", "score")
# Local file names tried for a registered dataset, in order. "-train" is never tried: evaluating on
# training data would be silently wrong.
_LOCAL_SUFFIXES = ("", "-test", "-dev")


class SentenceEncoder(Protocol):
    """What :func:`evaluate_sts` needs from an encoder."""

    def encode(self, texts: list[str], batch_size: int = ...) -> np.ndarray: ...


@dataclass(frozen=True)
class StsDataset:
    """A registered STS dataset: where its hub copy lives.

    Attributes:
        name: the short name users type (``stsb``).
        hub_id: the ``datasets`` id of the MTEB copy.
        split: the split evaluated.
        subset: the ``datasets`` config name, for the multilingual sets (English pairs only).
        description: one line for docs and ``--help``.
    """

    name: str
    hub_id: str
    split: str = "test"
    subset: str | None = None
    description: str = ""


STS_DATASETS: dict[str, StsDataset] = {}


def register_sts_dataset(dataset: StsDataset) -> StsDataset:
    """Add ``dataset`` to :data:`STS_DATASETS`.

    Raises:
        ValueError: If the name is already registered.
    """
    if dataset.name in STS_DATASETS:
        raise ValueError(
            f"STS dataset {dataset.name!r} is already registered ({STS_DATASETS[dataset.name].hub_id}); "
            "each name has one source."
        )
    STS_DATASETS[dataset.name] = dataset
    return dataset


for _ds in (
    StsDataset("sts12", "mteb/sts12-sts", description="SemEval 2012 STS, 3108 test pairs"),
    StsDataset("sts13", "mteb/sts13-sts", description="SemEval 2013 STS, 1500 test pairs"),
    StsDataset("sts14", "mteb/sts14-sts", description="SemEval 2014 STS, 3750 test pairs"),
    StsDataset("sts15", "mteb/sts15-sts", description="SemEval 2015 STS, 3000 test pairs"),
    StsDataset("sts16", "mteb/sts16-sts", description="SemEval 2016 STS, 1186 test pairs"),
    StsDataset("stsb", "mteb/stsbenchmark-sts", description="STS Benchmark (Cer et al. 2017)"),
    StsDataset("sickr", "mteb/sickr-sts", description="SICK relatedness, 9927 pairs"),
    StsDataset("biosses", "mteb/biosses-sts", description="biomedical STS, 100 pairs"),
    StsDataset(
        "sts17", "mteb/sts17-crosslingual-sts", subset="en-en", description="SemEval 2017, en-en pairs"
    ),
    StsDataset("sts22", "mteb/sts22-crosslingual-sts", subset="en", description="SemEval 2022, English"),
):
    register_sts_dataset(_ds)


@dataclass
class StsPairs:
    """One loaded STS dataset.

    Attributes:
        name: the dataset name as asked for.
        source: the file path or ``hub_id[/subset]:split`` it was read from.
        sentence1: first sentences, one per pair.
        sentence2: second sentences, one per pair.
        scores: gold scores, (n_pairs,) float64.
        skipped: rows dropped for an empty or non-numeric score (or a missing field).
    """

    name: str
    source: str
    sentence1: list[str]
    sentence2: list[str]
    scores: np.ndarray
    skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.scores)


# ---------------------------------------------------------------------------------------------
# statistics


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x``; tied values share the average of the ranks they span."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # start index of each run of equal values in the sorted array
    new_run = np.concatenate(([True], sorted_x[1:] != sorted_x[:-1]))
    run_id = np.cumsum(new_run) - 1  # (n,) run index of each sorted element
    starts = np.flatnonzero(new_run)
    ends = np.concatenate((starts[1:], [len(x)]))  # exclusive
    run_rank = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = run_rank[run_id]
    return ranks


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two 1-d arrays; ``nan`` when either is constant.

    Raises:
        ValueError: If the lengths differ or fewer than two values are given.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"pearson needs arrays of equal length, got {x.shape[0]} and {y.shape[0]}")
    if x.size < 2:
        raise ValueError(f"pearson needs at least 2 values, got {x.size}")
    xc, yc = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(xc @ xc) * float(yc @ yc))
    if denom == 0.0:
        return float("nan")
    return float(xc @ yc) / denom


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation with ties (average ranks), as ``scipy.stats.spearmanr``."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"spearman needs arrays of equal length, got {x.shape[0]} and {y.shape[0]}")
    return pearson(_average_ranks(x), _average_ranks(y))


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of (n, dim) arrays -> (n,); zero vectors give 0."""
    a = a.astype(np.float64, copy=False)
    b = b.astype(np.float64, copy=False)
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(na * nb, 1e-12)


# ---------------------------------------------------------------------------------------------
# loading


def _parse_score(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        score = float(value)
    else:
        text = str(value).strip()
        if not text:
            return None
        try:
            score = float(text)
        except ValueError:
            return None
    return score if math.isfinite(score) else None


def _collect(name: str, source: str, rows, header_hint: str) -> StsPairs:
    """Build :class:`StsPairs` from ``(line_no, s1, s2, raw_score)`` rows, skipping bad scores."""
    s1: list[str] = []
    s2: list[str] = []
    scores: list[float] = []
    skipped: list[str] = []
    for where, a, b, raw in rows:
        score = _parse_score(raw)
        if score is None or a is None or b is None:
            skipped.append(f"{where}: score={raw!r}")
            continue
        s1.append(str(a))
        s2.append(str(b))
        scores.append(score)
    if not scores:
        raise DataError(
            f"{source}: no usable pairs ({len(skipped)} rows skipped for an empty or non-numeric "
            f"score). Expected {header_hint}."
        )
    return StsPairs(name, source, s1, s2, np.asarray(scores, dtype=np.float64), len(skipped), skipped[:3])


def read_sts_tsv(path: str | Path, name: str | None = None) -> StsPairs:
    """Read an unquoted TSV with a ``sentence1 sentence2 score`` header (columns in any order).

    Quotes are literal text (the files under ``data`` are written that way); a row
    with too few fields, or an empty or non-numeric score, is skipped and counted.

    Raises:
        DataError: If the file is missing or empty, lacks one of the columns, or has no usable row.
    """
    from llm2vec_lite.data import read_text_file

    path = Path(path)
    if not path.is_file():
        raise DataError(f"STS file not found: {path}")
    lines = read_text_file(path, "STS file").splitlines()
    if not lines:
        raise DataError(f"{path}: empty file; expected a header {'<TAB>'.join(REQUIRED_COLUMNS)}")
    header = [h.strip() for h in lines[0].split("\t")]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)} in header {header}. "
            f"An STS file needs a tab-separated header {'<TAB>'.join(REQUIRED_COLUMNS)}."
        )
    i1, i2, i_score = (header.index(c) for c in REQUIRED_COLUMNS)
    width = max(i1, i2, i_score) + 1

    def rows():
        for line_no, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < width:
                yield f"line {line_no}", None, None, None
                continue
            yield f"line {line_no}", parts[i1].strip(), parts[i2].strip(), parts[i_score]

    return _collect(name or path.stem, str(path), rows(), "a numeric 'score' column")


def _resolve_local(name: str, data_dir: Path) -> Path:
    if name.endswith(".tsv"):
        direct = Path(name)
        if direct.is_file():
            return direct
        if (data_dir / name).is_file():
            return data_dir / name
        raise DataError(f"STS file not found: {name} (also looked in {data_dir})")
    tried = [
        data_dir / f"{name}{suffix}.tsv" for suffix in (_LOCAL_SUFFIXES if name in STS_DATASETS else ("",))
    ]
    for path in tried:
        if path.is_file():
            return path
    found = sorted(p.stem for p in data_dir.glob("*.tsv")) if data_dir.is_dir() else []
    where = f"Files there: {', '.join(found)}." if found else "The folder has no .tsv files."
    if not data_dir.is_dir():
        where = "The folder does not exist."
    registered = f" Registered names: {', '.join(STS_DATASETS)}." if name not in STS_DATASETS else ""
    raise DataError(
        f"STS dataset {name!r}: none of {', '.join(str(p) for p in tried)} exists. {where}{registered}"
    )


def _load_hub(name: str) -> StsPairs:
    if name not in STS_DATASETS:
        raise DataError(
            f"Unknown STS dataset {name!r}. Valid: {', '.join(STS_DATASETS)} "
            "(or pass --data-dir DIR to read DIR/<name>.tsv)."
        )
    spec = STS_DATASETS[name]
    import datasets  # attribute access at call time, so tests can monkeypatch load_dataset

    args = (spec.hub_id,) if spec.subset is None else (spec.hub_id, spec.subset)
    source = f"{spec.hub_id}{'/' + spec.subset if spec.subset else ''}:{spec.split}"
    try:
        ds = datasets.load_dataset(*args, split=spec.split)
    except Exception as e:  # network, cache, or a renamed dataset: say which one and how to avoid it
        raise DataError(
            f"Could not load STS dataset {name!r} from the hub ({source}): {e}. "
            f"Offline? Pass --data-dir DIR with {name}.tsv (header sentence1<TAB>sentence2<TAB>score)."
        ) from e
    columns = list(getattr(ds, "column_names", []) or [])
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)}; the dataset has {columns}.")
    cols = {c: ds[c] for c in REQUIRED_COLUMNS}
    rows = (
        (f"row {i}", a, b, s)
        for i, (a, b, s) in enumerate(zip(cols["sentence1"], cols["sentence2"], cols["score"], strict=True))
    )
    return _collect(name, source, rows, "a numeric 'score' column")


def load_sts(name: str, *, data_dir: str | Path | None = None) -> StsPairs:
    """Load one STS dataset by name, from ``data_dir`` or the hub (see the module docstring).

    Raises:
        DataError: If the name is unknown, its file or a column is missing, or it has no usable row.
    """
    if data_dir is not None or name.endswith(".tsv"):
        path = _resolve_local(name, Path(data_dir) if data_dir is not None else Path("."))
        return read_sts_tsv(path, name=name[:-4] if name.endswith(".tsv") else name)
    return _load_hub(name)


def _default_names(data_dir: str | Path | None) -> list[str]:
    if data_dir is None:
        return list(STS_DATASETS)
    root = Path(data_dir)
    names = [n for n in STS_DATASETS if any((root / f"{n}{s}.tsv").is_file() for s in _LOCAL_SUFFIXES)]
    if not names:
        raise DataError(
            f"No registered STS dataset found in {root} (looked for <name>.tsv, <name>-test.tsv, "
            f"<name>-dev.tsv with name in {', '.join(STS_DATASETS)}). Name files with --datasets."
        )
    return names


# ---------------------------------------------------------------------------------------------
# evaluation


def _encode_unique(
    encoder: SentenceEncoder, texts: list[str], batch_size: int, desc: str
) -> dict[str, np.ndarray]:
    """Encode each distinct text once, longest first (less padding, and memory errors come early)."""
    from tqdm.auto import tqdm

    unique = sorted(set(texts), key=len, reverse=True)
    chunk = max(1, batch_size) * 8
    vectors: list[np.ndarray] = []
    with tqdm(total=len(unique), desc=desc, unit="sent", leave=False) as bar:
        for start in range(0, len(unique), chunk):
            part = unique[start : start + chunk]
            emb = np.asarray(encoder.encode(part, batch_size=batch_size))  # (len(part), dim)
            if emb.ndim != 2 or emb.shape[0] != len(part):
                raise ValueError(
                    f"encoder.encode returned shape {emb.shape} for {len(part)} texts; "
                    "expected (n_texts, dim)"
                )
            vectors.append(emb)
            bar.update(len(part))
    matrix = np.concatenate(vectors, axis=0)  # (n_unique, dim)
    return {t: matrix[i] for i, t in enumerate(unique)}


def score_pairs(encoder: SentenceEncoder, pairs: StsPairs, *, batch_size: int = 32) -> dict[str, Any]:
    """Encode one dataset and score it.

    Returns:
        ``{"spearman", "pearson", "n_pairs", "n_unique_sentences", "skipped", "source", "seconds"}``,
        correlations x100.
    """
    start = time.perf_counter()
    table = _encode_unique(encoder, pairs.sentence1 + pairs.sentence2, batch_size, pairs.name)
    a = np.stack([table[t] for t in pairs.sentence1])  # (n_pairs, dim)
    b = np.stack([table[t] for t in pairs.sentence2])  # (n_pairs, dim)
    cos = _cosine_rows(a, b)  # (n_pairs,)
    return {
        "spearman": 100.0 * spearman(cos, pairs.scores),
        "pearson": 100.0 * pearson(cos, pairs.scores),
        "n_pairs": len(pairs),
        "n_unique_sentences": len(table),
        "skipped": pairs.skipped,
        "source": pairs.source,
        "seconds": round(time.perf_counter() - start, 2),
    }


def read_json_dict(path: Path) -> dict[str, Any]:
    """A JSON object file as a dict; ``{}`` when it is missing, unreadable or not an object."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        logger.warning("could not read %s: %s", path, e)
        return {}
    return data if isinstance(data, dict) else {}


def model_metadata(model_path: str | Path | None) -> dict[str, Any]:
    """What a model folder says about how it was made, for the results JSON.

    Two files are read when present:

    - ``stage.json`` (a pipeline stage folder, ``out/NN-<kind>``): ``recipe_fingerprint``, the
      recipe name (``recipe``) and the stage's ``kind``, ``index`` and own ``fingerprint``;
    - ``llm2vec_lite.json`` (an encoder folder): ``pooling``, ``max_length``, ``bidirectional``,
      ``library_version``, and a recipe fingerprint if it holds one (``recipe_fingerprint``,
      ``fingerprint`` or ``recipe.fingerprint``).

    Missing or unreadable files give ``{}``: a hub id or a GGUF file has nothing to record.
    """
    if model_path is None:
        return {}
    folder = Path(model_path)
    if folder.is_file():
        folder = folder.parent
    if not folder.is_dir():
        return {}
    meta: dict[str, Any] = {}
    stage = read_json_dict(folder / "stage.json")
    if stage:
        if stage.get("recipe_fingerprint"):
            meta["recipe_fingerprint"] = stage["recipe_fingerprint"]
        if isinstance(stage.get("recipe"), str):
            meta["recipe_name"] = stage["recipe"]
        meta["stage"] = {k: stage[k] for k in ("kind", "index", "fingerprint") if k in stage}
    info = read_json_dict(folder / "llm2vec_lite.json")
    if info:
        recipe = info["recipe"] if isinstance(info.get("recipe"), dict) else {}
        fingerprint = info.get("recipe_fingerprint") or info.get("fingerprint") or recipe.get("fingerprint")
        if fingerprint:
            meta.setdefault("recipe_fingerprint", fingerprint)
        name = info.get("recipe_name") or recipe.get("name")
        if name:
            meta.setdefault("recipe_name", name)
        for key in ("base_model", "stages", "pooling", "max_length", "bidirectional", "library_version"):
            if key in info:
                meta[key] = info[key]
    return meta


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("llm2vec-lite", "torch", "transformers", "peft", "numpy"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def load_sts_suite(
    datasets: Sequence[str] | str | None = None, *, data_dir: str | Path | None = None
) -> list[StsPairs]:
    """Resolve and load every dataset up front; rows skipped anywhere are reported in ONE warning.

    Call it before loading a model (the CLI does), so a typo fails in a second instead of after a
    minute of model loading; then pass the result to :func:`evaluate_sts`.

    Args:
        datasets: names or a comma-separated string; ``None`` as in :func:`evaluate_sts`.
        data_dir: folder of local TSVs (see the module docstring).

    Raises:
        DataError: If a name is unknown, a file or column is missing, or a dataset has no usable row.
    """
    if isinstance(datasets, str):
        datasets = [d.strip() for d in datasets.split(",") if d.strip()]
    names = list(dict.fromkeys(datasets)) if datasets else _default_names(data_dir)
    loaded = [load_sts(n, data_dir=data_dir) for n in names]
    for pairs in loaded:  # Spearman and Pearson of one pair are undefined: fail before any model loads
        if len(pairs) < 2:
            raise DataError(
                f"{pairs.source}: {len(pairs)} usable pair ({pairs.skipped} rows skipped for an empty or "
                "non-numeric score); a correlation needs at least 2 pairs"
            )
    skipped = {p.name: (p.skipped, p.skipped_examples) for p in loaded if p.skipped}
    if skipped:
        total = sum(n for n, _ in skipped.values())
        detail = "; ".join(f"{k}: {n} (e.g. {', '.join(ex)})" for k, (n, ex) in skipped.items())
        logger.warning("skipped %d STS rows with an empty or non-numeric score: %s", total, detail)
    return loaded


def evaluate_sts(
    encoder: SentenceEncoder,
    datasets: Sequence[str | StsPairs] | str | None = None,
    *,
    data_dir: str | Path | None = None,
    batch_size: int = 32,
    model: str | None = None,
) -> dict[str, Any]:
    """Spearman and Pearson (x100) of cosine similarity against gold, per dataset and on average.

    Args:
        encoder: anything with ``encode(list[str], batch_size=...) -> np.ndarray`` (n, dim).
        datasets: names (``["stsb", "sickr"]``), a comma-separated string, or the list
            :func:`load_sts_suite` returned. ``None`` means every registered dataset (hub), or
            every registered one with a file in ``data_dir``.
        data_dir: folder of local TSVs; when given, nothing is fetched from the hub.
        batch_size: passed to ``encoder.encode``.
        model: what to record as the model (default: the encoder's ``name_or_path`` or its
            ``model.config._name_or_path``); a folder's ``stage.json``/``llm2vec_lite.json`` add the
            recipe fingerprint (see :func:`model_metadata`).

    Returns:
        ``{"model", "recipe_fingerprint"?, "datasets": {name: {...}}, "average": {"spearman",
        "pearson"}, "versions", "date", "batch_size"}``.

    Raises:
        DataError: If a name is unknown, a file or column is missing, or a dataset has no usable row.
        ValueError: If ``batch_size`` < 1 or the encoder returns the wrong shape.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    # Load everything first, so a typo in the last name fails before minutes of encoding.
    if (
        datasets is not None
        and not isinstance(datasets, str)
        and all(isinstance(d, StsPairs) for d in datasets)
    ):
        loaded = list(datasets)  # already loaded by load_sts_suite
    else:
        if not isinstance(datasets, (str, type(None))) and any(isinstance(d, StsPairs) for d in datasets):
            raise TypeError("datasets must be all names or all StsPairs (from load_sts_suite), not a mix")
        loaded = load_sts_suite(datasets, data_dir=data_dir)

    per_dataset: dict[str, dict[str, Any]] = {}
    for pairs in loaded:
        per_dataset[pairs.name] = score_pairs(encoder, pairs, batch_size=batch_size)
        logger.info("%s: spearman %.2f", pairs.name, per_dataset[pairs.name]["spearman"])

    if model is None:
        config = getattr(getattr(encoder, "model", None), "config", None)
        model = getattr(encoder, "name_or_path", None) or getattr(config, "_name_or_path", None) or None
    result: dict[str, Any] = {"model": None if model is None else str(model)}
    result.update(model_metadata(model))
    result["datasets"] = per_dataset
    result["average"] = {
        metric: float(np.mean([r[metric] for r in per_dataset.values()]))
        for metric in ("spearman", "pearson")
    }
    result["batch_size"] = batch_size
    result["versions"] = _versions()
    result["date"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return result


def format_table(results: dict[str, Any]) -> str:
    """A markdown table of :func:`evaluate_sts` results, one row a dataset plus the average."""
    rows = [("dataset", "spearman", "pearson", "pairs", "seconds")]
    for name, r in results["datasets"].items():
        rows.append(
            (name, f"{r['spearman']:.2f}", f"{r['pearson']:.2f}", str(r["n_pairs"]), f"{r['seconds']:.1f}")
        )
    avg = results["average"]
    rows.append(("average", f"{avg['spearman']:.2f}", f"{avg['pearson']:.2f}", "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(cells):
        return (
            "| "
            + " | ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    sep = "|" + "|".join("-" * (w + 1) + ("-" if i == 0 else ":") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(rows[0]), sep, *(line(r) for r in rows[1:])])
