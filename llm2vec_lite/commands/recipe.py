"""``llm2vec-lite recipe``: placeholder until its owner fills it in."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recipe", help="(not implemented yet)")
    p.set_defaults(func=lambda args: (print("recipe: not implemented yet"), 2)[1])
