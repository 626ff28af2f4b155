"""CRN on vs off: per landscape file, the grid's split-half reliability (true_reward_reliability)
and the C6 correlation of surrogate and true reward with its 95% episode-bootstrap CI
(pgprobe.claims' within-unit draw: episode index k redrawn, the same k at every point).

  python docs/measurements/crn/compare.py FILE.nc ...   (run.sh's landscapes)
"""
from __future__ import annotations

import sys

import numpy as np

from pgprobe import claims
from pgprobe.datasets import open_dataset


def main(paths: list) -> None:
    settings = claims.check_settings({})
    print("| checkpoint | probe seed | CRN | episodes per point | reliability | C6 correlation | 95% CI (episodes) | CI width |")
    print("|---|---|---|---|---|---|---|---|")
    for path in sorted(paths):
        ds = open_dataset(path, kind="landscapes")
        run = ds.isel(env=0, algo=0, seed=0, iteration=0)
        unit = claims._correlation_unit(run, settings)
        rng = np.random.default_rng(0)
        draws = np.array([unit(rng) for _ in range(2000)]) if unit else np.array([np.nan])
        low, high = np.nanquantile(draws, [0.025, 0.975])
        regime = claims._regime(run, settings)
        print(f"| {int(ds['iteration'].values[0])} | {ds.attrs.get('probe_seed')} | {int(run['common_random_numbers'])} | {run.sizes['trajectory']} | "
              f"{float(run['true_reward_reliability'].sel(regime=regime)):.3f} | "
              f"{unit(None) if unit else float('nan'):.3f} | [{low:.3f}, {high:.3f}] | {high - low:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
