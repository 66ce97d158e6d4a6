"""Property: a randomly damaged recipe or data file either loads or raises the project's own error.

Hypothesis mutates the tiny project's recipe (a value replaced by one of another type or an
out-of-range one, a key deleted or added) and its data files (bytes inserted, lines cut, cells
added or removed). ``load_recipe`` followed by :func:`llm2vec_lite.checks.preflight` (everything
``convert`` checks before any weights load) must then succeed or raise an
:class:`~llm2vec_lite.errors.Llm2VecError`, never a ``KeyError``, ``TypeError``, ``UnicodeDecodeError``...
"""

from __future__ import annotations

import copy
import itertools
import sys
from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from llm2vec_lite.checks import preflight  # noqa: E402
from llm2vec_lite.errors import Llm2VecError  # noqa: E402
from llm2vec_lite.recipe import load_recipe  # noqa: E402

_COUNTER = itertools.count()

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=3),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["stages[0]", "stages[5]", "./missing.txt", "sdpa", "spda", "blank", "eos", "mask", "all"]),
    st.lists(st.integers(-2, 2), max_size=3),
    st.dictionaries(st.sampled_from(["path", "hub", "limit", "columns", "x"]), st.text(max_size=6), max_size=2),
)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    sys.path.insert(0, str(Path(__file__).parent / "recipes"))
    from tiny_project import make_tiny_project

    root = tmp_path_factory.mktemp("fuzz")
    make_tiny_project(root)
    return root


def _paths(node, prefix=()):
    """Every (path, value) in a nested dict/list."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield (*prefix, k), v
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield (*prefix, i), v
            yield from _paths(v, (*prefix, i))


def _set(node, path, value, *, delete=False):
    for part in path[:-1]:
        node = node[part]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value


def _check(recipe_file: Path) -> None:
    try:
        recipe = load_recipe(recipe_file)
        preflight(recipe, processes=1)
    except Llm2VecError:
        pass  # the project's own error: fine


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_recipe_loads_or_raises_llm2vec_error(project, data):
    raw = yaml.safe_load((project / "recipe.yaml").read_text())
    mutated = copy.deepcopy(raw)
    paths = [p for p, _ in _paths(raw)]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        try:
            if action == "replace":
                _set(mutated, path, data.draw(VALUES))
            elif action == "delete":
                _set(mutated, path, None, delete=True)
            else:
                _set(mutated, (*path[:-1], data.draw(st.text(min_size=1, max_size=8))), data.draw(VALUES))
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced the parent
    file = project / f"mutated-{next(_COUNTER)}.yaml"
    file.write_text(yaml.safe_dump(mutated, allow_unicode=True), encoding="utf-8")
    _check(file)


DATA_FILES = {"text.txt": 0, "sentences.txt": 1, "triplets.tsv": 2}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(sorted(DATA_FILES)),
    cut=st.integers(0, 4000),
    insert=st.binary(max_size=20) | st.sampled_from([b"\t", b"\t\t\t", b"\n\n", b"\xff\xfe", b"\"", b"\x00"]),
    where=st.integers(0, 4000),
)
def test_mutated_data_file_loads_or_raises_llm2vec_error(project, name, cut, insert, where):
    original = (project / name).read_bytes()
    body = original[: min(cut, len(original))] if cut < 200 else original
    body = body[:where] + insert + body[where:]
    stem, suffix = name.rsplit(".", 1)
    mutated = project / f"{stem}-{next(_COUNTER)}.{suffix}"
    mutated.write_bytes(body)
    raw = yaml.safe_load((project / "recipe.yaml").read_text())
    raw["stages"][DATA_FILES[name]]["data"] = {"path": f"./{mutated.name}"}
    file = project / f"data-{next(_COUNTER)}.yaml"
    file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    _check(file)
