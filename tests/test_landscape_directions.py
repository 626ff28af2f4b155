"""Landscape directions computed once per checkpoint (``landscapes-directions``): shards
that read them give the unsharded dataset exactly; a directions file of another checkpoint,
seed or plane is refused."""
from __future__ import annotations

import json

import xarray as xr

from pgprobe.cli import main
from pgprobe.datasets import open_dataset

SETTINGS = {"alpha_points": 2, "beta_points": 2, "step_sample_counts": [256, 512],
            "trajectory_counts": [1, 3]}


def test_shards_reading_directions_equal_unsharded(closed_form_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1577836800")
    common = ["--checkpoint", str(closed_form_checkpoint), "--settings", json.dumps(SETTINGS), "--seed", "3"]
    whole = tmp_path / "whole.nc"
    assert main(["probe", "landscapes", *common, "--out", str(whole), "--workers", "1"]) == 0
    directions = tmp_path / "land.directions.nc"
    # the directions job reads only DIRECTION_KEYS: trajectory counts do not matter to it
    other_trajectories = ["--checkpoint", str(closed_form_checkpoint), "--settings",
                          json.dumps({**SETTINGS, "trajectory_counts": [7]}), "--seed", "3"]
    assert main(["probe", "landscapes-directions", *other_trajectories, "--out", str(directions),
                 "--workers", "1"]) == 0
    plane = open_dataset(directions, "landscapes-directions")
    assert plane["step_direction"].dims == ("regime", "parameter")
    assert dict(plane["surrogate"].sizes) == {"regime": 2, "alpha_index": 2, "beta_index": 2}
    sharded = ["--checkpoint", str(closed_form_checkpoint), "--settings",
               json.dumps({**SETTINGS, "grid_shards": 2}), "--seed", "3"]
    shards = []
    for k in range(2):
        path = tmp_path / f"land.shard{k}.nc"
        assert main(["probe", "landscapes-shard", *sharded, "--out", str(path), "--shard", str(k),
                     "--workers", "1", "--directions", str(directions)]) == 0
        shards.append(str(path))
    gathered = tmp_path / "gathered.nc"
    assert main(["probe", "landscapes", *sharded, "--out", str(gathered), "--shards", *shards]) == 0
    xr.testing.assert_identical(open_dataset(whole, "landscapes"), open_dataset(gathered, "landscapes"))


def test_directions_of_another_plane_or_seed_are_refused(closed_form_checkpoint, tmp_path, capsys):
    common = ["--checkpoint", str(closed_form_checkpoint), "--settings", json.dumps(SETTINGS)]
    directions = tmp_path / "land.directions.nc"
    assert main(["probe", "landscapes-directions", *common, "--seed", "3", "--out", str(directions),
                 "--workers", "1"]) == 0
    capsys.readouterr()
    out = tmp_path / "land.shard0.nc"
    other_plane = ["--checkpoint", str(closed_form_checkpoint), "--settings",
                   json.dumps({**SETTINGS, "alpha_max": 1.0}), "--seed", "3"]
    for args in (other_plane, [*common, "--seed", "4"]):
        assert main(["probe", "landscapes-shard", *args, "--out", str(out), "--shard", "0",
                     "--directions", str(directions)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "directions file" in err[0], err
    assert not out.exists()
