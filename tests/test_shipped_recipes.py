"""Every shipped recipe validates, says where it comes from, and can be copied and edited."""

from __future__ import annotations

import re
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
    logical: list[str] = []  # comment lines, with shell continuations ("\\" at the end) joined
    for line in (ln[1:].strip() for ln in text.splitlines() if ln.startswith("#")):
        if logical and logical[-1].endswith("\\"):
            logical[-1] = logical[-1][:-1] + " " + line
        else:
            logical.append(line)
    commands = [line.split("llm2vec-lite convert", 1)[1] for line in logical if "llm2vec-lite convert" in line]
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


LLM2VEC = ("llm2vec-sheared-llama-1.3b", "llm2vec-llama3-8b", "llm2vec-mistral-7b")
CFT = ("cft-minicpm-2b", "cft-phi-2", "cft-gemma-2b")


def _commented(name: str, key: str, value: str) -> bool:
    """True when the recipe file writes ``key: value`` with a comment naming where it comes from."""
    text = shipped_recipe_path(name).read_text(encoding="utf-8")
    return re.search(rf"^\s*(- )?{re.escape(key)}: {re.escape(value)}\s+# \S", text, re.MULTILINE) is not None


@pytest.mark.parametrize("name", LLM2VEC)
def test_llm2vec_recipes_follow_the_authors_configs(name):
    """Values of McGill-NLP/llm2vec train_configs/{mntp,simcse,supervised}/*.json (HF Trainer runs)."""
    r = load_recipe(name, check_paths=False)
    mntp, simcse, sup = r.stages
    assert (mntp.kind, simcse.kind, sup.kind) == ("mntp", "simcse", "supervised")
    assert mntp.steps == simcse.steps == sup.steps == 1000  # stop_after_n_steps
    # num_train_epochs 3 is the decay horizon; the run stops long before it
    assert (mntp.schedule_steps, simcse.schedule_steps, sup.schedule_steps) == (24000, 23439, 8800)
    assert mntp.schedule == simcse.schedule == sup.schedule == "linear"
    assert (mntp.learning_rate, mntp.warmup_steps, mntp.batch_size) == (5e-5, 0, 32)
    assert (simcse.dropout, simcse.learning_rate, simcse.batch_size, simcse.temperature, simcse.warmup_steps) == (
        0.3, 3e-5, 128, 0.05, 0,
    )
    assert (sup.learning_rate, sup.warmup_steps, sup.batch_size, sup.temperature) == (2e-4, 300, 512, 0.02)
    assert r.parent_stage(2) == 0  # supervised builds on MNTP, as in the paper
    assert r.lora.r == 16 and r.pooling == "mean" and r.bidirectional and r.seed == 42 and r.max_length == 512
    for key, value in [("steps", "1000"), ("schedule_steps", "24000"), ("schedule_steps", "23439"),
                       ("schedule_steps", "8800"), ("learning_rate", "2.0e-4"), ("warmup_steps", "300"),
                       ("batch_size", "512"), ("seed", "42"), ("r", "16")]:
        assert _commented(name, key, value), (name, key, value)


@pytest.mark.parametrize("name", LLM2VEC)
def test_llm2vec_recipes_use_one_prompt_per_dataset(name):
    """llm2vec/dataset/E5Data.py: '{prompt}; ' on queries, on both sides for the symmetric sets."""
    sources = load_recipe(name, check_paths=False).stages[2].sources()
    by_name = {(s.name or s.data_files, s.split): s for s in sources}
    assert len(by_name) == len(sources) == 11
    assert all(s.query_instruction and s.query_instruction.endswith("; ") for s in sources)
    assert by_name["nq", "train"].query_instruction.startswith("Given a question, retrieve Wikipedia passages")
    symmetric = {k for k, s in by_name.items() if s.document_instruction}
    assert symmetric == {("quora_duplicate", "train[:50%]"), ("quora_duplicate", "train[50%:]"),
                         ("nli_for_simcse.csv", "train[50%:]")}
    assert all(by_name[k].document_instruction == by_name[k].query_instruction for k in symmetric)
    assert by_name["nli_for_simcse.csv", "train[:50%]"].query_instruction.startswith("Given a premise")


def test_llm2vec_mask_settings_follow_the_mntp_configs():
    assert load_recipe("llm2vec-mistral-7b", check_paths=False).stages[0].mask_probability == 0.8
    assert load_recipe("llm2vec-mistral-7b", check_paths=False).stages[0].mask_replacement == "all"
    assert load_recipe("llm2vec-llama3-8b", check_paths=False).stages[0].mask_probability == 0.2


@pytest.mark.parametrize("name", CFT)
def test_cft_recipes_follow_the_authors_final_train_script(name):
    r = load_recipe(name, check_paths=False)
    (stage,) = r.stages
    assert stage.kind == "supervised" and stage.temperature == 0.05 and stage.learning_rate == 5e-5
    assert (stage.warmup_steps, stage.schedule, stage.steps, stage.schedule_steps) == (100, "cosine", 1000, None)
    # train/train.sh: 7 a process x 4 processes, negatives gathered, no accumulation, wd 1e-4, seed 7
    assert (stage.batch_size, stage.gradient_accumulation_steps, stage.weight_decay) == (28, 1, 1e-4)
    assert r.seed == 7 and r.max_length == 150  # data/nli_preprocess.py truncates to 150 tokens
    assert (r.lora.r, r.lora.alpha, r.lora.dropout, r.lora.target_modules) == (8, 32, 0.1, ["q_proj", "v_proj"])
    assert r.pooling == "last_token" and not r.bidirectional and stage.hard_negatives
    for key, value in [("batch_size", "28"), ("weight_decay", "1.0e-4"), ("seed", "7"), ("max_length", "150"),
                       ("gradient_accumulation_steps", "1"), ("r", "8")]:
        assert _commented(name, key, value), (name, key, value)


def test_minicpm_recipe_pins_the_safetensors_revision():
    r = load_recipe("cft-minicpm-2b", check_paths=False)
    assert r.base_model == "openbmb/MiniCPM-2B-dpo-bf16" and r.revision == "refs/pr/3"
    assert _commented("cft-minicpm-2b", "revision", "refs/pr/3")


def test_e5_recipe_follows_the_paper():
    r = load_recipe("e5-mistral-7b", check_paths=False)
    (stage,) = r.stages
    assert (stage.learning_rate, stage.warmup_steps, stage.schedule, stage.weight_decay) == (1e-4, 100, "linear", 0.1)
    assert (stage.batch_size, stage.temperature, r.lora.r, r.pooling, r.bidirectional) == (
        2048, 0.02, 16, "last_token", False,
    )
    sources = {s.name or s.data_files or Path(s.path).name: s for s in stage.sources()}
    synthetic = sources.pop("synthetic")
    assert synthetic.instruction_column == "instruction" and synthetic.query_instruction is None
    assert synthetic.instruction_template == "Instruct: {instruction}\nQuery: "
    ours = sources.pop("e5-synth.jsonl")  # `llm2vec-lite synth` output: the cell is the whole prefix
    assert ours.instruction_column == "instruction" and ours.instruction_template is None
    for s in sources.values():  # every public source has its own task, on queries only
        assert s.query_instruction.startswith("Instruct: ") and s.query_instruction.endswith("\nQuery: ")
        assert s.document_instruction is None
    assert "Given a premise" in sources["nli_for_simcse.csv"].query_instruction
    assert stage.document_instruction is None
    for key, value in [("weight_decay", "0.1"), ("temperature", "0.02"), ("learning_rate", "1.0e-4"),
                       ("batch_size", "2048")]:
        assert _commented("e5-mistral-7b", key, value), key


@pytest.mark.parametrize("name", [*LLM2VEC, *CFT, "e5-mistral-7b"])
def test_dry_run_plan_shows_the_learning_rate_curve_and_negatives(name, tmp_path):
    from llm2vec_lite.pipeline import format_plan, plan

    recipe = load_recipe(name, [f"output_dir={tmp_path}"], check_paths=False)
    text = format_plan(recipe, plan(recipe))
    assert text.count("    lr:     ") == len(recipe.stages)
    if name in CFT:
        assert "cosine, peak 5e-05 after 100 warmup steps, " in text and "at the last step 1000 (0% of peak)" in text
        assert "negatives: 56 candidates per query (28 positives + 28 hard negatives" in text
    if name in LLM2VEC:
        assert "decays towards step 8800" in text and "(92% of peak)" in text  # the supervised stage
        assert "negatives: 1024 candidates per query" in text and "the loss sees all 512" in text
        assert "negatives: 128 candidates per query (the 128 second dropout views" in text


def test_negatives_line_counts_candidates_not_processes():
    """batch_size is global: 4 processes split the 28 rows and still score each query against 56."""
    from llm2vec_lite.pipeline import in_batch_negatives

    stage = load_recipe("cft-phi-2", check_paths=False).stages[0]
    four = in_batch_negatives(stage, processes=4)
    assert four.startswith("56 candidates per query") and "4 processes embed 7 rows each" in four
    accumulated = stage.model_copy(update={"batch_size": 8, "gradient_accumulation_steps": 64})
    one = in_batch_negatives(accumulated, processes=1)
    assert one.startswith("16 candidates per query")
    assert "accumulation adds none: 64 separate losses a step, 512 rows in all" in one


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


# Files that are evaluation data: training on them would make every reported score meaningless.
# STS-B train overlaps STS12-16; dev/ holds the dev suite's retrieval, classification and clustering
# tasks; SICK is an STS test set.
_EVAL_DATA = re.compile(r"(^|/)(sts|dev)/|(^|/)[^/]*(stsb|sick|sts1[2-6])[^/]*$", re.IGNORECASE)


@pytest.mark.parametrize("name", SHIPPED)
def test_no_shipped_recipe_trains_on_evaluation_data(name):
    recipe = load_recipe(name, check_paths=False)
    for i, stage in enumerate(recipe.stages):
        for src in stage.sources():
            where = src.path or src.hub or ""
            assert not _EVAL_DATA.search(str(where).replace("\\", "/")), (
                f"{name}: stages[{i}] trains on {where}, an evaluation set"
            )


def test_the_evaluation_data_rule_catches_what_it_should():
    for bad in ["../data/sts/stsb-train.tsv", "data/dev/classification/trec6/train.tsv", "x/SICK_train.txt",
                "mteb/sts12-sts", "../data/dev/clustering/20ng-subjects.tsv"]:
        assert _EVAL_DATA.search(bad), bad
    for good in ["../data/nli/snli-triplets.tsv", "../data/retrieval/squad2-dev.tsv", "../data/extra/mnli-triplets.tsv"]:
        assert not _EVAL_DATA.search(good), good
