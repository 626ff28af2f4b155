"""Committed measurements re-derived bit for bit under the locked environment.

A change in numerics — pgprobe's or a dependency's (envs/lock.txt) — turns these red instead
of silently invalidating docs/measurements/.  When one does, re-measure what it guards (see
docs/measurements/README.md, "Re-derivation") and commit the new numbers with the lock.

* training: the first iterations of runs of ``docs/measurements/training_500_iterations.nc``
  (the claims study's training, Table 1 settings, 500-iteration schedule), every logged
  variable but wall time;
* probes: the datasets of ``docs/measurements/rederive/`` (a gradients reference shard, a
  landscapes plane and grid shard) recomputed from the committed checkpoint, which is the
  claims study's Hopper-v5 PPO seed 0 checkpoint at iteration 100 (its SHA-256 is the one
  the claims study's datasets record).
"""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import xarray as xr

from conftest import REPO
from pgprobe.checkpoint import file_sha256

MEASUREMENTS = REPO / "docs" / "measurements"
REDERIVE = MEASUREMENTS / "rederive"


def _rederive_module():
    spec = importlib.util.spec_from_file_location("rederive", REDERIVE / "rederive.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("env_id, algo", [("Hopper-v5", "ppo"), ("Hopper-v5", "trpo"), ("Walker2d-v5", "ppo")])
def test_training_rederives_the_committed_500_iteration_runs(env_id, algo):
    import torch

    from pgprobe.train import TRAIN_VARIABLES, Trainer

    torch.set_num_threads(1)
    committed = xr.open_dataset(MEASUREMENTS / "training_500_iterations.nc").sel(env=env_id, algo=algo, seed=0)
    trainer = Trainer(env_id, algo, 0, {"training": {"iterations": 500, "checkpoint_iterations": [0]}})
    rows = [trainer.step() for _ in range(2)]
    for name, _, _ in TRAIN_VARIABLES:
        if name == "wall_time":
            continue
        fresh = np.array([row[name] for row in rows])
        old = committed[name].values[:2]
        assert np.array_equal(fresh, old, equal_nan=True), (
            f"{env_id} {algo} {name}: {fresh.tolist()} re-derived, {old.tolist()} committed")


def test_committed_checkpoint_is_the_claims_studys():
    sources = json.loads(xr.open_dataset(MEASUREMENTS / "claims_study" / "datasets" / "gradients.nc")
                         .attrs["sources_json"])
    recorded = {s["checkpoint_sha256"] for s in sources
                if s["file"] == "results/probes/gradients/Hopper-v5/ppo/seed0/iter0100.nc"}
    assert recorded == {file_sha256(REDERIVE / "Hopper-v5_ppo_seed0_iter0100.pt")}


def test_probe_shards_rederive_the_committed_datasets(tmp_path):
    rederive = _rederive_module()
    names = rederive.run_all(tmp_path)
    assert names == ["gradients.shard0.nc", "landscapes.directions.nc", "landscapes.shard0.nc"]
    assert [p for name in names for p in rederive.differences(name, tmp_path)] == []
