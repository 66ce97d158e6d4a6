"""Where a recipe comes from: a file, a shipped name, a URL, the hub, or a model folder it made.

:func:`fetch_recipe` turns what the user typed into the recipe's text and the folders its relative
paths resolve against:

- a local YAML file: its own folder (as always);
- a shipped recipe name (``llm2vec-lite recipe ls``): its folder, output under the current folder;
- ``https://...`` (or ``http://``): fetched with the standard library, at most
  :data:`MAX_RECIPE_BYTES`; relative paths resolve against the current folder;
- ``hf://ORG/REPO[@REVISION]/path/recipe.yaml``: a file of a hub model repository, through
  ``huggingface_hub.hf_hub_download``; paths as for a URL;
- a model folder (or its ``recipe.yaml``) with ``provenance.json``, as ``convert`` writes into
  ``final/``: the folder the recipe was run from, which provenance records relative to the model
  folder, when it exists here, else the current folder;
- a hub model id (``org/name``) that is neither a file nor a shipped recipe: its ``recipe.yaml``.

A fetched recipe is data, never code: it is parsed by the same ``yaml.safe_load`` as a local file
(no tags that construct objects), and a missing file or an unreachable server is a
:class:`~llm2vec_lite.errors.RecipeError` naming what was asked for.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm2vec_lite.errors import RecipeError
from llm2vec_lite.recipe.paths import _display_path, _locate

__all__ = ["MAX_RECIPE_BYTES", "RecipeText", "fetch_recipe"]

MAX_RECIPE_BYTES = 1 << 20  # a recipe is a page of YAML; anything near this is not one
_TIMEOUT_S = 30
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HF_URI = re.compile(r"^hf://(?P<repo>[^/@]+/[^/@]+)(?:@(?P<rev>[^/]+))?/(?P<file>.+)$")


@dataclass
class RecipeText:
    """A recipe's text and where its relative paths resolve.

    Attributes:
        text: the YAML text.
        label: how messages name the recipe (a path, URL or ``hf://`` reference).
        source_path: the file the recipe counts as (its folder is where relative paths resolve; for
            a URL or hub recipe a file of that name in ``base``).
        output_under_cwd: a relative ``output_dir`` goes under the current folder, not the recipe's.
        provenance: the ``provenance.json`` next to a recipe from a model folder, else None.
    """

    text: str
    label: str
    source_path: Path
    output_under_cwd: bool = False
    provenance: dict[str, Any] | None = None


def _read_local(file: Path, label: str) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except OSError as e:
        raise RecipeError(f"{label}: cannot read recipe: {e}") from None


def _checked_size(data: bytes, label: str) -> str:
    if len(data) > MAX_RECIPE_BYTES:
        raise RecipeError(f"{label}: larger than {MAX_RECIPE_BYTES // 1024} KiB; not a recipe")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise RecipeError(f"{label}: not UTF-8 text; not a recipe") from None


def _fetch_url(url: str) -> RecipeText:
    request = urllib.request.Request(url, headers={"User-Agent": "llm2vec-lite"})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:  # noqa: S310 (http/https only)
            data = response.read(MAX_RECIPE_BYTES + 1)
    except urllib.error.HTTPError as e:
        raise RecipeError(f"{url}: the server answered {e.code} {e.reason}; no recipe there") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise RecipeError(f"{url}: cannot reach the server ({reason}); check the address and the network") from None
    name = Path(urllib.request.url2pathname(url.split("?", 1)[0].rstrip("/"))).name or "recipe.yaml"
    return RecipeText(_checked_size(data, url), url, Path.cwd() / name, output_under_cwd=True)


def _hub_file(repo_id: str, filename: str, revision: str | None, label: str, *, required: bool = True) -> Path | None:
    """A file of a hub model repo, downloaded (or from the cache); None when optional and absent."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        HFValidationError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision))
    except RemoteEntryNotFoundError:
        if not required:
            return None
        raise RecipeError(f"{label}: the hub repo {repo_id} has no file {filename}") from None
    except RevisionNotFoundError:
        raise RecipeError(f"{label}: the hub repo {repo_id} has no revision {revision}") from None
    except RepositoryNotFoundError:
        raise RecipeError(f"{label}: no hub model repo {repo_id} (or it is private or gated: log in first)") from None
    except HFValidationError as e:
        raise RecipeError(f"{label}: not a hub repo id: {e}") from None
    except (LocalEntryNotFoundError, OSError) as e:  # offline and not cached, a connection error
        if not required:
            return None
        raise RecipeError(
            f"{label}: cannot fetch {filename} from the hub: {type(e).__name__}: {e}; check the network"
        ) from None


def _fetch_hub(repo_id: str, filename: str, revision: str | None, label: str) -> RecipeText:
    path = _hub_file(repo_id, filename, revision, label)
    assert path is not None
    text = _checked_size(path.read_bytes(), label)
    provenance = None
    if Path(filename).name == "recipe.yaml":
        sibling = str(Path(filename).with_name("provenance.json"))
        found = _hub_file(repo_id, sibling, revision, label, required=False)
        provenance = _read_provenance(found) if found else None
    return RecipeText(text, label, Path.cwd() / Path(filename).name, output_under_cwd=True, provenance=provenance)


def _read_provenance(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _from_model_folder(folder: Path, file: Path) -> RecipeText:
    """A recipe.yaml written by convert: relative paths resolve where the original recipe was."""
    provenance = _read_provenance(folder / "provenance.json")
    label = _display_path(file)
    recorded = ((provenance or {}).get("recipe") or {}).get("recipe_folder")
    base = (folder / recorded).resolve() if isinstance(recorded, str) else None
    if base is None or not base.is_dir():
        base = Path.cwd()
    return RecipeText(_read_local(file, label), label, base / file.name, provenance=provenance)


def fetch_recipe(spec: str | Path) -> RecipeText:
    """The recipe ``spec`` names (see the module docstring for every form).

    Raises:
        RecipeError: If nothing is found: a missing file, an unknown shipped name, an unreachable
            URL, a hub repo or file that does not exist, or a download over the size limit.
    """
    text = str(spec)
    if text.startswith(("https://", "http://")):
        return _fetch_url(text)
    if text.startswith("hf://"):
        m = _HF_URI.match(text)
        if not m:
            raise RecipeError(f"{text}: a hub recipe is hf://ORG/REPO/path/recipe.yaml (optionally ORG/REPO@REVISION)")
        return _fetch_hub(m["repo"], m["file"], m["rev"], text)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "recipe.yaml").is_file():
            raise RecipeError(f"{text}: a folder without recipe.yaml; give a recipe file or a model folder convert wrote")
        return _from_model_folder(path, path / "recipe.yaml")
    if path.is_file():
        if (path.parent / "provenance.json").is_file():
            return _from_model_folder(path.parent, path)
        file = path.resolve()
        return RecipeText(_read_local(file, _display_path(file)), _display_path(file), file)
    if _HUB_ID.match(text) and not text.endswith((".yaml", ".yml")) and not os.path.exists(text):
        return _fetch_hub(text, "recipe.yaml", None, f"{text} (no such file or shipped recipe; as a hub model id)")
    file, shipped = _locate(spec)
    label = _display_path(file)
    return RecipeText(_read_local(file, label), label, file, output_under_cwd=shipped)
