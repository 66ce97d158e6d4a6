"""``llm2vec-lite whiten``: fit a whitening projection on unlabelled text and save an encoder with it.

Mean-pooled decoder states are dominated by a few massive-activation dimensions, so every pair of
sentences looks alike to cosine similarity. A projection fitted on a few thousand texts of the kind
the encoder will see (centring, then scaling each principal direction to unit variance) removes
that without labels. The output folder is a complete encoder (Encoder, sentence-transformers,
transformers); the projection is its ``projection/`` module. See docs/encoder.md.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from llm2vec_lite.commands import positive_int

logger = logging.getLogger(__name__)

_EPILOG = """examples:
  llm2vec-lite whiten out/final --texts data/wiki/wikipedia-sentences.txt --output out/final-whitened
  llm2vec-lite whiten model.gguf --causal --texts wiki.txt --samples 4096 --dims 256 --output causal-whitened
"""


def register(sub: argparse._SubParsersAction) -> None:
    from llm2vec_lite.projection import PROJECTION_MODES

    p = sub.add_parser(
        "whiten",
        help="fit a whitening projection on unlabelled text; save an encoder that applies it",
        description=__doc__,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="encoder folder, model folder, hub id, or .gguf file")
    p.add_argument("--texts", required=True, type=Path, help="UTF-8 text file, one text a line (unlabelled)")
    p.add_argument("--output", "-o", required=True, type=Path, help="encoder folder to write (must not exist)")
    p.add_argument("--samples", type=positive_int, default=2048, help="texts drawn from --texts (default 2048)")
    p.add_argument("--mode", choices=PROJECTION_MODES, default="whiten", help="default: whiten")
    p.add_argument("--dims", type=positive_int, default=None, help="whiten: keep this many directions")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample drawn from --texts")
    p.add_argument("--batch-size", type=positive_int, default=32, help="texts per forward pass (default 32)")
    p.add_argument("--causal", action="store_true", help="keep causal attention (a baseline)")
    p.add_argument("--pooling", default=None, help="override the folder's pooling")
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    from llm2vec_lite.checkpoint import atomic_dir
    from llm2vec_lite.data import read_text_file
    from llm2vec_lite.encoder import Encoder
    from llm2vec_lite.errors import UsageError
    from llm2vec_lite.pooling import check_pooling
    from llm2vec_lite.projection import fit_on_texts, sample_texts

    if args.output.exists():
        raise UsageError(f"--output {args.output}: already exists; choose a new folder")
    if args.pooling is not None:
        check_pooling(args.pooling)
    if args.dims is not None and args.mode != "whiten":
        raise UsageError(f"--dims applies to --mode whiten only, not {args.mode}")
    texts = [t for t in read_text_file(args.texts, "--texts").splitlines() if t.strip()]
    sample = sample_texts(texts, args.samples, args.seed)
    if len(sample) < 2:
        raise UsageError(f"--texts {args.texts}: needs at least 2 distinct non-empty lines, found {len(sample)}")
    encoder = Encoder.from_pretrained(
        args.model, pooling=args.pooling, bidirectional=False if args.causal else None
    )
    encoder.projection = fit_on_texts(encoder, sample, args.mode, args.dims, batch_size=args.batch_size)
    encoder.projection.info["source"] = str(args.texts)
    with atomic_dir(args.output) as tmp:
        encoder.save_pretrained(tmp)
    logger.info("wrote %s (%s projection %d -> %d, %d texts)", args.output, args.mode,
                encoder.projection.in_dim, encoder.projection.out_dim, len(sample))
    return 0
