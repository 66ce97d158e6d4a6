"""STS-B dev Spearman of every layer's mean-pooled hidden states: raw, centred, standardized, whitened.

Why: it shows where in a decoder sentence similarity lives (the middle, not the top, for small
models), what a few massive-activation dimensions do to cosine similarity (raw vs centred vs
whitened), and what bidirectional attention does to each layer before any training. It chose the
``num_layers`` and ``projection`` settings of recipes/smollm2-135m-unsup-cpu.yaml (docs/results.md).

    python benchmarks/layer_probe.py MODEL --data-dir data/sts --texts data/wiki/wikipedia-sentences.txt [--causal]
    python benchmarks/layer_probe.py MODEL ... --final-norm   # each layer as a model cut there (num_layers) sees it

Without ``--final-norm`` a layer's hidden state is taken as the block leaves it; a model cut to that
depth (a recipe's ``num_layers``) applies the final norm to it, which can score quite differently
(Gemma 3 270M after block 13: 72.39 raw, 76.20 cut), so ``--final-norm`` is the column that predicts
a ``num_layers`` choice.

MODEL is anything ``Encoder.from_pretrained`` loads (a folder, a hub id, a .gguf file). The
transforms are fitted on ``--fit`` sentences drawn (seed 0) from ``--texts``; no labels are used.
Hidden state 0 is the embedding layer, the last one is after the final norm.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch


def final_norm_module(model) -> torch.nn.Module:
    """The norm a decoder applies after its last block (``norm``, ``ln_f``, ``final_layernorm``).

    Raises:
        ValueError: If the model has none of these.
    """
    from llm2vec_lite.modeling import decoder_layers

    holder, _ = decoder_layers(model)
    for name in ("norm", "ln_f", "final_layernorm", "final_layer_norm"):
        module = getattr(holder, name, None)
        if isinstance(module, torch.nn.Module):
            return module
    raise ValueError(f"{type(model).__name__}: no final norm found (norm, ln_f, final_layernorm)")


def pooled_layers(
    encoder, texts: list[str], batch_size: int = 64, max_length: int = 64, final_norm: bool = False
) -> np.ndarray:
    """(n, layers + 1, dim) mean-pooled hidden states of every layer, float32.

    ``final_norm``: apply the model's final norm to each block's output first (the last hidden state
    has it already), i.e. what the model cut to that many blocks outputs.
    """
    from llm2vec_lite.tokenization import tokenize

    norm = final_norm_module(encoder.model) if final_norm else None

    out: np.ndarray | None = None
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            ids = order[start : start + batch_size]
            tb = tokenize(encoder.tokenizer, [texts[i] for i in ids], max_length=max_length)
            states = encoder.model(
                input_ids=tb.input_ids, attention_mask=tb.attention_mask, output_hidden_states=True
            ).hidden_states
            if norm is not None:
                states = [norm(h) for h in states[:-1]] + [states[-1]]
            mask = (tb.pool_mask & tb.attention_mask).unsqueeze(-1).float()  # (batch, seq, 1)
            pooled = torch.stack([(h.float() * mask).sum(1) / mask.sum(1).clamp(min=1) for h in states], 1)
            if out is None:
                out = np.zeros((len(texts), *pooled.shape[1:]), np.float32)
            out[ids] = pooled.numpy()
    assert out is not None
    return out


def main(argv: list[str] | None = None) -> int:
    from llm2vec_lite import Encoder
    from llm2vec_lite.evaluate import load_sts, spearman
    from llm2vec_lite.projection import fit_projection

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--data-dir", default="data/sts", help="folder holding the STS file")
    p.add_argument("--dataset", default="stsb")
    p.add_argument("--texts", required=True, help="unlabelled sentences, one a line, to fit the transforms")
    p.add_argument("--fit", type=int, default=2000, help="sentences drawn from --texts (default 2000)")
    p.add_argument("--causal", action="store_true", help="keep causal attention")
    p.add_argument("--final-norm", action="store_true",
                   help="apply the final norm to every layer: the model cut there (num_layers) scores this")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    enc = Encoder.from_pretrained(args.model, bidirectional=False if args.causal else None)
    pairs = load_sts(args.dataset, data_dir=args.data_dir)
    unique = sorted(set(pairs.sentence1) | set(pairs.sentence2))
    index = {s: i for i, s in enumerate(unique)}
    a = np.array([index[s] for s in pairs.sentence1])
    b = np.array([index[s] for s in pairs.sentence2])
    gold = np.asarray(pairs.scores)
    from pathlib import Path

    lines = [ln.strip() for ln in Path(args.texts).read_text(encoding="utf-8").splitlines() if ln.strip()]
    fit_texts = random.Random(0).sample(lines, min(args.fit, len(lines)))
    sts = pooled_layers(enc, unique, final_norm=args.final_norm)
    fit = pooled_layers(enc, fit_texts, final_norm=args.final_norm)
    normed = ", final norm on every layer" if args.final_norm else ""
    print(f"# {args.model} ({'causal' if args.causal else 'bidirectional'}{normed}), "
          f"encoded in {time.perf_counter() - t0:.0f}s")

    def score(x: np.ndarray) -> float:
        u, v = x[a], x[b]
        cos = (u * v).sum(1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1) + 1e-12)
        return 100 * spearman(cos, gold)

    print("| layer | raw | centred | standardized | whitened |\n|---:|---:|---:|---:|---:|")
    for layer in range(sts.shape[1]):
        e, w = torch.from_numpy(sts[:, layer]), torch.from_numpy(fit[:, layer])
        row = [score(e.numpy())]
        for mode in ("center", "standardize", "whiten"):
            row.append(score(fit_projection(w, mode)(e).numpy()))
        print(f"| {layer} | " + " | ".join(f"{x:.2f}" for x in row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
