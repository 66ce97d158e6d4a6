"""Projection (whitening after pooling): the fit's statistics, save/load, and the Encoder using it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llm2vec_lite import Encoder
from llm2vec_lite.errors import ModelError
from llm2vec_lite.projection import PROJECTION_DIR, fit_projection, load_projection

TEXTS = ["the w30 sat on the w40", "a w50", "w60 w61 , the w70 is w71 and the w50 ran", "w30", ""]


def _skewed(n: int = 400, dim: int = 16, seed: int = 0) -> torch.Tensor:
    """Vectors like a decoder's: an offset mean and two dimensions with huge variance."""
    g = torch.Generator().manual_seed(seed)
    rotation, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g))
    scales = torch.linspace(1.0, 5.0, dim)
    scales[:2] = 100.0
    return (torch.randn(n, dim, generator=g) * scales) @ rotation + 50.0


def test_whiten_gives_zero_mean_and_identity_covariance():
    x = _skewed()
    y = fit_projection(x, "whiten")(x).double()
    torch.testing.assert_close(y.mean(0), torch.zeros(16, dtype=torch.float64), atol=1e-3, rtol=0)
    cov = (y - y.mean(0)).T @ (y - y.mean(0)) / (len(y) - 1)
    # to within eps (1e-6 of the largest variance, which is 1e4 times the smallest here)
    torch.testing.assert_close(cov, torch.eye(16, dtype=torch.float64), atol=1e-2, rtol=0)


def test_whiten_dims_keeps_the_top_principal_directions():
    x = _skewed()
    proj = fit_projection(x, "whiten", dims=4)
    y = proj(x).double()
    assert proj.out_dim == 4 and y.shape == (400, 4)
    # the kept directions carry the largest variance: projecting on them keeps more than any 4 raw axes
    centered = (x - x.mean(0)).double()
    kept = torch.linalg.pinv(proj.weight.double()).T  # (4, dim) spans the kept subspace
    q, _ = torch.linalg.qr(kept.T)
    assert (centered @ q).pow(2).sum() >= 0.99 * torch.linalg.svdvals(centered)[:4].pow(2).sum()


def test_standardize_and_center():
    x = _skewed()
    y = fit_projection(x, "standardize")(x).double()
    torch.testing.assert_close(y.std(0), torch.ones(16, dtype=torch.float64), atol=1e-3, rtol=0)
    z = fit_projection(x, "center")(x).double()
    torch.testing.assert_close(z, (x - x.mean(0)).double(), atol=1e-3, rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "pca"}, "expected one of"),
        ({"mode": "whiten", "dims": 0}, "between 1"),
        ({"mode": "whiten", "dims": 17}, "between 1"),
        ({"mode": "standardize", "dims": 4}, "'whiten' only"),
    ],
)
def test_bad_fit_arguments_say_what_is_valid(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit_projection(_skewed(), **kwargs)


def test_too_few_vectors_is_an_error():
    with pytest.raises(ValueError, match="at least 2"):
        fit_projection(torch.randn(1, 4))


def test_gradients_reach_the_input_not_the_map():
    proj = fit_projection(_skewed(), "whiten")
    x = torch.randn(3, 16, requires_grad=True)
    proj(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in proj.parameters()) and list(proj.parameters()) == []


def test_save_and_load_round_trip(tmp_path):
    proj = fit_projection(_skewed(), "whiten", dims=8)
    proj.save(tmp_path)
    loaded = load_projection(tmp_path)
    assert loaded is not None and loaded.info["mode"] == "whiten" and loaded.info["dims"] == 8
    x = torch.randn(5, 16)
    torch.testing.assert_close(loaded(x), proj(x))
    assert load_projection(tmp_path / "nowhere") is None


def test_broken_projection_folder_is_a_model_error(tmp_path):
    (tmp_path / PROJECTION_DIR).mkdir()
    (tmp_path / PROJECTION_DIR / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="not a valid projection"):
        load_projection(tmp_path)


@pytest.fixture
def parts(tiny_model, tiny_tokenizer, monkeypatch):
    """A tiny bidirectional model and tokenizer, encoded in float32 on every machine.

    Encoders reloaded from disk (and the whiten command) pick bf16 autocast on CPUs with AMX or
    AVX512-BF16; the 1e-5 comparisons below are float32 statements, so bf16 is ruled out here.
    """
    from llm2vec_lite.patches import enable_bidirectional

    from llm2vec_lite.runtime import policy as runtime

    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: False)
    return enable_bidirectional(tiny_model("llama")), tiny_tokenizer()


def test_encoder_applies_the_projection_and_saves_it(tmp_path, parts):
    model, tok = parts
    plain = Encoder(model, tok, autocast=False)
    pooled = plain.encode(TEXTS * 10, normalize=False, convert_to="torch")
    proj = fit_projection(pooled, "whiten", dims=4)  # 5 distinct texts: 4 directions with variance
    enc = Encoder(model, tok, autocast=False, projection=proj)
    assert enc.dim == 4 and enc.hidden_size == 32
    got = enc.encode(TEXTS)
    want = torch.nn.functional.normalize(proj(plain.encode(TEXTS, normalize=False, convert_to="torch")), dim=-1)
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5)

    folder = enc.save_pretrained(tmp_path / "enc")
    assert (folder / PROJECTION_DIR / "config.json").is_file()
    np.testing.assert_allclose(Encoder.from_pretrained(folder, dtype="float32").encode(TEXTS), got, atol=1e-5)
    # saving an encoder without a projection into the same folder removes the stale one
    plain.save_pretrained(folder)
    assert not (folder / PROJECTION_DIR).exists()
    assert Encoder.from_pretrained(folder).dim == 32


def test_projection_must_fit_the_hidden_size(parts):
    from llm2vec_lite.errors import UsageError

    model, tok = parts
    with pytest.raises(UsageError, match="hidden size is 32"):
        Encoder(model, tok, projection=fit_projection(torch.randn(10, 8)))


def test_whiten_cli_writes_an_encoder_with_the_projection(tmp_path, parts):
    from llm2vec_lite.cli import main

    model, tok = parts
    src = Encoder(model, tok, autocast=False).save_pretrained(tmp_path / "enc")
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(f"the w{i} is w{i + 1} and w{i + 2}" for i in range(4, 60)) + "\n")
    out = tmp_path / "white"
    assert main(["whiten", str(src), "--texts", str(texts), "--samples", "500", "--dims", "6", "--output", str(out)]) == 0
    enc = Encoder.from_pretrained(out)
    assert enc.dim == 6 and enc.projection.info["texts"] == 56  # all of them: fewer than --samples
    vecs = enc.encode([f"the w{i} is w{i + 1} and w{i + 2}" for i in range(4, 60)], normalize=False)
    np.testing.assert_allclose(vecs.mean(0), 0, atol=1e-3)  # centred on the texts it was fitted on
    # an existing output folder is a usage error (exit 2), nothing is overwritten
    assert main(["whiten", str(src), "--texts", str(texts), "--output", str(out)]) == 2
    assert Encoder.from_pretrained(out).dim == 6
