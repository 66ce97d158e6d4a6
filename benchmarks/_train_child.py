"""One benchmark conversion (run by ``benchmarks/train.py`` in a subprocess; not a public script).

Argv: RECIPE OUT_JSON PROFILE_STEPS PROFILE_AFTER THREADS. Runs ``llm2vec-lite convert RECIPE``
through the CLI of whichever ``llm2vec_lite`` is first on ``sys.path`` (the current tree, or an older
commit's build), then writes the stage's per-step metrics, this process's peak RSS and, when
PROFILE_STEPS > 0, a torch.profiler breakdown (ms per step by category) of the PROFILE_STEPS
optimizer steps after step PROFILE_AFTER. The profiler is started and stopped from a global
optimizer-step hook, so it works on any version of the package.
"""

from __future__ import annotations

import json
import re
import resource
import sys
import time
from pathlib import Path

import torch
import yaml

# op-name patterns -> category, first match wins (self CPU time of each op is summed)
CATEGORIES = [
    ("optimizer", r"_foreach_|adamw|addcdiv|lerp|Optimizer"),
    ("dropout", r"dropout|bernoulli"),
    ("attention", r"scaled_dot_product|_flash_attention|_efficient_attention|softmax"),
    ("matmul", r"^aten::(mm|addmm|bmm|baddbmm|matmul|linear|_addmm_activation)$"),
    ("casts", r"^aten::(to|_to_copy|copy_|contiguous|clone|empty_like|type_as)$"),
    ("norms", r"rms_norm|^aten::(pow|rsqrt|mean|var)$"),
    ("loss", r"cross_entropy|log_softmax|nll_loss|normalize|linalg_vector_norm"),
    ("elementwise", r"^aten::(mul|add|sub|div|silu|neg|cat|where|masked_fill|fill_|zero_|sum|exp)_?$"),
]


def categorise(events, steps: int, wall_s: float) -> dict[str, float]:
    out: dict[str, float] = {}
    total = 0.0
    for e in events:
        us = e.self_cpu_time_total
        if us <= 0:
            continue
        cat = next((c for c, pat in CATEGORIES if re.search(pat, e.key, re.IGNORECASE)), "other ops")
        out[cat] = out.get(cat, 0.0) + us / 1000 / steps
        total += us
    out["python/data"] = max(0.0, wall_s * 1000 / steps - total / 1000 / steps)
    return out


def main() -> None:
    recipe, out_json, profile_steps, profile_after, threads = sys.argv[1:6]
    profile_steps, profile_after, threads = int(profile_steps), int(profile_after), int(threads)
    if threads > 0:
        torch.set_num_threads(threads)
    state: dict = {"count": 0, "prof": None, "t0": 0.0, "result": None}

    def hook(optimizer, args, kwargs):  # after every optimizer step
        state["count"] += 1
        if not profile_steps:
            return
        if state["count"] == profile_after:
            state["prof"] = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            state["prof"].__enter__()
            state["t0"] = time.perf_counter()
        elif state["count"] == profile_after + profile_steps and state["prof"] is not None:
            wall = time.perf_counter() - state["t0"]
            state["prof"].__exit__(None, None, None)
            events = state["prof"].key_averages()
            state["result"] = categorise(events, profile_steps, wall)
            top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]
            state["top"] = [(e.key, e.self_cpu_time_total / 1000 / profile_steps, e.count // profile_steps) for e in top]

    from torch.optim.optimizer import register_optimizer_step_post_hook

    register_optimizer_step_post_hook(hook)
    from llm2vec_lite.cli import main as cli

    rc = cli(["convert", recipe])
    if rc:
        raise SystemExit(f"convert exited with {rc}")
    cfg = yaml.safe_load(Path(recipe).read_text())
    stage_dir = Path(cfg["output_dir"]) / f"01-{cfg['stages'][0]['kind']}"
    metrics = [json.loads(ln) for ln in (stage_dir / "metrics.jsonl").read_text().splitlines() if ln]
    Path(out_json).write_text(json.dumps({
        "metrics": metrics,
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "profile": state["result"],
        "top_ops": state.get("top"),
        "stage": json.loads((stage_dir / "stage.json").read_text()),
    }))


if __name__ == "__main__":
    main()
