"""Encoder: pooling under both padding sides, batch-size invariance, instructions, bad inputs,
save/load round trips (Encoder, AutoModel), the encode CLI. Tiny random Llama models only."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from llm2vec_lite import Encoder
from llm2vec_lite.pooling import POOLING_MODES

TEXTS = ["the cat sat on the mat", "a dog", "", "hello world, the park is big and the dog ran", "cat"]


def _tiny_tokenizer(bos: bool = False):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = ["the cat sat on the mat", "a dog ran in the park", "Query: what is this", "hello world"] * 4
    tk = Tokenizer(models.BPE(unk_token=None))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tk.train_from_iterator(corpus, trainer)
    if bos:
        tk.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def _tiny_model(vocab: int = 300, seed: int = 0):
    from llm2vec_lite.patches import enable_bidirectional
    from transformers import AutoModel, LlamaConfig

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    model = AutoModel.from_config(cfg).eval()
    return enable_bidirectional(model)


@pytest.fixture(scope="module")
def parts():
    return _tiny_model(), _tiny_tokenizer()


def _enc(parts, **kw):
    model, tok = parts
    kw.setdefault("autocast", False)
    return Encoder(model, tok, **kw)


@pytest.mark.parametrize("pooling", POOLING_MODES)
def test_vectors_do_not_depend_on_batch_size_or_padding_side(parts, pooling):
    enc = _enc(parts, pooling=pooling)
    one_by_one = np.stack([enc.encode(t) for t in TEXTS])
    batched = enc.encode(TEXTS, batch_size=4)
    enc.padding_side = "left"
    left = enc.encode(TEXTS, batch_size=3)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    np.testing.assert_allclose(left, one_by_one, atol=1e-5)


def test_rows_come_back_in_callers_order(parts):
    enc = _enc(parts)
    vecs = enc.encode(TEXTS, batch_size=2)
    rev = enc.encode(TEXTS[::-1], batch_size=2)
    np.testing.assert_allclose(rev[::-1], vecs, atol=1e-5)
    assert not np.allclose(vecs[0], vecs[1])


def test_output_shapes_dtypes_and_normalization(parts):
    enc = _enc(parts)
    vecs = enc.encode(TEXTS)
    assert vecs.shape == (len(TEXTS), 32) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    raw = enc.encode(TEXTS, normalize=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), vecs, atol=1e-5)
    single = enc.encode("a dog")
    assert single.shape == (32,)
    t = enc.encode(TEXTS, convert_to="torch")
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.shape == (len(TEXTS), 32)


def test_bf16_autocast_stays_close_to_fp32(parts):
    enc = _enc(parts)
    exact = enc.encode(TEXTS)
    fast = enc.encode(TEXTS, autocast=True)
    assert fast.dtype == np.float32
    assert (exact * fast).sum(1).min() > 0.99


def test_autocast_casts_each_weight_once_per_call_not_once_per_batch(parts):
    """The bf16 copy of a weight is made once per ``encode`` call and reused by every batch.
    ``torch.inference_mode`` turns autocast's cast cache off (every batch re-cast the whole model:
    a quarter of the time of short-sentence encoding); the encoder runs under ``no_grad``."""
    from torch.profiler import ProfilerActivity, profile

    model, tok = parts
    enc = _enc(parts)
    mlp_shape = list(model.layers[0].mlp.gate_proj.weight.shape)  # gate and up: (64, 32)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        enc.encode(TEXTS, batch_size=1, autocast=True)  # five batches
    casts = [e for e in prof.events() if e.name == "aten::_to_copy" and e.input_shapes[:1] == [mlp_shape]]
    assert len(casts) == 2 * len(model.layers)  # gate + up of each block, once


def test_instruction_changes_vector_but_is_not_pooled(parts):
    from llm2vec_lite.tokenization import tokenize

    model, tok = parts
    instr = "Query:\n"  # ends at a token boundary, so the text tokenizes as it does alone
    batch = tokenize(tok, ["the cat"], max_length=64, instruction=instr)
    plain = tokenize(tok, ["the cat"], max_length=64)
    # the pooled tokens are the text's tokens only, the same ids as without the instruction
    pooled_ids = batch.input_ids[0][batch.pool_mask[0].bool()].tolist()
    assert pooled_ids == plain.input_ids[0][plain.pool_mask[0].bool()].tolist()
    assert batch.attention_mask.sum() > plain.attention_mask.sum()
    enc = _enc(parts)
    with_instr = enc.encode("the cat", instruction=instr)
    without = enc.encode("the cat")
    assert float(with_instr @ without) < 0.99999  # attended: the context changed the text's states


def test_causal_model_gives_different_vectors(parts):
    from transformers import AutoModel

    model, tok = parts
    causal = AutoModel.from_config(model.config.__class__(**{**model.config.to_dict(), "is_causal": True}))
    causal.load_state_dict(model.state_dict())
    a = Encoder(model, tok, autocast=False).encode(TEXTS)
    b = Encoder(causal.eval(), tok, autocast=False, bidirectional=False).encode(TEXTS)
    assert not np.allclose(a, b, atol=1e-3)


def test_empty_list_gives_empty_matrix(parts):
    vecs = _enc(parts).encode([])
    assert vecs.shape == (0, 32) and vecs.dtype == np.float32


@pytest.mark.parametrize("bos", [False, True], ids=["adds-nothing", "adds-bos"])
@pytest.mark.parametrize("pooling", POOLING_MODES)
def test_empty_string_gives_a_finite_unit_vector(parts, pooling, bos):
    """Both tokenizer kinds: one that adds nothing (SmolLM2: "" -> no ids) and one that adds BOS."""
    model, _ = parts
    tok = _tiny_tokenizer(bos=bos)
    assert len(tok("")["input_ids"]) == int(bos)
    enc = Encoder(model, tok, pooling=pooling, autocast=False)
    raw = enc.encode(["", "a dog"], normalize=False)
    assert np.isfinite(raw).all() and np.linalg.norm(raw[0]) > 1e-3  # not the zero vector
    vec = enc.encode([""])[0]
    assert np.isfinite(vec).all() and abs(np.linalg.norm(vec) - 1) < 1e-5
    np.testing.assert_allclose(enc.encode(["", "a dog", ""])[2], vec, atol=1e-5)  # the same, every time


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_empty_text_after_a_save_is_still_a_unit_vector(parts, tmp_path, padding_side):
    """A corpus document with neither title nor body, through a saved folder (the tokenizer as
    written to disk), beside long texts, with a document instruction and under either padding."""
    model, _ = parts
    Encoder(model, _tiny_tokenizer(bos=False), autocast=False).save_pretrained(tmp_path)
    enc = Encoder.from_pretrained(tmp_path)
    enc.autocast, enc.padding_side = False, padding_side
    assert enc.tokenizer("")["input_ids"] == []  # the tokenizer adds nothing
    texts = ["", "hello world, the park is big and the dog ran", ""]
    for instruction in (None, "Query: "):
        vecs = enc.encode(texts, instruction=instruction, batch_size=3)
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(vecs[0], enc.encode("", instruction=instruction), atol=1e-5)


def test_from_pretrained_rejects_bad_arguments_before_loading(tmp_path, monkeypatch):
    from transformers import PreTrainedModel

    from llm2vec_lite.errors import UsageError

    def refuse(*a, **k):
        raise AssertionError("weights loaded")

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(refuse))
    for kwargs, message in [
        ({"max_length": 0}, "max_length must be a whole number >= 1"),
        ({"dtype": "foo"}, "dtype 'foo' is not a dtype"),
        ({"device": "cuda:99"}, "device 'cuda:99'"),
        ({"window": "half"}, "full, keep"),
        ({"pooling": "max"}, "Valid modes"),
    ]:
        with pytest.raises(UsageError, match=message):
            Encoder.from_pretrained(tmp_path, **kwargs)


def test_compiled_encoder_gives_the_plain_vectors(parts):
    """``compile=True``: the blocks run through torch.compile (a model of its own, so the shared
    fixture stays eager); batches with and without padding give the eager vectors."""
    model, tok = _tiny_model(seed=3), parts[1]
    want = Encoder(model, tok, autocast=False).encode(TEXTS, batch_size=2)
    enc = Encoder(model, tok, autocast=False, compile=True)
    assert enc.compiled and all(block._compiled_call_impl is not None for block in model.layers)
    assert enc.compile() is enc  # a second call changes nothing
    np.testing.assert_allclose(enc.encode(TEXTS, batch_size=2), want, atol=1e-5)
    np.testing.assert_allclose(enc.encode(TEXTS[1], batch_size=1), want[1], atol=1e-5)  # no padding
    from llm2vec_lite.runtime.block_compile import uncompile_blocks

    uncompile_blocks(model)  # the state is read from the blocks, so it cannot go stale
    assert not enc.compiled
    assert enc.compile().compiled


def test_compile_without_a_cpu_compiler_fails_before_loading(tmp_path, monkeypatch, parts):
    from transformers import PreTrainedModel

    from llm2vec_lite.errors import UsageError

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr("llm2vec_lite.runtime.block_compile.shutil.which", lambda name: None)
    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(lambda *a, **k: pytest.fail("weights loaded")))
    with pytest.raises(UsageError, match=r"compile=True: torch.compile needs a C\+\+ compiler"):
        Encoder.from_pretrained(tmp_path, compile=True)
    model, tok = _tiny_model(seed=4), parts[1]
    with pytest.raises(UsageError, match="C\\+\\+ compiler"):
        Encoder(model, tok, compile=True)
    assert all(block._compiled_call_impl is None for block in model.layers)


def test_window_keep_is_saved_and_honoured_by_from_pretrained(tmp_path, tiny_model, tiny_tokenizer):
    """A model patched with window='keep' keeps its sliding window after save + from_pretrained."""
    from llm2vec_lite.patches import enable_bidirectional

    build_tiny_model, build_tiny_tokenizer = tiny_model, tiny_tokenizer

    model = enable_bidirectional(build_tiny_model("mistral", attn_implementation="sdpa"), window="keep")
    assert model.config.sliding_window == 4
    tok = build_tiny_tokenizer()
    long = [" ".join(["the cat of a dog"] * 4), "a dog"]  # longer than the window
    enc = Encoder(model, tok, window="keep", autocast=False)
    folder = enc.save_pretrained(tmp_path / "enc")
    assert json.loads((folder / "llm2vec_lite.json").read_text())["window"] == "keep"
    loaded = Encoder.from_pretrained(folder)
    loaded.autocast = False
    assert loaded.window == "keep" and loaded.model.config.sliding_window == 4
    np.testing.assert_allclose(loaded.encode(long), enc.encode(long), atol=1e-5)
    full = Encoder.from_pretrained(folder, window="full")
    full.autocast = False
    assert full.model.config.sliding_window is None
    assert not np.allclose(full.encode(long)[0], enc.encode(long)[0], atol=1e-4)  # the window mattered


def test_gemma3_encoder_asks_the_patch_registry_whether_it_is_bidirectional(tmp_path, tiny_model, tiny_tokenizer):
    """Gemma 3 says bidirectional with use_bidirectional_attention, not is_causal."""
    from llm2vec_lite.patches import enable_bidirectional, is_bidirectional

    build_tiny_model, build_tiny_tokenizer = tiny_model, tiny_tokenizer
    from transformers import AutoModel

    model = enable_bidirectional(build_tiny_model("gemma3_text"))
    assert getattr(model.config, "is_causal", None) is not False  # the flag Encoder used to read
    enc = Encoder(model, build_tiny_tokenizer(), autocast=False)
    assert enc.bidirectional is True
    folder = enc.save_pretrained(tmp_path / "enc")
    saved = json.loads((folder / "config.json").read_text())
    assert saved["use_bidirectional_attention"] is True and saved.get("is_causal") is not True
    assert Encoder.from_pretrained(folder).bidirectional is True
    assert is_bidirectional(AutoModel.from_pretrained(folder))


def test_non_string_item_raises_type_error_naming_its_index(parts):
    with pytest.raises(TypeError, match=r"texts\[2\]"):
        _enc(parts).encode(["a", "b", 3, "d"])


def test_truncation_is_reported_once_per_call(parts, caplog):
    enc = _enc(parts, max_length=4)
    long = "the cat sat on the mat and the dog ran in the park"
    with caplog.at_level(logging.WARNING, logger="llm2vec_lite.encoder"):
        vecs = enc.encode([long, long, "a", long])
    msgs = [r.getMessage() for r in caplog.records if "truncated" in r.getMessage()]
    assert len(msgs) == 1 and msgs[0].startswith("3 of 4 texts")
    np.testing.assert_allclose(vecs[0], vecs[1], atol=1e-6)


def test_unknown_pooling_lists_valid_modes(parts):
    with pytest.raises(ValueError, match="mean, weighted_mean, last_token, first_token"):
        _enc(parts, pooling="max")


def test_folder_without_model_says_what_is_missing(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(FileNotFoundError, match=r"config\.json is missing.*notes\.txt"):
        Encoder.from_pretrained(tmp_path)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_save_and_load_round_trip_keeps_vectors_and_settings(parts, tmp_path, bidirectional):
    model, tok = parts
    enc = Encoder(
        model, tok, pooling="weighted_mean", max_length=64, query_instruction="Query: ",
        autocast=False, bidirectional=bidirectional,
    )
    if not bidirectional:
        model.config.is_causal = True
    try:
        folder = enc.save_pretrained(tmp_path / "enc", model_card="# my card\n")
    finally:
        model.config.is_causal = False
    settings = json.loads((folder / "llm2vec_lite.json").read_text())
    assert settings["pooling"] == "weighted_mean" and settings["max_length"] == 64
    assert settings["query_instruction"] == "Query: " and settings["bidirectional"] is bidirectional
    assert json.loads((folder / "config.json").read_text())["is_causal"] is (not bidirectional)
    assert (folder / "README.md").read_text() == "# my card\n"
    assert (folder / "model.safetensors").is_file()

    loaded = Encoder.from_pretrained(folder)
    loaded.autocast = False
    assert (loaded.pooling, loaded.max_length, loaded.query_instruction, loaded.bidirectional) == (
        "weighted_mean", 64, "Query: ", bidirectional,
    )
    if bidirectional:
        np.testing.assert_allclose(loaded.encode(TEXTS), enc.encode(TEXTS), atol=1e-5)
        np.testing.assert_allclose(
            loaded.encode_queries(TEXTS), enc.encode(TEXTS, instruction="Query: "), atol=1e-5
        )
    overridden = Encoder.from_pretrained(folder, pooling="mean", max_length=16)
    assert (overridden.pooling, overridden.max_length) == ("mean", 16)


def test_automodel_loads_saved_folder_bidirectional(parts, tmp_path):
    from transformers import AutoModel

    model, tok = parts
    folder = _enc(parts).save_pretrained(tmp_path / "enc")
    auto = AutoModel.from_pretrained(folder).eval()
    a, b = torch.tensor([[5, 6, 7, 8]]), torch.tensor([[5, 6, 7, 9]])
    with torch.no_grad():
        first_a = auto(input_ids=a).last_hidden_state[0, 0]
        first_b = auto(input_ids=b).last_hidden_state[0, 0]
        ref = model(input_ids=a).last_hidden_state[0, 0]
    assert not torch.allclose(first_a, first_b)  # the first token sees the last one
    torch.testing.assert_close(first_a, ref, atol=1e-5, rtol=1e-5)


def test_default_model_card_names_settings(parts, tmp_path):
    folder = _enc(parts, pooling="last_token").save_pretrained(tmp_path / "enc")
    card = (folder / "README.md").read_text()
    assert "last_token" in card and "bidirectional" in card


def test_encode_cli_writes_vectors_in_line_order(parts, tmp_path):
    from llm2vec_lite.cli import main

    folder = _enc(parts).save_pretrained(tmp_path / "enc")
    (tmp_path / "in.txt").write_text("\n".join(["a dog", "the cat sat", "hello"]) + "\n")
    out = tmp_path / "vecs.npy"
    code = main(["encode", str(folder), "--input", str(tmp_path / "in.txt"), "--output", str(out),
                 "--batch-size", "2", "--no-autocast"])
    assert code == 0
    vecs = np.load(out)
    ref = _enc(parts).encode(["a dog", "the cat sat", "hello"])
    np.testing.assert_allclose(vecs, ref, atol=1e-5)
    raw_out = tmp_path / "raw.npy"
    assert main(["encode", str(folder), "-i", str(tmp_path / "in.txt"), "-o", str(raw_out), "--no-normalize"]) == 0
    assert not np.allclose(np.linalg.norm(np.load(raw_out), axis=1), 1.0)


def test_encode_cli_reports_folder_that_is_not_a_model(tmp_path, capsys):
    from llm2vec_lite.cli import main

    (tmp_path / "in.txt").write_text("a\n")
    code = main(["encode", str(tmp_path), "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "o.npy")])
    assert code == 1 and "config.json is missing" in capsys.readouterr().err
