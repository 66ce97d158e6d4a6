"""The learning-rate schedule of a stage: one function builds it, the dry run summarises it.

A stage's ``schedule`` names the shape after ``warmup_steps`` of linear warmup from 0:

- ``linear``: decays linearly to 0 at the horizon;
- ``cosine``: half a cosine from the peak to 0 at the horizon;
- ``constant``: stays at the peak (transformers' ``constant_with_warmup``; its plain ``constant``
  would silently skip the warmup).

The horizon is ``schedule_steps`` when set, else ``steps``: training stops after ``steps``
optimizer steps either way. A horizon past ``steps`` reproduces runs such as the LLM2Vec authors',
who set 3 epochs (the decay horizon of the HF Trainer) and stopped after 1000 steps with a
callback, so their learning rate stayed near its peak for the whole run.

Usage::

    from llm2vec_lite.schedule import make_scheduler, summarize_schedule
    scheduler = make_scheduler(optimizer, settings)   # settings: LoopSettings or a recipe stage
    summarize_schedule(stage).describe()              # "peak 2e-04 after 300 warmup steps, ..."

Both go through transformers' ``get_scheduler``, so the summary is the curve training runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ScheduleSummary", "TRANSFORMERS_SCHEDULES", "make_scheduler", "schedule_horizon", "summarize_schedule"]

# Recipe name -> transformers scheduler name.
TRANSFORMERS_SCHEDULES = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}


def schedule_horizon(settings: Any) -> int:
    """The step at which the schedule reaches its end: ``schedule_steps``, else ``steps``."""
    return getattr(settings, "schedule_steps", None) or settings.steps


def make_scheduler(optimizer, settings: Any):
    """The ``LambdaLR`` of ``settings`` (``schedule``, ``warmup_steps``, ``steps``, ``schedule_steps``).

    Raises:
        ValueError: If ``schedule`` is not linear, cosine or constant.
    """
    from transformers import get_scheduler

    try:
        name = TRANSFORMERS_SCHEDULES[settings.schedule]
    except KeyError:
        raise ValueError(
            f"schedule = {settings.schedule!r}: must be one of {', '.join(TRANSFORMERS_SCHEDULES)}"
        ) from None
    return get_scheduler(
        name, optimizer, num_warmup_steps=settings.warmup_steps, num_training_steps=schedule_horizon(settings)
    )


@dataclass(frozen=True)
class ScheduleSummary:
    """What a reader compares with a paper: the peak, where the run ends on the curve, the horizon.

    Attributes:
        schedule: ``linear``, ``cosine`` or ``constant``.
        peak: the learning rate after warmup.
        warmup_steps: steps of linear warmup.
        steps: optimizer steps trained.
        horizon: the step the schedule decays towards (``schedule_steps`` or ``steps``).
        first: learning rate of the first optimizer step.
        last: learning rate of the last optimizer step (step ``steps``).
    """

    schedule: str
    peak: float
    warmup_steps: int
    steps: int
    horizon: int
    first: float
    last: float

    def describe(self) -> str:
        """One line for ``convert --dry-run``."""
        share = f" ({self.last / self.peak:.0%} of peak)" if self.peak else ""
        horizon = "" if self.horizon == self.steps else f"; decays towards step {self.horizon}"
        return (
            f"{self.schedule}, peak {self.peak:.3g} after {self.warmup_steps} warmup steps, "
            f"{self.last:.3g} at the last step {self.steps}{share}{horizon}"
        )


def summarize_schedule(settings: Any) -> ScheduleSummary:
    """Run ``settings``' scheduler on a throw-away optimizer and read off its curve.

    The lr of optimizer step ``k`` (1-based) is the schedule's value at index ``k - 1``, which is
    what the training loop uses (it steps the scheduler after each optimizer step).
    """
    import torch

    lr = settings.learning_rate
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    factor = make_scheduler(optimizer, settings).lr_lambdas[0]
    return ScheduleSummary(
        schedule=settings.schedule,
        peak=lr,
        warmup_steps=settings.warmup_steps,
        steps=settings.steps,
        horizon=schedule_horizon(settings),
        first=lr * factor(0),
        last=lr * factor(settings.steps - 1),
    )
