#!/usr/bin/env bash
# Does the SFT learning-rate schedule's end matter under the demo's time budget? The demo's SFT
# recipe (450 s) from one word-matched base, three arms, each scored on the test split's 300
# pairs in both orders, compared with paired intervals (experiments/compare_evals.py):
#   steps: cosine over max_steps (400), cut where the clock stops (the recipe before)
#   budget: cosine over the time budget (budget_schedule, creative4u.training.budget_scheduled)
#   budget_bf16: the same under bfloat16 autocast (more steps in the same seconds)
#   uv run bash experiments/sft_budget_schedule.sh DATASET OUT [arms...]
set -euo pipefail
dataset=${1:-runs/demo/dataset}
out=${2:-runs/exp/budget_schedule}
shift 2 || true
arms=${*:-steps budget budget_bf16}
mkdir -p "$out"
base="$out/base_match300"
if [ ! -f "$base/model.safetensors" ]; then  # the recipe's word matching, once for every arm
  python experiments/text_matching.py models/small-base "$base" --steps 300 > "$out/match.log" 2>&1
fi
for arm in $arms; do
  case $arm in
    steps) flags=(--budget_schedule false) ;;
    budget) flags=() ;;
    budget_bf16) flags=(--bf16 true) ;;
    *) echo "unknown arm $arm" >&2; exit 2 ;;
  esac
  if [ ! -f "$out/eval_$arm/metrics.json" ]; then
    python -m accelerate.commands.launch --config_file recipes/accelerate/cpu.yaml -m sft \
      --config recipes/small/sft.yaml --dataset_path "$dataset" --model_name_or_path "$base" \
      --match_steps 0 --output_dir "$out/sft_$arm" "${flags[@]}" > "$out/sft_$arm.log" 2>&1
    python -m creative4u eval --model "$out/sft_$arm" --dataset "$dataset" --split test \
      --max-pairs 300 --out "$out/eval_$arm" > "$out/eval_$arm.log" 2>&1
  fi
done
python experiments/compare_evals.py $(for a in $arms; do echo "$a=$out/eval_$a"; done) \
  --out "$out/compare.json"
