"""The recipe's eval: block on a saved encoder folder (evaluate_final), without training."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    sys.path.insert(0, str(Path(__file__).parent / "recipes"))
    from tiny_project import make_tiny_encoder_project

    root = tmp_path_factory.mktemp("recipe-eval")
    make_tiny_encoder_project(root, "final")
    (root / "sts").mkdir()
    (root / "sts" / "pairs.tsv").write_text(
        "sentence1\tsentence2\tscore\na cat\ta dog\t3.0\na man\ta woman\t1.0\nthe sun\tthe moon\t2.0\n",
        encoding="utf-8",
    )
    return root


@pytest.mark.parametrize("setting, compiled", [(True, True), (False, False)])
def test_eval_compile_compiles_the_final_encoder_before_scoring(project, monkeypatch, setting, compiled):
    from llm2vec_lite.encoder import Encoder
    from llm2vec_lite.recipe import load_recipe
    from llm2vec_lite.recipe_eval import evaluate_final

    calls = []
    monkeypatch.setattr(Encoder, "compile", lambda self: calls.append(self) or self)
    recipe = load_recipe(
        project / "recipe.yaml",
        overrides=[f"eval={{datasets: [pairs], data_dir: {project / 'sts'}, compile: {str(setting).lower()}}}"],
    )
    results = evaluate_final(recipe, project / "final")
    assert len(calls) == int(compiled)
    assert set(results["datasets"]) == {"pairs"}
