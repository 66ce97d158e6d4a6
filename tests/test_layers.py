"""The package's layers hold at run time too: reading a recipe loads no torch and no stage.

The import graph itself is checked by ``lint-imports`` (the contracts in pyproject.toml), which CI
runs; these tests check what a user sees: ``recipe check`` and ``load_recipe`` stay fast and work
where torch is slow to import, and the command's start-up (allocator, OpenMP policy) runs before
torch loads.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "peft", "accelerate", "llm2vec_lite.stages", "llm2vec_lite.checks")


def _loaded_after(code: str) -> list[str]:
    """Which of HEAVY a fresh interpreter has imported after running ``code``."""
    script = f"import json, sys\n{code}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_recipe_package_imports_no_torch():
    assert _loaded_after("import llm2vec_lite.recipe") == []


def test_loading_and_checking_a_shipped_recipe_imports_no_torch_and_no_stage():
    code = (
        "from llm2vec_lite.recipe import list_recipes, load_recipe\n"
        "for name in list_recipes():\n"
        "    recipe = load_recipe(name, check_paths=False)\n"
        "    assert len(recipe.fingerprint) == 16\n"
    )
    assert _loaded_after(code) == []


def test_the_runtime_package_and_the_command_start_without_torch():
    assert _loaded_after("import llm2vec_lite.runtime, llm2vec_lite.runtime.allocator, llm2vec_lite.cli") == []
