"""One module per ``llm2vec-lite`` verb; each exposes ``register(subparsers)``."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse ``type`` for counts (``--batch-size``, ``--max-length``): a whole number >= 1.

    argparse then reports ``argument --max-length: ...`` and exits with status 2 before anything loads.
    """
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse ``type`` for a count that may be zero (``mine --skip-top``)."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value
