"""``pgprobe collect``: what the outer join of runs with different checkpoints writes."""
from __future__ import annotations

import numpy as np
import xarray as xr

from pgprobe.collect import collect
from pgprobe.datasets import add_run_coords, open_dataset, provenance, variable, write_netcdf


def test_integer_variables_of_missing_checkpoints_are_nan(tmp_path):
    """Seed 0 probed at iteration 0, seed 1 at iteration 100: the merged cube has holes
    (seed 0 at 100, seed 1 at 0), which must read back as NaN, not as −2⁶³ from the inputs'
    integer encoding."""
    paths = []
    for seed, iteration in ((0, 0), (1, 100)):
        ds = xr.Dataset({"episodes": variable(("sample_count",), np.array([3, 4], np.int64), "episodes", "1"),
                         "cosine": variable(("sample_count",), np.array([0.1, 0.2]), "cosine", "1")},
                        coords={"sample_count": variable(("sample_count",), [1, 2], "pairs", "1")})
        ds = add_run_coords(ds, "Hopper-v5", "ppo", seed, iteration)
        ds.attrs = provenance("values", {})
        paths.append(str(write_netcdf(ds, tmp_path / f"s{seed}.nc")))
    collect("values", paths, tmp_path / "values.nc")
    merged = open_dataset(tmp_path / "values.nc")
    episodes = merged["episodes"].sel(env="Hopper-v5", algo="ppo")
    assert episodes.sel(seed=0, iteration=0).values.tolist() == [3, 4]
    assert episodes.sel(seed=1, iteration=100).values.tolist() == [3, 4]
    assert np.isnan(episodes.sel(seed=0, iteration=100).values).all()
    assert np.isnan(episodes.sel(seed=1, iteration=0).values).all()
