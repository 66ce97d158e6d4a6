"""tokenize: instruction tokens and special tokens are attended but not pooled; truncation keeps EOS."""

from __future__ import annotations

import pytest
import torch

from llm2vec_lite.tokenization import encode_rows, pad_rows, tokenize


def _tok(bos=False, eos=False):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE(unk_token=None))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(["the cat sat on the mat", "Query: a dog", "hello world"] * 4, trainers.BpeTrainer(
        vocab_size=290, special_tokens=["<pad>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    ))
    single = ("<s> " if bos else "") + "$A" + (" </s>" if eos else "")
    tk.post_processor = processors.TemplateProcessing(single=single, special_tokens=[("<s>", 1), ("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def test_instruction_tokens_are_attended_but_not_pooled():
    tok = _tok()
    batch = tokenize(tok, ["the cat"], max_length=32, instruction="Query:\n")
    n_text = len(tok("the cat")["input_ids"])
    n_all = int(batch.attention_mask.sum())
    assert int(batch.pool_mask.sum()) == n_text and n_all > n_text
    assert batch.pool_mask[0, : n_all - n_text].sum() == 0  # the instruction comes first, unpooled


def test_one_instruction_per_row_each_left_out_of_pooling():
    tok = _tok()
    texts = ["the cat", "the cat", "the cat"]
    batch = tokenize(tok, texts, max_length=32, instruction=["Query:\n", None, "hello world the mat on\n"])
    n_text = len(tok("the cat")["input_ids"])
    lengths = batch.attention_mask.sum(dim=1).tolist()
    assert batch.pool_mask.sum(dim=1).tolist() == [n_text] * 3  # only the text is pooled, in every row
    assert lengths[1] == n_text and lengths[0] > n_text and lengths[2] > n_text and lengths[0] != lengths[2]
    for i, instruction in enumerate(["Query:\n", "", "hello world the mat on\n"]):  # same as tokenizing each alone
        alone = tokenize(tok, ["the cat"], max_length=32, instruction=instruction)
        n = lengths[i]
        assert batch.input_ids[i, :n].tolist() == alone.input_ids[0].tolist()
        assert batch.pool_mask[i, :n].tolist() == alone.pool_mask[0].tolist()


def test_instruction_list_must_match_the_texts():
    with pytest.raises(ValueError, match="2 instructions for 3 texts"):
        tokenize(_tok(), ["a", "b", "c"], max_length=8, instruction=["x", "y"])


def test_token_straddling_the_boundary_belongs_to_the_text():
    tok = _tok()
    batch = tokenize(tok, ["the cat"], max_length=32, instruction="Query:")  # " the" spans no boundary char
    ids = batch.input_ids[0][batch.pool_mask[0].bool()].tolist()
    assert tok.decode(ids) == "the cat"


def test_bos_is_attended_but_not_pooled():
    batch = tokenize(_tok(bos=True), ["the cat"], max_length=32)
    assert batch.input_ids[0, 0] == 1 and batch.attention_mask[0, 0] == 1 and batch.pool_mask[0, 0] == 0


@pytest.mark.parametrize("tokenizer_eos", [False, True])
def test_truncation_keeps_the_eos_and_counts_texts(tokenizer_eos):
    tok = _tok(eos=tokenizer_eos)
    long = "the cat sat on the mat " * 5
    batch = tokenize(tok, [long, "cat"], max_length=6, add_eos=True)
    assert batch.num_truncated == 1
    assert int(batch.attention_mask[0].sum()) == 6 and batch.input_ids[0, 5] == 2
    assert (batch.input_ids[1] == 2).sum() == 1  # one EOS, whoever added it


def test_left_padding_passes_position_ids_that_start_at_the_first_token():
    rows = encode_rows(_tok(), ["the cat sat on the mat", "cat"], max_length=32)
    left = pad_rows(rows, pad_id=0, padding_side="left")
    pos = left.model_inputs()["position_ids"]
    n = int(left.attention_mask[1].sum())
    assert pos[1, -n:].tolist() == list(range(n))
    assert "position_ids" not in pad_rows(rows, pad_id=0, padding_side="right").model_inputs()


def test_empty_text_gets_one_token():
    batch = tokenize(_tok(), [""], max_length=8)
    assert batch.attention_mask.sum() == 1 and batch.input_ids.shape == (1, 1)


def test_too_small_max_length_is_an_error():
    with pytest.raises(ValueError, match="max_length=1 is too small"):
        tokenize(_tok(), ["cat"], max_length=1, add_eos=True)


def test_bad_padding_side_is_an_error():
    with pytest.raises(ValueError, match="padding_side"):
        pad_rows([], pad_id=0, padding_side="middle")  # type: ignore[arg-type]


def test_rows_pad_to_the_longest():
    rows = encode_rows(_tok(), ["the cat sat on the mat", "cat"], max_length=32)
    batch = pad_rows(rows, pad_id=0)
    assert batch.input_ids.shape[1] == len(rows[0].ids)
    assert torch.equal(batch.attention_mask.sum(1), torch.tensor([len(r.ids) for r in rows]))
