#!/usr/bin/env bash
# Common random numbers on vs off for the landscapes probe, on two tiny trained checkpoints.
#   bash docs/measurements/crn/run.sh [WORKDIR]      (from the repository root)
# Trains Hopper-v5 PPO for 20 iterations (checkpoints 10 and 20), runs the landscapes probe (probe
# seeds $SEEDS, default "0 1") at a
# small size with common_random_numbers false and true at both, and compares the grids'
# split-half reliability and the C6 correlation's CI at equal episodes (compare.py).
set -euo pipefail
work=${1:-/tmp/pgprobe_crn}
mkdir -p "$work"
here=docs/measurements/crn
if [ ! -f "$work/run/checkpoints/iter0010.pt" ]; then
  pgprobe train --env Hopper-v5 --algo ppo --seed 0 --config $here/config.yaml --out "$work/run" --no-progress
fi
settings='{"alpha_points": 5, "beta_points": 5, "step_sample_counts": [2048], "trajectory_counts": [1, 20]}'
for seed in ${SEEDS:-0 1}; do
for it in 0010 0020; do
  ckpt="$work/run/checkpoints/iter$it.pt"
  for crn in false true; do
    out="$work/landscape_iter${it}_seed${seed}_crn_${crn}.nc"
    [ -f "$out" ] || pgprobe probe landscapes --checkpoint "$ckpt" --out "$out" --workers 2 --seed "$seed" \
      --settings "$(python -c "import json,sys; s=json.loads(sys.argv[1]); s['common_random_numbers']=$([ $crn = true ] && echo True || echo False); print(json.dumps(s))" "$settings")"
  done
done
done
python $here/compare.py "$work"/landscape_iter*_crn_*.nc
