"""The claims table of two runs of the 3-seed study side by side (issue 23 part 5).

    python docs/measurements/claims_study_v2/compare.py OLD_claims.nc NEW_claims.nc

Prints one Markdown row per claim: each run's statistic name, value, 95% CI and verdict,
and a last line counting each run's inconclusive claims.
"""
from __future__ import annotations

import sys

import xarray as xr


def _cell(ds, claim) -> list[str]:
    row = ds.sel(claim=claim)
    value, low, high = (float(row[name]) for name in ("statistic", "ci_low", "ci_high"))
    return [str(row["statistic_name"].values), f"{value:.3g}", f"[{low:.3g}, {high:.3g}]",
            f"**{row['verdict'].values}**"]


def main() -> None:
    old, new = (xr.open_dataset(path) for path in sys.argv[1:3])
    print(f"old: commit {old.attrs['git_commit'][:7]}; new: commit {new.attrs['git_commit'][:7]}")
    print()
    print("| claim | threshold | old statistic | old value | old 95% CI | old verdict | "
          "new statistic | new value | new 95% CI | new verdict |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for claim in new["claim"].values:
        row = new.sel(claim=claim)
        threshold = f"{row['direction'].values} {float(row['threshold']):.3g}"
        old_cells = _cell(old, claim) if claim in old["claim"].values else ["–"] * 4
        print(f"| {claim} | {threshold} | " + " | ".join(old_cells + _cell(new, claim)) + " |")
    counts = [int((ds["verdict"] == "inconclusive").sum()) for ds in (old, new)]
    print()
    print(f"inconclusive: old {counts[0]} of {old.sizes['claim']}, new {counts[1]} of {new.sizes['claim']}")


if __name__ == "__main__":
    main()
