"""Per-run numbers behind the claims study's table (docs/measurements/claims_study/README.md).

    python docs/measurements/claims_study/summarize.py STUDY_DIR

Prints, from STUDY_DIR/results/datasets/: the final mean return of each training run (mean
of ``mean_return`` over the last 10 iterations), and per task, algorithm and probed
iteration the mean over seeds (± std over seeds) of Figure 1's mean pairwise cosine and
Figure 2's reference cosine at 2048 samples, Figure 3's held-out MRE against the GAE
target and the returns, and Figure 4's relative variance per baseline at 1024 samples
(the baselines grid's nearest to 2048; the paper's λ setting): the unbiased
``relative_variance_unbiased`` where the dataset has it (no ceiling), else the plug-in
``relative_variance`` (which tends to the estimate count M as the signal vanishes).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import xarray as xr


def _cell(values) -> str:
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if not values.size:
        return "–"
    if values.size == 1:
        return f"{values[0]:.3g}"
    return f"{values.mean():.3g} ± {values.std(ddof=1):.2g}"


def main() -> None:
    root = Path(sys.argv[1]) / "results" / "datasets"
    training = xr.open_dataset(root / "training.nc")
    final = training["mean_return"].isel(iteration=slice(-10, None)).mean("iteration")
    print("| task | algorithm | " + " | ".join(f"seed {int(s)}" for s in final["seed"].values) + " | mean |")
    print("|---|---|" + "---|" * (final.sizes["seed"] + 1))
    for env in final["env"].values:
        for algo in final["algo"].values:
            row = final.sel(env=env, algo=algo).values
            if np.isfinite(row).any():
                print(f"| {env} | {algo} | " + " | ".join(f"{v:.0f}" for v in row) + f" | {np.nanmean(row):.0f} |")
    print()

    gradients = xr.open_dataset(root / "gradients.nc")
    # values / baselines may be missing or cover fewer checkpoints (a study still running): "–"
    values = xr.open_dataset(root / "values.nc") if (root / "values.nc").exists() else None
    baselines = xr.open_dataset(root / "baselines.nc") if (root / "baselines.nc").exists() else None
    names = [str(b) for b in baselines["baseline"].values] if baselines is not None else \
        ["true_value", "value_net", "zero"]
    unbiased = baselines is not None and "relative_variance_unbiased" in baselines
    variance_name = "relative_variance_unbiased" if unbiased else "relative_variance"
    label = "rel. var. (unbiased)" if unbiased else "rel. var. (plug-in)"
    print("| task | algorithm | iteration | Fig. 1 pairwise cosine @2048 | Fig. 2 reference cosine @2048 | "
          "Fig. 3 MRE GAE | Fig. 3 MRE returns | " + " | ".join(f"Fig. 4 {label} {n}" for n in names) + " |")
    print("|---|---|---|---|---|---|---|" + "---|" * len(names))
    for env in gradients["env"].values:
        for algo in gradients["algo"].values:
            for it in gradients["iteration"].values:
                g = gradients.sel(env=env, algo=algo, iteration=it)
                g = g.sel(sample_count=g["sample_count"].values[np.argmin(abs(g["sample_count"].values - 2048))])
                if not np.isfinite(g["mean_pairwise_cosine"].values).any():
                    continue
                cells = [_cell(g["mean_pairwise_cosine"].values), _cell(g["mean_reference_cosine"].values)]
                try:
                    v = values.sel(env=env, algo=algo, iteration=it, split="heldout")
                    cells += [_cell(v["mre"].sel(target="gae").values), _cell(v["mre"].sel(target="returns").values)]
                except (AttributeError, KeyError):
                    cells += ["–", "–"]
                try:
                    b = baselines.sel(env=env, algo=algo, iteration=it, lambda_setting="paper")
                    b = b.sel(sample_count=b["sample_count"].values[np.argmin(abs(b["sample_count"].values - 2048))])
                    cells += [_cell(b[variance_name].sel(baseline=n).values) for n in names]
                except (AttributeError, KeyError):
                    cells += ["–"] * len(names)
                print(f"| {env} | {algo} | {int(it)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
