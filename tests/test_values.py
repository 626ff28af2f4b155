"""Values probe (§2.2, eq. 4): train-split MRE equals training's own log, held-out targets,
restored-state true values, dataset conventions, merging, CLI errors, figures."""
from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from pgprobe.checkpoint import load_checkpoint
from pgprobe.cli import main
from pgprobe.datasets import open_dataset
from pgprobe.errors import PgprobeError
from pgprobe.probes import values

TINY = {"heldout_streams": 2, "heldout_steps": 256, "true_value_states": 4,
        "true_value_rollouts": 3, "true_value_horizon": 30, "max_bootstrap_weight": 0.5}
RUN = dict(env=0, algo=0, seed=0, iteration=0)


@pytest.fixture(scope="module")
def hopper_values(tmp_path_factory, hopper_ppo_checkpoint):
    out = tmp_path_factory.mktemp("values") / "iter0003.nc"
    assert main(["probe", "values", "--checkpoint", str(hopper_ppo_checkpoint), "--out", str(out),
                 "--settings", json.dumps(TINY), "--no-progress"]) == 0
    return open_dataset(out, kind="values")


def test_train_split_reproduces_training_log(hopper_values, hopper_ppo_run):
    """On the fit batch, the probe's MREs are exactly train.nc's value_mre_gae/_returns."""
    train = xr.open_dataset(hopper_ppo_run / "train.nc").sel(iteration=3)
    mre = hopper_values["mre"].isel(RUN).sel(split="train")
    assert float(mre.sel(target="gae")) == pytest.approx(float(train["value_mre_gae"]), rel=1e-5)
    assert float(mre.sel(target="returns")) == pytest.approx(float(train["value_mre_returns"]), rel=1e-5)
    assert np.isnan(mre.sel(target=["true_value", "undiscounted_returns"])).all()


def test_heldout_targets_and_masks(hopper_values):
    ds = hopper_values.isel(RUN)
    n_held = TINY["heldout_streams"] * TINY["heldout_steps"]
    held = ds.sel(split="heldout")
    assert int(held["included_count"].sel(target="gae")) == n_held
    weight = ds["bootstrap_weight"].values[:n_held]
    # Returns MRE uses exactly the samples whose return leans on V by at most the threshold.
    assert np.array_equal(held["included"].sel(target="returns").values[:n_held] == 1,
                          weight <= TINY["max_bootstrap_weight"] + 1e-12)
    # MRE recomputed from the stored per-sample values.
    from pgprobe.stats import mean_relative_error
    mask = held["included"].sel(target="returns").values == 1
    recomputed = mean_relative_error(held["prediction"].values[mask],
                                     held["target_value"].sel(target="returns").values[mask])
    assert float(held["mre"].sel(target="returns")) == pytest.approx(recomputed)
    # True values at exactly the recorded sample indices (exactness: tests/test_restore.py).
    chosen = ds["true_value_sample"].values
    assert np.array_equal(np.flatnonzero(held["included"].sel(target="true_value").values), np.sort(chosen))
    assert np.isfinite(held["target_value"].sel(target="true_value").values[chosen]).all()
    # Undiscounted reward-to-go: only complete episodes (the cut last trajectory is excluded).
    undisc = held["included"].sel(target="undiscounted_returns").values[:n_held]
    assert 0 < undisc.sum() < n_held


def test_true_value_equals_the_analytic_value_on_the_closed_form(closed_form_checkpoint):
    """On the LinearQuadraticBandit V^π(s) = m(s) + γ(1−p) r̄ / (1 − γ(1−p)) exactly
    (``pgprobe.closed_form.exact_values``): the restored-rollout true_value must match it
    within its own standard error at every probed state (|z| < 4.5, mean z² < 3), and the
    probed states must span several distinct states of the bandit."""
    from pgprobe.closed_form import exact_values

    checkpoint = load_checkpoint(closed_form_checkpoint)
    settings = {"heldout_streams": 2, "heldout_steps": 256, "true_value_states": 12,
                "true_value_rollouts": 1000, "true_value_horizon": 150, "max_bootstrap_weight": 0.5}
    ds = values.measure_values(checkpoint, settings, seed=0).isel(RUN)
    chosen = ds["true_value_sample"].values
    true_value = ds["target_value"].sel(split="heldout", target="true_value").values[chosen]
    standard_error = ds["true_value_standard_error"].values[chosen]
    observations = ds["true_value_observation"].values
    assert len(np.unique(observations, axis=0)) >= 4
    exact = exact_values(checkpoint.policy.mean_net, checkpoint.policy.log_std, observations,
                         checkpoint.hyperparameters["gamma"])
    z = (true_value - exact) / standard_error
    assert (np.abs(z) < 4.5).all() and np.mean(z ** 2) < 3.0, (z, true_value, exact)


def test_inexact_restore_refuses_to_write_a_true_value(tmp_path, capsys, monkeypatch, hopper_ppo_checkpoint):
    from pgprobe.envs import RestorePoint

    exact_restore = RestorePoint.restore

    def drifting_restore(self, env):
        obs = exact_restore(self, env)
        env.unwrapped.data.qvel[0] += 1e-9     # a restore that is off by a hair
        return obs + 1e-6
    monkeypatch.setattr(RestorePoint, "restore", drifting_restore)
    out = tmp_path / "v.nc"
    code = main(["probe", "values", "--checkpoint", str(hopper_ppo_checkpoint), "--out", str(out),
                 "--settings", json.dumps(TINY), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "not exact" in err and err.count("\n") == 1, err
    assert not out.exists()


def test_bootstrap_weight_bookkeeping():
    """γ^(steps to a non-terminal segment end), 0 inside terminating segments; episode steps."""
    from types import SimpleNamespace
    rollout = SimpleNamespace(segment_end=np.array([0, 1, 0, 0, 1], bool),
                              terminated=np.array([0, 1, 0, 0, 0], bool),
                              truncated=np.array([0, 0, 0, 0, 0], bool))
    weight, step = values.segment_bookkeeping(rollout, 0.5)
    assert np.allclose(weight, [0, 0, 0.125, 0.25, 0.5])
    assert list(step) == [0, 1, 0, 1, 2]
    assert list(values.complete_episode_mask(rollout)) == [True, True, False, False, False]


def test_datasets_merge_across_checkpoints(tmp_path, hopper_ppo_run):
    """iteration 0 (no fit batch: train split NaN) and 1 merge with combine_by_coords."""
    small = {**TINY, "true_value_states": 0, "heldout_steps": 128}  # 256 held-out < 512 fit batch
    parts = []
    for iteration in (0, 1):
        ckpt = load_checkpoint(hopper_ppo_run / "checkpoints" / f"iter{iteration:04d}.pt")
        parts.append(values.measure_values(ckpt, small, seed=0))
    merged = xr.combine_by_coords(parts, join="exact", data_vars="all", combine_attrs="drop_conflicts")
    assert list(merged["iteration"].values) == [0, 1]
    assert np.isnan(merged["mre"].sel(iteration=0, split="train")).all()
    assert np.isfinite(merged["mre"].sel(iteration=1, split="train", target="gae")).all()
    for name, var in {**merged.data_vars, **merged.coords}.items():
        assert "long_name" in var.attrs and "units" in var.attrs, name


@pytest.mark.parametrize("settings, fragment", [
    ('{"heldout_streams": 0}', "'heldout_streams' = 0"),
    ('{"heldout_stream": 2}', "unknown probes.values setting 'heldout_stream'"),
    ('{"max_bootstrap_weight": 2}', "'max_bootstrap_weight' = 2"),
    ('{"true_value_rollouts": 1.5}', "'true_value_rollouts' = 1.5"),
    ('[1, 2]', "must be a JSON object"),
    ('{bad json', "not valid JSON"),
])
def test_bad_settings_one_line_error_no_output(tmp_path, capsys, hopper_ppo_checkpoint, settings, fragment):
    out = tmp_path / "v.nc"
    code = main(["probe", "values", "--checkpoint", str(hopper_ppo_checkpoint), "--out", str(out),
                 "--settings", settings, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and err.count("\n") == 1, err
    assert not out.exists()


def test_missing_checkpoint_is_one_line_error(tmp_path, capsys):
    out = tmp_path / "v.nc"
    assert main(["probe", "values", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err
    assert not out.exists()


def test_probe_settings_have_one_source():
    """Defaults, types and ranges of probe settings live in probes/settings.schema.yaml only:
    the CLI reads them there and the workflow inserts them as config.probes.NAME."""
    from pathlib import Path

    import yaml

    from pgprobe.probes import common

    repo = Path(__file__).resolve().parents[1]
    workflow = yaml.safe_load((repo / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert workflow["properties"]["probes"]["properties"] == {}
    schema = common.settings_schemas()["values"]["properties"]
    assert values.check_settings(None) == {key: spec["default"] for key, spec in schema.items()}
    with pytest.raises(PgprobeError, match="'true_value_states' = -1: expected a non-negative integer"):
        values.check_settings({"true_value_states": -1})
    with pytest.raises(PgprobeError, match="'max_bootstrap_weight' = NaN: expected a number in"):
        values.check_settings('{"max_bootstrap_weight": NaN}')


def test_figures_plot_the_dataset_mres(tmp_path, hopper_values, hopper_ppo_run, saved_figures):
    """fig3/fig12 draw the held-out MRE per iteration, fig11 train.nc's per-iteration train MREs."""
    from conftest import plotted_lines
    from pgprobe.figures import values as figures

    later = hopper_values.assign_coords(iteration=[7])
    later["mre"] = later["mre"] * 2
    merged = xr.concat([hopper_values, later], "iteration")
    training = xr.open_dataset(hopper_ppo_run / "train.nc").expand_dims(env=["Hopper-v5"], algo=["ppo"], seed=[0])
    cases = {"fig3": ({"values": merged}, {"env": "Hopper-v5", "targets": ["gae", "returns", "returns_authors"]}),
             "fig12": ({"values": merged}, {}), "fig11": ({"training": training}, {})}
    for name, (datasets, options) in cases.items():
        saved_figures.clear()
        figures.FIGURES[name]["func"](datasets, options, tmp_path / f"{name}.pdf")
        [fig] = saved_figures
        targets = options.get("targets", ["gae", "returns"])
        for ax, target in zip(fig.axes, targets):
            [(x, y)] = plotted_lines(ax, 3 if name == "fig11" else 2)
            if name == "fig11":
                variable = {"gae": "value_mre_gae", "returns": "value_mre_returns"}[target]
                expected = training[variable].isel(env=0, algo=0, seed=0)
            else:
                expected = merged["mre"].isel(env=0, algo=0, seed=0).sel(split="heldout", target=target)
            np.testing.assert_array_equal(x, expected["iteration"].values)
            np.testing.assert_allclose(y, expected.values, rtol=1e-12, err_msg=f"{name} {target}")


def test_time_unlimited_held_out_returns_measure_a_far_sighted_agent(far_sighted_short_limit_checkpoint):
    """γ = 0.999 on a task whose time limit (8 steps here) is short next to 1/(1−γ): within the
    limit almost no held-out return is bootstrap-free (the ``returns`` MRE has a handful of
    samples); ``time_limit: false`` runs the streams past it, episodes end by falling, and the
    returns and restored-state targets are measurable."""
    ckpt = far_sighted_short_limit_checkpoint
    settings = {"heldout_streams": 2, "heldout_steps": 300, "true_value_states": 8, "true_value_rollouts": 4,
                "chunk_size": 2}
    counts = {}
    for time_limit in (True, False):
        ds = values.measure_values(ckpt, {**settings, "time_limit": time_limit})
        held = ds.sel(split="heldout").squeeze()
        counts[time_limit] = (int(held["included_count"].sel(target="returns")),
                              int(held["included_count"].sel(target="true_value")), int(ds["episode_step"].max()))
    assert counts[True][0] < 30 and counts[True][2] == 7          # every episode truncated at 8 steps
    assert counts[False][0] > 400 and counts[False][1] == 8 and counts[False][2] > 8
    # restored rollouts run past the limit too: their V^π is the returns' (time-unlimited) value,
    # not an 8-step return leaning on the untrained value net (which gives a ratio of ~0.1)
    chosen = held["true_value_sample"].values
    targets = held["target_value"]
    ratio = targets.sel(target="true_value").values[chosen].mean() / targets.sel(target="returns").values[chosen].mean()
    assert 0.4 < ratio < 2.5
