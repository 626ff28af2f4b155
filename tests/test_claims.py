"""Claims stage: verdicts on synthetic datasets whose answer is known, the bootstrap, the
roughness measure, and the CLI's outputs."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from pgprobe import claims
from pgprobe.cli import main
from pgprobe.datasets import add_run_coords, open_dataset
from pgprobe.errors import PgprobeError

SETTINGS = {"resamples": 400}


def _gradients(pairwise: dict, reference: dict, seeds=(0, 1, 2), iterations=(50, 300)) -> xr.Dataset:
    """pairwise/reference: {iteration: (S, pairs) or (S, estimates) raw values}, the same for
    every seed (plus seed-dependent noise)."""
    rng = np.random.default_rng(0)
    parts = []
    for seed in seeds:
        for it in iterations:
            pw = np.asarray(pairwise[it]) + rng.normal(0, 0.01, np.shape(pairwise[it]))
            ref = np.asarray(reference[it]) + rng.normal(0, 0.01, np.shape(reference[it]))
            ds = xr.Dataset({"pairwise_cosine": (("sample_count", "pair"), pw),
                             "reference_cosine": (("sample_count", "estimate"), ref)},
                            coords={"sample_count": [1024, 2048, 8192]})
            parts.append(add_run_coords(ds, "Hopper-v5", "ppo", seed, it))
    return xr.combine_by_coords(parts)


def _row(ds, name):
    return ds.sel(claim=name)


def test_verdicts_on_known_data():
    rng = np.random.default_rng(1)
    low = lambda mean, n: np.clip(rng.normal(mean, 0.05, n), -1, 1)  # noqa: E731
    # C1a reproduced (0.1 << 0.5), C1b reproduced (rises to 0.8), C2a contradicted (0.9 > 0.5),
    # C2b: early 0.9 vs late 0.2 -> reproduced.
    pairwise = {it: np.stack([low(0.05, 45), low(0.1, 45), low(0.8, 45)]) for it in (50, 300)}
    reference = {50: np.stack([low(0.85, 10), low(0.9, 10), low(0.95, 10)]),
                 300: np.stack([low(0.1, 10), low(0.2, 10), low(0.3, 10)])}
    ds = claims.evaluate({"gradients": _gradients(pairwise, reference)}, SETTINGS)
    assert _row(ds, "C1a")["verdict"].item() == "reproduced"
    assert float(_row(ds, "C1a")["statistic"]) == pytest.approx(0.1, abs=0.02)
    assert _row(ds, "C1b")["verdict"].item() == "reproduced"
    assert _row(ds, "C2b")["verdict"].item() == "reproduced"
    assert float(_row(ds, "C2b")["statistic"]) == pytest.approx(0.9 - 0.2, abs=0.03)
    # C2a: early reference cosine 0.9, late 0.2 -> mean 0.55 around the 0.5 threshold, and
    # the unit-level spread (0.9 vs 0.2) makes it inconclusive.
    assert _row(ds, "C2a")["verdict"].item() == "inconclusive"
    # A claim whose dataset is absent is not measured.
    assert _row(ds, "C5")["verdict"].item() == "not measured"
    assert int(_row(ds, "C5")["unit_count"]) == 0

    contradicted = {it: np.stack([low(0.9, 45)] * 3) for it in (50, 300)}
    ds = claims.evaluate({"gradients": _gradients(contradicted, reference)}, SETTINGS)
    assert _row(ds, "C1a")["verdict"].item() == "contradicted"
    assert _row(ds, "C1b")["verdict"].item() == "inconclusive"   # no rise: CI straddles 0


def test_within_unit_noise_keeps_one_seed_honest():
    """One seed, one checkpoint, 3 pairs spread widely: the two-level bootstrap resamples the
    pairs, so the CI is wide and the verdict inconclusive (a one-level bootstrap over the
    single unit would give a zero-width CI and a confident verdict)."""
    pairwise = {50: np.array([[0.2, 0.5, 0.9]] * 3)}
    reference = {50: np.array([[0.5, 0.5]] * 3)}
    ds = claims.evaluate({"gradients": _gradients(pairwise, reference, seeds=(0,), iterations=(50,))}, SETTINGS)
    row = _row(ds, "C1a")
    assert int(row["unit_count"]) == 1
    assert float(row["ci_high"]) - float(row["ci_low"]) > 0.3
    assert row["verdict"].item() == "inconclusive"


def test_roughness_of_known_surfaces():
    alpha, beta = np.meshgrid(np.linspace(0, 1, 7), np.linspace(-1, 1, 7), indexing="ij")
    assert claims.roughness(3 * alpha - beta + 2) == pytest.approx(0.0, abs=1e-12)
    checker = np.where((np.arange(7)[:, None] + np.arange(7)[None, :]) % 2 == 0, 1.0, -1.0)
    assert claims.roughness(checker) == pytest.approx(2.0)        # |second difference| 4 over range 2
    assert np.isnan(claims.roughness(np.ones((5, 5))))


def _landscape(early_corr_sign: float, late_corr_sign: float, seeds=(0, 1, 2)) -> xr.Dataset:
    rng = np.random.default_rng(2)
    alpha, beta = np.meshgrid(np.linspace(0, 2, 5), np.linspace(-1, 1, 5), indexing="ij")
    parts = []
    for seed in seeds:
        for it, sign in ((50, early_corr_sign), (300, late_corr_sign)):
            smooth = alpha + 0.3 * beta
            true = np.stack([smooth + rng.normal(0, 0.8, smooth.shape),          # 1 trajectory: jagged
                             smooth + rng.normal(0, 0.01, smooth.shape)], -1)     # 50: smooth
            ds = xr.Dataset({"true_reward": (("regime", "alpha", "beta", "trajectories"), true[None]),
                             "surrogate": (("regime", "alpha", "beta"), (sign * smooth)[None])},
                            coords={"regime": [2048], "alpha": alpha[:, 0], "beta": beta[0],
                                    "trajectories": [1, 50]})
            parts.append(add_run_coords(ds, "Hopper-v5", "trpo", seed, it))
    return xr.combine_by_coords(parts)


def test_landscape_claims():
    ds = claims.evaluate({"landscapes": _landscape(+1, -1)}, SETTINGS)
    assert _row(ds, "C5")["verdict"].item() == "reproduced"
    assert _row(ds, "C6a")["verdict"].item() == "reproduced"
    assert float(_row(ds, "C6a")["statistic"]) > 0.99
    assert _row(ds, "C6b")["verdict"].item() == "reproduced"
    ds = claims.evaluate({"landscapes": _landscape(-1, +1)}, SETTINGS)
    assert _row(ds, "C6a")["verdict"].item() == "contradicted"
    assert _row(ds, "C6b")["verdict"].item() == "contradicted"


def test_values_and_baselines_claims():
    parts, bparts = [], []
    for seed in (0, 1, 2):
        mre = np.array([[0.01, 0.6, 0.7], [0.02, 0.5, 0.6]])
        ds = xr.Dataset({"mre": (("split", "target"), mre + 0.01 * seed)},
                        coords={"split": ["train", "heldout"], "target": ["gae", "returns", "returns_authors"]})
        parts.append(add_run_coords(ds, "Hopper-v5", "ppo", seed, 300))
        variance = np.array([[[0.5, 0.4], [1.0, 0.9], [2.0, 1.8]]]) * (1 + 0.05 * seed)  # true < net < zero
        b = xr.Dataset({"relative_variance": (("lambda_setting", "baseline", "sample_count"), variance)},
                       coords={"lambda_setting": ["paper"], "baseline": ["true_value", "value_net", "zero"],
                               "sample_count": [2048, 8192]})
        bparts.append(add_run_coords(b, "Hopper-v5", "ppo", seed, 300))
    ds = claims.evaluate({"values": xr.combine_by_coords(parts), "baselines": xr.combine_by_coords(bparts)},
                         SETTINGS)
    for name in ("C3a", "C3b", "C3c", "C4a", "C4b"):
        assert _row(ds, name)["verdict"].item() == "reproduced", name
    assert float(_row(ds, "C4a")["statistic"]) == pytest.approx(np.log(2.0), rel=1e-9)


def test_cli_writes_dataset_and_table(tmp_path, capsys):
    rng = np.random.default_rng(3)
    pairwise = {it: np.stack([rng.uniform(0, 0.2, 45)] * 3) for it in (50, 300)}
    reference = {it: np.stack([rng.uniform(0, 0.2, 10)] * 3) for it in (50, 300)}
    gradients = _gradients(pairwise, reference)
    gradients.attrs["pgprobe_dataset"] = "gradients"
    path = tmp_path / "gradients.nc"
    gradients.to_netcdf(path)
    out, table = tmp_path / "claims.nc", tmp_path / "claims.md"
    assert main(["claims", "--datasets", f"gradients={path}", "--settings", '{"resamples": 200}',
                 "--out", str(out), "--table", str(table)]) == 0
    ds = open_dataset(out, kind="claims")
    text = table.read_text()
    assert "C1a" in text and "**reproduced**" in text and "**not measured**" in text
    assert "Training seeds in this study: 3" in text
    assert ds["verdict"].sel(claim="C1a").item() == "reproduced"
    capsys.readouterr()
    assert main(["claims", "--datasets", f"values={path}", "--out", str(tmp_path / "x.nc")]) == 2
    assert "expected 'values'" in capsys.readouterr().err
    with pytest.raises(PgprobeError, match="unknown claims setting 'resample'"):
        claims.check_settings({"resample": 3})


def test_a_single_number_is_inconclusive():
    """One run of the sample-regime grid: a spread of 0.9 over a 0.1 threshold, but one
    number has no uncertainty to judge it by."""
    parts = []
    for steps, final in ((2048, 1000.0), (8192, 3000.0)):
        ds = xr.Dataset({"mean_return": (("iteration",), np.full(10, final))}, coords={"iteration": np.arange(1, 11)})
        ds = ds.expand_dims(env=["Hopper-v5"], algo=["ppo"], seed=[0], steps_per_iteration=[steps], lr_scale=[1.0])
        parts.append(ds)
    ds = claims.evaluate({"sample_regime": xr.combine_by_coords(parts)}, SETTINGS)
    row = _row(ds, "C7")
    assert float(row["statistic"]) == pytest.approx(1.0)
    assert row["verdict"].item() == "inconclusive"


def _gram_baselines(arms, rng_seed: int, seeds=(0, 1, 2), iterations=(100, 500)) -> xr.Dataset:
    """A baselines dataset of per-stream Gram matrices: per run and sample count N,
    ``arms(rng, mean, scale)`` gives the (true_value, value_net, zero) estimates (8 × 400),
    ``mean`` the unit-norm true gradient G, ``scale`` = 2048 / N / 400 (noise variance per
    coordinate that makes a trace-8 noise at N = 2048 when multiplied by 8)."""
    from pgprobe.stats import gram_matrix

    rng = np.random.default_rng(rng_seed)
    dims, count_m, counts = 400, 8, [1024, 2048, 4096]
    parts = []
    for seed in seeds:
        for it in iterations:
            mean = rng.normal(size=dims)
            mean *= 1.0 / np.linalg.norm(mean)
            grams = np.zeros((1, 3, len(counts), count_m, count_m))
            for c, n in enumerate(counts):
                for a, estimates in enumerate(arms(rng, mean, 2048 / n / dims)):
                    grams[0, a, c] = gram_matrix(estimates)
            b = xr.Dataset({"gram": (("lambda_setting", "baseline", "sample_count", "estimate", "other_estimate"),
                                     grams)},
                           coords={"lambda_setting": ["paper"], "baseline": ["true_value", "value_net", "zero"],
                                   "sample_count": counts})
            parts.append(add_run_coords(b, "Hopper-v5", "ppo", seed, it))
    return xr.combine_by_coords(parts)


def _baselines_with_gram(permute_worse: bool, seeds=(0, 1, 2), iterations=(100, 500)) -> xr.Dataset:
    """Arms on the same streams: value_net = G + ε_i + η_i, true_value = G + ε_i (ε shared by
    stream i, η the value net's own extra noise), so the value net's relative variance is the
    larger, by tr(Σ_ε + Σ_η)/tr Σ_ε = 1.125.  ``permute_worse`` shuffles the value net's stream
    order: each arm's own statistics are unchanged, the pairing is gone."""
    def arms(rng, mean, scale):
        shared = rng.normal(0, np.sqrt(8.0 * scale), (8, mean.size))
        extra = rng.normal(0, np.sqrt(1.0 * scale), (8, mean.size))
        worse = mean + shared + extra
        if permute_worse:
            worse = worse[rng.permutation(8)]
        better = mean + shared
        return better, worse, better
    return _gram_baselines(arms, 7, seeds, iterations)


def test_c4_is_paired_over_streams_and_pools_the_signal():
    paired = claims.evaluate({"baselines": _baselines_with_gram(False)}, SETTINGS).sel(claim="C4a")
    unpaired = claims.evaluate({"baselines": _baselines_with_gram(True)}, SETTINGS).sel(claim="C4a")
    assert float(paired["statistic"]) == pytest.approx(np.log(1.125), abs=0.05)
    assert float(unpaired["statistic"]) == pytest.approx(float(paired["statistic"]), abs=0.05)
    width = lambda row: float(row["ci_high"]) - float(row["ci_low"])  # noqa: E731
    assert width(paired) < 0.6 * width(unpaired)
    assert paired["verdict"].item() == "reproduced"
    # at N = 2048 the relative variances are 8 and 9 (signal 1): at and above the plug-in
    # ratio's ceiling M = 8, read here without it
    at_batch = claims.evaluate({"baselines": _baselines_with_gram(False)},
                               {**SETTINGS, "c4_signal": "batch_size"}).sel(claim="C4a")
    assert float(at_batch["statistic"]) == pytest.approx(np.log(1.125), abs=0.08)
    assert width(at_batch) > width(paired)      # one sample count's signal is the noisier


def _baselines_with_vanishing_worse_signal(seeds=(0, 1, 2), iterations=(100, 500)) -> xr.Dataset:
    """C4b's arms: value_net = G + ε (relative variance 8 at N = 2048), zero = η with E η = 0
    (no signal: its relative variance is infinite), 24 times value_net's noise trace: its
    unbiased signal Ŝ is ≤ 0 in about half of the draws."""
    def arms(rng, mean, scale):
        value_net = mean + rng.normal(0, np.sqrt(8.0 * scale), (8, mean.size))
        zero = rng.normal(0, np.sqrt(24 * 8.0 * scale), (8, mean.size))
        return value_net, value_net, zero
    return _gram_baselines(arms, 11, seeds, iterations)


def test_c4_orders_a_vanishing_signal_beyond_every_finite_variance():
    """A baseline with no signal has an infinite relative variance: replicates where its pooled
    Ŝ ≤ 0 are +inf for "value net better than zero", not undefined, so the CI's lower end stays
    finite and the claim is decided (it was inconclusive, CI (−inf, inf), when such replicates
    counted as beyond both ends)."""
    ds = claims.evaluate({"baselines": _baselines_with_vanishing_worse_signal()}, SETTINGS)
    c4b = ds.sel(claim="C4b")
    assert np.isfinite(float(c4b["ci_low"])) and float(c4b["ci_low"]) > 0
    assert c4b["verdict"].item() == "reproduced"
    assert claims.pooled_log_ratio([np.array([1.0, -0.1, 1.0, 0.2])]) == np.inf
    assert claims.pooled_log_ratio([np.array([1.0, 0.2, 1.0, -0.1])]) == -np.inf
    assert np.isnan(claims.pooled_log_ratio([np.array([1.0, -0.2, 1.0, -0.1])]))


def _landscape_episodes(correlation_by_iteration: dict, seeds=(0, 1, 2), episodes=12) -> xr.Dataset:
    """Grids whose true reward (episode means) correlates with the surrogate with the given sign."""
    rng = np.random.default_rng(5)
    alpha, beta = np.meshgrid(np.linspace(0, 2, 5), np.linspace(-1, 1, 5), indexing="ij")
    parts = []
    for seed in seeds:
        for it, sign in correlation_by_iteration.items():
            smooth = alpha + 0.3 * beta
            returns = smooth[..., None] * sign + rng.normal(0, 0.3, smooth.shape + (episodes,))
            ds = xr.Dataset({"episode_return": (("regime", "alpha", "beta", "trajectory"), returns[None]),
                             "true_reward": (("regime", "alpha", "beta", "trajectories"),
                                             returns.mean(-1)[None, ..., None]),
                             "surrogate": (("regime", "alpha", "beta"), smooth[None])},
                            coords={"regime": [2048], "alpha": alpha[:, 0], "beta": beta[0],
                                    "trajectories": [episodes]})
            parts.append(add_run_coords(ds, "Hopper-v5", "trpo", seed, it))
    return xr.combine_by_coords(parts)


def test_c6_early_iteration_setting_default_skips_iteration_zero():
    assert claims.DEFAULT_SETTINGS["c6_early_iteration"] is None
    data = {"landscapes": _landscape_episodes({0: +1, 100: -1, 500: -1})}
    default = claims.evaluate(data, SETTINGS)
    assert default.sel(claim="C6a")["verdict"].item() == "contradicted"
    assert "iter 100" in default.sel(claim="C6a")["units"].item()
    at_zero = claims.evaluate(data, {**SETTINGS, "c6_early_iteration": 0})
    assert at_zero.sel(claim="C6a")["verdict"].item() == "reproduced"
    assert "iter 0 vs 500" in at_zero.sel(claim="C6b")["units"].item()
    assert at_zero.sel(claim="C6b")["verdict"].item() == "reproduced"
    nearest = claims.evaluate(data, {**SETTINGS, "c6_early_iteration": 420})
    assert "iter 500" in nearest.sel(claim="C6a")["units"].item()


def test_c6_ci_carries_episode_noise():
    """One seed, two checkpoints: the CI of C6a is not a point (episodes are resampled)."""
    row = claims.evaluate({"landscapes": _landscape_episodes({100: +1, 500: -1}, seeds=(0,))},
                          SETTINGS).sel(claim="C6a")
    assert int(row["unit_count"]) == 1
    assert float(row["ci_high"]) > float(row["ci_low"])
    assert row["verdict"].item() == "reproduced"


def test_claims_schema_defaults_are_the_stage_defaults():
    import yaml
    from pathlib import Path

    schema = yaml.safe_load((Path(__file__).parents[1] / "workflow" / "schemas" / "config.schema.yaml").read_text())
    properties = schema["properties"]["claims"]["properties"]
    assert {key: spec.get("default") for key, spec in properties.items()} == claims.DEFAULT_SETTINGS


@pytest.mark.parametrize("settings, fragment", [
    ({"c6_early_iteration": -1}, "'c6_early_iteration' = -1"),
    ({"c6_early_iteration": "early"}, "'c6_early_iteration' = 'early'"),
    ({"c4_signal": "pooled"}, "'c4_signal' = 'pooled'"),
])
def test_bad_claims_settings(settings, fragment):
    with pytest.raises(PgprobeError, match=fragment):
        claims.check_settings(settings)


def test_c5_leaves_out_grids_with_common_random_numbers():
    """C5 is Figure 5's roughness with independent episodes per point; a CRN grid is left out."""
    independent = _landscape(+1, -1)
    common = independent.assign(common_random_numbers=xr.full_like(independent["surrogate"].isel(
        regime=0, alpha=0, beta=0, drop=True), 1, dtype=np.int64))
    assert claims.evaluate({"landscapes": independent}, SETTINGS).sel(claim="C5")["verdict"].item() == "reproduced"
    row = claims.evaluate({"landscapes": common}, SETTINGS).sel(claim="C5")
    assert row["verdict"].item() == "not measured"
    assert claims.evaluate({"landscapes": common}, SETTINGS).sel(claim="C6a")["verdict"].item() == "reproduced"


def test_old_baselines_datasets_give_the_same_components():
    """A dataset without ``gram`` (made before it existed): T̂ and Ŝ recovered from
    relative_variance and gradient_norm equal those of the Gram matrix of the same estimates."""
    from pgprobe.stats import gram_components, gram_matrix, relative_variance

    rng = np.random.default_rng(11)
    estimates = rng.normal(0.2, 1.0, (2, 3, 8, 50))           # baseline × sample_count × M × P
    run = xr.Dataset({"relative_variance": (("baseline", "sample_count"), relative_variance(estimates)),
                      "gradient_norm": (("baseline", "sample_count", "estimate"), np.linalg.norm(estimates, axis=-1))},
                     coords={"baseline": ["value_net", "true_value"], "sample_count": [1024, 2048, 4096]})
    weights = np.array([0.0, 1.0, 0.0])
    recovered = claims._old_components(run, "value_net", "true_value", 1, weights)
    noise, signal = gram_components(gram_matrix(estimates))
    np.testing.assert_allclose(recovered, [noise[0, 1], signal[0, 1], noise[1, 1], signal[1, 1]], rtol=1e-9)


def test_c5_with_a_run_a_collected_dataset_does_not_have():
    """Collected over Hopper TRPO and Walker2d PPO, a landscapes dataset holds NaN for the
    missing combinations (Hopper PPO, Walker2d TRPO), ``common_random_numbers`` included: those
    are no grids, not CRN grids (the claims stage of the 3-seed study v2 stopped on int(NaN))."""
    parts = []
    for env, algo in (("Hopper-v5", "trpo"), ("Walker2d-v5", "ppo")):
        ds = _landscape(+1, -1, seeds=(0, 1)).sel(env="Hopper-v5", algo="trpo", drop=True)
        for seed in (0, 1):
            for it in (50, 300):
                grid = ds.sel(seed=seed, iteration=it, drop=True).assign(common_random_numbers=((), 0))
                parts.append(add_run_coords(grid, env, algo, seed, it))
    collected = xr.combine_by_coords(parts)
    assert np.isnan(float(collected["common_random_numbers"].sel(env="Hopper-v5", algo="ppo", seed=0, iteration=50)))
    row = claims.evaluate({"landscapes": collected}, SETTINGS).sel(claim="C5")
    assert row["verdict"].item() == "reproduced" and int(row["unit_count"]) == 8
