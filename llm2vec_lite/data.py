"""Training data: readers for local files and hub datasets, MNTP packing and masking.

Readers turn a recipe's :class:`~llm2vec_lite.recipe.DataSource` (or a list of them, concatenated in
order) into plain Python lists, and fail with a :class:`~llm2vec_lite.errors.DataError` that names
the file, the recipe field and what was found *before* any training starts:

- :func:`read_texts` - one text per example (MNTP, SimCSE).
- :func:`read_rows` - tuples of columns, e.g. ``("anchor", "positive", "negative")`` (supervised).
- :func:`read_instructed_rows` - the same rows, each with the query and document instruction it
  gets: a row's own ``instruction_column`` cell, else its source's, else the stage's, and its group.

A supervised source gives (anchor, positive[, hard negative]) rows in one of three shapes
(:func:`source_rows`): its ``columns`` (two columns give pairs, three triplets); ``nli`` - a
labelled premise/hypothesis table, each positive hypothesis with a negative one of the same premise
when there is one; ``group_columns`` - cells of one row that are positives of each other (captions
of one image), every pair of them, all in the row's group so they are never each other's negatives;
``crops`` - label-free pairs, two random spans of one text (Contriever's independent cropping).
Any table source may keep only some rows with ``where`` (e.g. ``{split: train}``).

Formats: ``.txt`` (one text a line), ``.tsv`` (header line, unquoted, as ``data``),
``.csv`` (header line, standard quoting), ``.jsonl`` (one object a line, keys are columns),
``.parquet``, and hub datasets through ``datasets.load_dataset(hub, name, split=split)``.

MNTP (masked next-token prediction, LLM2Vec step 2): :func:`pack_texts` concatenates texts with
EOS between them and cuts the stream into blocks; :class:`MNTPCollator` masks tokens and puts the
original token in ``labels`` *at the masked position*. A causal-LM head's loss shifts labels by
one (``logits[i - 1]`` is scored against ``labels[i]``), so each masked token is predicted from the
output at the position before it, which is exactly MNTP. The first token is never masked (no
position before it) and padding never is.

References: BehnamGhader et al. 2024, "LLM2Vec", arXiv:2404.05961, section 2.2 (MNTP);
Devlin et al. 2019, BERT, arXiv:1810.04805 (the 80/10/10 replacement rule).
"""

from __future__ import annotations

import csv
import json
import logging
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from llm2vec_lite.errors import DataError
from llm2vec_lite.recipe import DataSource
from llm2vec_lite.tokenization import pad_token_id, tokenizer_adds_bos

logger = logging.getLogger(__name__)

__all__ = [
    "NLI_COLUMNS",
    "InstructedRow",
    "MNTPCollator",
    "mask_token_id",
    "pack_texts",
    "read_instructed_rows",
    "read_rows",
    "read_table",
    "read_texts",
    "source_rows",
]

Sources = DataSource | Sequence[DataSource]

# Column names tried, in order, when a table is read for single texts and no column is named.
_TEXT_COLUMNS = ("text", "sentence", "sentence1", "anchor", "query")


def _as_list(source: Sources) -> list[DataSource]:
    if isinstance(source, DataSource):
        return [source]
    sources = list(source)
    if not sources:
        raise DataError("no data sources given; a stage's data needs at least one source")
    return sources


def read_text_file(path: str | Path, what: str) -> str:
    """The text of a UTF-8 file, or a DataError naming ``what`` (a flag, a field) and the problem.

    Raises:
        DataError: If the file is missing, unreadable or not UTF-8 (the message gives the offset of
            the first bad byte and how to convert the file).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} {path}: no such file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{what} {path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
            f"convert it first, e.g. iconv -f latin1 -t utf-8 {path} > fixed.txt"
        ) from None
    except OSError as e:
        raise DataError(f"{what} {path}: cannot read: {e}") from None


# ------------------------------------------------------------------------------------------
# Reading one source into a table
# ------------------------------------------------------------------------------------------


def read_table(source: DataSource) -> tuple[list[str], list[dict[str, Any]] | list[str]]:
    """Read one source as ``(column_names, rows)``, keeping only the rows its ``where`` selects.

    For a ``.txt`` file the columns are ``["text"]`` and the rows are the raw lines; for every other
    format the rows are dicts keyed by column. ``limit`` is *not* applied here.

    Raises:
        DataError: If the file is missing or unreadable, the hub dataset cannot be loaded, or a
            ``where`` column or value is not in the table.
    """
    found, rows = _read_table(source)
    if source.where:
        rows = _where(source, found, rows)
    return found, rows


def _where(source: DataSource, found: list[str], rows: list[Any]) -> list[Any]:
    """The rows whose cells hold one of the ``where`` values of each named column.

    Every value named must occur in its column: a misspelt value would otherwise silently drop a
    part of the data it was meant to keep.
    """
    assert source.where is not None
    wanted = {c: {v} if isinstance(v, str) else set(v) for c, v in source.where.items()}
    missing = [c for c in wanted if c not in found]
    if missing:
        raise DataError(
            f"{source.origin}.where: {source.describe()} has no column(s) {missing}; found {found}"
        )
    for column, values in wanted.items():
        present = {_cell(row.get(column)) for row in rows}
        absent = values - present
        if absent:
            raise DataError(
                f"{source.origin}.where.{column} = {_shown(absent)}: no row of {source.describe()} has "
                f"this value; values found: {_shown(present)}"
            )
    return [row for row in rows if all(_cell(row.get(c)) in vals for c, vals in wanted.items())]


def _read_table(source: DataSource) -> tuple[list[str], list[dict[str, Any]] | list[str]]:
    if source.hub is not None:
        return _read_hub(source)
    path = Path(source.path or "")
    if not path.is_file():
        raise DataError(
            f"{source.origin}.path = {source.path}: file not found. Fix the path in the recipe "
            "(relative paths resolve against the recipe's folder)."
        )
    fmt = source.inferred_format()
    try:
        if fmt == "txt":
            with path.open(encoding="utf-8") as f:
                return ["text"], [line.rstrip("\n") for line in f]
        if fmt in ("tsv", "csv"):
            return _read_delimited(source, path, fmt)
        if fmt == "jsonl":
            return _read_jsonl(source, path)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            return list(table.column_names), table.to_pylist()
    except DataError:
        raise
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{source.origin}.path = {source.path}: cannot read as {fmt}: {e}") from e
    except Exception as e:  # pyarrow raises its own types for corrupt files
        raise DataError(f"{source.origin}.path = {source.path}: cannot read as {fmt}: {e}") from e
    raise DataError(f"{source.origin}.format = {fmt!r}: unsupported; use txt, tsv, csv, jsonl or parquet")


# More than this share of rows with the wrong number of cells means the file is not what the
# header says (a wrong delimiter, quotes in an unquoted TSV): fail instead of training on the rest.
MALFORMED_ROW_LIMIT = 0.1


def _read_delimited(source: DataSource, path: Path, fmt: str) -> tuple[list[str], list[dict[str, Any]]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    short: list[int] = []
    long: list[int] = []
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8", newline="") as f:
        # Our TSVs are unquoted: a double quote is literal text (see shared/data/README.md).
        tsv = fmt == "tsv"
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if tsv else csv.reader(f)
        header = next(reader, None)
        if header is None:
            return [], []
        header = [h.strip() for h in header]
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                (short if len(values) < len(header) else long).append(reader.line_num)
            # A short row leaves its last cells missing (read as empty, so the row is dropped later).
            rows.append(dict(zip(header, values, strict=False)))
    bad = len(short) + len(long)
    if bad:

        def lines(nums: list[int]) -> str:
            return ", ".join(map(str, nums[:5])) + (", ..." if len(nums) > 5 else "")

        parts = []
        if short:
            parts.append(
                f"{len(short)} with fewer than {len(header)} cells (lines {lines(short)}; missing cells read as empty)"
            )
        if long:
            parts.append(
                f"{len(long)} with more than {len(header)} cells (lines {lines(long)}; extra cells ignored)"
            )
        message = (
            f"{source.origin}.path = {source.path}: {bad} of {len(rows)} rows do not match the "
            f"{len(header)}-column header: {'; '.join(parts)}"
        )
        if bad > 1 and bad > MALFORMED_ROW_LIMIT * len(rows):
            sep = "a tab" if tsv else "a comma"
            raise DataError(
                f"{message}. More than {MALFORMED_ROW_LIMIT:.0%} of the rows: check that cells are separated "
                f"by {sep} and the header names every column."
            )
        logger.warning(message)
    return header, rows


def _read_jsonl(source: DataSource, path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    columns: dict[str, None] = {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{source.origin}.path = {source.path}: line {n} is not JSON: {e}") from None
            if not isinstance(obj, dict):
                raise DataError(
                    f"{source.origin}.path = {source.path}: line {n} is a {type(obj).__name__}; "
                    "each line must be a JSON object whose keys are the columns"
                )
            columns.update(dict.fromkeys(obj))
            rows.append(obj)
    return list(columns), rows


def _read_hub(source: DataSource) -> tuple[list[str], list[dict[str, Any]]]:
    import datasets

    try:
        kwargs = {"data_files": source.data_files} if source.data_files is not None else {}
        ds = datasets.load_dataset(source.hub, source.name, split=source.split, **kwargs)
    except Exception as e:  # network, missing config, missing split: all end training before it starts
        raise DataError(
            f"{source.origin}: cannot load hub dataset {source.describe()}: {type(e).__name__}: {e}. "
            "Check the id, name and split, your network, or download it and point data.path at a file."
        ) from e
    if isinstance(ds, datasets.DatasetDict):  # split=None gives every split
        raise DataError(f"{source.origin}: hub dataset {source.hub} needs a split; found {list(ds)}")
    plain = source.where is None and source.nli is None and source.group_columns is None
    if plain and source.limit is not None and len(ds) > source.limit * 2:
        # Rows with empty fields are dropped later, so keep some slack over the limit (filters and
        # NLI labels may drop many more, so those sources read everything).
        ds = ds.select(range(source.limit * 2))
    columns = list(ds.column_names)
    return columns, [dict(row) for row in ds]


# ------------------------------------------------------------------------------------------
# Public readers
# ------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        # Some hub datasets store several negatives a row; take the first.
        return _cell(value[0]) if value else ""
    return str(value).strip()


def _pick_columns(
    source: DataSource, found: list[str], wanted: list[str], field: str = "columns", pairs_hint: bool = False
) -> list[str]:
    """``wanted``, or a DataError naming ``field`` when the table lacks one of them."""
    missing = [c for c in wanted if c not in found]
    if missing:
        if pairs_hint and len(found) >= 2:
            hint = f" For pairs without a hard negative name two columns, e.g. columns: {found[:2]}."
        elif len(found) >= len(wanted):
            hint = f" Name the columns to use with data.columns (e.g. columns: {found[: len(wanted)]})."
        else:
            hint = ""
        shown = f".{field} = {wanted}" if field != "columns" else ""
        raise DataError(
            f"{source.origin}{shown}: {source.describe()} has no column(s) {missing}; found {found}.{hint}"
        )
    return wanted


class InstructedRow(NamedTuple):
    """One supervised row and the instructions its sides get (None: no instruction).

    Attributes:
        texts: the row's cells, ``(anchor, positive)`` or ``(anchor, positive, hard negative)``.
        query_instruction: put before the anchor.
        document_instruction: put before the positive and the negative.
        group: rows with the same group are never each other's in-batch negatives (captions of one
            image); None = the row is only grouped with rows sharing its texts.
    """

    texts: tuple[str, ...]
    query_instruction: str | None = None
    document_instruction: str | None = None
    group: str | None = None


def read_rows(
    source: Sources, columns: list[str], *, min_columns: int | None = None
) -> list[tuple[str, ...]]:
    """Read rows of ``len(columns)`` stripped strings from each source, concatenated in order.

    Args:
        source: one source or a list of them.
        columns: the column names the stage wants, e.g. ``["anchor", "positive", "negative"]``. A
            source's own ``columns`` replace these by position (``[query, pos, neg]`` is read as
            anchor, positive, negative); a ``.txt`` source can only give one column.
        min_columns: a source may name fewer columns, down to this many (pairs in a triplet
            stage); default ``len(columns)``.

    Returns:
        Tuples in file order. Rows with an empty field are dropped (and counted in the log).
        Each source's ``limit`` caps the rows kept from it.

    Raises:
        DataError: If a file is missing, a column is missing (the message lists the columns found),
            or no rows are left.
    """
    return [row.texts for row in read_instructed_rows(source, columns, min_columns=min_columns)]


def read_instructed_rows(
    source: Sources,
    columns: list[str],
    *,
    query_instruction: str | None = None,
    document_instruction: str | None = None,
    min_columns: int | None = None,
) -> list[InstructedRow]:
    """:func:`read_rows`, each row with the instructions its query and documents get, and its group.

    A source gives rows in one of three shapes (:func:`source_rows`): its ``columns`` (plain),
    premise/hypothesis pairs picked by label (``nli``), or pairs of cells of one row
    (``group_columns``). Rows never have more than ``len(columns)`` texts: a pair stage drops the
    hard negatives a source could give.

    The query side takes, in order: the row's cell in its source's ``instruction_column`` (when
    not empty; stripped, then put into the source's ``instruction_template``, by default
    ``"{instruction} "``), the source's ``query_instruction``, then ``query_instruction`` (the stage's). The
    document side takes the source's ``document_instruction``, else ``document_instruction``. An
    empty string means "no instruction" and is returned as None.

    Raises:
        DataError: As :func:`read_rows`, and if a source's ``instruction_column`` is not in its file.
    """
    if not columns:
        raise ValueError("read_rows needs at least one column name")
    out: list[InstructedRow] = []
    for src in _as_list(source):
        query = _first_set(src.query_instruction, query_instruction)
        document = _first_set(src.document_instruction, document_instruction)
        for made in source_rows(src, columns, min_columns=min_columns):
            own = _row_instruction(src, made.instruction)
            out.append(InstructedRow(made.texts, _first_set(own, query), document, made.group))
    return out


class SourceRow(NamedTuple):
    """A training row as one source gives it, before instructions are resolved.

    Attributes:
        texts: ``(anchor, positive)`` or ``(anchor, positive, negative)``.
        instruction: the row's ``instruction_column`` cell ('' when none).
        group: the row's group key (see :class:`InstructedRow`), or None.
    """

    texts: tuple[str, ...]
    instruction: str = ""
    group: str | None = None


def source_rows(src: DataSource, columns: list[str], *, min_columns: int | None = None) -> list[SourceRow]:
    """The rows one source gives a stage that reads ``columns`` (see :func:`read_instructed_rows`).

    Raises:
        DataError: naming the source's field: a missing column, an NLI label or ``where`` value
            that no row has, or no rows left after filtering.
    """
    found, table = read_table(src)
    if src.nli is not None:
        made = _nli_rows(src, found, table, with_negatives=len(columns) > 2)
    elif src.crops is not None:
        made = _crop_rows(src, found, table)
    elif src.group_columns is not None:
        made = _group_rows(src, found, table)
    else:
        made = _plain_rows(src, found, table, columns, min_columns or len(columns))
    return _capped(src, made)


def _plain_rows(
    src: DataSource, found: list[str], table: list[Any], columns: list[str], min_columns: int
) -> list[SourceRow]:
    """Rows from the source's ``columns`` (by position onto the stage's), with optional extras."""
    wanted = list(src.columns[: len(columns)]) if src.columns else list(columns)
    if len(wanted) < min_columns:
        raise DataError(
            f"{src.origin}.columns = {src.columns}: names {len(wanted)} column(s), "
            f"this stage reads {min_columns if min_columns == len(columns) else f'{min_columns} or more'} "
            f"({', '.join(columns)})"
        )
    extras = [src.instruction_column or "", src.group_column or ""]
    # A hard-negative column may be empty in some rows (retrieval sets give a negative to only
    # part of their queries): such a row trains as a pair instead of being dropped.
    rows = _extract(
        src, found, table, wanted, extras, pairs_hint=min_columns < len(columns), capped=False, required=2
    )
    n = len(wanted)
    return [SourceRow(tuple(t for t in r[:n] if t), r[n], _group_key(src, r[n + 1])) for r in rows]


# Premise and hypothesis columns of an ``nli`` source that names no columns (SNLI/MNLI/GLUE names).
NLI_COLUMNS = ("sentence1", "sentence2")


def _nli_rows(
    src: DataSource, found: list[str], table: list[Any], *, with_negatives: bool
) -> list[SourceRow]:
    """(premise, entailed hypothesis[, contradiction of the same premise]) rows of a labelled table.

    Why grouped by premise: a hard negative should differ from the positive only in meaning, and
    the contradiction written for the same premise is exactly that. The k-th positive row of a
    premise takes its (k mod count)-th negative, so several negatives of one premise all get used,
    and the result depends only on the file, not on a seed. A premise without a negative row gives
    pairs, which add no hard negative to the batch.
    """
    nli = src.nli
    assert nli is not None
    premise, hypothesis = _pick_columns(src, found, list(src.columns or NLI_COLUMNS))
    (label,) = _pick_columns(src, found, [nli.label_column], "nli.label_column")
    instruction = _instruction_column(src, found)
    labels = {_cell(row.get(label)) for row in table}
    for field, value in (("positive", nli.positive), ("negative", nli.negative)):
        if value is not None and value not in labels:
            hint = "; set negative: null to read pairs only" if field == "negative" else ""
            raise DataError(
                f"{src.origin}.nli.{field} = {value!r}: no row of {src.describe()}"
                + (f" (after where = {src.where})" if src.where else "")
                + f" has this label in column {label!r}; labels found: {_shown(labels)}{hint}"
            )
    negatives: dict[str, list[str]] = {}
    if with_negatives and nli.negative is not None:
        for row in table:
            p, h = _cell(row.get(premise)), _cell(row.get(hypothesis))
            if p and h and _cell(row.get(label)) == nli.negative:
                negatives.setdefault(p, []).append(h)
    used: dict[str, int] = {}
    out: list[SourceRow] = []
    for row in table:
        p, h = _cell(row.get(premise)), _cell(row.get(hypothesis))
        if not (p and h) or _cell(row.get(label)) != nli.positive:
            continue
        k = used[p] = used.get(p, -1) + 1
        negs = negatives.get(p)
        texts = (p, h, negs[k % len(negs)]) if negs else (p, h)
        out.append(SourceRow(texts, _cell(row.get(instruction)) if instruction else "", _group_of(src, row)))
    return out


def _group_pairs(k: int) -> list[tuple[int, int]]:
    """Every unordered pair of ``k`` members once, each member the query about equally often.

    Pairs are (i, i + d mod k) for d = 1 .. k // 2, so with five captions each caption is the
    query of two pairs and the positive of two (plain ``i < j`` would never make the last one a
    query).
    """
    return [(i, (i + d) % k) for d in range(1, k // 2 + 1) for i in range(k) if not (2 * d == k and i >= d)]


def _group_rows(src: DataSource, found: list[str], table: list[Any]) -> list[SourceRow]:
    """Pairs of cells of one row (captions of one image), every pair of a row in the same group.

    Why all pairs rather than one random pair per row per epoch: the rows stay a fixed list, so
    the batch samplers stay pure functions of (seed, step), resuming needs nothing new, and every
    pair is seen each epoch. Pairs of one row that land in the same batch are not each other's
    negatives (the group mask); a source ``weight`` sets how much of each batch they take, however
    many pairs the groups make.
    """
    names = _pick_columns(src, found, list(src.group_columns or []), "group_columns")
    instruction = _instruction_column(src, found)
    if src.group_column is not None:
        _pick_columns(src, found, [src.group_column], "group_column")
    out: list[SourceRow] = []
    for row in table:
        cells = list(dict.fromkeys(c for c in (_cell(row.get(n)) for n in names) if c))  # distinct, in order
        if len(cells) < 2:
            continue
        group = _group_of(src, row) or _group_key(src, "\x1f".join(cells), "row")
        own = _cell(row.get(instruction)) if instruction else ""
        out.extend(SourceRow((cells[a], cells[b]), own, group) for a, b in _group_pairs(len(cells)))
    return out


def _crop_rows(src: DataSource, found: list[str], table: list[Any]) -> list[SourceRow]:
    """(query span, positive span) pairs of each text long enough (see :class:`~llm2vec_lite.recipe.Crops`).

    Why spans of words, not tokens: the rows are built before any tokenizer loads (bad data fails
    first), and a word count means the same for every model.
    """
    crops = src.crops
    assert crops is not None
    column = _text_column(src, found)
    texts = [t for (t,) in _extract(src, found, table, [column], capped=False)]
    rng = random.Random(crops.seed)
    out: list[SourceRow] = []
    for k, text in enumerate(texts):
        words = text.split()
        if len(words) < crops.min_words():
            continue
        group = _group_key(src, str(k), "text")
        for _ in range(crops.per_text):
            query, positive = (_span(words, crops.query_words, rng), _span(words, crops.passage_words, rng))
            if query != positive:
                out.append(SourceRow((query, positive), "", group))
    if not out:
        raise DataError(
            f"{src.origin}.crops: no text of {src.describe()} has the {crops.min_words()} words a pair "
            f"needs (query_words {crops.query_words}, passage_words {crops.passage_words}); "
            "lower them or use longer texts"
        )
    return out


def _span(words: list[str], bounds: list[int], rng: random.Random) -> str:
    """A random run of ``bounds[0]..bounds[1]`` words (fewer when the text is shorter)."""
    n = min(rng.randint(bounds[0], bounds[1]), len(words))
    start = rng.randint(0, len(words) - n)
    return " ".join(words[start : start + n])


def _instruction_column(src: DataSource, found: list[str]) -> str | None:
    if src.instruction_column is not None and src.instruction_column not in found:
        raise DataError(
            f"{src.origin}.instruction_column = {src.instruction_column!r}: {src.describe()} has no such "
            f"column; found {found}"
        )
    return src.instruction_column


def _group_of(src: DataSource, row: dict[str, Any]) -> str | None:
    """The group key of a table row from the source's ``group_column`` (None when unset or empty)."""
    return _group_key(src, _cell(row.get(src.group_column))) if src.group_column else None


def _group_key(src: DataSource, value: str, column: str | None = None) -> str | None:
    """A group key unique to (file, column, value): the same file read twice keys its groups alike."""
    if not value:
        return None
    return f"{src.describe()}|{column or src.group_column}={value}"


def _shown(values: set[str] | list[str], most: int = 12) -> str:
    items = sorted(values)
    return ", ".join(repr(v) for v in items[:most]) + (
        f", ... ({len(items)} in all)" if len(items) > most else ""
    )


def _capped(src: DataSource, rows: list[Any]) -> list[Any]:
    """``rows`` cut to the source's ``limit``; a DataError naming the source when none is left."""
    if src.limit is not None:
        rows = rows[: src.limit]
    if not rows:
        what = ""
        if src.nli is not None:
            what = f" with label {src.nli.positive!r} and non-empty premise and hypothesis"
        elif src.group_columns is not None:
            what = f" with two or more different non-empty cells in {', '.join(src.group_columns)}"
        raise DataError(
            f"{src.origin}: {src.describe()} gave no rows{what}"
            + (f" after where = {src.where}" if src.where else "")
            + ". Check the file, its header line and data.columns."
        )
    return rows


DEFAULT_INSTRUCTION_TEMPLATE = "{instruction} "


def _row_instruction(src: DataSource, cell: str) -> str | None:
    """A row's ``instruction_column`` cell put into its source's ``instruction_template``."""
    if not cell:
        return None
    return (src.instruction_template or DEFAULT_INSTRUCTION_TEMPLATE).replace("{instruction}", cell)


def _first_set(*values: str | None) -> str | None:
    """The first value that is neither None nor empty (None when none is)."""
    return next((v for v in values if v), None)


def _extract(
    src: DataSource,
    found: list[str],
    rows: list[Any],
    wanted: list[str],
    extras: Sequence[str] = (),
    *,
    pairs_hint: bool = False,
    capped: bool = True,
    required: int | None = None,
) -> list[tuple[str, ...]]:
    """Pick ``wanted`` columns from a table, drop rows with an empty field, apply ``limit``.

    Each tuple ends with one cell per name in ``extras`` (which may be empty; an empty name gives
    ''). ``capped=False`` leaves ``limit`` and the empty check to the caller. ``required``: how
    many leading ``wanted`` fields must be non-empty (default: all of them).
    """
    if src.inferred_format() == "txt":
        if len(wanted) != 1:
            raise DataError(
                f"{src.origin}.path = {src.path}: a .txt file has one text a line, but this stage "
                f"reads {len(wanted)} columns ({', '.join(wanted)}); use a .tsv with a header line"
            )
        picked = [(_cell(line), *("" for _ in extras)) for line in rows]
    else:
        if extras and extras[0]:
            _instruction_column(src, found)
        if len(extras) > 1 and extras[1]:
            _pick_columns(src, found, [extras[1]], "group_column")
        names = [*_pick_columns(src, found, wanted, pairs_hint=pairs_hint), *extras]
        if required is not None:  # optional cells may be empty, but a short (malformed) row still goes
            rows = [row for row in rows if all(c in row for c in wanted)]
        picked = [tuple(_cell(row.get(c)) if c else "" for c in names) for row in rows]
    n = len(wanted) if required is None else min(required, len(wanted))
    kept = [r for r in picked if all(r[:n])]
    if len(kept) < len(picked):
        logger.info("%s: dropped %d rows with an empty field", src.describe(), len(picked) - len(kept))
    if not kept:
        raise DataError(
            f"{src.origin}: {src.describe()} gave no rows with non-empty {', '.join(wanted)} "
            f"({len(picked)} rows read)"
            + (f" after where = {src.where}" if src.where else "")
            + ". Check the file, its header line and data.columns."
        )
    return _capped(src, kept) if capped else kept


def read_texts(source: Sources, *, column: str | None = None) -> list[str]:
    """Read one non-empty, stripped text per row from each source, concatenated in order.

    Args:
        source: one source or a list of them.
        column: the column to read from tables. A source's ``columns[0]`` takes precedence; without
            either, a table with one column uses it, else the first of ``text``, ``sentence``,
            ``sentence1``, ``anchor``, ``query`` that exists. Ignored for ``.txt`` files.

    Raises:
        DataError: If a file is missing, no usable column exists, or no texts are left.
    """
    out: list[str] = []
    for src in _as_list(source):
        found, rows = read_table(src)
        out.extend(t for (t,) in _extract(src, found, rows, [_text_column(src, found, column)]))
    return out


def _text_column(src: DataSource, found: list[str], column: str | None = None) -> str:
    """The column a source reads single texts from (see :func:`read_texts`); ``text`` for .txt files."""
    if src.inferred_format() == "txt":
        return "text"
    name = src.columns[0] if src.columns else column
    if name is None:
        name = found[0] if len(found) == 1 else next((c for c in _TEXT_COLUMNS if c in found), None)
    if name is None:
        raise DataError(
            f"{src.origin}: {src.describe()} has columns {found}; none is an obvious text "
            "column. Name it with data.columns (e.g. columns: [text])."
        )
    return name


# ------------------------------------------------------------------------------------------
# MNTP
# ------------------------------------------------------------------------------------------


def pack_texts(tokenizer, texts: Sequence[str], block_size: int) -> list[list[int]]:
    """Concatenate texts (each followed by EOS) and cut the token stream into blocks.

    Each block starts with BOS when the tokenizer normally adds one (Llama, Gemma), so a block
    looks like the start of a document to the model. The last, shorter block is kept when it
    has at least two tokens (one to predict from, one to predict); the collator pads it.

    Args:
        tokenizer: a Hugging Face tokenizer with an EOS token.
        texts: the texts, in order.
        block_size: tokens per block, BOS included.

    Returns:
        A list of blocks, each a list of token ids of length ``block_size`` (the last may be
        shorter).

    Raises:
        ValueError: If ``block_size`` < 2.
        DataError: If the tokenizer has no EOS token or the texts give no tokens.
    """
    if block_size < 2:
        raise ValueError(
            f"block_size = {block_size}: must be >= 2 (MNTP predicts a token from the one before)"
        )
    eos = tokenizer.eos_token_id
    if eos is None:
        raise DataError("the tokenizer has no EOS token; MNTP separates packed texts with EOS")
    bos = tokenizer.bos_token_id if tokenizer_adds_bos(tokenizer) else None
    body = block_size - (1 if bos is not None else 0)
    stream: list[int] = []
    chunk = 1000
    for start in range(0, len(texts), chunk):
        batch = [t for t in texts[start : start + chunk] if t]
        if not batch:
            continue
        for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]:
            stream.extend(ids)
            stream.append(eos)
    if not stream:
        raise DataError("pack_texts: the texts gave no tokens")
    blocks = []
    for start in range(0, len(stream), body):
        piece = stream[start : start + body]
        block = ([bos] if bos is not None else []) + piece
        if len(block) >= 2:
            blocks.append(block)
    return blocks


def mask_token_id(tokenizer, strategy: str) -> int:
    """The token id that replaces masked tokens in MNTP.

    Args:
        tokenizer: the model's tokenizer.
        strategy: ``"blank"`` - the ``"_"`` token, as LLM2Vec does for models without a mask
            token; ``"eos"`` - the EOS token; ``"mask"`` - the tokenizer's mask token, adding a new
            ``<mask>`` special token when it has none (the caller must then resize the model's
            embeddings to ``len(tokenizer)``).

    Raises:
        DataError: If the tokenizer has no such token (no single "_" token, no EOS).
        ValueError: If ``strategy`` is not one of blank, eos, mask.
    """
    if strategy == "blank":
        tok_id = tokenizer.convert_tokens_to_ids("_")
        if tok_id is None or tok_id == tokenizer.unk_token_id:
            ids = tokenizer("_", add_special_tokens=False)["input_ids"]
            if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:  # masking with UNK is no blank
                raise DataError(
                    f"mask_token: blank needs a single '_' token, but this tokenizer splits '_' into {ids}; "
                    "use mask_token: eos or mask_token: mask"
                )
            tok_id = ids[0]
        return int(tok_id)
    if strategy == "eos":
        if tokenizer.eos_token_id is None:
            raise DataError("mask_token: eos, but the tokenizer has no EOS token; use blank or mask")
        return int(tokenizer.eos_token_id)
    if strategy == "mask":
        if tokenizer.mask_token_id is None:
            tokenizer.add_special_tokens({"mask_token": "<mask>"})
        return int(tokenizer.mask_token_id)
    raise ValueError(f"mask_token = {strategy!r}: must be one of blank, eos, mask")


class MNTPCollator:
    """Pad blocks and mask tokens for masked next-token prediction.

    Each real token except the first is chosen with probability ``mask_probability`` (special
    tokens such as BOS/EOS are never chosen). A chosen token is replaced by ``mask_token_id`` with
    probability ``replace_with_mask``, by a random token with probability ``replace_with_random``,
    and kept otherwise (BERT's 80/10/10 rule, which LLM2Vec's MNTP inherits from its MLM collator).
    ``labels`` hold the original token at chosen positions and -100 elsewhere. Every row with a
    maskable token gets at least one, so no batch has an empty loss.

    Args:
        tokenizer: gives the pad id, special tokens and vocabulary size.
        mask_probability: fraction of tokens chosen, in (0, 1).
        mask_token_id: the id that replaces chosen tokens (see :func:`mask_token_id`).
        replace_with_mask: share of chosen tokens replaced by the mask id.
        replace_with_random: share of chosen tokens replaced by a random token.

    Inputs:
        ``collator(blocks, generator)``: blocks of token ids (lengths may differ) and a
        ``torch.Generator`` that makes the masking reproducible.

    Returns:
        dict with ``input_ids``, ``attention_mask``, ``labels``, each (batch, max_len) int64.
    """

    def __init__(
        self,
        tokenizer,
        mask_probability: float,
        mask_token_id: int,
        *,
        replace_with_mask: float = 0.8,
        replace_with_random: float = 0.1,
    ):
        if not 0 < mask_probability < 1:
            raise ValueError(f"mask_probability = {mask_probability}: must be in (0, 1)")
        if replace_with_mask < 0 or replace_with_random < 0 or replace_with_mask + replace_with_random > 1:
            raise ValueError(
                f"replace_with_mask = {replace_with_mask}, replace_with_random = {replace_with_random}: "
                "must be >= 0 and sum to at most 1"
            )
        self.mask_probability = mask_probability
        self.mask_token_id = int(mask_token_id)
        self.replace_with_mask = replace_with_mask
        self.replace_with_random = replace_with_random
        self.pad_token_id = pad_token_id(tokenizer)
        self.special_ids = sorted(
            {int(i) for i in getattr(tokenizer, "all_special_ids", []) if i is not None}
        )
        self.vocab_size = len(tokenizer)

    @classmethod
    def for_stage(cls, tokenizer, stage, mask_id: int) -> MNTPCollator:
        """The collator an :class:`~llm2vec_lite.recipe.MNTPStage` asks for (probability, replacement)."""
        if getattr(stage, "mask_replacement", "bert") == "all":
            return cls(
                tokenizer, stage.mask_probability, mask_id, replace_with_mask=1.0, replace_with_random=0.0
            )
        return cls(tokenizer, stage.mask_probability, mask_id)

    def __call__(self, blocks: Sequence[Sequence[int]], generator: torch.Generator | None = None) -> dict:
        if not blocks:
            raise ValueError("MNTPCollator got an empty batch")
        max_len = max(len(b) for b in blocks)
        input_ids = torch.full((len(blocks), max_len), self.pad_token_id, dtype=torch.long)  # (B, T)
        attention_mask = torch.zeros((len(blocks), max_len), dtype=torch.long)  # (B, T)
        for i, block in enumerate(blocks):
            input_ids[i, : len(block)] = torch.tensor(list(block), dtype=torch.long)
            attention_mask[i, : len(block)] = 1

        maskable = attention_mask.bool()
        maskable[:, 0] = False  # no position before the first token to predict it from
        if self.special_ids:
            maskable &= ~torch.isin(input_ids, torch.tensor(self.special_ids, dtype=torch.long))

        draw = torch.rand(input_ids.shape, generator=generator)  # (B, T)
        chosen = (draw < self.mask_probability) & maskable
        # Guarantee one label per row that has something to mask: pick its lowest draw.
        empty = ~chosen.any(dim=1) & maskable.any(dim=1)
        if empty.any():
            best = draw.masked_fill(~maskable, 2.0).argmin(dim=1)  # (B,)
            rows = empty.nonzero(as_tuple=True)[0]
            chosen[rows, best[rows]] = True

        labels = torch.full_like(input_ids, -100)
        labels[chosen] = input_ids[chosen]

        how = torch.rand(input_ids.shape, generator=generator)  # (B, T)
        to_mask = chosen & (how < self.replace_with_mask)
        to_random = (
            chosen
            & (how >= self.replace_with_mask)
            & (how < self.replace_with_mask + self.replace_with_random)
        )
        masked = input_ids.clone()
        masked[to_mask] = self.mask_token_id
        if to_random.any():
            random_ids = torch.randint(self.vocab_size, input_ids.shape, generator=generator)
            masked[to_random] = random_ids[to_random]
        return {"input_ids": masked, "attention_mask": attention_mask, "labels": labels}
