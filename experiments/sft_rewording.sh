#!/usr/bin/env bash
# The demo's SFT on the demo's pairs with the rationales written again by the scene teacher as
# the checkout has it, then the test split (300 pairs, both orders), compared pair by pair with
# earlier evals of the same pairs. Run after `make demo`, on an otherwise idle machine:
#   uv run bash experiments/sft_rewording.sh NAME runs/demo runs/exp [NAME=EVAL_DIR ...]
# e.g. NAME=nb with runs/exp/eval_sft_demo and runs/exp/eval_sft_q6 to compare against.
set -euo pipefail
name=$1
demo=${2:-runs/demo}
out=${3:-runs/exp}
shift 3
python experiments/scene_rationales.py "$demo/dataset" "$demo/world" "$out/dataset_$name"
python -m accelerate.commands.launch --config_file recipes/accelerate/cpu.yaml -m sft \
  --config recipes/small/sft.yaml --dataset_path "$out/dataset_$name" --output_dir "$out/sft_$name"
python -m creative4u eval --model "$out/sft_$name" --dataset "$out/dataset_$name" --split test \
  --max-pairs 300 --baselines features --out "$out/eval_sft_$name"
python experiments/compare_evals.py "$@" "$name=$out/eval_sft_$name" \
  --out "experiments/results/sft_$name.json"
