"""Figure 3's returns MRE under each target definition: one table from values datasets.

Usage (after `pgprobe probe values --checkpoint ... --out DIR/NAME.nc` for each checkpoint):

  python docs/measurements/value_mre_definitions.py DIR/*.nc > table.md

Prints one markdown row per (task, algorithm, seed, iteration, split) with the MRE of the
value net against every target of values.nc: the correct definitions (gae, returns,
true_value) and the paper's code's (gae_authors, returns_authors), plus the diagnostic
undiscounted reward-to-go.  Then an ablation of the returns MRE on held-out data, one
ingredient of the authors' definition at a time, recomputed from the stored per-sample
arrays:

  A  returns (bootstrapped at cuts), samples whose return leans ≤ 5% on the bootstrap, guarded MRE
  B  returns (bootstrapped at cuts), every sample, guarded MRE
  C  returns_authors (time limit terminal, no bootstrap at the cut), non-terminal samples, guarded MRE
  C1 only the stream cut unbootstrapped (time-limit ends bootstrapped), non-terminal samples, guarded
  C2 only the time-limit ends unbootstrapped (the stream cut bootstrapped), non-terminal samples, guarded
  D  returns_authors, non-terminal samples, the authors' formula mean |V − R| / |R|
"""
from __future__ import annotations

import sys

import numpy as np
import xarray as xr

COLUMNS = ["gae", "returns", "true_value", "undiscounted_returns", "gae_authors", "returns_authors"]


def rows(paths: list[str]):
    for path in sorted(paths):
        ds = xr.open_dataset(path)
        run = ds.isel(env=0, algo=0, seed=0, iteration=0)
        for split in ("train", "heldout"):
            mre = run["mre"].sel(split=split)
            yield (str(run["env"].values), str(run["algo"].values), int(run["seed"].values),
                   int(run["iteration"].values), split,
                   [float(mre.sel(target=t)) if t in mre["target"].values else np.nan for t in COLUMNS])


def ablation(path: str) -> list[float]:
    from pgprobe.stats import mean_relative_error

    run = xr.open_dataset(path).isel(env=0, algo=0, seed=0, iteration=0).sel(split="heldout")
    v = run["prediction"].values
    finite = np.isfinite(v)

    def guarded(target, mask):
        y = run["target_value"].sel(target=target).values
        mask = mask & finite & np.isfinite(y)
        return mean_relative_error(v[mask], y[mask])
    returns_mask = run["included"].sel(target="returns").values == 1
    authors_mask = run["included"].sel(target="returns_authors").values == 1
    # The last trajectory segment of every held-out stream (after its last episode end) is
    # the one the stream's end cuts; elsewhere a bootstrap can only come from a time limit.
    import json
    stream_steps = json.loads(xr.open_dataset(path).attrs["config_json"])["heldout_steps"]
    held = int(finite.sum())
    done = ~authors_mask[:held]
    last_segment = np.zeros(v.size, bool)
    for start in range(0, held, stream_steps):
        ends = np.flatnonzero(done[start:start + stream_steps])
        last_segment[start + (ends[-1] + 1 if ends.size else 0):start + stream_steps] = True
    returns = run["target_value"].sel(target="returns").values
    authors = run["target_value"].sel(target="returns_authors").values
    mask = authors_mask & finite

    def mixed(y):
        return mean_relative_error(v[mask], y[mask])
    return [guarded("returns", returns_mask), guarded("returns", finite), guarded("returns_authors", authors_mask),
            mixed(np.where(last_segment, authors, returns)), mixed(np.where(last_segment, returns, authors)),
            float(run["mre"].sel(target="returns_authors"))]


def main(paths: list[str]) -> None:
    print("| task | algo | seed | iteration | split | " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * (5 + len(COLUMNS)))
    for env, algo, seed, iteration, split, values in rows(paths):
        cells = " | ".join("–" if not np.isfinite(v) else f"{v:.3g}" for v in values)
        print(f"| {env} | {algo} | {seed} | {iteration} | {split} | {cells} |")
    print()
    print("| task | algo | seed | iteration | A | B | C | C1 | C2 | D |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path in sorted(paths):
        run = xr.open_dataset(path).isel(env=0, algo=0, seed=0, iteration=0)
        cells = " | ".join(f"{v:.3g}" for v in ablation(path))
        print(f"| {run['env'].values} | {run['algo'].values} | {int(run['seed'])} | {int(run['iteration'])} | {cells} |")


if __name__ == "__main__":
    main(sys.argv[1:])
