"""The fast training path changes speed, not results: a few steps of each stage against the plain path.

Plain path: the MNTP loss from the LM head over every position (``model(..., labels=...).loss``),
contrastive batches embedded in one padded forward (no length bucketing), peft's own LoRA forward.
Fast path: what the pipeline runs (head on masked positions only, length-bucketed embedding,
shared LoRA dropout, sibling adapters fused, frozen base stored in bf16 under bf16 autocast).
Tolerances: float32 on both sides agrees to summation order (rtol 1e-4 on losses and on the LoRA
weights after 3 steps); the fast path under bf16 autocast against the plain float32 path agrees to
bf16 rounding (losses within 3% relative), which is the promise the docs make.
"""

from __future__ import annotations

import json

import pytest
import torch
from tiny_project import load_tiny

from llm2vec_lite.runtime.frozen_base import frozen_linears_in
from llm2vec_lite.runtime.fused_lora import fused_lora
from llm2vec_lite.stages import get_stage
from llm2vec_lite.trainer import LoopSettings, make_accelerator, train

INDEX = {"mntp": 0, "simcse": 1, "supervised": 2}


def _plain(kind: str, stage_cls):
    """The stage with the plain loss computation (see module docstring)."""

    class Plain(stage_cls):
        def loss(self, model, batch):
            if kind == "mntp":
                device = next(model.parameters()).device
                return model(**{k: v.to(device) for k, v in batch.data.items()}, use_cache=False).loss
            import llm2vec_lite.stages.base as module  # Stage.embed reads the bucket size there

            saved = module.EMBED_BUCKET_TOKENS
            module.EMBED_BUCKET_TOKENS = None  # one padded forward for the whole batch
            try:
                return super().loss(model, batch)
            finally:
                module.EMBED_BUCKET_TOKENS = saved

    return Plain


def _run(recipe, kind: str, cls, autocast: str, work, fast: bool = True):
    i = INDEX[kind]
    cfg = recipe.stages[i]
    if kind == "simcse":
        cfg = cfg.model_copy(update={"dropout": 0.0})  # dropout draws depend on shapes: compare without
    stage = cls(cfg, recipe, i)
    model, tok = load_tiny(recipe, head=stage.head)
    model = stage.setup(model, tok)
    settings = LoopSettings(steps=3, learning_rate=2e-3, checkpoint_every=0)
    low = torch.bfloat16 if autocast == "bf16" and fast else None
    with frozen_linears_in(model, low), fused_lora(model, enabled=fast):  # as the pipeline does
        train(stage, model, settings, work_dir=work, accelerator=make_accelerator(autocast))
    losses = [json.loads(ln)["loss"] for ln in (work / "metrics.jsonl").read_text().splitlines()]
    weights = {n: p.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}
    return losses, weights


@pytest.mark.parametrize("kind", ["mntp", "simcse", "supervised"])
def test_fast_path_equals_plain_path_in_float32(recipe, kind, tmp_path):
    stage_cls = get_stage(kind)
    fast_losses, fast_w = _run(recipe, kind, stage_cls, "none", tmp_path / "fast")
    plain_losses, plain_w = _run(recipe, kind, _plain(kind, stage_cls), "none", tmp_path / "plain", fast=False)
    torch.testing.assert_close(torch.tensor(fast_losses), torch.tensor(plain_losses), rtol=1e-4, atol=1e-6)
    assert fast_losses[-1] != fast_losses[0]  # the weights moved
    for name in plain_w:
        torch.testing.assert_close(fast_w[name], plain_w[name], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["mntp", "supervised"])
def test_fast_path_under_bf16_stays_within_rounding_of_float32(recipe, kind, tmp_path):
    stage_cls = get_stage(kind)
    fast_losses, _ = _run(recipe, kind, stage_cls, "bf16", tmp_path / "fast")
    plain_losses, _ = _run(recipe, kind, _plain(kind, stage_cls), "none", tmp_path / "plain", fast=False)
    torch.testing.assert_close(torch.tensor(fast_losses), torch.tensor(plain_losses), rtol=3e-2, atol=1e-3)
