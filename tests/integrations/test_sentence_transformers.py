"""A saved encoder folder loads in sentence-transformers with stock modules and gives the same vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("sentence_transformers")

from llm2vec_lite import Encoder  # noqa: E402
from llm2vec_lite.pooling import POOLING_MODES  # noqa: E402

TEXTS = ["the cat sat on the mat", "a dog", "hello world, the park is big and the dog ran", "cat"]


def _tiny(bos: bool = False):
    from llm2vec_lite.patches import enable_bidirectional
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import AutoModel, LlamaConfig, PreTrainedTokenizerFast

    corpus = ["the cat sat on the mat", "a dog ran in the park", "Query: what is this", "hello world"] * 4
    tk = Tokenizer(models.BPE(unk_token=None))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    ))
    if bos:
        tk.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return enable_bidirectional(AutoModel.from_config(cfg).eval()), tok


@pytest.fixture(scope="module")
def parts():
    return _tiny()


def _cos(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("pooling", POOLING_MODES)
def test_sentence_transformer_gives_same_vectors_without_instruction(parts, tmp_path, pooling):
    from sentence_transformers import SentenceTransformer

    enc = Encoder(*parts, pooling=pooling, autocast=False)
    folder = enc.save_pretrained(tmp_path / "enc")
    st = SentenceTransformer(str(folder), device="cpu")
    ours = enc.encode(TEXTS)
    theirs = st.encode(TEXTS, batch_size=2)
    assert _cos(ours, theirs).min() >= 0.9999
    # and the order of rows is the caller's on both sides
    assert np.argmax(ours @ theirs.T, axis=1).tolist() == list(range(len(TEXTS)))


def test_sentence_transformer_query_prompt_matches_query_instruction(parts, tmp_path):
    from llm2vec_lite.integrations.sentence_transformers import to_sentence_transformer

    enc = Encoder(*parts, query_instruction="Query:\n", autocast=False)
    st = to_sentence_transformer(enc, tmp_path / "enc", device="cpu")
    assert st.prompts["query"] == "Query:\n"
    ours = enc.encode_queries(TEXTS)
    theirs = st.encode(TEXTS, prompt_name="query")
    assert _cos(ours, theirs).min() >= 0.9999
    # the prompt is attended to but not pooled on both sides: differs from the plain vectors
    assert _cos(ours, enc.encode(TEXTS)).min() < 0.99999


def test_sentence_transformer_max_length_follows_the_encoder(parts, tmp_path):
    from llm2vec_lite.integrations.sentence_transformers import to_sentence_transformer

    enc = Encoder(*parts, max_length=5, autocast=False)
    st = to_sentence_transformer(enc, tmp_path / "enc", device="cpu")
    assert st.max_seq_length == 5
    long = ["the cat sat on the mat and the dog ran in the park"]
    assert _cos(enc.encode(long), st.encode(long)).min() >= 0.9999


def test_bos_tokenizer_is_the_documented_difference(tmp_path):
    """With a BOS-adding tokenizer and no instruction, ST pools the BOS and we do not (see module doc)."""
    from sentence_transformers import SentenceTransformer

    model, tok = _tiny(bos=True)
    enc = Encoder(model, tok, autocast=False)
    st = SentenceTransformer(str(enc.save_pretrained(tmp_path / "enc")), device="cpu")
    ours, theirs = enc.encode(TEXTS), st.encode(TEXTS)
    assert _cos(ours, theirs).min() < 0.9999
    # last-token pooling reads the same EOS on both sides, BOS or not
    enc_last = Encoder(model, tok, pooling="last_token", autocast=False)
    st_last = SentenceTransformer(str(enc_last.save_pretrained(tmp_path / "last")), device="cpu")
    assert _cos(enc_last.encode(TEXTS), st_last.encode(TEXTS)).min() >= 0.9999



@pytest.fixture(scope="module")
def smollm2(smollm2_gguf):
    enc = Encoder.from_pretrained(smollm2_gguf)  # ~15-30 s: load once for the module
    return enc.model, enc.tokenizer


@pytest.mark.slow
@pytest.mark.parametrize("pooling", ["mean", "last_token"])
def test_smollm2_gguf_folder_agrees_with_sentence_transformers(smollm2, tmp_path, pooling):
    from sentence_transformers import SentenceTransformer

    enc = Encoder(*smollm2, pooling=pooling, autocast=False)
    st = SentenceTransformer(str(enc.save_pretrained(tmp_path / "enc")), device="cpu")
    texts = ["A man is playing a guitar.", "Someone plays music on a stage.", "The cat sleeps."]
    assert _cos(enc.encode(texts), st.encode(texts)).min() >= 0.9999
    reloaded = Encoder.from_pretrained(tmp_path / "enc")
    reloaded.autocast = False
    np.testing.assert_allclose(reloaded.encode(texts), enc.encode(texts), atol=1e-5)


def test_bf16_autocast_is_close_to_but_not_the_float32_vectors(parts, tmp_path):
    """README: the vectors are the same in float32; our bf16 autocast differs a little."""
    from sentence_transformers import SentenceTransformer

    enc = Encoder(*parts, autocast=False)
    st = SentenceTransformer(str(enc.save_pretrained(tmp_path / "enc")), device="cpu")
    theirs = st.encode(TEXTS)
    assert _cos(enc.encode(TEXTS), theirs).min() >= 0.9999
    ours_bf16 = enc.encode(TEXTS, autocast=True)
    assert _cos(ours_bf16, theirs).min() >= 0.98  # the README's worst measured case is 0.985
    assert np.abs(ours_bf16 - theirs).max() > 1e-5  # but not the same vectors


def test_readme_states_when_the_vectors_are_the_same():
    """The README's sentence-transformers claim names its conditions (float32, BOS, last_token)."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    claim = readme[readme.index('"Same vectors" exactly when'):][:900]
    for condition in ("float32", "adds no BOS", "last_token", "bf16 autocast", "benchmarks/st_agreement.py"):
        assert condition in claim, condition


def test_sentence_transformer_applies_the_projection(parts, tmp_path):
    from sentence_transformers import SentenceTransformer

    from llm2vec_lite.projection import fit_on_texts

    enc = Encoder(*parts, autocast=False)
    enc.projection = fit_on_texts(enc, TEXTS * 3 + ["the park", "a cat ran"], "whiten", dims=5)
    st = SentenceTransformer(str(enc.save_pretrained(tmp_path / "enc")), device="cpu")
    ours, theirs = enc.encode(TEXTS), st.encode(TEXTS, batch_size=2)
    assert theirs.shape == ours.shape == (len(TEXTS), 5)
    assert _cos(ours, theirs).min() >= 0.9999
