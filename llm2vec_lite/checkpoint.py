"""Atomic folder writes and the resume state of a training stage.

Two rules make a killed run (even ``kill -9``) safe to restart:

1. Nothing is written in place. A folder is built under a temporary name next to its target and
   moved there with one ``os.replace`` (:func:`atomic_dir`); a crash leaves only a ``.tmp`` folder,
   which is never read and is cleaned up on the next run.
2. Inside a folder the file that marks it finished is written last: ``state.json`` for a
   checkpoint, ``stage.json`` for a stage folder. A folder without it is not finished.

A checkpoint (``<work_dir>/checkpoints/step-000050/``) holds everything the loop needs to continue
as if it had never stopped: the trainable (LoRA) weights, optimizer and scheduler state, the RNG
states of python, numpy and torch for every process, the data position and the step. Weights go in
safetensors; optimizer and scheduler state use ``torch.save`` and are read back with
``weights_only=True`` (no arbitrary pickles); RNG states are JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "Checkpoint",
    "atomic_dir",
    "capture_rng",
    "latest_checkpoint",
    "load_checkpoint",
    "prune_checkpoints",
    "restore_rng",
    "save_checkpoint",
    "write_json",
]

STATE_FILE = "state.json"


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Build a folder under a temporary name, then move it to ``target`` in one step.

    Usage::

        with atomic_dir(out / "01-mntp") as tmp:
            model.save_pretrained(tmp)
            write_json(tmp / "stage.json", info)   # the "finished" marker, written last

    An existing ``target`` is replaced only once the new folder is complete. If the block raises,
    the temporary folder is removed and ``target`` is left as it was.

    Yields:
        The temporary folder to write into (``<parent>/.<name>.tmp``).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp"
    if tmp.exists():  # left by a killed run
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        # os.replace cannot replace a non-empty folder: move the old one aside first.
        old = target.parent / f".{target.name}.old"
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically (temp file + ``os.replace``)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def capture_rng() -> dict[str, Any]:
    """The RNG states of python, numpy and torch (CPU and CUDA) as JSON-able data."""
    py = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), *[float(x) for x in np_state[2:]]],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Undo :func:`capture_rng`: set python, numpy and torch RNGs to the saved states."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), int(pos), int(has_gauss), cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` gives back.

    Attributes:
        path: the checkpoint folder.
        step: optimizer steps done.
        position: micro-batches consumed from the stage's batch stream.
        fingerprint: the stage fingerprint the checkpoint was written for.
        trainable: trainable parameter tensors by name.
        optimizer: optimizer ``state_dict``.
        scheduler: scheduler ``state_dict``.
        rng: one :func:`capture_rng` state per process (index = rank).
        extra: anything else the loop stored (e.g. the metrics of the last logged step).
    """

    path: Path
    step: int
    position: int
    fingerprint: str
    trainable: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: list[dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)


def _step_dir(root: Path, step: int) -> Path:
    return root / f"step-{step:06d}"


def save_checkpoint(
    root: str | Path,
    *,
    step: int,
    position: int,
    fingerprint: str,
    trainable: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    rng: list[dict[str, Any]],
    extra: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Write ``root/step-NNNNNN/`` atomically; ``state.json`` goes in last. Keeps the newest ``keep``.

    Call it on the main process only (the states it saves are the same on every process, except
    ``rng``, which the caller gathers from all of them).

    Returns:
        The checkpoint folder.
    """
    from safetensors.torch import save_file

    root = Path(root)
    target = _step_dir(root, step)
    with atomic_dir(target) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in trainable.items()}, tmp / "trainable.safetensors")
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
        write_json(tmp / "rng.json", rng)
        write_json(
            tmp / STATE_FILE,
            {"step": step, "position": position, "fingerprint": fingerprint, "extra": extra or {}},
        )
    prune_checkpoints(root, keep=keep)
    return target


def _finished(root: Path) -> list[tuple[int, Path]]:
    found = []
    if not root.is_dir():
        return found
    for p in root.iterdir():
        if p.is_dir() and p.name.startswith("step-") and (p / STATE_FILE).is_file():
            with contextlib.suppress(ValueError):
                found.append((int(p.name.split("-", 1)[1]), p))
    return sorted(found)


def latest_checkpoint(root: str | Path) -> Path | None:
    """The finished checkpoint with the highest step under ``root``, or ``None``."""
    found = _finished(Path(root))
    return found[-1][1] if found else None


def prune_checkpoints(root: str | Path, *, keep: int) -> None:
    """Delete all but the newest ``keep`` finished checkpoints."""
    for _step, path in _finished(Path(root))[:-keep] if keep > 0 else []:
        shutil.rmtree(path, ignore_errors=True)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    from safetensors.torch import load_file

    path = Path(path)
    state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
    opt = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
    return Checkpoint(
        path=path,
        step=int(state["step"]),
        position=int(state["position"]),
        fingerprint=str(state["fingerprint"]),
        trainable=load_file(path / "trainable.safetensors"),
        optimizer=opt["optimizer"],
        scheduler=opt["scheduler"],
        rng=json.loads((path / "rng.json").read_text(encoding="utf-8")),
        extra=state.get("extra", {}),
    )
