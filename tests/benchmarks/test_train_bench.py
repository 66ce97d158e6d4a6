"""benchmarks/train.py: the --memory spec (PLAIN:BIG:CHUNK[:PLAIN_STEPS]) parses and refuses bad input."""

from __future__ import annotations

import pytest
from benchmark_module import load_benchmark


def test_memory_spec_defaults_plain_steps_to_the_same_work_and_takes_a_fourth_field():
    train = load_benchmark("train_bench", "train.py")
    assert train.parse_memory("32:512:96") == (32, 512, 96, 16)
    assert train.parse_memory("32:512:96:1") == (32, 512, 96, 1)
    assert train.parse_memory("64:32:96") == (64, 32, 96, 1)  # never zero plain steps


@pytest.mark.parametrize("bad", ["32:512", "32:512:96:1:2", "a:512:96", "32:0:96", "32:512:96:-1", ""])
def test_bad_memory_specs_name_the_expected_form(bad):
    train = load_benchmark("train_bench", "train.py")
    with pytest.raises(ValueError, match="PLAIN:BIG:CHUNK"):
        train.parse_memory(bad)
