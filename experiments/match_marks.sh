#!/usr/bin/env bash
# Reasons before verdicts, with each shown value marked against the wanted one (Q3, Q4):
#   Q3 query match: query wants red: A red yes, B blue no => A>B
# (the protocol and the scene teacher since commit 1b257d6). The demo's world, dataset flags, SFT
# recipe and test evaluation (300 pairs, both orders); extra flags go to SFT. The two arms of
# experiments/results/match_marks.json, on an otherwise idle machine:
#   uv run bash experiments/match_marks.sh runs/exp/match --match_steps 0 --max_train_seconds 480
#   uv run bash experiments/match_marks.sh runs/exp/match_tm --match_steps 0 \
#     --max_train_seconds 480 --model_name_or_path runs/exp/base_match  # experiments/text_matching.py
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
