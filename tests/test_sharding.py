"""pgprobe.probes.sharding: the one split and gather check of the sharded probes."""
from __future__ import annotations

import pytest
import xarray as xr

from pgprobe.errors import PgprobeError
from pgprobe.probes import sharding


def test_round_robin_deals_whole_groups():
    items = list(range(10))
    # groups of 2: [0,1] [2,3] [4,5] [6,7] [8,9]; 2 shards take groups 0,2,4 and 1,3
    assert sharding.shard_items(items, 0, 2, group_size=2) == [0, 1, 4, 5, 8, 9]
    assert sharding.shard_items(items, 1, 2, group_size=2) == [2, 3, 6, 7]
    assert sharding.shard_items(items, 2, 3) == [2, 5, 8]


def test_blocks_are_contiguous_runs_of_groups():
    items = list(range(12))
    # 6 groups of 2 over 4 shards: bounds round(linspace(0, 6, 5)) = 0, 2, 3, 4, 6
    assert [sharding.shard_items(items, k, 4, group_size=2, blocks=True) for k in range(4)] == \
        [[0, 1, 2, 3], [4, 5], [6, 7], [8, 9, 10, 11]]


@pytest.mark.parametrize("blocks", [False, True])
def test_shards_partition_the_work_list(blocks):
    items = list(range(37))
    parts = [sharding.shard_items(items, k, 5, group_size=4, blocks=blocks) for k in range(5)]
    assert sorted(x for part in parts for x in part) == items


def test_bad_shard_index_is_one_line():
    with pytest.raises(PgprobeError, match=r"--shard 3: expected 0 <= shard < 3 \(the shard count\)"):
        sharding.shard_items([1, 2], 3, 3)


def _shard(key, shard, count):
    ds = xr.Dataset({"x": ("i", [shard])})
    ds.attrs = {"pgprobe_dataset": "demo-shard", **sharding.shard_attrs(key, shard, count)}
    return ds


def test_gather_orders_and_checks_shards():
    key = sharding.shard_key(checkpoint_sha256="abc", probe_seed=0, reference_samples=10)
    shards = [_shard(key, 2, 3), _shard(key, 0, 3), _shard(key, 1, 3)]
    assert [int(ds["x"][0]) for ds in sharding.gather(shards, "demo-shard", key, 3)] == [0, 1, 2]
    with pytest.raises(PgprobeError, match="missing shard"):
        sharding.gather(shards[:2], "demo-shard", key, 3)
    with pytest.raises(PgprobeError, match="shard 0 given twice"):
        sharding.gather(shards + [_shard(key, 0, 3)], "demo-shard", key, 3)
    other = sharding.shard_key(checkpoint_sha256="abc", probe_seed=1, reference_samples=10)
    with pytest.raises(PgprobeError, match=r"probe_seed: 1 vs 0"):
        sharding.gather([_shard(other, 0, 3)] + shards[:2], "demo-shard", key, 3)
    with pytest.raises(PgprobeError, match="shard count"):
        sharding.gather([_shard(key, 0, 2)], "demo-shard", key, 3)
