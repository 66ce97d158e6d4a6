"""The two steps of ``llm2vec-lite synth``: brainstorm tasks, then write examples for each task.

Step 1 (tasks): for every family with a brainstorm template, the generator lists task
descriptions ("Given a question about a disease, retrieve articles that explain its symptoms.");
lines are parsed, checked, and exact and near duplicates removed until the family has
``tasks`` of them. The list is saved to ``tasks_file`` (JSONL, ``{"family", "task"}`` a line) and
reused, as edited by hand, on later runs. Families with a fixed task (STS) skip this step.

Step 2 (examples): every (task, k) pair is one attempt with its own id
(``retrieval/0003/01``) and constraints sampled from a generator seeded by the config seed and
that id. Attempts are batched in a fixed order; with ``format: fields`` each batch takes three
generator calls (query, then positive given the query, then negative), with ``format: json``
one. Each attempt is parsed and filtered (:mod:`llm2vec_lite.synth.filters`); kept examples go to
``output`` and dropped ones, with their reason and raw answers, to ``OUTPUT.rejects.jsonl``.

Resuming: both files are appended to and flushed per batch. A rerun reads the ids already in
them, cuts a half-written last line, and regenerates only batches with ids still missing,
writing only those ids, so nothing is duplicated; with a deterministic backend (transformers,
vLLM) the finished file equals that of an uninterrupted run. ``OUTPUT.meta.json`` ties the files
to the config's fingerprint and the task list, so a changed config never appends to them.

Output rows: ``id, task, instruction, query, positive, negative, family, provenance`` with
``instruction = instruction_format.format(task=task)`` (for the query side only, as in E5) and
``provenance = {generator, prompts, template_sha, format, sampling, seed, constraints}``.

References: Wang et al. 2023, "Improving Text Embeddings with Large Language Models",
arXiv:2401.00368.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm2vec_lite.errors import SynthError
from llm2vec_lite.synth.backends import Backend, make_backend
from llm2vec_lite.synth.config import SynthConfig
from llm2vec_lite.synth.filters import (
    Decontaminator,
    NearDuplicateIndex,
    check_example,
    clean_field,
    is_search_task,
    looks_like_language,
    parse_json_example,
    parse_task_list,
    template_echo_checker,
)
from llm2vec_lite.synth.prompts import EXAMPLE_FIELDS, Family, PromptSet

logger = logging.getLogger(__name__)

__all__ = ["SynthSummary", "brainstorm_tasks", "run_synth"]

# Tasks kept from one brainstorm answer. A small model lists near-variants of its first idea
# ("History of ancient civilizations of Africa / of Asia / ..."); taking the first few of many
# answers, each with its own sampled domain, gives a more varied task list.
_TASKS_PER_ANSWER = 2


@dataclass
class SynthSummary:
    """Counts over every attempt in the output files (all runs), and this run's speed."""

    asked: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    tasks: dict[str, int] = field(default_factory=dict)
    run_attempts: int = 0
    run_kept: int = 0
    seconds: float = 0.0

    @property
    def parsed(self) -> int:
        """Attempts whose answer gave every field (kept or dropped by a later check)."""
        return self.asked - self.dropped.get("unparseable", 0)

    @property
    def examples_per_s(self) -> float:
        """Kept examples per second of this run's generation."""
        return self.run_kept / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "asked": self.asked,
            "parsed": self.parsed,
            "kept": self.kept,
            "kept_share": round(self.kept / self.asked, 4) if self.asked else 0.0,
            "dropped": dict(sorted(self.dropped.items())),
            "tasks": self.tasks,
            "this_run": {
                "attempts": self.run_attempts,
                "kept": self.run_kept,
                "seconds": round(self.seconds, 2),
                "examples_per_s": round(self.examples_per_s, 4),
            },
        }

    def format(self) -> str:
        drops = ", ".join(f"{k} {v}" for k, v in sorted(self.dropped.items())) or "none"
        share = f"{100 * self.kept / self.asked:.1f}%" if self.asked else "-"
        return (
            f"asked {self.asked}, parsed {self.parsed}, kept {self.kept} ({share}); dropped: {drops}\n"
            f"this run: {self.run_attempts} attempts, {self.run_kept} kept in {self.seconds:.1f} s "
            f"({60 * self.examples_per_s:.1f} examples/min)"
        )


@dataclass
class _Attempt:
    id: str
    family: Family
    task: str
    constraints: dict[str, str]


def _seed(*parts: Any) -> int:
    """A 31-bit seed from any parts, stable across runs and Python versions (unlike hash())."""
    text = "/".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "little") & 0x7FFFFFFF


def _lead_label(template: Any) -> list[str]:
    """The label a template ends with ("Query:" -> ["query"]): the model may repeat it."""
    lines = [line.strip() for line in template.template.strip().split("\n") if line.strip()]
    last = lines[-1] if lines else ""
    return [last[:-1].strip().lower()] if last.endswith(":") and len(last) < 40 else []


# ------------------------------------------------------------------------------------------
# Step 1: tasks
# ------------------------------------------------------------------------------------------


def brainstorm_tasks(
    cfg: SynthConfig, family: Family, count: int, backend: Backend
) -> list[str]:
    """Ask the generator for ``count`` distinct task descriptions of ``family``.

    Raises:
        SynthError: If ``filters.max_failures_in_a_row`` answers in a row add no new task and
            none was found (with some found, the family continues with fewer and a warning).
    """
    assert family.brainstorm is not None
    index = NearDuplicateIndex(cfg.filters.near_duplicate)
    echo = template_echo_checker([family.brainstorm.template])
    found: list[str] = []
    attempt, dry, last = 0, 0, ""
    size = cfg.generator.batch_size
    while len(found) < count and dry < cfg.filters.max_failures_in_a_row:
        prompts = []
        for i in range(size):
            rng = random.Random(_seed(cfg.seed, "brainstorm", family.name, attempt + i))
            prompts.append(family.brainstorm.substitute(n=min(count, 10), **family.sample_brainstorm(rng)))
        answers = backend.generate(prompts, seed=_seed(cfg.seed, "brainstorm", family.name, attempt))
        new = 0
        for answer in answers:
            last = answer
            taken = 0
            for task in parse_task_list(answer):
                lang = cfg.filters.language
                if (lang and not looks_like_language(task, lang)) or index.check(task) is not None:
                    continue
                if echo.contaminated(task) or not is_search_task(task):
                    continue
                index.add(task)
                found.append(task)
                new += 1
                taken += 1
                if taken == _TASKS_PER_ANSWER:
                    break
        dry = 0 if new else dry + len(prompts)
        attempt += len(prompts)
    if not found:
        raise SynthError(
            f"brainstorm of family {family.name!r}: no usable task in {attempt} answers (last: {last[:300]!r}). "
            f"Check generator.model and generator.chat, or write tasks by hand in {cfg.tasks_path} "
            '(one {"family": ..., "task": ...} a line)'
        )
    if len(found) < count:
        logger.warning("family %s: only %d of %d tasks found; continuing with those", family.name, len(found), count)
    return found[:count]


def _read_tasks(path: Path) -> dict[str, list[str]]:
    tasks: dict[str, list[str]] = {}
    for n, row in enumerate(_read_jsonl(path), 1):
        if not isinstance(row, dict) or not isinstance(row.get("family"), str) or not isinstance(row.get("task"), str):
            raise SynthError(f'{path}: row {n}: expected {{"family": ..., "task": ...}}, got {str(row)[:100]}')
        if row["task"].strip():
            tasks.setdefault(row["family"], []).append(row["task"].strip())
    return tasks


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _tasks_step(cfg: SynthConfig, prompts: PromptSet, backend: Backend) -> dict[str, list[str]]:
    path = cfg.tasks_path
    saved = _read_tasks(path) if path.is_file() else {}
    tasks: dict[str, list[str]] = {}
    changed = False
    for settings in cfg.families:
        fam = prompts.families[settings.name]
        if fam.task is not None:
            tasks[fam.name] = [fam.task]
        elif fam.name in saved:
            tasks[fam.name] = saved[fam.name]
        else:
            logger.info("brainstorming %d %s tasks", settings.tasks, fam.name)
            tasks[fam.name] = brainstorm_tasks(cfg, fam, settings.tasks, backend)
            saved[fam.name] = tasks[fam.name]
            changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"family": f, "task": t}, ensure_ascii=False) for f, ts in saved.items() for t in ts]
        _write_atomic(path, "\n".join(lines) + "\n")
        logger.info("task list written to %s (edit it and rerun to use your tasks)", path)
    return tasks


# ------------------------------------------------------------------------------------------
# Step 2: examples
# ------------------------------------------------------------------------------------------


def _attempts(cfg: SynthConfig, prompts: PromptSet, tasks: dict[str, list[str]]) -> list[_Attempt]:
    out = []
    for settings in cfg.families:
        fam = prompts.families[settings.name]
        for ti, task in enumerate(tasks[fam.name]):
            for k in range(settings.examples_per_task):
                aid = f"{fam.name}/{ti:04d}/{k:03d}"
                rng = random.Random(_seed(cfg.seed, aid))
                out.append(_Attempt(aid, fam, task, fam.sample_constraints(rng)))
    return out


def _generate_batch(
    cfg: SynthConfig, backend: Backend, batch: list[_Attempt], batch_index: int
) -> list[tuple[dict[str, str] | None, dict[str, str]]]:
    """(parsed example or None, raw answers) for each attempt of the batch, in order."""
    if cfg.format == "json":
        texts = [a.family.json.substitute(task=a.task, **a.constraints) for a in batch]
        answers = backend.generate(texts, seed=_seed(cfg.seed, "examples", batch_index, "json"))
        return [(parse_json_example(ans, EXAMPLE_FIELDS), {"json": ans}) for ans in answers]
    parsed: list[dict[str, str]] = [{} for _ in batch]
    raw: list[dict[str, str]] = [{} for _ in batch]
    alive = list(range(len(batch)))
    for name in EXAMPLE_FIELDS:
        if not alive:
            break
        texts = [
            batch[i].family.fields[name].substitute(task=batch[i].task, **parsed[i], **batch[i].constraints)
            for i in alive
        ]
        answers = backend.generate(
            texts, seed=_seed(cfg.seed, "examples", batch_index, name), stop_at_newline=True
        )
        still = []
        for i, answer in zip(alive, answers, strict=True):
            raw[i][name] = answer
            text = clean_field(answer, labels=_lead_label(batch[i].family.fields[name]))
            if text:
                parsed[i][name] = text
                still.append(i)
        alive = still
    return [(p if len(p) == len(EXAMPLE_FIELDS) else None, r) for p, r in zip(parsed, raw, strict=True)]


def _repair_tail(path: Path) -> None:
    """Cut a half-written last line (a kill during a write) so the file stays valid JSONL."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb+") as f:
        data = f.read()
        keep = len(data) if data.endswith(b"\n") else data.rfind(b"\n") + 1
        if keep < len(data):
            logger.warning("%s: cutting a half-written last line (%d bytes)", path, len(data) - keep)
            f.truncate(keep)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    raise SynthError(f"{path}: line {n} is not JSON; was the file edited by hand?") from None
    return rows


def _check_meta(cfg: SynthConfig, tasks: dict[str, list[str]] | None) -> dict[str, Any]:
    """Refuse to append to an output written with another config (or, given ``tasks``, task list)."""
    meta: dict[str, Any] = {"fingerprint": cfg.fingerprint}
    if tasks is not None:
        meta["tasks_sha"] = hashlib.sha256(json.dumps(tasks, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    meta_path = cfg.sidecar("meta.json")
    has_output = any(p.is_file() and p.stat().st_size for p in (cfg.output_path, cfg.sidecar("rejects.jsonl")))
    if has_output:
        try:
            old = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            old = None
        if not isinstance(old, dict) or {k: old.get(k) for k in meta} != meta:
            same_config = isinstance(old, dict) and old.get("fingerprint") == meta["fingerprint"]
            what = "another task list" if same_config else "another config"
            raise SynthError(
                f"{cfg.output_path} was written with {what} (see {meta_path}); appending would mix "
                "them. Choose another output, or delete the output files to start over."
            )
    return meta


def run_synth(
    cfg: SynthConfig, *, backend: Backend | None = None, tasks_only: bool = False, progress: bool = True
) -> SynthSummary:
    """Run both steps (or step 1 only) and return the summary; also written to ``OUTPUT.summary.json``.

    Args:
        cfg: a validated config (:func:`~llm2vec_lite.synth.config.load_synth_config`).
        backend: a started or unstarted backend to use instead of the one the config names.
        tasks_only: stop after writing the task list (to edit it by hand).
        progress: show a tqdm bar.

    Raises:
        SynthError: If the endpoint is unreachable, the model loads but gives nothing parseable
            ``filters.max_failures_in_a_row`` times in a row, or the output belongs to another config.
        DataError: If an exclude file cannot be read.
    """
    prompts = PromptSet.load(cfg.prompts)
    decontaminator = Decontaminator.from_files(cfg.exclude, n=cfg.filters.ngram) if cfg.exclude else None
    if not tasks_only:
        _check_meta(cfg, None)  # a changed config fails here, before the model loads
    backend = backend or make_backend(cfg.generator)
    backend.start()
    try:
        tasks = _tasks_step(cfg, prompts, backend)
        summary = SynthSummary(tasks={k: len(v) for k, v in tasks.items()})
        if tasks_only:
            return summary
        _examples_step(cfg, prompts, backend, tasks, decontaminator, summary, progress)
    finally:
        backend.close()
    if cfg.parquet:
        _write_parquet(cfg.output_path, cfg.output_path.with_suffix(".parquet"))
    _write_atomic(cfg.sidecar("summary.json"), json.dumps(summary.as_dict(), indent=2) + "\n")
    return summary


def _examples_step(
    cfg: SynthConfig,
    prompts: PromptSet,
    backend: Backend,
    tasks: dict[str, list[str]],
    decontaminator: Decontaminator | None,
    summary: SynthSummary,
    progress: bool,
) -> None:
    from tqdm.auto import tqdm

    out_path, rej_path = cfg.output_path, cfg.sidecar("rejects.jsonl")
    meta = _check_meta(cfg, tasks)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(cfg.sidecar("meta.json"), json.dumps(meta, indent=2) + "\n")
    for p in (out_path, rej_path):
        _repair_tail(p)
    kept_rows, rejected = _read_jsonl(out_path), _read_jsonl(rej_path)
    index = NearDuplicateIndex(cfg.filters.near_duplicate)
    for row in kept_rows:
        index.add(row["query"] + "\n" + row["positive"])
    done = {row["id"] for row in kept_rows} | {row["id"] for row in rejected}
    summary.kept = len(kept_rows)
    summary.dropped.update(row["reason"] for row in rejected)
    summary.asked = len(done)

    attempts = _attempts(cfg, prompts, tasks)
    size = cfg.generator.batch_size
    s = cfg.generator
    sampling = {"temperature": s.temperature, "top_p": s.top_p, "max_new_tokens": s.max_new_tokens, "chat": s.chat}
    f_opts = cfg.filters
    echo = {
        name: template_echo_checker(
            t.template for t in [fam.json, *fam.fields.values()] if t is not None
        )
        for name, fam in prompts.families.items()
    }
    failures, start = 0, time.perf_counter()
    bar = tqdm(total=len(attempts), initial=len(done), desc="synth", unit="ex", disable=not progress, dynamic_ncols=True)
    with out_path.open("a", encoding="utf-8") as out, rej_path.open("a", encoding="utf-8") as rej:
        for b in range(0, len(attempts), size):
            batch = attempts[b : b + size]
            if all(a.id in done for a in batch):
                continue
            results = _generate_batch(cfg, backend, batch, b // size)
            for attempt, (example, raw) in zip(batch, results, strict=True):
                if attempt.id in done:
                    continue  # written before a kill; this batch was regenerated for the others
                reason = None
                if example is None:
                    reason = "unparseable"
                else:
                    reason = check_example(
                        example, min_words=f_opts.min_words, max_words=f_opts.max_words, language=f_opts.language,
                        constraints=attempt.constraints,
                    )
                if (
                    reason is None
                    and decontaminator is not None
                    and any(decontaminator.contaminated(example[k]) for k in EXAMPLE_FIELDS)
                ):
                    reason = "contaminated"
                if reason is None and any(
                    echo[attempt.family.name].contaminated(example[k]) for k in EXAMPLE_FIELDS
                ):
                    reason = "echo"
                if reason is None:
                    reason = index.check(example["query"] + "\n" + example["positive"])
                failures = failures + 1 if reason == "unparseable" else 0
                base = {"id": attempt.id, "family": attempt.family.name, "task": attempt.task}
                if reason is None:
                    index.add(example["query"] + "\n" + example["positive"])
                    row = {
                        **base,
                        "instruction": cfg.instruction_format.format(task=attempt.task),
                        **example,
                        "provenance": {
                            "generator": backend.describe(),
                            "prompts": prompts.version,
                            "template_sha": attempt.family.sha,
                            "format": cfg.format,
                            "sampling": sampling,
                            "seed": cfg.seed,
                            "constraints": attempt.constraints,
                        },
                    }
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
                    summary.kept += 1
                    summary.run_kept += 1
                else:
                    rej.write(json.dumps({**base, "reason": reason, "parsed": example, "raw": raw}, ensure_ascii=False) + "\n")
                    summary.dropped[reason] += 1
                summary.asked += 1
                summary.run_attempts += 1
                done.add(attempt.id)
                bar.update(1)
            for f in (out, rej):  # one batch at a time reaches the disk whole
                f.flush()
                os.fsync(f.fileno())
            summary.seconds = time.perf_counter() - start
            bar.set_postfix(kept=summary.kept, dropped=sum(summary.dropped.values()))
            if failures >= f_opts.max_failures_in_a_row:
                bar.close()
                last = next(iter(raw.values()), "") if raw else ""
                raise SynthError(
                    f"the generator gave nothing parseable for {failures} attempts in a row "
                    f"(filters.max_failures_in_a_row = {f_opts.max_failures_in_a_row}); last answer: {last[:300]!r}. "
                    "Check generator.model, generator.chat (false for base models) and format "
                    "(fields for small models); kept examples so far stay in the output."
                )
    bar.close()
    summary.seconds = time.perf_counter() - start


def _write_parquet(jsonl: Path, target: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _read_jsonl(jsonl)
    for row in rows:  # constraint keys differ by family; a JSON string keeps one schema
        row["provenance"] = json.dumps(row["provenance"], ensure_ascii=False)
    pq.write_table(pa.Table.from_pylist(rows), target)
