#!/usr/bin/env bash
# Continued pretraining of the shipped base, 400 steps on the same corpus and mix, with the answer
# tokens weighted 10x and without (the control: the same extra training), then all three bases
# on the same 1,000 held-out examples with paired intervals.
#   uv run bash experiments/pretrain_answer_weight.sh runs/exp
set -euo pipefail
out=${1:-runs/exp}
common=(--config recipes/small/pretrain.yaml --model_name_or_path models/small-base --vision_steps 0
        --max_steps 400 --learning_rate 3e-4 --warmup_steps 20 --curve_steps 200 --eval_examples 1000)
for w in 10 1; do
  python -m creative4u model pretrain "${common[@]}" --answer_weight "$w" --output_dir "$out/pt_w$w"
done
python experiments/perception_compare.py runs/pretrain/corpus models/small-base "$out/pt_w1" \
  "$out/pt_w10" --examples 1000 --out experiments/results/pretrain_answer_weight_probe.json
