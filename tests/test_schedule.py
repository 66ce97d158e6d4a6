"""Learning-rate schedules: every shape warms up, then decays towards schedule_steps (default: steps)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch

from llm2vec_lite.schedule import make_scheduler, summarize_schedule
from llm2vec_lite.stages.base import Stage
from llm2vec_lite.trainer import LoopSettings


def _expected(schedule: str, k: int, warmup: int, horizon: int) -> float:
    """The multiplier at scheduler index k, written out by hand (not through transformers)."""
    if k < warmup:
        return k / warmup
    if schedule == "constant":
        return 1.0
    progress = (k - warmup) / (horizon - warmup)
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _factors(settings: LoopSettings, n: int) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=settings.learning_rate)
    scheduler = make_scheduler(optimizer, settings)
    return [scheduler.lr_lambdas[0](k) for k in range(n)]


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
@pytest.mark.parametrize("schedule_steps", [None, 40])
def test_every_schedule_warms_up_then_follows_its_shape(schedule, schedule_steps):
    s = LoopSettings(steps=10, learning_rate=1e-3, warmup_steps=4, schedule=schedule, schedule_steps=schedule_steps)
    horizon = schedule_steps or 10
    got = _factors(s, 10)
    assert got[:5] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])  # the warmup is never skipped
    assert got == pytest.approx([_expected(schedule, k, 4, horizon) for k in range(10)])


def test_constant_keeps_the_peak_after_warmup():
    """transformers' own 'constant' ignores warmup_steps; ours must not."""
    got = _factors(LoopSettings(steps=8, learning_rate=1.0, warmup_steps=2, schedule="constant"), 8)
    assert got == pytest.approx([0.0, 0.5] + [1.0] * 6)


def test_a_long_horizon_keeps_the_rate_near_its_peak():
    """LLM2Vec's runs: 3 epochs as the decay horizon, stopped after 1000 steps."""
    short = summarize_schedule(LoopSettings(steps=1000, learning_rate=2e-4, warmup_steps=300))
    long = summarize_schedule(LoopSettings(steps=1000, learning_rate=2e-4, warmup_steps=300, schedule_steps=8800))
    assert short.last == pytest.approx(2e-4 * 1 / 700)
    assert long.last == pytest.approx(2e-4 * (8800 - 999) / 8500)
    assert long.horizon == 8800 and long.first == 0.0 and long.peak == 2e-4
    assert "decays towards step 8800" in long.describe() and "92% of peak" in long.describe()


def test_loop_settings_read_the_horizon_from_the_stage():
    from llm2vec_lite.recipe import SupervisedStage

    stage = SupervisedStage(kind="supervised", data="x.tsv", steps=10, batch_size=2, learning_rate=1e-3,
                            schedule_steps=30)
    assert LoopSettings.from_stage(stage, seed=0).schedule_steps == 30


@dataclass
class _Batch:
    data: torch.Tensor
    sequences: int = 1
    tokens: int = 1


class _QuadraticStage(Stage):
    """The smallest stage the loop accepts: fit one weight to 0."""

    kind: ClassVar[str] = "toy"

    def __init__(self) -> None:  # no recipe: the loop reads only kind, batches and loss
        pass

    def check_data(self) -> None:
        pass

    def batches(self, start: int):
        while True:
            yield _Batch(torch.ones(1))

    def loss(self, model, batch: _Batch) -> torch.Tensor:
        return (model(batch.data) ** 2).sum()


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
def test_the_training_loop_runs_the_stage_schedule(schedule, tmp_path):
    from llm2vec_lite.trainer import make_accelerator, train

    settings = LoopSettings(steps=6, learning_rate=0.1, warmup_steps=2, schedule=schedule, schedule_steps=12,
                            checkpoint_every=100, max_grad_norm=None)
    model = torch.nn.Linear(1, 1, bias=False)
    train(_QuadraticStage(), model, settings, work_dir=tmp_path, accelerator=make_accelerator("none"))
    logged = [json.loads(line)["lr"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    # metrics log the rate after each step, i.e. the one the next step uses (index k after step k)
    assert logged == pytest.approx([0.1 * _expected(schedule, k, 2, 12) for k in range(1, 7)])
