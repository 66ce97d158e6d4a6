"""CPU-side logic of benchmarks/gpu_bench.py: arguments, skip messages, the FLOPs formula, the loop.

No GPU is needed: CUDA and flash_attn are hidden with monkeypatch where a test needs their absence,
the FLOPs formula is checked against torch's own FLOP counter on a tiny Qwen2, and the timed loop
runs on the CPU with the tiny config.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from benchmark_module import load_benchmark

ROOT = Path(__file__).resolve().parents[2]


gpu_bench = load_benchmark("gpu_bench")


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def no_flash(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "flash_attn" else real(name, *a))


# --- arguments -------------------------------------------------------------------------------


def test_train_defaults_are_qwen2_sdpa_flex_and_flash():
    args = gpu_bench.build_parser().parse_args(["train"])
    assert args.attn == ["sdpa", "flex_attention", "flash_attention_2"]
    assert (args.config, args.mode, args.device, args.batch, args.seq_len) == ("qwen2-0.5b", "lora", "cuda", 16, 512)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--attn", "sdpa,flash"], "valid backends are eager, sdpa, flex_attention, flash_attention_2"),
        (["train", "--steps", "0"], "must be at least 1"),
        (["train", "--batch", "5"], "must be even"),
        (["train", "--config", "llama-7b"], "invalid choice"),
        (["verify", "--attn", "flex"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_arguments_exit_2_and_say_why(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        gpu_bench.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


# --- skip messages ---------------------------------------------------------------------------


def test_train_without_cuda_skips_every_backend(no_cuda, capsys):
    assert gpu_bench.main(["train"]) == 0
    out = capsys.readouterr().out
    assert out.count("SKIP train") == 3  # sdpa, flex_attention, flash_attention_2
    assert "no CUDA device" in out and "torch.cuda.is_available() is False" in out


def test_verify_without_cuda_skips_before_loading_a_model(no_cuda, capsys, monkeypatch):
    import llm2vec_lite.modeling as modeling

    monkeypatch.setattr(modeling, "load_model", lambda *a, **k: pytest.fail("loaded a model"))
    assert gpu_bench.main(["verify"]) == 0
    assert "SKIP verify (flash_attention_2): no CUDA device" in capsys.readouterr().out


def test_env_without_cuda_says_so(no_cuda, capsys):
    assert gpu_bench.main(["env"]) == 0
    out = capsys.readouterr().out
    assert "cuda available False" in out and "SKIP env" in out


def test_flash_skip_names_the_missing_package(no_flash, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    reason = gpu_bench.skip_reason("flash_attention_2", "cuda")
    assert "flash_attn package is not installed" in reason and "FLASH_ATTN_WHEEL" in reason
    assert gpu_bench.skip_reason("sdpa", "cuda") is None


def test_flash_on_cpu_is_skipped_even_when_installed():
    assert "flash-attention runs on CUDA GPUs only" in gpu_bench.skip_reason("flash_attention_2", "cpu")
    assert gpu_bench.skip_reason("sdpa", "cpu") is None


# --- peak table ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, peak",
    [
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H200", 989.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L40S", 362.0),
        ("NVIDIA L4", 121.0),
        ("Tesla T4", None),  # no bf16 tensor cores: not in the table, train measures a matmul
    ],
)
def test_peak_table_matches_specific_names_first(name, peak):
    assert gpu_bench.peak_from_table(name) == peak


def test_given_peak_wins_over_table_and_measurement():
    assert gpu_bench.resolve_peak("cuda", 123.0) == (123.0, "--peak-tflops")


# --- FLOPs formula ---------------------------------------------------------------------------


def _counted_flops(config, mode: str, batch: int, seq: int, r: int = 4) -> int:
    """torch's FlopCounterMode over one forward + backward of the base model (eager attention)."""
    from peft import LoraConfig, get_peft_model
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModel

    torch.manual_seed(0)
    model = AutoModel.from_config(config, attn_implementation="eager")
    if mode == "lora":
        model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear", lora_dropout=0.0))
    ids = torch.randint(0, config.vocab_size, (batch, seq))
    with FlopCounterMode(display=False) as counter:
        model(input_ids=ids).last_hidden_state.float().pow(2).mean().backward()
    return counter.get_total_flops()


def test_full_training_flops_match_torch_flop_counter():
    config = gpu_bench.tiny_config(num_hidden_layers=3)
    shape = gpu_bench.Shape.from_config(config)
    assert gpu_bench.step_flops(shape, [12, 12], "full") == _counted_flops(config, "full", batch=2, seq=12)


def test_lora_flops_match_the_counter_up_to_the_first_layers_input_gradient():
    # The formula counts the backward to every frozen linear's input; autograd skips it where the
    # input needs no gradient: the first layer's q, k, v (and their adapters' A) read the frozen
    # embeddings. That known gap, and nothing else, separates the two.
    config = gpu_bench.tiny_config(num_hidden_layers=3)
    shape = gpu_bench.Shape.from_config(config)
    r, tokens = 4, 2 * 12
    h, q, kv = shape.hidden, shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    skipped = 2 * tokens * (h * q + 2 * h * kv) + 2 * tokens * 3 * h * r
    formula = gpu_bench.step_flops(shape, [12, 12], "lora", r)
    assert formula - skipped == _counted_flops(config, "lora", batch=2, seq=12, r=r)


def test_flops_grow_quadratically_only_through_attention():
    shape = gpu_bench.Shape.from_config(gpu_bench.qwen2_05b_config())
    one, two = (gpu_bench.step_flops(shape, [n], "lora") for n in (256, 512))
    attention = 12 * shape.layers * shape.heads * shape.head_dim
    assert two - 2 * one == pytest.approx(attention * (512**2 - 2 * 256**2))
    with pytest.raises(ValueError, match="valid modes are lora, full"):
        gpu_bench.step_flops(shape, [8], "qlora")


def test_qwen2_05b_shape_has_about_360m_block_weights():
    # Qwen2-0.5B: 494M parameters, 136M of them the (tied) 151936 x 896 embedding.
    shape = gpu_bench.Shape.from_config(gpu_bench.qwen2_05b_config())
    assert (shape.layers, shape.hidden, shape.heads, shape.kv_heads, shape.head_dim) == (24, 896, 14, 2, 64)
    assert 355e6 < shape.linear_params() < 362e6


# --- the timed loop, on the CPU --------------------------------------------------------------


def test_train_loop_runs_on_cpu_and_reports_mfu(capsys):
    argv = ["train", "--device", "cpu", "--config", "tiny", "--attn", "sdpa,flex_attention,flash_attention_2",
            "--batch", "4", "--seq-len", "16", "--steps", "2", "--warmup", "1", "--peak-tflops", "1.0", "--json"]
    assert gpu_bench.main(argv) == 0
    out = capsys.readouterr().out
    assert "SKIP train (flash_attention_2): attn_implementation = 'flash_attention_2': flash-attention runs on CUDA" in out
    assert "SKIP train (flex_attention): attn_implementation = 'flex_attention': torch has no flex-attention backward on CPU" in out
    import json

    (row,) = json.loads(out.strip().splitlines()[-1])
    assert row["attn"] == "sdpa" and row["steps"] == 2 and row["peak_source"] == "--peak-tflops"
    assert row["tok_per_s"] > 0 and row["mfu"] == pytest.approx(row["tflop_per_s"] / 1.0)
    assert "| sdpa | lora | 4 x 16 |" in out


def test_stages_table_reads_a_convert_run(tmp_path, capsys):
    import json

    for name, tok_s in (("01-mntp", 300.0), ("02-simcse", 450.5)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "stage.json").write_text(json.dumps(
            {"wall_time_s": 12.0, "metrics": {"steps": 30, "wall_time_s": 9.5, "tokens_per_s": tok_s,
                                              "sequences_per_s": 4.0, "peak_rss_mib": 900.0, "peak_gpu_mib": 512.0}}))
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "eval.json").write_text(json.dumps({"datasets": {"stsb": {"spearman": 71.234}}}))
    assert gpu_bench.main(["stages", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| 01-mntp | 30 | 9.5 | 12.0 | 300 | 4.0 | 900 | 512 |" in out
    assert "| 02-simcse | 30 |" in out and "450 |" in out
    assert "final encoder: stsb spearman 71.23" in out


def test_stages_without_a_run_says_skip(tmp_path, capsys):
    assert gpu_bench.main(["stages", str(tmp_path)]) == 1
    assert "SKIP stages: no NN-kind/stage.json" in capsys.readouterr().out


def test_make_batch_lengths_and_padding():
    ids, mask, lengths = gpu_bench.make_batch(6, 10, vocab=50, seed=1, device="cpu")
    assert ids.shape == mask.shape == (6, 10)
    assert all(5 <= n <= 10 for n in lengths)
    assert mask.sum(dim=1).tolist() == lengths
    assert (ids[mask == 0] == 0).all() and (ids[mask == 1] > 0).all()


# --- gpu.sh ------------------------------------------------------------------------------------


def test_gpu_sh_without_cuda_stops_after_env_with_a_skip(tmp_path):
    import os
    import subprocess

    # a python whose torch sees no CUDA even on a GPU machine, so the skip path is what runs
    shim = tmp_path / "python"
    shim.write_text(f'#!/bin/sh\nCUDA_VISIBLE_DEVICES="" exec {sys.executable} "$@"\n')
    shim.chmod(0o755)
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--time-limit", "120"], capture_output=True,
                          text=True, env=dict(os.environ, PYTHON=str(shim)), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "== env" in proc.stdout and "SKIP: no CUDA device here; nothing measured" in proc.stdout
    assert "== verify" not in proc.stdout


def test_gpu_sh_rejects_a_missing_model():
    import subprocess

    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--model", "no/such.gguf"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "--model 'no/such.gguf': no such file" in proc.stderr


def test_gpu_sh_rejects_a_bad_time_limit():
    import subprocess

    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--time-limit", "ten"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "give whole seconds" in proc.stderr


# --- verify against a reference backend ------------------------------------------------------


def _report(attn: str, right: float, left: float, change: float = 7.0, tol: float = 1.6):
    from llm2vec_lite.patches.verify import VerifyReport

    return VerifyReport("llama", attn, "torch.bfloat16", "tokenizer", [14, 4, 11], tol, change, right, left)


def test_rounding_within_twice_the_reference_is_accepted():
    ok, why = gpu_bench.judge_against_reference(_report("flash_attention_2", 3.9, 5.0), _report("sdpa", 3.8, 5.3))
    assert ok and "within 2x the sdpa reference's 5.3" in why


def test_padding_error_beyond_the_reference_fails():
    ok, why = gpu_bench.judge_against_reference(_report("flash_attention_2", 0.2, 12.0), _report("sdpa", 0.3, 0.4))
    assert not ok and "BEYOND" in why and "bound 1.6" in why  # the tolerance, as 2 x 0.4 is smaller


def test_a_causal_backend_is_never_accepted():
    ok, why = gpu_bench.judge_against_reference(_report("flash_attention_2", 0.1, 0.1, change=0.0),
                                                _report("sdpa", 3.8, 5.3))
    assert not ok and why == "not bidirectional"


def test_verify_reruns_with_the_reference_only_when_the_backend_fails(monkeypatch, capsys):
    import llm2vec_lite.patches as patches

    import llm2vec_lite.modeling as modeling

    reports = {"eager": _report("eager", 3.0, 2.0), "sdpa": _report("sdpa", 2.5, 2.6)}
    loaded = []
    monkeypatch.setattr(modeling, "load_model", lambda path, attn_implementation, **k: (loaded.append(
        attn_implementation) or attn_implementation, None))
    monkeypatch.setattr(patches, "verify", lambda model, tok: reports[model])
    assert gpu_bench.main(["verify", "--attn", "eager", "--device", "cpu"]) == 0
    assert loaded == ["eager", "sdpa"]
    assert "ACCEPTED: eager padding difference 3 is within 2x" in capsys.readouterr().out
    loaded.clear()
    assert gpu_bench.main(["verify", "--attn", "eager", "--device", "cpu", "--reference", "none"]) == 1
    assert loaded == ["eager"]
