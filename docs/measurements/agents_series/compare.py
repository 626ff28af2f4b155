"""Issue 27 §3: two PPOs on one task across training, probe by probe at matched environment
steps, and the claims table of each run on its own.

    python docs/measurements/agents_series/compare.py DATASETS_DIR [--runs ppo zoo_ppo] > comparison.md

DATASETS_DIR holds the collected gradients.nc, values.nc, baselines.nc, landscapes.nc (a
study's results/datasets).  Per run (dataset coordinate ``algo``: pgprobe's ``ppo``, the
imported agent's config name) and probed checkpoint, with its ``env_steps``:

* Figure 1: mean pairwise cosine of the gradient estimates at N = 2048 and at the largest N;
* Figure 2: mean cosine with the reference gradient at the same N;
* Figures 6-7: correlation of surrogate and true reward over the landscape grid (C6's unit);
* the episode return at θ (the landscape's origin, its trajectories' mean), the reference
  sample's mean episode length (the gradients probe's) and Figure 3's held-out
  value MRE against returns;

then ``pgprobe.claims.evaluate`` on each run's slice of the datasets alone (one seed: units
are its checkpoints; the CIs carry the estimates' noise and the checkpoints', not the spread
between training runs), side by side.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import xarray as xr

from pgprobe import claims
from pgprobe.claims import _correlation_unit, _nearest

PROBES = ("gradients", "values", "baselines", "landscapes")
BATCH = 2048


def _fmt(value, digits=3) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}g}"


def _one_run(ds: xr.Dataset, algo: str, env: str | None = None, seed: int | None = None) -> xr.Dataset | None:
    """The run's slice (dims kept, length 1), its probed checkpoints only."""
    if "algo" not in ds.dims or algo not in ds["algo"].values:
        return None
    run = ds.sel(algo=[algo])
    if env is not None and "env" in run.dims:
        run = run.sel(env=[env])
    if seed is not None and "seed" in run.dims:
        run = run.sel(seed=[seed])
    keep = [i for i in run["iteration"].values
            if any(np.isfinite(np.asarray(run[v].sel(iteration=i).values, np.float64)).any()
                   for v in run.data_vars if "iteration" in run[v].dims and run[v].dtype.kind == "f")]
    return run.sel(iteration=keep)


def checkpoint_rows(datasets: dict, algo: str, env: str | None = None, seed: int | None = None) -> list[dict]:
    gradients = _one_run(datasets["gradients"], algo, env, seed)
    landscapes = _one_run(datasets["landscapes"], algo, env, seed)
    iterations = sorted(set(gradients["iteration"].values.tolist() if gradients is not None else [])
                        | set(landscapes["iteration"].values.tolist() if landscapes is not None else []))
    settings = claims.check_settings(None)
    rows = []
    for iteration in iterations:
        row = {"iteration": int(iteration), "env_steps": np.nan}
        if gradients is not None and iteration in gradients["iteration"].values:
            g = gradients.sel(iteration=iteration).squeeze(drop=True)
            counts = g["sample_count"].values
            n, top = _nearest(counts, BATCH), int(counts.max())
            row.update(n=n, top=top, env_steps=float(gradients["env_steps"].sel(iteration=iteration).squeeze())
                       if "env_steps" in gradients.coords else np.nan,
                       pairwise_n=float(g["mean_pairwise_cosine"].sel(sample_count=n)),
                       pairwise_top=float(g["mean_pairwise_cosine"].sel(sample_count=top)),
                       reference_n=float(g["mean_reference_cosine"].sel(sample_count=n)),
                       reference_top=float(g["mean_reference_cosine"].sel(sample_count=top)),
                       episode_length=float(g["reference_mean_episode_length"]))
        if landscapes is not None and iteration in landscapes["iteration"].values:
            run = landscapes.sel(iteration=iteration).squeeze(drop=True)
            unit = _correlation_unit(run, settings)
            row["agreement"] = unit(None) if unit is not None else np.nan
            origin = run["episode_return"].isel(regime=0).sel(alpha=0.0, beta=0.0, method="nearest")
            row["return_at_theta"] = float(origin.mean())
            if not np.isfinite(row["env_steps"]) and "env_steps" in landscapes.coords:
                row["env_steps"] = float(landscapes["env_steps"].sel(iteration=iteration).squeeze())
        values = _one_run(datasets["values"], algo, env, seed) if "values" in datasets else None
        if values is not None and iteration in values["iteration"].values:
            held = values.sel(iteration=iteration, split="heldout").squeeze(drop=True)
            row["value_mre_returns"] = float(held["mre"].sel(target="returns"))
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets_dir", type=Path)
    parser.add_argument("--runs", nargs="+", default=["ppo", "zoo_ppo"])
    parser.add_argument("--env", default=None, help="task (default: the datasets' only one)")
    parser.add_argument("--seed", type=int, default=None, help="training seed (default: the only one)")
    args = parser.parse_args()
    datasets = {name: xr.open_dataset(args.datasets_dir / f"{name}.nc") for name in PROBES
                if (args.datasets_dir / f"{name}.nc").exists()}
    print("# Two PPOs across training, at matched environment steps\n")
    print(f"Made by `python docs/measurements/agents_series/compare.py {args.datasets_dir}`; "
          f"N = the sample count nearest {BATCH} and the largest.\n")
    made = next(iter(datasets.values())).attrs
    versions = ", ".join(f"{name} {made.get(f'{name}_version', 'not recorded')}"
                         for name in ("python", "numpy", "torch", "mujoco", "gymnasium"))
    print(f"Datasets collected at commit {str(made.get('git_commit', 'not recorded'))[:7]} with {versions} "
          "(`envs/lock.txt`).\n")
    for algo in args.runs:
        print(f"## {algo}\n")
        print("| iteration | env steps | pairwise cos, N | pairwise cos, max N | reference cos, N | "
              "reference cos, max N | surrogate–true reward correlation | episode return at θ | mean episode length | "
              "value MRE vs returns |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in checkpoint_rows(datasets, algo, args.env, args.seed):
            print(f"| {r['iteration']} | {_fmt(r['env_steps'], 7)} | {_fmt(r.get('pairwise_n'))} | "
                  f"{_fmt(r.get('pairwise_top'))} | {_fmt(r.get('reference_n'))} | {_fmt(r.get('reference_top'))} | "
                  f"{_fmt(r.get('agreement'))} | {_fmt(r.get('return_at_theta'), 4)} | {_fmt(r.get('episode_length'), 4)} | "
                  f"{_fmt(r.get('value_mre_returns'), 2)} |")
        print()
    tables = {}
    for algo in args.runs:
        sliced = {name: part for name, ds in datasets.items()
                  if (part := _one_run(ds, algo, args.env, args.seed)) is not None}
        tables[algo] = claims.evaluate(sliced)
    print("## Claims, each run alone\n")
    print("| claim | " + " | ".join(args.runs) + " |")
    print("|---|" + "---|" * len(args.runs))
    for claim in tables[args.runs[0]]["claim"].values:
        cells = []
        for algo in args.runs:
            row = tables[algo].sel(claim=claim)
            value = float(row["statistic"])
            cells.append("not measured" if not np.isfinite(value) else
                         f"{value:.3g} [{float(row['ci_low']):.3g}, {float(row['ci_high']):.3g}] "
                         f"**{row['verdict'].item()}** ({int(row['unit_count'])} units)")
        print(f"| {claim}: {tables[args.runs[0]].sel(claim=claim)['text'].item()} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
