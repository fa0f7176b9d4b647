#!/usr/bin/env bash
# From seed instructions to a LLaMA-Factory-ready DPO dataset, offline.
#   examples/seeds_to_dpo.sh [SEEDS] [OUT_DIR]
# CONFIG=your.toml uses your models instead of the embedded one (examples/local.toml);
# RUN_DIR=DIR names the run directory.
# Then point LLaMA-Factory's dataset_dir at OUT_DIR and use `dataset: dpo` (stage: dpo).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
seeds="${1:-$here/../seeds/smoke.jsonl}"
out="${2:-out}"
run="${RUN_DIR:-runs/seeds-to-dpo-$(date +%Y%m%d-%H%M%S)}"
config="${CONFIG:-$here/local.toml}"
mkdir -p "$out"

evorefuse evolve -c "$config" --seeds "$seeds" --run-dir "$run" --generations 2 -q
evorefuse status "$run"
# Pairs need a real refusal from a target; a small offline target rarely refuses, so few pairs
# (or none: exit 2, "nothing to export") are expected offline. Hosted targets give many more.
evorefuse export "$run" --format dpo --style llamafactory -o "$out/dpo.json" --include-seeds
echo "LLaMA-Factory dataset: $out/dpo.json (entry 'dpo' in $out/dataset_info.json)"
