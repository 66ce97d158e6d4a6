"""``llm2vec-lite encode``: embed a text file (one text a line) into a ``.npy`` matrix.

Row ``i`` of the output is the vector of line ``i`` (float32, unit length unless
``--no-normalize``). The model may be an encoder folder, a decoder folder or hub id, or a GGUF file.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from llm2vec_lite.commands import positive_int

logger = logging.getLogger(__name__)

_EPILOG = """examples:
  llm2vec-lite encode out/final --input texts.txt --output vectors.npy
  llm2vec-lite encode out/final --input queries.txt --output q.npy \\
      --instruction $'Instruct: Retrieve passages that answer the question\\nQuery: '
  llm2vec-lite encode path/to/SmolLM2-135M-Instruct.Q4_1.gguf --input texts.txt --output v.npy --pooling mean
"""


def register(sub: argparse._SubParsersAction) -> None:
    from llm2vec_lite.pooling import POOLING_MODES

    p = sub.add_parser(
        "encode",
        help="embed a text file (one text a line) into a .npy matrix",
        description=__doc__,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="encoder folder, model folder, hub id, or .gguf file")
    p.add_argument("--input", "-i", required=True, type=Path, help="UTF-8 text file, one text a line")
    p.add_argument("--output", "-o", required=True, type=Path, help="where to write the (n, dim) .npy")
    p.add_argument("--instruction", default=None, help="prefix attended to but not pooled")
    p.add_argument("--batch-size", type=positive_int, default=32, help="texts per forward pass (default 32)")
    p.add_argument("--pooling", choices=POOLING_MODES, default=None, help="override the folder's pooling")
    p.add_argument("--max-length", type=positive_int, default=None, help="override the folder's max_length")
    p.add_argument("--no-normalize", action="store_true", help="keep raw vector lengths")
    p.add_argument("--gguf-file", default=None, help="GGUF file name inside MODEL (a folder or repo)")
    p.add_argument("--dtype", default=None, help="weight dtype: float32 (default), bfloat16, auto")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ...")
    p.add_argument("--causal", action="store_true", help="do not make attention bidirectional (baseline)")
    p.add_argument("--no-autocast", action="store_true", help="no bf16 autocast (exact float32)")
    p.add_argument(
        "--compile", action="store_true",
        help="torch.compile the transformer blocks (half a minute first): worth trying for files of long texts",
    )
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from llm2vec_lite.checks import check_device, check_dtype
    from llm2vec_lite.data import read_text_file
    from llm2vec_lite.encoder import Encoder

    check_dtype(args.dtype, "--dtype")  # flags first: nothing loads for a typo
    check_device(args.device, "--device")
    texts = read_text_file(args.input, "--input").splitlines()
    encoder = Encoder.from_pretrained(
        args.model,
        pooling=args.pooling,
        max_length=args.max_length,
        gguf_file=args.gguf_file,
        dtype=args.dtype,
        device=args.device,
        bidirectional=False if args.causal else None,
        compile=args.compile,
    )
    if args.no_autocast:
        encoder.autocast = False
    vectors = encoder.encode(
        texts, batch_size=args.batch_size, instruction=args.instruction, normalize=not args.no_normalize
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    partial = args.output.with_name(args.output.name + ".partial")
    with open(partial, "wb") as f:  # np.save(path) would append .npy to other suffixes
        np.save(f, vectors)
    partial.replace(args.output)  # never a half-written output under the real name
    logger.info("wrote %s: %d x %d float32", args.output, *vectors.shape)
    return 0
