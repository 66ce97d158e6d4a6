"""benchmarks/stsb_sources.py: one Spearman per STS-B dev block, each text encoded once."""

from __future__ import annotations

import math

import numpy as np
import pytest
from benchmark_module import load_benchmark


def _write_sts(path, n: int) -> list[float]:
    """A file of n pairs a_i / b_i; returns the gold scores as written."""
    scores = [round((i * 7) % 11 / 2.2, 3) for i in range(n)]
    rows = [f"a{i}\tb{i}\t{s}" for i, s in enumerate(scores)]
    path.write_text("sentence1\tsentence2\tscore\n" + "\n".join(rows) + "\n")
    return scores


class _Angles:
    """a_i -> (1, 0); b_i -> an angle that shrinks with the gold score in the forum block only."""

    def __init__(self, scores: list[float]):
        self.scores, self.calls = scores, []

    def encode(self, texts, batch_size=32):
        self.calls.append(list(texts))
        out = []
        for t in texts:
            i = int(t[1:])
            if t[0] == "a":
                out.append((1.0, 0.0))
                continue
            s = self.scores[i] / 5  # 0..1
            forum = 625 <= i < 1000
            angle = (1 - s if forum else s) * math.pi / 2
            out.append((math.cos(angle), math.sin(angle)))
        return np.asarray(out)


def test_each_block_is_scored_on_its_own_rows_and_each_text_encoded_once(tmp_path, monkeypatch, capsys):
    bench = load_benchmark("stsb_sources")
    fake = _Angles(_write_sts(tmp_path / "stsb-dev.tsv", 1500))
    monkeypatch.setattr(bench, "_encoder", lambda spec: fake)
    assert bench.main(["fake-model", "--data-dir", str(tmp_path)]) == 0
    row = capsys.readouterr().out.strip().splitlines()[-1]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "fake-model"
    by_block = dict(zip([name for name, _, _ in bench.BLOCKS], map(float, cells[2:]), strict=True))
    assert by_block["answers-forums"] == pytest.approx(100.0)
    for name in ("MSRvid", "images", "track5 (SNLI)", "MSRpar", "headlines"):
        assert by_block[name] == pytest.approx(-100.0)
    assert -100 < float(cells[1]) < 100  # the whole set mixes both
    encoded = [t for call in fake.calls for t in call]
    assert sorted(encoded) == sorted({f"{c}{i}" for c in "ab" for i in range(1500)})


def test_a_file_of_another_size_is_refused(tmp_path, monkeypatch):
    bench = load_benchmark("stsb_sources")
    _write_sts(tmp_path / "stsb-dev.tsv", 40)
    monkeypatch.setattr(bench, "_encoder", lambda spec: pytest.fail("loaded a model for a wrong file"))
    with pytest.raises(SystemExit):
        bench.main(["fake-model", "--data-dir", str(tmp_path)])
