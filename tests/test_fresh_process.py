"""Stages trained in fresh processes: results, errors and logs cross back; the weights are unchanged."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "recipes"))

from tiny_project import make_tiny_project  # noqa: E402

from llm2vec_lite.errors import DataError, TrainingError, UnsupportedArchitectureError  # noqa: E402
from llm2vec_lite.runtime.fresh_process import run_in_fresh_process  # noqa: E402


def _raise_data_error(path: str) -> None:
    raise DataError(f"{path}: line 3: no tab")


def _raise_unsupported() -> None:
    raise UnsupportedArchitectureError("nope", ["llama", "gemma3"])


def _log_and_return(value: int) -> int:
    logging.getLogger("llm2vec_lite.child").info("hello from %d", os.getpid())
    return value * 2


def test_the_work_runs_in_another_process_and_its_result_comes_back():
    assert run_in_fresh_process(os.getpid, what="pid") != os.getpid()
    assert run_in_fresh_process(_log_and_return, 21, what="double") == 42


def test_errors_cross_back_with_their_class_and_message():
    with pytest.raises(DataError, match="x.tsv: line 3: no tab"):
        run_in_fresh_process(_raise_data_error, "x.tsv", what="read")
    with pytest.raises(UnsupportedArchitectureError) as info:  # a custom __init__ survives pickling
        run_in_fresh_process(_raise_unsupported, what="patch")
    assert info.value.model_type == "nope" and info.value.supported == ["gemma3", "llama"]


def test_a_process_that_dies_without_an_error_is_a_training_error():
    with pytest.raises(TrainingError, match=r"stage 2 simcse: its process ended without a Python error"):
        run_in_fresh_process(os._exit, 137, what="stage 2 simcse")


def test_the_child_logs_at_the_parents_level(capfd, caplog):
    caplog.set_level(logging.INFO)
    run_in_fresh_process(_log_and_return, 1, what="log")
    err = capfd.readouterr().err
    assert "INFO llm2vec_lite.child: hello from " in err
    assert f"hello from {os.getpid()}" not in err


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fresh")
    make_tiny_project(root)
    return root


def _weights(folder: Path):
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_cli_trains_each_stage_in_a_fresh_process_to_the_same_weights(project):
    from llm2vec_lite.pipeline import convert
    from llm2vec_lite.recipe import load_recipe

    overrides = ["stages.0.steps=2", "stages.1.steps=2", "stages.2.steps=2"]
    env = {k: v for k, v in os.environ.items() if k != "LLM2VEC_LITE_ONE_PROCESS"}  # the CLI's default
    proc = subprocess.run(
        [sys.executable, "-m", "llm2vec_lite", "convert", "recipe.yaml", *overrides, "output_dir=./out-fresh"],
        cwd=project, capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for n, kind in ((1, "mntp"), (2, "simcse"), (3, "supervised")):
        assert f"stage {n} {kind}: training in a fresh process" in proc.stderr
        assert f"stage {n} {kind}: done in" in proc.stderr  # the child's own log lines reach stderr

    convert(load_recipe(project / "recipe.yaml", [*overrides, "output_dir=./out-one"]), fresh_processes=False)
    fresh, one = _weights(project / "out-fresh" / "final"), _weights(project / "out-one" / "final")
    assert fresh.keys() == one.keys()
    assert all((fresh[k] == one[k]).all() for k in fresh)


def test_callbacks_keep_the_stages_in_this_process(project):
    from llm2vec_lite.pipeline import convert
    from llm2vec_lite.recipe import load_recipe

    seen: list[tuple[str, int]] = []
    recipe = load_recipe(project / "recipe.yaml", ["stages.0.steps=1", "output_dir=./out-callback"])
    convert(recipe, until=1, fresh_processes=True, callbacks=[lambda kind, step: seen.append((kind, step))])
    assert seen == [("mntp", 1)]  # a callback of this process ran: the stage did not move out
