"""Run a recipe's stages in order and write the final encoder folder.

For each stage: load the input model (the base model for the first stage, else the previous
stage's folder, or the stage's ``init_from``) bidirectionally, let the stage prepare it, attach a
fresh LoRA adapter (the recipe's ``lora`` block with the stage's overrides), train it on the one
loop (:func:`llm2vec_lite.trainer.train`), merge the adapter into the weights and save the merged
model and tokenizer as ``output_dir/NN-<kind>/`` with a ``stage.json`` (fingerprint, metrics summary,
wall time). ``output_dir/final/`` is then an :class:`~llm2vec_lite.encoder.Encoder` folder with a hub model
card, the recipe as it was run and its provenance (:mod:`llm2vec_lite.sharing`).

Re-running is safe:

- A stage folder whose ``stage.json`` carries the stage's fingerprint
  (:meth:`Recipe.stage_fingerprint`) is finished and skipped. One with another fingerprint is a
  different experiment: :func:`convert` refuses to touch it unless ``overwrite=True``.
- Stage folders are written under a temporary name and moved in place (``stage.json`` last), so a
  killed run never leaves a folder that looks finished.
- A stage killed mid-way resumes from its last checkpoint in ``output_dir/.work/NN-<kind>/``.
- Every stage's data is read and checked before the first model loads.

One stage at a time: ``convert(recipe, until="simcse")`` stops after that stage (no ``final/``),
``convert(recipe, start="02-simcse")`` reuses the finished stages before it and refuses to retrain
them (:func:`stage_index` reads the stage names).

Usage::

    from llm2vec_lite.recipe import load_recipe
    from llm2vec_lite.pipeline import convert
    final = convert(load_recipe("recipes/tiny.yaml"))
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm2vec_lite.checkpoint import atomic_dir, write_json
from llm2vec_lite.errors import RecipeError, UsageError
from llm2vec_lite.projection import load_projection
from llm2vec_lite.recipe_eval import CURVE_FILE, EVAL_FILE, curve_callback, evaluate_final
from llm2vec_lite.runtime.allocator import allocator_advice

if TYPE_CHECKING:
    from llm2vec_lite.trainer import StepCallback

logger = logging.getLogger(__name__)

__all__ = ["StagePlan", "convert", "format_plan", "in_batch_negatives", "plan", "stage_index"]

STAGE_FILE = "stage.json"


@dataclass
class StagePlan:
    """What :func:`convert` will do with one stage.

    Attributes:
        index: 0-based stage index.
        kind: ``mntp``, ``simcse`` or ``supervised``.
        folder: the stage's output folder.
        fingerprint: :meth:`Recipe.stage_fingerprint` of the stage.
        action: ``run``, ``skip`` (finished with this fingerprint), ``conflict`` (the folder
            holds something else; needs ``overwrite``), ``missing`` (before ``start`` and not
            finished: the run stops) or ``later`` (after ``until``: not run this time).
        reason: why, in words.
        source: the folder or model id the stage starts from.
        steps, batch_size, accumulation, max_length: training size.
        lora_params: trainable LoRA parameters (``None`` when they could not be counted).
    """

    index: int
    kind: str
    folder: Path
    fingerprint: str
    action: str
    reason: str
    source: str
    steps: int
    batch_size: int
    accumulation: int
    max_length: int
    lora_params: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def tokens_bound(self) -> int:
        """At most this many tokens are seen (steps * batch * accumulation * max_length)."""
        return self.steps * self.batch_size * self.accumulation * self.max_length


def _read_stage_json(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / STAGE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _source_for(recipe, index: int) -> str:
    stage = recipe.stages[index]
    if stage.init_from:
        return str(stage.init_from)
    if index == 0:
        return str(recipe.base_model)
    return str(recipe.stage_dir(index - 1))


def stage_index(recipe, spec: int | str, flag: str = "stage") -> int:
    """The 0-based index of the stage ``spec`` names: ``2`` or ``"2"`` (1-based), the folder name
    ``"02-simcse"``, or a kind (``"simcse"``) that occurs once in the recipe.

    Raises:
        UsageError: naming ``flag`` and the valid names, if ``spec`` names no stage or a kind that
            occurs more than once.
    """
    n = len(recipe.stages)
    names = [recipe.stage_dir(i).name for i in range(n)]
    text = str(spec).strip()
    kinds = [s.kind for s in recipe.stages]
    if text.isdigit() and 1 <= int(text) <= n:
        return int(text) - 1
    if text in names:
        return names.index(text)
    if kinds.count(text) == 1:
        return kinds.index(text)
    unique = [k for k in dict.fromkeys(kinds) if kinds.count(k) == 1]
    why = f"{text!r} occurs {kinds.count(text)} times, name its folder" if kinds.count(text) > 1 else f"no stage {text!r}"
    raise UsageError(
        f"{flag} {spec}: {why}; give a number 1..{n}, a folder name ({', '.join(names)})"
        + (f" or a kind that occurs once ({', '.join(unique)})" if unique else "")
    )


def plan(
    recipe,
    *,
    count_lora: bool = False,
    start: int | str | None = None,
    until: int | str | None = None,
    retrain: Collection[int] = (),
) -> list[StagePlan]:
    """Decide, for every stage, whether it runs, is skipped or conflicts with an existing folder.

    ``start`` and ``until`` (anything :func:`stage_index` reads) limit the run to those stages:
    stages before ``start`` must be finished (else ``missing``), stages after ``until`` are ``later``.

    A stage is skipped when its folder's ``stage.json`` carries its fingerprint and every stage of
    its ``init_from`` lineage (:meth:`Recipe.parent_stage`, back to the base model or a folder) is
    skipped too. The fingerprint already covers the lineage's settings, so an edited earlier stage
    shows up as a fingerprint change (a conflict); the lineage check adds the case the fingerprint
    cannot see: an earlier folder that is retrained with the same settings (deleted, half-written).
    A stage outside the lineage (``init_from: stages[0]`` next to a retrained stage 2) is kept.
    ``retrain`` names stages an earlier process of the same command left to train
    (:func:`~llm2vec_lite.runtime.stage_restart.stages_to_retrain`): they run even when finished.
    """
    first = 0 if start is None else stage_index(recipe, start, "--from")
    last = len(recipe.stages) - 1 if until is None else stage_index(recipe, until, "--until")
    if first > last:
        raise UsageError(
            f"--from {start} comes after --until {until}: stage {first + 1} > stage {last + 1}; "
            "--from names the first stage to train, --until the last"
        )
    plans = []
    for i, stage in enumerate(recipe.stages):
        folder = Path(recipe.stage_dir(i))
        fp = recipe.stage_fingerprint(i)
        info = _read_stage_json(folder)
        if not folder.exists():
            action, reason = "run", "not trained yet"
        elif info is None:
            action, reason = "conflict", f"{folder} exists but has no readable {STAGE_FILE}"
        elif info.get("fingerprint") == fp:
            action, reason = "skip", f"finished (fingerprint {fp})"
        else:
            action, reason = (
                "conflict",
                f"{folder} was trained with another recipe (fingerprint {info.get('fingerprint')}, now {fp})",
            )
        parent = recipe.parent_stage(i)  # its action already reflects the rest of the lineage
        if action == "skip" and parent is not None and plans[parent].action != "skip":
            q = plans[parent]
            action, reason = "run", f"its input, stage {q.index + 1} {q.kind}, is retrained"
        elif action == "skip" and i in retrain:
            action, reason = "run", "its input was retrained earlier in this command"
        if i < first and action == "skip":
            reason += f"; reused (--from {start})"
        elif i < first:
            action, reason = "missing", f"--from {start} reuses it, but it is not finished: {reason}"
        elif i > last:
            action, reason = "later", f"after --until {until}: not run now"
        p = StagePlan(
            index=i, kind=stage.kind, folder=folder, fingerprint=fp, action=action, reason=reason,
            source=_source_for(recipe, i), steps=stage.steps, batch_size=stage.batch_size,
            accumulation=stage.gradient_accumulation_steps, max_length=recipe.max_length_for(i),
        )
        p.notes += [f"data MISSING: {text}" for text in missing_data(stage)]
        if count_lora:
            try:
                p.lora_params = count_lora_parameters(recipe, i)
            except Exception as e:  # the plan is still useful without the count
                p.notes.append(f"LoRA parameters not counted: {type(e).__name__}: {e}")
        plans.append(p)
    return plans


def missing_data(stage) -> list[str]:
    """The stage's local data files that do not exist, each with the command that makes it if known."""
    out = []
    for src in stage.sources():
        if src.path is not None and not Path(src.path).is_file():
            out.append(src.path + (f" (make it with `{src.made_by}`)" if src.made_by else ""))
    return out


def count_lora_parameters(recipe, index: int) -> int:
    """Trainable LoRA parameters of stage ``index``, from the base model's config alone.

    The model is built on the meta device (no weights are read or allocated); every stage has the
    base model's architecture, so its config stands in for stages whose input does not exist yet.
    """
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    from llm2vec_lite.modeling import resolve_gguf, resolve_model_path

    path, gguf_file = resolve_gguf(resolve_model_path(recipe.base_model), recipe.gguf_file)
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    if recipe.revision:
        kwargs["revision"] = recipe.revision
    config = AutoConfig.from_pretrained(path, **kwargs)
    cls = AutoModelForCausalLM if recipe.stages[index].kind == "mntp" else AutoModel
    with torch.device("meta"):
        model = cls.from_config(config)
    if recipe.num_layers is not None:  # every stage trains the pruned model
        from llm2vec_lite.modeling import keep_first_layers

        keep_first_layers(model, recipe.num_layers)
    from llm2vec_lite.runtime.lora import with_lora

    peft_model = with_lora(model, recipe, index)
    return sum(p.numel() for p in peft_model.parameters() if p.requires_grad)


def format_plan(recipe, plans: list[StagePlan]) -> str:
    """The dry-run report: one block per stage, then the final folder."""
    from llm2vec_lite.schedule import summarize_schedule

    revision = f" @ {recipe.revision}" if recipe.revision else ""
    lines = [
        f"recipe {recipe.name} (fingerprint {recipe.fingerprint})",
        f"base model: {recipe.base_model}{revision}",
    ]
    for p in plans:
        stage = recipe.stages[p.index]
        lora = f"{p.lora_params:,}" if p.lora_params is not None else "?"
        verb = {"run": "RUN ", "skip": "SKIP", "conflict": "CONFLICT", "missing": "MISSING", "later": "LATER"}[
            p.action
        ]
        lines += [
            f"[{verb}] stage {p.index + 1} {p.kind}: {p.reason}",
            f"    from:   {p.source}",
            f"    steps:  {p.steps} x batch {p.batch_size}"
            + (f" x accumulation {p.accumulation}" if p.accumulation > 1 else "")
            + f", max_length {p.max_length} -> at most {p.tokens_bound:,} tokens",
            f"    lr:     {summarize_schedule(stage).describe()}",
            *([f"    negatives: {negatives}"] if (negatives := in_batch_negatives(stage)) else []),
            f"    LoRA:   {lora} trainable parameters (r={recipe.lora_for(p.index).r})",
            f"    output: {p.folder}",
            *[f"    note:   {n}" for n in p.notes],
        ]
    later = [p for p in plans if p.action == "later"]
    if later:
        lines.append(f"stops after stage {later[0].index}: no final encoder this time (--until)")
    else:
        lines.append(f"final encoder: {recipe.final_dir} (pooling {recipe.pooling})")
    if any(p.action == "conflict" for p in plans):
        lines.append("conflicting folders would stop the run; pass --overwrite to retrain them")
    return "\n".join(lines)


def _may_give_pairs(source) -> bool:
    """Whether a supervised source may give rows without a hard negative (see llm2vec_lite.data)."""
    two_columns = source.columns is not None and len(source.columns) == 2
    return two_columns or source.nli is not None or source.group_columns is not None


def in_batch_negatives(stage, processes: int | None = None) -> str | None:
    """How many candidates each query is scored against in one loss, in words (None: not contrastive).

    ``batch_size`` is the global micro-batch: under ``accelerate launch`` every process embeds its
    share and the candidates are gathered from all of them, so the count does not depend on the
    number of processes. Gradient accumulation does not add candidates (each micro-batch is its own
    loss); GradCache embeds the whole ``batch_size`` first, so all of it is in one loss.

    Args:
        stage: a recipe stage.
        processes: how many processes will train (default: ``WORLD_SIZE`` of ``accelerate launch``).
    """
    if processes is None:
        processes = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if stage.kind not in ("simcse", "supervised"):
        return None
    b = stage.batch_size
    hard = stage.kind == "supervised" and stage.hard_negatives
    total = 2 * b if hard else b
    what = f"{b} positives + {b} hard negatives" if hard else f"{b} positives"
    if stage.kind == "simcse":
        what = f"the {b} second dropout views"
    line = f"{total} candidates per query ({what}: 1 positive, {total - 1} negatives)"
    if hard and any(_may_give_pairs(src) for src in stage.sources()):
        line = f"up to {line}; rows without a hard negative (pairs) add none"
    if stage.gradient_accumulation_steps > 1:
        line += (
            f"; accumulation adds none: {stage.gradient_accumulation_steps} separate losses a step, "
            f"{b * stage.gradient_accumulation_steps} rows in all"
        )
    if getattr(stage, "gradcache_chunk_size", None):
        line += f"; GradCache embeds {stage.gradcache_chunk_size} at a time, the loss sees all {b}"
    if processes > 1:
        return line + f"; {processes} processes embed {b // processes} rows each and gather the rest"
    return line + "; batch_size is global: the same under accelerate launch, gathered across processes"


def convert(
    recipe,
    *,
    dry_run: bool = False,
    overwrite: bool = False,
    accelerator=None,
    callbacks: Sequence[StepCallback] = (),
    start: int | str | None = None,
    until: int | str | None = None,
    card_template: str | Path | None = None,
    restart: Callable[[list[int]], None] | None = None,
    retrain: Collection[int] = (),
) -> Path:
    """Run ``recipe`` and return the final encoder folder.

    Args:
        recipe: a :class:`~llm2vec_lite.recipe.Recipe` (see :func:`~llm2vec_lite.recipe.load_recipe`).
        dry_run: only print the plan (stages, steps, tokens, LoRA size, folders, skips).
        overwrite: retrain stages whose folder holds a different fingerprint.
        accelerator: an existing ``Accelerator``; by default one is made from ``recipe.autocast``.
        callbacks: passed to :func:`llm2vec_lite.trainer.train` for every stage that runs; each is
            called as ``callback(stage_kind, step)`` after every optimizer step.
        start: the first stage to train (:func:`stage_index`: ``2``, ``"02-simcse"`` or
            ``"simcse"``); every stage before it must be finished and is reused, never retrained.
        until: the last stage to train; later stages, ``final/`` and the ``eval`` block wait for a
            run without ``until``.
        card_template: a Jinja model card template for ``final/README.md``, instead of the recipe's
            ``card_template`` or the built-in one (:mod:`llm2vec_lite.sharing.card`).
        restart: called after a stage is saved with the indices of the stages still to train,
            then ``len(recipe.stages)`` for ``final/`` and the ``eval`` block (unless ``until``
            stops the run first), in single-process CPU runs without ``callbacks`` or ``accelerator``; the
            ``llm2vec-lite convert`` command passes
            :func:`~llm2vec_lite.runtime.stage_restart.restart_for_next_stages`, which replaces the
            process by the same command, so no stage trains on the memory an earlier one left.
        retrain: stages to train even when finished (see :func:`plan`); ``len(recipe.stages)`` in
            it writes ``final/`` and runs the ``eval`` block even when no stage trains here.

    Returns:
        ``output_dir/final``, or the folder of stage ``until`` when the run stops before the last.

    Raises:
        RecipeError: If a stage folder holds another recipe's results and ``overwrite`` is False, a
            stage before ``start`` is not finished with its fingerprint, or
            :func:`llm2vec_lite.checks.preflight` finds a problem (before any model loads).
        UsageError: If ``start`` or ``until`` names no stage, or ``start`` comes after ``until``.
        DataError: If any stage's data is missing, empty or lacks columns (before any model loads).
        TrainingError: If a stage's loss becomes NaN or inf.
    """
    from llm2vec_lite.checks import preflight
    from llm2vec_lite.stages import get_stage

    plans = plan(recipe, count_lora=dry_run, start=start, until=until, retrain=retrain)
    later = [p for p in plans if p.action == "later"]
    result = Path(recipe.stage_dir(later[0].index - 1)) if later else Path(recipe.final_dir)
    if dry_run:
        print(format_plan(recipe, plans))
    missing = [p for p in plans if p.action == "missing"]
    if missing:
        raise RecipeError(
            f"--from {start}: earlier stages are not finished, so there is nothing to reuse:\n"
            + "\n".join(f"  stage {p.index + 1} {p.kind}: {p.reason}" for p in missing)
            + "\nRun without --from (they train first), or with --until to train them alone."
        )
    if dry_run:
        absent = [f"  stage {p.index + 1} {p.kind}: {m}" for p in plans for m in missing_data(recipe.stages[p.index])]
        if absent:
            raise RecipeError("the run would stop: data files are missing:\n" + "\n".join(absent))
        preflight(recipe)  # what would stop the run, found without weights
        return result
    conflicts = [p for p in plans if p.action == "conflict"]
    if conflicts and not overwrite:
        raise RecipeError(
            "refusing to overwrite finished work:\n"
            + "\n".join(f"  stage {p.index + 1} {p.kind}: {p.reason}" for p in conflicts)
            + "\nPass --overwrite to retrain, or set output_dir to a new folder."
        )
    stages = [get_stage(s.kind)(s, recipe, i) for i, s in enumerate(recipe.stages)]
    to_train = {p.index: s for p, s in zip(plans, stages, strict=True) if p.action in ("run", "conflict")}
    for stage in to_train.values():  # all data problems before any model loads
        stage.check_data()
    preflight(recipe, stages=to_train)
    _refuse_pickled_weights(recipe)

    from llm2vec_lite.trainer import make_accelerator

    acc = accelerator or make_accelerator(recipe.autocast)
    if acc.device.type == "cpu" and acc.is_main_process and (advice := allocator_advice()):
        logger.info(advice)
    if restart is not None and (accelerator is not None or callbacks or acc.num_processes > 1
                                or acc.device.type != "cpu"):
        restart = None  # what lives in this process (an accelerator, callbacks, peers) cannot follow
    ran_any = False
    for p in plans:
        if p.index not in to_train:
            logger.info("stage %d %s: %s, skipping", p.index + 1, p.kind, p.reason)
            continue
        _run_stage(recipe, p, to_train.pop(p.index), acc, callbacks)
        ran_any = True
        if restart is not None and (to_train or not later):
            final_step = len(recipe.stages)  # stands for final/ and the eval block in the restart's list
            pending = sorted(to_train) + ([] if later else [final_step])
            what = f"stage {pending[0] + 1}" if pending[0] < final_step else "final/ and its evaluation"
            logger.info("stage %d %s: saved; restarting the command for %s in a fresh process "
                        "(what this stage left in memory stays behind)", p.index + 1, p.kind, what)
            restart(pending)  # the command's restart does not return
    if later:
        logger.info("stopped after stage %d (--until): %s", later[0].index, result)
        acc.wait_for_everyone()
        return result

    ran_any = ran_any or len(recipe.stages) in retrain  # the process before this one trained the last stage
    final = Path(recipe.final_dir)
    if acc.is_main_process and (ran_any or not final.exists()):
        _write_final(recipe, final, card_template)
    if acc.is_main_process and recipe.eval is not None and (ran_any or not (final / EVAL_FILE).exists()):
        evaluate_final(recipe, final, card_template=card_template)
    acc.wait_for_everyone()
    return final


_PICKLED_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt")


def _refuse_pickled_weights(recipe) -> None:
    """A local base-model folder with only pickled weights fails here, before anything loads.

    Stage inputs are always loaded with ``use_safetensors=True`` (a hub checkpoint without
    safetensors then fails in ``from_pretrained``); this check gives local folders a clear message.

    Raises:
        RecipeError: If ``base_model`` is a local folder with pickled weights and no safetensors.
    """
    folder = Path(recipe.base_model)
    if recipe.gguf_file or not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickled = sorted(p.name for pattern in _PICKLED_WEIGHTS for p in folder.glob(pattern))
    if pickled:
        raise RecipeError(
            f"base_model = {recipe.base_model}: holds only pickled weights ({', '.join(pickled)}), which "
            "llm2vec-lite never loads (unpickling can run code). Convert them to safetensors, or for a hub "
            "model set `revision` to a branch or pull request that has model.safetensors."
        )


def _load_input(recipe, index: int, head: str):
    from llm2vec_lite.modeling import load_model
    from llm2vec_lite.paths import resolve_model_path

    stage = recipe.stages[index]
    from_base = index == 0 and not stage.init_from
    source = _source_for(recipe, index)
    gguf_file = recipe.gguf_file if from_base else None
    hub: dict[str, Any] = {"revision": recipe.revision} if from_base and recipe.revision else {}
    if not (gguf_file or resolve_model_path(source).endswith(".gguf")):
        # Never unpickle weights: a checkpoint with only pytorch_model.bin fails here with a clear
        # error; pin a `revision` that has safetensors (the MiniCPM recipe does).
        hub["use_safetensors"] = True
    model, tokenizer = load_model(
        source,
        head=head,
        dtype=recipe.dtype,
        attn_implementation=recipe.attn_implementation,
        gguf_file=gguf_file,
        bidirectional=recipe.bidirectional,
        window=recipe.window,
        num_layers=recipe.num_layers if from_base else None,  # later stages load the pruned folder
        **hub,
    )
    return model, tokenizer


def _input_projection(recipe, index: int):
    """The projection saved with a stage's input model (a local folder), or None."""
    from llm2vec_lite.paths import resolve_model_path

    return load_projection(resolve_model_path(_source_for(recipe, index)))


def _run_stage(recipe, p: StagePlan, stage, acc, callbacks: Sequence[StepCallback] = ()) -> None:
    """Load, adapt, train, merge and save one stage (atomically)."""
    import torch
    from accelerate.utils import set_seed

    from llm2vec_lite.patches import enable_bidirectional
    from llm2vec_lite.runtime.block_compile import compiles
    from llm2vec_lite.runtime.frozen_base import frozen_linears_in
    from llm2vec_lite.runtime.fused_lora import fused_lora
    from llm2vec_lite.runtime.lora import scale_adapters, share_lora_dropout, with_lora
    from llm2vec_lite.runtime.policy import training_attention
    from llm2vec_lite.sharing.provenance import machine_info
    from llm2vec_lite.trainer import LoopSettings, train

    t0 = time.perf_counter()
    work_dir = Path(recipe.output_dir) / ".work" / p.folder.name
    if acc.is_main_process and p.folder.exists():  # a conflict the caller allowed us to overwrite
        logger.warning("stage %d %s: overwriting %s", p.index + 1, p.kind, p.folder)
    logger.info("stage %d %s: from %s", p.index + 1, p.kind, p.source)
    seed = recipe.seed_for(p.index)
    set_seed(seed)  # model setup and LoRA init are identical on every process and every run
    model, tokenizer = _load_input(recipe, p.index, stage.head)
    stage.projection = _input_projection(recipe, p.index)  # trained through, then carried forward
    model = stage.setup(model, tokenizer)
    model.config.use_cache = False
    loaded_attention = model.config._attn_implementation
    train_attention = training_attention(loaded_attention, acc.device, acc.mixed_precision)
    if train_attention:
        logger.info("stage %d %s: training with %s attention (%s is slow to train on a CPU in bf16)",
                    p.index + 1, p.kind, train_attention, loaded_attention)
        model.set_attn_implementation(train_attention)
    model = with_lora(model, recipe, p.index)
    cfg = recipe.stages[p.index]
    compiled = compiles(cfg.compile, acc.device)
    if cfg.compile == "auto" and not compiled:
        logger.info("stage %d %s: compile: auto, but no C++ compiler for torch.compile here: training eager",
                    p.index + 1, p.kind)
    eager = not compiled  # compiled blocks fuse (and draw masks) themselves
    if eager:
        share_lora_dropout(model)  # one dropout draw per shared input where peft's forward runs
    if recipe.bidirectional:
        enable_bidirectional(model, window=recipe.window)  # keep attention bidirectional under the wrapper
    settings = replace(LoopSettings.from_stage(cfg, seed), compile=compiled)
    curve = curve_callback(recipe, p.index, stage, model, tokenizer, work_dir, main=acc.is_main_process)
    low = torch.bfloat16 if acc.mixed_precision == "bf16" else None
    # bf16 storage under bf16 autocast (float32 back for the merge); q/k/v and gate/up adapters
    # trained through one product each (ordinary weights again for the merge)
    with frozen_linears_in(model, low), fused_lora(model, enabled=eager):
        result = train(
            stage, model, settings, work_dir=work_dir, accelerator=acc, fingerprint=p.fingerprint,
            callbacks=[*callbacks, curve] if curve else callbacks,
        )
    stage.cleanup(model)
    if scale_adapters(model, cfg.merge_weight):
        logger.info("stage %d %s: merging %.2f of the trained adapter (merge_weight)",
                    p.index + 1, p.kind, cfg.merge_weight)
    merged = model.merge_and_unload()
    merged.config.use_cache = True
    if train_attention:
        merged.set_attn_implementation(loaded_attention)  # the saved model keeps the loaded backend
    stage.refit_projection(merged, tokenizer)
    if acc.is_main_process:
        with atomic_dir(p.folder) as tmp:
            merged.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            if stage.projection is not None:
                stage.projection.save(tmp)
            for name in ("metrics.jsonl", "loss.png", CURVE_FILE):
                if (work_dir / name).exists():
                    shutil.copy2(work_dir / name, tmp / name)
            write_json(
                tmp / STAGE_FILE,  # written last: its presence means "finished"
                {
                    "kind": p.kind,
                    "index": p.index,
                    "fingerprint": p.fingerprint,
                    "recipe": recipe.name,
                    "recipe_fingerprint": recipe.fingerprint,
                    "source": p.source,
                    "metrics": result.as_dict(),
                    "wall_time_s": time.perf_counter() - t0,
                    "hardware": machine_info(acc.mixed_precision),
                },
            )
        shutil.rmtree(work_dir, ignore_errors=True)  # checkpoints are no longer needed
        with contextlib.suppress(OSError):
            work_dir.parent.rmdir()  # .work, when empty
    acc.wait_for_everyone()
    logger.info(
        "stage %d %s: done in %.1fs, loss %.4f -> %.4f", p.index + 1, p.kind,
        time.perf_counter() - t0, result.first_loss, result.final_loss,
    )


def _final_settings(recipe) -> dict[str, Any]:
    """Instructions of the last supervised stage (if any), pooling and max_length of the recipe."""
    supervised = [s for s in recipe.stages if s.kind == "supervised"]
    last = supervised[-1] if supervised else None
    return {
        "pooling": recipe.pooling,
        "max_length": recipe.encoder_max_length or recipe.max_length,
        "query_instruction": getattr(last, "query_instruction", None),
        "document_instruction": getattr(last, "document_instruction", None),
    }


def reads_task_instructions(recipe) -> bool:
    """Whether any supervised stage put an instruction before its queries.

    Recorded in the final folder (``task_instructions`` in llm2vec_lite.json) so that ``eval`` scores
    an encoder trained without instructions without the suite's per-task ones: instructions the model
    never saw cost the Gemma demo two points of nDCG@10 (docs/results.md, "Beyond STS: the dev suite").
    """
    for stage in recipe.stages:
        if stage.kind != "supervised":
            continue
        if stage.query_instruction or any(s.query_instruction or s.instruction_column for s in stage.sources()):
            return True
    return False


def _write_final(recipe, final: Path, card_template: str | Path | None = None) -> None:
    """Turn the last stage folder into an Encoder folder (atomically)."""
    from llm2vec_lite.encoder import Encoder
    from llm2vec_lite.modeling import load_model
    from llm2vec_lite.sharing import write_shareable

    last = Path(recipe.stage_dir(len(recipe.stages) - 1))
    model, tokenizer = load_model(
        str(last), head="base", dtype=recipe.dtype, attn_implementation=recipe.attn_implementation,
        bidirectional=recipe.bidirectional, window=recipe.window,
    )
    encoder = Encoder(
        model,
        tokenizer,
        bidirectional=recipe.bidirectional,
        window=recipe.window,
        projection=load_projection(last),
        **_final_settings(recipe),
    )
    with atomic_dir(final) as tmp:
        encoder.save_pretrained(tmp, model_card="")  # the card is written last, from everything else
        settings_file = tmp / "llm2vec_lite.json"  # evaluation reports read the recipe from here
        settings = json.loads(settings_file.read_text(encoding="utf-8"))
        settings["recipe"] = {"name": recipe.name, "fingerprint": recipe.fingerprint}
        settings["recipe_fingerprint"] = recipe.fingerprint
        settings["task_instructions"] = reads_task_instructions(recipe)
        write_json(settings_file, settings)
        write_shareable(recipe, tmp, card_template=card_template)  # tmp sits beside final: same relative paths
    logger.info("final encoder: %s", final)
