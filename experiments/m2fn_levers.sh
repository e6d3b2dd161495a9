#!/usr/bin/env bash
# M2FN against the features baseline on the demo's world: the levers behind
# recipes/small/m2fn.yaml, one run each, then experiments/m2fn_vs_features.py on the demo's 300
# evaluation pairs and on the whole test split (results/m2fn_levers.jsonl).
#   uv run bash experiments/m2fn_levers.sh [DATASET] [OUT]
set -euo pipefail
ds=${1:-runs/demo/dataset}
out=${2:-runs/exp}
vlm="--backbone vlm --vision_tower models/small-base --image_size 112 --widths 128 128"
train() { name=$1; shift; python -m creative4u m2fn train --data "$ds" --out "$out/$name" --no-progress --force "$@"; }
train m2fn_default                                      # the from-scratch 64 px CNN, 8,000 cells
train m2fn_vlm_hccm $vlm --cat_att --cat_map            # the base's tower + HCCM, 8,000 cells
train m2fn_vlm $vlm                                     # the tower without HCCM
train m2fn_vlm_hccm_32k $vlm --cat_att --cat_map --max_train_rows 32000 --epochs 2   # the recipe
train m2fn_vlm_hccm_all $vlm --cat_att --cat_map --max_train_rows 200000 --epochs 1
train m2fn_vlm_hccm_32k_lr1e3 $vlm --cat_att --cat_map --max_train_rows 32000 --epochs 2 --learning_rate 1e-3
train m2fn_v_64k2 $vlm --cat_att --cat_map --max_train_rows 64000 --epochs 2
train m2fn_v_32k3 $vlm --cat_att --cat_map --max_train_rows 32000 --epochs 3
train m2fn_v_32k2_kld $vlm --cat_att --cat_map --max_train_rows 32000 --epochs 2 --loss kld
train m2fn_v_32k2_min100 $vlm --cat_att --cat_map --max_train_rows 32000 --epochs 2 --min_impressions 100
train m2fn_v_32k2_s1 $vlm --cat_att --cat_map --max_train_rows 32000 --epochs 2 --seed 1
# the kept point chosen on validation pairs every 100 steps: its test pair accuracy is the one
# `m2fn train` prints (73.1 %), not part of the comparison below
train m2fn_r_pairs_s0 --config recipes/small/m2fn.yaml --select_on pairs --eval_steps 100
python experiments/m2fn_vs_features.py "$ds" "$out"/m2fn_default "$out"/m2fn_vlm_hccm "$out"/m2fn_vlm \
  "$out"/m2fn_vlm_hccm_32k "$out"/m2fn_vlm_hccm_all "$out"/m2fn_vlm_hccm_32k_lr1e3 "$out"/m2fn_v_64k2 \
  "$out"/m2fn_v_32k3 "$out"/m2fn_v_32k2_kld "$out"/m2fn_v_32k2_min100 "$out"/m2fn_v_32k2_s1 \
  --out experiments/results/m2fn_levers.jsonl
