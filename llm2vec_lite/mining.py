"""Hard-negative mining: for each query of a query-passage table, the passages an encoder ranks
high that are not its positives, written back as a (query, positive, negative) table.

A contrastive stage learns most from negatives the model currently confuses with the positive;
in-batch negatives are mostly easy. Mining takes them from the model's own ranking:

1. Read the source (a TSV with ``query``, ``positive`` and optionally ``negative`` columns; one
   row per (query, positive); a query may have several positives) and, optionally, extra corpora
   whose passages join the pool (:func:`read_source`, :func:`read_corpus`).
2. Encode each distinct passage and each distinct query once (the encoder sorts by length); an
   instruction goes on the query side only (:func:`mine`).
3. For each query, the ``top_k`` passages by cosine (:func:`top_k`, a chunked matmul: the score
   matrix is never held whole).
4. Drop the query's positives (and passages equal to the query or a positive up to case and
   spacing), skip the first ``skip_top`` of what is left, and drop likely false negatives: a
   passage scoring above ``max_score_fraction`` times the query's best positive score
   (:func:`pick_negatives`). Unlabelled positives are common in QA and fact-checking data (a second
   paragraph that also answers the question), and training them away as negatives hurts; NV-Retriever
   (Moreira et al. 2024, arXiv:2407.15831, "positive-aware mining", TopK-PercPos) found that
   keeping only candidates below 95% of the positive's score worked best among the filters it
   compared, hence the default 0.95.
5. Each input row is written ``negatives_per_query`` times, each with a different negative; the rows
   of one query take consecutive negatives from its list, cycling, so they get different ones
   (:func:`assign_negatives`). A row whose query kept no candidate is written once with an empty
   negative, which the supervised stage reads as a pair.

The functions below take plain lists and tensors, so the ranking and the rules can be tested with
any score matrix; the ``llm2vec-lite mine`` command (``commands/mine.py``) only parses flags.

References: Moreira et al. 2024, "NV-Retriever: Improving text embedding models with effective
hard-negative mining", arXiv:2407.15831; Wang et al. 2022, "Text Embeddings by Weakly-Supervised
Contrastive Pre-training" (E5), arXiv:2212.03533.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from llm2vec_lite.data import read_text_file
from llm2vec_lite.errors import DataError, UsageError

logger = logging.getLogger(__name__)

__all__ = [
    "MinedRow",
    "MiningResult",
    "MiningSettings",
    "PassageTable",
    "Picks",
    "assign_negatives",
    "best_positive_scores",
    "check_settings",
    "count_without_negative",
    "mine",
    "pick_negatives",
    "read_corpus",
    "read_source",
    "top_k",
    "write_mined",
]

OUTPUT_COLUMNS = ("query", "positive", "negative")


@dataclass
class MiningSettings:
    """How candidates are chosen; the defaults are the ``llm2vec-lite mine`` defaults.

    Attributes:
        top_k: passages ranked per query before positives and false negatives are dropped.
        max_score_fraction: a candidate scoring above this times the query's best positive score
            is taken for an unlabelled positive and skipped (NV-Retriever's TopK-PercPos; 0.95 there).
        negatives_per_query: lines written per input row, each with a different negative.
        skip_top: candidates skipped from the top of the ranking (positives not counted).
        query_instruction: prefix before each query (attended to, not pooled); passages get none.
        batch_size: texts per forward pass.
        chunk_size: queries scored against all passages per matmul.
    """

    top_k: int = 30
    max_score_fraction: float = 0.95
    negatives_per_query: int = 1
    skip_top: int = 0
    query_instruction: str | None = None
    batch_size: int = 32
    chunk_size: int = 1024


def check_settings(settings: MiningSettings) -> None:
    """Raise UsageError naming the flag for a value that cannot work (before any model loads)."""
    if settings.top_k < 1:
        raise UsageError(f"--top-k must be >= 1, got {settings.top_k}")
    if not 0 < settings.max_score_fraction <= 1:
        raise UsageError(
            f"--max-score-fraction must be in (0, 1] (a share of the positive's score), got {settings.max_score_fraction}"
        )
    if settings.negatives_per_query < 1:
        raise UsageError(f"--negatives-per-query must be >= 1, got {settings.negatives_per_query}")
    if settings.skip_top < 0:
        raise UsageError(f"--skip-top must be >= 0, got {settings.skip_top}")
    if settings.skip_top >= settings.top_k:
        raise UsageError(
            f"--skip-top {settings.skip_top} skips every one of the --top-k {settings.top_k} candidates; "
            f"use --skip-top < --top-k"
        )
    if settings.batch_size < 1 or settings.chunk_size < 1:
        raise UsageError(f"batch_size and chunk_size must be >= 1, got {settings.batch_size}, {settings.chunk_size}")


# ------------------------------------------------------------------------------ reading
@dataclass
class PassageTable:
    """A source read for mining: its (query, positive) rows and every distinct passage it holds.

    Attributes:
        path: the file.
        rows: (query, positive) pairs in file order (rows with an empty query or positive left out).
        passages: distinct positives and negatives, in order of first appearance.
        skipped: rows left out for an empty query or positive.
    """

    path: Path
    rows: list[tuple[str, str]] = field(default_factory=list)
    passages: list[str] = field(default_factory=list)
    skipped: int = 0


def _lines(path: Path, what: str) -> list[str]:
    text = read_text_file(path, what)
    return [line.rstrip("\r") for line in text.split("\n")]


def _header(lines: list[str], path: Path, what: str, required: Sequence[str]) -> list[str]:
    header = [h.strip() for h in lines[0].split("\t")] if lines and lines[0].strip() else []
    if not header:
        raise DataError(f"{what} {path}: empty file; expected a header line with {', '.join(required)}")
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(
            f"{what} {path}: line 1 (the header) has no {' or '.join(repr(c) for c in missing)} column; "
            f"found {', '.join(header)} (tab-separated)"
        )
    return header


def _cells(lines: list[str], header: list[str], path: Path, what: str):
    """(line number, {column: stripped cell}) for each non-blank data line; a cell count that is
    not the header's names the line (an unquoted TSV with a stray tab is not what it claims)."""
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        values = line.split("\t")
        if len(values) != len(header):
            raise DataError(
                f"{what} {path}: line {n} has {len(values)} tab-separated cells, the header has {len(header)}"
            )
        yield n, {c: v.strip() for c, v in zip(header, values, strict=True)}


def read_source(path: str | Path, what: str = "--data") -> PassageTable:
    """Read a query-passage TSV (``query``, ``positive``[, ``negative``]) for mining.

    Raises:
        DataError: naming ``what``, the file and the line: a missing or non-UTF-8 file, no
            ``query`` or ``positive`` column, a line with the wrong number of cells, or no
            passage at all.
    """
    path = Path(path)
    lines = _lines(path, what)
    header = _header(lines, path, what, ("query", "positive"))
    table = PassageTable(path)
    passages: dict[str, None] = {}
    for _n, cells in _cells(lines, header, path, what):
        query, positive, negative = cells["query"], cells["positive"], cells.get("negative", "")
        if positive:
            passages[positive] = None
        if negative:
            passages[negative] = None
        if query and positive:
            table.rows.append((query, positive))
        else:
            table.skipped += 1
    if not table.rows:
        raise DataError(f"{what} {path}: no passages: no row has both a query and a positive")
    table.passages = list(passages)
    return table


def read_corpus(path: str | Path, what: str = "--extra-corpus") -> list[str]:
    """Distinct passages of another source: a TSV's ``positive`` and ``negative`` cells, or a
    ``.txt`` file's non-blank lines (tabs turned into spaces).

    Raises:
        DataError: naming ``what``, the file and the line: a missing file, a TSV with neither a
            ``positive`` nor a ``negative`` column, a line with the wrong number of cells, no passage.
    """
    path = Path(path)
    lines = _lines(path, what)
    passages: dict[str, None] = {}
    if path.suffix == ".txt":
        # a tab inside a line would split the output TSV's cell: it becomes a space
        passages.update(dict.fromkeys(line.replace("\t", " ").strip() for line in lines if line.strip()))
    else:
        header = [h.strip() for h in lines[0].split("\t")] if lines else []
        columns = [c for c in ("positive", "negative") if c in header]
        if not columns:
            _header(lines, path, what, ("positive",))  # raises, naming what was found
        for _n, cells in _cells(lines, header, path, what):
            passages.update(dict.fromkeys(cells[c] for c in columns if cells[c]))
    if not passages:
        raise DataError(f"{what} {path}: no passages (every passage cell is empty)")
    return list(passages)


# ------------------------------------------------------------------------------ ranking
def top_k(
    queries: torch.Tensor,
    passages: torch.Tensor,
    k: int,
    *,
    chunk_size: int = 1024,
    progress: Callable[[Any], Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` highest-scoring passages of each query by dot product (cosine for unit vectors).

    Queries are scored ``chunk_size`` at a time, so memory holds ``chunk_size x passages`` scores,
    not the whole matrix (30k x 30k float32 would be 3.6 GB).

    Args:
        queries: (n_queries, dim).
        passages: (n_passages, dim).
        k: how many to keep; at most ``n_passages``.
        progress: wraps the chunk iterator (a tqdm bar); ``None`` for none.

    Returns:
        ``(scores, indices)``, each (n_queries, min(k, n_passages)), best first.
    """
    k = min(k, passages.shape[0])
    starts = range(0, queries.shape[0], chunk_size)
    scores, indices = [], []
    for start in progress(starts) if progress else starts:
        s = queries[start : start + chunk_size] @ passages.T  # (chunk, n_passages)
        top = s.topk(k, dim=1)
        scores.append(top.values)
        indices.append(top.indices)
    if not scores:
        return torch.empty((0, k)), torch.empty((0, k), dtype=torch.long)
    return torch.cat(scores), torch.cat(indices)  # (n_queries, k) each


def best_positive_scores(
    queries: torch.Tensor, passages: torch.Tensor, positives: Sequence[Sequence[int]]
) -> torch.Tensor:
    """Each query's highest score over its own positives: (n_queries,); -inf for none."""
    q_idx = torch.tensor([q for q, pos in enumerate(positives) for _ in pos], dtype=torch.long)
    p_idx = torch.tensor([p for pos in positives for p in pos], dtype=torch.long)
    pair_scores = (queries[q_idx] * passages[p_idx]).sum(dim=1)  # (n_pairs,)
    best = torch.full((queries.shape[0],), float("-inf"), dtype=pair_scores.dtype)
    return best.scatter_reduce(0, q_idx, pair_scores, reduce="amax")


@dataclass
class Picks:
    """What :func:`pick_negatives` kept: candidate passage ids per query, and what it dropped."""

    negatives: list[list[int]]
    false_negatives: int = 0
    positives_in_top_k: int = 0


def pick_negatives(
    scores: torch.Tensor,
    indices: torch.Tensor,
    positives: Sequence[set[int]],
    best_positive: torch.Tensor,
    *,
    max_score_fraction: float = 0.95,
    skip_top: int = 0,
) -> Picks:
    """Hard-negative candidates per query from its top-k, best first.

    A passage of a query's top-k is kept when it is not one of the query's ``positives``, its rank
    among the non-positives is at least ``skip_top``, and its score is at most
    ``max_score_fraction * best_positive`` (positive-aware mining: a passage the model scores
    nearly as high as the labelled positive is more likely an unlabelled positive than a negative).

    Args:
        scores: (n_queries, k) top-k scores, best first (:func:`top_k`).
        indices: (n_queries, k) passage ids of those scores.
        positives: per query, the passage ids that must never be its negatives.
        best_positive: (n_queries,) each query's best positive score.

    Returns:
        :class:`Picks`: candidates per query, and how many passages the score rule dropped.
    """
    picks = Picks([])
    # f * best for a positive best score; below best by the same share when best < 0 (a weak
    # model), so a passage scoring above the positive is never kept as a negative
    threshold = (best_positive - (1 - max_score_fraction) * best_positive.abs()).tolist()
    for q, (row_scores, row_ids) in enumerate(zip(scores.tolist(), indices.tolist(), strict=True)):
        kept, rank = [], 0
        for score, pid in zip(row_scores, row_ids, strict=True):
            if pid in positives[q]:
                picks.positives_in_top_k += 1
                continue
            rank += 1
            if rank <= skip_top:
                continue
            if score > threshold[q]:
                picks.false_negatives += 1
                continue
            kept.append(pid)
        picks.negatives.append(kept)
    return picks


@dataclass
class MinedRow:
    """One output line: a source row and the negative mined for it (``None``: none survived)."""

    query: str
    positive: str
    negative: str | None


def assign_negatives(
    rows: Sequence[tuple[str, str]],
    candidates: dict[str, list[str]],
    per_row: int = 1,
) -> list[MinedRow]:
    """Spread each query's candidates over its rows: ``per_row`` lines per row, different negatives.

    The ``j``-th row of a query takes candidates ``j * per_row ..`` (cycling through the list), so
    a query with several positives gives each row other negatives while there are enough. A row
    gets at most as many lines as its query has candidates (no repeated negative), and one line
    with ``negative=None`` when there is none.
    """
    seen: dict[str, int] = {}
    out = []
    for query, positive in rows:
        j = seen.get(query, 0)
        seen[query] = j + 1
        cands = candidates.get(query, [])
        if not cands:
            out.append(MinedRow(query, positive, None))
            continue
        for t in range(min(per_row, len(cands))):
            out.append(MinedRow(query, positive, cands[(j * per_row + t) % len(cands)]))
    return out


# ------------------------------------------------------------------------------ the whole run
def count_without_negative(rows: Sequence[MinedRow]) -> int:
    """Rows that kept no mined negative (they train as pairs); one source's or all of them."""
    return sum(r.negative is None for r in rows)


@dataclass
class MiningResult:
    """The mined rows and the counts ``llm2vec-lite mine`` reports."""

    by_source: list[list[MinedRow]]  # each input source's rows, in its order
    queries: int
    passages: int
    false_negatives: int
    positives_in_top_k: int

    @property
    def rows(self) -> list[MinedRow]:
        """Every source's rows, the sources in input order."""
        return [row for part in self.by_source for row in part]

    @property
    def rows_without_negative(self) -> int:
        return count_without_negative(self.rows)

    def summary(self) -> str:
        return (
            f"{self.queries} queries, {self.passages} passages; wrote {len(self.rows)} rows, "
            f"{self.rows_without_negative} without a negative; skipped {self.false_negatives} likely "
            f"false negatives and {self.positives_in_top_k} positives found in the top-k"
        )


def _normal(text: str) -> str:
    """Case and spacing folded: a passage that differs from a positive only so is that positive."""
    return " ".join(text.lower().split())


def mine(
    encoder,
    source: PassageTable | Sequence[PassageTable],
    extra_passages: Sequence[str] = (),
    settings: MiningSettings | None = None,
    *,
    show_progress: bool | None = None,
) -> MiningResult:
    """Mine hard negatives for ``source``'s rows with ``encoder`` (an :class:`~llm2vec_lite.encoder.Encoder`).

    The pool is the passages of every source plus ``extra_passages``, each encoded once: mining a
    whole training collection in one run costs one pass over it, where a run per source would
    encode the shared pool once per source. A query's positives are its positives in any source.
    Without a query instruction a text that is both a query and a passage is encoded once.
    ``result.by_source`` holds each source's rows, in its order.

    Raises:
        UsageError: If a setting cannot work (:func:`check_settings`).
    """
    settings = settings or MiningSettings()
    check_settings(settings)
    sources = [source] if isinstance(source, PassageTable) else list(source)
    all_rows = [row for s in sources for row in s.rows]
    pool = list(dict.fromkeys([*(p for s in sources for p in s.passages), *extra_passages]))
    queries = list(dict.fromkeys(q for q, _ in all_rows))
    passage_id = {p: i for i, p in enumerate(pool)}
    by_normal: dict[str, list[int]] = {}
    for i, p in enumerate(pool):
        by_normal.setdefault(_normal(p), []).append(i)

    positives: dict[str, set[int]] = {q: set() for q in queries}
    for q, p in all_rows:
        positives[q].add(passage_id[p])
    labelled = [sorted(positives[q]) for q in queries]  # the labelled positives (scores)
    never = [set().union(*(by_normal.get(_normal(pool[p]), ()) for p in pos), by_normal.get(_normal(q), ()))
             for q, pos in zip(queries, labelled, strict=True)]

    encode = dict(batch_size=settings.batch_size, normalize=True, convert_to="torch", show_progress=show_progress)
    if settings.query_instruction:
        p_vecs = encoder.encode(pool, **encode)  # (n_passages, dim)
        q_vecs = encoder.encode(queries, instruction=settings.query_instruction, **encode)  # (n_queries, dim)
    else:  # one pass over the union: a query that is also a passage is encoded once
        texts = list(dict.fromkeys([*pool, *queries]))
        row = {t: i for i, t in enumerate(texts)}
        vecs = encoder.encode(texts, **encode)  # (n_texts, dim)
        p_vecs = vecs[: len(pool)]
        q_vecs = vecs[torch.tensor([row[q] for q in queries], dtype=torch.long)]

    progress = _progress_bar(show_progress, len(queries), settings.chunk_size)
    scores, indices = top_k(q_vecs, p_vecs, settings.top_k, chunk_size=settings.chunk_size, progress=progress)
    best = best_positive_scores(q_vecs, p_vecs, labelled)
    picks = pick_negatives(
        scores, indices, never, best, max_score_fraction=settings.max_score_fraction, skip_top=settings.skip_top
    )
    candidates = {q: [pool[i] for i in ids] for q, ids in zip(queries, picks.negatives, strict=True)}
    by_source = [assign_negatives(s.rows, candidates, settings.negatives_per_query) for s in sources]
    return MiningResult(by_source, len(queries), len(pool), picks.false_negatives, picks.positives_in_top_k)


def _progress_bar(show: bool | None, n_queries: int, chunk_size: int) -> Callable[[Any], Any] | None:
    chunks = -(-n_queries // chunk_size)
    if show is False or (show is None and chunks <= 1):
        return None
    from tqdm.auto import tqdm

    return lambda it: tqdm(it, desc="rank", unit="chunk", total=chunks)


def write_mined(path: str | Path, rows: Sequence[MinedRow]) -> Path:
    """Write ``rows`` as a TSV (``query``, ``positive``, ``negative``; empty negative = none).

    Written to ``NAME.partial`` and renamed, so a failed run leaves no half-written source.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8", newline="\n") as f:
        f.write("\t".join(OUTPUT_COLUMNS) + "\n")
        for r in rows:
            f.write(f"{r.query}\t{r.positive}\t{r.negative or ''}\n")
    partial.replace(path)
    return path
