"""One module per ``llm2vec-lite`` verb; each exposes ``register(subparsers)``."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse ``type`` for counts (``--batch-size``, ``--max-length``): a whole number >= 1.

    argparse then reports ``argument --max-length: ...`` and exits with status 2 before anything loads.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value
