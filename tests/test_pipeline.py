"""The pipeline and loop under faults: kill and resume, NaN, bad data, reruns, conflicting folders."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "recipes"))

from tiny_project import TINY_RECIPE, make_tiny_project  # noqa: E402

from llm2vec_lite.checkpoint import atomic_dir, capture_rng, latest_checkpoint, restore_rng  # noqa: E402
from llm2vec_lite.errors import DataError, RecipeError, TrainingError  # noqa: E402

# Two short stages; SimCSE has dropout, so resuming must restore RNG states to match exactly.
RESUME_RECIPE = TINY_RECIPE.split("  - kind: mntp")[0] + """\
  - kind: simcse
    data: {path: ./sentences.txt}
    steps: 5
    batch_size: 4
    learning_rate: 1.0e-3
    dropout: 0.2
    temperature: 0.05
    checkpoint_every: 2
  - kind: supervised
    data: {path: ./triplets.tsv}
    steps: 2
    batch_size: 4
    learning_rate: 1.0e-3
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pipe")
    make_tiny_project(root)
    (root / "resume.yaml").write_text(RESUME_RECIPE, encoding="utf-8")
    return root


def _load(path, *overrides):
    from llm2vec_lite.recipe import load_recipe

    return load_recipe(path, list(overrides))


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_resume_after_kill_gives_identical_weights(project):
    from llm2vec_lite.pipeline import convert

    killed_out = project / "out-killed"
    kill = Path(__file__).resolve().parent / "kill_after_step.py"  # the CLI, dying right after simcse step 3
    proc = subprocess.run(
        [sys.executable, str(kill), "simcse", "3", "convert", str(project / "resume.yaml"), f"output_dir={killed_out}"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 137, proc.stderr[-2000:]
    assert not (killed_out / "02-supervised").exists()
    assert not (killed_out / "01-simcse").exists()  # killed mid-stage: no finished folder
    assert latest_checkpoint(killed_out / ".work" / "01-simcse" / "checkpoints").name == "step-000002"

    convert(_load(project / "resume.yaml", f"output_dir={killed_out}"))
    info = json.loads((killed_out / "01-simcse" / "stage.json").read_text())
    assert info["metrics"]["resumed_from"] == 2

    straight_out = project / "out-straight"
    convert(_load(project / "resume.yaml", f"output_dir={straight_out}"))
    for stage in ("01-simcse", "02-supervised"):
        a, b = _weights(killed_out / stage), _weights(straight_out / stage)
        assert a.keys() == b.keys()
        for name in a:
            torch.testing.assert_close(a[name], b[name], rtol=1e-6, atol=1e-7, msg=f"{stage}: {name}")
    # the stage really trained: weights moved away from the input model
    base = _weights(project / "tiny-llama")
    name = "layers.0.self_attn.q_proj.weight"  # the base folder holds a *ForCausalLM: "model." prefix
    assert not torch.allclose(_weights(straight_out / "01-simcse")[name], base[f"model.{name}"])
    assert not (straight_out / ".work").exists()  # checkpoints removed once the stage is done


def test_step_callbacks_see_every_step_of_every_stage(project):
    from llm2vec_lite.pipeline import convert

    seen: list[tuple[str, int]] = []
    out = project / "out-callbacks"
    recipe = _load(project / "resume.yaml", f"output_dir={out}", "stages.0.steps=2", "stages.1.steps=1")
    convert(recipe, callbacks=[lambda kind, step: seen.append((kind, step))])
    assert seen == [("simcse", 1), ("simcse", 2), ("supervised", 1)]


def test_rerun_skips_finished_stages(project, monkeypatch):
    import llm2vec_lite.pipeline as pipeline

    out = project / "out-rerun"  # its own short run: this test does not depend on another one
    recipe = _load(project / "resume.yaml", f"output_dir={out}", "stages.0.steps=1", "stages.1.steps=1")
    pipeline.convert(recipe)
    assert [p.action for p in pipeline.plan(recipe)] == ["skip", "skip"]
    monkeypatch.setattr(pipeline, "_run_stage", lambda *a, **k: pytest.fail("a finished stage was rerun"))
    assert pipeline.convert(recipe) == out / "final"


def test_changed_recipe_is_refused_unless_overwrite(project):
    from llm2vec_lite.pipeline import convert, plan

    out = project / "out-conflict"
    one_stage = ["stages=" + json.dumps([{"kind": "simcse", "data": {"path": "./sentences.txt"}, "steps": 1,
                                          "batch_size": 4, "learning_rate": 1e-3}]), f"output_dir={out}"]
    convert(_load(project / "resume.yaml", *one_stage))
    changed = _load(project / "resume.yaml", *one_stage, "stages.0.temperature=0.1")
    assert [p.action for p in plan(changed)] == ["conflict"]
    with pytest.raises(RecipeError, match="(?s)refusing to overwrite.*--overwrite"):
        convert(changed)
    convert(changed, overwrite=True)
    info = json.loads((out / "01-simcse" / "stage.json").read_text())
    assert info["fingerprint"] == changed.stage_fingerprint(0)


def _fake_finished(recipe, *indices: int) -> None:
    """Mark stages finished the way convert does (a folder whose stage.json holds the fingerprint)."""
    for i in indices:
        folder = recipe.stage_dir(i)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "stage.json").write_text(json.dumps({"fingerprint": recipe.stage_fingerprint(i)}))


def test_plan_reruns_only_the_lineage_of_a_retrained_stage(project):
    from llm2vec_lite.pipeline import plan

    out = project / "out-lineage"
    def stage(kind: str, path: str, **extra) -> dict:
        return {"kind": kind, "data": {"path": path}, "steps": 1, "batch_size": 4, "learning_rate": 1e-3, **extra}

    stages = [stage("mntp", "./text.txt"), stage("simcse", "./sentences.txt"),  # mntp -> simcse -> supervised
              stage("supervised", "./triplets.tsv"),
              stage("supervised", "./triplets.tsv", init_from="stages[0]")]  # and mntp -> supervised
    recipe = _load(project / "recipe.yaml", f"output_dir={out}", "stages=" + json.dumps(stages))
    assert [recipe.parent_stage(i) for i in range(4)] == [None, 0, 1, 0]
    _fake_finished(recipe, 0, 1, 2, 3)
    assert [p.action for p in plan(recipe)] == ["skip"] * 4

    (recipe.stage_dir(1) / "stage.json").unlink()
    recipe.stage_dir(1).rmdir()  # stage 2 retrained with the same settings: only stage 3 builds on it
    actions = plan(recipe)
    assert [p.action for p in actions] == ["skip", "run", "run", "skip"]
    assert "stage 2 simcse" in actions[2].reason

    _fake_finished(recipe, 1)
    (recipe.stage_dir(0) / "stage.json").unlink()  # the root of every lineage: everything reruns
    assert [p.action for p in plan(recipe)] == ["conflict", "run", "run", "run"]


def test_folder_without_stage_json_is_not_taken_as_finished(project):
    from llm2vec_lite.pipeline import plan

    out = project / "out-half"
    (out / "01-mntp").mkdir(parents=True)
    (out / "01-mntp" / "config.json").write_text("{}")
    (out / ".02-simcse.tmp").mkdir()  # what a killed atomic write leaves
    actions = [p.action for p in plan(_load(project / "recipe.yaml", f"output_dir={out}"))]
    assert actions == ["conflict", "run", "run"]


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(project, monkeypatch):
    from llm2vec_lite.pipeline import convert
    from llm2vec_lite.stages.supervised import SupervisedStage

    calls = {"n": 0}
    real_loss = SupervisedStage.loss

    def loss_nan_at_3(self, model, batch):
        calls["n"] += 1
        loss = real_loss(self, model, batch)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(SupervisedStage, "loss", loss_nan_at_3)
    out = project / "out-nan"
    recipe = _load(project / "resume.yaml", "stages=" + json.dumps([{
        "kind": "supervised", "data": {"path": "./triplets.tsv"}, "steps": 5, "batch_size": 4,
        "learning_rate": 1e-3, "checkpoint_every": 1}]), f"output_dir={out}")
    with pytest.raises(TrainingError, match=r"(?s)loss is nan at step 3.*step-000002"):
        convert(recipe)
    assert latest_checkpoint(out / ".work" / "01-supervised" / "checkpoints").name == "step-000002"
    assert not (out / "01-supervised").exists()


@pytest.mark.parametrize(
    ("content", "match"),
    [("anchor\tpositive\tnegative\n", "(?i)empty|no rows|no data"), ("query\tdoc\tbad\nq\td\tb\n", "anchor")],
)
def test_bad_data_fails_before_any_model_loads(project, monkeypatch, content, match):
    import llm2vec_lite.modeling as modeling
    from llm2vec_lite.pipeline import convert

    bad = project / f"bad-{abs(hash(content))}.tsv"
    bad.write_text(content, encoding="utf-8")
    recipe = _load(project / "recipe.yaml", f"stages.2.data.path={bad}", f"output_dir={project / 'out-bad'}")
    monkeypatch.setattr(modeling, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    with pytest.raises(DataError, match=match):
        convert(recipe)


def test_atomic_dir_leaves_target_untouched_when_writing_fails(tmp_path):
    target = tmp_path / "stage"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("half")
        raise RuntimeError("killed")
    assert [p.name for p in tmp_path.iterdir()] == ["stage"]
    assert (target / "old.txt").read_text() == "old"
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]


def test_rng_states_round_trip_through_json():
    state = json.loads(json.dumps(capture_rng()))
    want = (random.random(), np.random.rand(), torch.rand(3))
    restore_rng(state)
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert want[0] == got[0] and want[1] == got[1]
    torch.testing.assert_close(want[2], got[2])


def test_stage_index_reads_numbers_folders_and_unique_kinds(project):
    from llm2vec_lite.errors import UsageError
    from llm2vec_lite.pipeline import stage_index

    recipe = _load(project / "recipe.yaml")  # mntp, simcse, supervised
    assert [stage_index(recipe, s) for s in (1, "2", "03-supervised", "simcse", " mntp ")] == [0, 1, 2, 1, 0]
    for bad in ("0", "4", "02-mntp", "nope"):
        with pytest.raises(UsageError, match=r"(?s)--until .*1\.\.3.*01-mntp, 02-simcse, 03-supervised"):
            stage_index(recipe, bad, "--until")
    twice = _load(project / "resume.yaml", "stages.1.kind=simcse", "stages.1.data.path=./sentences.txt")
    with pytest.raises(UsageError, match="'simcse' occurs 2 times, name its folder"):
        stage_index(twice, "simcse", "--from")
    assert stage_index(twice, "02-simcse") == 1


def test_until_and_from_in_the_plan_and_dry_run(project, capsys):
    from llm2vec_lite.cli import main
    from llm2vec_lite.errors import UsageError
    from llm2vec_lite.pipeline import convert, plan

    out = project / "out-range"
    recipe = _load(project / "recipe.yaml", f"output_dir={out}")
    assert [p.action for p in plan(recipe, until="simcse")] == ["run", "run", "later"]
    assert [p.action for p in plan(recipe, start=2)] == ["missing", "run", "run"]
    with pytest.raises(UsageError, match="--from 3 comes after --until 1"):
        plan(recipe, start=3, until=1)
    with pytest.raises(RecipeError, match=r"(?s)--from 02-simcse: earlier stages are not finished.*stage 1 mntp"):
        convert(recipe, start="02-simcse")  # before any model loads: nothing is written
    assert not out.exists()

    _fake_finished(recipe, 0)
    assert [p.action for p in plan(recipe, start=2, until=2)] == ["skip", "run", "later"]
    assert main(["convert", str(project / "recipe.yaml"), f"output_dir={out}", "--dry-run",
                 "--from", "simcse", "--until", "02-simcse"]) == 0
    text = capsys.readouterr().out
    assert "[SKIP] stage 1 mntp" in text and "reused (--from simcse)" in text
    assert "[RUN ] stage 2 simcse" in text and "[LATER] stage 3 supervised" in text
    assert "stops after stage 2: no final encoder" in text and "final encoder:" not in text
    assert main(["convert", str(project / "recipe.yaml"), "--dry-run", "--until", "nope"]) == 2
    assert "--until nope: no stage 'nope'" in capsys.readouterr().err


def test_until_then_from_trains_each_stage_once(project):
    from llm2vec_lite.pipeline import convert

    out = project / "out-steps"
    recipe = _load(project / "resume.yaml", f"output_dir={out}", "stages.0.steps=1", "stages.1.steps=1")
    assert convert(recipe, until=1) == out / "01-simcse"
    assert not (out / "02-supervised").exists() and not (out / "final").exists()
    first = (out / "01-simcse" / "stage.json").stat().st_mtime_ns
    assert convert(recipe, start="supervised") == out / "final"
    assert (out / "01-simcse" / "stage.json").stat().st_mtime_ns == first  # reused, not retrained
    info = json.loads((out / "02-supervised" / "stage.json").read_text())
    assert info["source"] == str(out / "01-simcse")


def test_bf16_training_merges_into_float32_and_trains_with_eager_attention(project, caplog):
    """Under bf16 autocast the frozen base is stored in bf16 for the stage (frozen_base) and a CPU
    trains with eager attention (runtime.training_attention); the merge must still happen on the
    float32 base."""
    from llm2vec_lite.pipeline import convert

    out = project / "out-bf16"
    recipe = _load(
        project / "resume.yaml", f"output_dir={out}", "autocast=bf16", "attn_implementation=sdpa",
        "stages.0.steps=1", "stages.1.steps=2",
    )
    with caplog.at_level("INFO", logger="llm2vec_lite.pipeline"):
        convert(recipe, until=1)
    assert "training with eager attention (sdpa" in caplog.text
    w = next(v for k, v in _weights(out / "01-simcse").items() if k.endswith("0.self_attn.q_proj.weight"))
    base = next(v for k, v in _weights(project / "tiny-llama").items() if k.endswith("0.self_attn.q_proj.weight"))
    assert w.dtype == torch.float32
    # merged in float32 onto the exact base, the change is the adapter's B @ A: rank <= r (8);
    # a base rounded to bf16 anywhere on the way adds full-rank rounding noise
    singular = torch.linalg.svdvals((w - base).double())
    assert singular[0] > 0, "the stage changed nothing"
    assert singular[8] < 1e-4 * singular[0], f"not a rank-8 update: {singular[:10]}"


def test_the_final_folder_says_whether_training_put_instructions_on_queries(project):
    from llm2vec_lite.pipeline import reads_task_instructions

    recipe = project / "recipe.yaml"
    assert reads_task_instructions(_load(recipe)) is False  # tiny-smoke: plain triplets
    assert reads_task_instructions(_load(recipe, "stages.2.query_instruction=Find it: ")) is True
    assert reads_task_instructions(_load(recipe, "stages.2.data.query_instruction=Find it: ")) is True
    assert reads_task_instructions(_load(recipe, "stages.2.data.instruction_column=task")) is True
    # a document-side prefix alone is not a task instruction: queries stay plain
    assert reads_task_instructions(_load(recipe, "stages.2.document_instruction=passage: ")) is False
