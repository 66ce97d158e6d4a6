"""Encoding speed with and without ``torch.compile`` of the blocks, on long and on short texts.

Why: the dev suite spends most of its time on retrieval corpora (abstracts of a few hundred
tokens); this measures what compiling buys there and on short texts (subject lines).

    python benchmarks/encode_compile.py runs/gemma3-270m-cpu/final --data data/dev

Prints one line per (compile, text kind): seconds for the texts, the first compiled call excluded.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def _texts(data: Path, n_long: int, n_short: int) -> dict[str, list[str]]:
    corpus = data / "retrieval" / "cisi" / "corpus.jsonl"
    docs = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    lines = (data / "classification" / "20ng-subjects" / "test.tsv").read_text(encoding="utf-8").splitlines()
    return {
        "long": [f"{d['title']} {d['text']}".strip() for d in docs][:n_long],
        "short": [line.split("\t")[0] for line in lines[1 : n_short + 1]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an encoder folder")
    parser.add_argument("--data", type=Path, default=Path("data/dev"), help="the dev suite folder")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    from llm2vec_lite.encoder import Encoder

    texts = _texts(args.data, 800, 3000)
    for compiled in (False, True):
        encoder = Encoder.from_pretrained(args.model, max_length=args.max_length, compile=compiled)
        if compiled:  # the first calls build the kernels; time what follows
            encoder.encode(texts["long"][:64] + texts["short"][:64], batch_size=args.batch_size)
        for kind, items in texts.items():
            start = time.perf_counter()
            encoder.encode(items, batch_size=args.batch_size, show_progress=False)
            print(f"compile={compiled} {kind}: {len(items)} texts in {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
