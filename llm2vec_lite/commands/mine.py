"""``llm2vec-lite mine``: mine hard negatives for a query-passage source with an encoder.

Encodes the source's distinct passages (its positives and existing negatives, plus the passages of
``--extra-corpus`` files) and its distinct queries, takes each query's top-k passages by cosine,
drops its positives and likely false negatives (a passage scoring above ``--max-score-fraction``
times the query's best positive score: positive-aware mining, NV-Retriever, arXiv:2407.15831), and
writes a ``query, positive, negative`` TSV that a recipe's supervised stage reads like any other
source. See docs/training.md, "Mining hard negatives".
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from llm2vec_lite.commands import non_negative_int, positive_int

logger = logging.getLogger(__name__)

_EPILOG = """examples:
  llm2vec-lite mine out/final --data data/retrieval/squad2-dev.tsv --output mined/squad2-dev.tsv
  llm2vec-lite mine out/final --data data/retrieval/wikiqa.tsv --output mined/wikiqa.tsv \\
      --extra-corpus data/retrieval/selqa.tsv data/retrieval/trecqa.tsv \\
      --query-instruction $'Instruct: Given a question, retrieve passages that answer it\\nQuery: '
"""


def _fraction(text: str) -> float:
    """argparse ``type`` for ``--max-score-fraction``: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1] (a share of the positive's score), got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mine",
        help="mine hard negatives for a query-passage TSV with an encoder; write a training source",
        description=__doc__,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="encoder folder (or model folder, hub id, .gguf file)")
    p.add_argument("--data", required=True, type=Path,
                   help="query-passage TSV: columns query, positive[, negative]; one row per (query, positive)")
    p.add_argument("--output", "-o", required=True, type=Path, help="TSV to write: query, positive, negative")
    p.add_argument("--extra-corpus", nargs="+", type=Path, default=[], metavar="FILE",
                   help="more passages to mine from: TSVs (their positive and negative cells) or .txt (a line each)")
    p.add_argument("--query-instruction", default=None,
                   help="prefix before each query (attended to, not pooled); passages get none (default: none)")
    p.add_argument("--top-k", type=positive_int, default=30, help="passages ranked per query (default 30)")
    p.add_argument("--max-score-fraction", type=_fraction, default=0.95,
                   help="skip a candidate scoring above this times the query's best positive score: a likely "
                   "false negative (default 0.95, as NV-Retriever's positive-aware mining)")
    p.add_argument("--negatives-per-query", type=positive_int, default=1,
                   help="lines written per input row, each with a different negative (default 1)")
    p.add_argument("--skip-top", type=non_negative_int, default=0,
                   help="skip this many of the highest-ranked non-positive passages (default 0)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="texts per forward pass (default 32)")
    p.add_argument("--max-length", type=positive_int, default=None, help="override the folder's max_length")
    p.add_argument("--dtype", default=None, help="weight dtype: float32 (default), bfloat16, auto")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ...")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the transformer blocks (half a minute first; pays off on long passages)")
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    from llm2vec_lite.checks import check_device, check_dtype
    from llm2vec_lite.errors import UsageError
    from llm2vec_lite.mining import (
        MiningSettings,
        check_settings,
        mine,
        read_corpus,
        read_source,
        write_mined,
    )

    check_dtype(args.dtype, "--dtype")  # flags and files first: nothing loads for a typo
    check_device(args.device, "--device")
    settings = MiningSettings(
        top_k=args.top_k,
        max_score_fraction=args.max_score_fraction,
        negatives_per_query=args.negatives_per_query,
        skip_top=args.skip_top,
        query_instruction=args.query_instruction,
        batch_size=args.batch_size,
    )
    check_settings(settings)
    if args.output.resolve() == args.data.resolve():
        raise UsageError(f"--output {args.output}: is the --data file; write the mined source to a new file")
    source = read_source(args.data, "--data")
    extra = [p for path in args.extra_corpus for p in read_corpus(path, "--extra-corpus")]

    from llm2vec_lite.encoder import Encoder

    encoder = Encoder.from_pretrained(
        args.model, max_length=args.max_length, dtype=args.dtype, device=args.device, compile=args.compile
    )
    result = mine(encoder, source, extra, settings, show_progress=True)
    write_mined(args.output, result.rows)
    logger.info("wrote %s: %s", args.output, result.summary())
    if source.skipped:
        logger.info("%s: %d rows without a query or positive were left out", args.data, source.skipped)
    return 0
