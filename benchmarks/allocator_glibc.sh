#!/usr/bin/env bash
# Speed and peak memory of the demo's retrieval stage (24 steps) under glibc malloc settings.
#
#   bash benchmarks/allocator_glibc.sh [RUN_DIR]
#
# RUN_DIR (default runs/gemma3-270m-cpu) must hold the demo's 01-mntp and 02-supervised folders;
# they are hard-linked into runs/bench-alloc-*/ so only the retrieval stage trains. Each setting is
# passed in the environment, so `convert` leaves it alone (it tunes glibc only when nothing is set).
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-runs/gemma3-270m-cpu}
run() {
  local name=$1; shift
  local out=runs/bench-alloc-$name
  rm -rf "$out"; mkdir -p "$out"; cp -al "$src/01-mntp" "$src/02-supervised" "$out/"
  env "$@" /usr/bin/time -f "$name: wall %e s, user %U s, system %S s" \
    llm2vec-lite convert recipes/gemma3-270m-cpu.yaml stages.2.steps=24 stages.2.warmup_steps=2 \
    stages.2.checkpoint_every=100 "eval=null" "output_dir=../$out" 2>&1 | tail -1
  python -c "import json, sys; m = json.load(open(sys.argv[1]))['metrics']
print(f\"  {m['tokens_per_s']:.0f} tokens/s, peak {m['peak_rss_mib']:.0f} MiB\")" "$out/03-supervised/stage.json"
}
run defaults LLM2VEC_LITE_ALLOCATOR=system
run mmap256k MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=262144 MALLOC_TRIM_THRESHOLD_=1048576
run mmap4m MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=4194304 MALLOC_TRIM_THRESHOLD_=16777216
run mmap32m MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=134217728
