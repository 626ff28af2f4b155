"""Small statistics shared by probes and training: cosine similarities, relative variance
(plug-in and unbiased variance components), MRE."""
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
    """The *plug-in* noise-to-signal ratio of M estimates, tr Ĉov / ‖ḡ‖², with the unbiased
    covariance (1/(M−1)) Σ_i ‖ĝ_i − ḡ‖² and ḡ = (1/M) Σ_i ĝ_i, over the last axes of
    ``estimates`` (..., M, P) → (...).  Biased, with a ceiling: E‖ḡ‖² = ‖G‖² + tr Σ / M
    (G = E ĝ, Σ = Cov ĝ), so when the signal ‖G‖² is small against tr Σ / M the ratio tends
    to M (it says the M-estimate mean is noise, not how noisy one estimate is).  Kept for
    the datasets and figures made before ``unbiased_relative_variance``; NaN when ḡ = 0 or
    M < 2."""
    estimates = np.asarray(estimates, np.float64)
    count = estimates.shape[-2]
    if count < 2:
        return np.full(estimates.shape[:-2], np.nan)
    mean = estimates.mean(-2, keepdims=True)
    trace = ((estimates - mean) ** 2).sum((-2, -1)) / (count - 1)
    mean_sq = (mean[..., 0, :] ** 2).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mean_sq > 0, trace / np.where(mean_sq > 0, mean_sq, 1.0), np.nan)


def gram_matrix(estimates: np.ndarray) -> np.ndarray:
    """K_ij = ĝ_i · ĝ_j of M estimates (..., M, P) → (..., M, M): all that the variance
    components below need, and small enough to store per (arm, sample count) so that a
    bootstrap can resample the estimates (streams) later, paired across arms."""
    estimates = np.asarray(estimates, np.float64)
    return np.einsum("...ip,...jp->...ij", estimates, estimates)


def gram_components(gram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(noise T̂, signal Ŝ) from Gram matrices (..., M, M) of M independent estimates ĝ_i of
    one quantity G = E ĝ with Σ = Cov ĝ:

        Ŝ = (1/(M(M−1))) Σ_{i≠j} ĝ_i·ĝ_j  = ‖ḡ‖² − T̂/M,      E Ŝ = ‖G‖²   (i ≠ j independent)
        T̂ = (1/M) Σ_i ‖ĝ_i‖² − Ŝ          = tr Ĉov (ddof 1),  E T̂ = tr Σ

    Both are unbiased (U-statistics).  They are McCandlish et al. (2018, "An Empirical Model
    of Large-Batch Training", Appendix A)'s estimators of |G|² and tr Σ from two batch sizes
    with B_small = N (one estimate) and B_big = M·N (the mean of the M): their
    (B_big|G_big|² − B_small|G_small|²)/(B_big − B_small) is (M‖ḡ‖² − mean_i‖ĝ_i‖²)/(M − 1) = Ŝ,
    with |G_small|² read as mean_i ‖ĝ_i‖² (all M small batches rather than one).  Ŝ can be
    ≤ 0 when the signal is below the noise of the M-estimate mean.  NaN for M < 2."""
    gram = np.asarray(gram, np.float64)
    count = gram.shape[-1]
    if count < 2:
        nan = np.full(gram.shape[:-2], np.nan)
        return nan, nan
    diagonal = np.einsum("...ii->...i", gram)
    off_diagonal = gram.sum((-2, -1)) - diagonal.sum(-1)
    signal = off_diagonal / (count * (count - 1))
    return diagonal.mean(-1) - signal, signal


def variance_components(estimates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T̂, Ŝ) of ``gram_components`` from the estimates themselves (..., M, P)."""
    return gram_components(gram_matrix(estimates))


def noise_to_signal(noise, signal) -> np.ndarray:
    """T / S where S > 0, NaN where S ≤ 0 (the estimates cannot tell G from 0: the ratio is
    unbounded, not M) or either is NaN."""
    noise, signal = np.asarray(noise, np.float64), np.asarray(signal, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(signal > 0, noise / np.where(signal > 0, signal, 1.0), np.nan)


def unbiased_relative_variance(gram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R̂ = T̂ / Ŝ, jackknife standard error of R̂) from Gram matrices (..., M, M).

    R = tr Σ / ‖G‖² is the relative variance of one estimate (McCandlish et al.'s "simple
    noise scale" B_simple = tr Σ_1/‖G‖² divided by the estimate's sample count).  T̂ and Ŝ are
    unbiased; their ratio is not (no unbiased estimator of a ratio exists in general), but it
    has no ceiling: it is consistent in M and its bias is O(1/M) relative while Ŝ is well above
    its noise; a ratio of *averages* of T̂ and Ŝ over independent repetitions (units) converges
    to R.  The standard error is the delete-one jackknife over the M estimates (M ≥ 3), NaN
    where any leave-one-out Ŝ ≤ 0 (the signal is not resolved)."""
    gram = np.asarray(gram, np.float64)
    noise, signal = gram_components(gram)
    ratio = noise_to_signal(noise, signal)
    count = gram.shape[-1]
    if count < 3:
        return ratio, np.full(ratio.shape, np.nan)
    leave = []
    for i in range(count):
        keep = [j for j in range(count) if j != i]
        sub = gram[..., keep, :][..., keep]
        leave.append(noise_to_signal(*gram_components(sub)))
    leave = np.stack(leave, -1)
    with np.errstate(invalid="ignore"):
        spread = ((leave - leave.mean(-1, keepdims=True)) ** 2).sum(-1)
    return ratio, np.sqrt((count - 1) / count * spread)


def mean_relative_error(prediction, target, floor_fraction: float = 1e-3) -> float:
    """MRE = mean_i |V_i − y_i| / max(|y_i|, f), with the guard f = ``floor_fraction`` ×
    mean|y| so that targets near 0 cannot blow the mean up (a target at 0 contributes its
    absolute error in units of 0.1% of the typical target magnitude)."""
    prediction, target = np.asarray(prediction, np.float64), np.asarray(target, np.float64)
    floor = max(floor_fraction * float(np.mean(np.abs(target))), 1e-12)
    return float(np.mean(np.abs(prediction - target) / np.maximum(np.abs(target), floor)))


PLUG_IN_NOTE = ("plug-in noise-to-signal ratio tr Cov / ||mean||^2 of the M estimates (biased: "
                "E||mean||^2 = ||G||^2 + tr Sigma / M, so it tends to M, the estimate count, when the signal "
                "is small; kept for comparison, see relative_variance_unbiased)")


def variance_summary(estimates: np.ndarray, *, quantity: str, units: str) -> dict:
    """The variance variables every estimate-grid probe stores, as {name: (extra dims, data,
    long_name, units, attrs)} for estimates (..., M, P): ``gram`` (M × M per cell, so the claims
    bootstrap can resample the estimates, paired across arms that share streams), ``noise_trace``
    T̂, ``signal_norm_sq`` Ŝ, ``relative_variance_unbiased`` T̂/Ŝ and its jackknife standard
    error (``gram_components``, ``unbiased_relative_variance``)."""
    gram = gram_matrix(estimates)
    noise, signal = gram_components(gram)
    ratio, standard_error = unbiased_relative_variance(gram)
    q = quantity
    estimator = ("unbiased variance components (U-statistics over pairs of independent estimates; "
                 "McCandlish et al. 2018 App. A's two-batch-size estimators with B_small = N, B_big = M N)")
    return {
        "gram": (("estimate", "other_estimate"), gram, f"inner product of two {q} estimates (Gram matrix)",
                 f"({units})^2", {}),
        "noise_trace": ((), noise, f"trace of the covariance of one {q} estimate, unbiased: mean_i |g_i|^2 "
                        "minus signal_norm_sq (= tr Cov with ddof 1)", f"({units})^2", {"estimator": estimator}),
        "signal_norm_sq": ((), signal, f"squared norm of the expected {q} estimate, unbiased: mean over pairs "
                           "i != j of g_i . g_j (= |mean|^2 - noise_trace / M); <= 0 when the signal is below "
                           "the noise of the M-estimate mean", f"({units})^2", {"estimator": estimator}),
        "relative_variance_unbiased": (
            (), ratio, f"relative variance of one {q} estimate, tr Cov / |E g|^2, as noise_trace / "
            "signal_norm_sq; no ceiling at M; NaN where signal_norm_sq <= 0 (signal not resolved)", "1",
            {"estimator": "ratio of unbiased estimates: consistent, not itself unbiased (O(1/M) relative bias "
             "while the signal is resolved); pool noise_trace and signal_norm_sq over units before dividing"}),
        "relative_variance_unbiased_se": (
            (), standard_error, "delete-one jackknife standard error of relative_variance_unbiased over "
            "the M estimates (NaN where a leave-one-out signal is <= 0)", "1", {}),
    }
