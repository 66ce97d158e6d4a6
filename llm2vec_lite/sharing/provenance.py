"""``final/provenance.json``: what a conversion was made from, so someone else can check a re-run.

Per stage: its folder, fingerprint, wall time, steps, peak memory and hardware (from the stage's
``stage.json``). Per data source: the file name, sha256 and row count (hub sources: id, config and
split). The base model: hub id and revision, or for a local file its name and sha256. Library
versions and the machine. No absolute path of the machine is written: files are named by their
name and identified by their hash.

:func:`data_mismatches` compares a recipe's local data with a provenance file before a re-run.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from llm2vec_lite.sharing.written import OutsidePath

__all__ = ["PROVENANCE_FILE", "build_provenance", "data_mismatches", "file_sha256", "machine_info"]

PROVENANCE_FILE = "provenance.json"
_LIBRARIES = ("llm2vec-lite", "torch", "transformers", "peft", "accelerate", "huggingface_hub", "datasets")


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (data files and GGUF weights can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(mixed_precision: str | None = None) -> dict[str, Any]:
    """CPU model and cores, GPU model and count (CUDA), and the autocast precision of the run."""
    info: dict[str, Any] = {"cpu": _cpu_model(), "cpu_count": os.cpu_count(), "system": platform.system()}
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpu_count"] = torch.cuda.device_count()
    except ImportError:  # pragma: no cover (torch is a dependency)
        pass
    if mixed_precision is not None:
        info["autocast"] = mixed_precision
    return info


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _row_count(src) -> int | None:
    from llm2vec_lite.data import read_table

    try:
        return len(read_table(src)[1])
    except Exception:  # noqa: BLE001 (a count is a courtesy; the run already read the file)
        return None


def _sources(recipe) -> list[dict[str, Any]]:
    out = []
    for i, stage in enumerate(recipe.stages):
        for j, src in enumerate(stage.sources()):
            entry: dict[str, Any] = {"stage": i + 1, "source": j}
            if src.hub is not None:
                entry.update(hub=src.hub, name=src.name, split=src.split, data_files=src.data_files)
            else:
                path = Path(src.path)
                entry["file"] = path.name
                if path.is_file():
                    entry["sha256"] = file_sha256(path)
                    entry["rows"] = _row_count(src)
            if src.limit is not None:
                entry["limit"] = src.limit
            out.append({k: v for k, v in entry.items() if v is not None})
    return out


def _snapshot_id(path: Path) -> tuple[str, str] | None:
    """(repo id, revision) of a folder in the Hugging Face cache (``models--org--name/snapshots/SHA``)."""
    parts = path.resolve().parts
    for k in range(len(parts) - 2):
        if parts[k].startswith("models--") and parts[k + 1] == "snapshots":
            return parts[k][len("models--"):].replace("--", "/"), parts[k + 2]
    return None


def _base_model(recipe) -> dict[str, Any]:
    from llm2vec_lite.paths import resolve_model_path

    value = str(recipe.base_model)
    try:
        path = Path(resolve_model_path(value))
    except FileNotFoundError:
        path = None
    entry: dict[str, Any] = {}
    if path is None or not path.exists():
        entry["id"] = value
        if recipe.revision:
            entry["revision"] = recipe.revision
        return entry
    snapshot = _snapshot_id(path)
    if snapshot:
        entry["id"], entry["revision"] = snapshot
    if value.startswith("package:"):
        entry["package"] = value
    files = [path] if path.is_file() else sorted(
        p for p in path.iterdir() if p.suffix in (".safetensors", ".gguf") or p.name == "config.json"
    )
    if recipe.gguf_file and path.is_dir():
        files = [path / recipe.gguf_file]
    entry["files"] = [{"name": f.name, "sha256": file_sha256(f)} for f in files if f.is_file()]
    return entry


def _stages(recipe) -> list[dict[str, Any]]:
    out = []
    for i, stage in enumerate(recipe.stages):
        folder = Path(recipe.stage_dir(i))
        try:
            info = json.loads((folder / "stage.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = {}
        metrics = info.get("metrics", {})
        out.append({
            "stage": folder.name,
            "kind": stage.kind,
            "fingerprint": info.get("fingerprint", recipe.stage_fingerprint(i)),
            "steps": metrics.get("steps", stage.steps),
            "batch_size": stage.batch_size,
            "wall_time_s": info.get("wall_time_s"),
            "peak_rss_mib": metrics.get("peak_rss_mib"),
            "peak_gpu_mib": metrics.get("peak_gpu_mib"),
            "processes": metrics.get("processes"),
            "hardware": info.get("hardware"),
        })
    return out


def build_provenance(recipe, final: Path, outside: list[OutsidePath]) -> dict[str, Any]:
    """The provenance mapping of ``recipe``'s finished conversion in ``final``."""
    final = Path(final).resolve()
    recipe_folder = None
    project = recipe.base_dir.resolve().parent
    if recipe.source_path is not None and final.is_relative_to(project):
        recipe_folder = Path(os.path.relpath(recipe.base_dir.resolve(), final)).as_posix()
    return {
        "format": 1,
        "recipe": {
            "name": recipe.name,
            "fingerprint": recipe.fingerprint,
            "file": "recipe.yaml",
            # where relative paths of recipe.yaml resolve, from this folder (absent: outside the project)
            "recipe_folder": recipe_folder,
        },
        "base_model": _base_model(recipe),
        "stages": _stages(recipe),
        "data": _sources(recipe),
        "outside_project": [
            {"field": o.field, "shown": o.shown, "name": o.path.name,
             **({"sha256": file_sha256(o.path)} if o.path.is_file() else {})}
            for o in outside
        ],
        "dtype": recipe.dtype,
        "versions": _versions(),
        "machine": machine_info(),
    }


def data_mismatches(recipe, provenance: dict[str, Any]) -> list[str]:
    """Local data sources of ``recipe`` whose sha256 differs from ``provenance`` (or that it lacks)."""
    recorded = {(d.get("stage"), d.get("source")): d for d in provenance.get("data", [])}
    problems = []
    for i, stage in enumerate(recipe.stages):
        for j, src in enumerate(stage.sources()):
            if src.path is None or not Path(src.path).is_file():
                continue
            entry = recorded.get((i + 1, j))
            where = f"stages[{i}].data" + (f"[{j}]" if len(stage.sources()) > 1 else "")
            if entry is None or "sha256" not in entry:
                problems.append(f"{where}: {Path(src.path).name}: no sha256 recorded in provenance.json")
                continue
            digest = file_sha256(src.path)
            if digest != entry["sha256"]:
                problems.append(
                    f"{where}: {Path(src.path).name}: sha256 {digest[:12]}... differs from the "
                    f"{entry['sha256'][:12]}... the model was trained on"
                )
    return problems
