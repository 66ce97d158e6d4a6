"""Checks that need no model weights, run before any weights load.

This is the preflight layer: it sits above the stages and the data readers, which it uses.

- :func:`recipe_problems` looks at a validated recipe alone (no file, no torch): ``warmup_steps``
  beyond ``steps``, an unknown ``attn_implementation``. It lives in
  :mod:`llm2vec_lite.recipe.consistency`, because :func:`~llm2vec_lite.recipe.load_recipe` runs it,
  so every loader (``recipe check``, ``convert``, Python code) reports these with the schema
  problems; it is re-exported here.
- :func:`preflight` reads what is cheap to read: the base model's ``config.json`` (is there a
  patch for this architecture?), its tokenizer (does ``max_length`` hold two text tokens plus the
  special tokens and instruction, is there a single-token mask for ``mask_token: blank``?) and the
  local data (at least ``batch_size`` rows, a batch size the processes divide). ``llm2vec-lite
  recipe check`` and ``convert`` (dry run included) run it before any weights load, so a recipe
  that cannot train fails in seconds, with every problem listed.

The argument checks shared by the CLI and :meth:`Encoder.from_pretrained` (:func:`check_max_length`,
:func:`check_device`, :func:`check_dtype`, :func:`check_window`) live in :mod:`llm2vec_lite.arguments`,
below the encoder, and are re-exported here. They raise :class:`~llm2vec_lite.errors.UsageError`,
which the CLI turns into exit status 2.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from llm2vec_lite.arguments import check_device, check_dtype, check_max_length, check_window
from llm2vec_lite.errors import Llm2VecError, RecipeError
from llm2vec_lite.recipe.consistency import ATTN_IMPLEMENTATIONS, recipe_problems

logger = logging.getLogger(__name__)

__all__ = [
    "ATTN_IMPLEMENTATIONS",
    "check_device",
    "check_dtype",
    "check_max_length",
    "check_window",
    "launched_processes",
    "preflight",
    "recipe_problems",
    "training_backend_problems",
    "requested_processes",
]


# ------------------------------------------------------------------------------ processes
def launched_processes() -> int:
    """How many processes this run has (``WORLD_SIZE``, set by torchrun and accelerate's launchers)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def requested_processes(cmdline: list[str] | None = None) -> int | None:
    """The ``--num_processes N`` of the ``accelerate launch`` that started us, if one did.

    accelerate's simple launcher (used with ``--cpu``, or without ``--multi_gpu`` on a machine with
    no GPU) starts one process whatever ``--num_processes`` says and tells nobody; the parent's
    command line is the only trace of what the user asked for. Linux only (``/proc``); ``None``
    elsewhere or when the parent is not ``accelerate launch``.
    """
    if cmdline is None:
        try:
            raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
        except OSError:
            return None
        cmdline = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    if "launch" not in cmdline or not any(Path(p).name.startswith("accelerate") for p in cmdline):
        return None
    for i, part in enumerate(cmdline):
        for flag in ("--num_processes", "--num-processes"):
            value = part[len(flag) + 1 :] if part.startswith(flag + "=") else None
            if part == flag and i + 1 < len(cmdline):
                value = cmdline[i + 1]
            if value is not None:
                try:
                    return int(value)
                except ValueError:
                    return None
    return None


MULTI_PROCESS_COMMAND = "accelerate launch --multi_gpu --num_processes {n} -m llm2vec_lite convert RECIPE"


def process_shortfall_message(requested: int | None, running: int) -> str | None:
    """The warning for "asked for N processes, fewer run", naming the command that works."""
    if requested is None or requested <= running:
        return None
    return (
        f"accelerate launch asked for {requested} processes but {running} runs: without --multi_gpu "
        f"(or with --cpu) accelerate starts a single process. For {requested} processes, also on a CPU "
        f"machine, run: {MULTI_PROCESS_COMMAND.format(n=requested)} "
        f"(or torchrun --nproc_per_node {requested} -m llm2vec_lite convert RECIPE); see docs/training.md."
    )


def training_backend_problems(attn: str | None, device) -> list[str]:
    """Attention backends that cannot *train* on ``device`` (they fail only at the first backward).

    flex_attention has no backward pass on CPU (torch raises NotImplementedError there, after the
    weights load and the first forward ran); flash-attn runs on CUDA only and must be installed.
    """
    import importlib.util

    import torch

    device = torch.device(device)
    if attn == "flex_attention" and device.type == "cpu":
        return [
            "attn_implementation = 'flex_attention': torch has no flex-attention backward on CPU, so training "
            "would stop at the first step; use sdpa here (the same masks and results; flex encodes fine on CPU)"
        ]
    if attn is not None and attn.startswith("flash_attention"):
        if device.type != "cuda":
            return [f"attn_implementation = {attn!r}: flash-attention runs on CUDA GPUs only; use sdpa on {device.type}"]
        if attn == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
            return [
                "attn_implementation = 'flash_attention_2': the flash_attn package is not installed "
                "(pip install 'llm2vec-lite[flash]', or use sdpa)"
            ]
    return []


def _read_base_config(recipe) -> tuple[dict[str, Any] | None, list[str], str, str | None]:
    """(config dict or None, problems, resolved path, gguf file) of the recipe's base model."""
    from llm2vec_lite.modeling import resolve_gguf
    from llm2vec_lite.paths import resolve_model_path

    try:
        path, gguf_file = resolve_gguf(resolve_model_path(recipe.base_model), recipe.gguf_file)
    except FileNotFoundError as e:
        return None, [f"base_model = {recipe.base_model}: {e}"], str(recipe.base_model), None
    folder = Path(path)
    if gguf_file:
        try:
            from transformers import AutoConfig

            return AutoConfig.from_pretrained(path, gguf_file=gguf_file).to_dict(), [], path, gguf_file
        except Exception as e:  # noqa: BLE001 (gguf reader errors have many types)
            return None, [f"base_model = {recipe.base_model}: cannot read GGUF metadata of {gguf_file}: {e}"], path, gguf_file
    if folder.is_dir():
        file = folder / "config.json"
        if not file.is_file():
            present = ", ".join(sorted(p.name for p in folder.iterdir())[:8]) or "nothing"
            return None, [
                f"base_model = {recipe.base_model}: {folder} has no config.json (found: {present}); expected a "
                "Hugging Face model folder (config.json, weights, tokenizer), a .gguf file or a hub id"
            ], path, None
        try:
            config = json.loads(file.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            return None, [f"base_model = {recipe.base_model}: {file} is not valid JSON ({e})"], path, None
        if not isinstance(config, dict):
            return None, [f"base_model = {recipe.base_model}: {file} is not a JSON object"], path, None
        return config, [], path, None
    from llm2vec_lite.patches import _read_config_dict  # a hub id: whatever is cached or reachable

    config = _read_config_dict(path, {"revision": recipe.revision} if getattr(recipe, "revision", None) else {})
    if config is None:
        logger.info("base_model %s: config not reachable now; the architecture is checked when it loads", path)
    return config, [], path, None


def _architecture_problems(recipe, config: dict[str, Any] | None) -> list[str]:
    if config is None or not recipe.bidirectional:
        return []
    from llm2vec_lite.patches import get_patch

    model_type = config.get("model_type")
    try:
        get_patch(str(model_type))
    except Llm2VecError as e:
        return [f"base_model = {recipe.base_model}: {e} Or set bidirectional: false to train it causal."]
    return []


def _depth_problems(recipe, config: dict[str, Any] | None) -> list[str]:
    """``num_layers`` deeper than the base model (found from config.json, before the weights load)."""
    if config is None or recipe.num_layers is None:
        return []
    depth = next((config[k] for k in ("num_hidden_layers", "n_layer", "num_layers") if isinstance(config.get(k), int)), None)
    if depth is None:  # multimodal configs nest it; keep_first_layers checks again when the model loads
        depth = (config.get("text_config") or {}).get("num_hidden_layers")
    if isinstance(depth, int) and recipe.num_layers > depth:
        return [f"num_layers = {recipe.num_layers}: {recipe.base_model} has {depth} transformer blocks; choose 1..{depth}"]
    return []


# A contrastive stage must keep at least this many text tokens of a text. One token is the first
# word piece alone ("The", "A"): every text would be pooled from it, so the stage trains on
# nothing of the text, and nothing fails (a tokenizer that adds no special token, SmolLM2's, keeps
# exactly one at max_length: 1). MNTP has the same floor for its own reason.
MIN_TEXT_TOKENS = 2


def _tokenizer_problems(recipe, tokenizer) -> list[str]:
    from llm2vec_lite.data import mask_token_id
    from llm2vec_lite.pooling import needs_eos
    from llm2vec_lite.tokenization import encode_rows

    problems = []
    for i, stage in enumerate(recipe.stages):
        length = recipe.max_length_for(i)
        field = f"stages[{i}].max_length" if stage.max_length else "max_length"
        if stage.kind == "mntp":
            if length < 2:
                problems.append(f"{field} = {length}: MNTP predicts a token from the one before; use >= 2")
            if stage.mask_token in ("blank", "eos"):
                try:
                    mask_token_id(tokenizer, stage.mask_token)
                except Llm2VecError as e:
                    problems.append(f"stages[{i}].mask_token = {stage.mask_token}: {e}")
            continue
        instructions = [getattr(stage, "query_instruction", None), getattr(stage, "document_instruction", None)]
        for src in stage.sources():  # per-source instructions (instruction_column cells are per row)
            instructions += [getattr(src, "query_instruction", None), getattr(src, "document_instruction", None)]
        instructions = list(dict.fromkeys(x for x in instructions if x))
        for instruction in [None, *instructions]:
            try:
                rows = encode_rows(  # a probe text of several tokens: how many does the stage keep?
                    tokenizer, ["a a a"], max_length=length, instruction=instruction, add_eos=needs_eos(recipe.pooling)
                )
            except ValueError as e:
                problems.append(f"{field} = {length}: {e}")
                break
            kept = sum(rows[0].pool)
            what = f"the instruction {instruction[:40]!r} and " if instruction else ""
            shorten = " or shorten the instruction" if instruction else ""
            if not kept:  # every kept token is special or instruction: the text is cut away
                problems.append(
                    f"{field} = {length}: {what}the special tokens fill all {length} tokens, so no text token "
                    f"is left to pool; raise max_length{shorten}"
                )
                break
            if kept < MIN_TEXT_TOKENS:
                problems.append(
                    f"{field} = {length}: only {kept} text token fits"
                    + (f" after the instruction {instruction[:40]!r}" if instruction else "")
                    + f", so every text is cut to its first token; use max_length >= "
                    f"{length + MIN_TEXT_TOKENS - kept}{shorten}"
                )
                break
    return problems


def _stage_rows(stage) -> int | None:
    """How many rows (texts, pairs, triplets) a stage read in ``check_data``; None if unknown."""
    for attr in ("texts", "rows_data"):
        rows = getattr(stage, attr, None)
        if rows is not None:
            return len(rows)
    return None


def _mntp_blocks_at_least(tokenizer, texts: list[str], block_size: int, needed: int) -> int:
    """Blocks MNTP would pack, counted only until ``needed`` (tokenizing stops there)."""
    from llm2vec_lite.data import pack_texts

    tokens, budget = 0, needed * block_size
    for start in range(0, len(texts), 1000):
        chunk = [t for t in texts[start : start + 1000] if t]
        tokens += sum(len(ids) + 1 for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"])
        if tokens >= budget:
            return needed
    return len(pack_texts(tokenizer, texts, block_size))


def _size_problems(recipe, stages: dict[int, Any], tokenizer, processes: int) -> list[str]:
    problems = []
    for i, stage_cfg in enumerate(recipe.stages):
        if i not in stages:
            continue
        if stage_cfg.batch_size % processes:
            fits = stage_cfg.batch_size - stage_cfg.batch_size % processes or processes
            problems.append(
                f"stages[{i}].batch_size = {stage_cfg.batch_size}: not a multiple of the {processes} processes; "
                f"batch_size is the global batch, split evenly (use {fits})"
            )
        stage = stages[i]
        n = _stage_rows(stage)
        if n is None:
            continue
        what = "texts" if stage_cfg.kind != "supervised" else "rows"
        if stage_cfg.kind == "mntp" and tokenizer is not None and recipe.max_length_for(i) >= 2:
            n = _mntp_blocks_at_least(tokenizer, stage.texts, recipe.max_length_for(i), stage_cfg.batch_size)
            what = f"blocks of {recipe.max_length_for(i)} tokens"
        if n < stage_cfg.batch_size:
            problems.append(
                f"stages[{i}].batch_size = {stage_cfg.batch_size}: the data gives only {n} {what}; "
                f"add data or use batch_size <= {n}"
            )
    return problems


def _hidden_dropout_problems(recipe, config: dict[str, Any] | None) -> list[str]:
    """``hidden_dropout`` on a family whose blocks lack an attention or MLP submodule.

    The model is built from its config on the meta device (no weights, no memory), and the same
    function that places the hooks (:func:`~llm2vec_lite.stages.simcse.hidden_dropout_targets`)
    looks for the submodules.
    """
    indices = [i for i, s in enumerate(recipe.stages) if getattr(s, "hidden_dropout", None)]
    if config is None or not indices or not config.get("model_type"):
        return []
    import torch
    from transformers import AutoConfig, AutoModel

    from llm2vec_lite.stages.simcse import hidden_dropout_targets

    try:
        cfg = AutoConfig.for_model(**config)
        with torch.device("meta"):
            skeleton = AutoModel.from_config(cfg)
    except Exception as e:  # noqa: BLE001 (an unknown or remote-code family: checked when the stage starts)
        logger.debug("hidden_dropout preflight skipped: cannot build %s on meta: %s", config.get("model_type"), e)
        return []
    try:
        hidden_dropout_targets(skeleton)
    except Llm2VecError as e:
        return [f"stages[{i}].hidden_dropout: {str(e).removeprefix('hidden_dropout: ')}" for i in indices]
    return []


def _local_only(stage_cfg) -> bool:
    return all(src.hub is None for src in stage_cfg.sources())


def preflight(recipe, *, stages: dict[int, Any] | None = None, processes: int | None = None) -> None:
    """Every check of ``recipe`` that needs no weights; raise one RecipeError listing all problems.

    Args:
        recipe: a loaded :class:`~llm2vec_lite.recipe.Recipe`.
        stages: stage objects whose ``check_data`` already ran, by stage index (what ``convert``
            is about to train). ``None``: build them here for every stage whose data is local
            (hub datasets are only fetched when a stage runs).
        processes: the number of training processes; ``None`` = :func:`launched_processes`.

    Raises:
        RecipeError: naming the file and each field: an architecture with no patch, a base-model
            folder without ``config.json``, a ``max_length`` too short for the tokenizer, no single
            ``_`` token for ``mask_token: blank``, fewer data rows than ``batch_size``, a
            ``batch_size`` the processes do not divide.
        DataError: If a local data file is missing or malformed.
    """
    from llm2vec_lite.recipe.errors import _problem_report
    from llm2vec_lite.recipe.paths import _display_path
    from llm2vec_lite.runtime.block_compile import compile_problems
    from llm2vec_lite.runtime.policy import training_device

    device = training_device()
    problems = list(recipe_problems(recipe)) + training_backend_problems(recipe.attn_implementation, device)
    problems += compile_problems(recipe.stages, device)
    config, more, path, gguf_file = _read_base_config(recipe)
    problems += more + _architecture_problems(recipe, config) + _depth_problems(recipe, config)
    problems += _hidden_dropout_problems(recipe, config)
    tokenizer = None
    if not more and (config is not None or Path(path).exists()):
        from llm2vec_lite.modeling import load_tokenizer

        try:
            revision = getattr(recipe, "revision", None)
            tokenizer = load_tokenizer(path, gguf_file=gguf_file, **({"revision": revision} if revision else {}))
        except Exception as e:  # noqa: BLE001 (tokenizer loaders raise many types)
            problems.append(f"base_model = {recipe.base_model}: cannot load its tokenizer: {type(e).__name__}: {e}")
    if tokenizer is not None:
        problems += _tokenizer_problems(recipe, tokenizer)
    if stages is None:
        from llm2vec_lite.stages import get_stage

        stages = {}
        for i, stage_cfg in enumerate(recipe.stages):
            if _local_only(stage_cfg):
                stages[i] = get_stage(stage_cfg.kind)(stage_cfg, recipe, i)
                stages[i].check_data()
    problems += _size_problems(recipe, stages, tokenizer, processes or launched_processes())
    from llm2vec_lite.recipe_eval import check_eval

    problems += check_eval(recipe)
    if problems:
        label = _display_path(recipe.source_path) if recipe.source_path else "recipe"
        raise RecipeError(_problem_report(label, problems))
