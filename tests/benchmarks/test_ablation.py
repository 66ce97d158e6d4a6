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
