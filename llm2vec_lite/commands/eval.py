"""``llm2vec-lite eval``: score an encoder on STS, or on local tasks of every type.

Without ``--suite``/``--tasks``: loads ``MODEL`` with
:meth:`llm2vec_lite.encoder.Encoder.from_pretrained`, runs :func:`llm2vec_lite.evaluate.evaluate_sts`,
prints a table and the average. With them: reads and checks every task first (a malformed folder
fails before the model loads), then scores retrieval, classification, clustering and STS with
MTEB's evaluators (:mod:`llm2vec_lite.suite`) and prints one table with the type means. ``MODEL``
may also be a sentence-transformers folder (run with its own prompts). ``--json`` writes the
results. See docs/evaluate.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from llm2vec_lite.commands import positive_int

EPILOG = """Examples:
  llm2vec-lite eval out/final --datasets stsb --data-dir data/sts
  llm2vec-lite eval out/final --datasets stsb-dev --data-dir data/sts --json stsb.json
  llm2vec-lite eval path/to/SmolLM2-135M-Instruct.Q4_1.gguf --pooling mean --datasets stsb --data-dir data/sts
  llm2vec-lite eval HuggingFaceTB/SmolLM2-135M-Instruct --causal --pooling last_token --datasets stsb,sickr
  llm2vec-lite eval model.gguf --num-layers 3 --datasets stsb --data-dir data/sts   # a recipe's num_layers, untrained

  llm2vec-lite eval out/final --suite data/dev --datasets stsb-dev --data-dir data/sts --json dev.json
  llm2vec-lite eval out/final --tasks data/dev/retrieval/cranfield,data/dev/clustering/20ng-subjects.tsv
  llm2vec-lite eval path/to/all-MiniLM-L6-v2 --suite data/dev --datasets stsb-dev --data-dir data/sts

--suite DIR runs every task under DIR/retrieval/<name>/ (BEIR: corpus.jsonl, queries.jsonl,
qrels.tsv), DIR/classification/<name>/ (train.tsv, test.tsv: text, label), DIR/clustering/<name>.tsv
(text, label) and DIR/sts/<name>.tsv; --datasets adds STS sets to it. Scores: nDCG@10, accuracy of
a logistic regression on 16 examples a label (10 draws), V-measure of k-means (10 rounds), Spearman.
The query side of each task gets its instruction through --instruction-template (E5's format by
default); --no-instructions uses the folder's own query_instruction instead, and is the default for
a folder converted without instructions (task_instructions: false in its llm2vec_lite.json).

Without --data-dir the MTEB copies are fetched from the hub (mteb/stsbenchmark-sts, ...).
With --data-dir, NAME is read from DIR/NAME.tsv, DIR/NAME-test.tsv or DIR/NAME-dev.tsv
(header sentence1<TAB>sentence2<TAB>score); any other NAME is taken as DIR/NAME.tsv."""


def register(sub: argparse._SubParsersAction) -> None:
    from llm2vec_lite.evaluate import STS_DATASETS

    p = sub.add_parser(
        "eval",
        help="STS evaluation (Spearman of cosine x100)",
        description="Evaluate an encoder on STS datasets: Spearman and Pearson of cosine similarity (x100).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="converted folder, hub id, base folder or .gguf file")
    p.add_argument(
        "--datasets",
        default=None,
        help=f"comma-separated names (default: all available). Registered: {', '.join(STS_DATASETS)}",
    )
    p.add_argument(
        "--data-dir", default=None, help="folder of local TSV files; nothing is fetched from the hub"
    )
    p.add_argument(
        "--json", dest="json_path", default=None, metavar="OUT.json", help="write full results here"
    )
    p.add_argument("--suite", default=None, metavar="DIR", help="score every task found in this folder (see below)")
    p.add_argument(
        "--tasks", default=None, metavar="PATH,...", help="comma-separated task folders or files to score"
    )
    p.add_argument(
        "--instructions", default=None, metavar="FILE.yaml",
        help="task name -> instruction mapping that overrides the built-in ones",
    )
    p.add_argument(
        "--instruction-template", default=None, metavar="TEXT",
        help="how a task instruction becomes the query prefix; '{instruction}' stands for it "
        "(default: 'Instruct: {instruction}\\nQuery: ')",
    )
    p.add_argument(
        "--no-instructions", action="store_true",
        help="no task instructions: the folder's own query_instruction (if any) for every query",
    )
    p.add_argument("--batch-size", type=positive_int, default=32, help="texts per forward pass (default 32)")
    p.add_argument(
        "--pooling", default=None, help="override the folder's pooling mode (mean, weighted_mean, ...)"
    )
    p.add_argument("--max-length", type=positive_int, default=None, help="truncate texts to this many tokens")
    p.add_argument("--dtype", default=None, help="weight dtype (float32, bfloat16, auto)")
    p.add_argument("--gguf-file", default=None, help="GGUF file name inside MODEL when MODEL is a folder")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cpu)")
    p.add_argument("--causal", action="store_true", help="keep causal attention (the no-patch baseline)")
    p.add_argument(
        "--compile", action="store_true",
        help="torch.compile the transformer blocks first (a minute): a suite of long documents runs about "
        "twice as fast on a CPU",
    )
    p.add_argument(
        "--num-layers", type=positive_int, default=None,
        help="keep only the first N transformer blocks (a recipe's num_layers: the untrained pruned baseline)",
    )
    p.set_defaults(func=lambda args: run(args, p))


def run(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> int:
    from llm2vec_lite.encoder import Encoder
    from llm2vec_lite.evaluate import evaluate_sts, format_table, load_sts_suite

    def fail(message: str) -> int:
        if parser is not None:
            parser.error(message)  # exits with status 2
        raise ValueError(message)

    if args.batch_size < 1:
        return fail(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.pooling is not None:
        from llm2vec_lite.pooling import POOLING_MODES

        if args.pooling not in POOLING_MODES:
            return fail(f"unknown --pooling {args.pooling!r}; valid: {', '.join(POOLING_MODES)}")
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        return fail(f"--data-dir {args.data_dir}: no such folder")
    from llm2vec_lite.checks import check_device, check_dtype

    check_dtype(args.dtype, "--dtype")
    check_device(getattr(args, "device", None), "--device")

    if args.suite is not None or args.tasks is not None:
        return run_suite_command(args, fail)
    # Data first: a typo in --datasets fails in a second, not after the model has loaded.
    suite = load_sts_suite(args.datasets, data_dir=args.data_dir)
    encoder = Encoder.from_pretrained(args.model, **_encoder_kwargs(args))
    results = evaluate_sts(
        encoder,
        suite,
        batch_size=args.batch_size,
        model=args.model,
    )
    results["settings"] = {
        "causal": args.causal,
        "bidirectional": getattr(encoder, "bidirectional", not args.causal),
        "pooling": getattr(encoder, "pooling", args.pooling),
        # what the loaded encoder really uses (not just the flags), so the JSON shows the wiring
        "max_length": getattr(encoder, "max_length", args.max_length),
        "dtype": _weight_dtype(encoder) or args.dtype,
        "gguf_file": args.gguf_file,
        "num_layers": getattr(args, "num_layers", None),
    }
    print(format_table(results))
    _write_json(args.json_path, results)
    return 0


def _encoder_kwargs(args: argparse.Namespace) -> dict:
    """``Encoder.from_pretrained`` arguments from the flags given (the folder's own settings otherwise)."""
    kwargs = {"bidirectional": False} if args.causal else {}  # else: the folder's own setting (default on)
    for key in ("pooling", "max_length", "dtype", "gguf_file", "device", "num_layers"):
        if getattr(args, key, None) is not None:
            kwargs[key] = getattr(args, key)
    if getattr(args, "compile", False):
        kwargs["compile"] = True
    return kwargs


def _write_json(path: str | None, results: dict) -> None:
    if not path:
        return
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    partial.replace(out)
    print(f"wrote {out}")


def run_suite_command(args: argparse.Namespace, fail) -> int:
    """``eval --suite/--tasks``: check every task, load the model, score, print the table."""
    from llm2vec_lite.evaluate import load_sts_suite
    from llm2vec_lite.suite import E5_TEMPLATE, format_suite_table, is_sentence_transformers_folder, run_suite
    from llm2vec_lite.tasks import load_tasks, sts_task

    if args.suite is not None and not Path(args.suite).is_dir():
        return fail(f"--suite {args.suite}: no such folder")
    template = args.instruction_template
    if template is not None:
        template = template.replace("\\n", "\n")
        if "{instruction}" not in template:
            return fail(f"--instruction-template {args.instruction_template!r} has no '{{instruction}}'")
    instructions = _read_instructions(args.instructions, fail) if args.instructions else None
    # Data first: every task is read and checked before the model loads.
    tasks = load_tasks(
        [t for t in (args.tasks or "").split(",") if t], suite=args.suite, instructions=instructions
    )
    if args.datasets is not None:
        tasks += [sts_task(pairs, instructions) for pairs in load_sts_suite(args.datasets, data_dir=args.data_dir)]
    if is_sentence_transformers_folder(args.model):
        from llm2vec_lite.suite import sentence_transformers_embedder

        embedder = sentence_transformers_embedder(
            args.model, batch_size=args.batch_size, max_length=args.max_length, device=args.device,
            dtype=args.dtype,
        )
    else:
        from llm2vec_lite.encoder import Encoder
        from llm2vec_lite.suite import encoder_embedder

        encoder = Encoder.from_pretrained(args.model, **_encoder_kwargs(args))
        embedder = encoder_embedder(
            encoder, name=args.model, batch_size=args.batch_size,
            instruction_template=_suite_template(args, template, E5_TEMPLATE),
        )
    report = run_suite(embedder, tasks, batch_size=args.batch_size, progress=print)
    print(format_suite_table(report))
    print(f"{report['seconds']:.0f} s ({report['encode_seconds']:.0f} s encoding {report['texts_encoded']} texts)")
    _write_json(args.json_path, report)
    return 0


def _suite_template(args: argparse.Namespace, template: str | None, default: str) -> str | None:
    """The query-side template: none with --no-instructions or for a folder trained without them."""
    if args.no_instructions:
        return None
    if template is not None:
        return template
    if _trained_without_instructions(args.model):
        print(
            f"{args.model}: trained without task instructions (llm2vec_lite.json), so scored without "
            "them; --instruction-template adds them"
        )
        return None
    return default


def _trained_without_instructions(model: str) -> bool:
    """True when MODEL's llm2vec_lite.json says no training row had an instruction on its query."""
    from llm2vec_lite.encoder import SETTINGS_FILE
    from llm2vec_lite.evaluate import read_json_dict

    # {} for a hub name, a GGUF file or a folder of another library: E5's default
    return read_json_dict(Path(model) / SETTINGS_FILE).get("task_instructions") is False


def _read_instructions(path: str, fail) -> dict[str, str]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        return fail(f"--instructions {path}: {e}")
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        return fail(f"--instructions {path}: expected a mapping of task name -> instruction text")
    return data


def _weight_dtype(encoder) -> str | None:
    """The dtype of the loaded weights (``"float32"``...), or None for a model without parameters."""
    try:
        return str(next(encoder.model.parameters()).dtype).removeprefix("torch.")
    except (AttributeError, StopIteration, TypeError):
        return None
