"""Gradients probe: numpy gradients, closed-form reference, sharding, determinism, CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from pgprobe.checkpoint import load_checkpoint
from pgprobe.cli import main
from pgprobe.closed_form import analytic_gradient
from pgprobe.estimators import gradient_sums
from pgprobe import gradient_model
from pgprobe.probes import common
from pgprobe.probes import gradients as G
from pgprobe.stats import cosine_similarity, split_half_true_cosine

TINY = {"sample_counts": [256, 512], "estimates": 3, "reference_samples": 2048,
        "reference_stream_steps": 512, "chunk_size": 2}


def test_numpy_gradient_matches_torch(hopper_ppo_checkpoint):
    ckpt = load_checkpoint(hopper_ppo_checkpoint)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(600, ckpt.obs_dim)).astype(np.float32)
    actions = rng.normal(size=(600, ckpt.act_dim)).astype(np.float32)
    advantages = rng.normal(size=600)
    torch_sums = gradient_sums(ckpt.policy, obs, actions, advantages)
    model = gradient_model.PolicyGradientModel.from_agent(ckpt.frozen_agent())
    numpy_sums = model.gradient_sums(obs, actions, advantages)
    for a, b in [(torch_sums.sum_grad_adv, numpy_sums.sum_grad_adv), (torch_sums.sum_grad, numpy_sums.sum_grad)]:
        assert np.abs(a - b).max() <= 1e-4 * np.abs(a).max()
    # batched estimates (leading dim) equal one-at-a-time GradientSums.gradient()
    batched = model.normalized_gradients(obs.reshape(3, 200, -1), actions.reshape(3, 200, -1),
                                         advantages.reshape(3, 200))
    for e in range(3):
        single = model.gradient_sums(obs[200 * e:200 * (e + 1)], actions[200 * e:200 * (e + 1)],
                                     advantages[200 * e:200 * (e + 1)]).gradient()
        np.testing.assert_allclose(batched[e], single, rtol=1e-9, atol=1e-12)


def test_closed_form_reference_matches_analytic_gradient(closed_form_checkpoint):
    ckpt = load_checkpoint(closed_form_checkpoint)
    settings = G.resolve_settings({"reference_samples": 32768, "reference_stream_steps": 1024})
    reference = G.sample_reference(ckpt, settings, workers=1).sums.gradient()
    assert cosine_similarity(reference, analytic_gradient(ckpt.policy).numpy()) >= 0.99


@pytest.mark.parametrize("signal_to_noise", [0.3, 1.0, 5.0])
def test_split_half_true_cosine_recovers_exact_cosine(signal_to_noise):
    """Synthetic references ĝ = g + ε/√N in 20000 dimensions, halves of unequal size: the
    halves' agreement predicts the whole reference's cosine with g (known here)."""
    rng = np.random.default_rng(7)
    dim, first_count, second_count = 20000, 3000, 5000
    truth = rng.normal(size=dim)
    per_sample_sd = np.linalg.norm(truth) * np.sqrt(first_count / signal_to_noise) / np.sqrt(dim)
    first = truth + rng.normal(size=dim) * per_sample_sd / np.sqrt(first_count)
    second = truth + rng.normal(size=dim) * per_sample_sd / np.sqrt(second_count)
    whole = (first_count * first + second_count * second) / (first_count + second_count)
    half_cosine, implied = split_half_true_cosine(first, second, first_count, second_count)
    assert half_cosine == pytest.approx(cosine_similarity(first, second))
    assert implied == pytest.approx(cosine_similarity(whole, truth), abs=0.01)
    assert split_half_true_cosine(first, -first, 10, 10) == (pytest.approx(-1.0), 0.0)


def test_reference_true_cosine_matches_analytic_gradient(closed_form_checkpoint):
    """On the closed-form bandit a 2048-pair reference is visibly noisy (cosine ≈ 0.95 with
    the analytic gradient, its halves ≈ 0.8): over six probe seeds the split-half estimate of
    its cosine with the truth matches the measured one, which the halves' own cosine does not."""
    ckpt = load_checkpoint(closed_form_checkpoint)
    truth = analytic_gradient(ckpt.policy).numpy()
    rows = []
    for seed in range(6):
        settings = G.resolve_settings({"reference_samples": 2048, "reference_stream_steps": 128, "seed": seed})
        reference = G.sample_reference(ckpt, settings, workers=1)
        rows.append((*reference.true_cosine(), cosine_similarity(reference.sums.gradient(), truth)))
    half_cosine, implied, actual = np.mean(rows, axis=0)
    assert abs(implied - actual) <= 0.06, rows
    assert actual - half_cosine >= 0.1, rows


def test_pairwise_similarity_rises_with_sample_count(closed_form_checkpoint):
    ckpt = load_checkpoint(closed_form_checkpoint)
    settings = G.resolve_settings({"sample_counts": [64, 256, 1024, 4096], "estimates": 6})
    grid, gradients, trajectories, _ = G.sample_estimates(ckpt, settings, workers=1)
    ds = common.similarity_dataset(quantity="gradient", sample_counts=grid, estimates=gradients,
                                  reference=analytic_gradient(ckpt.policy).numpy(),
                                  trajectory_counts=trajectories, mean_episode_lengths=np.ones_like(gradients[..., 0]),
                                  reference_sample_count=1, reference_trajectory_count=1,
                                  reference_mean_episode_length=1.0)
    pairwise = ds["mean_pairwise_cosine"].values
    assert np.all(np.diff(pairwise) > 0), pairwise
    assert np.all(np.diff(ds["mean_reference_cosine"].values) > 0)
    assert (trajectories > 0).all()


def test_sharded_reference_equals_unsharded(closed_form_checkpoint, tmp_path):
    settings = {"reference_samples": 8192, "reference_stream_steps": 256, "chunk_size": 3,  # shard 2 starts at stream 21
                "reference_shards": 3, "sample_counts": [128, 256], "estimates": 2}
    shards = []
    for k in range(3):
        path = tmp_path / f"g.shard{k}.nc"
        assert main(["probe", "gradients-shard", "--checkpoint", str(closed_form_checkpoint), "--out", str(path),
                     "--shard", str(k), "--settings", json.dumps(settings), "--workers", "1"]) == 0
        shards.append(str(path))
    gathered, whole = tmp_path / "gathered.nc", tmp_path / "whole.nc"
    assert main(["probe", "gradients", "--checkpoint", str(closed_form_checkpoint), "--out", str(gathered),
                 "--settings", json.dumps(settings), "--workers", "1", "--shards", *reversed(shards)]) == 0
    assert main(["probe", "gradients", "--checkpoint", str(closed_form_checkpoint), "--out", str(whole),
                 "--settings", json.dumps(settings), "--workers", "2"]) == 0
    a, b = xr.open_dataset(gathered), xr.open_dataset(whole)
    assert a["reference_sample_count"].item() == b["reference_sample_count"].item() == 8192
    assert abs(a["reference_norm"].item() / b["reference_norm"].item() - 1) <= 1e-5
    np.testing.assert_allclose(a["reference_cosine"], b["reference_cosine"], atol=1e-6)
    for name in ("reference_half_cosine", "reference_true_cosine"):   # halves by stream index
        assert np.isfinite(b[name].item()) and a[name].item() == pytest.approx(b[name].item(), abs=1e-9), name
    # direct: the gathered sums' gradient vs the unsharded one
    ckpt = load_checkpoint(closed_form_checkpoint)
    s = G.resolve_settings(settings)
    whole_grad = G.sample_reference(ckpt, s, workers=1).sums.gradient()
    gathered_grad = G.gather_shards(shards, ckpt, s).sums.gradient()
    assert cosine_similarity(whole_grad, gathered_grad) >= 0.999999
    assert abs(np.linalg.norm(gathered_grad) / np.linalg.norm(whole_grad) - 1) <= 1e-5
    # a missing shard, and a shard from other settings, are refused without output
    bad = tmp_path / "bad.nc"
    assert main(["probe", "gradients", "--checkpoint", str(closed_form_checkpoint), "--out", str(bad),
                 "--settings", json.dumps(settings), "--shards", *shards[:2]]) == 2
    other = dict(settings, seed=5)
    assert main(["probe", "gradients", "--checkpoint", str(closed_form_checkpoint), "--out", str(bad),
                 "--settings", json.dumps(other), "--shards", *shards]) == 2
    assert not bad.exists()


def test_same_seed_same_numbers_any_worker_count(hopper_ppo_checkpoint, tmp_path):
    settings = G.resolve_settings(TINY)
    one = G.run(str(hopper_ppo_checkpoint), settings, workers=1)
    two = G.run(str(hopper_ppo_checkpoint), settings, workers=2)
    xr.testing.assert_equal(one, two)
    other = G.run(str(hopper_ppo_checkpoint), G.resolve_settings(TINY, seed=1), workers=2)
    assert not np.allclose(one["pairwise_cosine"], other["pairwise_cosine"])
    assert set(one.dims) == {"env", "algo", "seed", "iteration", "sample_count", "estimate", "pair",
                             "other_estimate"}
    # the plug-in ratio is T / (S + T/M): the unbiased components recombine into it
    count_m = one.sizes["estimate"]
    noise, signal = one["noise_trace"], one["signal_norm_sq"]
    np.testing.assert_allclose(one["relative_variance"], noise / (signal + noise / count_m), rtol=1e-9)
    for name, var in {**one.data_vars, **one.coords}.items():
        assert "long_name" in var.attrs and "units" in var.attrs, name
    assert list(one["sample_count"].values) == [256, 512]
    assert one.sizes["pair"] == 3 and list(one["estimate_a"].values) == [0, 0, 1]
    pairwise = one["pairwise_cosine"].values
    assert np.all(pairwise < 0.999)
    assert (one["trajectory_count"].values >= 1).all()
    assert one["reference_sample_count"].item() == 2048


@pytest.mark.parametrize("settings, message", [
    ({"estimate": 3}, "unknown probes.gradients setting 'estimate'"),
    ({"estimates": 0}, "'estimates' = 0"),
    ({"sample_counts": [100, "x"]}, "'sample_counts'"),
    ({"min_sample_count": 4096, "max_sample_count": 1024}, "min_sample_count"),
])
def test_bad_settings_are_one_line_errors(hopper_ppo_checkpoint, tmp_path, capsys, settings, message):
    out = tmp_path / "g.nc"
    code = main(["probe", "gradients", "--checkpoint", str(hopper_ppo_checkpoint), "--out", str(out),
                 "--settings", json.dumps(settings)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in err[-1] and err[-1].startswith("pgprobe: error:")
    assert not out.exists()


def test_shard_index_out_of_range(hopper_ppo_checkpoint, tmp_path, capsys):
    out = tmp_path / "g.shard2.nc"
    code = main(["probe", "gradients-shard", "--checkpoint", str(hopper_ppo_checkpoint), "--out", str(out),
                 "--shard", "2", "--settings", json.dumps({"reference_shards": 2})])
    err = capsys.readouterr().err
    assert code == 2 and "--shard 2: expected 0 <= shard < 2" in err and "reference_shards" in err
    assert not out.exists()
    assert G.shard_path("a/iter0050.nc", 3).name == "iter0050.shard3.nc"


def test_figures_plot_the_dataset_means(tmp_path, saved_figures):
    from pgprobe.datasets import add_run_coords
    from pgprobe.figures import gradients as F
    rng = np.random.default_rng(0)
    parts = []
    for env in ("Hopper-v5", "Walker2d-v5"):
        for algo in ("ppo", "trpo"):
            ds = common.similarity_dataset(
                quantity="gradient", sample_counts=[1024, 2048, 4096], estimates=rng.normal(size=(3, 4, 20)),
                reference=rng.normal(size=20), trajectory_counts=np.ones((3, 4), int),
                mean_episode_lengths=np.ones((3, 4)), reference_sample_count=10, reference_trajectory_count=1,
                reference_mean_episode_length=1.0)
            parts.append(add_run_coords(ds, env, algo, 0, 50))
    merged = xr.combine_by_coords(parts)
    from conftest import plotted_lines

    for name, variable, over in (("fig9", "pairwise_cosine", "pair"), ("fig10", "reference_cosine", "estimate"),
                                 ("figA4_steps_variance", "pairwise_cosine", "pair")):
        saved_figures.clear()
        spec = F.FIGURES[name]
        spec["func"]({spec["datasets"][0]: merged}, {}, tmp_path / f"{name}.pdf")
        [fig] = saved_figures
        for ax, env in zip(fig.axes, ["Walker2d-v5", "Hopper-v5"]):     # rows: tasks in the paper's order
            lines = plotted_lines(ax, 3)
            assert len(lines) == 2, name
            for (x, y), algo in zip(lines, ["ppo", "trpo"]):
                expected = merged[variable].sel(env=env, algo=algo, seed=0, iteration=50).mean(over)
                np.testing.assert_array_equal(x, [1024, 2048, 4096])
                np.testing.assert_allclose(y, expected.values, rtol=1e-12, err_msg=f"{name} {env} {algo}")

    # Figure 10 draws each reference's estimated cosine with the truth as a dashed level.
    ceilings = xr.DataArray(rng.uniform(0.2, 0.9, (2, 2)), dims=("env", "algo"),
                            coords={"env": merged["env"], "algo": merged["algo"]})
    saved_figures.clear()
    F.fig10({"gradients": merged.assign(reference_true_cosine=ceilings.expand_dims(seed=[0], iteration=[50]))},
            {}, tmp_path / "fig10_ceiling.pdf")
    [fig] = saved_figures
    for ax, env in zip(fig.axes, ["Walker2d-v5", "Hopper-v5"]):
        dashed = sorted(line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "--")
        np.testing.assert_allclose(dashed, sorted(ceilings.sel(env=env).values), rtol=1e-12)
