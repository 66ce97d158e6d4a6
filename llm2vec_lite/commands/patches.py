"""``llm2vec-lite patches``: placeholder until its owner fills it in."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("patches", help="(not implemented yet)")
    p.set_defaults(func=lambda args: (print("patches: not implemented yet"), 2)[1])
