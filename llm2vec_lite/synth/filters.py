"""Turn raw generator answers into clean examples, and decide which examples to keep.

- Parsing is tolerant: :func:`parse_json_example` finds a JSON object anywhere in an answer
  (code fences, chatter around it, trailing commas, single quotes, synonyms of the keys), and
  :func:`clean_field` turns a field-by-field answer into one text (a repeated label such as
  ``Query:``, a "Sure, here is" preamble and surrounding quotes are removed).
- :func:`check_example` applies the length, language and sanity checks and returns the reason to
  drop, or None.
- :class:`NearDuplicateIndex` drops exact and near-duplicate examples (MinHash with banded LSH
  over word 3-grams, confirmed by the exact Jaccard similarity).
- :class:`Decontaminator` drops examples that share a run of ``n`` words with any text of the
  ``exclude:`` files (e.g. the STS sets), or that contain a whole shorter exclude text;
  :func:`template_echo_checker` uses it to catch answers that copy the prompt's worked example.

Every drop has one reason from :data:`DROP_REASONS`; the run's summary counts them.

References: Broder 1997 (MinHash); Brown et al. 2020, arXiv:2005.14165, appendix C (n-gram
decontamination); Wang et al. 2023, arXiv:2401.00368 (the example fields).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "DROP_REASONS",
    "Decontaminator",
    "NearDuplicateIndex",
    "check_example",
    "clean_field",
    "has_answer_line",
    "is_repetitive",
    "is_search_task",
    "looks_like_language",
    "parse_json_example",
    "parse_task_list",
    "template_echo_checker",
    "words",
]

DROP_REASONS = (
    "unparseable",  # no usable text for a field
    "too_short",
    "too_long",
    "language",
    "degenerate",  # fields copy each other, or a template placeholder leaked into the text
    "repetitive",  # a field loops ("the village watching the sea, and the sea watching the village, ...")
    "echo",  # a field copies the prompt's own worked example (small models do)
    "duplicate",
    "near_duplicate",
    "contaminated",
)

_WORD = re.compile(r"\w+", re.UNICODE)
_KEY_SYNONYMS = {
    "query": ("query", "user_query", "question", "input", "sentence1", "s1", "anchor", "sentence_1"),
    "positive": ("positive", "positive_document", "positive_doc", "document", "answer", "sentence2", "s2",
                 "sentence_2", "pos"),
    "negative": ("negative", "hard_negative", "hard_negative_document", "negative_document", "sentence3",
                 "s3", "sentence_3", "neg"),
}


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits, underscore), the unit of every length and n-gram check."""
    return _WORD.findall(text.lower())


# ------------------------------------------------------------------------------------------
# Parsing
# ------------------------------------------------------------------------------------------


def parse_json_example(text: str, fields: Iterable[str] = ("query", "positive", "negative")) -> dict[str, str] | None:
    """The first JSON object in ``text`` that has every field (under its name or a synonym).

    Repairs what small models commonly get wrong: code fences, text before or after the object,
    trailing commas, single-quoted strings, an unclosed final brace. Returns None if no object
    with all fields can be read.
    """
    fields = list(fields)
    for candidate in _json_candidates(text):
        obj = _loads_lenient(candidate)
        if not isinstance(obj, dict):
            continue
        lowered = {str(k).strip().lower().replace(" ", "_"): v for k, v in obj.items()}
        out: dict[str, str] = {}
        for name in fields:
            for key in _KEY_SYNONYMS.get(name, (name,)):
                value = lowered.get(key)
                if isinstance(value, (str, int, float)) and str(value).strip():
                    out[name] = " ".join(str(value).split())
                    break
        if len(out) == len(fields):
            return out
    return None


def _json_candidates(text: str) -> list[str]:
    """Balanced ``{...}`` spans of ``text`` (outermost first), plus the tail after an unclosed ``{``."""
    spans, depth, start, in_str, esc, quote = [], 0, -1, False, False, ""
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == quote:
                in_str = False
            continue
        if ch == '"' and depth > 0:
            in_str, quote = True, ch
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    if depth > 0 and start >= 0:  # cut off by max_new_tokens or a missing brace
        tail = text[start:].rstrip().rstrip(",")
        spans.append(tail + ('"' if in_str else "") + "}" * depth)
    return spans


def _loads_lenient(candidate: str) -> Any:
    try:
        return json.loads(candidate)
    except json.JSONDecodeError:
        pass
    fixed = re.sub(r",\s*([}\]])", r"\1", candidate)  # trailing commas
    fixed = re.sub(r"(?<=[{,\s])'([^'\n]*?)'\s*:", r'"\1":', fixed)  # 'key':
    fixed = re.sub(r":\s*'([^'\n]*?)'(\s*[,}])", lambda m: ": " + json.dumps(m.group(1)) + m.group(2), fixed)
    fixed = fixed.replace("\n", " ")  # raw newlines inside strings
    try:
        return json.loads(fixed)
    except json.JSONDecodeError:
        return None


_PREAMBLE = re.compile(
    r"^(sure|certainly|of course|here is|here's|here are|okay|ok)\b[^\n]*[:!.]\s*$", re.IGNORECASE
)
# "Awesome! Here is a search query: "how to ..."": a preamble on the answer's own line. It must
# say "here is/are" so that a sentence such as "Great views: ..." is left alone.
_INLINE_PREAMBLE = re.compile(
    r"^(?:(?:sure|certainly|of course|absolutely|awesome|great|okay|ok)\b[^:\n]{0,40}?)?"
    r"\bhere(?: is|'s| are)\b[^:\n]{0,80}:\s*(?=\S)",
    re.IGNORECASE,
)
_LABEL = re.compile(r"^\s*[\*#_]*\s*([A-Za-z][A-Za-z _-]{0,30}?)\s*[\*_]*\s*:[\*_]*\s*", re.UNICODE)
_QUOTES = "\"'`“”‘’"


def has_answer_line(text: str) -> bool:
    """Whether ``text`` holds a finished line that is an answer (not blank, not a preamble).

    Generation of a one-line field stops here: "Sure, here is a passage:" followed by a newline
    is not the answer yet (a 135M chat model opens 1 in 8 passages that way).
    """
    *finished, _ = text.replace("\r", "").split("\n")
    return any(line.strip() and not _PREAMBLE.match(line.strip()) for line in finished)


def clean_field(text: str, *, labels: Iterable[str] = (), one_line: bool = True) -> str:
    """One field's text from a field-by-field answer.

    Drops blank lines and preamble lines ("Sure, here is a query:") or a preamble that ends in a
    colon on the answer's own line ("Awesome! Here is a query: ..."), then a leading label the
    model repeated (``Query:``, ``**Passage:**``; only those in ``labels``), surrounding quotes,
    and with ``one_line`` everything after the first line (a base model goes on with the next
    few-shot example there). Whitespace is collapsed. Returns '' if nothing is left.
    """
    wanted = {label.lower() for label in labels}
    lines = [line.strip() for line in text.replace("\r", "").split("\n")]
    lines = [line for line in lines if line]
    while lines and _PREAMBLE.match(lines[0]):
        lines = lines[1:]
    if not lines:
        return ""
    if one_line:
        lines = lines[:1]
    first = _INLINE_PREAMBLE.sub("", lines[0], count=1)
    m = _LABEL.match(first)
    if m and m.group(1).strip().lower() in wanted:
        first = first[m.end() :]
    lines[0] = first
    out = " ".join(" ".join(lines).split())
    while len(out) >= 2 and out[0] in _QUOTES and out[-1] in _QUOTES:
        out = out[1:-1].strip()
    if out and out[0] in _QUOTES and out.count(out[0]) == 1:
        out = out[1:].strip()
    return out


_SEARCH_VERB = re.compile(
    r"\b(retriev\w*|find\w*|search\w*|look\w*|locat\w*|discover\w*|identif\w*|recommend\w*|match\w*"
    r"|answer\w*|get|gets|getting|fetch\w*|browse\w*|query|queries)\b",
    re.IGNORECASE,
)


def is_search_task(task: str) -> bool:
    """Whether a brainstormed line describes a search (it names an act of finding something).

    Small models answer a brainstorm with topic headings ("History of Ancient Civilizations",
    "Sports: football, rugby") or talk about themselves; neither is a task an instruction can say.
    """
    return bool(_SEARCH_VERB.search(task))


_BULLET = re.compile(r"^\s*(?:[-*•]+|\(?\d{1,3}[.):]|[a-z][.)])\s*")


def parse_task_list(text: str, *, min_words: int = 4, max_words: int = 40) -> list[str]:
    """Task descriptions from a brainstorm answer: one a line, bullets and numbering removed.

    Lines that are too short or long to be a task sentence ("Tasks:", a paragraph) are skipped;
    a JSON list of strings is read too.
    """
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
            if isinstance(items, list):
                text = "\n".join(str(x) for x in items if isinstance(x, (str, int, float)))
        except json.JSONDecodeError:
            pass
    out = []
    for line in text.split("\n"):
        line = _BULLET.sub("", line).strip().strip(_QUOTES).strip()
        if line.endswith(":") or not line:
            continue
        if min_words <= len(words(line)) <= max_words:
            out.append(" ".join(line.split()))
    return out


# ------------------------------------------------------------------------------------------
# Checks
# ------------------------------------------------------------------------------------------

_EN_STOPWORDS = frozenset(
    ["the", "a", "an", "of", "to", "and", "in", "is", "are", "was", "were", "be", "for", "on", "with", "as", "at", "by", "from", "that", "this", "it", "its", "or", "not", "how", "what", "why", "when", "where", "which", "who", "do", "does", "can", "i", "you", "he", "she", "they", "we", "my", "your", "his", "her", "their"]
)


def looks_like_language(text: str, language: str) -> bool:
    """A cheap language check: mostly Latin letters and, from 6 words on, English stopwords.

    Only ``"en"`` is known. It rejects other scripts, code-like or symbol soup and long
    stopword-free word salad; it is a filter against broken generations, not a language identifier.
    """
    if language != "en":
        raise ValueError(f"language {language!r}: only 'en' is known")
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return False
    latin = sum(1 for c in letters if c.isascii())
    if latin / len(letters) < 0.9 or len(letters) / max(len(text.replace(" ", "")), 1) < 0.6:
        return False
    tokens = words(text)
    if len(tokens) < 6:
        return True
    return sum(t in _EN_STOPWORDS for t in tokens) / len(tokens) >= 0.08


_PLACEHOLDER = re.compile(r"\$\{?[a-z_]+\}?|\{(?:task|query|positive|negative)\}")


def check_example(
    example: dict[str, str],
    *,
    min_words: int,
    max_words: int,
    language: str | None,
    constraints: dict[str, str] | None = None,
) -> str | None:
    """The reason to drop ``example`` (one of :data:`DROP_REASONS`), or None to keep it.

    Checks each of query, positive, negative: present, ``min_words`` to ``max_words`` words, the
    language; then that no two fields are the same text, that no template placeholder and no
    sampled length (a ``constraints`` value with a digit: "30 to 50 words") leaked into the text,
    and that no field loops (:func:`is_repetitive`).
    """
    texts = [example.get(k, "") for k in ("query", "positive", "negative")]
    if any(not t.strip() for t in texts):
        return "unparseable"
    counts = [len(words(t)) for t in texts]
    if min(counts) < min_words:
        return "too_short"
    if max(counts) > max_words:
        return "too_long"
    if language and not all(looks_like_language(t, language) for t in texts):
        return "language"
    normal = [" ".join(words(t)) for t in texts]
    if len(set(normal)) < 3 or any(_PLACEHOLDER.search(t) for t in texts):
        return "degenerate"
    lengths = [v.lower() for v in (constraints or {}).values() if any(c.isdigit() for c in v)]
    if any(v in t.lower() for v in lengths for t in texts):
        return "degenerate"
    if any(is_repetitive(t) for t in texts):
        return "repetitive"
    return None


def is_repetitive(text: str, *, min_words: int = 12, min_distinct: float = 0.6) -> bool:
    """Whether ``text`` loops: under ``min_distinct`` of its word 3-grams are distinct.

    Small models fall into loops at temperature 0.7 ("The Daily Mail - The Daily Mail - ...");
    the other filters pass such text. Natural sentences of 12+ words repeat almost no 3-gram.
    """
    tokens = [w.lower() for w in words(text)]
    if len(tokens) < min_words:
        return False
    grams = list(zip(tokens, tokens[1:], tokens[2:], strict=False))  # the shorter slices end it
    return len(set(grams)) < min_distinct * len(grams)


# ------------------------------------------------------------------------------------------
# Duplicates
# ------------------------------------------------------------------------------------------


_PRIME = (1 << 61) - 1  # Mersenne prime modulus of the universal hashes


def _shingles(text: str, k: int = 3) -> set[str]:
    tokens = words(text)
    if len(tokens) < k:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i : i + k]) for i in range(len(tokens) - k + 1)}


class NearDuplicateIndex:
    """Exact and near-duplicate detection over a growing set of texts.

    Exact: the normalised word sequence. Near: MinHash signatures (``bands * rows`` hashes of word
    3-grams) bucketed by band, so only texts sharing a band are compared; a candidate counts when
    its exact 3-gram Jaccard similarity is >= ``threshold``. With 16 bands of 4 rows a pair at
    Jaccard 0.8 shares a band with probability 1 - (1 - 0.8**4)**16 > 0.999.
    """

    def __init__(self, threshold: float = 0.8, bands: int = 16, rows: int = 4):
        self.threshold = threshold
        self.bands, self.rows = bands, rows
        self._exact: set[str] = set()
        self._buckets: dict[tuple[int, bytes], list[int]] = {}
        self._sets: list[set[str]] = []
        rng = random.Random(0x5EED)  # fixed: signatures must not change between runs (resume)
        self._perms = [(rng.randrange(1, _PRIME), rng.randrange(_PRIME)) for _ in range(bands * rows)]

    def __len__(self) -> int:
        return len(self._sets)

    def _signature(self, shingles: set[str]) -> list[int]:
        # One 64-bit hash per shingle, then bands * rows universal hashes (a * h + b) mod p of it.
        hashes = [int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "little")
                  for s in shingles]
        return [min((a * h + b) % _PRIME for h in hashes) for a, b in self._perms]

    def check(self, text: str) -> str | None:
        """``"duplicate"``, ``"near_duplicate"`` or None, without adding ``text``."""
        key = " ".join(words(text))
        if key in self._exact:
            return "duplicate"
        shingles = _shingles(text)
        if not shingles:
            return None
        for band_key in self._band_keys(shingles):
            for idx in self._buckets.get(band_key, ()):
                other = self._sets[idx]
                if len(shingles & other) / len(shingles | other) >= self.threshold:
                    return "near_duplicate"
        return None

    def add(self, text: str) -> None:
        """Remember ``text`` so later copies and near-copies of it are caught."""
        self._exact.add(" ".join(words(text)))
        shingles = _shingles(text)
        idx = len(self._sets)
        self._sets.append(shingles)
        if shingles:
            for band_key in self._band_keys(shingles):
                self._buckets.setdefault(band_key, []).append(idx)

    def _band_keys(self, shingles: set[str]) -> list[tuple[int, bytes]]:
        sig = self._signature(shingles)
        r = self.rows
        return [
            (b, hashlib.blake2b(str(sig[b * r : (b + 1) * r]).encode(), digest_size=8).digest())
            for b in range(self.bands)
        ]


# ------------------------------------------------------------------------------------------
# Decontamination
# ------------------------------------------------------------------------------------------


class Decontaminator:
    """Flags texts that share a run of ``n`` words with any protected text.

    A protected text shorter than ``n`` words (most STS sentences have about 10) is matched as a
    whole, when it has at least ``min_whole`` words, so copying a short STS sentence verbatim is
    caught as well; shorter fragments ("A man.") would match innocent text and are ignored.
    """

    def __init__(self, texts: Iterable[str] = (), n: int = 8, min_whole: int = 5):
        self.n, self.min_whole = n, min_whole
        self._grams: set[tuple[str, ...]] = set()
        self._whole: dict[int, set[tuple[str, ...]]] = {}
        self.sources: list[str] = []
        for text in texts:
            self.add(text)

    def add(self, text: str) -> None:
        """Protect ``text``."""
        tokens = tuple(words(text))
        if len(tokens) >= self.n:
            self._grams.update(tokens[i : i + self.n] for i in range(len(tokens) - self.n + 1))
        elif len(tokens) >= self.min_whole:
            self._whole.setdefault(len(tokens), set()).add(tokens)

    def __len__(self) -> int:
        return len(self._grams) + sum(len(v) for v in self._whole.values())

    def contaminated(self, text: str) -> bool:
        """True if ``text`` shares an ``n``-word run, or contains a whole short protected text."""
        tokens = tuple(words(text))
        n = self.n
        if any(tokens[i : i + n] in self._grams for i in range(len(tokens) - n + 1)):
            return True
        for length, grams in self._whole.items():
            if any(tokens[i : i + length] in grams for i in range(len(tokens) - length + 1)):
                return True
        return False

    @classmethod
    def from_files(cls, paths: Iterable[str | Path], n: int = 8) -> Decontaminator:
        """Protect every text cell of each file (txt, tsv, csv, jsonl, parquet).

        Raises:
            DataError: If a file is missing or cannot be read.
        """
        from llm2vec_lite.data import read_table
        from llm2vec_lite.recipe import DataSource

        dec = cls(n=n)
        for path in paths:
            source = DataSource(path=str(path), format=None if Path(path).suffix else "txt")
            source._origin = f"exclude file {path}"
            _, rows = read_table(source)
            for row in rows:
                cells = row.values() if isinstance(row, dict) else [row]
                for cell in cells:
                    if isinstance(cell, str):
                        dec.add(cell)
            dec.sources.append(str(path))
        return dec


_TEMPLATE_VAR = re.compile(r"\$\{?\w+\}?")


def template_echo_checker(templates: Iterable[str], n: int = 5) -> Decontaminator:
    """A :class:`Decontaminator` over the fixed text of prompt templates (their worked examples).

    Each template line is cut at its ``$placeholders`` so no protected run spans a filled-in
    value; an answer sharing ``n`` words with the fixed text (or containing a whole fixed fragment
    of 5+ words) copied the prompt instead of answering it.
    """
    dec = Decontaminator(n=n)
    for text in templates:
        for line in text.split("\n"):
            for fragment in _TEMPLATE_VAR.split(line):
                dec.add(fragment)
    return dec
