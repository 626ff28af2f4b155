"""Baselines probe (§2.2, Figure 4): true-value fit against the closed form, paired streams,
pluggable baselines, sharded = unsharded, dataset conventions, CLI errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr

from pgprobe import closed_form
from pgprobe.checkpoint import load_checkpoint
from pgprobe.cli import main
from pgprobe.datasets import open_dataset
from pgprobe.estimators import single_torch_thread
from pgprobe.probes import baselines
from pgprobe.stats import mean_relative_error

RUN = dict(env=0, algo=0, seed=0, iteration=0)
CLOSED_FORM = {"true_value_streams": 8, "true_value_stream_steps": 2048, "true_value_validation_streams": 2,
               "true_value_epochs": 20, "sample_counts": [128, 512], "estimates": 6}
TINY = {"sample_counts": [64, 128], "estimates": 3, "true_value_streams": 4, "true_value_stream_steps": 256,
        "true_value_validation_streams": 1, "true_value_epochs": 2, "max_bootstrap_weight": 0.5,
        "chunk_size": 1}


class ExactValue:
    """V(s) of the closed-form bandit for a checkpoint's policy (a pluggable baseline)."""

    def __init__(self, policy, gamma):
        self.policy, self.gamma = policy, gamma

    def __call__(self, obs):
        return closed_form.exact_values(self.policy.mean_net, self.policy.log_std, obs, self.gamma)


@pytest.fixture(scope="module")
def closed_form_baselines(closed_form_checkpoint):
    ckpt = load_checkpoint(closed_form_checkpoint)
    gamma = ckpt.hyperparameters["gamma"]
    exact = baselines.Baseline("exact", "function", ExactValue(ckpt.policy, gamma), "closed-form V")
    ds = baselines.measure_baselines(ckpt, CLOSED_FORM, seed=0, workers=1, extra_baselines=[exact])
    return ckpt, ds


def test_true_value_fit_matches_exact_values(closed_form_checkpoint):
    """The "true" value net fit to returns is within 5% (MRE) of the exact V on every state."""
    ckpt = load_checkpoint(closed_form_checkpoint)
    settings = baselines.checked_settings(CLOSED_FORM)
    reference = baselines.sample_reference(ckpt, settings, seed=0, workers=1)
    with single_torch_thread():
        net, stats = baselines.fit_true_value(ckpt, reference, settings, seed=0)
    exact = closed_form.exact_values(ckpt.policy.mean_net, ckpt.policy.log_std, closed_form.STATES,
                                     ckpt.hyperparameters["gamma"])
    with torch.no_grad():
        fitted = net(torch.as_tensor(closed_form.STATES)).numpy()
    assert mean_relative_error(fitted, exact) < 0.05, (fitted, exact)
    assert stats["train_samples"] > 10000 and stats["validation_samples"] > 3000


def test_fitted_true_value_acts_like_exact_baseline(closed_form_baselines):
    """Paired streams: the fitted true value and the exact V give nearly the same gradients."""
    _, ds = closed_form_baselines
    mean = ds["mean_pairwise_cosine"].isel(RUN).sel(lambda_setting="paper")
    assert list(mean["baseline"].values) == ["true_value", "value_net", "zero", "exact"]
    diff = np.abs(mean.sel(baseline="true_value") - mean.sel(baseline="exact")).values
    assert (diff < 0.05).all(), mean.to_pandas()
    assert np.isfinite(ds["true_value_fit_mre"]).all()


def test_cli_dataset_conventions_and_merge(tmp_path, hopper_ppo_run):
    paths = []
    for iteration in (1, 3):
        out = tmp_path / f"iter{iteration:04d}.nc"
        assert main(["probe", "baselines", "--checkpoint", str(hopper_ppo_run / "checkpoints" /
                                                                f"iter{iteration:04d}.pt"),
                     "--out", str(out), "--settings", json.dumps(TINY), "--no-progress"]) == 0
        paths.append(out)
    parts = [open_dataset(p, kind="baselines") for p in paths]
    ds = parts[1].isel(RUN)
    assert ds["pairwise_cosine"].dims == ("lambda_setting", "baseline", "sample_count", "pair")
    assert list(ds["estimate_a"].values) == [0, 0, 1] and list(ds["estimate_b"].values) == [1, 2, 2]
    assert np.allclose(ds["mean_pairwise_cosine"], ds["pairwise_cosine"].mean("pair"))
    merged = xr.combine_by_coords(parts, join="exact", data_vars="all", combine_attrs="drop_conflicts")
    assert list(merged["iteration"].values) == [1, 3]
    assert merged["pairwise_cosine"].sizes == {"env": 1, "algo": 1, "seed": 1, "iteration": 2, "lambda_setting": 2,
                                               "baseline": 3, "sample_count": 2, "pair": 3}
    for name, var in {**merged.data_vars, **merged.coords}.items():
        assert "long_name" in var.attrs and "units" in var.attrs, name


def test_sharded_reference_equals_unsharded(tmp_path, hopper_ppo_checkpoint):
    settings = {**TINY, "true_value_shards": 2}
    whole = tmp_path / "whole.nc"
    assert main(["probe", "baselines", "--checkpoint", str(hopper_ppo_checkpoint), "--out", str(whole),
                 "--settings", json.dumps(settings), "--no-progress"]) == 0
    shards = []
    for k in (1, 0):
        shard = tmp_path / f"iter.shard{k}.nc"
        assert main(["probe", "baselines-shard", "--checkpoint", str(hopper_ppo_checkpoint), "--shard", str(k),
                     "--out", str(shard), "--settings", json.dumps(settings), "--no-progress"]) == 0
        shards.append(str(shard))
    gathered = tmp_path / "gathered.nc"
    assert main(["probe", "baselines", "--checkpoint", str(hopper_ppo_checkpoint), "--out", str(gathered),
                 "--settings", json.dumps(settings), "--no-progress", "--shards", *shards]) == 0
    a, b = open_dataset(whole), open_dataset(gathered)
    xr.testing.assert_equal(a.drop_attrs(), b.drop_attrs())


def test_shard_errors(tmp_path, capsys, hopper_ppo_checkpoint):
    settings = json.dumps({**TINY, "true_value_shards": 2})
    shard = tmp_path / "s0.nc"
    assert main(["probe", "baselines-shard", "--checkpoint", str(hopper_ppo_checkpoint), "--shard", "2",
                 "--out", str(shard), "--settings", settings]) == 2
    assert "--shard 2" in capsys.readouterr().err and not shard.exists()
    assert main(["probe", "baselines-shard", "--checkpoint", str(hopper_ppo_checkpoint), "--shard", "0",
                 "--out", str(shard), "--settings", settings, "--no-progress"]) == 0
    out = tmp_path / "b.nc"
    assert main(["probe", "baselines", "--checkpoint", str(hopper_ppo_checkpoint), "--out", str(out),
                 "--settings", settings, "--shards", str(shard)]) == 2
    assert "missing shard(s) 1" in capsys.readouterr().err and not out.exists()
    other = json.dumps({**TINY, "true_value_shards": 2, "true_value_stream_steps": 300})
    assert main(["probe", "baselines", "--checkpoint", str(hopper_ppo_checkpoint), "--out", str(out),
                 "--settings", other, "--shards", str(shard), str(shard)]) == 2
    assert "other reference settings" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("settings, fragment", [
    ('{"estimates": 1}', "'estimates' = 1"),
    ('{"sample_counts": []}', "'sample_counts' = []"),
    ('{"sample_counts": [64, -1]}', "'sample_counts' = [64, -1]"),
    ('{"sample_counts": [64, 64]}', "expected distinct values"),
    ('{"true_value_lr": 0}', "'true_value_lr' = 0"),
    ('{"normalize_advantages": 1}', "'normalize_advantages' = 1"),
    ('{"true_value_validation_streams": 32}', "'true_value_validation_streams' = 32"),
    ('{"nope": 1}', "unknown probes.baselines setting 'nope'"),
])
def test_bad_settings_one_line_error_no_output(tmp_path, capsys, hopper_ppo_checkpoint, settings, fragment):
    out = tmp_path / "b.nc"
    code = main(["probe", "baselines", "--checkpoint", str(hopper_ppo_checkpoint), "--out", str(out),
                 "--settings", settings, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and err.count("\n") == 1, err
    assert not out.exists()


def test_figure4_plots_both_lambda_settings_from_the_dataset(tmp_path, closed_form_baselines, saved_figures):
    """Row 1: the paper's arms; row 2: every baseline at λ = 1.  Each line is the mean
    pairwise cosine of that baseline, setting and sample count."""
    from conftest import plotted_lines
    from pgprobe.figures import values as figures

    _, ds = closed_form_baselines
    names = ["true_value", "value_net", "zero"]
    figures.FIGURES["fig4"]["func"]({"baselines": ds}, {"envs": [str(ds["env"].values[0])],
                                                        "baselines": names}, tmp_path / "fig4.pdf")
    [fig] = saved_figures
    counts = ds["sample_count"].values
    for row, setting in enumerate(["paper", "matched"]):
        ax = fig.axes[row]
        lines = plotted_lines(ax, len(counts))
        assert len(lines) == len(names)
        expected = ds["mean_pairwise_cosine"].isel(RUN).sel(lambda_setting=setting)
        for (x, y), name in zip(lines, names):
            np.testing.assert_array_equal(x, counts)
            np.testing.assert_allclose(y, expected.sel(baseline=name).values, rtol=1e-12)
    matched = ds["mean_pairwise_cosine"].isel(RUN).sel(lambda_setting="matched", baseline="value_net")
    paper = ds["mean_pairwise_cosine"].isel(RUN).sel(lambda_setting="paper", baseline="value_net")
    assert not np.allclose(matched, paper), "the two rows must differ for the value-net arm"


def test_state_dependent_baseline_lowers_gradient_variance_at_matched_lambda(closed_form_checkpoint):
    """Theory (eq. 2): with the same λ = 1, Â = R − b(s), the exact V^π as baseline gives
    a lower-variance gradient estimator (eq. 1, unnormalized advantages) than b ≡ 0 on the
    closed form, whose state values differ widely.  Measured directly as tr Cov / ‖mean‖²
    over M = 16 estimates (the pairwise cosine rises accordingly)."""
    ckpt = load_checkpoint(closed_form_checkpoint)
    exact = baselines.Baseline("exact", "function", ExactValue(ckpt.policy, ckpt.hyperparameters["gamma"]))
    zero = baselines.Baseline("zero", "zero")
    settings = {**CLOSED_FORM, "estimates": 16, "normalize_advantages": False}
    ds = baselines.measure_baselines(ckpt, settings, seed=0, workers=1, baselines=[exact, zero]).isel(RUN)
    matched = ds.sel(lambda_setting="matched")
    assert (matched["gae_lambda"] == 1.0).all()
    variance = matched["relative_variance"]
    assert (variance.sel(baseline="exact") < 0.6 * variance.sel(baseline="zero")).all(), variance.to_pandas()
    cosine = matched["mean_pairwise_cosine"]
    assert (cosine.sel(baseline="exact") > cosine.sel(baseline="zero")).all(), cosine.to_pandas()


def test_relative_variance_by_hand():
    """tr Cov / ‖mean‖² of three 2-D estimates: mean (1, 1), deviations (±1, 0), (0, 0):
    unbiased trace (1 + 1) / 2 = 1, ‖mean‖² = 2."""
    from pgprobe.stats import relative_variance

    estimates = np.array([[2.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    assert relative_variance(estimates) == pytest.approx(0.5)
    assert relative_variance(np.ones((4, 3))) == 0.0
    assert np.isnan(relative_variance(np.array([[1.0, 0.0], [-1.0, 0.0]])))


def test_time_unlimited_reference_gives_a_far_sighted_agent_true_value_targets(far_sighted_short_limit_checkpoint):
    """γ = 0.999 on a task whose time limit is short next to the horizon 1/(1−γ): every
    return of a limited stream leans ≥ 0.999^limit on the value-net bootstrap, so the fit has
    no target and says which setting to change; ``true_value_time_limit: false`` runs the
    streams past the limit, episodes end only by termination, and the fit gets targets."""
    ckpt = far_sighted_short_limit_checkpoint
    settings = baselines.checked_settings({**TINY, "max_bootstrap_weight": 0.05, "true_value_stream_steps": 400})
    limited = baselines.sample_reference(ckpt, settings, 0, workers=1)
    usable = limited["weight"] <= 0.05                      # only the rare falls within 8 steps
    assert usable.mean() < 0.05
    with pytest.raises(baselines.PgprobeError, match="set true_value_time_limit: false"):
        baselines.fit_true_value(ckpt, {**limited, "weight": np.where(usable, 1.0, limited["weight"])}, settings, 0)
    unlimited_settings = {**settings, "true_value_time_limit": False}
    unlimited = baselines.sample_reference(ckpt, unlimited_settings, 0, workers=1)
    assert (unlimited["weight"] == 0).mean() > 0.5           # terminated episodes: bootstrap-free
    net, stats = baselines.fit_true_value(ckpt, unlimited, unlimited_settings, 0)
    assert stats["train_samples"] > 100 and np.isfinite(stats["validation_mre"])
