"""Data readers (txt/tsv/csv/jsonl/parquet/hub) and MNTP packing and masking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from llm2vec_lite.data import (
    InstructedRow,
    MNTPCollator,
    mask_token_id,
    pack_texts,
    read_instructed_rows,
    read_rows,
    read_texts,
)
from llm2vec_lite.errors import DataError
from llm2vec_lite.recipe import DataSource

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
WORDS = [f"w{i}" for i in range(60)]


def _tokenizer(with_bos: bool = True):
    """A tiny word-level fast tokenizer: specials, '_' and 60 words, optionally adding BOS."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(["<unk>", "<pad>", "<s>", "</s>", "_", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if with_bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- readers ------------------------------------------------------------------------------


def test_txt_gives_stripped_non_empty_lines(tmp_path):
    f = _write(tmp_path / "t.txt", "  first line \n\n   \nsecond\n")
    assert read_texts(DataSource(path=str(f))) == ["first line", "second"]


def test_tsv_is_read_unquoted_by_header(tmp_path):
    f = _write(tmp_path / "t.tsv", 'anchor\tpositive\tnegative\n"quoted a\tb "x\tc\nd\te\tf\n')
    rows = read_rows(DataSource(path=str(f)), ["anchor", "positive", "negative"])
    assert rows == [('"quoted a', 'b "x', "c"), ("d", "e", "f")]


def test_csv_honours_quotes(tmp_path):
    f = _write(tmp_path / "t.csv", 'sentence1,sentence2\n"a, with comma",b\n')
    assert read_rows(DataSource(path=str(f)), ["sentence1", "sentence2"]) == [("a, with comma", "b")]


def test_jsonl_reads_keys_as_columns(tmp_path):
    lines = [{"query": "q1", "pos": "p1", "neg": "n1"}, {"query": "q2", "pos": "p2", "neg": "n2"}]
    f = _write(tmp_path / "t.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n")
    src = DataSource(path=str(f), columns=["query", "pos", "neg"])
    assert read_rows(src, ["anchor", "positive", "negative"]) == [("q1", "p1", "n1"), ("q2", "p2", "n2")]


def test_parquet_is_read(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    f = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": ["x", "y", ""], "other": [1, 2, 3]}), f)
    assert read_texts(DataSource(path=str(f))) == ["x", "y"]


def test_format_field_overrides_suffix(tmp_path):
    f = _write(tmp_path / "t.data", "a\tb\nx\ty\n")
    assert read_rows(DataSource(path=str(f), format="tsv"), ["a", "b"]) == [("x", "y")]


def test_columns_map_by_position_and_limit_caps_rows(tmp_path):
    f = _write(tmp_path / "t.tsv", "s1\ts2\tlabel\n" + "".join(f"a{i}\tb{i}\t1\n" for i in range(10)))
    src = DataSource(path=str(f), columns=["s2", "s1"], limit=3)
    assert read_rows(src, ["anchor", "positive"]) == [("b0", "a0"), ("b1", "a1"), ("b2", "a2")]


def test_rows_with_an_empty_field_are_dropped(tmp_path):
    f = _write(tmp_path / "t.tsv", "anchor\tpositive\na\t\nb\tc\nd\n")
    assert read_rows(DataSource(path=str(f)), ["anchor", "positive"]) == [("b", "c")]


def test_list_of_sources_is_concatenated_in_order(tmp_path):
    a = _write(tmp_path / "a.txt", "one\ntwo\n")
    b = _write(tmp_path / "b.tsv", "text\tx\nthree\t0\n")
    assert read_texts([DataSource(path=str(a)), DataSource(path=str(b))]) == ["one", "two", "three"]


def test_read_texts_picks_the_text_column_or_asks(tmp_path):
    f = _write(tmp_path / "t.tsv", "id\tsentence\n1\thello\n")
    assert read_texts(DataSource(path=str(f))) == ["hello"]
    g = _write(tmp_path / "u.tsv", "a\tb\n1\t2\n")
    with pytest.raises(DataError, match=r"columns \['a', 'b'\].*data.columns"):
        read_texts(DataSource(path=str(g)))
    assert read_texts(DataSource(path=str(g)), column="b") == ["2"]


def test_missing_file_error_names_path_and_field(tmp_path):
    src = DataSource(path=str(tmp_path / "nope.txt"))
    src._origin = "my.yaml: stages[0].data"
    with pytest.raises(DataError, match=r"my.yaml: stages\[0\].data.path = .*nope.txt: file not found"):
        read_texts(src)


def test_missing_columns_error_lists_columns_found(tmp_path):
    f = _write(tmp_path / "t.tsv", "sentence1\tsentence2\na\tb\n")
    with pytest.raises(
        DataError, match=r"no column\(s\) \['anchor', 'positive'\]; found \['sentence1', 'sentence2'\]"
    ):
        read_rows(DataSource(path=str(f)), ["anchor", "positive"])


def test_empty_dataset_is_an_error(tmp_path):
    f = _write(tmp_path / "t.txt", "\n  \n")
    with pytest.raises(DataError, match="gave no rows"):
        read_texts(DataSource(path=str(f)))


def test_txt_cannot_give_triplets(tmp_path):
    f = _write(tmp_path / "t.txt", "a\n")
    with pytest.raises(DataError, match="one text a line"):
        read_rows(DataSource(path=str(f)), ["anchor", "positive", "negative"])


def test_malformed_jsonl_names_the_line(tmp_path):
    f = _write(tmp_path / "t.jsonl", '{"text": "a"}\nnot json\n')
    with pytest.raises(DataError, match="line 2 is not JSON"):
        read_texts(DataSource(path=str(f)))


def test_hub_source_goes_through_datasets_load_dataset(monkeypatch):
    import datasets

    local = datasets.Dataset.from_dict(
        {
            "anchor": ["a1", "a2", "a3"],
            "positive": ["p1", "p2", "p3"],
            "negative": [["n1", "m1"], ["n2"], ["n3"]],
        }
    )
    calls = []

    def fake_load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        return local

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    src = DataSource(hub="org/e5-data", name="default", split="train", limit=2)
    rows = read_rows(src, ["anchor", "positive", "negative"])
    assert calls == [("org/e5-data", "default", "train")]
    assert rows == [("a1", "p1", "n1"), ("a2", "p2", "n2")]


def test_hub_failure_is_a_data_error(monkeypatch):
    import datasets

    def broken(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", broken)
    with pytest.raises(DataError, match="cannot load hub dataset hub:org/x:train.*offline"):
        read_texts(DataSource(hub="org/x"))


@pytest.mark.skipif(not (SHARED / "nli" / "snli-triplets.tsv").is_file(), reason="shared data not present")
def test_shared_snli_triplets_read_fully():
    rows = read_rows(
        DataSource(path=str(SHARED / "nli" / "snli-triplets.tsv")), ["anchor", "positive", "negative"]
    )
    assert len(rows) == 5883  # documented in shared/data/README.md
    assert all(len(r) == 3 and all(r) for r in rows)


# -- MNTP ---------------------------------------------------------------------------------


def test_pack_texts_joins_with_eos_and_starts_blocks_with_bos():
    tok = _tokenizer()
    texts = [" ".join(WORDS[i : i + 7]) for i in range(0, 50, 7)]
    blocks = pack_texts(tok, texts, block_size=10)
    assert all(b[0] == tok.bos_token_id for b in blocks)
    assert all(len(b) == 10 for b in blocks[:-1]) and 2 <= len(blocks[-1]) <= 10
    stream = [t for b in blocks for t in b[1:]]
    expected = []
    for t in texts:
        expected += tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert stream == expected


def test_pack_texts_without_bos_uses_whole_block():
    tok = _tokenizer(with_bos=False)
    blocks = pack_texts(tok, ["w1 w2 w3", "w4 w5"], block_size=4)
    assert blocks == [[5 + 1, 5 + 2, 5 + 3, tok.eos_token_id], [5 + 4, 5 + 5, tok.eos_token_id]]


def test_mask_token_strategies():
    tok = _tokenizer()
    assert mask_token_id(tok, "blank") == tok.convert_tokens_to_ids("_")
    assert mask_token_id(tok, "eos") == tok.eos_token_id
    before = len(tok)
    new_id = mask_token_id(tok, "mask")
    assert len(tok) == before + 1 and tok.convert_ids_to_tokens(new_id) == "<mask>"
    assert mask_token_id(tok, "mask") == new_id  # no second token added
    with pytest.raises(ValueError, match="blank, eos, mask"):
        mask_token_id(tok, "star")


def _blocks(n_rows: int, lengths: list[int], seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [
        [2] + torch.randint(5, 65, (lengths[i % len(lengths)] - 1,), generator=g).tolist()
        for i in range(n_rows)
    ]


def test_mntp_masks_at_roughly_the_probability():
    tok = _tokenizer()
    collator = MNTPCollator(tok, 0.2, mask_token_id(tok, "blank"))
    batch = collator(_blocks(64, [128]), torch.Generator().manual_seed(1))
    chosen = batch["labels"] != -100
    rate = chosen.sum().item() / (64 * 127)  # the first token is never chosen
    assert 0.17 < rate < 0.23
    replaced = (batch["input_ids"] == collator.mask_token_id) & chosen
    assert 0.7 < replaced.sum().item() / chosen.sum().item() < 0.9  # the 80% of 80/10/10


def test_mntp_never_masks_pads_or_the_first_token_and_labels_only_at_masked_positions():
    tok = _tokenizer()
    collator = MNTPCollator(
        tok, 0.5, mask_token_id(tok, "blank"), replace_with_mask=1.0, replace_with_random=0.0
    )
    blocks = _blocks(16, [5, 20, 33])
    batch = collator(blocks, torch.Generator().manual_seed(3))
    ids, attn, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    assert ids.shape == attn.shape == labels.shape == (16, 33)
    pads = attn == 0
    assert pads.any()
    assert (labels[pads] == -100).all() and (ids[pads] == tok.pad_token_id).all()
    assert (labels[:, 0] == -100).all()
    masked = ids == collator.mask_token_id
    assert torch.equal(masked, labels != -100)  # with replace_with_mask=1: masked <=> labelled
    original = torch.full_like(ids, tok.pad_token_id)
    for i, b in enumerate(blocks):
        original[i, : len(b)] = torch.tensor(b)
    assert torch.equal(labels[masked], original[masked])
    assert torch.equal(ids[~masked], original[~masked])


def test_mntp_never_masks_special_tokens_and_every_row_gets_a_label():
    tok = _tokenizer()
    collator = MNTPCollator(tok, 0.01, mask_token_id(tok, "blank"))
    blocks = [[2, 10, tok.eos_token_id, 11, 12], [2, 13]]
    for seed in range(20):
        batch = collator(blocks, torch.Generator().manual_seed(seed))
        labels = batch["labels"]
        assert (labels != -100).sum(dim=1).min() >= 1
        assert labels[0, 2] == -100  # the EOS separator


def test_mntp_masking_is_reproducible_with_the_generator():
    tok = _tokenizer()
    collator = MNTPCollator(tok, 0.3, mask_token_id(tok, "blank"))
    blocks = _blocks(8, [40])
    a = collator(blocks, torch.Generator().manual_seed(7))
    b = collator(blocks, torch.Generator().manual_seed(7))
    c = collator(blocks, torch.Generator().manual_seed(8))
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
    assert not torch.equal(a["labels"], c["labels"])


def test_mntp_labels_fit_a_causal_lm_loss():
    """With HF's internal shift, logits at i-1 are scored against the masked token at i."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = _tokenizer()
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).eval()
    collator = MNTPCollator(tok, 0.3, mask_token_id(tok, "blank"))
    batch = collator(_blocks(4, [12, 9]), torch.Generator().manual_seed(0))
    out = model(**batch)
    logits = out.logits[:, :-1]  # (B, T-1, V): position i-1 predicts token i
    target = batch["labels"][:, 1:]
    manual = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
    assert torch.isfinite(out.loss)
    torch.testing.assert_close(out.loss, manual)


def test_collator_for_stage_follows_mask_replacement():
    from llm2vec_lite.recipe import MNTPStage

    tok = _tokenizer()
    stage = MNTPStage(kind="mntp", data={"hub": "x/y"}, steps=1, batch_size=1, learning_rate=1e-4,
                      mask_probability=0.5, mask_replacement="all")  # fmt: skip
    collator = MNTPCollator.for_stage(tok, stage, mask_token_id(tok, "blank"))
    batch = collator(_blocks(8, [30]), torch.Generator().manual_seed(0))
    chosen = batch["labels"] != -100
    assert (batch["input_ids"][chosen] == collator.mask_token_id).all()


def test_hub_data_files_are_passed_to_load_dataset(monkeypatch):
    import datasets

    seen = {}

    def fake_load_dataset(path, name=None, split=None, **kwargs):
        seen.update(kwargs, path=path)
        return datasets.Dataset.from_dict({"sent0": ["a"], "sent1": ["b"], "hard_neg": ["c"]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    src = DataSource(hub="princeton-nlp/datasets-for-simcse", data_files="nli_for_simcse.csv")
    assert read_rows(src, ["sent0", "sent1", "hard_neg"]) == [("a", "b", "c")]
    assert seen == {"path": "princeton-nlp/datasets-for-simcse", "data_files": "nli_for_simcse.csv"}


def test_instructions_come_from_the_row_then_the_source_then_the_stage(tmp_path):
    f = tmp_path / "rows.jsonl"
    f.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"q": "q1", "p": "p1", "n": "n1", "task": "  Find the answer "},
                {"q": "q2", "p": "p2", "n": "n2", "task": ""},
                {"q": "q3", "p": "p3", "n": "", "task": "No negative"},
            ]
        ),
        encoding="utf-8",
    )
    g = tmp_path / "plain.tsv"
    g.write_text("anchor\tpositive\tnegative\nq4\tp4\tn4\n", encoding="utf-8")
    cols = ["q", "p", "n"]
    sources = [
        DataSource(
            path=str(f),
            columns=cols,
            instruction_column="task",
            instruction_template="Instruct: {instruction}\nQuery: ",
            query_instruction="Source: ",
        ),
        DataSource(path=str(g), document_instruction="Same: "),
    ]
    rows = read_instructed_rows(
        sources, ["anchor", "positive", "negative"], query_instruction="Stage: ", document_instruction="Doc: "
    )
    assert rows == [
        InstructedRow(("q1", "p1", "n1"), "Instruct: Find the answer\nQuery: ", "Doc: "),  # the row's own
        InstructedRow(("q2", "p2", "n2"), "Source: ", "Doc: "),  # empty cell: the source's
        InstructedRow(("q3", "p3"), "Instruct: No negative\nQuery: ", "Doc: "),  # empty negative: a pair
        InstructedRow(("q4", "p4", "n4"), "Stage: ", "Same: "),  # nothing on the source: the stage's
    ]
    assert read_rows(sources, ["anchor", "positive", "negative"]) == [r.texts for r in rows]


def test_missing_instruction_column_names_the_field(tmp_path):
    f = tmp_path / "rows.tsv"
    f.write_text("anchor\tpositive\nq\tp\n", encoding="utf-8")
    with pytest.raises(
        DataError, match=r"instruction_column = 'task': .* has no such column; found \['anchor', 'positive'\]"
    ):
        read_instructed_rows(DataSource(path=str(f), instruction_column="task"), ["anchor", "positive"])


# -- supervised source shapes: pairs, NLI labels, caption groups, where ----------------------


def _nli_table(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "nli.tsv",
        "sentence1\tsentence2\tlabel\tsplit\n"
        "p1\te1\tentailment\ttrain\n"
        "p1\tc1\tcontradiction\ttrain\n"
        "p1\te2\tentailment\ttrain\n"
        "p1\tn1\tneutral\ttrain\n"
        "p2\te3\tentailment\ttrain\n"  # no contradiction: a pair
        "p3\te4\tentailment\tval\n"
        "p3\tc4\tcontradiction\tval\n"
        "p1\tc2\tcontradiction\ttrain\n",
    )


def test_pair_and_triplet_sources_mix_in_one_triplet_read(tmp_path):
    trip = _write(tmp_path / "t.tsv", "anchor\tpositive\tnegative\na\tb\tc\n")
    pairs = _write(tmp_path / "p.tsv", "sentence1\tsentence2\nd\te\n")
    cols = ["anchor", "positive", "negative"]
    rows = read_rows(
        [DataSource(path=str(trip)), DataSource(path=str(pairs), columns=["sentence1", "sentence2"])],
        cols,
        min_columns=2,
    )
    assert rows == [("a", "b", "c"), ("d", "e")]
    with pytest.raises(DataError, match=r"names 2 column\(s\), this stage reads 3"):
        read_rows(DataSource(path=str(pairs), columns=["sentence1", "sentence2"]), cols)  # strict by default
    with pytest.raises(
        DataError,
        match=r"has no column\(s\) \['anchor', 'positive', 'negative'\].*columns: \['sentence1', 'sentence2'\]",
    ):
        read_rows(DataSource(path=str(pairs)), cols, min_columns=2)  # the hint says how to read pairs


def test_nli_rows_pair_each_entailment_with_a_contradiction_of_its_premise(tmp_path):
    src = DataSource(path=str(_nli_table(tmp_path)), nli={})
    rows = read_rows(src, ["anchor", "positive", "negative"], min_columns=2)
    # file order of the entailments; the k-th entailment of p1 takes its (k mod 2)-th contradiction
    assert rows == [("p1", "e1", "c1"), ("p1", "e2", "c2"), ("p2", "e3"), ("p3", "e4", "c4")]
    assert read_rows(src, ["anchor", "positive"]) == [("p1", "e1"), ("p1", "e2"), ("p2", "e3"), ("p3", "e4")]
    pairs_only = DataSource(path=str(_nli_table(tmp_path)), nli={"negative": None}, limit=2)
    assert read_rows(pairs_only, ["anchor", "positive", "negative"], min_columns=2) == [
        ("p1", "e1"),
        ("p1", "e2"),
    ]


def test_nli_with_other_label_names_columns_and_a_where_filter(tmp_path):
    f = _write(
        tmp_path / "glue.jsonl",
        "\n".join(
            json.dumps(r)
            for r in [
                {"premise": "a", "hypothesis": "b", "gold": 0, "split": "train"},
                {"premise": "a", "hypothesis": "c", "gold": 2, "split": "train"},
                {"premise": "x", "hypothesis": "y", "gold": 0, "split": "test"},
            ]
        ),
    )
    src = DataSource(
        path=str(f),
        columns=["premise", "hypothesis"],
        nli={"label_column": "gold", "positive": 0, "negative": 2},
        where={"split": "train"},
    )
    assert read_rows(src, ["anchor", "positive", "negative"], min_columns=2) == [("a", "b", "c")]


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        (
            {"nli": {"positive": "entailed"}},
            r"nli\.positive = 'entailed': no row of .* labels found: 'contradiction', 'entailment', 'neutral'$",
        ),
        (
            {"nli": {"negative": "contra"}},
            r"nli\.negative = 'contra': .*; set negative: null to read pairs only",
        ),
        (
            {"nli": {"label_column": "gold"}},
            r"nli\.label_column = \['gold'\]: .* has no column\(s\) \['gold'\]; found \['sentence1'",
        ),
        (
            {"nli": {}, "columns": ["premise", "hypothesis"]},
            r"has no column\(s\) \['premise', 'hypothesis'\]",
        ),
        (
            {"nli": {}, "where": {"split": "trian"}},
            r"where\.split = 'trian': no row of .* values found: 'train', 'val'",
        ),
        ({"nli": {}, "where": {"fold": "1"}}, r"\.where: .* has no column\(s\) \['fold'\]"),
        (
            {"nli": {"positive": "neutral", "negative": None}, "where": {"split": "val"}},
            r"nli\.positive = 'neutral': no row of .* \(after where = \{'split': 'val'\}\) has this label",
        ),
    ],
)
def test_nli_and_where_errors_name_the_field_and_what_is_valid(tmp_path, changes, match):
    src = DataSource(path=str(_nli_table(tmp_path)), **changes)
    src._origin = "recipe.yaml: stages[2].data"
    with pytest.raises(DataError, match=match) as e:
        read_rows(src, ["anchor", "positive", "negative"], min_columns=2)
    assert str(e.value).startswith("recipe.yaml: stages[2].data") and "\n" not in str(e.value)


def test_nli_source_without_usable_rows_says_what_it_looked_for(tmp_path):
    f = _write(tmp_path / "n.tsv", "sentence1\tsentence2\tlabel\n\tb\tentailment\na\tc\tcontradiction\n")
    with pytest.raises(
        DataError, match=r"gave no rows with label 'entailment' and non-empty premise and hypothesis"
    ):
        read_rows(DataSource(path=str(f), nli={}), ["anchor", "positive", "negative"], min_columns=2)


def test_where_filters_plain_texts_too(tmp_path):
    f = _write(tmp_path / "t.tsv", "text\tlang\nhello\ten\nhallo\tde\nhi\ten\n")
    assert read_texts(DataSource(path=str(f), columns=["text"], where={"lang": ["en"]})) == ["hello", "hi"]


def test_group_columns_give_every_pair_once_all_in_the_row_group(tmp_path):
    f = _write(
        tmp_path / "caps.tsv",
        "image\tc1\tc2\tc3\n"
        "img1\ta\tb\tc\n"
        "img2\td\t\te\n"  # an empty caption: one pair
        "img3\tf\tf\t\n"  # a duplicate caption: no pair
        "img1\tg\th\t\n",  # the same image again: same group as row 1
    )
    src = DataSource(path=str(f), group_columns=["c1", "c2", "c3"])
    rows = read_instructed_rows(src, ["anchor", "positive", "negative"], min_columns=2)
    assert [r.texts for r in rows] == [("a", "b"), ("b", "c"), ("c", "a"), ("d", "e"), ("g", "h")]
    assert len({r.group for r in rows[:3]}) == 1 and len({r.group for r in rows}) == 3  # by default: per row
    by_image = read_instructed_rows(
        DataSource(path=str(f), group_columns=["c1", "c2", "c3"], group_column="image"),
        ["anchor", "positive"],
    )
    assert by_image[0].group == by_image[-1].group != by_image[3].group
    with pytest.raises(
        DataError, match=r"group_columns = \['c1', 'cap2'\]: .* has no column\(s\) \['cap2'\]"
    ):
        read_rows(DataSource(path=str(f), group_columns=["c1", "cap2"]), ["anchor", "positive"])
    with pytest.raises(DataError, match=r"group_column = \['img'\]"):
        read_rows(
            DataSource(path=str(f), group_columns=["c1", "c2"], group_column="img"), ["anchor", "positive"]
        )


def test_group_pairs_cover_each_pair_once_and_share_the_query_role():
    from llm2vec_lite.data import _group_pairs

    for k in range(2, 8):
        pairs = _group_pairs(k)
        assert sorted(tuple(sorted(p)) for p in pairs) == [(i, j) for i in range(k) for j in range(i + 1, k)]
        queries = [sum(a == i for a, _ in pairs) for i in range(k)]
        assert max(queries) - min(queries) <= 1, (k, queries)


def test_crops_give_spans_of_one_text_grouped_by_text_and_fixed_by_the_seed(tmp_path):
    long_text = " ".join(f"w{i}" for i in range(40))
    f = _write(tmp_path / "t.tsv", f"id\tbody\n1\t{long_text}\n2\ttoo short\n3\t{long_text} more\n")
    crops = {"query_words": [3, 5], "passage_words": [10, 20], "per_text": 3, "seed": 1}
    src = DataSource(path=str(f), columns=["body"], crops=crops)
    rows = read_instructed_rows(src, ["anchor", "positive", "negative"], min_columns=2)
    assert 0 < len(rows) <= 6  # three pairs from each long text, none from the short one
    for r in rows:
        query, positive = (t.split() for t in r.texts)
        assert 3 <= len(query) <= 5 and 10 <= len(positive) <= 20
        assert " ".join(query) in long_text + " more" and " ".join(positive) in long_text + " more"
    assert len({r.group for r in rows}) == 2 and None not in {r.group for r in rows}
    again = read_instructed_rows(src, ["anchor", "positive"], min_columns=2)
    assert [r.texts for r in again] == [r.texts for r in rows]  # a fixed list: resuming needs nothing
    other = read_instructed_rows(
        DataSource(path=str(f), columns=["body"], crops={**crops, "seed": 2}), ["anchor", "positive"]
    )
    assert [r.texts for r in other] != [r.texts for r in rows]
    txt = _write(tmp_path / "t.txt", f"{long_text}\n\nshort line\n")
    assert len(read_rows(DataSource(path=str(txt), crops={"query_words": [2, 4], "passage_words": [8, 9]}),
                         ["anchor", "positive"])) == 1
    with pytest.raises(DataError, match=r"crops: no text of .* has the 41 words a pair needs"):
        read_rows(DataSource(path=str(txt), crops={"passage_words": [40, 50]}), ["anchor", "positive"])


def test_crops_settings_are_checked_when_the_recipe_loads():
    with pytest.raises(ValueError, match=r"query_words = \[5, 2\]: give \[min, max\]"):
        DataSource(path="t.txt", crops={"query_words": [5, 2]})
    with pytest.raises(ValueError, match="with crops, columns names the one text column"):
        DataSource(path="t.tsv", columns=["a", "b"], crops={})
    with pytest.raises(ValueError, match="not group_columns and crops"):
        DataSource(path="t.tsv", group_columns=["a", "b"], crops={})


def test_plain_rows_take_their_group_from_group_column(tmp_path):
    f = _write(tmp_path / "p.tsv", "a\tb\tid\nx\ty\t7\nz\tw\t7\nu\tv\t\n")
    rows = read_instructed_rows(
        DataSource(path=str(f), columns=["a", "b"], group_column="id"), ["anchor", "positive"]
    )
    assert rows[0].group == rows[1].group is not None and rows[2].group is None


EXTRA = SHARED / "extra"


@pytest.mark.skipif(not (EXTRA / "nli-protocols.tsv").is_file(), reason="shared data not present")
def test_shared_nli_protocols_train_split_as_triplets_and_pairs():
    src = DataSource(path=str(EXTRA / "nli-protocols.tsv"), nli={}, where={"split": "train"})
    rows = read_rows(src, ["anchor", "positive", "negative"], min_columns=2)
    assert len(rows) == 12745  # train entailments (11250 with a contradiction of the same premise)
    assert sum(len(r) == 3 for r in rows) == 11250


@pytest.mark.skipif(not (EXTRA / "cad-nli.tsv").is_file(), reason="shared data not present")
def test_shared_cad_nli_reads_every_entailment():
    rows = read_rows(
        DataSource(path=str(EXTRA / "cad-nli.tsv"), nli={}), ["anchor", "positive", "negative"], min_columns=2
    )
    assert len(rows) == 2730 and sum(len(r) == 3 for r in rows) == 1636


@pytest.mark.skipif(not (EXTRA / "multi30k-captions.tsv").is_file(), reason="shared data not present")
def test_shared_multi30k_captions_give_ten_pairs_an_image():
    src = DataSource(
        path=str(EXTRA / "multi30k-captions.tsv"),
        group_columns=[f"caption{i}" for i in range(1, 6)],
        group_column="image",
    )
    rows = read_instructed_rows(src, ["anchor", "positive", "negative"], min_columns=2)
    groups = {r.group for r in rows}
    assert len(groups) == 27811  # one row an image (shared/data/extra/README.md)
    assert len(rows) == 277987  # 10 pairs for almost every image (a few repeat a caption)
    assert all(len(r.texts) == 2 and r.texts[0] != r.texts[1] for r in rows)
