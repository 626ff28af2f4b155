"""Compare every collected dataset of two workflow runs, variable by variable.

  python docs/measurements/compare_datasets.py BEFORE_DIR AFTER_DIR

Prints per dataset the variables equal under ``xarray.testing.assert_allclose`` (on the
coordinates both runs have; wall-time variables aside), those that differ, and those only
one run has.  Used for the probe-core refactor's before/after check (tiny config)."""
import sys
import numpy as np
import xarray as xr
before, after = sys.argv[1], sys.argv[2]
WALL = {"wall_time"}
for name in ["training", "sample_regime", "gradients", "steps", "values", "baselines", "landscapes"]:
    a = xr.open_dataset(f"{before}/results/datasets/{name}.nc")
    b = xr.open_dataset(f"{after}/results/datasets/{name}.nc")
    if "lambda_setting" in b.dims and "lambda_setting" not in a.dims:
        b = b.sel(lambda_setting="paper", drop=True)   # the paper's arms = what the old file held
    equal, differ, new, gone = [], [], [], []
    for v in sorted(set(a.data_vars) | set(b.data_vars)):
        if v in WALL or "seconds" in v:
            continue
        if v not in a:
            new.append(v); continue
        if v not in b:
            gone.append(v); continue
        x, y = a[v], b[v]
        try:
            # compare on the common coordinates (new coordinate values, e.g. targets, are extra)
            x, y = xr.align(x, y, join="inner")
            xr.testing.assert_allclose(x.drop_vars([c for c in x.coords if c not in x.dims], errors="ignore"),
                                       y.drop_vars([c for c in y.coords if c not in y.dims], errors="ignore"))
            equal.append(v)
        except (AssertionError, ValueError) as exc:
            differ.append(v)
    print(f"{name}: equal {len(equal)}; differ {differ}; new {new}; gone {gone}")
