"""MTEBEncoder satisfies mteb 2.x's encoder protocol: run on a local, in-memory STS task (no hub)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

mteb = pytest.importorskip("mteb")

from llm2vec_lite import Encoder  # noqa: E402
from llm2vec_lite.integrations.mteb import MTEBEncoder  # noqa: E402

PAIRS = [
    ("the cat sat on the mat", "a cat sat on a mat", 4.5),
    ("a dog ran in the park", "the dog ran", 3.5),
    ("hello world", "the park is big", 0.5),
    ("what is this", "what is that", 4.0),
    ("the mat", "a dog ran in the park", 1.0),
    ("hello", "hello world", 3.0),
]


def _tiny():
    from llm2vec_lite.patches import enable_bidirectional
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModel, LlamaConfig, PreTrainedTokenizerFast

    corpus = [s for a, b, _ in PAIRS for s in (a, b)] * 3
    tk = Tokenizer(models.BPE(unk_token=None))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    ))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return enable_bidirectional(AutoModel.from_config(cfg).eval()), tok


def _local_sts_task():
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.sts import AbsTaskSTS
    from mteb.abstasks.task_metadata import TaskMetadata

    class TinySTS(AbsTaskSTS):
        min_score = 0
        max_score = 5
        metadata = TaskMetadata(
            name="TinyLocalSTS",
            dataset={"path": "local/tiny-sts", "revision": "1"},
            description="Six hand-written pairs, in memory.",
            reference=None,
            type="STS",
            category="t2t",
            modalities=["text"],
            eval_splits=["test"],
            eval_langs=["eng-Latn"],
            main_score="cosine_spearman",
            date=("2024-01-01", "2024-01-02"),
            domains=["Written"],
            task_subtypes=[],
            license="mit",
            annotations_creators="human-annotated",
            dialect=[],
            sample_creation="created",
            bibtex_citation="",
        )

        def load_data(self, **kwargs):
            a, b, s = zip(*PAIRS, strict=True)
            self.dataset = DatasetDict(
                {"test": Dataset.from_dict({"sentence1": list(a), "sentence2": list(b), "score": list(s)})}
            )
            self.data_loaded = True

    return TinySTS()


def test_mteb_runs_local_sts_task_and_scores_match_our_cosines():
    from scipy.stats import spearmanr

    model, tok = _tiny()
    enc = Encoder(model, tok, autocast=False)
    results = mteb.evaluate(MTEBEncoder(enc), _local_sts_task(), cache=None, show_progress_bar=False)
    score = results.task_results[0].scores["test"][0]["cosine_spearman"]
    a = enc.encode([p[0] for p in PAIRS])
    b = enc.encode([p[1] for p in PAIRS])
    expected = spearmanr((a * b).sum(1), [p[2] for p in PAIRS]).statistic
    assert score == pytest.approx(expected, abs=1e-6)


class _Loader(list):
    """A stand-in for MTEB's DataLoader: an iterable of {"text": [...]} batches."""


def test_prompt_types_map_to_instructions():
    model, tok = _tiny()
    enc = Encoder(model, tok, query_instruction="Query:\n", autocast=False)
    wrapper = MTEBEncoder(enc, document_instruction=None)
    texts = ["the cat sat", "a dog", "hello"]
    loader = _Loader([{"text": texts[:2]}, {"text": texts[2:]}])
    from mteb.types import PromptType

    q = wrapper.encode(loader, task_metadata=None, hf_split="test", hf_subset="default", prompt_type=PromptType.query)
    d = wrapper.encode(loader, task_metadata=None, hf_split="test", hf_subset="default", prompt_type=PromptType.document)
    sym = wrapper.encode(loader, task_metadata=None, hf_split="test", hf_subset="default", prompt_type=None)
    np.testing.assert_allclose(q, enc.encode(texts, instruction="Query:\n"), atol=1e-6)
    np.testing.assert_allclose(d, enc.encode(texts), atol=1e-6)
    np.testing.assert_allclose(sym, q, atol=1e-6)  # symmetric tasks use the query instruction
    assert q.shape == (3, 32)
