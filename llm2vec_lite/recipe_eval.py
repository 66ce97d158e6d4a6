"""The recipe's ``eval:`` block: ``convert`` scores the finished encoder and writes ``final/eval.json``.

A recipe that says::

    eval:
      datasets: [stsb-dev]
      data_dir: ../data/sts

gets, after its last stage, :func:`llm2vec_lite.evaluate.evaluate_sts` on ``output_dir/final``:
the full results go to ``final/eval.json`` (the same JSON ``llm2vec-lite eval --json`` writes) and
the table to an "Evaluation" section of the model card (``final/README.md``). The datasets are
loaded by :func:`check_eval`, which :func:`llm2vec_lite.checks.preflight` runs before any model
loads, so a typo in a dataset name fails at once, not after training.

Why convert runs it instead of leaving it to a second command: the number a recipe reaches is part
of what the recipe promises, and writing it next to the weights and the recipe fingerprint keeps the
three together. Without an ``eval:`` block nothing is evaluated.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from llm2vec_lite.errors import DataError

logger = logging.getLogger(__name__)

__all__ = ["EVAL_FILE", "check_eval", "evaluate_final"]

EVAL_FILE = "eval.json"


def check_eval(recipe) -> list[str]:
    """Problems with the recipe's ``eval:`` block found without a model (local data only)."""
    if recipe.eval is None or recipe.eval.data_dir is None:
        return []  # hub datasets are fetched when the evaluation runs
    from llm2vec_lite.evaluate import load_sts_suite

    if not Path(recipe.eval.data_dir).is_dir():
        return [f"eval.data_dir = {recipe.eval.data_dir}: no such folder"]
    try:
        load_sts_suite(recipe.eval.datasets, data_dir=recipe.eval.data_dir)
    except DataError as e:
        return [f"eval.datasets = {recipe.eval.datasets}: {e}"]
    return []


def evaluate_final(recipe, final: Path) -> dict[str, Any] | None:
    """Score ``final`` on the recipe's ``eval:`` datasets; write ``eval.json`` and the card section.

    Returns:
        The :func:`~llm2vec_lite.evaluate.evaluate_sts` results, or ``None`` without an ``eval:`` block.
    """
    if recipe.eval is None:
        return None
    from llm2vec_lite.encoder import Encoder
    from llm2vec_lite.evaluate import evaluate_sts, format_table, load_sts_suite

    suite = load_sts_suite(recipe.eval.datasets, data_dir=recipe.eval.data_dir)
    encoder = Encoder.from_pretrained(final, dtype=recipe.dtype)
    results = evaluate_sts(encoder, suite, model=str(final))
    final = Path(final)
    partial = final / (EVAL_FILE + ".partial")
    partial.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    partial.replace(final / EVAL_FILE)
    card = final / "README.md"
    if card.is_file():
        text = card.read_text(encoding="utf-8").split("\n## Evaluation\n", 1)[0].rstrip("\n")
        card.write_text(
            f"{text}\n\n## Evaluation\n\nSpearman and Pearson of cosine similarity x100 "
            f"(`llm2vec-lite eval`), written by `convert` from the recipe's `eval:` block:\n\n"
            f"{format_table(results)}\n",
            encoding="utf-8",
        )
    logger.info("evaluation: average spearman %.2f, written to %s", results["average"]["spearman"], final / EVAL_FILE)
    return results
