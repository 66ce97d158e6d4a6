"""Publish a model folder to the Hugging Face hub in one commit (``llm2vec-lite push``).

The order matters: without the means to upload (``HF_HUB_OFFLINE``, no token, the hub unreachable)
the push stops before the folder is read, so a half-prepared upload never starts. The repo is
created when missing, every file goes in one commit whose message names the recipe and its
fingerprint (from ``provenance.json``), and the card's usage examples name the repo instead of
``path/to/this/folder``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from llm2vec_lite.errors import Llm2VecError, ModelError

__all__ = ["PushPlan", "check_hub_access", "plan_push", "push"]


@dataclass
class PushPlan:
    """What a push uploads: ``(path in the repo, local file)`` pairs and the commit message."""

    files: list[tuple[str, Path]]
    message: str
    warnings: list[str]

    def describe(self, repo_id: str, revision: str | None) -> str:
        total = sum(p.stat().st_size for _, p in self.files)
        lines = [f"would upload {len(self.files)} files ({total / 2**20:.1f} MiB) to {repo_id}"
                 + (f" (branch {revision})" if revision else ""),
                 f"commit message: {self.message}"]
        lines += [f"  {name}  {path.stat().st_size:,} bytes" for name, path in self.files]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def check_hub_access() -> str:
    """The token to push with; raises before anything else happens when there is no way to push.

    Raises:
        Llm2VecError: If ``HF_HUB_OFFLINE`` is set, no token is found (``HF_TOKEN`` or
            ``hf auth login``), or the hub does not answer with the token.
    """
    from huggingface_hub import constants, get_token

    if constants.HF_HUB_OFFLINE:
        raise Llm2VecError("cannot push: HF_HUB_OFFLINE is set (no network); unset it on a machine that reaches the hub")
    token = get_token()
    if not token:
        raise Llm2VecError(
            "cannot push: no Hugging Face token; log in (hf auth login) or set HF_TOKEN to a token with write access "
            "(--dry-run lists the files without one)"
        )
    from huggingface_hub import HfApi

    try:
        HfApi(token=token).whoami()
    except Exception as e:  # noqa: BLE001 (connection errors, 401: all mean "cannot push from here")
        raise Llm2VecError(f"cannot push: the hub did not accept the token or cannot be reached ({type(e).__name__}: {e})") from None
    return token


def _machine_paths(files: list[tuple[str, Path]]) -> list[str]:
    """Text files naming the home folder or the folder's own parent (the machine's layout)."""
    candidates = [Path.home(), Path(files[0][1]).resolve().parent.parent] if files else []
    needles = {str(p) for p in candidates if len(p.parts) > 2}  # not "/" or "/tmp": too common to mean anything
    found = []
    for name, path in files:
        if path.suffix not in (".json", ".yaml", ".yml", ".md", ".txt", ".jsonl") or path.stat().st_size > 2**22:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if any(n in text for n in needles):
            found.append(name)
    return found


def plan_push(folder: str | Path) -> PushPlan:
    """The files of ``folder`` to upload (hidden files left out) and the commit message.

    Raises:
        ModelError: If ``folder`` is not an encoder folder (no ``config.json``).
    """
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ModelError(f"{folder}: not a model folder (no config.json); push the final/ folder convert wrote")
    files = sorted(
        (p.relative_to(folder).as_posix(), p)
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and not p.name.endswith(".partial")
    )
    try:
        provenance = json.loads((folder / "provenance.json").read_text(encoding="utf-8"))
        recipe = provenance["recipe"]
        message = f"llm2vec-lite: {recipe['name']} (recipe fingerprint {recipe['fingerprint']})"
    except (OSError, ValueError, KeyError, TypeError):
        message = f"llm2vec-lite: {folder.resolve().name} (no provenance.json)"
    warnings = []
    if not (folder / "recipe.yaml").is_file():
        warnings.append("no recipe.yaml: others cannot re-run this conversion")
    machine = _machine_paths(files)
    if machine:
        warnings.append(f"{', '.join(machine)} name folders of this machine; re-convert to drop them")
    return PushPlan(files, message, warnings)


def push(folder: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None,
         token: str | None = None) -> str:
    """Upload ``folder`` to ``repo_id`` in one commit; returns the commit URL.

    Call :func:`check_hub_access` first (``token``); the CLI does, before reading the folder.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    from llm2vec_lite.sharing.card import REPO_PLACEHOLDER

    plan = plan_push(folder)
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    if revision:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    operations = []
    for name, path in plan.files:
        content: str | bytes = os.fspath(path)
        if name == "README.md":
            content = path.read_text(encoding="utf-8").replace(REPO_PLACEHOLDER, repo_id).encode("utf-8")
        operations.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=content))
    info = api.create_commit(repo_id, operations=operations, commit_message=plan.message, revision=revision)
    return str(getattr(info, "commit_url", info))
