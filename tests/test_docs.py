"""The docs stay true to the tree: links resolve, quoted commands parse, named recipes and sections exist.

A reader copies commands out of README.md and docs/*.md and follows their links; a renamed
option, recipe, file or section breaks them silently. These checks read the pages as text:

- every relative Markdown link resolves to a file, and its ``#anchor`` (if any) to a heading of
  the target page, slugged the way GitHub renders it;
- every ``llm2vec-lite ...`` (or ``python -m llm2vec_lite ...``) command in a code block or a
  backtick span parses with the real argparse parser (built by ``llm2vec_lite.cli.build_parser``;
  nothing runs). Placeholders stay words (``MODEL``, ``RECIPE``), ``$(...)`` and ``<...>`` become a
  word, ``[optional parts]`` are taken as written out, ``a|b`` tries each choice;
- every recipe they name exists: a ``recipes/NAME.yaml`` path as a file, a bare lower-case NAME
  given to ``convert``/``recipe`` as a shipped recipe;
- every ``docs/PAGE.md, "Section"`` pointer in the docs, recipe comments and code names a heading
  of that page.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm2vec_lite.cli import build_parser
from llm2vec_lite.recipe import list_recipes

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`]+)`")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _split_fences(text: str) -> tuple[list[str], list[str]]:
    """(prose lines, code-block lines) of a Markdown page."""
    prose, code, inside = [], [], False
    for line in text.splitlines():
        if FENCE.match(line):
            inside = not inside
            continue
        (code if inside else prose).append(line)
    return prose, code


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation but ``-`` and ``_`` dropped, spaces to ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # a link in a heading keeps its text
    text = text.lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def headings(page: Path) -> list[str]:
    prose, _ = _split_fences(page.read_text(encoding="utf-8"))
    return [m.group(2).strip() for line in prose if (m := re.match(r"^(#{1,6})\s+(.*)$", line))]


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for h in headings(page):
        slug = github_slug(h)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_github_slug_matches_how_github_renders_headings():
    assert github_slug("The demo's supervised stage") == "the-demos-supervised-stage"
    assert github_slug("SmolLM2: whitening and three blocks") == "smollm2-whitening-and-three-blocks"
    assert (
        github_slug("sentence-transformers (`llm2vec_lite.integrations.sentence_transformers`)")
        == "sentence-transformers-llm2vec_liteintegrationssentence_transformers"
    )


def _paragraphs(page: Path) -> list[str]:
    """The prose of a page (code blocks left out) in blank-line separated paragraphs: a link or a
    backtick span may wrap onto the next line, never into the next paragraph."""
    prose, _ = _split_fences(page.read_text(encoding="utf-8"))
    return [p for p in re.split(r"\n\s*\n", "\n".join(prose)) if p.strip()]


def _links() -> Iterator[tuple[Path, str]]:
    for page in PAGES:
        for para in _paragraphs(page):
            for target in LINK.findall(CODE_SPAN.sub("", para)):
                if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                    yield page, target


@pytest.mark.parametrize(
    ("page", "target"), list(_links()), ids=lambda v: _rel(v) if isinstance(v, Path) else v
)
def test_relative_link_resolves(page: Path, target: str):
    path_part, _, anchor = target.partition("#")
    dest = (page.parent / path_part).resolve() if path_part else page
    assert dest.exists(), f"{_rel(page)}: link {target!r} points to a missing file"
    if anchor and dest.suffix == ".md":
        assert anchor in anchors(dest), (
            f"{_rel(page)}: link {target!r}: no heading with that anchor in {dest.name}"
        )


def test_links_are_found_and_a_missing_anchor_is_noticed():
    """The extraction sees the README's links, and a wrong anchor is not in the set it compares with."""
    targets = {t for p, t in _links() if p.name == "README.md"}
    assert "docs/results.md#current-figures" in targets
    assert "current-figures" in anchors(ROOT / "docs" / "results.md")
    assert "no-such-section" not in anchors(ROOT / "docs" / "results.md")


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------


def _replace_substitutions(text: str) -> str:
    """``$(...)`` (nested parentheses allowed) -> ``MODEL``: what the shell would put there."""
    out, i = [], 0
    while (start := text.find("$(", i)) != -1:
        depth, j = 0, start + 1
        while j < len(text):
            depth += {"(": 1, ")": -1}.get(text[j], 0)
            if depth == 0:
                break
            j += 1
        out.append(text[i:start] + "MODEL")
        i = j + 1
    return "".join(out) + text[i:]


ERROR_SPAN = re.compile(r"^llm2vec-lite( [\w-]+)?: error:")


def _command_texts(page: Path) -> Iterator[tuple[str, bool]]:
    """(shell text, expected to parse) for each code-block line and backtick span of a page.

    A table row that quotes a command-line refusal (`llm2vec-lite VERB: error: ...`, the bad-input
    table of errors.md) documents a command that is meant to fail; the quoted message is no command.
    """
    _, code = _split_fences(page.read_text(encoding="utf-8"))
    buf = ""
    for line in code:  # shell continuation lines
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        yield buf + line, True
        buf = ""
    for para in _paragraphs(page):
        for line in para.splitlines() if para.lstrip().startswith("|") else [para]:  # a table: row by row
            spans = [" ".join(span.replace("\\|", "|").split()) for span in CODE_SPAN.findall(line)]
            refused = line.lstrip().startswith("|") and any(ERROR_SPAN.match(s) for s in spans)
            for span in spans:
                if not ERROR_SPAN.match(span):
                    yield span, not refused


def _argv_of(text: str) -> Iterator[list[str]]:
    """Each llm2vec-lite argument list in a shell line (after the program name)."""
    if "llm2vec-lite" not in text and "llm2vec_lite" not in text:
        return
    text = _replace_substitutions(text)
    text = re.sub(r"<[^<>]+>", "PLACEHOLDER", text)
    text = re.sub(r"(?<![=\w])\[([^\[\]{}]*)\]", r"\1", text)  # [--flag] / [KEY=VALUE ...]: write it out
    try:
        words = shlex.split(text, comments=True)
    except ValueError:  # an unbalanced quote: prose in backticks, not a command
        return
    segment: list[str] = []
    for word in [*words, ";"]:
        if word in ("&&", "||", ";", "|"):
            yield from _program_args(segment)
            segment = []
        else:
            segment.append(word)


def _program_args(words: list[str]) -> Iterator[list[str]]:
    for i, w in enumerate(words):
        if w == "llm2vec-lite" or (w == "llm2vec_lite" and i > 0 and words[i - 1] == "-m"):
            args = words[i + 1 :]
            if args and args[0] != "...":  # "llm2vec-lite ..." stands for any command
                yield ["X" if a == "..." else a for a in args]
            return


def _choices(args: list[str]) -> Iterator[list[str]]:
    """``recipe check|ls|show``: one argument list per choice (the first alternated word only)."""
    for k, a in enumerate(args):
        if "|" in a and not a.startswith("-") and "=" not in a:
            for choice in a.split("|"):
                yield [*args[:k], choice, *args[k + 1 :]]
            return
    yield args


def _commands() -> Iterator[tuple[Path, list[str], bool]]:
    seen = set()
    for page in PAGES:
        for text, ok in _command_texts(page):
            for args in _argv_of(text):
                for argv in _choices(args):
                    if (page, tuple(argv)) not in seen:
                        seen.add((page, tuple(argv)))
                        yield page, argv, ok


def _subparser(argv: list[str]) -> tuple[argparse.ArgumentParser, int]:
    """The (sub)parser that reads ``argv`` past its verbs, and how many verb words there are."""
    parser, k = build_parser(), 0
    while k < len(argv):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or argv[k] not in subs[0].choices:
            break
        parser, k = subs[0].choices[argv[k]], k + 1
    return parser, k


def _fill_placeholders(argv: list[str]) -> list[str]:
    """Give an option whose value is a placeholder (``--num-layers N``, ``--pooling POOLING``) a valid value.

    A placeholder is an upper-case word; the value given is the option's first choice, else ``1``
    (a valid string, path or whole number). Positional placeholders (``MODEL``, ``RECIPE``) stay.
    """
    parser, _ = _subparser(argv)
    options = {s: a for a in parser._actions for s in a.option_strings}
    out = list(argv)
    for i in range(1, len(out)):
        action = options.get(out[i - 1])
        if action is not None and action.nargs != 0 and re.fullmatch(r"[A-Z][A-Z0-9_]*", out[i]):
            out[i] = str(action.choices[0]) if action.choices else "1"
    return out


def dry_parse(argv: list[str]):
    """Parse like ``llm2vec-lite`` does (overrides after flags allowed), without running anything.

    A bare verb (``recipe check``, named in prose) is checked with ``--help``. Returns the namespace
    (None for ``--help``); raises AssertionError with argparse's message when the words do not parse.
    """
    _, verbs = _subparser(argv)
    words = [*argv, "--help"] if verbs == len(argv) else _fill_placeholders(argv)
    parser = build_parser()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            args, extra = parser.parse_known_args(words)
    except SystemExit as e:
        if e.code == 0:  # --help / --version
            return None
        raise AssertionError(err.getvalue().strip().splitlines()[-1]) from None
    if extra and not (
        isinstance(getattr(args, "overrides", None), list) and not any(e.startswith("-") for e in extra)
    ):
        raise AssertionError(f"unrecognized arguments: {' '.join(extra)}")
    return args


COMMANDS = list(_commands())


def test_the_docs_quote_commands_and_the_dry_parse_refuses_bad_ones():
    assert len(COMMANDS) > 40
    verbs = {argv[0] for _, argv, _ in COMMANDS}
    assert {"convert", "eval", "encode", "recipe", "whiten"} <= verbs
    assert dry_parse(["eval", "MODEL", "--datasets", "stsb"]).datasets
    assert dry_parse(["eval", "MODEL", "--num-layers", "N", "--pooling", "POOLING"]).num_layers == 1
    assert dry_parse(["recipe", "check"]) is None  # a verb named in prose: --help
    for bad in (["eval", "MODEL", "--no-such-flag"], ["eval", "MODEL", "--num-layers", "x"], ["nosuchverb"]):
        with pytest.raises(AssertionError):
            dry_parse(bad)
    refused = [argv for page, argv, ok in COMMANDS if not ok]
    assert ["encode", "enc", "--input", "texts.txt", "--output", "v.npy", "--max-length", "-1"] in refused


# Rows of a bad-input table are left out: they are meant to fail, and tests/test_bad_inputs.py runs them.
GOOD_COMMANDS = [(page, argv) for page, argv, ok in COMMANDS if ok]


@pytest.mark.parametrize(
    ("page", "argv"), GOOD_COMMANDS, ids=[f"{_rel(p)}: {' '.join(a)[:80]}" for p, a in GOOD_COMMANDS]
)
def test_quoted_command_parses(page: Path, argv: list[str]):
    try:
        args = dry_parse(argv)
    except AssertionError as e:
        pytest.fail(f"{_rel(page)}: `llm2vec-lite {' '.join(argv)}` does not parse: {e}")
    recipe = getattr(args, "recipe", None) if args is not None else None
    if isinstance(recipe, str):
        problem = recipe_problem(recipe)
        assert problem is None, f"{_rel(page)}: `llm2vec-lite {' '.join(argv)}`: {problem}"


# ---------------------------------------------------------------------------------------------
# Recipes
# ---------------------------------------------------------------------------------------------


def recipe_problem(name: str) -> str | None:
    """Why a recipe argument names nothing that exists (None when it does, or when it is the user's own)."""
    if name.startswith("recipes/"):
        return None if (ROOT / name).is_file() else f"no file {name}"
    if re.fullmatch(r"[a-z0-9][a-z0-9.-]*", name) and not name.endswith(".yaml"):
        return None if name in list_recipes() else f"no shipped recipe {name!r}"
    return None  # RECIPE, my.yaml, /tmp/x.yaml: placeholders and the reader's own files


def test_recipe_problem_tells_shipped_names_and_files_from_placeholders():
    assert recipe_problem("recipes/gemma3-270m-cpu.yaml") is None
    assert recipe_problem("gemma3-270m-cpu") is None
    assert recipe_problem("recipes/no-such.yaml")
    assert recipe_problem("no-such-recipe")
    assert recipe_problem("RECIPE") is None
    assert recipe_problem("my.yaml") is None


def _named_recipes() -> Iterator[tuple[Path, str]]:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in re.finditer(r"(?<![\w/.-])recipes/[\w.-]+\.yaml", text):
            yield page, m.group(0)
        for m in re.finditer(r"DEMO_RECIPE=([\w.-]+)", text):
            yield page, m.group(1)


@pytest.mark.parametrize(
    ("page", "name"), sorted(set(_named_recipes())), ids=lambda v: _rel(v) if isinstance(v, Path) else v
)
def test_named_recipe_exists(page: Path, name: str):
    assert recipe_problem(name) is None, f"{_rel(page)} names {name!r}: {recipe_problem(name)}"


# ---------------------------------------------------------------------------------------------
# Section pointers: docs/PAGE.md, "Section"
# ---------------------------------------------------------------------------------------------

POINTER = re.compile(r"docs/(\w+)\.md,?\s*(?:#\s*)?([\"'])(.+?)\2", re.DOTALL)


def _pointer_sources() -> list[Path]:
    files = [*PAGES, *sorted((ROOT / "recipes").glob("*.yaml")), *sorted((ROOT / "scripts").glob("*.sh"))]
    files += sorted((ROOT / "llm2vec_lite").rglob("*.py")) + sorted((ROOT / "benchmarks").rglob("*.py"))
    files += sorted((ROOT / "benchmarks").glob("*.txt"))
    return files


def _pointers() -> Iterator[tuple[Path, str, str]]:
    for path in _pointer_sources():
        for m in POINTER.finditer(path.read_text(encoding="utf-8")):
            section = " ".join(re.sub(r"\n\s*#", " ", m.group(3)).split())
            if len(section) < 80:  # a quoted sentence after a bare page mention is not a pointer
                yield path, m.group(1), section


def _plain(heading: str) -> str:
    return " ".join(heading.replace("`", "").split())


def names_heading(section: str, titles: list[str]) -> bool:
    """``section`` is a heading as written, or one without its parenthesised tail (``SimCSE`` for ``SimCSE (`stages/simcse.py`)``)."""
    s = _plain(section)
    return any(t == s or t.startswith(s + " (") for t in map(_plain, titles))


@pytest.mark.parametrize(
    ("source", "page", "section"), list(_pointers()), ids=lambda v: _rel(v) if isinstance(v, Path) else v
)
def test_section_pointer_names_a_heading(source: Path, page: str, section: str):
    target = ROOT / "docs" / f"{page}.md"
    assert target.is_file(), f"{_rel(source)} points to docs/{page}.md, which does not exist"
    assert names_heading(section, headings(target)), (
        f'{_rel(source)}: docs/{page}.md has no section "{section}"'
    )


def test_names_heading_takes_the_heading_or_its_name_before_parentheses():
    titles = ["SimCSE (`stages/simcse.py`)", "Batches from one source"]
    assert names_heading("SimCSE", titles) and names_heading("Batches from one source", titles)
    assert not names_heading("Batches", titles) and not names_heading("SimCSE that learns", titles)


def test_section_pointers_are_found():
    found = {(p, s) for _, p, s in _pointers()}
    assert ("results", "SimCSE that learns on Gemma") in found
    assert ("results", "SmolLM2: whitening and three blocks") in found  # across a YAML comment line break
