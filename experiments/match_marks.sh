#!/usr/bin/env bash
# Reasons before verdicts, with each shown value marked against the wanted one (Q3, Q4):
#   Q3 query match: query wants red: A red yes, B blue no => A>B
# The demo's world, dataset flags, SFT recipe (480 s) and test evaluation (300 pairs, both orders).
# Run from a tree with the patch applied, on an otherwise idle machine:
#   git apply experiments/match_marks.patch && uv run bash experiments/match_marks.sh runs/exp/match
set -euo pipefail
out=${1:-runs/exp/match}
shift || true
python -m creative4u data simulate "$out/world" --force
python -m creative4u data build --logs "$out/world/logs.parquet" --images "$out/world/images" \
  --out "$out/dataset" --teacher scene --keep-unlabelled --force
python -m accelerate.commands.launch --config_file recipes/accelerate/cpu.yaml -m sft \
  --config recipes/small/sft.yaml --dataset_path "$out/dataset" --output_dir "$out/sft" "$@"
python -m creative4u eval --model "$out/sft" --dataset "$out/dataset" --split test \
  --max-pairs 300 --baselines features --out "$out/eval"
