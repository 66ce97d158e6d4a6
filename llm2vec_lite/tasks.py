"""Local evaluation tasks: find them in a folder, read them, and refuse malformed ones early.

A task is one of four types, each a layout people already use:

- **retrieval**: a BEIR folder: ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl``
  (``_id``, ``text``) and ``qrels.tsv`` (header ``query-id  corpus-id  score``; pairs with score >= 1
  are relevant, graded scores are kept for nDCG).
- **classification**: a folder with ``train.tsv`` and ``test.tsv``, columns ``text`` and ``label``.
- **clustering**: one TSV with columns ``text`` and ``label``.
- **sts**: one TSV with columns ``sentence1``, ``sentence2``, ``score``.

A *suite* is a folder holding ``retrieval/<name>/``, ``classification/<name>/``,
``clustering/<name>.tsv`` and ``sts/<name>.tsv`` (any of them may be missing). Everything here is
plain Python: a task folder is read and checked completely, and a bad one raises
:class:`~llm2vec_lite.errors.DataError` naming the file and line, before any model is loaded.
:mod:`llm2vec_lite.suite` turns the loaded tasks into MTEB tasks and scores them.

Each task carries a one-sentence instruction (E5 style: what the query side is for). Known dev
tasks have their own (:data:`TASK_INSTRUCTIONS`); others get their type's default; a mapping
passed to :func:`load_tasks` overrides both.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from llm2vec_lite.errors import DataError

__all__ = [
    "TASK_INSTRUCTIONS",
    "TASK_TYPES",
    "TYPE_INSTRUCTIONS",
    "LocalTask",
    "detect_type",
    "discover_suite",
    "load_task",
    "load_tasks",
    "sts_task",
]

TaskType = Literal["retrieval", "classification", "clustering", "sts"]
TASK_TYPES: tuple[TaskType, ...] = ("retrieval", "classification", "clustering", "sts")
RETRIEVAL_FILES = ("corpus.jsonl", "queries.jsonl", "qrels.tsv")

# What the query side of each type is for, when a task has no instruction of its own.
TYPE_INSTRUCTIONS: dict[str, str] = {
    "retrieval": "Given a query, retrieve documents that answer it",
    "classification": "Classify the given text",
    "clustering": "Identify the topic of the given text",
    "sts": "Retrieve semantically similar text",
}
# The dev suite's tasks (../shared/data/dev), phrased as E5-mistral phrases MTEB's.
TASK_INSTRUCTIONS: dict[str, str] = {
    "cranfield": "Given a question about aeronautics, retrieve paper abstracts that answer it",
    "cisi": "Given a question about library and information science, retrieve relevant paper abstracts",
    "cacm": "Given a question about computer science, retrieve relevant article titles and abstracts",
    "npl": "Given a question about electronics or electrical engineering, retrieve relevant abstracts",
    "trec6": "Classify the type of answer a question asks for",
    "sst2": "Classify the sentiment of a movie review sentence as positive or negative",
    "agnews": "Classify the topic of a news article",
    "20ng-subjects": "Identify the newsgroup of a Usenet post from its subject line",
    "stsb": "Retrieve semantically similar text",
    "stsb-dev": "Retrieve semantically similar text",
}


@dataclass
class LocalTask:
    """One task read from disk, checked, ready to score.

    Attributes:
        name: the folder or file stem (``cranfield``, ``trec6``...).
        type: ``retrieval``, ``classification``, ``clustering`` or ``sts``.
        path: the folder (retrieval, classification) or file (clustering, sts).
        instruction: the query-side task instruction (plain sentence, no template).
        data: the rows. retrieval: ``corpus`` (list of dicts ``id``/``title``/``text``),
            ``queries`` (``id``/``text``), ``qrels`` (``{query_id: {doc_id: score}}``);
            classification: ``train`` and ``test``, each ``{"text": [...], "label": [...]}``;
            clustering: ``{"text": [...], "label": [...]}``; sts: ``{"sentence1", "sentence2", "score"}``.
    """

    name: str
    type: TaskType
    path: Path
    instruction: str
    data: dict[str, Any] = field(repr=False)

    @property
    def size(self) -> str:
        """A short description of the task's size for logs and tables."""
        d = self.data
        if self.type == "retrieval":
            return f"{len(d['corpus'])} docs, {len(d['queries'])} queries"
        if self.type == "classification":
            return f"{len(d['train']['text'])} train / {len(d['test']['text'])} test"
        if self.type == "clustering":
            return f"{len(d['text'])} texts, {len(set(d['label']))} labels"
        return f"{len(d['score'])} pairs"


# ---------------------------------------------------------------------------------------------
# finding tasks


def detect_type(path: str | Path) -> TaskType:
    """Which task type a folder or file holds, from its files and header.

    Raises:
        DataError: If the path does not exist or matches no task layout.
    """
    p = Path(path)
    if p.is_dir():
        names = {c.name for c in p.iterdir()}
        if "corpus.jsonl" in names or "queries.jsonl" in names or "qrels.tsv" in names:
            return "retrieval"
        if "train.tsv" in names or "test.tsv" in names:
            return "classification"
        raise DataError(
            f"{p}: not a task folder: a retrieval task holds {', '.join(RETRIEVAL_FILES)}; a "
            "classification task holds train.tsv and test.tsv (columns text, label); a suite holds "
            "retrieval/, classification/, clustering/ or sts/ (use --suite for a suite)"
        )
    if not p.is_file():
        raise DataError(f"{p}: no such task file or folder")
    header = _header(p)
    if {"sentence1", "sentence2", "score"} <= set(header):
        return "sts"
    if {"text", "label"} <= set(header):
        return "clustering"
    raise DataError(
        f"{p}:1: a task file needs the columns text<TAB>label (clustering) or "
        f"sentence1<TAB>sentence2<TAB>score (STS); its header is {header}"
    )


def discover_suite(folder: str | Path) -> list[tuple[TaskType, Path]]:
    """Every task in a suite folder, in type order, then by name.

    Raises:
        DataError: If the folder does not exist or holds no task.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: no such suite folder")
    found: list[tuple[TaskType, Path]] = []
    for kind in TASK_TYPES:
        sub = root / kind
        if not sub.is_dir():
            continue
        if kind in ("retrieval", "classification"):
            found += [(kind, d) for d in sorted(sub.iterdir()) if d.is_dir()]
        else:
            found += [(kind, f) for f in sorted(sub.glob("*.tsv")) if not f.name.endswith("-train.tsv")]
    if not found:
        raise DataError(
            f"{root}: no task found; a suite folder holds retrieval/<name>/, classification/<name>/, "
            "clustering/<name>.tsv or sts/<name>.tsv"
        )
    return found


def load_tasks(
    paths: Iterable[str | Path] = (),
    *,
    suite: str | Path | None = None,
    instructions: Mapping[str, str] | None = None,
) -> list[LocalTask]:
    """Read and check the tasks of a suite folder and of single task paths, in that order.

    Raises:
        DataError: On the first malformed task, naming its file and line.
    """
    found: list[tuple[TaskType | None, Path]] = list(discover_suite(suite)) if suite is not None else []
    found += [(None, Path(p)) for p in paths]
    tasks = [load_task(p, kind=kind, instructions=instructions) for kind, p in found]
    # One name may be two tasks of different types (20 Newsgroups classified and clustered): the
    # report keys them "name (type)". Two tasks of one type and name cannot be told apart.
    names = [t.name for t in tasks]
    for task in tasks:
        if names.count(task.name) > 1:
            task.name = f"{task.name} ({task.type})"
    keys = [t.name for t in tasks]
    dupes = sorted({n for n in keys if keys.count(n) > 1})
    if dupes:
        raise DataError(f"two tasks share the name {', '.join(dupes)}; rename a folder or file")
    return tasks


def load_task(
    path: str | Path, *, kind: TaskType | None = None, instructions: Mapping[str, str] | None = None
) -> LocalTask:
    """Read and check one task (its type detected from its files unless given)."""
    p = Path(path)
    kind = kind or detect_type(p)
    name = p.name if p.is_dir() else p.stem
    readers = {
        "retrieval": _read_retrieval,
        "classification": _read_classification,
        "clustering": _read_labelled_file,
        "sts": _read_sts,
    }
    data = readers[kind](p)
    return LocalTask(name=name, type=kind, path=p, instruction=_instruction(name, kind, instructions), data=data)


def _instruction(name: str, kind: TaskType, instructions: Mapping[str, str] | None) -> str:
    """The task's instruction: the caller's for its name, else the built-in one, else its type's."""
    return (instructions or {}).get(name) or TASK_INSTRUCTIONS.get(name) or TYPE_INSTRUCTIONS[kind]


def sts_task(pairs: Any, instructions: Mapping[str, str] | None = None) -> LocalTask:
    """An STS set loaded by :func:`llm2vec_lite.evaluate.load_sts_suite` as a suite task."""
    data = {"sentence1": list(pairs.sentence1), "sentence2": list(pairs.sentence2), "score": list(pairs.scores)}
    return LocalTask(
        name=pairs.name, type="sts", path=Path(str(pairs.source)),
        instruction=_instruction(pairs.name, "sts", instructions), data=data,
    )


# ---------------------------------------------------------------------------------------------
# readers


def _header(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return f.readline().rstrip("\r\n").split("\t")


def _tsv_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) for each data line of a TSV, its header checked for ``required``."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\r\n").split("\t")
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"{path}:1: missing column(s) {', '.join(missing)}; the header is {header}")
        for lineno, line in enumerate(f, start=2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            cells = line.split("\t")
            if len(cells) != len(header):
                raise DataError(f"{path}:{lineno}: {len(cells)} fields, the header has {len(header)}")
            yield lineno, dict(zip(header, cells, strict=True))


def _jsonl(path: Path, required: tuple[str, ...]) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DataError(f"{path}: no such file (a retrieval task holds {', '.join(RETRIEVAL_FILES)})")
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict) or any(k not in row for k in required):
                raise DataError(f"{path}:{lineno}: expected a JSON object with {', '.join(required)}")
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: empty; a retrieval task needs at least one row here")
    return rows


def _read_retrieval(folder: Path) -> dict[str, Any]:
    corpus = [
        {"id": str(r["_id"]), "title": str(r.get("title") or ""), "text": str(r.get("text") or "")}
        for r in _jsonl(folder / "corpus.jsonl", ("_id",))
    ]
    queries = [{"id": str(r["_id"]), "text": str(r["text"])} for r in _jsonl(folder / "queries.jsonl", ("_id", "text"))]
    doc_ids = {d["id"] for d in corpus}
    query_ids = {q["id"] for q in queries}
    qrels_path = folder / "qrels.tsv"
    qrels: dict[str, dict[str, int]] = {}
    for lineno, row in _tsv_rows(qrels_path, ("query-id", "corpus-id", "score")):
        q, d = row["query-id"], row["corpus-id"]
        if q not in query_ids:
            raise DataError(f"{qrels_path}:{lineno}: query-id {q!r} is not in queries.jsonl")
        if d not in doc_ids:
            raise DataError(f"{qrels_path}:{lineno}: corpus-id {d!r} is not in corpus.jsonl")
        try:
            score = int(float(row["score"]))
        except ValueError:
            raise DataError(f"{qrels_path}:{lineno}: score {row['score']!r} is not a number") from None
        qrels.setdefault(q, {})[d] = score
    if not any(s >= 1 for docs in qrels.values() for s in docs.values()):
        raise DataError(f"{qrels_path}: no relevant pair (score >= 1); nothing to score")
    # MTEB scores only queries with a judgment; the table's query count says the same.
    queries = [q for q in queries if q["id"] in qrels]
    return {"corpus": corpus, "queries": queries, "qrels": qrels}


def _read_labelled_file(path: Path) -> dict[str, list[str]]:
    text: list[str] = []
    label: list[str] = []
    for _, row in _tsv_rows(path, ("text", "label")):
        text.append(row["text"])
        label.append(row["label"])
    if not text:
        raise DataError(f"{path}: no rows")
    if len(set(label)) < 2:
        raise DataError(f"{path}: only one label ({label[0]!r}); a task needs at least two")
    return {"text": text, "label": label}


def _read_classification(folder: Path) -> dict[str, Any]:
    train = _read_labelled_file(folder / "train.tsv")
    test = _read_labelled_file(folder / "test.tsv")
    unseen = sorted(set(test["label"]) - set(train["label"]))
    if unseen:
        raise DataError(f"{folder / 'test.tsv'}: label(s) {', '.join(map(repr, unseen))} never occur in train.tsv")
    return {"train": train, "test": test}


def _read_sts(path: Path) -> dict[str, list[Any]]:
    from llm2vec_lite.evaluate import read_sts_tsv

    pairs = read_sts_tsv(path, name=path.stem)
    return {"sentence1": list(pairs.sentence1), "sentence2": list(pairs.sentence2), "score": list(pairs.scores)}
