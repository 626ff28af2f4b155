"""Landscapes probe (§2.3): true reward against the closed form, surrogate values at the
origin, sharded = unsharded, settings validation, CLI errors, figures."""
from __future__ import annotations

import json
import math
from statistics import NormalDist

import numpy as np
import pytest
import torch
import xarray as xr

from pgprobe import closed_form
from pgprobe.checkpoint import load_checkpoint
from pgprobe.cli import main
from pgprobe.datasets import open_dataset
from pgprobe.errors import PgprobeError
from pgprobe.probes import landscapes

# Closed-form grid: 3 x 3 points, one 512-sample step regime, 1000 episodes per point.
CLOSED_FORM_SETTINGS = {"alpha_min": -1.0, "alpha_max": 1.0, "alpha_points": 3,
                        "beta_min": -1.0, "beta_max": 1.0, "beta_points": 3,
                        "step_sample_counts": [512], "trajectory_counts": [10, 1000],
                        "random_direction_norm": 8.0}
SMALL_SETTINGS = {"alpha_points": 2, "beta_points": 2, "step_sample_counts": [256, 512],
                  "trajectory_counts": [1, 3]}


@pytest.fixture(scope="module")
def closed_form_landscape(closed_form_checkpoint):
    ckpt = load_checkpoint(closed_form_checkpoint)
    ds = landscapes.run(ckpt, CLOSED_FORM_SETTINGS, seed=0, workers=2, progress=False)
    return ckpt, ds


def test_true_reward_matches_closed_form_within_ci(closed_form_landscape):
    """Every grid point's mean return over 1000 episodes lies within a 99% (family-wise,
    Bonferroni over the 9 points) normal CI of the exact J(θ) = r̄/p."""
    ckpt, ds = closed_form_landscape
    settings = landscapes.validate_settings(CLOSED_FORM_SETTINGS)
    directions = landscapes.compute_directions(ckpt, settings, 0, workers=1, progress=False)
    alphas, betas = landscapes.grid_axes(settings)
    returns = ds["episode_return"].squeeze(["env", "algo", "seed", "iteration"]).isel(regime=0)
    points = len(alphas) * len(betas)
    z = NormalDist().inv_cdf(1 - 0.01 / (2 * points))
    exact_values, half_widths = [], []
    for i, alpha in enumerate(alphas):
        for j, beta in enumerate(betas):
            policy = landscapes.perturbed_policy(ckpt, directions, 0, alpha, beta)
            with torch.no_grad():
                exact = float(closed_form.expected_return(policy.mean_net, policy.log_std))
            sample = returns.isel(alpha=i, beta=j).values
            assert sample.size == 1000 and np.isfinite(sample).all()
            half_width = z * sample.std(ddof=1) / math.sqrt(sample.size)
            assert abs(sample.mean() - exact) <= half_width, (alpha, beta, sample.mean(), exact, half_width)
            exact_values.append(exact)
            half_widths.append(half_width)
    # The grid is not degenerate: J varies across the grid by more than the CIs are wide.
    assert max(exact_values) - min(exact_values) > 2 * max(half_widths), (exact_values, half_widths)
    # true_reward(T) is the mean of the first T episodes.
    np.testing.assert_allclose(ds["true_reward"].sel(trajectories=10).values,
                               ds["episode_return"].isel(trajectory=slice(0, 10)).mean("trajectory").values)


def test_ppo_surrogate_zero_at_origin_and_improves_at_step(closed_form_landscape):
    """ρ = 1 at α = β = 0, so eq. (17) = mean normalized advantage = 0; one full PPO step
    increases the clipped surrogate on its own batch; KL is 0 only at the origin."""
    _, ds = closed_form_landscape
    ds = ds.squeeze(["env", "algo", "seed", "iteration"]).isel(regime=0)
    assert abs(ds["surrogate"].sel(alpha=0.0, beta=0.0).item()) < 1e-6
    assert ds["mean_kl"].sel(alpha=0.0, beta=0.0).item() == pytest.approx(0.0, abs=1e-9)
    assert ds["surrogate"].sel(alpha=1.0, beta=0.0).item() > 0
    assert (ds["mean_kl"].values >= 0).all()
    assert float(ds["step_norm"]) > 0
    assert abs(float(ds["step_random_cosine"])) < 0.2
    assert float(ds["random_direction_norm"]) == pytest.approx(8.0)


def test_surrogate_at_origin_ppo_and_trpo(closed_form_checkpoint, hopper_trpo_checkpoint):
    """α = β = 0: surrogate = 0 (both algorithms), KL = 0; TRPO's full step satisfies its
    KL constraint on the step batch (line search) and improves eq. (14)."""
    settings = {"alpha_min": 0.0, "alpha_max": 1.0, "alpha_points": 2, "beta_min": 0.0,
                "beta_max": 0.0, "beta_points": 1, "step_sample_counts": [512], "trajectory_counts": [1]}
    for path in (closed_form_checkpoint, hopper_trpo_checkpoint):
        ckpt = load_checkpoint(path)
        ds = landscapes.run(ckpt, settings, seed=1, workers=1, progress=False)
        ds = ds.squeeze(["env", "algo", "seed", "iteration", "beta"]).isel(regime=0)
        assert abs(ds["surrogate"].sel(alpha=0.0).item()) < 1e-6
        assert ds["mean_kl"].sel(alpha=0.0).item() == pytest.approx(0.0, abs=1e-9)
        if ckpt.algo == "trpo":
            assert ds.attrs["surrogate"] == "trpo_eq14"
            delta = float(ds["kl_constraint"])
            assert delta == ckpt.hyperparameters["max_kl"]
            assert float(ds["step_norm"]) > 0, "the line search accepted no step"
            assert ds["mean_kl"].sel(alpha=1.0).item() <= delta * (1 + 1e-4)
            assert ds["surrogate"].sel(alpha=1.0).item() > 0
        else:
            assert ds.attrs["surrogate"] == "ppo_clipped_eq17"
            assert np.isnan(float(ds["kl_constraint"]))


def test_sharded_equals_unsharded_via_cli(closed_form_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1577836800")
    settings = json.dumps(SMALL_SETTINGS)
    common = ["--checkpoint", str(closed_form_checkpoint), "--settings", settings, "--seed", "3"]
    whole = tmp_path / "whole.nc"
    assert main(["probe", "landscapes", *common, "--out", str(whole), "--workers", "2"]) == 0
    sharded = ["--checkpoint", str(closed_form_checkpoint), "--settings",
               json.dumps({**SMALL_SETTINGS, "grid_shards": 3}), "--seed", "3"]
    shards = []
    for k in range(3):
        path = tmp_path / f"land.shard{k}.nc"
        assert main(["probe", "landscapes-shard", *sharded, "--out", str(path), "--shard", str(k),
                     "--workers", "1"]) == 0
        shards.append(str(path))
    gathered = tmp_path / "gathered.nc"
    assert main(["probe", "landscapes", *sharded, "--out", str(gathered), "--shards", *shards[::-1]]) == 0
    a, b = open_dataset(whole, "landscapes"), open_dataset(gathered, "landscapes")
    xr.testing.assert_identical(a, b)
    assert set(a.dims) >= {"env", "algo", "seed", "iteration", "regime", "alpha", "beta",
                           "trajectory", "trajectories"}
    for name, var in {**a.data_vars, **a.coords}.items():
        assert var.attrs.get("long_name") and var.attrs.get("units"), name

    # Missing or foreign shards, and a gather with other settings, are refused.
    bad = tmp_path / "bad.nc"
    assert main(["probe", "landscapes", *common, "--out", str(bad), "--shards", *shards[:2]]) == 2
    other = ["--checkpoint", str(closed_form_checkpoint), "--settings",
             json.dumps({**SMALL_SETTINGS, "alpha_max": 1.0}), "--seed", "3"]
    assert main(["probe", "landscapes", *other, "--out", str(bad), "--shards", *shards]) == 2
    assert main(["probe", "landscapes", *common, "--out", str(bad), "--shards", str(whole)]) == 2
    assert not bad.exists()


@pytest.mark.parametrize("settings, word", [
    ({"alpha_points": 0}, "alpha_points"),
    ({"grid": 5}, "grid"),
    ({"trajectory_counts": []}, "trajectory_counts"),
    ({"step_sample_counts": [2048, -1]}, "step_sample_counts"),
    ({"beta_min": 2.0}, "beta_min"),
    ({"random_direction_norm": 0}, "random_direction_norm"),
    ({"alpha_min": "x"}, "alpha_min"),
    ({"chunk_size": True}, "chunk_size"),
])
def test_bad_settings_rejected(settings, word):
    with pytest.raises(PgprobeError, match=word):
        landscapes.validate_settings(settings)


def test_cli_errors_leave_no_file(closed_form_checkpoint, tmp_path, capsys):
    out = tmp_path / "x.nc"
    cases = [
        ["--checkpoint", str(closed_form_checkpoint), "--settings", '{"alpha_points": -2}'],
        ["--checkpoint", str(closed_form_checkpoint), "--settings", "{not json"],
        ["--checkpoint", str(tmp_path / "missing.pt")],
    ]
    for args in cases:
        assert main(["probe", "landscapes", *args, "--out", str(out)]) == 2
        assert "pgprobe: error:" in capsys.readouterr().err
    assert main(["probe", "landscapes-shard", "--checkpoint", str(closed_form_checkpoint),
                 "--out", str(out), "--shard", "3",
                 "--settings", json.dumps({**SMALL_SETTINGS, "grid_shards": 3})]) == 2
    assert not out.exists()


def test_episode_returns_independent_of_chunking(closed_form_checkpoint):
    agent = load_checkpoint(closed_form_checkpoint).frozen_agent()
    keys = [(9, k) for k in range(7)]
    a = landscapes.episode_returns(agent, keys, chunk_size=3, max_episode_steps=10_000)
    b = landscapes.episode_returns(agent, keys, chunk_size=16, max_episode_steps=10_000)
    # Same episodes; batched float32 forward passes of other sizes round differently.
    np.testing.assert_allclose(a[0], b[0], rtol=1e-6)
    np.testing.assert_array_equal(a[1], b[1])
    c = landscapes.episode_returns(agent, keys[::-1], chunk_size=3, max_episode_steps=10_000)
    np.testing.assert_allclose(a[0], c[0][::-1], rtol=1e-6)
    with pytest.raises(PgprobeError, match="max_episode_steps"):
        landscapes.episode_returns(agent, keys, chunk_size=16, max_episode_steps=1)


def test_figures_plot_the_dataset_surfaces(closed_form_run, tmp_path, monkeypatch):
    """Every surface a landscape figure draws is a true_reward (at some trajectory count) or
    surrogate grid of the dataset, for one of its iterations and regimes."""
    from mpl_toolkits.mplot3d.axes3d import Axes3D

    from pgprobe.figures import landscapes as figs

    drawn = []
    original = Axes3D.plot_surface

    def recording_plot_surface(self, x, y, z, *args, **kwargs):
        drawn.append(np.asarray(z, float))
        return original(self, x, y, z, *args, **kwargs)
    monkeypatch.setattr(Axes3D, "plot_surface", recording_plot_surface)

    settings = {**SMALL_SETTINGS, "alpha_points": 3, "beta_points": 3}
    parts = [landscapes.run(load_checkpoint(closed_form_run / "checkpoints" / f"iter{i:04d}.pt"),
                            settings, seed=0, workers=1, progress=False) for i in (0, 2)]
    ds = xr.combine_by_coords(parts, combine_attrs="override")
    assert set(figs.FIGURES) == {"fig5", "fig6", "fig7", *(f"fig{n}" for n in range(13, 21))}
    run = ds.isel(env=0, algo=0, seed=0)
    grids = [run["surrogate"].sel(iteration=i, regime=r).transpose("alpha", "beta").values
             for i in run["iteration"].values for r in run["regime"].values]
    grids += [run["true_reward"].sel(iteration=i, regime=r, trajectories=t).transpose("alpha", "beta").values
              for i in run["iteration"].values for r in run["regime"].values for t in run["trajectories"].values]
    for name, spec in figs.FIGURES.items():
        drawn.clear()
        spec["func"]({"landscapes": ds}, {}, tmp_path / f"{name}.pdf")
        assert drawn, name
        for z in drawn:
            assert any(np.array_equal(z, grid, equal_nan=True) for grid in grids), name
    # A requested task that is not in the data falls back to what is there, saying so.
    _, note = figs.choose_run(ds, {"env": "Humanoid-v5"}, "ppo")
    assert "Humanoid-v5" in note and "not in the data" in note


def test_split_half_reliability_of_a_known_grid():
    """Points with true values of variance 1 and K = 20 episodes of noise variance 20: a
    K-episode mean's reliability is 1 / (1 + 20/20) = 0.5."""
    rng = np.random.default_rng(0)
    signal = rng.normal(0, 1, 4000)
    episodes = signal[:, None] + rng.normal(0, np.sqrt(20), (4000, 20))
    assert landscapes.split_half_reliability(episodes) == pytest.approx(0.5, abs=0.04)
    assert np.isnan(landscapes.split_half_reliability(episodes[:, :1]))


CRN_SETTINGS = {**CLOSED_FORM_SETTINGS, "trajectory_counts": [1, 40]}


def test_common_random_numbers_share_episodes_across_points(closed_form_checkpoint):
    """On the bandit, states and terminations do not depend on actions: with common random
    numbers episode k has the same length at every grid point (the same draws), its mean
    return stays within the CI of the exact J, and the grid's split-half reliability is higher
    than with independent episodes at the same episode count."""
    ckpt = load_checkpoint(closed_form_checkpoint)
    common = landscapes.run(ckpt, {**CRN_SETTINGS, "common_random_numbers": True}, seed=0, workers=1,
                            progress=False)
    independent = landscapes.run(ckpt, CRN_SETTINGS, seed=0, workers=1, progress=False)
    lengths = common["episode_length"].squeeze(["env", "algo", "seed", "iteration"]).isel(regime=0).values
    assert (lengths == lengths[:1, :1]).all()
    other = independent["episode_length"].squeeze(["env", "algo", "seed", "iteration"]).isel(regime=0).values
    assert not (other == other[:1, :1]).all()
    assert int(common["common_random_numbers"].squeeze()) == 1 and int(independent["common_random_numbers"].squeeze()) == 0
    reliability = lambda ds: float(ds["true_reward_reliability"].squeeze())  # noqa: E731
    assert reliability(common) > reliability(independent)
    assert reliability(common) > 0.95
    # the points' means are unbiased under CRN (common draws shift them together, not apart)
    settings = landscapes.validate_settings(CRN_SETTINGS)
    directions = landscapes.compute_directions(ckpt, settings, 0, workers=1, progress=False)
    alphas, betas = landscapes.grid_axes(settings)
    returns = common["episode_return"].squeeze(["env", "algo", "seed", "iteration"]).isel(regime=0)
    z = NormalDist().inv_cdf(1 - 0.01 / (2 * len(alphas) * len(betas)))
    for i, alpha in enumerate(alphas):
        for j, beta in enumerate(betas):
            policy = landscapes.perturbed_policy(ckpt, directions, 0, alpha, beta)
            with torch.no_grad():
                exact = float(closed_form.expected_return(policy.mean_net, policy.log_std))
            sample = returns.isel(alpha=i, beta=j).values
            assert abs(sample.mean() - exact) <= z * sample.std(ddof=1) / math.sqrt(sample.size)
