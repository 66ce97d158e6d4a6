"""``llm2vec-lite patches``: list the patched architectures, or verify a model is bidirectional.

``llm2vec-lite patches`` prints each supported ``model_type`` with its attention backends, window
choice and what survives a plain reload. ``llm2vec-lite patches verify PATH_OR_ID`` loads the model
through :func:`llm2vec_lite.modeling.load_model` (a ``.gguf`` path works) and prints
:func:`llm2vec_lite.patches.verify`'s report; the exit code is 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json

_EPILOG = """Examples:
  llm2vec-lite patches
  llm2vec-lite patches verify HuggingFaceTB/SmolLM2-135M-Instruct --attn-implementation sdpa
  llm2vec-lite patches verify ~/models/SmolLM2-135M-Instruct.Q4_1.gguf --json
  llm2vec-lite patches verify ./my-folder --causal     # the unpatched model: shows the checks fail
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "patches",
        help="list bidirectional patches, or verify a model",
        description="List the architectures llm2vec-lite makes bidirectional, or verify one model.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=_list)
    verbs = p.add_subparsers(dest="patches_command", metavar="{verify}")
    v = verbs.add_parser(
        "verify",
        help="load a model, patch it, and check bidirectionality + padding invariance",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    v.add_argument("model", metavar="PATH_OR_ID", help="hub id, local folder, or a .gguf file")
    v.add_argument("--gguf-file", default=None, help="GGUF file name inside PATH_OR_ID")
    v.add_argument(
        "--attn-implementation",
        default=None,
        choices=["eager", "sdpa", "flex_attention", "flash_attention_2"],
        help="attention backend (default: transformers' choice)",
    )
    v.add_argument("--dtype", default=None, help="weight dtype: float32 (default), bfloat16, float16")
    v.add_argument("--window", default="full", choices=["full", "keep"], help="sliding-window choice")
    v.add_argument("--causal", action="store_true", help="do not patch (to see the checks fail)")
    v.add_argument("--random-ids", action="store_true", help="random token ids instead of sample sentences")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.set_defaults(func=_verify)


def _list(args: argparse.Namespace) -> int:
    from llm2vec_lite.patches import get_patch, supported_architectures

    rows = [("model_type", "backends", "window", "plain reload")]
    for model_type in supported_architectures():
        patch = get_patch(model_type)
        rows.append((model_type, ",".join(patch.backends()), patch.window_note, patch.reload_note))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
    return 0


def _verify(args: argparse.Namespace) -> int:
    from llm2vec_lite.modeling import load_model
    from llm2vec_lite.patches import verify

    model, tokenizer = load_model(
        args.model,
        gguf_file=args.gguf_file,
        attn_implementation=args.attn_implementation,
        dtype=args.dtype,
        bidirectional=not args.causal,
        window=args.window,
    )
    report = verify(model, None if args.random_ids else tokenizer)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report)
    return 0 if report.passed else 1
