#!/usr/bin/env bash
# CoT-SFT of the shipped pretrained base on the default world: the recipe as it is, and with the
# decision-weighted loss. Each run is the demo's SFT stage (8-minute budget) with 128 validation
# pairs scored in both orders (n = 256). Run one at a time on an otherwise idle machine.
#   uv run bash experiments/sft_on_base.sh DATASET OUT
set -euo pipefail
ds=${1:-runs/demo/dataset}
out=${2:-runs/exp}
launch=(python -m accelerate.commands.launch --config_file recipes/accelerate/cpu.yaml -m sft
  --config recipes/small/sft.yaml --dataset_path "$ds" --max_eval_pairs 128)
"${launch[@]}" --output_dir "$out/sft_plain" --answer_weight 1 --verdict_weight 1
"${launch[@]}" --output_dir "$out/sft_weighted"
for run in sft_plain sft_weighted; do
  python -c "import json,sys; c=json.load(open(sys.argv[1])); print(sys.argv[2], c['global_step'], c['validation'])" \
    "$out/$run/creative4u_run.json" "$run"
done
