"""Training data: readers for local files and hub datasets, MNTP packing and masking.

Readers turn a recipe's :class:`~llm2vec_lite.recipe.DataSource` (or a list of them, concatenated in
order) into plain Python lists, and fail with a :class:`~llm2vec_lite.errors.DataError` that names
the file, the recipe field and what was found *before* any training starts:

- :func:`read_texts` - one text per example (MNTP, SimCSE).
- :func:`read_rows` - tuples of columns, e.g. ``("anchor", "positive", "negative")`` (supervised).
- :func:`read_instructed_rows` - the same rows, each with the query and document instruction it
  gets: a row's own ``instruction_column`` cell, else its source's, else the stage's.

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
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from llm2vec_lite.errors import DataError
from llm2vec_lite.recipe import DataSource

logger = logging.getLogger(__name__)

__all__ = [
    "InstructedRow",
    "MNTPCollator",
    "mask_token_id",
    "pack_texts",
    "read_instructed_rows",
    "read_rows",
    "read_table",
    "read_texts",
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


# ------------------------------------------------------------------------------------------
# Reading one source into a table
# ------------------------------------------------------------------------------------------


def read_table(source: DataSource) -> tuple[list[str], list[dict[str, Any]] | list[str]]:
    """Read one source as ``(column_names, rows)``.

    For a ``.txt`` file the columns are ``["text"]`` and the rows are the raw lines; for every other
    format the rows are dicts keyed by column. ``limit`` is *not* applied here.

    Raises:
        DataError: If the file is missing or unreadable, or the hub dataset cannot be loaded.
    """
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
            return _read_delimited(path, fmt)
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


def _read_delimited(path: Path, fmt: str) -> tuple[list[str], list[dict[str, Any]]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with path.open(encoding="utf-8", newline="") as f:
        # Our TSVs are unquoted: a double quote is literal text (see shared/data/README.md).
        tsv = fmt == "tsv"
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if tsv else csv.reader(f)
        header = next(reader, None)
        if header is None:
            return [], []
        header = [h.strip() for h in header]
        # A short row leaves its last cells missing (read as empty, so the row is dropped later).
        rows = [
            dict(zip(header, values, strict=False)) for values in reader if any(v.strip() for v in values)
        ]
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
    if source.limit is not None and len(ds) > source.limit * 2:
        # Rows with empty fields are dropped later, so keep some slack over the limit.
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


def _pick_columns(source: DataSource, found: list[str], wanted: list[str]) -> list[str]:
    missing = [c for c in wanted if c not in found]
    if missing:
        hint = (
            f" Name the columns to use with data.columns (e.g. columns: {found[: len(wanted)]})."
            if len(found) >= len(wanted)
            else ""
        )
        raise DataError(
            f"{source.origin}: {source.describe()} has no column(s) {missing}; found {found}.{hint}"
        )
    return wanted


class InstructedRow(NamedTuple):
    """One supervised row and the instructions its sides get (None: no instruction).

    Attributes:
        texts: the row's cells, e.g. ``(anchor, positive, negative)``.
        query_instruction: put before the anchor.
        document_instruction: put before the positive and the negative.
    """

    texts: tuple[str, ...]
    query_instruction: str | None = None
    document_instruction: str | None = None


def read_rows(source: Sources, columns: list[str]) -> list[tuple[str, ...]]:
    """Read rows of ``len(columns)`` stripped strings from each source, concatenated in order.

    Args:
        source: one source or a list of them.
        columns: the column names the stage wants, e.g. ``["anchor", "positive", "negative"]``. A
            source's own ``columns`` replace these by position (``[query, pos, neg]`` is read as
            anchor, positive, negative); a ``.txt`` source can only give one column.

    Returns:
        Tuples in file order. Rows with an empty field are dropped (and counted in the log).
        Each source's ``limit`` caps the rows kept from it.

    Raises:
        DataError: If a file is missing, a column is missing (the message lists the columns found),
            or no rows are left.
    """
    return [row.texts for row in read_instructed_rows(source, columns)]


def read_instructed_rows(
    source: Sources,
    columns: list[str],
    *,
    query_instruction: str | None = None,
    document_instruction: str | None = None,
) -> list[InstructedRow]:
    """:func:`read_rows`, each row with the instructions its query and documents get.

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
        wanted = list(src.columns[: len(columns)]) if src.columns else list(columns)
        if len(wanted) < len(columns):
            raise DataError(
                f"{src.origin}.columns = {src.columns}: names {len(wanted)} column(s), "
                f"this stage reads {len(columns)} ({', '.join(columns)})"
            )
        found, rows = read_table(src)
        query = _first_set(src.query_instruction, query_instruction)
        document = _first_set(src.document_instruction, document_instruction)
        n = len(wanted)
        for cells in _extract(src, found, rows, wanted, src.instruction_column):
            own = _row_instruction(src, cells[n]) if len(cells) > n else None  # instruction_column
            out.append(InstructedRow(cells[:n], _first_set(own, query), document))
    return out


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
    src: DataSource, found: list[str], rows: list[Any], wanted: list[str], optional: str | None = None
) -> list[tuple[str, ...]]:
    """Pick ``wanted`` columns from a table, drop rows with an empty field, apply ``limit``.

    With ``optional``, each tuple ends with that column's cell too (which may be empty).
    """
    if src.inferred_format() == "txt":
        if len(wanted) != 1:
            raise DataError(
                f"{src.origin}.path = {src.path}: a .txt file has one text a line, but this stage "
                f"reads {len(wanted)} columns ({', '.join(wanted)}); use a .tsv with a header line"
            )
        picked = [(_cell(line),) for line in rows]
    else:
        if optional and optional not in found:
            raise DataError(
                f"{src.origin}.instruction_column = {optional!r}: {src.describe()} has no such column; "
                f"found {found}"
            )
        names = _pick_columns(src, found, wanted) + ([optional] if optional else [])
        picked = [tuple(_cell(row.get(c)) for c in names) for row in rows]
    n = len(wanted)
    kept = [r for r in picked if all(r[:n])]
    if len(kept) < len(picked):
        logger.info("%s: dropped %d rows with an empty field", src.describe(), len(picked) - len(kept))
    if src.limit is not None:
        kept = kept[: src.limit]
    if not kept:
        raise DataError(
            f"{src.origin}: {src.describe()} gave no rows with non-empty {', '.join(wanted)} "
            f"({len(picked)} rows read). Check the file, its header line and data.columns."
        )
    return kept


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
        name = "text"
        if src.inferred_format() != "txt":
            name = src.columns[0] if src.columns else column
            if name is None:
                name = found[0] if len(found) == 1 else next((c for c in _TEXT_COLUMNS if c in found), None)
            if name is None:
                raise DataError(
                    f"{src.origin}: {src.describe()} has columns {found}; none is an obvious text "
                    "column. Name it with data.columns (e.g. columns: [text])."
                )
        out.extend(t for (t,) in _extract(src, found, rows, [name]))
    return out


# ------------------------------------------------------------------------------------------
# MNTP
# ------------------------------------------------------------------------------------------


def _adds_bos(tokenizer) -> bool:
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return len(ids) > 0 and ids[0] == bos


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
    bos = tokenizer.bos_token_id if _adds_bos(tokenizer) else None
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
            if len(ids) != 1:
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
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self.pad_token_id = int(pad)
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
