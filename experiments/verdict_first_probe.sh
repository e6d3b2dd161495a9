#!/usr/bin/env bash
# Does a base that learnt to decide before it describes (verdict-first comparisons) give SFT
# query and title verdicts that are not stuck at A=B? Continued pretraining of the shipped base
# on experiments/verdict_first_corpus.py's corpus, then the demo's SFT recipe (480 s budget) on
# the scene-teacher dataset and the test split (300 pairs, both orders), as in sft_teachers.sh.
#   uv run bash experiments/verdict_first_probe.sh [STEPS]
set -euo pipefail
steps=${1:-600}
out=runs/exp
[ -d $out/corpus_vf ] || python experiments/verdict_first_corpus.py runs/pretrain/corpus $out/corpus_vf --rows 24000
python -m accelerate.commands.launch --config_file recipes/accelerate/cpu.yaml -m pretrain \
  --config recipes/small/pretrain.yaml --model_name_or_path models/small-base \
  --corpus_path $out/corpus_vf --vision_steps 0 --max_steps "$steps" --learning_rate 5e-4 \
  --warmup_steps 20 --curve_steps 0 --eval_examples 100 --save_steps 300 --output_dir $out/base_vf
python -m accelerate.commands.launch --config_file recipes/accelerate/cpu.yaml -m sft \
  --config recipes/small/sft.yaml --model_name_or_path $out/base_vf \
  --dataset_path $out/dataset_scene --max_eval_pairs 128 --output_dir $out/sft_vf
python -m creative4u eval --model $out/sft_vf --dataset $out/dataset_scene --split test \
  --max-pairs 300 --baselines features --out $out/eval_sft_vf
