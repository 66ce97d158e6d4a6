"""Two CPU processes under ``accelerate launch`` train the supervised stage like one process.

``batch_size`` is the global batch: with 2 processes each embeds half of it, candidates (positives
and hard negatives) are gathered across processes with gradients, and DDP averages the gradients.
The first logged loss (pure forward) and the second (after one update, so it checks the gradients)
must match a single-process run of the same recipe, and so must the trained weights.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "recipes"))

from tiny_project import TINY_RECIPE, make_tiny_project  # noqa: E402

RECIPE = TINY_RECIPE.split("stages:")[0].replace("pooling: mean", "pooling: mean\nautocast: none") + """\
stages:
  - kind: supervised
    data: {path: ./triplets.tsv}
    steps: 3
    batch_size: 8
    learning_rate: 1.0e-3
    temperature: 0.05
"""


def _losses(out: Path) -> list[float]:
    lines = (out / "01-supervised" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(ln)["loss"] for ln in lines]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate CLI not installed")
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU (gloo) path")
def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    from safetensors.torch import load_file

    make_tiny_project(tmp_path, RECIPE)
    accelerate = str(Path(sys.executable).parent / "accelerate")

    def launch(n: int, out: str) -> subprocess.CompletedProcess:
        # `--cpu` would run ONE process (accelerate's simple launcher); `--multi_gpu` starts n
        # processes through torchrun, and on a machine without CUDA they talk over gloo.
        cmd = [
            accelerate, "launch", *(["--multi_gpu"] if n > 1 else ["--cpu"]), "--num_processes", str(n), "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(random.randint(20000, 40000)),
            "-m", "llm2vec_lite", "convert", "recipe.yaml", f"output_dir={out}",
        ]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)

    one, two = launch(1, "out1"), launch(2, "out2")
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.returncode == 0, two.stderr[-3000:]
    for out, n in (("out1", 1), ("out2", 2)):
        info = json.loads((tmp_path / out / "01-supervised" / "stage.json").read_text())
        assert info["metrics"]["processes"] == n
    l1, l2 = _losses(tmp_path / "out1"), _losses(tmp_path / "out2")
    assert len(l1) == len(l2) == 3
    torch.testing.assert_close(torch.tensor(l2), torch.tensor(l1), rtol=1e-4, atol=1e-5)
    w1 = load_file(tmp_path / "out1" / "01-supervised" / "model.safetensors")
    w2 = load_file(tmp_path / "out2" / "01-supervised" / "model.safetensors")
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], rtol=1e-4, atol=1e-6, msg=name)
