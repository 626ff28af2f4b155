"""Small statistics shared by probes and training: cosine similarities, relative variance, MRE."""
from __future__ import annotations

import numpy as np


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """cos(a, b) = a·b / (‖a‖ ‖b‖); NaN if either vector is zero (the angle is undefined,
    e.g. a TRPO step whose line search accepted nothing)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom > 0 else float("nan")


def pairwise_cosine(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs i < j of the rows of ``vectors`` (M, D): (values, index_a, index_b); NaN
    for a pair with a zero vector, as ``cosine_similarity``."""
    vectors = np.asarray(vectors, np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    unit = vectors / np.where(norms > 0, norms, 1.0)[:, None]
    index_a, index_b = np.triu_indices(len(vectors), k=1)
    values = np.einsum("pd,pd->p", unit[index_a], unit[index_b])
    return np.where((norms[index_a] > 0) & (norms[index_b] > 0), values, np.nan), index_a, index_b


def split_half_true_cosine(first: np.ndarray, second: np.ndarray, first_count: int,
                           second_count: int) -> tuple[float, float]:
    """How close a large-sample reference is to the quantity it estimates, from its halves.

    A mean of N independent samples is ĝ_N = g + ε_N with E ε_N = 0, E‖ε_N‖² = σ²/N.  For
    two disjoint parts of N_A and N_B samples, in high dimension (the cross terms vanish),

        c_half = cos(ĝ_A, ĝ_B) ≈ 1 / sqrt((1 + ρ/N_A)(1 + ρ/N_B)),   ρ = σ²/‖g‖²,

    solved for ρ ≥ 0 (a quadratic), and the whole reference's cosine with g is

        cos(ĝ_N, g) ≈ 1 / sqrt(1 + ρ/N),   N = N_A + N_B.

    Returns (c_half, cos(ĝ_N, g)); the second is 0 when c_half ≤ 0 (the halves share no
    measurable direction) and NaN when c_half is undefined.  A ratio estimate: unbiased
    only as c_half's own noise vanishes (it reads low when c_half is small)."""
    c_half = cosine_similarity(first, second)
    if not np.isfinite(c_half):
        return c_half, float("nan")
    if c_half <= 0:
        return c_half, 0.0
    # (1 + ρ/N_A)(1 + ρ/N_B) = 1/c²  ⇔  ρ²/(N_A N_B) + ρ (1/N_A + 1/N_B) + 1 − 1/c² = 0
    a, b, c = 1.0 / (first_count * second_count), 1.0 / first_count + 1.0 / second_count, 1 - 1 / c_half ** 2
    noise_ratio = (-b + np.sqrt(b * b - 4 * a * c)) / (2 * a)
    return c_half, float(1 / np.sqrt(1 + noise_ratio / (first_count + second_count)))


def relative_variance(estimates: np.ndarray) -> np.ndarray:
    """Empirical variance of M estimates relative to their mean's size:
    tr Cov(ĝ) / ‖ḡ‖², with the unbiased covariance (1/(M−1)) Σ_i ‖ĝ_i − ḡ‖² and
    ḡ = (1/M) Σ_i ĝ_i, over the last axis of ``estimates`` (..., M, P) → (...).  This is
    the "empirical variance" of Figures 1 and 4 as a number (the pairwise cosine is its
    proxy); scale-free, 0 for identical estimates, NaN when ḡ = 0 or M < 2.  When the
    estimates are noise around a small mean, ‖ḡ‖² ≈ tr Cov / M and the ratio approaches M
    (the value says the M-estimate mean is noise, not only that each estimate is)."""
    estimates = np.asarray(estimates, np.float64)
    count = estimates.shape[-2]
    if count < 2:
        return np.full(estimates.shape[:-2], np.nan)
    mean = estimates.mean(-2, keepdims=True)
    trace = ((estimates - mean) ** 2).sum((-2, -1)) / (count - 1)
    mean_sq = (mean[..., 0, :] ** 2).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mean_sq > 0, trace / np.where(mean_sq > 0, mean_sq, 1.0), np.nan)


def mean_relative_error(prediction, target, floor_fraction: float = 1e-3) -> float:
    """MRE = mean_i |V_i − y_i| / max(|y_i|, f), with the guard f = ``floor_fraction`` ×
    mean|y| so that targets near 0 cannot blow the mean up (a target at 0 contributes its
    absolute error in units of 0.1% of the typical target magnitude)."""
    prediction, target = np.asarray(prediction, np.float64), np.asarray(target, np.float64)
    floor = max(floor_fraction * float(np.mean(np.abs(target))), 1e-12)
    return float(np.mean(np.abs(prediction - target) / np.maximum(np.abs(target), floor)))
