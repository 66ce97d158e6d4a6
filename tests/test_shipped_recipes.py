"""Every shipped recipe validates, says where it comes from, and can be copied and edited."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llm2vec_lite.errors import RecipeError
from llm2vec_lite.recipe import list_recipes, load_recipe, shipped_recipe_path

SHIPPED = list_recipes()


def test_recipes_are_shipped():
    assert {"llm2vec-sheared-llama-1.3b", "llm2vec-llama3-8b", "llm2vec-mistral-7b", "e5-mistral-7b"} <= set(
        SHIPPED
    )
    assert {"cft-minicpm-2b", "cft-phi-2", "cft-gemma-2b"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipe_validates(name):
    """Schema errors fail; a missing *local* data file skips (hub data is never fetched here)."""
    try:
        recipe = load_recipe(name)
    except RecipeError as e:
        if "file not found" in str(e) and "must be" not in str(e) and "unknown key" not in str(e):
            load_recipe(name, check_paths=False)  # the schema itself must still be valid
            pytest.skip(f"local data for {name} is not present here: {e}")
        raise
    assert recipe.name == name
    assert recipe.description
    assert len(recipe.fingerprint) == 16
    assert len({recipe.stage_fingerprint(i) for i in range(len(recipe.stages))}) == len(recipe.stages)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipe_opens_with_source_and_command(name):
    text = shipped_recipe_path(name).read_text(encoding="utf-8")
    header = text.split("\nname:", 1)[0]
    assert header.startswith("#")
    assert "arXiv" in header or "Reproduces" in header or "Source" in header
    assert f"llm2vec-lite convert {name} " in header  # the exact command, with one override


@pytest.mark.parametrize("name", SHIPPED)
def test_header_commands_validate(name):
    """The commands a recipe's header tells people to run pass the checks (warmup <= steps ...)."""
    import shlex

    text = shipped_recipe_path(name).read_text(encoding="utf-8")
    commands = [line.split("llm2vec-lite convert", 1)[1] for line in text.splitlines()
                if line.startswith("#") and "llm2vec-lite convert" in line]
    assert commands
    for command in commands:
        words = shlex.split(command.split("#", 1)[0])
        load_recipe(name, [w for w in words[1:] if "=" in w], check_paths=False)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipe_accepts_an_override_and_roundtrips(name, tmp_path):
    recipe = load_recipe(name, ["stages.0.steps=3", "stages.0.warmup_steps=0"], check_paths=False)
    assert recipe.stages[0].steps == 3
    copy = tmp_path / f"{name}.yaml"
    copy.write_text(recipe.to_yaml())
    again = load_recipe(copy, check_paths=False)
    assert again.to_dict() == recipe.to_dict()


def test_shipped_keys_mirror_the_schema():
    """Keys are written as fields, never as aliases (loading would fail otherwise, but be explicit)."""
    for name in SHIPPED:
        data = yaml.safe_load(Path(shipped_recipe_path(name)).read_text(encoding="utf-8"))
        assert isinstance(data, dict) and data["name"] == name


def test_llm2vec_recipes_follow_the_paper_settings():
    for name in ("llm2vec-sheared-llama-1.3b", "llm2vec-llama3-8b", "llm2vec-mistral-7b"):
        r = load_recipe(name)
        mntp, simcse, sup = r.stages
        assert (mntp.kind, simcse.kind, sup.kind) == ("mntp", "simcse", "supervised")
        assert mntp.steps == simcse.steps == sup.steps == 1000
        assert (simcse.dropout, simcse.learning_rate, simcse.batch_size, simcse.temperature) == (
            0.3,
            3e-5,
            128,
            0.05,
        )
        assert (sup.learning_rate, sup.warmup_steps, sup.batch_size, sup.temperature) == (
            2e-4,
            300,
            512,
            0.02,
        )
        assert r.parent_stage(2) == 0  # supervised builds on MNTP, as in the paper
        assert r.lora.r == 16 and r.pooling == "mean" and r.bidirectional
    assert load_recipe("llm2vec-mistral-7b").stages[0].mask_probability == 0.8
    assert load_recipe("llm2vec-llama3-8b").stages[0].mask_probability == 0.2


@pytest.mark.parametrize("name", ["cft-minicpm-2b", "cft-phi-2", "cft-gemma-2b"])
def test_cft_recipes_follow_the_paper_settings(name):
    r = load_recipe(name)
    (stage,) = r.stages
    assert stage.kind == "supervised" and stage.temperature == 0.05 and stage.learning_rate == 5e-5
    assert (stage.warmup_steps, stage.schedule, stage.steps) == (100, "cosine", 1000)
    assert (r.lora.r, r.lora.alpha, r.lora.dropout, r.lora.target_modules) == (
        8,
        32,
        0.1,
        ["q_proj", "v_proj"],
    )
    assert r.pooling == "last_token" and not r.bidirectional


@pytest.mark.parametrize("name", ["smollm2-135m-cpu", "gemma3-270m-cpu"])
def test_cpu_recipe_output_is_the_same_by_name_and_by_path(name, monkeypatch, tmp_path):
    """docs/recipes.md: from the repository root both ways write ./runs/NAME; by name, never above cwd."""
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    by_path = load_recipe(f"recipes/{name}.yaml", check_paths=False)
    by_name = load_recipe(name, check_paths=False)
    assert by_path.output_dir == by_name.output_dir == str(root / "runs" / name)
    monkeypatch.chdir(tmp_path)
    assert load_recipe(name, check_paths=False).output_dir == str(tmp_path.resolve() / "runs" / name)


CPU_RECIPES = ["smollm2-135m-cpu", "gemma3-270m-cpu"]


@pytest.mark.parametrize("name", CPU_RECIPES)
def test_cpu_recipe_data_paths_exist(name):
    """The CPU recipes read ./data (the demo's copy of the shared data); .ci/run provides it and sets
    LLM2VEC_LITE_REQUIRE_DATA=1, so a renamed data file fails CI instead of skipping."""
    import os

    recipe = load_recipe(name, check_paths=False)
    paths = [Path(src.path) for stage in recipe.stages for src in stage.sources() if src.path]
    if recipe.eval is not None and recipe.eval.data_dir:
        paths.append(Path(recipe.eval.data_dir))
    missing = [str(p) for p in paths if not p.exists()]
    if missing and not os.environ.get("LLM2VEC_LITE_REQUIRE_DATA"):
        pytest.skip(f"./data is not here (run .ci/run, or cp -r ../shared/data ./data): {missing[0]}")
    assert paths and not missing, missing


@pytest.mark.slow
def test_smollm2_cpu_recipe_passes_every_check_before_loading(capsys, smollm2_gguf):
    """`recipe check` on the main CPU recipe: GGUF config and tokenizer, data sizes (no weights)."""
    import os

    from llm2vec_lite.cli import main

    root = Path(__file__).resolve().parents[1]
    if not (root / "data").exists() and not os.environ.get("LLM2VEC_LITE_REQUIRE_DATA"):
        pytest.skip("./data is not here")
    assert main(["recipe", "check", str(root / "recipes" / "smollm2-135m-cpu.yaml")]) == 0, capsys.readouterr().err
