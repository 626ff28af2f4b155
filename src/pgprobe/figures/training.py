"""Training figures: reward curves (paper Figure 8) and the sample-regime grid (§2.1).

* ``fig8``: mean episode reward per iteration, one panel per task, each seed's run as a thin
  line colored by algorithm (the paper shows 10 of its 24 agents; option ``max_seeds``)
  and the mean over seeds with its 95% bootstrap confidence interval (seaborn,
  ``errorbar=("ci", 95)``).  Dataset ``training`` (results/datasets/training.nc: dims env,
  algo, seed, iteration; variable ``mean_return`` = mean undiscounted return of the
  episodes completed in the iteration).
* ``fig_sample_regime``: the paper's §2.1 remark that the sample regime changes training
  dynamics, and its conclusion (§5) that "better gradient estimates can require lower
  learning rates".  Training runs on a grid of steps per iteration N × learning-rate scale
  c (PPO: c × Table 1 policy LR; TRPO: c × Table 1 KL bound δ), config ``sample_regime``.
  One row per task × algorithm; one panel per N with one curve per c (mean over seeds and
  95% bootstrap CI) against environment steps (``x: env_steps``, default, so every panel
  spends the same sample budget per x) or iterations; a last panel shows the final reward
  (mean over the last 10% of iterations) against c, one line per N.  Dataset
  ``sample_regime`` (dims env, algo, seed, steps_per_iteration, lr_scale, iteration).
"""
from __future__ import annotations

import matplotlib.ticker
import numpy as np
import pandas as pd
import seaborn as sns
import matplotlib.pyplot as plt

from ..errors import PgprobeError
from .style import ALGO_COLORS, ALGO_LABELS, choose_many, figure_size, save_figure

PAPER_ENVS = ["Humanoid-v5", "Walker2d-v5", "Hopper-v5"]   # Figure 8's panels, left to right


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over iterations (NaN-aware), window 1 = unchanged."""
    if window <= 1:
        return values
    series = pd.Series(values)
    return series.rolling(window, min_periods=1).mean().to_numpy()


def _frame(ds, variable: str, dims: list[str], smoothing: int, x: str) -> pd.DataFrame:
    """Long table: one row per run (dims) and iteration, with ``x`` and the smoothed value."""
    da = ds[variable].transpose(*dims, "iteration")
    iterations = ds["iteration"].values
    rows = []
    for index in np.ndindex(*da.shape[:-1]):
        values = _smooth(da.values[index], smoothing)
        label = {d: ds[d].values[i].item() for d, i in zip(dims, index)}
        if "env_steps" in ds and x == "env_steps":
            steps = ds["env_steps"].transpose(*dims, "iteration").values[index]
        elif x == "env_steps":
            steps = iterations * label.get("steps_per_iteration", np.nan)
        else:
            steps = iterations
        for it, xv, v in zip(iterations, steps, values):
            if np.isfinite(v) and np.isfinite(xv):
                rows.append({**label, "iteration": int(it), "x": float(xv), "value": float(v)})
    return pd.DataFrame(rows)


def _x_label(x: str) -> str:
    return "# Iterations" if x == "iteration" else "Environment steps"


def _errorbar(options: dict):
    return ("ci", float(options.get("ci", 95)))


def fig8(datasets: dict, options: dict, out_path) -> None:
    """Mean reward curves (paper Figure 8): panels per task, colors per algorithm."""
    ds = datasets["training"]
    envs = choose_many(options, "envs", ds["env"].values, PAPER_ENVS)
    algos = choose_many(options, "algos", ds["algo"].values)
    seeds = choose_many(options, "seeds", ds["seed"].values)
    max_seeds = int(options.get("max_seeds", 10))
    x = options.get("x", "iteration")
    smoothing = int(options.get("smoothing", 1))
    n_boot = int(options.get("n_boot", 500))
    sub = ds.sel(env=envs, algo=algos, seed=seeds)
    frame = _frame(sub, "mean_return", ["env", "algo", "seed"], smoothing, x)
    if frame.empty:
        raise PgprobeError("fig8: the training dataset has no finite mean_return for the selection")
    fig, axes = plt.subplots(1, len(envs), figsize=figure_size(options, len(envs), 1), squeeze=False)
    for ax, env in zip(axes[0], envs):
        part = frame[frame["env"] == env]
        for algo in algos:
            runs = part[part["algo"] == algo]
            shown = sorted(runs["seed"].unique())[:max_seeds]
            for seed in shown:
                one = runs[runs["seed"] == seed]
                single = len(shown) == 1
                ax.plot(one["x"], one["value"], color=ALGO_COLORS.get(algo), alpha=1.0 if single else 0.35,
                        linewidth=1.5 if single else 0.7)
            if runs["seed"].nunique() > 1:
                sns.lineplot(data=runs, x="x", y="value", ax=ax, color=ALGO_COLORS.get(algo),
                             errorbar=_errorbar(options), n_boot=n_boot, seed=0,
                             label=ALGO_LABELS.get(algo, algo), linewidth=1.6)
            elif not runs.empty:
                ax.plot([], [], color=ALGO_COLORS.get(algo), label=ALGO_LABELS.get(algo, algo))
        ax.set_title(options.get("title", env) if len(envs) == 1 else env)
        ax.set_xlabel(_x_label(x))
        ax.set_ylabel("Mean reward" if ax is axes[0][0] else "")
        ax.legend(frameon=False)
    fig.tight_layout()
    save_figure(fig, out_path)


def fig_sample_regime(datasets: dict, options: dict, out_path) -> None:
    """Training curves over steps per iteration × learning-rate scale (paper §2.1, §5)."""
    ds = datasets["sample_regime"]
    envs = choose_many(options, "envs", ds["env"].values)
    algos = choose_many(options, "algos", ds["algo"].values)
    seeds = choose_many(options, "seeds", ds["seed"].values)
    x = options.get("x", "env_steps")
    smoothing = int(options.get("smoothing", 1))
    n_boot = int(options.get("n_boot", 500))
    sub = ds.sel(env=envs, algo=algos, seed=seeds)
    dims = ["env", "algo", "seed", "steps_per_iteration", "lr_scale"]
    frame = _frame(sub, "mean_return", dims, smoothing, x)
    if frame.empty:
        raise PgprobeError("fig_sample_regime: the dataset has no finite mean_return for the selection")
    steps_list = [int(s) for s in sub["steps_per_iteration"].values]
    scales = [float(c) for c in sub["lr_scale"].values]
    rows = [(e, a) for e in envs for a in algos if not frame[(frame["env"] == e) & (frame["algo"] == a)].empty]
    palette = dict(zip(scales, sns.color_palette("viridis", len(scales))))
    columns = len(steps_list) + 1
    fig, axes = plt.subplots(len(rows), columns, figsize=figure_size(options, columns, len(rows)),
                             squeeze=False)
    for r, (env, algo) in enumerate(rows):
        part = frame[(frame["env"] == env) & (frame["algo"] == algo)]
        for c, steps in enumerate(steps_list):
            ax = axes[r][c]
            panel = part[part["steps_per_iteration"] == steps]
            for scale in scales:
                curve = panel[panel["lr_scale"] == scale]
                if curve.empty:
                    continue
                sns.lineplot(data=curve, x="x", y="value", ax=ax, color=palette[scale],
                             errorbar=_errorbar(options) if curve["seed"].nunique() > 1 else None,
                             n_boot=n_boot, seed=0, label=f"{scale:g}×")
            ax.set_title(f"{env} {ALGO_LABELS.get(algo, algo)}, N={steps}")
            ax.set_xlabel(_x_label(x))
            ax.set_ylabel("Mean reward" if c == 0 else "")
            if ax.get_legend() is not None:
                ax.legend(title="LR scale" if algo == "ppo" else "δ scale", frameon=False)
        # Final reward (mean over the last 10% of iterations) against the LR scale.
        ax = axes[r][-1]
        last = part["iteration"].max()
        tail = part[part["iteration"] > last - max(1, int(round(0.1 * last)))]
        final = tail.groupby(["steps_per_iteration", "lr_scale", "seed"], as_index=False)["value"].mean()
        step_palette = dict(zip(steps_list, sns.color_palette("rocket", len(steps_list))))
        for steps in steps_list:
            line = final[final["steps_per_iteration"] == steps]
            if line.empty:
                continue
            sns.lineplot(data=line, x="lr_scale", y="value", ax=ax, color=step_palette[steps], marker="o",
                         errorbar=_errorbar(options) if line["seed"].nunique() > 1 else None,
                         n_boot=n_boot, seed=0, label=f"N={steps}")
        ax.set_xscale("log")
        ax.set_xticks(scales)
        ax.set_xticklabels([f"{c:g}×" for c in scales])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_title("final reward")
        ax.set_xlabel("LR scale" if algo == "ppo" else "δ scale")
        ax.set_ylabel("")
        if ax.get_legend() is not None:
            ax.legend(frameon=False)
    fig.tight_layout()
    save_figure(fig, out_path)


FIGURES = {
    "fig8": {"func": fig8, "datasets": ["training"],
             "caption": "Mean reward per iteration for each task and algorithm (thin: individual "
                        "seeds; thick: mean over seeds with 95% bootstrap CI). Paper Figure 8."},
    "fig_sample_regime": {"func": fig_sample_regime, "datasets": ["sample_regime"],
                          "caption": "Training curves for a grid of steps per iteration (panels) and "
                                     "learning-rate scales (colors); last panel: final reward vs scale. "
                                     "Paper §2.1 and §5: more samples can need lower learning rates."},
}
