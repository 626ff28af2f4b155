#!/bin/bash
# C6 experiment, part 2: the earliest trained checkpoint's landscape (regime 2048, the claims'
# regime) with 100 episodes per point, for two runs: the most negative iteration-100
# correlation (Hopper TRPO seed 0, -0.44) and one of the least reliable grids (Walker2d PPO
# seed 1, split-half reliability 0.19).  Run from the claims study's directory; writes next to this script.
#   bash docs/measurements/claims_study/c6_experiment/run.sh
set -euo pipefail
HERE=$(dirname "$0")
S='{"alpha_points":7,"beta_points":7,"step_sample_counts":[2048],"trajectory_counts":[1,5,20,100]}'
for run in Hopper-v5/trpo/seed0 Walker2d-v5/ppo/seed1; do
  name=$(echo $run | tr / _)
  /usr/bin/time -v nice -n 10 pgprobe probe landscapes --checkpoint results/runs/$run/checkpoints/iter0100.pt \
    --settings "$S" --workers 2 --seed 0 --out $HERE/$name.iter0100.nc > $HERE/$name.log 2> $HERE/$name.time
done
echo done
