"""The llm2vec side of the race: one training stage with llm2vec 0.2.3's own classes, timed.

Runs inside the separate virtualenv that ``benchmarks/llm2vec_race.py`` builds (transformers 4.44.2,
peft 0.12, accelerate 0.34, ``llm2vec==0.2.3 --no-deps``); it must not import ``llm2vec_lite``.
Usage (the race script writes the spec)::

    .venv-llm2vec/bin/python benchmarks/race/llm2vec_side.py SPEC.json   # prints one JSON line

SPEC keys: ``stage`` (``mntp``, ``simcse``, ``supervised``, or ``check``), ``model`` (a plain
safetensors folder), ``data`` (a file), ``batch``, ``max_length``, ``steps``, ``warmup``,
``precision`` (``bf16`` autocast or ``fp32``), ``weights`` (``float32`` or ``bfloat16``), ``threads``
(0 keeps torch's default), ``lora`` ({r, alpha, dropout}), ``lr``, ``seed``, and per stage
``mask_probability`` (MNTP), ``dropout`` (SimCSE attention dropout), ``temperature``.

What of llm2vec's experiment scripts this reproduces, and what it leaves out:

- Model set-up, as their scripts do it: MNTP loads ``llm2vec.models.LlamaBiForMNTP`` and puts the
  LoRA on ``get_model_for_peft()`` (the inner bidirectional model; the LM head is not adapted);
  SimCSE and supervised load ``llm2vec.LLM2Vec.from_pretrained(enable_bidirectional=True,
  pooling_mode="mean", max_length=...)`` (SimCSE with ``attention_dropout``) and put the LoRA on
  ``LLM2Vec.model``. LoRA: peft ``LoraConfig`` on q/k/v/o/gate/up/down, ``bias="none"``, the rank,
  alpha and dropout of the race (their scripts use ``alpha = 2 * r``, so does the CPU recipe).
- Batches, as their collators build them: MNTP tokenizes the text lines with
  ``return_special_tokens_mask``, concatenates them and cuts blocks of ``max_length`` tokens
  (``run_mntp.py`` without ``--line_by_line``), then ``transformers.DataCollatorForLanguageModeling``
  masks them (``mask_token_type=blank``: ``_`` when the tokenizer has no mask token). SimCSE passes
  each sentence twice and supervised passes (anchor, positive, negative), each column tokenized by
  ``LLM2Vec.tokenize`` (left padding, ``embed_mask``) and embedded by a separate ``LLM2Vec.forward``
  call, then ``llm2vec.loss.HardNegativeNLLLoss(scale=1 / temperature)``, their ``compute_loss``.
  MNTP's loss is the model's own (``LlamaForCausalLM``'s shifted cross-entropy over all positions).
- The HF ``Trainer`` is replaced by a plain loop doing what it does per step on one CPU process:
  ``model.train()``, collate, forward + loss under ``torch.autocast("cpu", bfloat16)`` when
  ``precision`` is ``bf16`` (what ``--bf16`` makes accelerate do), backward, clip the gradient norm
  at 1.0 (the Trainer default), ``torch.optim.AdamW`` (the default ``adamw_torch``, weight decay 0),
  ``zero_grad``. Left out: the learning-rate schedule, logging, evaluation and checkpoint saving
  (none of them changes a step's compute), the Trainer's shuffling (batches are taken in a
  seeded random order instead) and ``prepare_for_tokenization``, which leaves text unchanged for
  a model that is not one of the few instruct checkpoints it names.

Timing: each step's wall time covers collation (tokenization, masking) through ``zero_grad``, as
the Trainer's step loop with an in-process dataloader would; the first ``warmup`` steps are left
out. Tokens are real (non-padding) tokens: the attention mask's sum over every column of the
batch (both SimCSE views count). Peak RSS is this process's ``ru_maxrss``.
"""

from __future__ import annotations

import json
import random
import resource
import sys
import time
from pathlib import Path

import torch

LORA_TARGETS = ["q_proj", "v_proj", "k_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)


def _lora(spec: dict):
    from peft import LoraConfig

    lora = spec["lora"]
    return LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], target_modules=LORA_TARGETS,
                      lora_dropout=lora["dropout"], bias="none", task_type=None)


def _dtype(spec: dict) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[spec.get("weights", "float32")]


def _lines(path: str) -> list[str]:
    return [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]


def _triplets(path: str) -> list[tuple[str, str, str]]:
    """(anchor, positive, negative) rows of a TSV whose first line is a header."""
    rows = [ln.split("\t") for ln in Path(path).read_text(encoding="utf-8").splitlines()[1:]]
    return [(r[0], r[1], r[2]) for r in rows if len(r) >= 3 and all(c.strip() for c in r[:3])]


def _order(n: int, seed: int):
    """Indices 0..n-1 in a seeded random order, repeated for as long as batches are asked for."""
    rng = random.Random(seed)
    while True:
        idx = list(range(n))
        rng.shuffle(idx)
        yield from idx


class MNTPSide:
    """LlamaBiForMNTP + DataCollatorForLanguageModeling on packed blocks."""

    def __init__(self, spec: dict):
        from llm2vec.models import LlamaBiForMNTP
        from peft import get_peft_model
        from transformers import AutoTokenizer, DataCollatorForLanguageModeling

        tok = AutoTokenizer.from_pretrained(spec["model"])
        if tok.mask_token is None:
            tok.mask_token = "_"  # mask_token_type "blank", their choice for Llama models
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        model = LlamaBiForMNTP.from_pretrained(spec["model"], torch_dtype=_dtype(spec), attn_implementation="sdpa")
        model.set_model_for_peft(get_peft_model(model.get_model_for_peft(), _lora(spec)))
        self.model = model
        enc = tok(_lines(spec["data"]), return_special_tokens_mask=True)
        length = spec["max_length"]
        stream = {k: [t for row in enc[k] for t in row] for k in ("input_ids", "attention_mask", "special_tokens_mask")}
        n_blocks = len(stream["input_ids"]) // length  # the remainder is dropped, as run_mntp.py does
        self.blocks = [{k: v[i * length : (i + 1) * length] for k, v in stream.items()} for i in range(n_blocks)]
        self.collator = DataCollatorForLanguageModeling(tokenizer=tok, mlm_probability=spec["mask_probability"])
        self.order = _order(len(self.blocks), spec["seed"])
        self.batch = spec["batch"]

    def step_loss(self) -> tuple[torch.Tensor, int]:
        batch = self.collator([self.blocks[next(self.order)] for _ in range(self.batch)])
        tokens = int(batch["attention_mask"].sum())
        return self.model(**batch).loss, tokens


class ContrastiveSide:
    """LLM2Vec (bidirectional, mean pooling) + HardNegativeNLLLoss; SimCSE or supervised."""

    def __init__(self, spec: dict):
        from llm2vec import LLM2Vec
        from llm2vec.loss.HardNegativeNLLLoss import HardNegativeNLLLoss
        from peft import get_peft_model

        extra = {"attention_dropout": spec["dropout"]} if spec["stage"] == "simcse" else {}
        model = LLM2Vec.from_pretrained(
            base_model_name_or_path=spec["model"], enable_bidirectional=True, pooling_mode="mean",
            max_length=spec["max_length"], torch_dtype=_dtype(spec), attn_implementation="sdpa", **extra,
        )
        model.model = get_peft_model(model.model, _lora(spec))
        self.model = model
        self.loss_fn = HardNegativeNLLLoss(scale=1.0 / spec["temperature"])
        if spec["stage"] == "simcse":
            self.rows = [(t, t) for t in _lines(spec["data"])]  # two dropout views of one sentence
        else:
            self.rows = _triplets(spec["data"])
        self.order = _order(len(self.rows), spec["seed"])
        self.batch = spec["batch"]

    def step_loss(self) -> tuple[torch.Tensor, int]:
        rows = [self.rows[next(self.order)] for _ in range(self.batch)]
        features = [self.model.tokenize([r[i] for r in rows]) for i in range(len(rows[0]))]
        tokens = sum(int(f["attention_mask"].sum()) for f in features)
        reps = [self.model(f) for f in features]  # one forward per column: query, positive[, negative]
        return self.loss_fn(reps[0], reps[1], reps[2] if len(reps) > 2 else None), tokens


def run_stage(spec: dict) -> dict:
    """Train ``spec["steps"] + spec["warmup"]`` steps; return throughput and memory."""
    torch.manual_seed(spec["seed"])
    side = MNTPSide(spec) if spec["stage"] == "mntp" else ContrastiveSide(spec)
    rss_loaded = _rss_mib()
    params = [p for p in side.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=spec["lr"], weight_decay=0.0)
    side.model.train()
    autocast = spec["precision"] == "bf16"
    times, tokens, losses = [], [], []
    for _ in range(spec["warmup"] + spec["steps"]):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss, n_tokens = side.step_loss()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
        tokens.append(n_tokens)
        losses.append(float(loss))
    times, tokens = times[spec["warmup"]:], tokens[spec["warmup"]:]
    return {
        "side": "llm2vec", "kind": spec["stage"], "steps": len(times), "s_per_step": sum(times) / len(times),
        "tok_per_s": sum(tokens) / sum(times), "tokens_per_step": sum(tokens) / len(tokens),
        "peak_rss_mib": _rss_mib(), "rss_after_load_mib": rss_loaded, "losses": losses,
        "trainable_params": sum(p.numel() for p in params),
    }


def check(spec: dict) -> dict:
    """Logits of the causal LM for ``spec["text"]``: shows this transformers reads the folder as saved."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(spec["model"])
    model = AutoModelForCausalLM.from_pretrained(spec["model"], torch_dtype=torch.float32).eval()
    ids = tok([spec["text"]], return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits[0, -1]  # (vocab,)
    return {"input_ids": ids["input_ids"][0].tolist(), "last_logits_head": logits[:16].tolist()}


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("torch", "transformers", "peft", "accelerate", "llm2vec")}


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    result = check(spec) if spec["stage"] == "check" else run_stage(spec)
    print(json.dumps(result | {"versions": versions(), "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
