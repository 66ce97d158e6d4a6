"""A tiny recipe trains on a file `llm2vec-lite synth` wrote, each row's instruction on its query only."""

from __future__ import annotations

import json
import subprocess
import sys

from tiny_project import TINY_RECIPE, make_tiny_project, sentences

from llm2vec_lite.synth import load_synth_config, run_synth
from llm2vec_lite.synth.backends import Backend


class _Sentences(Backend):
    """Canned answers in the tiny project's vocabulary: a task list, then one sentence per field."""

    def generate(self, prompts, *, seed, stop_at_newline=False):
        out = []
        for i, prompt in enumerate(prompts):
            if "List" in prompt:
                out.append("- Given a sentence about an animal, retrieve one that says the same.")
            else:
                out.append(sentences(1, seed=seed + i)[0])
        return out


SYNTH_RECIPE = TINY_RECIPE.split("stages:")[0] + """\
stages:
  - kind: supervised
    data:
      - {path: ./triplets.tsv}
      - {path: ./synth/synth.jsonl, columns: [query, positive, negative], instruction_column: instruction}
    steps: 3
    batch_size: 4
    learning_rate: 1.0e-4
    temperature: 0.05
"""


def test_a_tiny_recipe_trains_on_synth_output(tmp_path):
    recipe = make_tiny_project(tmp_path, SYNTH_RECIPE)
    config = tmp_path / "synth.yaml"
    config.write_text(
        "generator: {model: unused, batch_size: 4}\nformat: fields\noutput: ./synth/synth.jsonl\n"
        "families: [{name: retrieval, tasks: 1, examples_per_task: 6}, {name: sts, examples_per_task: 6}]\n"
        "filters: {language: null}\n",
        encoding="utf-8",
    )
    cfg = load_synth_config(config)
    summary = run_synth(cfg, backend=_Sentences(cfg.generator), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "synth" / "synth.jsonl").read_text().splitlines()]
    assert summary.kept == len(rows) >= 4
    assert all(r["instruction"].startswith("Instruct: ") for r in rows)

    from llm2vec_lite.data import read_instructed_rows
    from llm2vec_lite.recipe import load_recipe

    stage = load_recipe(recipe).stages[0]
    read = read_instructed_rows(stage.sources(), stage.columns())
    nli, synth = read[:48], read[48:]
    assert all(r.query_instruction is None and r.document_instruction is None for r in nli)
    # the cell is the whole E5 prefix and reaches the query side unchanged; documents get none
    assert [r.query_instruction for r in synth] == [r["instruction"] for r in rows]
    assert [r.texts[0] for r in synth] == [r["query"] for r in rows]
    assert all(r.document_instruction is None for r in synth)

    proc = subprocess.run(
        [sys.executable, "-m", "llm2vec_lite", "convert", recipe.name],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "out" / "final" / "config.json").is_file()
