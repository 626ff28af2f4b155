"""pgprobe power: the variance components of known units, the half-width prediction against
the bootstrap it predicts, the config's unit counts, and the CLI."""
from __future__ import annotations

import numpy as np
import pytest

from pgprobe import claims, power
from pgprobe.cli import main


def _units(unit_count: int, within_count: int, tau: float, sigma: float, rng) -> list:
    """Units whose true means spread with SD tau, each with within_count raw values of SD sigma."""
    return [(f"u{u}", {"a": rng.normal(rng.normal(0, tau), sigma, within_count)}) for u in range(unit_count)]


def test_components_recover_known_between_and_within_variance():
    rng = np.random.default_rng(0)
    tau2, sigma2, count = [], [], 20
    for _ in range(40):
        parts = power.variance_components(_units(30, count, 0.3, 1.0, rng), replicates=200, seed=1)
        tau2.append(parts["tau2"])
        sigma2.append(parts["omega2"])
    assert np.mean(sigma2) == pytest.approx(1.0 / count, rel=0.1)     # ω² = σ²/n
    assert np.mean(tau2) == pytest.approx(0.09, rel=0.25)              # τ² = 0.3²


def test_predicted_half_width_matches_the_bootstrap_at_another_size():
    """Components from 6 units of 10 values predict the claims bootstrap's half-width at 24
    units of 40 values (mean over studies within 15%)."""
    rng = np.random.default_rng(1)
    predicted, measured = [], []
    for _ in range(30):
        parts = power.variance_components(_units(6, 10, 0.2, 1.0, rng), replicates=200, seed=2)
        predicted.append(power.half_width(parts["tau2"], parts["omega2"], 24, 40 / 10))
        _, low, high = claims.bootstrap(_units(24, 40, 0.2, 1.0, rng), 400, 3)
        measured.append((high - low) / 2)
    assert np.mean(predicted) == pytest.approx(np.mean(measured), rel=0.15)


def test_config_sizes_and_units():
    config = {"envs": ["Hopper-v5", "Walker2d-v5"], "algos": ["ppo", "trpo"], "seeds": [0, 1, 2],
              "exclude_runs": [{"env": "Walker2d-v5", "algo": "trpo"}],
              "probe_iterations": {"default": [100, 500]},
              "probes": {"baselines": {"estimates": 16}, "landscapes": {"trajectory_counts": [1, 40]}},
              "sample_regime": {"envs": ["Hopper-v5"], "algos": ["ppo"], "seeds": [0, 1]}}
    sizes = power.config_sizes(config)
    assert power.units_per_seed("C1a", sizes) == (6, 3)      # 3 tasks x 2 checkpoints
    assert power.units_per_seed("C6b", sizes) == (3, 3)
    assert power.units_per_seed("C7", sizes) == (1, 2)
    assert sizes["within"] == {"gradients": 10, "baselines": 16, "landscapes": 40}
    assert not any(sizes["probes_untrained"].values())
    sizes = power.config_sizes({**config, "probe_iterations": {"default": [100, 500], "landscapes": [0, 100, 500]}})
    assert sizes["probes_untrained"]["landscapes"] and not sizes["probes_untrained"]["gradients"]


def test_untrained_units_left_out_per_probe():
    """A config that probes iteration 0 with the landscapes alone (the claims study v2) plans
    the gradient claims on the source's trained checkpoints only, and the landscape claims
    with iteration 0."""
    import xarray as xr

    root = "docs/measurements/default_run/datasets"
    datasets = {name: xr.open_dataset(f"{root}/{name}.nc") for name in ("gradients", "landscapes")}
    config = {"envs": ["Hopper-v5"], "algos": ["ppo", "trpo"], "seeds": [0, 1, 2],
              "probe_iterations": {"default": [100, 300], "landscapes": [0, 100, 300]}}
    rows = {r["claim"]: r for r in power.plan(datasets, config, {"c6_early_iteration": 0}, replicates=20)}
    assert rows["C1a"]["source_units"] == 4        # 2 runs x iterations 100, 300 (not 0)
    assert rows["C5"]["source_units"] == 6         # 2 runs x iterations 0, 100, 300
    assert power.within_factor("C4a", 16, 8) == pytest.approx(16 * 15 / 56)


def test_cli_writes_the_table(tmp_path, capsys):
    root = "docs/measurements/default_run"
    table = tmp_path / "power.md"
    assert main(["power", "--datasets", f"gradients={root}/datasets/gradients.nc", "--claims",
                 f"{root}/claims.nc", "--config", "config.yaml", "--replicates", "50",
                 "--table", str(table)]) == 0
    text = table.read_text()
    assert "| C1a |" in text and "gradient estimates: 10" in text and "(scaled)" in text
    capsys.readouterr()
    assert main(["power", "--datasets", "gradients", "--config", "config.yaml"]) == 2
    assert "expected NAME=PATH" in capsys.readouterr().err


def test_cli_plans_with_the_configs_claims_section(tmp_path):
    """The planned study's `claims:` settings apply to the source's statistics: with
    c6_early_iteration 0, C6a reads the default run's iteration-0 grids (where TRPO's agree),
    not iteration 100 (where they do not)."""
    root = "docs/measurements/default_run"
    study = tmp_path / "study.yaml"
    study.write_text("probe_iterations:\n  default: [0, 100, 300]\nclaims:\n  c6_early_iteration: 0\n")

    def c6a(configs):
        out = tmp_path / "power.tsv"
        assert main(["power", "--datasets", f"landscapes={root}/datasets/landscapes.nc", "--config", *configs,
                     "--replicates", "20", "--out", str(out)]) == 0
        rows = [line.split("\t") for line in out.read_text().splitlines()]
        return float(next(r for r in rows[1:] if r[0] == "C6a")[rows[0].index("statistic")])

    assert c6a(["config.yaml"]) < 0 < c6a(["config.yaml", str(study)])



def test_far_side_infinities_do_not_flag_a_pooled_ratio():
    """C4 with a vanishing worse-arm signal: replicates where that arm's pooled Ŝ ≤ 0 are +∞,
    which unbounds only the CI's upper end; with the statistic above the threshold the lower
    end decides, so the plan must not flag the source as unbounded (it did when every
    non-finite replicate counted).  Infinities towards the threshold, and NaN, still count."""
    def unit(k):
        def components(rng):
            signal_worse = 0.05 if rng is None else rng.normal(0.05, 0.1)
            return np.array([1.0, signal_worse, 1.0, 0.5])
        return (f"u{k}", {"components": components})

    units = [unit(k) for k in range(6)]
    parts = power.variance_components(units, claims.pooled_log_ratio, replicates=200, seed=0, threshold=0.0)
    assert parts["statistic"] == pytest.approx(np.log(10.0))
    assert parts["undefined_share"] == 0.0 and power.flag(parts) == ""
    every = power.variance_components(units, claims.pooled_log_ratio, replicates=200, seed=0)
    assert every["undefined_share"] > 0.025 and "unbound" in power.flag(every)
    replicates = np.array([np.inf, np.inf, -np.inf, np.nan, 1.0])
    assert power.unbounded_share(replicates, 2.0, 0.0) == pytest.approx(0.4)    # −∞ and NaN
    assert power.unbounded_share(replicates, -2.0, 0.0) == pytest.approx(0.6)   # +∞, +∞ and NaN
