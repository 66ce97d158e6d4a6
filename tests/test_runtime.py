"""The runtime policy: bf16 only where it is fast, the OpenMP wait policy, and per-stage peak memory."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import torch

from llm2vec_lite.runtime import policy as runtime


@pytest.fixture
def cpu_bf16(monkeypatch):
    def set_fast(value: bool):
        monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: value)

    return set_fast


def test_auto_uses_bf16_only_on_cpus_with_bf16_units(cpu_bf16):
    cpu_bf16(True)
    assert runtime.mixed_precision("auto", "cpu") == "bf16"
    cpu_bf16(False)
    assert runtime.mixed_precision("auto", "cpu") == "no"
    assert runtime.mixed_precision("none", "cpu") == "no"


def test_forcing_bf16_on_an_emulating_cpu_warns(cpu_bf16, caplog):
    cpu_bf16(False)
    with caplog.at_level(logging.WARNING, logger="llm2vec_lite.runtime.policy"):
        assert runtime.mixed_precision("bf16", "cpu") == "bf16"
    assert "100x slower" in caplog.text
    with pytest.raises(ValueError, match="valid: auto, bf16, fp16, none"):
        runtime.mixed_precision("fp8", "cpu")


def test_training_and_encoding_ask_the_same_question(cpu_bf16):
    """The trainer's accelerator and the encoder's autocast agree on this machine's answer."""
    from llm2vec_lite.encoder import Encoder
    from llm2vec_lite.trainer import make_accelerator

    model = torch.nn.Linear(2, 2)
    for fast in (True, False):
        cpu_bf16(fast)
        encoder = Encoder.__new__(Encoder)  # only the precision question, no tokenizer needed
        encoder.autocast, encoder.model = None, model
        acc = make_accelerator("auto", cpu=True)
        assert (acc.mixed_precision == "bf16") == fast == encoder._use_autocast(None)


def test_peak_rss_sees_memory_used_inside_the_block():
    """In a fresh process: after other tests the allocator may reuse pages that are already resident."""
    if runtime.current_rss_mib() is None:
        pytest.skip("no /proc on this system")
    code = (
        "import torch; from llm2vec_lite.runtime.policy import PeakRSS, current_rss_mib\n"
        "with PeakRSS(interval=0.01) as rss:\n"
        "    before = current_rss_mib()\n"
        "    block = torch.ones(64 * 2**20); block.add_(1); del block  # 256 MiB, touched, freed\n"
        "print(before, rss.peak_mib, current_rss_mib())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, peak, after = (float(x) for x in out.stdout.split())
    assert peak >= before + 200  # the 256 MiB were seen while they lived
    assert after < peak  # ... and the peak is not just the RSS at exit


def test_cli_sets_a_passive_openmp_wait_policy_unless_the_user_chose():
    code = "import os, llm2vec_lite.cli; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"
    code = "import torch, os, llm2vec_lite.cli; print(os.environ.get('OMP_WAIT_POLICY'))"
    env.pop("OMP_WAIT_POLICY")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"  # too late once torch is loaded: nothing is pretended


# The top-level modules that moved into llm2vec_lite.runtime; their old names work for one release.
MOVED = ("allocator", "threads", "file_pages", "frozen_base", "block_compile", "fused_lora", "lora")


def test_old_import_paths_give_the_moved_modules_and_say_where_they_went():
    """In a fresh process, so that each old name is imported for the first time."""
    code = (
        "import importlib, sys, warnings\n"
        "warnings.simplefilter('always')\n"
        f"for name in {MOVED!r}:\n"
        "    with warnings.catch_warnings(record=True) as caught:\n"
        "        old = importlib.import_module('llm2vec_lite.' + name)\n"
        "    assert old is importlib.import_module('llm2vec_lite.runtime.' + name), name\n"
        "    assert [str(w.message) for w in caught if w.category is DeprecationWarning] == [\n"
        "        f'llm2vec_lite.{name} moved to llm2vec_lite.runtime.{name}; the old name goes in the next release'], name\n"
        "from llm2vec_lite.lora import _LastInput, share_lora_dropout  # private names too\n"
        "from llm2vec_lite.block_compile import compiles\n"
        "from llm2vec_lite.runtime import policy\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    from llm2vec_lite.runtime import PeakRSS, mixed_precision, training_device\n"
        "assert (PeakRSS, mixed_precision, training_device) == (policy.PeakRSS, policy.mixed_precision, policy.training_device)\n"
        "names = {str(w.message).split()[0] for w in caught if w.category is DeprecationWarning}\n"
        "assert names == {f'llm2vec_lite.runtime.{n}' for n in ('PeakRSS', 'mixed_precision', 'training_device')}, names\n"
        "print(mixed_precision('none', 'cpu'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "no"


def test_patching_an_old_path_patches_the_code_that_runs(monkeypatch):
    """A test or script that patches ``llm2vec_lite.block_compile...`` still reaches the moved module."""
    from llm2vec_lite.runtime.block_compile import compiles

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr("llm2vec_lite.block_compile.shutil.which", lambda name: None)
    assert compiles("auto", "cpu") is False
    monkeypatch.setattr("llm2vec_lite.block_compile.shutil.which", lambda name: f"/usr/bin/{name}")
    assert compiles("auto", "cpu") is True


def test_the_old_runtime_names_are_the_policy_module_and_nothing_else():
    import llm2vec_lite.runtime

    assert set(runtime.__all__) == llm2vec_lite.runtime._POLICY_NAMES  # the list cannot drift
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        llm2vec_lite.runtime.nope  # noqa: B018
