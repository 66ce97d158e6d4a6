"""Build the tiny-smoke project on disk: a random tiny Llama, its tokenizer, three data files, the recipe.

Shared by the training tests (stages, pipeline, distributed, CLI). Everything is generated from a
fixed seed, nothing is downloaded.
"""

from __future__ import annotations

import random
from pathlib import Path

TINY_RECIPE = """\
name: tiny-smoke
base_model: ./tiny-llama
max_length: 64
pooling: mean
seed: 0
output_dir: ./out
lora: {r: 8, alpha: 16, dropout: 0.0, target_modules: all-linear}
stages:
  - kind: mntp
    data: {path: ./text.txt}
    steps: 4
    batch_size: 4
    learning_rate: 1.0e-4
    mask_probability: 0.2
  - kind: simcse
    data: {path: ./sentences.txt}
    steps: 4
    batch_size: 4
    learning_rate: 1.0e-4
    dropout: 0.1
    temperature: 0.05
  - kind: supervised
    data: {path: ./triplets.tsv}
    steps: 4
    batch_size: 4
    learning_rate: 1.0e-4
    temperature: 0.05
"""

_SUBJECTS = ["a cat", "the dog", "two children", "a man", "the woman", "an old horse", "three birds", "my friend"]
_VERBS = ["sits on", "runs past", "looks at", "jumps over", "sleeps near", "plays with", "walks to", "eats"]
_OBJECTS = ["the mat", "a red ball", "the river", "green grass", "a small house", "the table", "a big tree"]


def sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` short synthetic English sentences."""
    rng = random.Random(seed)
    return [f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}." for _ in range(n)]


def make_tokenizer(texts: list[str]):
    """A small byte-level BPE fast tokenizer (BOS added, EOS as pad)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="</s>"
    )


def make_tiny_llama(folder: Path, texts: list[str], *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Save a random tiny LlamaForCausalLM and its tokenizer to ``folder``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = make_tokenizer(texts)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_tiny_project(root: Path, recipe_text: str = TINY_RECIPE) -> Path:
    """Write tiny-llama/, text.txt, sentences.txt, triplets.tsv and recipe.yaml under ``root``.

    Returns:
        The recipe path.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    text = sentences(200, seed=1)
    sents = sentences(64, seed=2)
    (root / "text.txt").write_text("\n".join(text) + "\n", encoding="utf-8")
    (root / "sentences.txt").write_text("\n".join(sents) + "\n", encoding="utf-8")
    anchors, positives, negatives = sentences(48, seed=3), sentences(48, seed=4), sentences(48, seed=5)
    rows = ["anchor\tpositive\tnegative"] + [
        f"{a}\t{p}\t{n}" for a, p, n in zip(anchors, positives, negatives, strict=True)
    ]
    (root / "triplets.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    if not (root / "tiny-llama" / "config.json").exists():
        make_tiny_llama(root / "tiny-llama", text + sents)
    path = root / "recipe.yaml"
    path.write_text(recipe_text, encoding="utf-8")
    return path


def make_tiny_encoder_project(root: Path, encoder: str = "enc") -> Path:
    """The tiny project (:func:`make_tiny_project`) plus its untrained tiny Llama saved as an encoder.

    Returns:
        The encoder folder, ``root / encoder``.
    """
    from llm2vec_lite.encoder import Encoder

    make_tiny_project(root)
    folder = Path(root) / encoder
    Encoder.from_pretrained(Path(root) / "tiny-llama").save_pretrained(folder)
    return folder


def load_tiny(recipe, head: str = "base", *, lora_dropout: float = 0.0):
    """The recipe's tiny Llama, bidirectional, with a fresh LoRA (seeded)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from llm2vec_lite.modeling import load_model
    from llm2vec_lite.runtime.lora import share_lora_dropout

    torch.manual_seed(0)
    model, tok = load_model(recipe.base_model, head=head)
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=lora_dropout, target_modules="all-linear")
    model = get_peft_model(model, lora)
    share_lora_dropout(model)  # as the pipeline does
    return model, tok
