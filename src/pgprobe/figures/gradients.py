"""Gradient- and step-quality figures (paper §2.1 and Appendix A.4): Figures 1, 2, 9, 10 and
the Appendix A.4 step figures.

Every figure: x = state-action pairs per estimate (log₂ axis), y = cosine similarity, one
panel per task (rows) and checkpoint iteration (columns), one line per trained agent
(algorithm × seed, colored by algorithm) with a 95% bootstrap CI (500 resamples, as the
paper) over the pairs (variance) or the estimates (convergence); dotted vertical line at
2K samples, the regime the algorithms use.

* ``fig1``: mean pairwise cosine similarity of gradient estimates (variance), Humanoid.
* ``fig2``: cosine similarity of gradient estimates with the reference ("true") gradient,
  Humanoid.
* ``fig9`` / ``fig10``: the same for the other tasks (default Walker2d-v5 and Hopper-v5).
* ``figA4_steps_variance`` / ``figA4_steps_convergence``: the same two measures for the
  algorithms' actual update steps θ′ − θ0 (dataset ``steps``), every task.

Options (config ``figures.<name>``): ``envs`` (list) or ``env``, ``algos``, ``iterations``
(default: every probed iteration, at most ``max_iterations`` = 4, evenly spread), plus
style keys (width, height).  A requested value the dataset lacks is a one-line error.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..errors import PgprobeError
from .style import ALGO_COLORS, ALGO_LABELS, choose_many, figure_size, save_figure, shared_legend

PRACTICAL_SAMPLES = 2048
ENV_ORDER = ["Humanoid-v5", "Walker2d-v5", "Hopper-v5"]
YLABELS = {"pairwise_cosine": "Avg. pairwise cos. sim.", "reference_cosine": "Avg. cos. sim. with true"}


def _frame(ds, variable: str) -> pd.DataFrame:
    frame = ds[variable].to_dataframe(name="value").reset_index()
    frame = frame[np.isfinite(frame["value"])]
    return frame[["env", "algo", "seed", "iteration", "sample_count", "value"]]


def _iterations(options: dict, available: list) -> list:
    if "iterations" in options:
        return choose_many(options, "iterations", available)
    limit = int(options.get("max_iterations", 4))
    if len(available) <= limit:
        return available
    picks = np.linspace(0, len(available) - 1, limit).round().astype(int)
    return [available[i] for i in sorted(set(picks))]


def _similarity_figure(ds, variable: str, options: dict, out_path, default_envs: list, title: str) -> None:
    if variable not in ds:
        raise PgprobeError(f"dataset lacks variable {variable!r}: expected a gradients or steps dataset")
    frame = _frame(ds, variable)
    if frame.empty:
        raise PgprobeError(f"dataset has no finite {variable} values to plot")
    available_envs = sorted(frame["env"].unique(), key=lambda e: (ENV_ORDER.index(e) if e in ENV_ORDER else 99, e))
    if "env" in options and "envs" not in options:
        options = {**options, "envs": [options["env"]]}
    envs = choose_many(options, "envs", available_envs, [e for e in default_envs if e in available_envs] or None)
    algos = choose_many(options, "algos", sorted(frame["algo"].unique()))
    frame = frame[frame["env"].isin(envs) & frame["algo"].isin(algos)]
    iterations = _iterations(options, sorted(int(i) for i in frame["iteration"].unique()))
    fig, axes = plt.subplots(len(envs), len(iterations), squeeze=False, sharey=True,
                             figsize=figure_size(options, len(iterations), len(envs)))
    for row, env in enumerate(envs):
        for col, iteration in enumerate(iterations):
            ax = axes[row, col]
            sub = frame[(frame["env"] == env) & (frame["iteration"] == iteration)]
            for (algo, seed), part in sub.groupby(["algo", "seed"]):
                sns.lineplot(data=part, x="sample_count", y="value", ax=ax, errorbar=("ci", 95), n_boot=500,
                             seed=0, color=ALGO_COLORS.get(algo), label=ALGO_LABELS.get(algo, algo))
                if variable == "reference_cosine" and "reference_true_cosine" in ds:
                    # the reference's own estimated cosine with the true gradient: where the
                    # curve would level off if the reference were the estimates' only error
                    ceiling = float(ds["reference_true_cosine"].sel(env=env, algo=algo, seed=seed,
                                                                    iteration=iteration))
                    if np.isfinite(ceiling):
                        ax.axhline(ceiling, color=ALGO_COLORS.get(algo), linestyle="--", linewidth=0.8)
            ax.axvline(PRACTICAL_SAMPLES, color="black", linestyle=":", linewidth=1)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("# State-Action Pairs")
            ax.set_ylabel(YLABELS.get(variable, variable) if col == 0 else "")
            ax.set_title(f"{env}, iteration {iteration}" if len(envs) > 1 else f"Iteration {iteration}")
            if ax.get_legend() is not None:
                ax.get_legend().remove()
    shared_legend(axes)
    fig.suptitle(title if len(envs) > 1 else f"{title} ({envs[0]})")
    fig.tight_layout()
    save_figure(fig, out_path)


def fig1(datasets: dict, options: dict, out_path) -> None:
    _similarity_figure(datasets["gradients"], "pairwise_cosine", options, out_path, ["Humanoid-v5"],
                       "Gradient estimate variance")


def fig2(datasets: dict, options: dict, out_path) -> None:
    _similarity_figure(datasets["gradients"], "reference_cosine", options, out_path, ["Humanoid-v5"],
                       "Convergence to the true gradient")


def fig9(datasets: dict, options: dict, out_path) -> None:
    _similarity_figure(datasets["gradients"], "pairwise_cosine", options, out_path,
                       ["Walker2d-v5", "Hopper-v5"], "Gradient estimate variance")


def fig10(datasets: dict, options: dict, out_path) -> None:
    _similarity_figure(datasets["gradients"], "reference_cosine", options, out_path,
                       ["Walker2d-v5", "Hopper-v5"], "Convergence to the true gradient")


def figA4_steps_variance(datasets: dict, options: dict, out_path) -> None:  # noqa: N802
    _similarity_figure(datasets["steps"], "pairwise_cosine", options, out_path, ENV_ORDER,
                       "Update step variance")


def figA4_steps_convergence(datasets: dict, options: dict, out_path) -> None:  # noqa: N802
    _similarity_figure(datasets["steps"], "reference_cosine", options, out_path, ENV_ORDER,
                       "Convergence to the reference update step")


FIGURES = {
    "fig1": {"func": fig1, "datasets": ["gradients"],
             "caption": "Empirical variance of the gradient estimate (eq. 1): mean pairwise cosine similarity "
                        "of independent estimates vs state-action pairs, Humanoid (paper Figure 1)."},
    "fig2": {"func": fig2, "datasets": ["gradients"],
             "caption": "Convergence of gradient estimates to the reference gradient: cosine similarity vs "
                        "state-action pairs, Humanoid (paper Figure 2); dashed: the reference's own "
                        "estimated cosine with the true gradient (from its two halves)."},
    "fig9": {"func": fig9, "datasets": ["gradients"],
             "caption": "Gradient estimate variance vs state-action pairs, Walker2d and Hopper (paper Figure 9)."},
    "fig10": {"func": fig10, "datasets": ["gradients"],
              "caption": "Convergence of gradient estimates to the reference gradient, Walker2d and Hopper "
                         "(paper Figure 10); dashed: the reference's estimated cosine with the true gradient."},
    "figA4_steps_variance": {"func": figA4_steps_variance, "datasets": ["steps"],
                             "caption": "Variance of the algorithms' update steps (pairwise cosine similarity) "
                                        "vs state-action pairs (paper Appendix A.4)."},
    "figA4_steps_convergence": {"func": figA4_steps_convergence, "datasets": ["steps"],
                                "caption": "Cosine similarity of update steps with the reference step vs "
                                           "state-action pairs (paper Appendix A.4)."},
}
