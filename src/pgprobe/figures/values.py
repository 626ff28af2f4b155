"""Value-prediction figures (paper §2.2, Appendix A.5): Figures 3, 4, 11 and 12.

* ``fig3``: held-out MRE of the value net against the GAE target (V_old + A, eq. 4; left)
  and against the discounted returns (right) over training iterations, one line per
  algorithm (mean over seeds, 95% bootstrap CI), log₂ y-axis.  Dataset ``values``; option
  ``env`` (default Walker2d-v5, the paper's), ``targets`` (default ["gae", "returns"]; add
  "true_value" for the restored-state value target, "undiscounted_returns" for the
  diagnostic reward-to-go target, "gae_authors" / "returns_authors" for the paper's code's
  definitions), ``algos``.
* ``fig4``: gradient variance with three baselines: mean pairwise cosine similarity of
  gradient estimates vs state-action pairs per estimate (log x), one panel per task (rows;
  default Walker2d-v5 then Hopper-v5) and checkpoint iteration (columns), one line per
  baseline with a 95% bootstrap CI over pairs (and seeds); dotted line at 2K samples, the
  practical regime.  Dataset ``baselines``; options ``envs``, ``algo`` (default ppo),
  ``iterations``, ``baselines``.
* ``fig11`` / ``fig12``: train / held-out MRE (GAE target left, returns right) for every
  task (rows), one line per algorithm.  fig11 reads the per-iteration train MREs of
  ``training`` (train.nc's value_mre_gae / value_mre_returns, every iteration) and falls back
  to the ``values`` dataset's train split (probed checkpoints only) when ``training`` is not
  given; fig12 reads ``values``.  Options ``envs``, ``algos``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
import matplotlib.pyplot as plt

from ..errors import PgprobeError
from .style import ALGO_COLORS, ALGO_LABELS, choose, choose_many, figure_size, save_figure, shared_legend

ENV_ORDER = ["Hopper-v5", "Walker2d-v5", "Humanoid-v5"]          # Figures 11/12 rows (paper order)
TARGET_LABELS = {"gae": "GAE MRE", "returns": "Returns MRE", "true_value": "True-value MRE",
                 "undiscounted_returns": "Undiscounted-returns MRE",
                 "gae_authors": "GAE 'MRE' (authors' code: sq. error / |y|)",
                 "returns_authors": "Returns MRE (authors' definition)"}
BASELINE_LABELS = {"true_value": "true value", "value_net": "value network", "zero": "zero"}
PRACTICAL_SAMPLES = 2048


def _ordered_envs(available) -> list:
    available = [str(e) for e in available]
    return [e for e in ENV_ORDER if e in available] + [e for e in available if e not in ENV_ORDER]


def _mre_frame(ds, split: str) -> pd.DataFrame:
    """Long table (env, algo, seed, iteration, target, mre) of a values dataset's split."""
    da = ds["mre"].sel(split=split)
    frame = da.to_dataframe(name="mre").reset_index()
    return frame[np.isfinite(frame["mre"])][["env", "algo", "seed", "iteration", "target", "mre"]]


def _training_frame(ds) -> pd.DataFrame:
    """The same long table from train.nc's per-iteration train MREs (every iteration)."""
    frames = []
    for target, name in (("gae", "value_mre_gae"), ("returns", "value_mre_returns")):
        frame = ds[name].to_dataframe(name="mre").reset_index()
        frame["target"] = target
        frames.append(frame[["env", "algo", "seed", "iteration", "target", "mre"]])
    frame = pd.concat(frames, ignore_index=True)
    return frame[np.isfinite(frame["mre"])]


def _mre_panels(frame: pd.DataFrame, envs: list, algos: list, targets: list, options: dict, title: str):
    fig, axes = plt.subplots(len(envs), len(targets), squeeze=False,
                             figsize=figure_size(options, len(targets), len(envs)))
    for row, env in enumerate(envs):
        for col, target in enumerate(targets):
            ax = axes[row, col]
            sub = frame[(frame["env"] == env) & (frame["target"] == target) & frame["algo"].isin(algos)]
            for algo in algos:
                part = sub[sub["algo"] == algo]
                if part.empty:
                    continue
                sns.lineplot(data=part, x="iteration", y="mre", ax=ax, errorbar=("ci", 95),
                             color=ALGO_COLORS.get(algo), label=ALGO_LABELS.get(algo, algo),
                             marker="o" if part["iteration"].nunique() < 20 else None, markersize=3)
            if not sub.empty and (sub["mre"] > 0).all():
                ax.set_yscale("log", base=2)
            ax.set_xlabel("# Iterations")
            ax.set_ylabel(TARGET_LABELS.get(target, target))
            ax.set_title(env if len(envs) > 1 or col == 0 else "")
            if ax.get_legend() is not None:
                ax.get_legend().remove()
    shared_legend(axes)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def fig3(datasets: dict, options: dict, out_path) -> None:
    ds = datasets["values"]
    env = choose(options, "env", ds["env"].values, "Walker2d-v5")
    algos = choose_many(options, "algos", ds["algo"].values)
    targets = list(options.get("targets", ["gae", "returns"]))
    bad = [t for t in targets if t not in TARGET_LABELS]
    if bad:
        raise PgprobeError(f"figure option targets: {bad[0]!r} is not one of {', '.join(TARGET_LABELS)}")
    frame = _mre_frame(ds.sel(env=[env]), "heldout")
    fig = _mre_panels(frame, [env], algos, targets, options, f"{env}: value prediction, held-out MRE")
    save_figure(fig, out_path)


def fig11(datasets: dict, options: dict, out_path) -> None:
    if "training" in datasets and "value_mre_gae" in datasets["training"]:
        ds = datasets["training"]
        frame = _training_frame(ds)
    elif "values" in datasets:
        ds = datasets["values"]
        frame = _mre_frame(ds, "train")
    else:
        raise PgprobeError("fig11 needs the training dataset (or a values dataset)")
    envs = choose_many(options, "envs", _ordered_envs(ds["env"].values))
    algos = choose_many(options, "algos", ds["algo"].values)
    fig = _mre_panels(frame, envs, algos, ["gae", "returns"], options, "Value prediction, train MRE")
    save_figure(fig, out_path)


def fig12(datasets: dict, options: dict, out_path) -> None:
    ds = datasets["values"]
    envs = choose_many(options, "envs", _ordered_envs(ds["env"].values))
    algos = choose_many(options, "algos", ds["algo"].values)
    fig = _mre_panels(_mre_frame(ds, "heldout"), envs, algos, ["gae", "returns"], options,
                      "Value prediction, held-out MRE")
    save_figure(fig, out_path)


LAMBDA_SETTING_TITLES = {"paper": "paper's arms (zero at λ=1)", "matched": "λ matched (all at λ=1)"}


def fig4(datasets: dict, options: dict, out_path) -> None:
    """Rows: per task, the paper's comparison, then the λ-matched one (every baseline at the
    zero arm's λ, so only the baseline differs); columns: iterations."""
    ds = datasets["baselines"]
    envs = choose_many(options, "envs", ds["env"].values, ["Walker2d-v5", "Hopper-v5"])
    algo = choose(options, "algo", ds["algo"].values, "ppo")
    iterations = choose_many(options, "iterations", ds["iteration"].values)
    names = choose_many(options, "baselines", ds["baseline"].values)
    settings = choose_many(options, "lambda_settings", ds["lambda_setting"].values)
    frame = (ds["pairwise_cosine"].sel(algo=algo, baseline=names, lambda_setting=settings)
             .to_dataframe(name="cosine").reset_index())
    frame = frame[np.isfinite(frame["cosine"])]
    palette = dict(zip(names, sns.color_palette("colorblind", len(names))))
    rows = [(env, setting) for env in envs for setting in settings]
    fig, axes = plt.subplots(len(rows), len(iterations), squeeze=False, sharey=True,
                             figsize=figure_size(options, len(iterations), len(rows)))
    for row, (env, setting) in enumerate(rows):
        for col, iteration in enumerate(iterations):
            ax = axes[row, col]
            sub = frame[(frame["env"] == env) & (frame["iteration"] == iteration)
                        & (frame["lambda_setting"] == setting)]
            for name in names:
                part = sub[sub["baseline"] == name]
                if not part.empty:
                    sns.lineplot(data=part, x="sample_count", y="cosine", ax=ax, errorbar=("ci", 95),
                                 color=palette[name], label=BASELINE_LABELS.get(name, name),
                                 marker="o", markersize=3)
            ax.axvline(PRACTICAL_SAMPLES, color="black", linestyle=":", linewidth=1)
            ax.set_xscale("log")
            ax.set_xlabel("# State-action pairs")
            ax.set_ylabel("Avg. pairwise cos sim" if col == 0 else "")
            ax.set_title(f"{env} {ALGO_LABELS.get(algo, algo)}, iter {iteration}\n"
                         f"{LAMBDA_SETTING_TITLES.get(setting, setting)}", fontsize="small")
            if ax.get_legend() is not None:
                ax.get_legend().remove()
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        axes[0, -1].legend(handles, labels, loc="best", title="baseline")
    fig.tight_layout()
    save_figure(fig, out_path)


FIGURES = {
    "fig3": {"func": fig3, "datasets": ["values"],
             "caption": "Held-out MRE of the value net against GAE targets (V_old + A, eq. 4) and "
                        "against discounted returns over training (paper Figure 3, Walker2d)."},
    "fig4": {"func": fig4, "datasets": ["baselines"],
             "caption": "Gradient variance (mean pairwise cosine similarity of gradient estimates) vs "
                        "state-action pairs with the true-value, value-network and zero baselines "
                        "(paper Figure 4); per task, first row the paper's arms (zero baseline at "
                        "lambda = 1, the others at the agent's lambda), second row every baseline at "
                        "lambda = 1 so that only the baseline differs."},
    "fig11": {"func": fig11, "datasets": ["training"],
              "caption": "Train MRE (fit batch) of the value net against GAE targets and returns, all "
                         "tasks (paper Figure 11)."},
    "fig12": {"func": fig12, "datasets": ["values"],
              "caption": "Held-out MRE of the value net against GAE targets and returns, all tasks "
                         "(paper Figure 12)."},
}
