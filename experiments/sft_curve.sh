#!/usr/bin/env bash
# How SFT accuracy grows with steps past the demo's budget: the demo's SFT recipe (scene-teacher
# dataset) with a step budget instead of a time budget, a checkpoint every SAVE steps, then each
# checkpoint scored on validation pairs in both orders (experiments/score_checkpoints.py).
#   uv run bash experiments/sft_curve.sh DATASET OUT [STEPS] [SAVE] [extra sft flags...]
set -euo pipefail
dataset=${1:-runs/exp/dataset_scene}
out=${2:-runs/exp/sft_curve}
steps=${3:-1300}
save=${4:-260}
shift 4 || true
python -m accelerate.commands.launch --config_file recipes/accelerate/cpu.yaml -m sft \
  --config recipes/small/sft.yaml --dataset_path "$dataset" --max_eval_pairs 0 \
  --max_train_seconds 1000000 --max_steps "$steps" --save_steps "$save" --save_total_limit 20 \
  --output_dir "$out" "$@"
python experiments/score_checkpoints.py "$out" "$dataset" --max-pairs 128 --out "$out/curve.jsonl"
