"""``compile: true``: blocks compiled while a stage trains, same losses as eager, checked before weights load."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "recipes"))

from tiny_project import make_tiny_project  # noqa: E402

from llm2vec_lite.errors import RecipeError  # noqa: E402
from llm2vec_lite.runtime.block_compile import compile_blocks, compile_problems, compiles, uncompile_blocks  # noqa: E402


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The tiny project's recipe file."""
    return make_tiny_project(tmp_path_factory.mktemp("compile"))


def _load(project: Path, *overrides: str):
    from llm2vec_lite.recipe import load_recipe

    return load_recipe(project, list(overrides))


def test_compile_leaves_the_fingerprint_alone(project):
    assert _load(project, "stages.2.compile=true").fingerprint == _load(project).fingerprint


def test_no_compiler_is_a_recipe_error_before_weights_load(project, monkeypatch):
    from llm2vec_lite import checks

    monkeypatch.setenv("ACCELERATE_USE_CPU", "1")
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr("llm2vec_lite.runtime.block_compile.shutil.which", lambda name: None)
    recipe = _load(project, "stages.2.compile=true")
    assert compile_problems(recipe.stages, "cuda") == []  # inductor's GPU path needs no C++ compiler
    assert compile_problems(_load(project).stages, "cpu") == []
    with pytest.raises(RecipeError, match=r"stages\[2\]\.compile = true: torch.compile needs a C\+\+ compiler"):
        checks.preflight(recipe)


def test_auto_compiles_where_inductor_can_and_is_never_a_preflight_error(project, monkeypatch):
    """``compile: auto`` (the demo recipe's setting) trains eager on a CPU without a C++ compiler
    instead of stopping the conversion; explicit true/false are taken as they are."""
    monkeypatch.delenv("CXX", raising=False)
    recipe = _load(project, "stages.2.compile=auto")
    assert recipe.stages[2].compile == "auto"
    assert recipe.fingerprint == _load(project).fingerprint
    monkeypatch.setattr("llm2vec_lite.runtime.block_compile.shutil.which", lambda name: None)
    assert compiles("auto", "cpu") is False
    assert compiles("auto", "cuda") is True
    assert compiles(True, "cpu") is True and compiles(False, "cuda") is False
    assert compile_problems(recipe.stages, "cpu") == []
    monkeypatch.setattr("llm2vec_lite.runtime.block_compile.shutil.which", lambda name: f"/usr/bin/{name}")
    assert compiles("auto", "cpu") is True
    with pytest.raises(RecipeError, match=r"compile"):
        _load(project, "stages.2.compile=sometimes")


def test_compiled_blocks_match_eager_and_come_back_uncompiled():
    from llm2vec_lite.patches import get_patch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    torch.manual_seed(0)
    base = AutoModel.from_config(get_patch("llama").tiny_config(), attn_implementation="eager")
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    model = get_peft_model(base, lora).train()
    ids = torch.randint(4, 128, (3, 9))

    def loss_and_grads():
        model.zero_grad(set_to_none=True)
        loss = model(input_ids=ids).last_hidden_state.pow(2).mean()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    eager_loss, eager_grads = loss_and_grads()
    assert compile_blocks(model) == base.config.num_hidden_layers
    loss, grads = loss_and_grads()
    torch.testing.assert_close(loss, eager_loss, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, eager_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    uncompile_blocks(model)
    assert all(block._compiled_call_impl is None for block in base.layers)


def test_a_compiled_stage_logs_the_losses_of_an_eager_one(project):
    """Through convert: a supervised stage (no dropout) with compile: true against the same stage
    without, in float32 (under bf16 autocast fused kernels round differently: about 6e-4 apart)."""
    from llm2vec_lite.pipeline import convert

    losses = {}
    for flag in ("false", "true"):
        out = project.parent / f"out-{flag}"
        recipe = _load(
            project, f"output_dir={out}", "autocast=none", "stages.0.steps=1", "stages.1.steps=1", "stages.2.steps=3",
            f"stages.2.compile={flag}",
        )
        convert(recipe)
        rows = (out / "03-supervised" / "metrics.jsonl").read_text().splitlines()
        losses[flag] = [json.loads(row)["loss"] for row in rows]
    assert len(losses["true"]) == 3
    assert losses["true"] == pytest.approx(losses["false"], rel=1e-4)
