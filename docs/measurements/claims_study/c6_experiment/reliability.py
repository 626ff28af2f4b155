"""C6 experiment, part 1: how much of a landscape's true-reward grid is signal.

    python reliability.py ../datasets/landscapes.nc > reliability.md

Per run, checkpoint and regime: the correlation of the surrogate with the true reward (mean of
all episodes per point, the claims' C6 statistic), the split-half reliability of that mean
(odd vs even episodes, Spearman-Brown corrected), the correlation corrected for the true
reward's noise (r / sqrt(reliability)), and the spread of the grid against the within-point
standard error."""
import numpy as np, xarray as xr, sys
ds = xr.open_dataset(sys.argv[1])
print("| task | algo | seed | iter | regime | r(surrogate, true@20) | split-half reliability of true@20 | r / sqrt(reliability) | between-point SD | within-point SD/sqrt(20) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for env in ds.env.values:
  for algo in ds.algo.values:
    for seed in ds.seed.values:
      for it in ds.iteration.values:
        for regime in ds.regime.values:
          r = ds.sel(env=env, algo=algo, seed=seed, iteration=it, regime=regime)
          ep = r.episode_return.values  # alpha, beta, trajectory
          if np.isnan(ep).all(): continue
          sur = r.surrogate.values.ravel()
          full = ep.mean(-1).ravel()
          odd, even = ep[..., 0::2].mean(-1).ravel(), ep[..., 1::2].mean(-1).ravel()
          rh = np.corrcoef(odd, even)[0, 1]
          rel = 2 * rh / (1 + rh)
          rc = np.corrcoef(full, sur)[0, 1]
          within = np.sqrt(ep.var(-1, ddof=1).mean() / ep.shape[-1])
          print(f"| {env} | {algo} | {seed} | {it} | {regime} | {rc:.2f} | {rel:.2f} | {rc/np.sqrt(rel) if rel > 0 else float('nan'):.2f} | {full.std():.0f} | {within:.0f} |")
