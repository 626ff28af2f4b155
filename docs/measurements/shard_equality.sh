#!/bin/bash
# Sharded gradients / baselines / landscapes with uneven shard splits, run with the pgprobe
# source tree SRC; compare two trees' outputs with
#   python -c "import xarray as xr; [xr.testing.assert_equal(xr.open_dataset(f'A/{n}.nc'), xr.open_dataset(f'B/{n}.nc')) for n in 'gbl']"
# usage: shard_equality.sh SRC_DIR OUT_DIR CHECKPOINT
set -e
export PYTHONPATH=$1 OMP_NUM_THREADS=1
OUT=$2; CK=$(realpath "$3"); mkdir -p "$OUT"; cd "$OUT"
G='{"sample_counts":[128,256],"estimates":2,"reference_samples":3072,"reference_stream_steps":256,"chunk_size":2,"reference_shards":4}'
for k in 0 1 2 3; do pgprobe probe gradients-shard --checkpoint "$CK" --shard $k --settings "$G" --workers 1 --out g.shard$k.nc > /dev/null 2>&1; done
pgprobe probe gradients --checkpoint "$CK" --settings "$G" --workers 1 --shards g.shard3.nc g.shard1.nc g.shard0.nc g.shard2.nc --out g.nc > /dev/null 2>&1
B='{"sample_counts":[128,256],"estimates":2,"true_value_streams":6,"true_value_stream_steps":2048,"true_value_validation_streams":1,"true_value_epochs":2,"chunk_size":2,"true_value_shards":2}'
for k in 0 1; do pgprobe probe baselines-shard --checkpoint "$CK" --shard $k --settings "$B" --workers 1 --no-progress --out b.shard$k.nc > /dev/null 2>&1; done
pgprobe probe baselines --checkpoint "$CK" --settings "$B" --workers 1 --no-progress --shards b.shard0.nc b.shard1.nc --out b.nc > /dev/null 2>&1
L='{"alpha_points":3,"beta_points":3,"step_sample_counts":[128,256],"trajectory_counts":[1,2],"chunk_size":2}'
L4='{"alpha_points":3,"beta_points":3,"step_sample_counts":[128,256],"trajectory_counts":[1,2],"chunk_size":2,"grid_shards":4}'  # trees before the grid_shards setting took --shard-count 4
pgprobe probe landscapes-directions --checkpoint "$CK" --settings "$L" --workers 1 --out l.directions.nc > /dev/null 2>&1
for k in 0 1 2 3; do pgprobe probe landscapes-shard --checkpoint "$CK" --shard $k --settings "$L4" --workers 1 --directions l.directions.nc --out l.shard$k.nc > /dev/null 2>&1; done
pgprobe probe landscapes --checkpoint "$CK" --settings "$L4" --workers 1 --shards l.shard0.nc l.shard1.nc l.shard2.nc l.shard3.nc --out l.nc > /dev/null 2>&1
echo "wrote $OUT/g.nc b.nc l.nc"
