"""benchmarks/average_weights.py: the mean of two tiny models, loadable as an encoder; bad inputs refused."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from benchmark_module import load_benchmark
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "recipes"))

from tiny_project import make_tiny_llama, sentences  # noqa: E402


@pytest.fixture
def two_models(tmp_path):
    texts = sentences(60)
    a = make_tiny_llama(tmp_path / "a", texts, seed=0)
    b = make_tiny_llama(tmp_path / "b", texts, seed=1)
    return a, b


def test_the_average_is_the_elementwise_mean_and_loads_as_an_encoder(two_models, tmp_path):
    from llm2vec_lite import Encoder

    avg = load_benchmark("average_weights")
    a, b = two_models
    out = avg.main([str(tmp_path / "soup"), str(a), str(b)])
    sa, sb, so = (load_file(str(p / "model.safetensors")) for p in (a, b, out))
    assert so.keys() == sa.keys()
    for name in sa:
        assert so[name].dtype == sa[name].dtype
        torch.testing.assert_close(so[name], (sa[name] + sb[name]) / 2)
    assert not torch.equal(so["model.layers.0.mlp.up_proj.weight"], sa["model.layers.0.mlp.up_proj.weight"])
    texts = ["a small test sentence", "another one"]
    soup = Encoder.from_pretrained(str(out)).encode(texts)
    ea = Encoder.from_pretrained(str(a)).encode(texts)
    assert soup.shape == ea.shape and not torch.allclose(torch.as_tensor(soup), torch.as_tensor(ea))


def test_averaging_a_model_with_itself_changes_nothing(two_models, tmp_path):
    from llm2vec_lite import Encoder

    avg = load_benchmark("average_weights")
    a, _ = two_models
    out = avg.main([str(tmp_path / "same"), str(a), str(a)])
    texts = ["the same model twice gives the same vectors"]
    torch.testing.assert_close(
        torch.as_tensor(Encoder.from_pretrained(str(out)).encode(texts)),
        torch.as_tensor(Encoder.from_pretrained(str(a)).encode(texts)),
    )


def test_mismatched_or_missing_inputs_are_refused(two_models, tmp_path, capsys):
    avg = load_benchmark("average_weights")
    a, b = two_models
    state = load_file(str(b / "model.safetensors"))
    state.pop("model.norm.weight")
    bad = tmp_path / "bad"
    bad.mkdir()
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(SystemExit):
        avg.main([str(tmp_path / "x"), str(a), str(bad)])
    assert "tensor names differ" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        avg.main([str(tmp_path / "y"), str(a), str(tmp_path / "nowhere")])
    assert "no model.safetensors" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        avg.main([str(a), str(a), str(b)])  # the output exists
    assert "exists" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least two"):
        avg.average_state_dicts([a])
