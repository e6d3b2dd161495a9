#!/usr/bin/env bash
# CoT-SFT of the shipped base on the default world with each offline rationale teacher: the
# demo's SFT stage (8-minute budget, decision-weighted loss), validation on 128 pairs in both
# orders, then the test split (300 pairs, both orders) through `creative4u eval`.
# Run one at a time on an otherwise idle machine:
#   uv run bash experiments/sft_teachers.sh WORLD OUT [extra sft flags...]
set -euo pipefail
world=${1:-runs/demo/world}
out=${2:-runs/exp}
shift 2 || true
for teacher in features scene; do
  python -m creative4u data build --logs "$world/logs.parquet" --images "$world/images" \
    --out "$out/dataset_$teacher" --teacher "$teacher" --force
  python -m accelerate.commands.launch --config_file recipes/accelerate/cpu.yaml -m sft \
    --config recipes/small/sft.yaml --dataset_path "$out/dataset_$teacher" --max_eval_pairs 128 \
    --output_dir "$out/sft_$teacher" "$@"
  python -m creative4u eval --model "$out/sft_$teacher" --dataset "$out/dataset_$teacher" \
    --split test --max-pairs 300 --baselines features --out "$out/eval_sft_$teacher"
done
