#!/usr/bin/env bash
# Does GRPO pay on the demo's world? The demo's world, dataset and M2FN steps, then
# bench/reason_to_select.py with the demo's budgets (SFT 450 s after its word matching, GRPO 300 s)
# and its test evaluation (300 pairs, both orders): SFT, GRPO with and without the m2fn reward,
# and the equal-time control (SFT continued for GRPO's 300 s). On an otherwise idle machine:
#   uv run bash experiments/grpo_pays.sh runs/exp/rts
set -euo pipefail
out=${1:-runs/exp/rts}
python -m creative4u data simulate "$out/world" --force
python -m creative4u data build --logs "$out/world/logs.parquet" --images "$out/world/images" \
  --out "$out/dataset" --teacher scene --keep-unlabelled --force
python -m creative4u m2fn train --config recipes/small/m2fn.yaml --vision_tower models/small-base \
  --data "$out/dataset" --out "$out/m2fn"
python bench/reason_to_select.py --dataset "$out/dataset" --m2fn "$out/m2fn" \
  --model models/small-base --out "$out/arms" --sft-seconds 450 --grpo-seconds 300 --eval-pairs 300
