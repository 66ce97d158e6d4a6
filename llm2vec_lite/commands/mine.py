"""``llm2vec-lite mine``: mine hard negatives for a query-passage source with an encoder.

Encodes the source's distinct passages (its positives and existing negatives, plus the passages of
``--extra-corpus`` files) and its distinct queries, takes each query's top-k passages by cosine,
drops its positives and likely false negatives (a passage scoring above ``--max-score-fraction``
times the query's best positive score: positive-aware mining, NV-Retriever, arXiv:2407.15831), and
writes a ``query, positive, negative`` TSV that a recipe's supervised stage reads like any other
source. Several ``--data`` files share one pool of passages (each encoded once) and are written to
the ``--output`` folder, one TSV each under its own name. See docs/training.md, "Mining hard
negatives".
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
  llm2vec-lite mine out/final --data data/retrieval/*.tsv --output mined/ --max-length 128
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
    p.add_argument("--data", required=True, type=Path, nargs="+", metavar="FILE",
                   help="query-passage TSV: columns query, positive[, negative]; one row per (query, positive). "
                   "Several files share one pool of passages, each encoded once")
    p.add_argument("--output", "-o", required=True, type=Path,
                   help="TSV to write: query, positive, negative; with several --data files, a folder that "
                   "gets one TSV per file, under the file's name")
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
    from llm2vec_lite.mining import (
        MiningSettings,
        check_settings,
        count_without_negative,
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
    outputs = output_paths(args.data, args.output)
    sources = [read_source(path, "--data") for path in args.data]
    extra = [p for path in args.extra_corpus for p in read_corpus(path, "--extra-corpus")]

    from llm2vec_lite.encoder import Encoder

    encoder = Encoder.from_pretrained(
        args.model, max_length=args.max_length, dtype=args.dtype, device=args.device, compile=args.compile
    )
    result = mine(encoder, sources, extra, settings, show_progress=True)
    for source, path, rows in zip(sources, outputs, result.by_source, strict=True):
        write_mined(path, rows)
        if len(sources) > 1:
            logger.info("wrote %s: %d rows, %d without a negative", path, len(rows), count_without_negative(rows))
        if source.skipped:
            logger.info("%s: %d rows without a query or positive were left out", source.path, source.skipped)
    logger.info("wrote %s: %s", args.output, result.summary())
    return 0


def output_paths(data: list[Path], output: Path) -> list[Path]:
    """Where each ``--data`` file's mined rows go: ``output`` itself for one file, ``output/NAME``
    for several; checked before anything loads, so no input is overwritten.

    Raises:
        UsageError: an output that is its own input, a ``.tsv`` ``--output`` (or an existing
            file) for several inputs, or two inputs with one file name.
    """
    from llm2vec_lite.errors import UsageError

    if len(data) == 1:
        outputs = [output]
    else:
        if output.suffix == ".tsv" or output.is_file():
            raise UsageError(
                f"--output {output}: --data names {len(data)} files, so --output is a folder that gets one "
                f"TSV per file; name a folder"
            )
        names = [path.name for path in data]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise UsageError(
                f"--data: two files are named {twice[0]}, and each is written to --output/{twice[0]}; "
                f"mine them in separate runs or rename one"
            )
        outputs = [output / name for name in names]
    for path, out in zip(data, outputs, strict=True):
        if out.resolve() == path.resolve():
            raise UsageError(f"--output {out}: is the --data file {path}; write the mined source to a new place")
    return outputs
