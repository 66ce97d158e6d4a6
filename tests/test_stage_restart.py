"""One process per stage: convert restarts itself between stages, to the same weights."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "recipes"))

from tiny_project import make_tiny_project  # noqa: E402

from llm2vec_lite.runtime.stage_restart import (  # noqa: E402
    RETRAIN_ENV,
    restart_for_next_stages,
    stages_to_retrain,
)

SHORT = ["stages.0.steps=1", "stages.1.steps=1", "stages.2.steps=1"]


def test_restart_execs_the_same_command_with_the_stages_left_to_train():
    calls = []
    restart_for_next_stages("abc123", [1, 2], environ={"KEEP": "1"}, execve=lambda *a: calls.append(a))
    (exe, argv, env), = calls
    assert exe == sys.executable and argv == [sys.executable, *sys.orig_argv[1:]]
    assert env == {"KEEP": "1", RETRAIN_ENV: "abc123:1,2"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("abc123:1,2", {1, 2}), ("other:1,2", set()), ("abc123:", set()), ("", set()), ("abc123:x,2", {2})],
)
def test_stages_to_retrain_are_honoured_for_the_same_recipe_only(value, expected):
    assert stages_to_retrain("abc123", {RETRAIN_ENV: value}) == expected


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("restart")
    make_tiny_project(root)
    return root


def _recipe(project: Path, out: str):
    from llm2vec_lite.recipe import load_recipe

    return load_recipe(project / "recipe.yaml", [*SHORT, f"output_dir=./{out}"])


def _weights(folder: Path):
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_convert_offers_a_restart_after_each_stage_but_the_last(project):
    from llm2vec_lite.pipeline import convert, plan

    offered: list[list[int]] = []
    recipe = _recipe(project, "out-offered")
    convert(recipe, restart=offered.append)  # a restart that returns: the stages go on in this process
    assert offered == [[1, 2, 3], [2, 3], [3]]  # 3 = len(stages): final/ and the eval block

    again: list[list[int]] = []
    convert(recipe, restart=again.append)  # all finished: nothing trains, nothing to restart for
    assert again == []
    actions = [(p.action, p.reason) for p in plan(recipe, retrain={1})]
    assert actions[0][0] == "skip"
    assert actions[1] == ("run", "its input was retrained earlier in this command")
    assert actions[2][0] == "run" and "stage 2 simcse, is retrained" in actions[2][1]


def test_until_stops_without_a_restart_for_final(project):
    from llm2vec_lite.pipeline import convert

    offered: list[list[int]] = []
    convert(_recipe(project, "out-until"), restart=offered.append, until=2)
    assert offered == [[1]] and not (project / "out-until" / "final").exists()


def test_a_restart_for_final_writes_it_though_no_stage_trains(project):
    from llm2vec_lite.pipeline import convert

    recipe = _recipe(project, "out-final")
    convert(recipe)
    final = project / "out-final" / "final"
    (final / "model.safetensors").unlink()  # an old final/ that a plain rerun would keep
    convert(recipe)
    assert not (final / "model.safetensors").exists()
    convert(recipe, retrain={3})  # the process after the one that trained the last stage
    assert (final / "model.safetensors").exists()


def test_callbacks_keep_every_stage_in_this_process(project):
    from llm2vec_lite.pipeline import convert

    offered: list[list[int]] = []
    steps: list[str] = []
    convert(_recipe(project, "out-callbacks"), restart=offered.append,
            callbacks=[lambda kind, step: steps.append(kind)])
    assert offered == [] and steps == ["mntp", "simcse", "supervised"]


def test_cli_restarts_between_stages_to_the_same_weights_and_retrains_stale_stages(project):
    from llm2vec_lite.pipeline import convert

    env = {k: v for k, v in os.environ.items() if k != "LLM2VEC_LITE_ONE_PROCESS"}  # the CLI's default

    def cli() -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "llm2vec_lite", "convert", "recipe.yaml", *SHORT, "output_dir=./out-cli"],
            cwd=project, capture_output=True, text=True, timeout=300, env=env,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stderr

    log = cli()
    assert "stage 1 mntp: saved; restarting the command for stage 2" in log
    assert "stage 2 simcse: saved; restarting the command for stage 3" in log
    assert "stage 3 supervised: saved; restarting the command for final/ and its evaluation" in log
    assert log.count("stage 1 mntp: finished") == 3  # each restarted process skips what is done

    convert(_recipe(project, "out-one"))
    restarted, one = _weights(project / "out-cli" / "final"), _weights(project / "out-one" / "final")
    assert restarted.keys() == one.keys() and all((restarted[k] == one[k]).all() for k in one)

    # stage 1 lost, stages 2-3 still on disk with their fingerprints: both must be retrained, though
    # the process that trains stage 2 starts after stage 1 is finished again
    shutil.rmtree(project / "out-cli" / "01-mntp")
    log = cli()
    assert "stage 2 simcse: overwriting" in log and "stage 3 supervised: overwriting" in log
    assert "stage 3 supervised: from" in log
