"""C6 experiment, part 2: the earliest trained checkpoint's landscape with 100 episodes per
point instead of 20 (run.sh makes the files).

    python more_episodes.py ../datasets/landscapes.nc Hopper-v5_trpo_seed0.iter0100.nc Walker2d-v5_ppo_seed1.iter0100.nc

Checks the surrogate grid equals the study's (same plane), then gives the C6 correlation with
20 and with 100 episodes, a 95% CI from resampling episodes within points, the split-half
reliability, and the step-direction row (beta = 0)."""
import sys, numpy as np, xarray as xr
study = xr.open_dataset(sys.argv[1])
for path in sys.argv[2:]:
    new = xr.open_dataset(path)
    env, algo, seed = str(new.env.values[0]), str(new.algo.values[0]), int(new.seed.values[0])
    old = study.sel(env=env, algo=algo, seed=seed, iteration=100, regime=2048)
    n = new.isel(env=0, algo=0, seed=0, iteration=0).sel(regime=2048)
    ep = n.episode_return.values
    print(env, algo, seed, "surrogate equal to the study's:", np.allclose(n.surrogate.values, old.surrogate.values, rtol=1e-9, atol=0),
          "first 20 episodes equal:", np.array_equal(ep[..., :20], old.episode_return.values))
    sur = n.surrogate.values.ravel()
    for T in (20, 100):
        e = ep[..., :T]
        full = e.mean(-1).ravel()
        rh = np.corrcoef(e[..., 0::2].mean(-1).ravel(), e[..., 1::2].mean(-1).ravel())[0, 1]
        rel = 2 * rh / (1 + rh)
        r = np.corrcoef(full, sur)[0, 1]
        # bootstrap over episodes (within point) for r's CI
        rng = np.random.default_rng(0)
        rs = []
        for _ in range(2000):
            idx = rng.integers(0, T, size=e.shape)
            rs.append(np.corrcoef(np.take_along_axis(e, idx, -1).mean(-1).ravel(), sur)[0, 1])
        lo, hi = np.percentile(rs, [2.5, 97.5])
        print(f"  T={T}: r(surrogate, true)={r:.2f} [{lo:.2f}, {hi:.2f}] (episode bootstrap)  split-half reliability={rel:.2f}"
              f"  between-point SD={full.std():.0f}  within-point SE={np.sqrt(e.var(-1, ddof=1).mean() / T):.0f}")
    # along the step (beta = 0 row)
    b0 = int(np.argmin(np.abs(n.beta.values)))
    print("  along the step (beta=0): alpha", np.round(n.alpha.values, 2).tolist())
    print("   surrogate", np.round(n.surrogate.values[:, b0], 4).tolist())
    print("   true@100 ", np.round(ep[:, b0, :].mean(-1), 0).tolist())
