#!/bin/bash
# The paper's own reference sizes at the late PPO checkpoint of the Humanoid slice, run with
# the CLI (the workflow's config sets one reference size for every checkpoint):
#   * gradients: a 10,485,760-pair reference (5120 streams x 2048 steps; paper: 1e7) in 16
#     shards, then the gather that computes Figure 1/2's estimates against it;
#   * baselines: the true-value net fitted on 5,001,216 pairs (2442 streams x 2048; paper 5e6),
#     in 16 shards, then the gather that fits it and measures Figure 4's variances.
# Run from the study directory (the repository root after the slice's snakemake call):
#   [PROBES="gradients baselines"] bash docs/measurements/humanoid/paper_references.sh [ALGO SEED ITERATION]
# Outputs: results/paper_references/{gradients,baselines}/Humanoid-v5/ALGO/seedS/iterNNNN.nc,
# Snakemake-style benchmark files (wall, CPU-s, peak RSS via /usr/bin/time) next to them.
set -euo pipefail
ALGO=${1:-ppo}; SEED=${2:-0}; ITER=${3:-0500}
CKPT=results/runs/Humanoid-v5/$ALGO/seed$SEED/checkpoints/iter$ITER.pt
SHARDS=16
G='{"min_sample_count":1024,"max_sample_count":32768,"estimates":10,"reference_samples":10485760,"reference_stream_steps":2048,"reference_shards":16}'
B='{"sample_counts":[1024,4096,16384],"estimates":8,"true_value_streams":2442,"true_value_stream_steps":2048,"true_value_shards":16}'
WORKERS=${WORKERS:-2}
timed() {  # timed LOG -- command...: run, keep /usr/bin/time -v's wall, CPU and max RSS in LOG
  local log=$1; shift 2
  /usr/bin/time -v "$@" 2> "$log.time" > "$log"
}
for probe in ${PROBES:-gradients baselines}; do
  settings=$G; [ $probe = baselines ] && settings=$B
  out=results/paper_references/$probe/Humanoid-v5/$ALGO/seed$SEED; mkdir -p "$out"
  for ((k = 0; k < SHARDS; k++)); do
    [ -e "$out/iter$ITER.shard$k.nc" ] && continue   # resume: finished shards are kept
    timed "$out/iter$ITER.shard$k.log" -- pgprobe probe $probe-shard --checkpoint "$CKPT" --shard $k \
      --settings "$settings" --workers "$WORKERS" --seed 0 --out "$out/iter$ITER.shard$k.nc"
  done
  [ -e "$out/iter$ITER.nc" ] || timed "$out/iter$ITER.log" -- pgprobe probe $probe --checkpoint "$CKPT" \
    --settings "$settings" --workers "$WORKERS" --seed 0 --out "$out/iter$ITER.nc" \
    --shards $(for ((k = 0; k < SHARDS; k++)); do echo "$out/iter$ITER.shard$k.nc"; done)
done
