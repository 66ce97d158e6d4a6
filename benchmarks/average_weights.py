"""Average the weights of encoders trained from one base (a "model soup") into a new encoder folder.

Why: two runs of a recipe that differ only in seed (data order) end at different points of the
same basin; averaging their weights is a cheap way to ask whether the spread between seeds is noise
around a better centre. The result is a normal encoder folder (the first input's files, with the
averaged ``model.safetensors``), so ``llm2vec-lite eval`` scores it like any other.

    python benchmarks/average_weights.py OUT runs/a/final runs/b/final [more folders...]

Every input must hold a single ``model.safetensors`` with the same tensor names and shapes (the
same recipe's ``final/`` folders do); the mean is taken in float64 and stored in each tensor's
own dtype.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch

WEIGHTS = "model.safetensors"


def average_state_dicts(paths: Sequence[Path]) -> dict[str, torch.Tensor]:
    """The element-wise mean of the ``model.safetensors`` of ``paths``, in each tensor's dtype.

    Raises:
        ValueError: If fewer than two folders are given, or their tensor names or shapes differ.
    """
    from safetensors.torch import load_file

    if len(paths) < 2:
        raise ValueError(f"give at least two folders to average, got {len(paths)}")
    total: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    for path in paths:
        state = load_file(str(Path(path) / WEIGHTS))
        if total and state.keys() != total.keys():
            extra = sorted(state.keys() ^ total.keys())[:3]
            raise ValueError(f"{path}: tensor names differ from {paths[0]} (e.g. {extra})")
        for name, tensor in state.items():
            if name not in total:
                total[name], dtypes[name] = tensor.double(), tensor.dtype
            elif tensor.shape != total[name].shape:
                raise ValueError(f"{path}: {name} has shape {tuple(tensor.shape)}, {paths[0]} has {tuple(total[name].shape)}")
            else:
                total[name] += tensor.double()
        del state
    return {name: (t / len(paths)).to(dtypes[name]).contiguous() for name, t in total.items()}


def main(argv: Sequence[str] | None = None) -> Path:
    """Write the averaged encoder folder; returns its path."""
    from safetensors.torch import save_file

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("output", type=Path, help="new encoder folder (must not exist)")
    p.add_argument("inputs", type=Path, nargs="+", help="encoder folders trained from the same base")
    args = p.parse_args(argv)
    if args.output.exists():
        p.error(f"{args.output} exists: pick a new folder")
    missing = [str(f) for f in args.inputs if not (f / WEIGHTS).is_file()]
    if missing:
        p.error(f"no {WEIGHTS} in: {', '.join(missing)}")
    try:
        state = average_state_dicts(args.inputs)
    except ValueError as e:
        p.error(str(e))
    # The first folder's config, tokenizer, pooling and sentence-transformers files; not its scores.
    shutil.copytree(args.inputs[0], args.output, ignore=shutil.ignore_patterns(WEIGHTS, "eval.json", "sts.json"))
    save_file(state, str(args.output / WEIGHTS), metadata={"format": "pt"})
    print(f"averaged {len(args.inputs)} folders into {args.output}")
    return args.output


if __name__ == "__main__":
    main()
