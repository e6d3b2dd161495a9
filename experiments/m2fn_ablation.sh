#!/usr/bin/env bash
# The M2FN ablation as evidence: an independently simulated small world (60 products x 5
# creatives x 3 queries, seed 11), its dataset, and `creative4u m2fn ablate` with its defaults
# (table 4's eight rows and HCCM's five, over training seeds 0 1 2). Threads are fixed, so the
# runs are comparable: torch on both cores, OpenMP libraries told the same.
#   uv run bash experiments/m2fn_ablation.sh [OUT] [extra ablate flags...]
set -euo pipefail
out=${1:-runs/m2fn-ablation}
shift || true
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
python -m creative4u data simulate "$out/world" --products 60 --creatives 5 --queries 3 \
  --seed 11 --force
python -m creative4u data build --logs "$out/world/logs.parquet" --images "$out/world/images" \
  --out "$out/dataset" --keep-unlabelled --force
python -m creative4u m2fn ablate --data "$out/dataset" --out "$out/ablation" "$@"
