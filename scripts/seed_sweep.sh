#!/usr/bin/env bash
# Stability across seeds: train the same setup with 5 seeds (Hydra multirun), then print mean ± std.
#   bash scripts/seed_sweep.sh model=conv_ae trainer.max_epochs=10
#   SEEDS=1,2,3 bash scripts/seed_sweep.sh experiment=ae_best trainer=gpu
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-1,2,3,4,5}
BIN=${BIN:-.venv/bin}
stamp=$(date +%Y-%m-%d_%H-%M-%S)
sweep_dir=${SWEEP_DIR:-logs/train/multiruns/seeds_${stamp}}
"$BIN/aelab-train" -m "seed=${SEEDS}" "hydra.sweep.dir=${sweep_dir}" "$@"
"$BIN/python" scripts/aggregate.py "$sweep_dir" --json "$sweep_dir/summary.json"
