"""benchmarks/simcse_views.py on a tiny model: no noise gives identical views, more noise pulls them apart."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
from benchmark_module import load_benchmark

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "recipes"))

from tiny_project import make_tiny_llama, sentences  # noqa: E402


def test_settings_parse_and_reject_a_missing_colon():
    views = load_benchmark("simcse_views")
    assert views.parse_settings("0.1:0, 0.3:0.2") == [(0.1, 0.0), (0.3, 0.2)]
    with pytest.raises(argparse.ArgumentTypeError, match="ATTN:HIDDEN"):
        views.parse_settings("0.1")


def test_views_separate_with_noise_and_the_table_has_a_row_per_setting(tmp_path, capsys):
    views = load_benchmark("simcse_views")
    texts = sentences(80)
    model = make_tiny_llama(tmp_path / "tiny", texts, layers=2)
    (tmp_path / "wiki.txt").write_text("\n".join(sentences(100, seed=1)) + "\n")
    assert views.main([str(model), "--texts", str(tmp_path / "wiki.txt"), "--batch", "8",
                       "--settings", "0:0,0:0.5"]) == 0
    rows = [ln.strip("|").split("|") for ln in capsys.readouterr().out.splitlines() if ln.startswith("| 0")]
    assert len(rows) == 2
    quiet, noisy = (float(r[2]) for r in rows)  # pos_cos
    assert quiet == pytest.approx(1.0, abs=1e-4)  # no dropout anywhere: the two views are one vector
    assert noisy < quiet - 1e-3  # hidden dropout alone separates them
