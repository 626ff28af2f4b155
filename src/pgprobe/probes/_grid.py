"""Shared machinery of the sample-count-grid probes (gradients, steps; reusable by others).

Stable API (other probes may import these):

* ``parse_settings(text_or_dict, defaults, kinds, probe)``: merge ``--settings`` JSON over a
  probe's DEFAULTS with one-line PgprobeErrors naming the bad key.
* ``sample_count_grid(settings)``: the sample counts of the grid (explicit ``sample_counts``
  or the doubling grid ``min_sample_count · 2^k ≤ max_sample_count``).
* ``PolicyGradientModel``: exact float64 numpy gradients of Σ_i w_ki log π_θ(a_i|s_i) for a
  Gaussian MLP policy (tanh or ReLU), for K weightings and any leading batch dims at once (one forward
  and one backward pass; no torch, so it runs inside forked sampler workers).
* ``stream_gradient_sums(rollout, spec, model, gamma, lam)``: a picklable ``reduce`` for
  ``pgprobe.sampling.sample_streams``: GAE advantages of the stream from the checkpoint's
  value predictions, then ``GradientSums`` (Σ∇logπ·A, Σ∇logπ, ΣA, ΣA², n) plus trajectory
  counts; computed in the worker so that large samples never cross process boundaries.
* ``chunk_aligned_shard(streams, chunk_size, shard, shard_count)``: the streams of one
  reference shard, whole sampler chunks only, so every stream is sampled in the same
  lockstep chunk whether sharded or not (bitwise identical per-stream samples).
* ``similarity_dataset(...)``: the (sample_count, estimate, pair) dataset of pairwise and
  reference cosine similarities written by the gradients and steps probes.

Seed keys of streams are (probe seed, checkpoint seed, checkpoint iteration, PURPOSE, a, b)
with per-probe PURPOSE codes, so every probe's streams are independent of training's and of
other probes'.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..errors import PgprobeError

# ---------------------------------------------------------------------------- settings
def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# kind -> (test, what was expected)
SETTING_KINDS = {
    "pos_int": (lambda v: _int(v) and v > 0, "a positive integer"),
    "nonneg_int": (lambda v: _int(v) and v >= 0, "a non-negative integer"),
    "pos_float": (lambda v: _number(v) and v > 0, "a positive number"),
    "unit": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "unit_or_null": (lambda v: v is None or (_number(v) and 0 <= v <= 1), "null or a number in [0, 1]"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "pos_int_list": (lambda v: isinstance(v, list) and len(v) > 0 and all(_int(x) and x > 0 for x in v),
                     "a non-empty list of positive integers"),
    "pos_int_list_or_null": (lambda v: v is None or (isinstance(v, list) and len(v) > 0
                                                     and all(_int(x) and x > 0 for x in v)),
                             "null or a non-empty list of positive integers"),
}


def parse_settings(text_or_dict, defaults: dict, kinds: dict, probe: str) -> dict:
    """Merge a JSON object (string or dict) over ``defaults``.

    ``kinds[key]`` names an entry of ``SETTING_KINDS``.  Unknown keys, wrong types and
    out-of-range values raise a one-line PgprobeError naming the key and the value.
    """
    if text_or_dict is None:
        given = {}
    elif isinstance(text_or_dict, dict):
        given = dict(text_or_dict)
    else:
        try:
            given = json.loads(text_or_dict)
        except json.JSONDecodeError as exc:
            raise PgprobeError(f"--settings is not valid JSON: {exc.msg} (at char {exc.pos})") from None
        if not isinstance(given, dict):
            raise PgprobeError(f"--settings must be a JSON object of probes.{probe} keys, "
                               f"got {type(given).__name__}")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise PgprobeError(f"unknown probes.{probe} setting {unknown[0]!r}: expected one of "
                           f"{', '.join(sorted(defaults))}")
    settings = {**defaults, **given}
    for key, value in settings.items():
        test, expected = SETTING_KINDS[kinds[key]]
        if not test(value):
            raise PgprobeError(f"probes.{probe} setting {key!r} = {json.dumps(value)}: expected {expected}")
    return settings


def sample_count_grid(settings: dict) -> list[int]:
    """Explicit ``sample_counts`` (sorted, deduplicated) or min·2^k up to ``max_sample_count``."""
    if settings.get("sample_counts"):
        return sorted(set(int(n) for n in settings["sample_counts"]))
    low, high = settings["min_sample_count"], settings["max_sample_count"]
    if low > high:
        raise PgprobeError(f"min_sample_count = {low} exceeds max_sample_count = {high}")
    grid = []
    n = low
    while n <= high:
        grid.append(n)
        n *= 2
    return grid


def derived_seed(*key: int) -> int:
    """A 63-bit integer seed derived from a tuple of non-negative ints (SeedSequence)."""
    seq = np.random.SeedSequence([int(k) for k in key])
    return int(seq.generate_state(1, dtype=np.uint64)[0] % (2 ** 63))


# ---------------------------------------------------------------------------- gradients
class PolicyGradientModel:
    """Float64 numpy copy of a Gaussian MLP policy (tanh or ReLU) with exact ∇θ log π.

    log π_θ(a|s) = −½ Σ_j z_j² − Σ_j log σ_j − (d/2) log 2π,  z = (a − μ_θ(s)) / σ,
    so ∂log π/∂μ = z/σ and ∂log π/∂log σ = z² − 1; the mean MLP is back-propagated by hand
    (h_l = f(h_{l−1} W_l + b_l), f = tanh or ReLU, last layer linear).  Parameters are flattened in
    ``GaussianPolicy.parameters()`` order: log_std (the module's own parameter comes first),
    then each Linear's weight (out × in, row-major) and bias — the order of
    ``pgprobe.policies.flat_params``.
    """

    def __init__(self, weights: list[np.ndarray], biases: list[np.ndarray], log_std: np.ndarray,
                 activation: str = "tanh"):
        if activation not in ("tanh", "relu"):
            raise ValueError(f"unknown activation {activation!r}: expected 'tanh' or 'relu'")
        self.activation = activation
        self.weights = [np.asarray(w, np.float64) for w in weights]   # (in, out) each
        self.biases = [np.asarray(b, np.float64) for b in biases]
        self.log_std = np.asarray(log_std, np.float64)
        self.std = np.exp(self.log_std)
        self.parameter_count = int(sum(w.size + b.size for w, b in zip(self.weights, self.biases))
                                   + self.log_std.size)

    @classmethod
    def from_agent(cls, agent) -> "PolicyGradientModel":
        """From a ``pgprobe.sampling.FrozenAgent`` (the float32 weights the sampler acts with)."""
        return cls(agent.policy_mean.weights, agent.policy_mean.biases, agent.log_std,
                   getattr(agent.policy_mean, "activation", "tanh"))

    @classmethod
    def from_policy(cls, policy) -> "PolicyGradientModel":
        """From a torch ``GaussianPolicy``."""
        from ..policies import NumpyMLP
        mlp = NumpyMLP(policy.mean_net)
        return cls(mlp.weights, mlp.biases, policy.log_std.detach().numpy(), mlp.activation)

    def weighted_sums(self, obs: np.ndarray, actions: np.ndarray, weights: np.ndarray,
                      block: int = 8192) -> np.ndarray:
        """∇θ Σ_i w_ki log π_θ(a_i|s_i) for every weighting k.

        obs (..., n, obs_dim), actions (..., n, act_dim), weights (..., K, n) → (..., K, P);
        the leading dims ``...`` (e.g. independent estimates of equal size) are batched.
        Samples are processed in blocks of ``block`` along n (memory), sums in float64.
        """
        obs = np.asarray(obs, np.float64)
        actions = np.asarray(actions, np.float64)
        weights = np.asarray(weights, np.float64)
        lead = obs.shape[:-2]
        n = obs.shape[-2]
        count_k = weights.shape[-2]
        flat_obs = obs.reshape((-1, n, obs.shape[-1]))
        flat_act = actions.reshape((-1, n, actions.shape[-1]))
        flat_w = weights.reshape((-1, count_k, n))
        out = np.zeros((flat_obs.shape[0], count_k, self.parameter_count))
        for j in range(flat_obs.shape[0]):   # leading index (e.g. estimate): 2-D BLAS below
            for start in range(0, n, block):
                stop = min(start + block, n)
                out[j] += self._block(flat_obs[j, start:stop], flat_act[j, start:stop],
                                      flat_w[j, :, start:stop])
        return out.reshape(lead + (count_k, self.parameter_count))

    def _block(self, obs, actions, weights):
        """obs (n, d), actions (n, a), weights (K, n) → (K, P)."""
        hidden = [obs]
        h = obs
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w + b
            if i < last:
                if self.activation == "tanh":
                    np.tanh(h, out=h)
                else:
                    np.maximum(h, 0.0, out=h)
            hidden.append(h)
        z = (actions - hidden[-1]) / self.std
        delta = z / self.std                      # ∂log π/∂μ, (n, act)
        pieces = [weights @ (z * z - 1.0)]        # ∂/∂log σ: Σ_i w_ki (z_i² − 1), (K, act)
        layers = []
        for i in range(last, -1, -1):
            h_in = hidden[i]
            # Σ_i w_ki δ_i ⊗ h_i (torch weight layout out × in) and Σ_i w_ki δ_i.
            grad_w = np.stack([(delta * w_k[:, None]).T @ h_in for w_k in weights])
            layers.append((grad_w.reshape(len(weights), -1), weights @ delta))
            if i > 0:
                if self.activation == "tanh":
                    delta = (delta @ self.weights[i].T) * (1.0 - h_in * h_in)
                else:   # ReLU: h_in > 0 exactly where its pre-activation was
                    delta = (delta @ self.weights[i].T) * (h_in > 0.0)
        for grad_w, grad_b in reversed(layers):
            pieces += [grad_w, grad_b]
        return np.concatenate(pieces, axis=-1)

    def gradient_sums(self, obs, actions, advantages):
        """``pgprobe.estimators.GradientSums`` of these samples (Σ∇logπ·A, Σ∇logπ, ΣA, ΣA², n)."""
        from ..estimators import GradientSums
        advantages = np.asarray(advantages, np.float64)
        weights = np.stack([advantages, np.ones_like(advantages)])
        sums = self.weighted_sums(obs, actions, weights)
        return GradientSums(sums[0], sums[1], float(advantages.sum()), float((advantages ** 2).sum()),
                            int(advantages.size))

    def normalized_gradients(self, obs, actions, advantages) -> np.ndarray:
        """Eq. (1) with eq. (15) normalization, per leading index: obs (..., n, d),
        advantages (..., n) → (..., P); ĝ = (1/n) Σ_i ∇log π_i (A_i − μ_A)/(σ_A + 10⁻⁸)
        with μ_A, σ_A over the n samples of each estimate (as ``GradientSums.gradient``)."""
        advantages = np.asarray(advantages, np.float64)
        n = advantages.shape[-1]
        mean = advantages.mean(-1, keepdims=True)
        std = np.sqrt(np.maximum((advantages ** 2).mean(-1, keepdims=True) - mean ** 2, 0.0)) + 1e-8
        normalized = (advantages - mean) / (n * std)
        return self.weighted_sums(obs, actions, normalized[..., None, :])[..., 0, :]


# ---------------------------------------------------------------------------- BLAS threads
def limit_blas_threads(count: int = 1) -> None:
    """Cap the BLAS library numpy uses at ``count`` threads in this process (threadpoolctl).

    Sampler workers (one per core) each do large matmuls in their ``reduce``; a
    multi-threaded BLAS in every worker oversubscribes the cores and, on a busy machine,
    runs an order of magnitude slower (measured 1.4 s vs 20 s for 200K samples).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=int(count), user_api="blas")


# ---------------------------------------------------------------------------- per-stream reduce
@dataclass
class StreamSummary:
    """What a worker returns for one stream: gradient sums and its independent units."""
    sums: object                  # GradientSums
    sample_count: int
    trajectory_count: int         # trajectories started, including the cut last one
    episode_lengths: list         # completed episodes' lengths
    gradient_seconds: float       # CPU time spent on GAE + gradient sums in the worker


def stream_gradient_sums(rollout, spec, model: PolicyGradientModel, gamma: float, lam: float) -> StreamSummary:
    """``reduce`` for ``sample_streams``: GAE (checkpoint's value net) then gradient sums."""
    from ..estimators import rollout_advantages
    limit_blas_threads(1)
    start = time.process_time()
    advantages, _ = rollout_advantages(rollout, gamma, lam)
    sums = model.gradient_sums(rollout.obs, rollout.actions, advantages)
    return StreamSummary(sums, rollout.sample_count, rollout.trajectory_count,
                         list(rollout.episode_lengths), time.process_time() - start)


def chunk_aligned_shard(streams: list, chunk_size: int, shard: int, shard_count: int) -> list:
    """Streams of reference shard ``shard`` of ``shard_count``: the sampler's chunks (fixed
    groups of ``chunk_size`` consecutive streams) are dealt out contiguously, so the union
    of all shards is exactly the unsharded work list, chunk for chunk (a shard may be empty
    when there are fewer chunks than shards)."""
    from ..sampling import chunked
    chunks = chunked(streams, chunk_size)
    bounds = np.linspace(0, len(chunks), shard_count + 1).round().astype(int)
    return [s for chunk in chunks[bounds[shard]:bounds[shard + 1]] for s in chunk]


# ---------------------------------------------------------------------------- dataset
def similarity_dataset(*, quantity: str, sample_counts: list[int], estimates: np.ndarray,
                       reference: np.ndarray, trajectory_counts: np.ndarray,
                       mean_episode_lengths: np.ndarray, reference_sample_count: int,
                       reference_trajectory_count: int, reference_mean_episode_length: float,
                       extra: dict | None = None) -> xr.Dataset:
    """Dataset of pairwise and reference cosine similarities over the sample-count grid.

    estimates: (S, M, P) flattened vectors (gradient or step) per sample count and estimate;
    reference: (P,).  Keeps every pair's and every estimate's value (raw), plus means.
    """
    from ..datasets import variable
    from ..stats import pairwise_cosine, relative_variance

    estimates = np.asarray(estimates, np.float64)
    reference = np.asarray(reference, np.float64)
    count_s, count_m, _ = estimates.shape
    ref_norm = float(np.linalg.norm(reference))
    norms = np.linalg.norm(estimates, axis=-1)
    ref_unit = reference / ref_norm if ref_norm > 0 else reference
    with np.errstate(invalid="ignore", divide="ignore"):
        ref_cos = np.where(norms > 0, estimates @ ref_unit / np.where(norms > 0, norms, 1.0), 0.0)
    pairs = [pairwise_cosine(estimates[s]) for s in range(count_s)]
    pair_values = np.stack([p[0] for p in pairs]) if count_m > 1 else np.zeros((count_s, 0))
    index_a, index_b = np.triu_indices(count_m, k=1)
    q = quantity
    data = {
        "pairwise_cosine": variable(("sample_count", "pair"), pair_values,
                                    f"cosine similarity between two independent {q} estimates", "1"),
        "reference_cosine": variable(("sample_count", "estimate"), ref_cos,
                                     f"cosine similarity between a {q} estimate and the reference {q}", "1"),
        "mean_pairwise_cosine": variable(("sample_count",), pair_values.mean(1) if pair_values.size else
                                         np.full(count_s, np.nan),
                                         f"mean pairwise cosine similarity of the {q} estimates", "1"),
        "mean_reference_cosine": variable(("sample_count",), ref_cos.mean(1),
                                          f"mean cosine similarity of the {q} estimates with the reference", "1"),
        "estimate_norm": variable(("sample_count", "estimate"), norms, f"Euclidean norm of the {q} estimate",
                                  "parameter units"),
        "relative_variance": variable(("sample_count",), relative_variance(estimates),
                                      f"empirical variance of the {q} estimates: trace of their covariance "
                                      "(ddof 1) over the squared norm of their mean", "1"),
        "trajectory_count": variable(("sample_count", "estimate"), np.asarray(trajectory_counts, np.int64),
                                     "trajectories behind the estimate (independent units; includes the cut last one)",
                                     "trajectories"),
        "mean_episode_length": variable(("sample_count", "estimate"), np.asarray(mean_episode_lengths, np.float64),
                                        "mean length of the completed episodes behind the estimate (NaN: none)",
                                        "steps"),
        "reference_norm": variable((), ref_norm, f"Euclidean norm of the reference {q}", "parameter units"),
        "reference_sample_count": variable((), int(reference_sample_count),
                                           f"state-action pairs behind the reference {q}", "state-action pairs"),
        "reference_trajectory_count": variable((), int(reference_trajectory_count),
                                               f"trajectories behind the reference {q}", "trajectories"),
        "reference_mean_episode_length": variable((), float(reference_mean_episode_length),
                                                  "mean length of the completed episodes behind the reference",
                                                  "steps"),
    }
    for name, var in (extra or {}).items():
        data[name] = var
    ds = xr.Dataset(data, coords={
        "sample_count": variable(("sample_count",), np.asarray(sample_counts, np.int64),
                                 f"state-action pairs per {q} estimate", "state-action pairs"),
        "estimate": variable(("estimate",), np.arange(count_m), "index of the independent estimate", "1"),
        "pair": variable(("pair",), np.arange(len(index_a)), "index of the pair of estimates", "1"),
        "estimate_a": variable(("pair",), index_a.astype(np.int64), "first estimate of the pair", "1"),
        "estimate_b": variable(("pair",), index_b.astype(np.int64), "second estimate of the pair", "1"),
    })
    return ds


def mean_or_nan(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else math.nan
