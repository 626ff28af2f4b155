"""``pgprobe claims``: the paper's claims as statistics with 95% bootstrap CIs and verdicts.

Usage::

  pgprobe claims --datasets gradients=results/datasets/gradients.nc values=... \\
      [--settings JSON] --out results/claims.nc --table figures/claims.md

Each claim (``CLAIMS``) is a statistic over *units*, e.g. one (task, algorithm, seed,
checkpoint) of a probe.  A unit gives raw values per group (e.g. the pairwise cosines of
its M estimates at 2K samples); its value is mean(group a) − mean(group b) (or mean(a)
alone).  The statistic is the mean over units; its 95% CI is a two-level percentile
bootstrap (``resamples`` replicates): units are drawn with replacement, and within each
drawn unit its raw values too, so a study with one seed still carries the sampling noise
of its estimates, and seeds and checkpoints add theirs.

A claim resting on one number (one unit and nothing to resample: a zero-width CI) is
*inconclusive*, whatever the number.  In C4, a replicate where one arm's pooled signal is ≤ 0
has that arm's relative variance beyond every finite value (statistic ±inf, ordered as such);
replicates whose statistic is undefined (both arms' signals ≤ 0) lie beyond both ends of the
CI (±inf when they exceed the tail share).  Verdict against the claim's threshold t and
direction: for "<" (the claim says the
statistic is below t) *reproduced* if the CI's upper end is below t, *contradicted* if its
lower end is above t, else *inconclusive at this sample size*; ">" mirrored.  A claim whose
data are missing from the study is *not measured*.

Claims (paper sections in brackets; thresholds in config ``claims``):

* C1a [§2.1, Fig 1] mean pairwise cosine of gradient estimates at the batch size < t
  ("far from each other" at 2K samples).
* C1b mean pairwise cosine at the largest sample count minus at the batch size > 0.
* C2a [Fig 2] cosine with the reference gradient at the batch size < t.
* C2b reference cosine at the batch size, earliest minus latest probed checkpoint > 0
  (paired per task, algorithm and seed: "less well later in training").
* C3a [Fig 3] held-out value MRE against the GAE target < t.
* C3b held-out value MRE against the returns (correct definition) > t.
* C3c the same against the paper's code's returns definition (``returns_authors``) > t.
* C4a [Fig 4] log(R_value_net / R_true_value) > 0 at the batch size (the paper's arms,
  ``lambda_setting`` "paper"): the true value is the better baseline; R = tr Σ / ‖E ĝ‖², the
  relative variance of one estimate.  Not the plug-in tr Ĉov/‖ḡ‖², whose ceiling is M (the
  estimate count): each arm's unbiased noise T̂ (at the batch size) and signal Ŝ (setting
  ``c4_signal``: the N²-weighted mean over the baselines grid, default, or the batch size
  alone) are pooled over units, R = Σ T̃ / Σ S̃ (each unit scaled by its mean noise), and the
  bootstrap redraws each unit's streams ONCE for both arms (they share their streams: a paired
  design); ``pooled_log_ratio``.  Datasets without ``gram`` (before this version) give T̂ and Ŝ
  from ``relative_variance`` and ``gradient_norm`` without the within-unit draw.
* C4b log(R_zero / R_value_net) > 0.
* C5 [Fig 5] roughness of the true-reward landscape with the fewest trajectories per point
  minus with the most > 0 (roughness: mean |second difference| along both grid axes over
  the grid's value range).  From grids with independent episodes per point only (the paper's
  design; ``common_random_numbers`` false): a CRN grid's few-episode landscape is smooth by
  construction, so its units are left out.
* C6a [Fig 6, 7] correlation of surrogate and true reward over the grid at the early
  checkpoint > t; C6b early minus latest > 0 (paired).  "Early" is setting
  ``c6_early_iteration``: null (default) the earliest probed checkpoint after iteration 0 (the
  untrained policy), an integer the probed iteration nearest to it (0 allowed).  Within a unit
  the bootstrap redraws the episodes (index k, the same at every grid point).
* C7 [§2.1] relative spread (max − min)/|mean| of the final returns across the
  sample-regime grid > t, per task, algorithm and seed.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import xarray as xr

from .errors import PgprobeError

DEFAULT_SETTINGS = {
    "batch_size": 2048,            # "the sample regime the algorithms use"
    "c1_far_below": 0.5,
    "c2_far_below": 0.5,
    "c3_gae_below": 0.1,
    "c3_returns_above": 0.25,
    "c4_signal": "all_sample_counts",   # or "batch_size": where C4's signal ‖E ĝ‖² is read
    "c6_agree_above": 0.0,
    "c6_early_iteration": None,    # null: the earliest probed checkpoint after iteration 0
    "c7_spread_above": 0.1,
    "landscape_regime": None,      # null: the smallest step regime
    "resamples": 2000,
    "seed": 0,
}
RUN_DIMS = ["env", "algo", "seed", "iteration"]
VERDICTS = ["reproduced", "contradicted", "inconclusive", "not measured"]


@dataclass
class Claim:
    name: str
    paper: str
    text: str
    statistic: str
    dataset: str
    units: Callable          # (dataset, settings) -> list of (label, {"a": raw, "b": raw?})
    direction: str           # "<" or ">"
    threshold: Callable      # settings -> float
    pool: Callable | None = None   # [unit components] -> statistic (default: mean of unit values)


# ---------------------------------------------------------------------------- units
def _runs(ds: xr.Dataset, dims=RUN_DIMS):
    """(label, sub-dataset) per combination of the run dims that has data."""
    present = [d for d in dims if d in ds.dims]
    if not present:
        yield "", ds
        return
    stacked = ds.stack(unit=present)
    for i in range(stacked.sizes["unit"]):
        sub = stacked.isel(unit=i)
        key = sub["unit"].values.item()
        label = " ".join(f"{d}={v}" for d, v in zip(present, key if isinstance(key, tuple) else (key,)))
        yield label, sub


def _nearest(values, target) -> int:
    values = np.asarray(values, float)
    return int(values[np.argmin(np.abs(values - target))])


def _finite(x) -> np.ndarray:
    x = np.asarray(x, np.float64).ravel()
    return x[np.isfinite(x)]


def _at_batch(variable: str, over: str):
    def units(ds, settings):
        out = []
        for label, run in _runs(ds):
            n = _nearest(run["sample_count"].values, settings["batch_size"])
            raw = _finite(run[variable].sel(sample_count=n))
            if raw.size:
                out.append((f"{label} N={n}", {"a": raw}))
        return out
    return units


def _rise(ds, settings):
    out = []
    for label, run in _runs(ds):
        counts = run["sample_count"].values
        n = _nearest(counts, settings["batch_size"])
        top = int(counts.max())
        a, b = _finite(run["pairwise_cosine"].sel(sample_count=top)), _finite(run["pairwise_cosine"].sel(sample_count=n))
        if top > n and a.size and b.size:
            out.append((f"{label} N={top} vs {n}", {"a": a, "b": b}))
    return out


def _early_late(ds, settings, raw_fn):
    """Paired per (env, algo, seed): raw at the earliest trained checkpoint (> 0 when there is
    one) as group a, at the latest as group b."""
    out = []
    for label, run in _runs(ds, ["env", "algo", "seed"]):
        iterations = [int(i) for i in run["iteration"].values if raw_fn(run.sel(iteration=i)).size]
        trained = [i for i in iterations if i > 0] or iterations
        if len(trained) >= 2:
            early, late = trained[0], trained[-1]
            out.append((f"{label} iter {early} vs {late}",
                        {"a": raw_fn(run.sel(iteration=early)), "b": raw_fn(run.sel(iteration=late))}))
    return out


def _reference_late(ds, settings):
    def raw(run):
        n = _nearest(run["sample_count"].values, settings["batch_size"])
        return _finite(run["reference_cosine"].sel(sample_count=n))
    return _early_late(ds, settings, raw)


def _mre(target: str):
    def units(ds, settings):
        out = []
        for label, run in _runs(ds):
            if target not in run["target"].values:
                continue
            value = _finite(run["mre"].sel(split="heldout", target=target))
            if value.size:
                out.append((label, {"a": value}))
        return out
    return units


def _signal_weights(counts: list, batch: int, settings: dict) -> np.ndarray:
    """Weights of each sample count's Ŝ_N in an arm's signal: setting ``c4_signal``
    "batch_size" uses N = batch alone; "all_sample_counts" (default) the precision-weighted
    mean over the grid, w_N ∝ N² (Var Ŝ_N ∝ tr(Σ_N²) ∝ 1/N² where noise dominates).  The latter
    assumes E ĝ_N = G for every N (exact without eq. 15's per-batch normalization, O(1/N)
    with it; on the 3-seed claims study the pooled Ŝ_N·N/T̂_N agree across N within their SEs)."""
    counts = np.asarray(counts, np.float64)
    if settings["c4_signal"] == "batch_size":
        return (counts == batch).astype(np.float64)
    return counts ** 2 / np.sum(counts ** 2)


def _paired_components(grams_worse: np.ndarray, grams_better: np.ndarray, batch_row: int,
                       weights: np.ndarray) -> Callable:
    """A unit of C4 with per-stream data: (rng or None) -> [T_w, S_w, T_b, S_b] of the two arms
    from their Gram matrices (sample count, M, M) over the SAME streams: T at the batch size,
    S the ``weights``-mean of Ŝ_N.  A bootstrap replicate draws stream indices once per sample
    count and uses them for both arms (the pairing); pairs of draws of one stream are left out of
    Ŝ (its U-statistic needs independent estimates)."""
    from .stats import gram_components

    count = grams_worse.shape[-1]

    def arm(grams, drawn_rows):
        noise, signal = np.zeros(len(grams)), np.zeros(len(grams))
        for row, gram in enumerate(grams):
            drawn = drawn_rows[row]
            if drawn is None:
                noise[row], signal[row] = gram_components(gram)
                continue
            sub = gram[np.ix_(drawn, drawn)]
            distinct = drawn[:, None] != drawn[None, :]
            signal[row] = sub[distinct].mean() if distinct.any() else np.nan
            noise[row] = np.diag(sub).mean() - signal[row]
        return [noise[batch_row], float(np.sum(weights * signal))]

    def components(rng):
        drawn = [None if rng is None else rng.integers(0, count, count) for _ in range(len(grams_worse))]
        return np.array(arm(grams_worse, drawn) + arm(grams_better, drawn))
    return components


def _old_components(run, worse: str, better: str, batch_row: int, weights: np.ndarray) -> np.ndarray | None:
    """[T_w, S_w, T_b, S_b] recovered from a dataset without ``gram``: per sample count, the
    plug-in ratio r = T/‖ḡ‖² and q = mean_i ‖ĝ_i‖² (``gradient_norm``) give T = M q r / ((M−1) r + M)
    and S = T/r − T/M (exact algebra of the same estimators); None without ``gradient_norm``."""
    if "gradient_norm" not in run or "estimate" not in run.dims:
        return None
    out = []
    for arm in (worse, better):
        noise, signal = [], []
        for n in run["sample_count"].values:
            ratio = float(run["relative_variance"].sel(sample_count=n, baseline=arm))
            norms = _finite(run["gradient_norm"].sel(sample_count=n, baseline=arm))
            count = norms.size
            if count < 2 or not np.isfinite(ratio) or ratio <= 0:
                return None
            noise.append(count * float(np.mean(norms ** 2)) * ratio / ((count - 1) * ratio + count))
            signal.append(noise[-1] / ratio - noise[-1] / count)
        out += [noise[batch_row], float(np.sum(weights * np.array(signal)))]
    return np.array(out)


def _baseline_ratio(worse: str, better: str):
    """C4's units: per (task, algorithm, seed, checkpoint), the variance components of both arms
    (``lambda_setting`` "paper", the paper's arms): noise at the batch size, signal per
    ``c4_signal``.  With ``gram`` (datasets from this version on) they are resampled per stream,
    paired; older datasets give them from ``relative_variance`` and ``gradient_norm`` without
    within-unit resampling (their labels say so); datasets with neither fall back to the
    plug-in per-unit log ratio (labelled)."""
    def units(ds, settings):
        out = []
        for label, run in _runs(ds):
            run = run.sel(lambda_setting="paper") if "lambda_setting" in run.dims else run
            counts = [int(c) for c in run["sample_count"].values]
            n = _nearest(counts, settings["batch_size"])
            weights = _signal_weights(counts, n, settings)
            if "gram" in run:
                grams = [np.asarray(run["gram"].sel(baseline=arm).values, np.float64) for arm in (worse, better)]
                if all(np.isfinite(g).all() for g in grams):
                    out.append((f"{label} N={n}", {"components": _paired_components(
                        *grams, counts.index(n), weights)}))
                continue
            fixed = _old_components(run, worse, better, counts.index(n), weights)
            if fixed is not None:
                out.append((f"{label} N={n} (no per-stream Gram: not resampled within the unit)",
                            {"components": (lambda value: lambda rng: value)(fixed)}))
                continue
            variance = run["relative_variance"].sel(sample_count=n)
            ratio = float(np.log(variance.sel(baseline=worse) / variance.sel(baseline=better)))
            if np.isfinite(ratio):
                out.append((f"{label} N={n} (plug-in relative variance)", {"a": np.array([ratio])}))
        return out
    return units


def pooled_log_ratio(components: list) -> float:
    """C4's statistic: log(R_w / R_b), R = Σ_u T̃_u / Σ_u S̃_u over units u, each unit's four
    components divided by its mean noise (T_w + T_b)/2 so that every unit weighs alike.  A
    ratio of pooled unbiased estimates (see ``stats.unbiased_relative_variance``), where a
    per-unit ratio is undefined for every unit whose own Ŝ ≤ 0.

    Equivalently log(SNR_b / SNR_w) with SNR = S̃ / T̃, defined for any S̃: an arm whose pooled
    signal is ≤ 0 has SNR ≤ 0, below every positive one (its relative variance beyond every
    finite value), so the statistic is +∞ when only the worse arm's signal is ≤ 0 and −∞
    when only the better arm's is: the order a percentile bootstrap needs (it is invariant
    under monotone maps).  NaN (undefined) only when both pooled signals are ≤ 0."""
    rows = np.array([c / ((c[0] + c[2]) / 2) if (c[0] + c[2]) > 0 else c * np.nan for c in components])
    rows = rows[np.isfinite(rows).all(1)]
    if not rows.size:
        return math.nan
    noise_w, signal_w, noise_b, signal_b = rows.sum(0)
    if signal_w <= 0 and signal_b <= 0:
        return math.nan
    if signal_w <= 0:
        return math.inf
    if signal_b <= 0:
        return -math.inf
    return float(np.log((noise_w / signal_w) / (noise_b / signal_b)))


def roughness(grid: np.ndarray) -> float:
    """Mean |second difference| of a 2-D grid along both axes over its value range (0 for a
    plane, larger for a jagged surface; scale-free)."""
    grid = np.asarray(grid, np.float64)
    span = np.nanmax(grid) - np.nanmin(grid)
    if not np.isfinite(span) or span == 0:
        return math.nan
    parts = [np.abs(np.diff(grid, n=2, axis=axis)).ravel() for axis in (0, 1) if grid.shape[axis] >= 3]
    return float(np.nanmean(np.concatenate(parts)) / span) if parts else math.nan


def _regime(run, settings):
    wanted = settings["landscape_regime"]
    regimes = [int(r) for r in run["regime"].values]
    return min(regimes) if wanted is None else _nearest(regimes, wanted)


def _roughness_units(ds, settings):
    out = []
    for label, run in _runs(ds):
        if "common_random_numbers" in run and float(run["common_random_numbers"]) == 1:
            continue     # C5 is the paper's Figure 5: independent episodes per point (CRN grids are left out)
        # (NaN: a run × checkpoint a collected dataset has no grid for, e.g. an excluded run)
        grid = run["true_reward"].sel(regime=_regime(run, settings))
        counts = [int(t) for t in run["trajectories"].values]
        few, many = roughness(grid.sel(trajectories=min(counts)).values), roughness(grid.sel(trajectories=max(counts)).values)
        if len(counts) >= 2 and np.isfinite(few) and np.isfinite(many):
            out.append((f"{label} T={min(counts)} vs {max(counts)}", {"a": np.array([few - many])}))
    return out


def _correlation_unit(run, settings) -> Callable | None:
    """(rng or None) -> correlation of surrogate and true reward over one checkpoint's grid
    (regime ``landscape_regime``, every episode of a point).  A bootstrap replicate redraws the
    episode indices k, the same k at every point (right for common random numbers, where
    episode k shares its seeds across points, and valid without them).  Datasets without
    ``episode_return`` use ``true_reward`` as it is.  None where the correlation is undefined."""
    regime = _regime(run, settings)
    surrogate = np.asarray(run["surrogate"].sel(regime=regime).values, np.float64).ravel()
    if "episode_return" in run:
        episodes = np.asarray(run["episode_return"].sel(regime=regime).values, np.float64)
        episodes = episodes.reshape(-1, episodes.shape[-1])
    else:
        episodes = np.asarray(run["true_reward"].sel(regime=regime, trajectories=run["trajectories"].values.max())
                              .values, np.float64).reshape(-1, 1)

    def correlation(rng):
        drawn = episodes if rng is None or episodes.shape[1] < 2 else \
            episodes[:, rng.integers(0, episodes.shape[1], episodes.shape[1])]
        with np.errstate(invalid="ignore"):
            true = np.nanmean(drawn, -1) if np.isfinite(drawn).any() else np.full(drawn.shape[0], np.nan)
        keep = np.isfinite(true) & np.isfinite(surrogate)
        if keep.sum() < 3 or np.std(true[keep]) == 0 or np.std(surrogate[keep]) == 0:
            return math.nan
        return float(np.corrcoef(true[keep], surrogate[keep])[0, 1])

    return correlation if np.isfinite(correlation(None)) else None


def early_iteration(iterations: list, settings: dict) -> int | None:
    """C6's "early" checkpoint among the probed ``iterations``: setting ``c6_early_iteration``
    null (default) takes the earliest after iteration 0 (the untrained policy; iteration 0 if it
    is the only one), an integer the probed iteration nearest to it (0 allowed)."""
    iterations = sorted(int(i) for i in iterations)
    if not iterations:
        return None
    wanted = settings["c6_early_iteration"]
    if wanted is None:
        return ([i for i in iterations if i > 0] or iterations)[0]
    return _nearest(iterations, wanted)


def _agreement_units(ds, settings):
    """Per (env, algo, seed): {iteration: correlation unit} of the checkpoints with a defined one."""
    for label, run in _runs(ds, ["env", "algo", "seed"]):
        found = {int(i): _correlation_unit(run.sel(iteration=i), settings) for i in run["iteration"].values}
        yield label, {i: unit for i, unit in found.items() if unit is not None}


def _agreement_early(ds, settings):
    """Per (env, algo, seed): the correlation at its early checkpoint (``early_iteration``)."""
    out = []
    for label, found in _agreement_units(ds, settings):
        early = early_iteration(list(found), settings)
        if early is not None:
            out.append((f"{label} iter {early}", {"value": found[early]}))
    return out


def _agreement_drop(ds, settings):
    """Per (env, algo, seed): correlation at the early checkpoint minus at the latest (paired)."""
    out = []
    for label, found in _agreement_units(ds, settings):
        early = early_iteration(list(found), settings)
        late = max(found) if found else None
        if early is not None and late != early:
            first, last = found[early], found[late]
            out.append((f"{label} iter {early} vs {late}",
                        {"value": (lambda a, b: lambda rng: a(rng) - b(rng))(first, last)}))
    return out


def _regime_spread(ds, settings):
    out = []
    for label, run in _runs(ds, ["env", "algo", "seed"]):
        returns = run["mean_return"]
        last = returns["iteration"].values[-max(1, returns.sizes["iteration"] // 10):]
        final = returns.sel(iteration=last).mean("iteration").values.ravel()
        final = final[np.isfinite(final)]
        if final.size >= 2 and np.mean(final) != 0:
            out.append((label, {"a": np.array([(final.max() - final.min()) / abs(final.mean())])}))
    return out


CLAIMS = [
    Claim("C1a", "§2.1, Fig. 1", "gradient estimates at the batch size are far from each other",
          "mean pairwise cosine at the batch size", "gradients", _at_batch("pairwise_cosine", "pair"), "<",
          lambda s: s["c1_far_below"]),
    Claim("C1b", "§2.1, Fig. 1", "estimates agree more with more samples",
          "mean pairwise cosine, largest sample count minus batch size", "gradients", _rise, ">", lambda s: 0.0),
    Claim("C2a", "§2.1, Fig. 2", "estimates at the batch size are far from the true gradient",
          "mean cosine with the reference gradient at the batch size", "gradients",
          _at_batch("reference_cosine", "estimate"), "<", lambda s: s["c2_far_below"]),
    Claim("C2b", "§2.1, Fig. 2", "convergence to the true gradient is worse later in training",
          "reference cosine at the batch size, earliest minus latest checkpoint", "gradients", _reference_late,
          ">", lambda s: 0.0),
    Claim("C3a", "§2.2, Fig. 3", "the value net fits its GAE target",
          "held-out MRE against V_old + A_GAE", "values", _mre("gae"), "<", lambda s: s["c3_gae_below"]),
    Claim("C3b", "§2.2, Fig. 3", "the value net does not fit the returns (correct definition)",
          "held-out MRE against bootstrapped discounted returns", "values", _mre("returns"), ">",
          lambda s: s["c3_returns_above"]),
    Claim("C3c", "§2.2, Fig. 3", "the value net does not fit the returns (the paper's code's definition)",
          "held-out MRE against returns_authors", "values", _mre("returns_authors"), ">",
          lambda s: s["c3_returns_above"]),
    Claim("C4a", "§2.2, Fig. 4", "the true value is a better baseline than the value net",
          "log(relative variance with value net / with true value) at the batch size, pooled, paired", "baselines",
          _baseline_ratio("value_net", "true_value"), ">", lambda s: 0.0, pool=pooled_log_ratio),
    Claim("C4b", "§2.2, Fig. 4", "the value net is a better baseline than zero",
          "log(relative variance with zero / with value net) at the batch size, pooled, paired", "baselines",
          _baseline_ratio("zero", "value_net"), ">", lambda s: 0.0, pool=pooled_log_ratio),
    Claim("C5", "§2.3, Fig. 5", "the true reward landscape is jagged with few trajectories, smooth with many",
          "roughness with the fewest minus the most trajectories per point", "landscapes", _roughness_units,
          ">", lambda s: 0.0),
    Claim("C6a", "§2.3, Figs. 6-7", "surrogate and true reward agree early in training",
          "correlation of surrogate and true reward over the grid, earliest checkpoint", "landscapes",
          _agreement_early, ">", lambda s: s["c6_agree_above"]),
    Claim("C6b", "§2.3, Figs. 6-7", "surrogate and true reward agree less later in training",
          "correlation, earliest minus latest checkpoint", "landscapes", _agreement_drop, ">", lambda s: 0.0),
    Claim("C7", "§2.1", "the sample regime matters for training",
          "relative spread of final returns across the sample-regime grid", "sample_regime", _regime_spread,
          ">", lambda s: s["c7_spread_above"]),
]


# ---------------------------------------------------------------------------- statistics
def _unit_value(groups: dict, rng: np.random.Generator | None) -> float:
    """A unit's value: its own function (``value``), or mean(a) [− mean(b)], each group's raw
    values redrawn with replacement when ``rng`` is given."""
    if "value" in groups:
        return groups["value"](rng)
    if "components" in groups:
        return pooled_log_ratio([groups["components"](rng)])

    def mean(raw):
        raw = np.asarray(raw, np.float64)
        if rng is not None and raw.size > 1:
            raw = raw[rng.integers(0, raw.size, raw.size)]
        return float(raw.mean())
    value = mean(groups["a"])
    return value - mean(groups["b"]) if "b" in groups else value


def _statistic(units: list, drawn, rng, pool: Callable | None) -> float:
    if pool is not None and all("components" in groups for _, groups in units):
        return pool([units[i][1]["components"](rng) for i in drawn])
    with np.errstate(invalid="ignore"):
        return float(np.mean([_unit_value(units[i][1], rng) for i in drawn]))


def bootstrap(units: list, resamples: int, seed: int, level: float = 0.95,
              pool: Callable | None = None) -> tuple[float, float, float]:
    """(statistic, CI low, CI high): mean over units of their values (or ``pool`` of their
    components); two-level percentile bootstrap (units with replacement, then each unit's raw
    values, streams or episodes with replacement).  Replicates whose statistic is undefined
    (NaN: e.g. a pooled signal ≤ 0) count as beyond either end: the CI is then as wide as they
    make it (an end is ±inf when more than the tail share of replicates is undefined)."""
    rng = np.random.default_rng(seed)
    statistic = _statistic(units, range(len(units)), None, pool)
    replicates = np.empty(resamples)
    for b in range(resamples):
        replicates[b] = _statistic(units, rng.integers(0, len(units), len(units)), rng, pool)
    tail = (1 - level) / 2
    undefined = int(np.isnan(replicates).sum())
    if undefined == 0:
        # ±∞ replicates (``pooled_log_ratio``): order statistics, no interpolation with an infinity
        method = "inverted_cdf" if np.isinf(replicates).any() else "linear"
        return (statistic, float(np.quantile(replicates, tail, method=method)),
                float(np.quantile(replicates, 1 - tail, method=method)))
    if undefined > tail * resamples:
        return statistic, -math.inf, math.inf
    finite = np.sort(replicates[~np.isnan(replicates)])
    # the undefined replicates sit outside either end: take the quantiles of all as if they
    # were -inf for the lower end and +inf for the upper end
    low = np.quantile(np.concatenate([np.full(undefined, -np.inf), finite]), tail, method="inverted_cdf")
    high = np.quantile(np.concatenate([finite, np.full(undefined, np.inf)]), 1 - tail, method="inverted_cdf")
    return statistic, float(low), float(high)


def verdict(low: float, high: float, direction: str, threshold: float) -> str:
    below, above = high < threshold, low > threshold
    if direction == "<":
        return "reproduced" if below else "contradicted" if above else "inconclusive"
    return "reproduced" if above else "contradicted" if below else "inconclusive"


def check_settings(given) -> dict:
    given = json.loads(given) if isinstance(given, str) else dict(given or {})
    unknown = sorted(set(given) - set(DEFAULT_SETTINGS))
    if unknown:
        raise PgprobeError(f"unknown claims setting {unknown[0]!r}: expected one of {', '.join(DEFAULT_SETTINGS)}")
    settings = {**DEFAULT_SETTINGS, **given}
    for key in ("resamples", "batch_size"):
        if not isinstance(settings[key], int) or isinstance(settings[key], bool) or settings[key] < 1:
            raise PgprobeError(f"claims setting {key!r} = {settings[key]!r}: expected a positive integer")
    early = settings["c6_early_iteration"]
    if early is not None and (not isinstance(early, int) or isinstance(early, bool) or early < 0):
        raise PgprobeError(f"claims setting 'c6_early_iteration' = {early!r}: expected null or a non-negative "
                           "integer (a training iteration)")
    if settings["c4_signal"] not in ("all_sample_counts", "batch_size"):
        raise PgprobeError(f"claims setting 'c4_signal' = {settings['c4_signal']!r}: expected "
                           "'all_sample_counts' or 'batch_size'")
    return settings


def evaluate(datasets: dict, settings: dict | None = None) -> xr.Dataset:
    """The claims dataset (dim ``claim``) from the collected datasets by probe name."""
    from .datasets import provenance, variable

    settings = check_settings(settings)
    rows = []
    for i, claim in enumerate(CLAIMS):
        ds = datasets.get(claim.dataset)
        try:
            units = claim.units(ds, settings) if ds is not None else []
        except KeyError:   # a dataset of an older pgprobe without the claim's variable
            units = []
        threshold = float(claim.threshold(settings))
        if not units:
            rows.append((claim, math.nan, math.nan, math.nan, threshold, "not measured", 0, ""))
            continue
        stat, low, high = bootstrap(units, settings["resamples"], settings["seed"] + i, pool=claim.pool)
        judged = verdict(low, high, claim.direction, threshold)
        if len(units) < 2 and low == high:
            judged = "inconclusive"   # one number: nothing to resample, no uncertainty known
        rows.append((claim, stat, low, high, threshold, judged, len(units), "; ".join(label for label, _ in units)))
    col = lambda k: [r[k] for r in rows]  # noqa: E731
    ds = xr.Dataset(
        {
            "statistic": variable(("claim",), np.array(col(1)), "the claim's statistic (mean over units)", "1"),
            "ci_low": variable(("claim",), np.array(col(2)), "95% two-level bootstrap CI, lower end", "1"),
            "ci_high": variable(("claim",), np.array(col(3)), "95% two-level bootstrap CI, upper end", "1"),
            "threshold": variable(("claim",), np.array(col(4)), "threshold the claim is judged against", "1"),
            "unit_count": variable(("claim",), np.array(col(6), np.int64),
                                   "units (runs x checkpoints, or runs) behind the statistic", "1"),
        },
        coords={
            "claim": variable(("claim",), [c.name for c in CLAIMS], "claim of the paper", "1"),
            "paper_section": variable(("claim",), [c.paper for c in CLAIMS], "where the paper makes it", "1"),
            "text": variable(("claim",), [c.text for c in CLAIMS], "the claim", "1"),
            "statistic_name": variable(("claim",), [c.statistic for c in CLAIMS], "what the statistic is", "1"),
            "direction": variable(("claim",), [c.direction for c in CLAIMS],
                                  "the claim holds if the statistic is on this side of the threshold", "1"),
            "verdict": variable(("claim",), col(5), "reproduced | contradicted | inconclusive | not measured", "1"),
            "units": variable(("claim",), col(7), "the units, by label", "1"),
        })
    ds.attrs = provenance("claims", settings, data_versions=data_versions(datasets))
    return ds


def data_versions(datasets: dict) -> str:
    """The package versions the claims' input datasets were made with ("mixed: a | b" where
    they differ; "unrecorded" for datasets older than version recording)."""
    from .collect import merged_versions
    from .versions import describe

    present = [ds.attrs for ds in datasets.values() if ds is not None]
    if not present:
        return "no datasets"
    return describe(merged_versions(present, [""] * len(present), allow_mixed=True))


def markdown(ds: xr.Dataset) -> str:
    """The claims table as markdown (what figures/claims.md holds)."""
    seeds = {u.split("seed=")[1].split()[0] for units in ds["units"].values for u in str(units).split("; ")
             if "seed=" in u}
    lines = ["# The paper's claims, measured", "",
             f"Verdicts at 95% (two-level bootstrap over units and their estimates, "
             f"{json.loads(ds.attrs['config_json'])['resamples']} resamples). "
             f"Training seeds in this study: {len(seeds) or 'none'}"
             + (" — one seed: the CIs carry the estimates' sampling noise and the checkpoints', "
                "not the spread between training runs." if len(seeds) == 1 else "."), "",
             f"Data made with {ds.attrs.get('data_versions', 'unrecorded versions')}.", "",
             "| claim | paper | statistic | value | 95% CI | claim holds if | verdict | units |",
             "|---|---|---|---|---|---|---|---|"]
    for i in range(ds.sizes["claim"]):
        row = ds.isel(claim=i)
        value = float(row["statistic"])
        cells = ("–", "–") if not np.isfinite(value) else (f"{value:.3g}", f"[{float(row['ci_low']):.3g}, {float(row['ci_high']):.3g}]")
        lines.append(f"| {row['claim'].item()}: {row['text'].item()} | {row['paper_section'].item()} | "
                     f"{row['statistic_name'].item()} | {cells[0]} | {cells[1]} | "
                     f"{row['direction'].item()} {float(row['threshold']):g} | **{row['verdict'].item()}** | "
                     f"{int(row['unit_count'])} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- CLI
def open_named_datasets(items: list[str]) -> dict:
    """``--datasets NAME=PATH ...``: {name: dataset}, each file checked to be of kind NAME."""
    from .datasets import open_dataset

    datasets = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            raise PgprobeError(f"--datasets {item!r}: expected NAME=PATH")
        datasets[name] = open_dataset(path, kind=name)
    return datasets


def _cmd(args) -> None:
    from .atomic import atomic_output
    from .datasets import write_netcdf

    ds = evaluate(open_named_datasets(args.datasets), args.settings)
    write_netcdf(ds, args.out)
    if args.table:
        with atomic_output(args.table) as tmp:
            with open(tmp, "w") as fh:
                fh.write(markdown(ds))
    for i in range(ds.sizes["claim"]):
        print(f"{ds['claim'].values[i]}: {ds['verdict'].values[i]}")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("claims", help="the paper's claims: statistic, 95% CI, verdict",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", required=True, metavar="NAME=PATH",
                        help="collected datasets: gradients, values, baselines, landscapes, sample_regime")
    parser.add_argument("--settings", help="JSON object: the config section claims")
    parser.add_argument("--out", required=True, help="output NetCDF (results/claims.nc)")
    parser.add_argument("--table", help="also write the markdown table here (figures/claims.md)")
    parser.set_defaults(func=_cmd)
