"""The recipe's ``eval:`` block: ``convert`` scores the finished encoder and writes ``final/eval.json``.

A recipe that says::

    eval:
      datasets: [stsb-dev]
      data_dir: ../data/sts

gets, after its last stage, :func:`llm2vec_lite.evaluate.evaluate_sts` on ``output_dir/final``:
the full results go to ``final/eval.json`` (the same JSON ``llm2vec-lite eval --json`` writes) and
the scores to the model card (``final/README.md``: its ``model-index`` and an "Evaluation" table). The datasets are
loaded by :func:`check_eval`, which :func:`llm2vec_lite.checks.preflight` runs before any model
loads, so a typo in a dataset name fails at once, not after training.

A stage with ``eval_every: N`` is also scored while it trains (:func:`curve_callback`): every N
steps and after its last, the model as it stands (adapters unmerged, projection applied, dropout
off) is scored on the same datasets and a line ``{"step", "train_s", "<dataset>": spearman, ...}``
is appended to ``eval_curve.jsonl`` in the stage folder. That is the curve of score against
minutes a reader needs to see where more training time would take a recipe.

Why convert runs it instead of leaving it to a second command: the number a recipe reaches is part
of what the recipe promises, and writing it next to the weights and the recipe fingerprint keeps the
three together. Without an ``eval:`` block nothing is evaluated.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llm2vec_lite.errors import DataError

logger = logging.getLogger(__name__)

__all__ = ["CURVE_FILE", "EVAL_FILE", "check_eval", "curve_callback", "evaluate_final", "evaluation_tables"]

EVAL_FILE = "eval.json"
CURVE_FILE = "eval_curve.jsonl"


def check_eval(recipe) -> list[str]:
    """Problems with the recipe's ``eval:`` block found without a model (local data only)."""
    if recipe.eval is None:
        return [
            f"stages[{i}].eval_every = {st.eval_every}: scoring while training needs an eval: block "
            "(e.g. eval: {datasets: [stsb], data_dir: ../data/sts})"
            for i, st in enumerate(recipe.stages)
            if st.eval_every is not None
        ]
    problems = []
    if recipe.eval.suite_tasks():
        try:
            _suite_tasks(recipe)
        except DataError as e:
            where = "eval.suite" if recipe.eval.suite else "eval.tasks"
            problems.append(f"{where}: {e}")
    if recipe.eval.data_dir is None or not recipe.eval.datasets:
        return problems  # hub datasets are fetched when the evaluation runs
    from llm2vec_lite.evaluate import load_sts_suite

    if not Path(recipe.eval.data_dir).is_dir():
        return [*problems, f"eval.data_dir = {recipe.eval.data_dir}: no such folder"]
    try:
        load_sts_suite(recipe.eval.datasets, data_dir=recipe.eval.data_dir)
    except DataError as e:
        problems.append(f"eval.datasets = {recipe.eval.datasets}: {e}")
    return problems


def _suite_tasks(recipe) -> list:
    """The eval block's local suite tasks, read and checked."""
    from llm2vec_lite.tasks import load_tasks

    return load_tasks(recipe.eval.tasks, suite=recipe.eval.suite)


def _suite_embedder(recipe, encoder, name: str):
    from llm2vec_lite.suite import encoder_embedder

    if recipe.eval.max_length is not None:
        encoder.max_length = recipe.eval.max_length
    return encoder_embedder(encoder, name=name, instruction_template=recipe.eval.instruction_template)


def evaluate_final(recipe, final: Path, *, card_template: str | Path | None = None) -> dict[str, Any] | None:
    """Score ``final`` on the recipe's ``eval:`` datasets; write ``eval.json`` and the card section.

    Returns:
        The :func:`~llm2vec_lite.evaluate.evaluate_sts` results, or ``None`` without an ``eval:`` block.
    """
    if recipe.eval is None:
        return None
    from llm2vec_lite.encoder import Encoder
    from llm2vec_lite.evaluate import evaluate_sts, load_sts_suite
    from llm2vec_lite.runtime.block_compile import compiles

    suite = load_sts_suite(recipe.eval.datasets, data_dir=recipe.eval.data_dir) if recipe.eval.datasets else []
    encoder = Encoder.from_pretrained(final, dtype=recipe.dtype)
    if compiles(recipe.eval.compile, encoder.device):
        encoder.compile()  # fused kernels: long documents encode about twice as fast on a CPU
    results = evaluate_sts(encoder, suite, model=str(final)) if suite else {}
    results["model"] = recipe.name  # not the folder: eval.json travels with the model
    for r in results.get("datasets", {}).values():
        if Path(str(r.get("source", ""))).is_absolute():
            r["source"] = Path(r["source"]).name  # a local file, named as the card names data
    if recipe.eval.suite_tasks():
        from llm2vec_lite.suite import format_suite_table, run_suite
        from llm2vec_lite.tasks import sts_task

        # the STS sets join the suite too, so its mean of type means covers every type scored
        tasks = _suite_tasks(recipe) + [sts_task(pairs) for pairs in suite]
        report = run_suite(_suite_embedder(recipe, encoder, recipe.name), tasks)
        results["suite"] = report
        logger.info("evaluation suite:\n%s", format_suite_table(report))
    final = Path(final)
    partial = final / (EVAL_FILE + ".partial")
    partial.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    partial.replace(final / EVAL_FILE)
    if (final / "README.md").is_file():
        from llm2vec_lite.sharing.card import write_card

        write_card(recipe, final, template=card_template)  # its model-index and tables now hold the scores
    logger.info("evaluation written to %s", final / EVAL_FILE)
    return results


def evaluation_tables(results: dict[str, Any]) -> str:
    """The model card's evaluation tables: STS (Spearman/Pearson x100) and the suite, as present."""
    from llm2vec_lite.evaluate import format_table
    from llm2vec_lite.suite import format_suite_table

    parts = []
    if "datasets" in results:
        parts.append(f"STS, Spearman and Pearson of cosine similarity x100:\n\n{format_table(results)}")
    if "suite" in results:
        parts.append(f"Local tasks, MTEB's evaluators (x100):\n\n```\n{format_suite_table(results['suite'])}\n```")
    return "\n\n".join(parts)


def curve_callback(recipe, index: int, stage, model, tokenizer, work_dir: Path, *, main: bool) -> Callable[[str, int], None] | None:
    """A trainer callback scoring the model under training every ``eval_every`` steps, or None.

    Only the main process scores (the others go on to the next step and wait for it there). The
    time axis, ``train_s``, counts wall time since the callback was made, minus the time spent
    scoring. Modules' train/eval modes are restored exactly after each scoring.
    """
    every = recipe.stages[index].eval_every
    if every is None or recipe.eval is None or not main:
        return None
    from llm2vec_lite.encoder import Encoder
    from llm2vec_lite.evaluate import load_sts_suite, score_pairs

    suite = load_sts_suite(recipe.eval.datasets, data_dir=recipe.eval.data_dir) if recipe.eval.datasets else []
    tasks = _suite_tasks(recipe) if recipe.eval.suite_tasks() else []
    steps = recipe.stages[index].steps
    path = Path(work_dir) / CURVE_FILE
    clock = {"start": time.perf_counter(), "scoring": 0.0}

    def score(kind: str, step: int) -> None:
        if step % every and step != steps:
            return
        t0 = time.perf_counter()
        net = model.get_base_model() if hasattr(model, "get_base_model") else model  # adapters stay in place
        modes = {m: m.training for m in net.modules()}
        encoder = Encoder(
            net, tokenizer, pooling=stage.pooling, max_length=recipe.max_length,
            bidirectional=recipe.bidirectional, projection=stage.projection,
        )
        try:
            row: dict[str, Any] = {"step": step, "train_s": round(t0 - clock["start"] - clock["scoring"], 1)}
            for pairs in suite:
                row[pairs.name] = round(score_pairs(encoder, pairs)["spearman"], 2)
            if tasks:
                from llm2vec_lite.suite import run_suite

                report = run_suite(_suite_embedder(recipe, encoder, f"step {step}"), tasks)
                row.update({name: round(r["score"], 2) for name, r in report["tasks"].items()})
        finally:
            for module, training in modes.items():
                module.train(training)
        clock["scoring"] += time.perf_counter() - t0
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        logger.info("stage %d %s, step %d: %s", index + 1, kind, step,
                    ", ".join(f"{k} {v}" for k, v in row.items() if k not in ("step", "train_s")))

    return score
