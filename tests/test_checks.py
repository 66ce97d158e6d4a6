"""llm2vec_lite.checks: argument checks, the process-count warning, the attention-backend list,
and that convert runs every check before a model loads (the recipe ``eval:`` block included)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from llm2vec_lite import checks
from llm2vec_lite.errors import RecipeError, UsageError


def test_attention_backends_match_transformers():
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    known = {"eager", *ALL_ATTENTION_FUNCTIONS.valid_keys()}
    assert set(checks.ATTN_IMPLEMENTATIONS) == known


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "3"])
def test_check_max_length_rejects_non_positive_and_non_integers(value):
    with pytest.raises(UsageError, match="max_length"):
        checks.check_max_length(value)


def test_check_device_names_the_flag():
    with pytest.raises(UsageError, match=r"^--device 'nonsense' is not a device"):
        checks.check_device("nonsense", "--device")
    checks.check_device("cpu")


@pytest.mark.parametrize(
    "cmdline, expected",
    [
        (["/venv/bin/python", "/venv/bin/accelerate", "launch", "--num_processes", "2", "-m", "llm2vec_lite"], 2),
        (["/venv/bin/accelerate", "launch", "--num-processes=3", "-m", "llm2vec_lite"], 3),
        (["/venv/bin/accelerate", "launch", "-m", "llm2vec_lite"], None),
        (["python", "-m", "llm2vec_lite", "convert", "r.yaml"], None),
        (["torchrun", "--nproc_per_node", "2"], None),
    ],
)
def test_requested_processes_reads_the_accelerate_command_line(cmdline, expected):
    assert checks.requested_processes(cmdline) == expected


def test_shortfall_warning_names_a_command_that_works():
    assert checks.process_shortfall_message(2, 2) is None and checks.process_shortfall_message(None, 1) is None
    message = checks.process_shortfall_message(2, 1)
    assert "asked for 2 processes but 1 runs" in message
    assert "accelerate launch --multi_gpu --num_processes 2 -m llm2vec_lite convert" in message


def test_convert_warns_when_fewer_processes_run_than_asked(monkeypatch, caplog):
    from llm2vec_lite.commands import convert

    monkeypatch.setattr(checks, "requested_processes", lambda: 2)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with caplog.at_level(logging.WARNING, logger="llm2vec_lite"):
        convert._warn_process_shortfall()
    assert "asked for 2 processes but 1 runs" in caplog.text


def test_help_example_is_the_launcher_the_two_process_test_runs():
    """`convert --help` shows the multi-process command tests/test_distributed.py really runs."""
    from llm2vec_lite.commands.convert import EPILOG

    line = next(x for x in EPILOG.splitlines() if "accelerate launch" in x)
    assert "--multi_gpu --num_processes 2 -m llm2vec_lite convert" in line
    distributed = (Path(__file__).parent / "test_distributed.py").read_text()
    assert '["--multi_gpu"] if n > 1' in distributed  # the flag that starts n processes on a CPU
    assert checks.MULTI_PROCESS_COMMAND.format(n=2).replace("RECIPE", "my.yaml") in line


@pytest.fixture
def project(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent / "recipes"))
    from tiny_project import make_tiny_project

    return make_tiny_project(tmp_path)


def test_preflight_reports_every_problem_at_once(project):
    from llm2vec_lite.recipe import load_recipe

    recipe = load_recipe(project, ["stages.0.max_length=1", "stages.1.batch_size=100", "stages.2.batch_size=3"])
    with pytest.raises(RecipeError) as info:
        checks.preflight(recipe, processes=2)
    text = str(info.value)
    assert "3 problems" in text or "4 problems" in text, text
    assert "stages[0].max_length = 1" in text and "stages[1].batch_size = 100" in text
    assert "stages[2].batch_size = 3: not a multiple of the 2 processes" in text


def test_instruction_that_fills_max_length_is_caught(project):
    from llm2vec_lite.recipe import load_recipe

    recipe = load_recipe(project, ["stages.2.max_length=4", "stages.2.query_instruction=" + "word " * 10])
    with pytest.raises(RecipeError, match=r"stages\[2\].max_length = 4: the instruction 'word word"):
        checks.preflight(recipe)


def test_eval_block_data_is_checked_before_training(project):
    from llm2vec_lite.recipe import load_recipe

    (project.parent / "sts").mkdir()
    recipe = load_recipe(project, ["eval.datasets=[nope]", "eval.data_dir=./sts"])
    with pytest.raises(RecipeError, match=r"eval.datasets = \['nope'\]: STS dataset 'nope'"):
        checks.preflight(recipe)


def test_few_malformed_tsv_rows_warn_with_count_and_file(tmp_path, caplog):
    from llm2vec_lite.data import read_rows
    from llm2vec_lite.recipe import DataSource

    rows = ["anchor\tpositive\tnegative"] + [f"a{i}\tb{i}\tc{i}" for i in range(30)] + ["a\tb", "a\tb\tc\td"]
    (tmp_path / "t.tsv").write_text("\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING, logger="llm2vec_lite.data"):
        got = read_rows(DataSource(path=str(tmp_path / "t.tsv")), ["anchor", "positive", "negative"])
    assert len(got) == 31  # the short row is dropped, the long one kept without its extra cell
    assert "2 of 32 rows do not match the 3-column header" in caplog.text and "t.tsv" in caplog.text
    assert "1 with fewer than 3 cells (lines 32" in caplog.text and "1 with more than 3 cells (lines 33" in caplog.text


# --- attention backends that cannot train on this device ---------------------------------------


def test_flex_attention_cannot_train_on_cpu():
    from llm2vec_lite.checks import training_backend_problems

    (problem,) = training_backend_problems("flex_attention", "cpu")
    assert "no flex-attention backward on CPU" in problem and "use sdpa" in problem
    assert training_backend_problems("sdpa", "cpu") == []
    assert training_backend_problems(None, "cpu") == []


def test_flash_attention_needs_cuda():
    from llm2vec_lite.checks import training_backend_problems

    (problem,) = training_backend_problems("flash_attention_2", "cpu")
    assert "CUDA GPUs only" in problem


def test_flash_attention_on_cuda_needs_the_package(monkeypatch):
    import importlib.util

    from llm2vec_lite.checks import training_backend_problems

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "flash_attn" else real(name, *a))
    (problem,) = training_backend_problems("flash_attention_2", "cuda")
    assert "flash_attn package is not installed" in problem
    assert training_backend_problems("flex_attention", "cuda") == []


def test_preflight_refuses_flex_training_on_cpu_before_weights_load(project, monkeypatch):
    from llm2vec_lite.recipe import load_recipe

    monkeypatch.setenv("ACCELERATE_USE_CPU", "1")  # the training device is the CPU, GPU or not
    recipe = load_recipe(project, ["attn_implementation=flex_attention"])
    with pytest.raises(RecipeError, match="attn_implementation = 'flex_attention': torch has no flex-attention backward"):
        checks.preflight(recipe)


def test_hidden_dropout_on_blocks_without_an_mlp_fails_before_weights_load(project, monkeypatch):
    """The check builds the model on the meta device and asks the function that places the hooks."""
    from llm2vec_lite.recipe import load_recipe
    from llm2vec_lite.stages import simcse

    recipe = load_recipe(project, ["stages.1.hidden_dropout=0.1"])
    assert recipe.stages[1].kind == "simcse"
    assert checks._hidden_dropout_problems(recipe, checks._read_base_config(recipe)[0]) == []
    monkeypatch.setattr(simcse, "_MLP_NAMES", ("feed_forward_that_no_family_has",))
    monkeypatch.setattr(
        "llm2vec_lite.modeling.load_model", lambda *a, **k: pytest.fail("weights loaded before the check"))
    with pytest.raises(RecipeError, match=r"stages\[1\].hidden_dropout: block 0 \(\w+DecoderLayer\) has none of"):
        checks.preflight(recipe)
