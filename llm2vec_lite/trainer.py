"""The one training loop every stage runs on, built on accelerate.

Stages (:class:`llm2vec_lite.stages.base.Stage`) supply ``batches(start)`` and
``loss(model, batch)``, or, when ``supports_gradcache()`` says so, ``gradcache_backward``; this
file does the rest, top to bottom the way nanoGPT's train.py does: resume, then
per step micro-batches with gradient accumulation, clip, optimizer and scheduler step, log,
checkpoint.

- Mixed precision: ``Accelerator(mixed_precision="bf16")`` autocasts the forward where bf16 is fast
  (the weights stay float32); :func:`llm2vec_lite.runtime.policy.mixed_precision` decides, for encoding too.
- Multi-process: run under ``accelerate launch``; the model is wrapped in DDP by
  ``accelerator.prepare`` and the stages gather contrastive candidates across processes.
  ``batch_size`` in a recipe is the GLOBAL micro-batch, so 1 and N processes train the same thing.
- Logging: a tqdm bar with loss and throughput (seq/s, tok/s), one JSON line per logged step in
  ``<work_dir>/metrics.jsonl``, accelerate trackers when the accelerator has any, and a loss-curve
  PNG at the end (if matplotlib is installed).
- Faults: a non-finite loss raises :class:`~llm2vec_lite.errors.TrainingError` naming the step,
  before the optimizer touches the weights, so the last checkpoint stays the last good one.
  Checkpoints (see :mod:`llm2vec_lite.checkpoint`) let a killed stage continue bit-for-bit.

Callbacks: ``train(..., callbacks=[...])`` calls each ``callback(kind, step)`` after every optimizer
step, once that step is logged and checkpointed (a :data:`StepCallback`). The loop itself has no
test-only code: the kill-and-resume tests install a callback that hard-exits the process there
(``tests/kill_after_step.py``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llm2vec_lite.checkpoint import (
    capture_rng,
    latest_checkpoint,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from llm2vec_lite.errors import TrainingError
from llm2vec_lite.runtime.policy import PeakRSS

logger = logging.getLogger(__name__)

__all__ = ["LoopSettings", "StepCallback", "TrainResult", "checkpointing_advice", "make_accelerator", "train"]

StepCallback = Callable[[str, int], None]
"""Called as ``callback(stage_kind, step)`` after optimizer step ``step`` (1-based) is logged and
checkpointed; an exception it raises stops training there."""


@dataclass
class LoopSettings:
    """The loop's knobs, read from a recipe stage (see ``StageBase`` in :mod:`llm2vec_lite.recipe.schema`)."""

    steps: int
    learning_rate: float
    warmup_steps: int = 0
    schedule: str = "linear"
    schedule_steps: int | None = None
    weight_decay: float = 0.0
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = False
    compile: bool = False
    max_grad_norm: float | None = 1.0
    checkpoint_every: int = 50
    log_every: int = 1
    seed: int = 0

    @classmethod
    def from_stage(cls, stage_cfg: Any, seed: int) -> LoopSettings:
        """Copy the loop fields of a recipe stage; the stage's own ``seed`` wins over ``seed``."""
        names = [f for f in cls.__dataclass_fields__ if f != "seed"]
        values = {n: getattr(stage_cfg, n) for n in names if getattr(stage_cfg, n, None) is not None}
        if "max_grad_norm" in cls.__dataclass_fields__ and hasattr(stage_cfg, "max_grad_norm"):
            values["max_grad_norm"] = stage_cfg.max_grad_norm
        stage_seed = getattr(stage_cfg, "seed", None)
        return cls(**values, seed=seed if stage_seed is None else stage_seed)


@dataclass
class TrainResult:
    """Summary of a finished stage, stored in its ``stage.json``."""

    steps: int
    resumed_from: int
    first_loss: float
    final_loss: float
    wall_time_s: float
    sequences_per_s: float
    tokens_per_s: float
    processes: int = 1
    peak_rss_mib: float | None = None  # highest resident memory during this stage's steps (main process)
    peak_gpu_mib: float | None = None  # highest CUDA memory allocated by torch during the steps (CUDA only)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def make_accelerator(autocast: str = "auto", **kwargs: Any):
    """An ``Accelerator`` with bf16 autocast where it helps.

    ``autocast``: ``"auto"`` -> bf16 where the device computes it fast (CUDA with bf16, CPUs with AMX or
    AVX512-BF16; see :mod:`llm2vec_lite.runtime.policy`), else float32; ``"bf16"`` / ``"fp16"`` / ``"none"``
    force it. accelerate keeps one global state per process;
    in a single process we reset it so that successive conversions (tests, notebooks) may differ.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    from llm2vec_lite.runtime.policy import mixed_precision, training_device

    mixed = mixed_precision(autocast, training_device())
    if not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Launched as several processes on a CPU-only machine (`accelerate launch --multi_gpu` or
        # torchrun): accelerate only sets up gloo / MULTI_CPU when told it runs on the CPU.
        kwargs.setdefault("cpu", True)
    try:
        return Accelerator(mixed_precision=mixed, **kwargs)
    except ValueError:
        if PartialState().num_processes > 1:
            raise
        AcceleratorState._reset_state(reset_partial_state=True)
        return Accelerator(mixed_precision=mixed, **kwargs)


def checkpointing_advice(settings: LoopSettings, device_type: str, gradcache: bool) -> str | None:
    """A warning for gradient checkpointing with compiled blocks on a CPU, or None.

    The two do not combine well there: on the demo's retrieval stage (2-core AMX CPU) a step took
    20 s against 6 s with compiled blocks alone (docs/performance.md). For less memory in a
    contrastive stage, GradCache holds activations to a chunk at the cost of one more forward pass.
    """
    if not (settings.gradient_checkpointing and settings.compile and device_type == "cpu"):
        return None
    instead = "" if gradcache else "; for less memory set gradcache_chunk_size on a supervised stage instead"
    return (
        "gradient_checkpointing with compiled blocks on a CPU: steps ran about 3x slower than compiled "
        f"blocks alone (docs/performance.md); set compile: false or gradient_checkpointing: false{instead}"
    )


def _trainable(model) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def train(
    stage,
    model,
    settings: LoopSettings,
    *,
    work_dir: Path,
    accelerator,
    fingerprint: str = "",
    callbacks: Sequence[StepCallback] = (),
) -> TrainResult:
    """Train ``model`` (a peft model with only the adapter trainable) with ``stage``'s loss.

    Args:
        stage: a :class:`~llm2vec_lite.stages.base.Stage`.
        model: the model to train, in place.
        settings: loop settings (steps, lr schedule, accumulation, clipping, checkpoints).
        work_dir: where ``checkpoints/``, ``metrics.jsonl`` and ``loss.png`` go. A finished
            checkpoint there with the same ``fingerprint`` is resumed from.
        accelerator: from :func:`make_accelerator`.
        fingerprint: the stage fingerprint; checkpoints of another fingerprint are ignored.
        callbacks: each is called as ``callback(stage.kind, step)`` after every optimizer step,
            once the step is logged and checkpointed (see :data:`StepCallback`).

    Returns:
        A :class:`TrainResult`.

    Raises:
        TrainingError: If the loss is NaN or inf (names the step), or nothing is trainable.
    """
    from llm2vec_lite.schedule import make_scheduler

    s, acc, main = settings, accelerator, accelerator.is_main_process
    work_dir = Path(work_dir)
    ckpt_root = work_dir / "checkpoints"
    params = list(_trainable(model).values())
    if not params:
        raise TrainingError(f"stage {stage.kind!r}: the model has no trainable parameters")
    if s.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if main and (advice := checkpointing_advice(s, acc.device.type, stage.supports_gradcache())):
        logger.warning("stage %s: %s", stage.kind, advice)
    if s.compile:
        from llm2vec_lite.runtime.block_compile import compile_blocks

        logger.info("stage %s: compiling %d transformer blocks (the first steps are slow)", stage.kind, compile_blocks(model))
    optimizer = torch.optim.AdamW(params, lr=s.learning_rate, weight_decay=s.weight_decay)
    scheduler = make_scheduler(optimizer, s)  # decays towards schedule_steps (default: steps)

    # Resume: weights, optimizer, scheduler, RNG and data position of the newest good checkpoint.
    step, position, ckpt_path = 0, 0, latest_checkpoint(ckpt_root)
    ckpt = load_checkpoint(ckpt_path) if ckpt_path else None
    if ckpt and ckpt.fingerprint != fingerprint:
        logger.warning("discarding %s: written for another recipe (fingerprint %s)", ckpt.path, ckpt.fingerprint)
        ckpt = None
        acc.wait_for_everyone()
        if main:
            shutil.rmtree(ckpt_root, ignore_errors=True)
    if ckpt:
        named = _trainable(model)
        with torch.no_grad():
            for name, value in ckpt.trainable.items():
                named[name].copy_(value)
        optimizer.load_state_dict(ckpt.optimizer)
        scheduler.load_state_dict(ckpt.scheduler)
        step, position = ckpt.step, ckpt.position
        restore_rng(ckpt.rng[min(acc.process_index, len(ckpt.rng) - 1)])
        logger.info("stage %s: resuming from %s (step %d)", stage.kind, ckpt.path, step)
    else:
        from accelerate.utils import set_seed

        set_seed(s.seed, device_specific=True)  # each process its own dropout noise
    resumed_from = step
    model, optimizer = acc.prepare(model, optimizer)
    metrics_path = work_dir / "metrics.jsonl"
    if main:
        work_dir.mkdir(parents=True, exist_ok=True)
        _truncate_metrics(metrics_path, step)
    gradcache = stage.supports_gradcache()  # the stage then runs its own chunked backward passes
    batches = stage.batches(position)

    from tqdm.auto import tqdm

    bar = tqdm(total=s.steps, initial=step, desc=stage.kind, disable=not main, dynamic_ncols=True)
    model.train()
    t_start, seqs_total, toks_total, first_loss, loss_val = time.perf_counter(), 0, 0, None, float("nan")
    rss = PeakRSS()
    on_cuda = acc.device.type == "cuda"
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(acc.device)
    with rss:  # this stage's memory peak, for stage.json
        while step < s.steps:
            t0, loss_sum, seqs, toks = time.perf_counter(), torch.zeros((), device=acc.device), 0, 0
            for micro in range(s.gradient_accumulation_steps):
                batch = next(batches)
                position += 1
                sync = micro == s.gradient_accumulation_steps - 1  # all-reduce gradients once per step
                if gradcache:
                    loss = stage.gradcache_backward(
                        model, batch, scale=1 / s.gradient_accumulation_steps, accelerator=acc, sync=sync
                    )
                else:
                    with contextlib.nullcontext() if sync else acc.no_sync(model):
                        loss = stage.loss(model, batch)
                        # scale the loss so accumulated gradients average over micro-batches
                        acc.backward(loss / s.gradient_accumulation_steps)
                loss_sum += loss.detach().float() / s.gradient_accumulation_steps
                seqs, toks = seqs + batch.sequences, toks + batch.tokens
            loss_val = acc.reduce(loss_sum, reduction="mean").item()  # same value on every process
            extra = _reduce_metrics(acc, stage.take_metrics())
            if not math.isfinite(loss_val):
                last = latest_checkpoint(ckpt_root)
                raise TrainingError(
                    f"stage {stage.kind!r}: loss is {loss_val} at step {step + 1}; weights not updated. "
                    f"Last good checkpoint: {last or 'none'}. Lower learning_rate "
                    f"(now {s.learning_rate}) or check the data."
                )
            grad_norm = acc.clip_grad_norm_(params, s.max_grad_norm) if s.max_grad_norm else None
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            first_loss = loss_val if first_loss is None else first_loss

            dt = time.perf_counter() - t0
            seqs, toks = seqs * acc.num_processes, toks * acc.num_processes
            seqs_total, toks_total = seqs_total + seqs, toks_total + toks
            record = {
                "step": step,
                "loss": loss_val,
                "lr": scheduler.get_last_lr()[0],
                "grad_norm": None if grad_norm is None else float(grad_norm),
                **extra,
                "seq_per_s": seqs / dt,
                "tok_per_s": toks / dt,
                "time_s": time.perf_counter() - t_start,
            }
            bar.update(1)
            bar.set_postfix(
                loss=f"{loss_val:.4f}",
                **{k: f"{v:.3f}" for k, v in extra.items()},
                seq_s=f"{seqs / dt:.1f}",
                tok_s=f"{toks / dt:.0f}",
            )
            if main and (step % s.log_every == 0 or step == s.steps):
                with metrics_path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
            if acc.trackers:
                acc.log({f"{stage.kind}/{k}": v for k, v in record.items() if v is not None and k != "step"}, step=step)
            if s.checkpoint_every and step % s.checkpoint_every == 0 and step < s.steps:
                _checkpoint(acc, model, optimizer, scheduler, ckpt_root, step, position, fingerprint)
            for callback in callbacks:
                callback(stage.kind, step)
    bar.close()
    wall = time.perf_counter() - t_start
    acc.wait_for_everyone()
    unwrapped = acc.unwrap_model(model, keep_fp32_wrapper=False)  # drops the autocast forward wrapper
    if s.gradient_checkpointing:
        unwrapped.gradient_checkpointing_disable()
    if s.compile:
        from llm2vec_lite.runtime.block_compile import uncompile_blocks

        uncompile_blocks(unwrapped)
    acc.free_memory(model, optimizer)  # the accelerator keeps references otherwise
    if main:
        _plot_losses(metrics_path, work_dir / "loss.png", stage.kind)
    return TrainResult(
        steps=step,
        resumed_from=resumed_from,
        first_loss=float("nan") if first_loss is None else first_loss,
        final_loss=loss_val,
        wall_time_s=wall,
        sequences_per_s=seqs_total / wall if wall > 0 else 0.0,
        tokens_per_s=toks_total / wall if wall > 0 else 0.0,
        processes=acc.num_processes,
        peak_rss_mib=rss.peak_mib,
        peak_gpu_mib=torch.cuda.max_memory_allocated(acc.device) / 2**20 if on_cuda else None,
    )


def _reduce_metrics(acc, metrics: dict[str, torch.Tensor]) -> dict[str, float]:
    """A stage's diagnostics averaged over processes in one collective (not one per metric)."""
    if not metrics:
        return {}
    names = sorted(metrics)  # the same order on every process
    means = acc.reduce(torch.stack([metrics[k] for k in names]).to(acc.device), reduction="mean")
    return dict(zip(names, means.tolist(), strict=True))


def _checkpoint(acc, model, optimizer, scheduler, root: Path, step: int, position: int, fingerprint: str) -> None:
    """Save a checkpoint from the main process, with every process's RNG state."""
    from accelerate.utils import gather_object

    rng = gather_object([capture_rng()]) if acc.num_processes > 1 else [capture_rng()]
    if acc.is_main_process:
        trainable = _trainable(acc.unwrap_model(model))
        save_checkpoint(
            root, step=step, position=position, fingerprint=fingerprint, trainable=trainable,
            optimizer=optimizer, scheduler=scheduler, rng=rng,
        )
    acc.wait_for_everyone()


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop logged lines past ``step`` (left by a run that died after its last checkpoint)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln and json.loads(ln)["step"] <= step]
    path.write_text("".join(ln + "\n" for ln in keep), encoding="utf-8")


def _plot_losses(metrics_path: Path, png_path: Path, title: str) -> None:
    """Write the loss curve as a PNG; skipped (with a log line) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.info("matplotlib not installed: no loss curve for stage %s", title)
        return
    if not metrics_path.exists():
        return
    rows = [json.loads(ln) for ln in metrics_path.read_text(encoding="utf-8").splitlines() if ln]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows])
    ax.set(xlabel="step", ylabel="loss", title=f"{title} loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
