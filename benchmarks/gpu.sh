#!/usr/bin/env bash
# GPU checks in one command, under one time limit (default 900 s), from the repository root:
#
#   bash benchmarks/gpu.sh                          # env, flash-attn, verify, training tokens/s + MFU
#   bash benchmarks/gpu.sh --time-limit 600 --batch 32 --seq-len 256   # extra flags go to `gpu_bench.py train`
#
# 1. env: torch/CUDA, device name, its bf16 peak; stops here (exit 0, "SKIP") without a CUDA device.
# 2. flash-attn: kept if it imports; else FLASH_ATTN_WHEEL (a wheel file or URL) if set; else
#    `pip install --only-binary=:all: flash-attn` (a prebuilt wheel or nothing: never a source build,
#    which takes an hour and a CUDA toolkit). Without it the flash rows below say SKIP.
# 3. verify: llm2vec-lite's `patches verify` checks on the SmolLM2-135M GGUF, bf16, flash_attention_2, on CUDA.
# 4. train: training steps of a Qwen2-0.5B-shaped model, sdpa and flash_attention_2: tokens/s and MFU.
#
# PYTHON picks the interpreter (default: .venv/bin/python if present, else python3). Each step gets
# what is left of the time limit; the exit code is the first failing step's (124: out of time).
set -u
cd "$(dirname "$0")/.."

limit=900
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --time-limit) limit="$2"; shift 2 ;;
    --time-limit=*) limit="${1#*=}"; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
case "$limit" in ''|*[!0-9]*) echo "gpu.sh: --time-limit '$limit': give whole seconds" >&2; exit 2 ;; esac

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
elif [ -n "${FLASH_ATTN_WHEEL:-}" ]; then
  step flash-attn "$PYTHON" -m pip install --no-deps "$FLASH_ATTN_WHEEL" \
    || echo "SKIP flash-attn: $FLASH_ATTN_WHEEL did not install"
else
  before=$status
  step flash-attn "$PYTHON" -m pip install --no-deps --only-binary=:all: --timeout 30 flash-attn \
    || echo "SKIP flash-attn: no prebuilt wheel for this torch/CUDA/Python (no source build);" \
            "set FLASH_ATTN_WHEEL to a matching wheel from github.com/Dao-AILab/flash-attention/releases"
  status=$before  # a missing wheel is a skip, not a failure
fi

step verify "$PYTHON" benchmarks/gpu_bench.py verify --attn flash_attention_2
step train "$PYTHON" benchmarks/gpu_bench.py train --attn sdpa,flash_attention_2 ${args[@]+"${args[@]}"}
exit "$status"
