"""E5-style synthetic training data: an LLM brainstorms tasks, then writes (query, positive,
hard negative) examples for each, with the task as the query's instruction.

Usage::

    from llm2vec_lite.synth import load_synth_config, run_synth
    summary = run_synth(load_synth_config("synth.yaml"))
    print(summary.format())

or ``llm2vec-lite synth synth.yaml``. Rooms: :mod:`.config` (the YAML schema), :mod:`.prompts`
(versioned templates, package data), :mod:`.backends` (transformers, OpenAI-compatible HTTP,
vLLM), :mod:`.filters` (parsing, checks, dedupe, decontamination), :mod:`.run` (the two steps,
resumable JSONL). See docs/synth.md.

References: Wang et al. 2023, "Improving Text Embeddings with Large Language Models",
arXiv:2401.00368.
"""

from __future__ import annotations

from llm2vec_lite.synth.config import SynthConfig, load_synth_config
from llm2vec_lite.synth.run import SynthSummary, run_synth

__all__ = ["SynthConfig", "SynthSummary", "load_synth_config", "run_synth"]
