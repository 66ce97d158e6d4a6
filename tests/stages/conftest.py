"""Fixtures for stage tests: the tiny-smoke project (built once) and its recipe."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))

from tiny_project import make_tiny_project  # noqa: E402


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory) -> Path:
    """The recipe path of a tiny-smoke project in a session temp folder."""
    return make_tiny_project(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def recipe(tiny_project):
    from llm2vec_lite.recipe import load_recipe

    return load_recipe(tiny_project)


@pytest.fixture
def accelerator():
    from llm2vec_lite.trainer import make_accelerator

    return make_accelerator("none")

