"""Prompt sets of ``llm2vec-lite synth``: versioned template folders shipped as package data.

A prompt set is a folder with a ``manifest.yaml`` naming, per task family, the templates
(``string.Template`` text files with ``$name`` placeholders) and the constraint lists sampled for
each example. ``v1`` ships inside the package; a config may point ``prompts:`` at a folder of
its own with the same layout. Outputs record the set's version and a hash of the family's
templates, so examples made with edited templates are told apart.

Usage::

    prompts = PromptSet.load("v1")
    fam = prompts.families["retrieval"]
    values = fam.sample_constraints(random.Random(0))
    text = fam.fields["query"].substitute(task="Given a ...", **values)

References: Wang et al. 2023, arXiv:2401.00368 (sampled constraints per example: query length,
clarity, document length, difficulty; short-long / long-short / short-short / long-long matching).
"""

from __future__ import annotations

import hashlib
import random
import string
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from llm2vec_lite.errors import SynthError

__all__ = ["EXAMPLE_FIELDS", "Family", "PromptSet", "prompt_set_problems", "shipped_prompt_sets"]

EXAMPLE_FIELDS = ("query", "positive", "negative")
# Placeholders every template may use besides its family's constraints.
_BUILTIN_NAMES = {"task", "n", "query", "positive", "query_length", "document_length"}


@dataclass
class Family:
    """One task family of a prompt set: its templates and constraint lists."""

    name: str
    description: str = ""
    task: str | None = None  # a fixed task (no brainstorm), e.g. STS
    brainstorm: string.Template | None = None
    json: string.Template | None = None
    fields: dict[str, string.Template] = field(default_factory=dict)
    constraints: dict[str, list[str]] = field(default_factory=dict)
    brainstorm_constraints: dict[str, list[str]] = field(default_factory=dict)
    lengths: dict[str, list[str]] = field(default_factory=dict)
    sha: str = ""

    def sample_constraints(self, rng: random.Random) -> dict[str, str]:
        """One value per constraint list; ``match: short-long`` also sets query/document lengths."""
        out = {name: rng.choice(values) for name, values in self.constraints.items()}
        match = out.get("match")
        if match and self.lengths:
            q_kind, _, d_kind = match.partition("-")
            out["query_length"] = rng.choice(self.lengths[q_kind])
            out["document_length"] = rng.choice(self.lengths[d_kind])
        return out

    def sample_brainstorm(self, rng: random.Random) -> dict[str, str]:
        """Values for the brainstorm template (e.g. a domain, so repeated calls differ)."""
        return {name: rng.choice(values) for name, values in self.brainstorm_constraints.items()}


@dataclass
class PromptSet:
    """A loaded prompt set: its version label and families."""

    version: str
    folder: Path
    families: dict[str, Family]

    @classmethod
    def load(cls, ref: str | Path) -> PromptSet:
        """Load a shipped set by version (``"v1"``) or a folder holding a ``manifest.yaml``.

        Raises:
            SynthError: If the set does not exist, or its manifest or templates are malformed.
        """
        folder = Path(ref).expanduser()
        if not folder.is_dir():
            shipped = shipped_prompt_sets()
            if str(ref) not in shipped:
                raise SynthError(
                    f"no prompt set {str(ref)!r}: give a shipped version ({', '.join(shipped)}) or a "
                    "folder with a manifest.yaml"
                )
            folder = _shipped_root() / str(ref)
        manifest = folder / "manifest.yaml"
        try:
            raw = yaml.safe_load(manifest.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise SynthError(f"{manifest}: cannot read the prompt manifest: {e}") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("families"), dict) or not raw["families"]:
            raise SynthError(f"{manifest}: needs 'version' and a non-empty 'families' mapping")
        families = {
            name: _load_family(folder, manifest, name, spec) for name, spec in raw["families"].items()
        }
        return cls(version=str(raw.get("version", folder.name)), folder=folder, families=families)


def _load_family(folder: Path, manifest: Path, name: str, spec: Any) -> Family:
    where = f"{manifest}: families.{name}"
    if not isinstance(spec, dict):
        raise SynthError(f"{where}: must be a mapping (templates and constraints)")
    known = {"description", "task", "brainstorm", "json", "fields", "constraints", "brainstorm_constraints", "lengths"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise SynthError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(sorted(known))}")
    texts: list[str] = []

    def template(rel: Any, key: str) -> string.Template | None:
        if rel is None:
            return None
        path = folder / str(rel)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            raise SynthError(f"{where}.{key} = {rel!r}: template file not found in {folder}") from None
        texts.append(text)
        return string.Template(text)

    def lists(key: str) -> dict[str, list[str]]:
        value = spec.get(key) or {}
        if not isinstance(value, dict) or not all(isinstance(v, list) and v for v in value.values()):
            raise SynthError(f"{where}.{key}: must map names to non-empty lists of strings")
        return {k: [str(x) for x in v] for k, v in value.items()}

    fields_spec = spec.get("fields") or {}
    if not isinstance(fields_spec, dict) or (fields_spec and set(fields_spec) != set(EXAMPLE_FIELDS)):
        raise SynthError(f"{where}.fields: must name one template for each of {', '.join(EXAMPLE_FIELDS)}")
    fam = Family(
        name=name,
        description=str(spec.get("description", "")),
        task=spec.get("task"),
        brainstorm=template(spec.get("brainstorm"), "brainstorm"),
        json=template(spec.get("json"), "json"),
        fields={k: template(v, f"fields.{k}") for k, v in fields_spec.items()},
        constraints=lists("constraints"),
        brainstorm_constraints=lists("brainstorm_constraints"),
        lengths=lists("lengths"),
    )
    if (fam.task is None) == (fam.brainstorm is None):
        raise SynthError(f"{where}: give exactly one of 'task' (a fixed task) or 'brainstorm' (a template)")
    if "match" in fam.constraints:
        kinds = {part for m in fam.constraints["match"] for part in m.split("-")}
        if not kinds <= set(fam.lengths):
            raise SynthError(f"{where}.lengths: must define {sorted(kinds)} for the match constraint")
    allowed = _BUILTIN_NAMES | set(fam.constraints) | set(fam.brainstorm_constraints)
    for tpl in [fam.brainstorm, fam.json, *fam.fields.values()]:
        if tpl is None:
            continue
        used = {m.group("named") or m.group("braced") for m in tpl.pattern.finditer(tpl.template)} - {None}
        bad = sorted(used - allowed)
        if bad:
            raise SynthError(f"{where}: template uses unknown placeholder(s) {bad}; known: {sorted(allowed)}")
    fam.sha = hashlib.sha256("\0".join(texts).encode("utf-8")).hexdigest()[:12]
    return fam


def prompt_set_problems(prompts: PromptSet, names: list[str], fmt: str) -> list[str]:
    """Config problems with this set: unknown family names, a family without templates for ``fmt``."""
    problems = []
    for i, name in enumerate(names):
        fam = prompts.families.get(name)
        if fam is None:
            problems.append(
                f"families[{i}].name = {name!r}: unknown family; prompt set {prompts.version} has "
                f"{', '.join(prompts.families)}"
            )
        elif fmt == "json" and fam.json is None:
            problems.append(f"families[{i}].name = {name!r}: prompt set {prompts.version} has no json template for it; use format: fields")
        elif fmt == "fields" and not fam.fields:
            problems.append(f"families[{i}].name = {name!r}: prompt set {prompts.version} has no field templates for it; use format: json")
    return problems


def _shipped_root() -> Path:
    return Path(str(resources.files("llm2vec_lite.synth.prompts")))


def shipped_prompt_sets() -> list[str]:
    """Versions of the prompt sets shipped in the package (folders with a manifest.yaml)."""
    return sorted(p.name for p in _shipped_root().iterdir() if (p / "manifest.yaml").is_file())
