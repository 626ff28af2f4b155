"""The relative-variance estimators against the closed-form bandit's exact moments.

On ``LinearQuadraticBandit`` with the linear Gaussian policy μ(s) = C s (the optimal mean)
and log σ = −2.5, one REINFORCE sample's exact moments (``closed_form.reinforce_moments``,
Gauss–Hermite, exact for these polynomials) give ρ = tr Σ₁ / ‖G‖² ≈ 1998, so N-sample
estimates have the true relative variance R = ρ / N: ≈ 2 (N = 1000), ≈ 50 (N = 40) and
≈ 2000 (N = 1).  M = 10 estimates per repetition, as the probes draw them.  Tolerances are
3 standard errors of the mean over repetitions (fixed seeds)."""
from __future__ import annotations

import numpy as np
import pytest

from pgprobe import closed_form
from pgprobe.stats import (gram_components, gram_matrix, relative_variance, unbiased_relative_variance,
                           variance_components)

WEIGHT = closed_form.GAIN.astype(np.float64)
BIAS = np.zeros(closed_form.ACT_DIM)
LOG_STD = np.full(closed_form.ACT_DIM, -2.5)
ESTIMATES = 10


def _truth(sample_count: int) -> tuple[float, float]:
    mean, trace_one = closed_form.reinforce_moments(WEIGHT, BIAS, LOG_STD)
    return trace_one / sample_count, float(mean @ mean)


def _repetitions(sample_count: int, repetitions: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    estimates = closed_form.reinforce_estimates(WEIGHT, BIAS, LOG_STD, sample_count, ESTIMATES,
                                                np.random.default_rng(seed), repetitions)
    return variance_components(estimates)


def _pooled_ratio(noise: np.ndarray, signal: np.ndarray) -> tuple[float, float]:
    """mean T̂ / mean Ŝ and its delta-method standard error over the repetitions."""
    count = noise.size
    t, s = noise.mean(), signal.mean()
    cov = np.cov(noise, signal)
    var = (cov[0, 0] / s ** 2 + t ** 2 * cov[1, 1] / s ** 4 - 2 * t * cov[0, 1] / s ** 3) / count
    return t / s, float(np.sqrt(var))


def test_exact_moments_match_monte_carlo():
    mean, trace_one = closed_form.reinforce_moments(WEIGHT + 0.3, BIAS, np.full(2, -1.0))
    samples = closed_form.reinforce_estimates(WEIGHT + 0.3, BIAS, np.full(2, -1.0), 1, 200_000,
                                              np.random.default_rng(1))[0]
    standard_error = samples.std(0) / np.sqrt(samples.shape[0])
    assert np.all(np.abs(samples.mean(0) - mean) < 4 * standard_error)
    assert samples.var(0, ddof=1).sum() == pytest.approx(trace_one, rel=0.03)


@pytest.mark.parametrize("target_ratio, sample_count, repetitions", [
    (2, 1000, 400), (50, 40, 4000), (2000, 1, 200_000)])
def test_unbiased_components_recover_the_true_ratio(target_ratio, sample_count, repetitions):
    trace, signal_true = _truth(sample_count)
    true_ratio = trace / signal_true
    assert true_ratio == pytest.approx(target_ratio, rel=0.01)
    noise, signal = _repetitions(sample_count, repetitions, seed=target_ratio)
    # each component's mean is within 3 standard errors of its exact value
    assert abs(noise.mean() - trace) < 3 * noise.std(ddof=1) / np.sqrt(repetitions)
    assert abs(signal.mean() - signal_true) < 3 * signal.std(ddof=1) / np.sqrt(repetitions)
    # the ratio of the components' means: within 3 SE of the true ratio, and not at M
    ratio, standard_error = _pooled_ratio(noise, signal)
    assert abs(ratio - true_ratio) < 3 * standard_error
    if true_ratio > ESTIMATES:
        assert ratio - ESTIMATES > 3 * standard_error


def test_plug_in_ratio_stops_at_the_estimate_count():
    """The old estimator: tr Ĉov / ‖ḡ‖² is of the order of M = 10 where the truth is ≈ 2000
    (12 in mean here: with P = 10 parameters ‖ḡ‖² ≈ tr Σ / M is a scaled χ²₁₀ and the ratio
    of two such sums averages above M)."""
    estimates = closed_form.reinforce_estimates(WEIGHT, BIAS, LOG_STD, 1, ESTIMATES, np.random.default_rng(3), 20_000)
    plug_in = relative_variance(estimates)
    assert ESTIMATES / 2 < plug_in.mean() < 2 * ESTIMATES


def test_jackknife_standard_error_matches_the_spread_when_the_signal_is_resolved():
    estimates = closed_form.reinforce_estimates(WEIGHT, BIAS, LOG_STD, 1000, ESTIMATES, np.random.default_rng(4), 400)
    ratio, standard_error = unbiased_relative_variance(gram_matrix(estimates))
    assert np.isfinite(ratio).all() and np.isfinite(standard_error).all()
    assert np.median(standard_error) == pytest.approx(np.std(ratio), rel=0.35)


def test_components_by_hand():
    estimates = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    noise, signal = gram_components(gram_matrix(estimates))
    # pairs i≠j: 0, 1, 1 (each twice) → Ŝ = 4/6; mean ‖ĝ‖² = 4/3 → T̂ = 2/3
    assert signal == pytest.approx(2 / 3) and noise == pytest.approx(2 / 3)
    mean = estimates.mean(0)
    assert noise == pytest.approx(((estimates - mean) ** 2).sum() / 2)
    assert signal == pytest.approx(mean @ mean - noise / 3)
    ratio, _ = unbiased_relative_variance(gram_matrix(np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]])))
    assert np.isnan(ratio)      # Ŝ < 0: no resolved signal, no ratio (not a ceiling)
