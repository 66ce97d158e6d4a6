"""Print the verify() numbers for every registered architecture and attention backend.

Each family's tiny random model (``Patch.tiny_config()``, the one its tests use) is made
bidirectional and checked with :func:`llm2vec_lite.patches.verify` on every backend transformers
supports for it here (flash_attention_2 needs CUDA and flash-attn; flex_attention compiles per shape
on CPU, so it is opt-in).

Usage::

    python benchmarks/verify_all.py                 # eager + sdpa, markdown table
    python benchmarks/verify_all.py --flex          # + flex_attention (slow on CPU)
    python benchmarks/verify_all.py --flex --device cuda   # on a GPU (benchmarks/gpu.sh): + flash-attn if installed

Rows print as they finish, so a run cut short by a time limit still shows every family it reached.
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import torch


def main() -> None:
    from llm2vec_lite.patches import enable_bidirectional, get_patch, supported_architectures, verify
    from transformers import AutoModel

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--flex", action="store_true", help="also run flex_attention")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = p.parse_args()
    on_cuda = args.device.startswith("cuda")
    if on_cuda and not torch.cuda.is_available():
        print(f"SKIP verify_all: --device {args.device} but torch.cuda.is_available() is False")
        return
    flash = on_cuda and importlib.util.find_spec("flash_attn") is not None
    if on_cuda and not flash:
        print("(flash_attention_2 rows skipped: the flash_attn package is not installed)")
    print(f"device {args.device}, float32 tiny models (flash_attention_2: bfloat16)", flush=True)
    print("| model_type | backend | first-token change | right-pad diff | left-pad diff | tolerance | passed |")
    print("|---|---|---:|---:|---:|---:|---|", flush=True)
    failures = 0
    for model_type in supported_architectures():
        patch = get_patch(model_type)
        for backend in patch.backends():
            if backend == "flash_attention_2" and not flash:
                continue
            if backend == "flex_attention" and not args.flex:
                continue
            torch.manual_seed(0)
            t0 = time.perf_counter()
            dtype = torch.bfloat16 if backend == "flash_attention_2" else torch.float32  # flash: half precision only
            model = AutoModel.from_config(patch.tiny_config(), attn_implementation=backend, dtype=dtype)
            model = model.to(args.device).eval()
            enable_bidirectional(model)
            r = verify(model)
            failures += not r.passed
            print(
                f"| {model_type} | {backend} | {r.first_token_change:.3g} | {r.right_padding_diff:.2g} "
                f"| {r.left_padding_diff:.2g} | {r.tolerance:.2g} | {'yes' if r.passed else 'NO'} "
                f"({time.perf_counter() - t0:.1f}s) |",
                flush=True,
            )
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
