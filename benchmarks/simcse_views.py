"""How far apart are SimCSE's two dropout views, before any training, under each noise setting?

Why: SimCSE learns only while the two views of a sentence are harder to match than the other
sentences of the batch. If the noise leaves the views nearly identical (positive cosine near 1)
while the in-batch negatives sit far lower, the InfoNCE loss at temperature 0.05 is near zero from
the first step and the stage has nothing to learn, whatever its length. This measures, with no
training, what a stage would start from: for each ``ATTN:HIDDEN`` setting (the stage's ``dropout``
and ``hidden_dropout``), the mean cosine of the two views, the mean in-batch negative cosine,
top-1 and the InfoNCE loss, on a batch of sentences drawn (seed 0) from ``--texts``.

    python benchmarks/simcse_views.py MODEL --texts data/wiki/wikipedia-sentences.txt
    python benchmarks/simcse_views.py MODEL --texts ... --settings 0.1:0,0.3:0,0.1:0.1 --batch 32

MODEL is anything ``llm2vec_lite.modeling.load_model`` loads (a stage folder, a hub id, a .gguf
file); ``--num-layers N`` cuts it first, as a recipe's ``num_layers``. Noise acts through the
stage's own functions (``set_dropout``, ``add_hidden_dropout``) and pooling (``pooling.embed``).
"""

from __future__ import annotations

import argparse
import random

import torch

from llm2vec_lite.losses import contrastive_stats, info_nce
from llm2vec_lite.modeling import load_model
from llm2vec_lite.pooling import embed
from llm2vec_lite.stages.simcse import add_hidden_dropout, restore_dropout, set_dropout
from llm2vec_lite.tokenization import tokenize


def parse_settings(text: str) -> list[tuple[float, float]]:
    """``"0.1:0,0.3:0.1"`` -> ``[(0.1, 0.0), (0.3, 0.1)]`` (attention dropout, hidden dropout)."""
    settings = []
    for item in text.split(","):
        attn, sep, hidden = item.strip().partition(":")
        if not sep:
            raise argparse.ArgumentTypeError(f"{item!r}: write ATTN:HIDDEN, e.g. 0.1:0.1")
        settings.append((float(attn), float(hidden)))
    return settings


def view_stats(model, batch, pooling: str, attn: float, hidden: float, temperature: float) -> dict[str, float]:
    """Two dropout views of ``batch`` with the given noise: pos/neg cosine, top-1, InfoNCE loss."""
    saved = set_dropout(model, attn)
    hooks = add_hidden_dropout(model, hidden) if hidden else []
    model.train()
    try:
        with torch.no_grad():
            first = embed(model, batch, pooling).float()
            second = embed(model, batch, pooling).float()
    finally:
        for handle in hooks:
            handle.remove()
        restore_dropout(saved)
        model.eval()
    positive = torch.arange(first.shape[0])
    stats = {k: float(v) for k, v in contrastive_stats(first, second, positive).items()}
    stats["loss"] = float(info_nce(first, second, temperature, positive))
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--texts", required=True, help="one sentence per line (e.g. Wikipedia sentences)")
    parser.add_argument("--settings", type=parse_settings, default=parse_settings("0.1:0,0.3:0,0.5:0,0.1:0.05,0.1:0.1,0.1:0.2"),
                        help="comma-separated ATTN:HIDDEN dropout pairs")
    parser.add_argument("--batch", type=int, default=32, help="sentences in the batch (the stage's batch_size)")
    parser.add_argument("--max-length", type=int, default=48)
    parser.add_argument("--pooling", default="mean")
    parser.add_argument("--temperature", type=float, default=0.05)
    parser.add_argument("--num-layers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    with open(args.texts, encoding="utf-8") as f:
        texts = [line.strip() for line in f if line.strip()]
    random.Random(args.seed).shuffle(texts)
    model, tokenizer = load_model(args.model, num_layers=args.num_layers)
    batch = tokenize(tokenizer, texts[: args.batch], max_length=args.max_length)
    torch.manual_seed(args.seed)
    print(f"{args.model}: {args.batch} sentences, {args.pooling} pooling, temperature {args.temperature}")
    print("| attention dropout | hidden dropout | pos_cos | neg_cos | top1 | loss |")
    print("|---:|---:|---:|---:|---:|---:|")
    for attn, hidden in args.settings:
        s = view_stats(model, batch, args.pooling, attn, hidden, args.temperature)
        print(f"| {attn:g} | {hidden:g} | {s['pos_cos']:.3f} | {s['neg_cos']:.3f} | {s['top1']:.2f} | {s['loss']:.4f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
