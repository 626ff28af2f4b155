"""C4 on the Humanoid slice's committed baselines datasets with the claims code of this
commit: per unit (algorithm, seed, checkpoint) the two arms' unbiased noise T̂ (tr Cov at the
batch size) and pooled signal Ŝ (‖E ĝ‖², N²-weighted over the sample counts), as
``pgprobe.claims`` reads them from datasets without per-stream Gram matrices, and the unit's
log ratio log((T̂_w/Ŝ_w) / (T̂_b/Ŝ_b)).  Then the one unit that also has the paper's
5·10⁶-pair true-value fit (TRPO seed 0, iteration 500), with each fit.

    python docs/measurements/humanoid/c4_recomputed.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from pgprobe.claims import DEFAULT_SETTINGS, _nearest, _old_components, _signal_weights

HERE = Path(__file__).parent / "datasets"
PAIRS = (("value_net", "true_value"), ("zero", "value_net"))


def components(run, worse: str, better: str) -> np.ndarray:
    counts = [int(c) for c in run["sample_count"].values]
    batch = _nearest(counts, DEFAULT_SETTINGS["batch_size"])
    weights = _signal_weights(counts, batch, DEFAULT_SETTINGS)
    return _old_components(run, worse, better, counts.index(batch), weights)


def log_ratio(parts: np.ndarray) -> float:
    noise_w, signal_w, noise_b, signal_b = parts
    if signal_w <= 0 or signal_b <= 0:
        return float("nan")
    return float(np.log((noise_w / signal_w) / (noise_b / signal_b)))


def main() -> None:
    ds = xr.open_dataset(HERE / "baselines.nc").isel(env=0).sel(lambda_setting="paper")
    print("| unit | " + " | ".join(f"T̂, Ŝ {w}; {b} | log ratio" for w, b in PAIRS) + " |")
    print("|---|" + "---|---|" * len(PAIRS))
    for algo in ds.algo.values:
        for seed in ds.seed.values:
            for iteration in ds.iteration.values:
                run = ds.sel(algo=algo, seed=seed, iteration=iteration)
                cells = []
                for worse, better in PAIRS:
                    parts = components(run, worse, better)
                    cells += [f"{parts[0]:.3g}, {parts[1]:.2e}; {parts[2]:.3g}, {parts[3]:.2e}", f"{log_ratio(parts):+.3f}"]
                print(f"| {algo} seed {seed} iter {iteration} | " + " | ".join(cells) + " |")
    print()
    print("TRPO seed 0, iteration 500, value_net against true_value with each fit:")
    for name in ("baselines", "baselines_5M_trpo_seed0_iter0500"):
        fit = xr.open_dataset(HERE / f"{name}.nc").isel(env=0).sel(lambda_setting="paper")
        run = fit.sel(algo="trpo", seed=0, iteration=500)
        parts = components(run, "value_net", "true_value")
        print(f"  {int(run['true_value_fit_samples']):>8} fit pairs (held-out MRE {float(run['true_value_fit_mre']):.3f}): "
              f"Ŝ value_net {parts[1]:.2e}, Ŝ true_value {parts[3]:.2e}, log ratio {log_ratio(parts):+.3f}")


if __name__ == "__main__":
    main()
