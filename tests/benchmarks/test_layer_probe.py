"""benchmarks/layer_probe.py on a tiny model: one row per hidden state, four finite scores each."""

from __future__ import annotations

import sys
from pathlib import Path

from benchmark_module import load_benchmark

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "recipes"))

from tiny_project import make_tiny_llama, sentences  # noqa: E402


def test_layer_probe_prints_every_layer(tmp_path, capsys):
    probe = load_benchmark("layer_probe")
    texts = sentences(80)
    model = make_tiny_llama(tmp_path / "tiny", texts, layers=3)
    (tmp_path / "sts").mkdir()
    rows = [f"{a}\t{b}\t{i % 6}" for i, (a, b) in enumerate(zip(texts[:20], texts[20:40], strict=True))]
    (tmp_path / "sts" / "stsb.tsv").write_text("sentence1\tsentence2\tscore\n" + "\n".join(rows) + "\n")
    (tmp_path / "wiki.txt").write_text("\n".join(sentences(300, seed=1)) + "\n")
    assert probe.main([str(model), "--data-dir", str(tmp_path / "sts"), "--texts", str(tmp_path / "wiki.txt"),
                       "--fit", "200"]) == 0
    table = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| ") and ln[2].isdigit()]
    assert [int(ln.split("|")[1]) for ln in table] == [0, 1, 2, 3]  # embeddings + 3 blocks
    for ln in table:
        scores = [float(x) for x in ln.strip("|").split("|")[1:]]
        assert len(scores) == 4 and all(-100 <= s <= 100 for s in scores)


def test_final_norm_column_is_what_the_pruned_model_outputs(tmp_path):
    """--final-norm at layer k equals mean pooling of the model cut to its first k blocks."""
    import copy

    import numpy as np

    from llm2vec_lite import Encoder
    from llm2vec_lite.modeling import keep_first_layers

    probe = load_benchmark("layer_probe")
    texts = sentences(12)
    enc = Encoder.from_pretrained(make_tiny_llama(tmp_path / "tiny", sentences(80), layers=3))
    normed = probe.pooled_layers(enc, texts, final_norm=True)
    plain = probe.pooled_layers(enc, texts)
    assert not np.allclose(normed[:, 1], plain[:, 1])  # the norm changes an inner layer ...
    np.testing.assert_allclose(normed[:, 3], plain[:, 3])  # ... and not the last, which has it
    cut = copy.deepcopy(enc)
    keep_first_layers(cut.model, 2)
    np.testing.assert_allclose(probe.pooled_layers(cut, texts)[:, 2], normed[:, 2], rtol=1e-5, atol=1e-5)
