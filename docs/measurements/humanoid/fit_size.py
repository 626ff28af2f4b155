"""Does the size of the true-value fit change Figure 4?  Two baselines datasets of one checkpoint.

    python docs/measurements/humanoid/fit_size.py SMALL.nc LARGE.nc

Prints, for each file: the pairs the true-value net was fitted on, its held-out MRE and
explained variance, the agent's value net's on the same held-out streams, and the relative
variance tr Cov(ĝ)/‖ḡ‖² of the gradient estimates per baseline and sample count at the
paper's λ (Figure 4's y-axis as a number).  The estimates use the same streams in both
files (same probe seed), so the value-net and zero-baseline rows must agree exactly and
only the true-value rows can differ.
"""
from __future__ import annotations

import sys

import xarray as xr


def main() -> None:
    for path in sys.argv[1:]:
        with xr.open_dataset(path) as ds:
            ds = ds.squeeze()
            print(f"{path}:")
            print(f"  true-value fit: {int(ds['true_value_fit_samples'])} pairs; held-out MRE "
                  f"{float(ds['true_value_fit_mre']):.3f}, explained variance "
                  f"{float(ds['true_value_fit_explained_variance']):.3f} "
                  f"(agent's value net: MRE {float(ds['value_net_reference_mre']):.3f}, explained variance "
                  f"{float(ds['value_net_reference_explained_variance']):.3f})")
            variance = ds["relative_variance"].sel(lambda_setting="paper")
            print("  relative variance at the paper's λ | " +
                  " | ".join(f"{int(n)} pairs" for n in variance["sample_count"].values))
            for baseline in variance["baseline"].values:
                print(f"    {baseline:>12} | " + " | ".join(
                    f"{float(v):.3g}" for v in variance.sel(baseline=baseline).values))


if __name__ == "__main__":
    main()
