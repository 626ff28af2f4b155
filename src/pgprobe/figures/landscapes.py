"""Figures 5, 6, 7 and 13–20: optimization landscapes (paper §2.3, Appendix A.6).

All read the ``landscapes`` dataset (``pgprobe probe landscapes``, collected over runs) and
draw 3-D surfaces over the plane θ_0 + α·d_step + β·d_rand ("step direction" α in units of
one update step, "random direction" β in units of the random direction).

* fig5, fig19, fig20 — concentration: the true reward from T = 1 … max episodes per point
  (one panel per T); the paper's Figure 5 is TRPO on Humanoid at iteration 150, 19 TRPO and
  20 PPO on Humanoid.
* fig6 (TRPO), fig7 (PPO) — true reward and the algorithm's surrogate (eq. 14 / eq. 17) side
  by side for each step regime (state-action pairs used for the step), early and late in
  training (rows).
* fig13–fig18 — the same for every configured iteration: 13 Humanoid PPO, 14 Humanoid TRPO,
  15 Walker2d PPO, 16 Walker2d TRPO, 17 Hopper PPO, 18 Hopper TRPO.

``options`` (config ``figures.<figN>``; all optional): ``env``, ``algo``, ``seed``,
``iterations`` (list), ``iteration`` (fig5), ``regime`` (step sample count for the
concentration figures; default the smallest), ``trajectories`` (episodes per true-reward
point in fig6/7/13–18; default the most).  When the requested task or algorithm is not in
the data, the figure shows what is there and says so in its title.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

PAPER_TASK = "Humanoid-v5"
_ENV_PREFERENCE = ("Humanoid-v5", "Walker2d-v5", "Hopper-v5")


def _save(fig, out_path) -> None:
    try:
        from .style import save_figure
    except ImportError:
        fig.savefig(out_path, metadata={"CreationDate": None})
    else:
        save_figure(fig, out_path)


def _new_figure(rows: int, cols: int, panel=(3.6, 4.0)):
    from matplotlib.figure import Figure
    from mpl_toolkits.mplot3d import Axes3D  # noqa: F401  (registers the 3-D projection)

    return Figure(figsize=(panel[0] * cols, panel[1] * rows + 0.6))


def _has_data(ds: xr.Dataset, **sel) -> bool:
    try:
        sub = ds["surrogate"].sel(**sel)
    except KeyError:
        return False
    return bool(np.isfinite(sub.values).any())


def choose_run(ds: xr.Dataset, options: dict, algo: str, env: str = PAPER_TASK):
    """(dataset of one env/algo/seed with dims iteration, regime, alpha, beta, …, note).

    ``options`` may override env, algo and seed.  A task or algorithm that is not in the
    data is replaced by one that is, and ``note`` says so (else it is "").
    """
    want_env = options.get("env", env)
    want_algo = options.get("algo", algo)
    notes = []
    algos = [str(a) for a in ds["algo"].values]
    use_algo = want_algo
    if want_algo not in algos or not _has_data(ds, algo=want_algo):
        use_algo = next(a for a in algos if _has_data(ds, algo=a))
        notes.append(f"{want_algo.upper()} not in the data; showing {use_algo.upper()}")
    envs = [str(e) for e in ds["env"].values]
    use_env = want_env
    if want_env not in envs or not _has_data(ds, env=want_env, algo=use_algo):
        candidates = [e for e in _ENV_PREFERENCE if e in envs] + [e for e in envs if e not in _ENV_PREFERENCE]
        use_env = next(e for e in candidates if _has_data(ds, env=e, algo=use_algo))
        notes.append(f"{want_env} not in the data; showing {use_env}")
    sub = ds.sel(env=use_env, algo=use_algo)
    seeds = [int(s) for s in sub["seed"].values if _has_data(sub, seed=s)]
    seed = int(options.get("seed", seeds[0]))
    if seed not in seeds:
        notes.append(f"seed {seed} not in the data; showing seed {seeds[0]}")
        seed = seeds[0]
    sub = sub.sel(seed=seed)
    keep = [int(i) for i in sub["iteration"].values if _has_data(sub, iteration=i)]
    sub = sub.sel(iteration=keep)
    sub.attrs["run_label"] = f"{use_env} {use_algo.upper()} seed {seed}"
    return sub, "; ".join(notes)


def _surface(ax, da: xr.DataArray, title: str, zlabel: str, zlim=None) -> None:
    alpha, beta = da["alpha"].values, da["beta"].values
    grid_a, grid_b = np.meshgrid(alpha, beta, indexing="ij")
    values = da.transpose("alpha", "beta").values
    ax.plot_surface(grid_a, grid_b, values, cmap="viridis", linewidth=0.2, edgecolor="k",
                    antialiased=True, alpha=0.9)
    ax.set_xlabel("step direction")
    ax.set_ylabel("random direction")
    ax.set_zlabel(zlabel)
    if zlim is not None and np.all(np.isfinite(zlim)) and zlim[1] > zlim[0]:
        ax.set_zlim(*zlim)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.view_init(elev=25, azim=-125)


def _early_late(iterations: list[int]) -> list[int]:
    """Earliest trained checkpoint (> 0 when there is one) and the last."""
    trained = [i for i in iterations if i > 0] or iterations
    return sorted({trained[0], iterations[-1]})


def _iterations(sub: xr.Dataset, options: dict, default: list[int]) -> list[int]:
    available = [int(i) for i in sub["iteration"].values]
    wanted = options.get("iterations")
    if wanted is None:
        return default
    chosen = [int(i) for i in wanted if int(i) in available]
    return chosen or default


def _title(fig, text: str, note: str) -> None:
    fig.suptitle(text + (f"\n({note})" if note else ""), fontsize=11)


def landscape_figure(ds: xr.Dataset, options: dict, out_path, algo: str, env: str,
                     early_late: bool, paper_name: str) -> None:
    """Rows: iterations; columns: per step regime, true reward then surrogate."""
    sub, note = choose_run(ds, options, algo, env)
    available = [int(i) for i in sub["iteration"].values]
    iterations = _iterations(sub, options, _early_late(available) if early_late else available)
    regimes = [int(r) for r in sub["regime"].values]
    trajectories = int(options.get("trajectories", int(sub["trajectories"].values.max())))
    if trajectories not in [int(t) for t in sub["trajectories"].values]:
        trajectories = int(sub["trajectories"].values.max())
    surrogate_label = "surrogate (eq. 14)" if str(sub["algo"].values) == "trpo" else "surrogate (eq. 17)"
    fig = _new_figure(len(iterations), 2 * len(regimes))
    panel = 1
    for iteration in iterations:
        at = sub.sel(iteration=iteration)
        for regime in regimes:
            here = at.sel(regime=regime)
            step_norm = float(here["step_norm"])
            ax = fig.add_subplot(len(iterations), 2 * len(regimes), panel, projection="3d")
            _surface(ax, here["true_reward"].sel(trajectories=trajectories),
                     f"iter {iteration}: true reward\n(step from {regime} samples, "
                     f"{trajectories} episodes/point)", "mean return")
            ax = fig.add_subplot(len(iterations), 2 * len(regimes), panel + 1, projection="3d")
            _surface(ax, here["surrogate"],
                     f"iter {iteration}: {surrogate_label}\n(step from {regime} samples, "
                     f"|step| = {step_norm:.3g})", "surrogate")
            panel += 2
    _title(fig, f"{paper_name}: true reward vs surrogate landscapes, {sub.attrs['run_label']}", note)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    _save(fig, out_path)


def concentration_figure(ds: xr.Dataset, options: dict, out_path, algo: str, env: str,
                         single_iteration: bool, paper_name: str) -> None:
    """Rows: iterations; columns: true reward estimated from T episodes per point."""
    sub, note = choose_run(ds, options, algo, env)
    available = [int(i) for i in sub["iteration"].values]
    if single_iteration:
        target = int(options.get("iteration", 150))
        default = [min(available, key=lambda i: (abs(i - target), i))]
    else:
        default = available
    iterations = _iterations(sub, options, default)
    regimes = [int(r) for r in sub["regime"].values]
    regime = int(options.get("regime", regimes[0]))
    if regime not in regimes:
        regime = regimes[0]
    counts = [int(t) for t in sub["trajectories"].values]
    fig = _new_figure(len(iterations), len(counts))
    panel = 1
    for iteration in iterations:
        here = sub.sel(iteration=iteration, regime=regime)
        # One z-range per row, so that the flattening with more episodes is visible.
        values = here["true_reward"].values
        zlim = (np.nanmin(values), np.nanmax(values))
        for count in counts:
            ax = fig.add_subplot(len(iterations), len(counts), panel, projection="3d")
            _surface(ax, here["true_reward"].sel(trajectories=count),
                     f"iter {iteration}: {count} episode{'s' if count > 1 else ''} per point",
                     "mean return", zlim)
            panel += 1
    rand = float(sub["random_direction_norm"].max())
    _title(fig, f"{paper_name}: true reward landscape concentration, {sub.attrs['run_label']} "
           f"(step from {regime} samples; random direction norm {rand:.3g})", note)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    _save(fig, out_path)


def _landscapes(ds: dict) -> xr.Dataset:
    return ds["landscapes"]


def fig5(datasets, options, out_path) -> None:
    concentration_figure(_landscapes(datasets), options, out_path, "trpo", PAPER_TASK, True, "Figure 5")


def fig19(datasets, options, out_path) -> None:
    concentration_figure(_landscapes(datasets), options, out_path, "trpo", PAPER_TASK, False, "Figure 19")


def fig20(datasets, options, out_path) -> None:
    concentration_figure(_landscapes(datasets), options, out_path, "ppo", PAPER_TASK, False, "Figure 20")


def fig6(datasets, options, out_path) -> None:
    landscape_figure(_landscapes(datasets), options, out_path, "trpo", PAPER_TASK, True, "Figure 6")


def fig7(datasets, options, out_path) -> None:
    landscape_figure(_landscapes(datasets), options, out_path, "ppo", PAPER_TASK, True, "Figure 7")


def _appendix(number: int, env: str, algo: str):
    def figure(datasets, options, out_path) -> None:
        landscape_figure(_landscapes(datasets), options, out_path, algo, env, False, f"Figure {number}")
    figure.__name__ = f"fig{number}"
    figure.__doc__ = f"Figure {number}: {env} {algo.upper()} reward landscapes (Appendix A.6)."
    return figure


fig13 = _appendix(13, "Humanoid-v5", "ppo")
fig14 = _appendix(14, "Humanoid-v5", "trpo")
fig15 = _appendix(15, "Walker2d-v5", "ppo")
fig16 = _appendix(16, "Walker2d-v5", "trpo")
fig17 = _appendix(17, "Hopper-v5", "ppo")
fig18 = _appendix(18, "Hopper-v5", "trpo")

_CONC = ("True reward landscape concentration for {algo} on {env}: the true reward along the "
         "update step and a random direction, estimated from increasing numbers of episodes per "
         "point (panels). Few episodes give a jagged landscape, many a smooth one.")
_LAND = ("True reward and surrogate objective landscapes for {algo} on {env}, along the update "
         "step (one unit = one full step) and a random direction, for each number of state-action "
         "pairs used in the step, at {when}.")

FIGURES = {
    "fig5": {"func": fig5, "datasets": ["landscapes"],
             "caption": _CONC.format(algo="TRPO", env="Humanoid (iteration nearest 150)")},
    "fig6": {"func": fig6, "datasets": ["landscapes"],
             "caption": _LAND.format(algo="TRPO", env="Humanoid", when="an early and a late iteration")},
    "fig7": {"func": fig7, "datasets": ["landscapes"],
             "caption": _LAND.format(algo="PPO", env="Humanoid", when="an early and a late iteration")},
    **{f"fig{n}": {"func": globals()[f"fig{n}"], "datasets": ["landscapes"],
                   "caption": _LAND.format(algo=algo.upper(), env=env.split("-")[0], when="every iteration")}
       for n, env, algo in [(13, "Humanoid-v5", "ppo"), (14, "Humanoid-v5", "trpo"),
                            (15, "Walker2d-v5", "ppo"), (16, "Walker2d-v5", "trpo"),
                            (17, "Hopper-v5", "ppo"), (18, "Hopper-v5", "trpo")]},
    "fig19": {"func": fig19, "datasets": ["landscapes"],
              "caption": _CONC.format(algo="TRPO", env="Humanoid (every iteration)")},
    "fig20": {"func": fig20, "datasets": ["landscapes"],
              "caption": _CONC.format(algo="PPO", env="Humanoid (every iteration)")},
}
