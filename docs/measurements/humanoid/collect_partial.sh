#!/bin/bash
# Collect whatever per-checkpoint datasets of the Humanoid slice exist so far (the workflow's
# collect rules need all of them) into OUT/results/datasets, for summarize.py and claims:
#   bash docs/measurements/humanoid/collect_partial.sh STUDY_DIR OUT
set -euo pipefail
STUDY=$1; OUT=$2; mkdir -p "$OUT/results/datasets"
pgprobe collect --probe training --inputs "$STUDY"/results/runs/Humanoid-v5/*/seed*/train.nc \
    --out "$OUT/results/datasets/training.nc"
for probe in gradients values baselines; do
  files=$(ls "$STUDY"/results/probes/$probe/Humanoid-v5/*/seed*/iter????.nc 2>/dev/null || true)
  if [ -n "$files" ]; then pgprobe collect --probe $probe --inputs $files --out "$OUT/results/datasets/$probe.nc"; fi
done
