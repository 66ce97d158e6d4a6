"""The ``llm2vec-lite`` command: one subcommand per verb.

Each verb lives in its own module under ``llm2vec_lite/commands/`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable taking the parsed
arguments and returning an exit code. This file only wires them together, so adding a verb never
touches another verb's code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import import_module

from llm2vec_lite import __version__
from llm2vec_lite.errors import Llm2VecError
from llm2vec_lite.runtime.threads import prefer_passive_openmp

prefer_passive_openmp()  # before any subcommand imports torch (see llm2vec_lite/runtime/threads.py)

# Order is the order shown by --help.
_COMMANDS = ("convert", "recipe", "encode", "eval", "mine", "whiten", "patches", "synth", "push")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm2vec-lite",
        description="Turn a decoder-only language model into a text encoder (LLM2Vec).",
        epilog="Examples:\n"
        "  llm2vec-lite convert recipes/smollm2-135m-cpu.yaml\n"
        "  llm2vec-lite eval out/final --datasets stsb --data-dir data/sts\n"
        "  llm2vec-lite patches verify HuggingFaceTB/SmolLM2-135M-Instruct\n"
        "  llm2vec-lite synth synth.yaml\n"
        "  llm2vec-lite push runs/x/final ORG/NAME --dry-run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        import_module(f"llm2vec_lite.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None and _trains(sys.argv[1:]):
        from llm2vec_lite.runtime.allocator import restart_with_jemalloc

        # before the parser: some verbs' options import torch, and an allocator must be chosen first
        restart_with_jemalloc()  # returns only when it does not apply
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse stops filling a positional list at the first flag, so in
    # `convert r.yaml --dry-run stages.0.steps=3` the override lands in `extra`; take it back.
    if extra and isinstance(getattr(args, "overrides", None), list) and not any(e.startswith("-") for e in extra):
        args.overrides.extend(extra)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except Llm2VecError as e:  # usage errors exit 2, everything else 1 (docs/errors.md)
        return _fail(e, e.exit_code, args.verbose)
    except OSError as e:  # a missing file, transformers' "not a local folder and not on the hub" ...
        return _fail(e, 1, args.verbose)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _trains(words: list[str]) -> bool:
    """True for a ``convert`` command line that will train (not ``--dry-run``, not ``--help``)."""
    verb = next((w for w in words if not w.startswith("-")), None)
    return verb == "convert" and not {"--dry-run", "-h", "--help"} & set(words)


def _fail(error: BaseException, code: int, verbose: bool) -> int:
    """Print ``error: MESSAGE`` (no traceback unless --verbose) and return the exit status."""
    if verbose:
        logging.getLogger("llm2vec_lite").debug("traceback", exc_info=error)
    print(f"error: {error}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
