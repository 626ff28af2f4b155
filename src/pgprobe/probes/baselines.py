"""Baselines probe: gradient variance with different baseline functions (paper §2.2, Figure 4).

Usage::

  pgprobe probe baselines --checkpoint runs/.../iter0150.pt --out baselines/iter0150.nc \\
      [--settings '{"sample_counts": [512, 2048, 8192], "estimates": 8}'] [--workers N] [--seed S]

  # sharded "true" value reference: one job per shard K = 0 … true_value_shards−1, then gather
  pgprobe probe baselines-shard --checkpoint CKPT --shard K --out iter0150.shardK.nc [--settings ...]
  pgprobe probe baselines --checkpoint CKPT --out iter0150.nc --shards iter0150.shard*.nc [--settings ...]

What it measures.  For each sample count N in ``sample_counts``, M = ``estimates``
independent streams of N state-action pairs (whole trajectories from a reset, the last one
cut; ``pgprobe.sampling``) give M estimates of the surrogate gradient of eq. (1),

  ĝ_b = (1/N) Σ_t ∇_θ log π_θ(a_t|s_t) · Â_t^b,

with advantages normalized as the algorithm normalizes them (eq. 15; ``normalize_advantages``)
and Â^b computed with baseline function b.  The variance measure is the cosine similarity
cos(ĝ_i, ĝ_j) of all M(M−1)/2 pairs (higher = lower variance; the paper's Figure 4 y-axis).
Baselines (eq. 2):

* ``value_net``: the agent's value net, i.e. exactly the GAE(γ, λ) advantages training uses.
* ``true_value``: a fresh ``ValueNet`` (the checkpoint's architecture and init) fit by
  minibatch Adam on the squared error to discounted returns R_t from a large sample of the
  same frozen policy (``true_value_streams`` × ``true_value_stream_steps`` state-action pairs;
  the paper uses 5·10⁶).  Samples whose return puts weight > ``max_bootstrap_weight`` on a
  value-net bootstrap (the last ~300 steps before a time-limit or stream cut) are left out of
  the fit, so the reference does not inherit the agent's value net.  ``true_value_time_limit:
  false`` runs the reference streams past the task's time limit (episodes end only by
  termination; Hopper's physics is defined past its 1000 steps): the time-unlimited
  V^π(s) = E Σ_k γ^k r_{t+k}, which is what an agent that bootstraps at the time limit (SB3,
  pgprobe) estimates, and the only bootstrap-free target where γ^limit > max_bootstrap_weight
  (the RL Zoo's Hopper PPO: γ = 0.999, 0.999^1000 = 0.37).  The last
  ``true_value_validation_streams`` streams are held out of the fit; the MRE and explained
  variance on them are recorded (``true_value_fit_mre``, ``true_value_fit_explained_variance``),
  next to the agent's value net on the same samples (``value_net_reference_mre``).
* ``zero``: b ≡ 0 with λ = ``zero_baseline_lambda`` (default 1), i.e. advantages replaced by
  discounted returns Σ_k γ^k r_{t+k} of the rest of the trajectory segment (no bootstrap), as
  the paper describes it ("replacing advantages with returns").  With λ < 1 it is GAE with
  V ≡ 0, the (γλ)-discounted reward sum.  Note that eq. (15)'s normalization subtracts the
  batch mean, so with ``normalize_advantages`` the "zero" baseline is in effect a constant
  (batch-mean) baseline.

Two λ settings (dimension ``lambda_setting``).  ``paper``: the comparison as the paper draws
it, the zero arm at ``zero_baseline_lambda`` and the others at the checkpoint's λ, so the
arms differ in two things (the baseline and λ).  ``matched``: every arm at
``zero_baseline_lambda`` (default 1, Â_t = R_t − b(s_t)), so only the baseline differs;
Figure 4 draws it as its second row.  Next to the pairwise cosine (a proxy), the dataset
holds the variance itself: the unbiased components T̂ = tr Ĉov (``noise_trace``) and
Ŝ = mean_{i≠j} ĝ_i·ĝ_j (``signal_norm_sq``, unbiased for ‖E ĝ‖²), their ratio
``relative_variance_unbiased`` (no ceiling; NaN where Ŝ ≤ 0) with a jackknife SE, and the M × M
Gram matrix ``gram`` of each arm's estimates, whose estimate index is the stream: the claims
stage resamples streams jointly for every arm (paired).  ``relative_variance`` = tr Ĉov / ‖ḡ‖²
is the old plug-in ratio, which tends to M when the signal is small (``pgprobe.stats``).

A function baseline b replaces V everywhere GAE uses it: δ_t = r_t + γ b(s_{t+1}) − b(s_t),
including the bootstrap at cut trajectory ends, with the checkpoint's λ (``advantage_lambda``
overrides it for the agent and function baselines; 1 gives Monte-Carlo advantages R_t − b(s_t),
eq. 2 with b as a pure baseline).

Closed-form check (tests/test_baselines.py): on the LinearQuadraticBandit the fitted true
value is within 3% (MRE) of the exact V, and gives the same pairwise similarities as the
exact V.  There the exact V is NOT the lowest-variance baseline with GAE (λ = 0.95): states
do not depend on actions and episodes end at random, so the TD residuals of an exact V carry
a ±γV(s') termination term, while a V ≈ 0 (the barely trained value net) gives unbiased,
lower-variance advantages; with λ = 1 the baselines are statistically indistinguishable.

Paired comparison: every baseline uses the SAME sampled streams (identical seeds, hence
identical states, actions and rewards; checked), so only the baseline differs.  The sampler
evaluates b on every observation (including the final observation of a cut trajectory) by
re-running the same streams with b in place of the agent's value function; the policy never
sees b, so the trajectories are the same.

Sharding the "true" value reference: the reference sample is ``true_value_streams`` streams,
stream i seeded by (probe seed, checkpoint seed, iteration, 302, i), sampled in lockstep chunks
of ``chunk_size`` consecutive streams.  Shard K of S = ``true_value_shards`` samples the
chunks c ≡ K (mod S) (``pgprobe.probes.sharding``: whole chunks, so each stream's samples
are bitwise those of an unsharded run) and writes their (stream, obs, return, bootstrap
weight) to a NetCDF file (kind "baselines-shard").  The gather (``--shards``,
``sharding.gather``) checks that the files come from the same checkpoint, probe seed and
settings and cover every shard once, concatenates the samples in stream order and fits the net.  The
fitted net, and thus the dataset, is identical to the unsharded run's.

Baselines are pluggable: ``measure_baselines(..., baselines=[Baseline(...), ...])`` accepts any
picklable ``value_fn(obs) -> values`` (e.g. an exact value function in tests).

Dataset (kind "baselines"): dims baseline × sample_count × estimate / pair (coords
estimate_a, estimate_b), plus env, algo, seed, iteration; see docs/reference/datasets.md.

Paper scale: Figure 4 fits the true value on 5·10⁶ state-action pairs and goes up to
tens of thousands of samples per estimate; the defaults here (6·10⁴ reference pairs,
N ∈ {512, 2048, 8192}, M = 8) are sized for the default config on a 2-core machine.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import xarray as xr

from ..errors import PgprobeError
from . import sharding
from .common import add_common_arguments, defaults, load_checked_checkpoint, parse_settings, segment_bookkeeping

PURPOSE_ESTIMATES = 301
PURPOSE_REFERENCE = 302
PURPOSE_FIT = 303
LAMBDA_SETTINGS = ["paper", "matched"]

DEFAULTS = defaults("baselines")   # settings.schema.yaml: the one source
# Settings that define the reference sample (a shard file must match them).
REFERENCE_KEYS = ["true_value_streams", "true_value_stream_steps", "true_value_shards",
                  "max_bootstrap_weight", "true_value_time_limit", "chunk_size"]


def checked_settings(given, reference_only: bool = False) -> dict:
    """DEFAULTS merged with ``given``, checked; ``reference_only`` (a baselines-shard job,
    which is given only REFERENCE_KEYS) skips the checks of keys it does not read."""
    settings = parse_settings(given, "baselines")
    if reference_only:
        _check_reference_shards(settings)
        return settings
    if settings["estimates"] < 2:
        raise PgprobeError(f"probes.baselines setting 'estimates' = {settings['estimates']}: expected at "
                           "least 2 (pairwise similarity needs pairs)")
    if len(set(settings["sample_counts"])) != len(settings["sample_counts"]):
        raise PgprobeError(f"probes.baselines setting 'sample_counts' = {settings['sample_counts']}: "
                           "expected distinct values")
    if settings["true_value_validation_streams"] >= settings["true_value_streams"]:
        raise PgprobeError(f"probes.baselines setting 'true_value_validation_streams' = "
                           f"{settings['true_value_validation_streams']}: expected fewer than "
                           f"true_value_streams = {settings['true_value_streams']}")
    _check_reference_shards(settings)
    settings["sample_counts"] = sorted(settings["sample_counts"])
    return settings


def _check_reference_shards(settings: dict) -> None:
    chunks = math.ceil(settings["true_value_streams"] / settings["chunk_size"])
    if settings["true_value_shards"] > chunks:
        raise PgprobeError(f"probes.baselines setting 'true_value_shards' = {settings['true_value_shards']}: "
                           f"expected at most {chunks} (true_value_streams / chunk_size sampler chunks)")


@dataclass
class Baseline:
    """A baseline function b(s) for eq. (2).

    kind "agent": the checkpoint's value net as sampled (training's GAE advantages);
    "zero": b ≡ 0, λ = 1 (advantages = discounted returns); "function": ``value_fn`` maps
    normalized observations (n, obs_dim) float32 to values (n,) on the value net's scale.
    ``value_fn`` must be picklable when workers > 1 (e.g. a ``NumpyMLP``).
    """
    name: str
    kind: str
    value_fn: Callable | None = None
    description: str = ""


# ---------------------------------------------------------------------------- reference sample
def reference_specs(checkpoint, settings: dict, seed: int, shard: int | None = None):
    from ..sampling import StreamSpec

    indexed = [(i, StreamSpec((int(seed), checkpoint.seed, checkpoint.iteration, PURPOSE_REFERENCE, i),
                              settings["true_value_stream_steps"], time_limit=settings["true_value_time_limit"]))
               for i in range(settings["true_value_streams"])]
    if shard is None:
        return indexed
    return sharding.shard_items(indexed, shard, settings["true_value_shards"], settings["chunk_size"])


def _reference_reduce(rollout, spec, gamma: float):
    """Per reference stream: (obs, discounted return, bootstrap weight) (runs in the worker)."""
    from ..advantages import discounted_returns

    returns = discounted_returns(rollout.rewards, rollout.next_values, rollout.terminated,
                                 rollout.segment_end, gamma)
    weight, _ = segment_bookkeeping(rollout, gamma)
    return rollout.obs, returns, weight


def sample_reference(checkpoint, settings: dict, seed: int, workers: int, shard: int | None = None,
                     progress: bool = False) -> dict:
    """The reference sample (all streams, or shard ``shard``'s): arrays stream, obs, returns, weight."""
    import functools

    from ..sampling import sample_streams

    agent = checkpoint.frozen_agent()
    indexed = reference_specs(checkpoint, settings, seed, shard)
    out = sample_streams(agent, [s for _, s in indexed], workers=workers, chunk_size=settings["chunk_size"],
                         reduce=functools.partial(_reference_reduce, gamma=agent.gamma),
                         progress="baselines: reference" if progress else None)
    return {
        "stream": np.concatenate([np.full(len(o[1]), i, np.int64) for (i, _), o in zip(indexed, out)]),
        "obs": np.concatenate([o[0] for o in out]).astype(np.float32),
        "returns": np.concatenate([o[1] for o in out]),
        "weight": np.concatenate([o[2] for o in out]),
    }


def _time_limit(env_id: str) -> int | None:
    import gymnasium as gym

    return gym.spec(env_id).max_episode_steps


def fit_true_value(checkpoint, reference: dict, settings: dict, seed: int, progress: bool = False):
    """Fit a fresh ValueNet to the reference returns; returns (net, fit statistics dict).

    Minimizes mean (V(s) − R)² over the included reference samples of the training streams
    (Adam, minibatches of ``true_value_minibatch``, ``true_value_epochs`` epochs, learning
    rate annealed linearly to 0).  Targets are standardized during the fit and the scale is
    folded back into the output layer, so the net predicts R directly.
    """
    import torch
    from tqdm import tqdm

    from ..policies import ValueNet
    from ..stats import mean_relative_error

    hp = checkpoint.hyperparameters
    stream = reference["stream"]
    use = reference["weight"] <= settings["max_bootstrap_weight"] + 1e-12
    first_validation = settings["true_value_streams"] - settings["true_value_validation_streams"]
    train_mask = use & (stream < first_validation)
    valid_mask = use & (stream >= first_validation)
    if train_mask.sum() < 2 or valid_mask.sum() < 1:
        gamma, limit = float(hp["gamma"]), _time_limit(checkpoint.env_id)
        hint = ""
        if settings["true_value_time_limit"] and limit is not None and gamma ** limit > settings["max_bootstrap_weight"]:
            hint = (f" (gamma={gamma:g} puts weight gamma^{limit}={gamma ** limit:.2g} on the bootstrap at "
                    f"{checkpoint.env_id}'s {limit}-step time limit: set true_value_time_limit: false, "
                    f"and true_value_stream_steps well above the "
                    f"{math.ceil(math.log(settings['max_bootstrap_weight']) / math.log(gamma))} steps it then "
                    "leaves out at each stream's end)")
        raise PgprobeError(
            f"true value fit: only {int(train_mask.sum())} training and {int(valid_mask.sum())} "
            f"validation samples have bootstrap weight <= max_bootstrap_weight="
            f"{settings['max_bootstrap_weight']}: raise true_value_stream_steps "
            f"(now {settings['true_value_stream_steps']}) or max_bootstrap_weight{hint}")
    all_obs = torch.from_numpy(reference["obs"])        # no copy: minibatches index it
    train_rows = torch.from_numpy(np.flatnonzero(train_mask))
    target = np.asarray(reference["returns"][train_mask], np.float64)
    mu, sigma = float(target.mean()), float(target.std()) + 1e-8
    scaled = torch.as_tensor((target - mu) / sigma, dtype=torch.float32)
    fit_seed = int(np.random.SeedSequence([int(seed), checkpoint.seed, checkpoint.iteration, PURPOSE_FIT])
                   .generate_state(1)[0])
    generator = torch.Generator().manual_seed(fit_seed)
    with torch.random.fork_rng():  # deterministic init without touching the global RNG
        torch.manual_seed(fit_seed)
        net = ValueNet(checkpoint.obs_dim, hp["value_hidden"], hp["init"], activation=hp.get("activation", "tanh"))
    optimizer = torch.optim.Adam(net.parameters(), lr=settings["true_value_lr"])
    n = len(train_rows)
    batch = min(settings["true_value_minibatch"], n)
    steps_per_epoch = math.ceil(n / batch)
    total = settings["true_value_epochs"] * steps_per_epoch
    step = 0
    net.train()
    for _ in tqdm(range(settings["true_value_epochs"]), desc="baselines: fit true V", unit="epoch",
                  disable=not progress, mininterval=2.0):
        perm = torch.randperm(n, generator=generator)
        for idx in torch.split(perm, batch):
            for group in optimizer.param_groups:
                group["lr"] = settings["true_value_lr"] * (1.0 - step / total)
            loss = ((net(all_obs[train_rows[idx]]) - scaled[idx]) ** 2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    net.eval()
    with torch.no_grad():  # fold the target scale into the output layer: V = σ·f(s) + μ
        head = [m for m in net.net if isinstance(m, torch.nn.Linear)][-1]
        head.weight.mul_(sigma)
        head.bias.mul_(sigma).add_(mu)

    def predict(mask, rows_per_pass: int = 1 << 20):
        """V at the rows of ``mask``, 2^20 rows per forward pass (one pass below that)."""
        rows = np.flatnonzero(mask)
        with torch.no_grad():
            return np.concatenate([net(all_obs[torch.from_numpy(rows[i:i + rows_per_pass])]).numpy()
                                   for i in range(0, max(len(rows), 1), rows_per_pass)]).astype(np.float64)

    valid_returns = reference["returns"][valid_mask]
    valid_pred = predict(valid_mask)
    agent_value = checkpoint.frozen_agent().value
    agent_pred = agent_value(reference["obs"][valid_mask]).reshape(-1).astype(np.float64)
    var = float(np.var(valid_returns))
    stats = {
        "train_samples": int(train_mask.sum()),
        "validation_samples": int(valid_mask.sum()),
        "train_mre": mean_relative_error(predict(train_mask), reference["returns"][train_mask]),
        "validation_mre": mean_relative_error(valid_pred, valid_returns),
        "validation_explained_variance": 1.0 - float(np.var(valid_returns - valid_pred)) / var
        if var > 0 else math.nan,
        "value_net_validation_mre": mean_relative_error(agent_pred, valid_returns),
        "value_net_validation_explained_variance": 1.0 - float(np.var(valid_returns - agent_pred)) / var
        if var > 0 else math.nan,
    }
    return net, stats


# ---------------------------------------------------------------------------- shards
def shard_dataset(checkpoint, settings: dict, seed: int, shard: int, reference: dict) -> xr.Dataset:
    from ..datasets import provenance, variable

    ds = xr.Dataset(
        {
            "stream_index": variable(("reference_sample",), reference["stream"], "reference stream index", "1"),
            "obs": variable(("reference_sample", "obs_dim"), reference["obs"],
                            "normalized observation (as the policy saw it)", "1"),
            "returns": variable(("reference_sample",), reference["returns"],
                                "discounted return (scaled rewards as in training)", "scaled return"),
            "bootstrap_weight": variable(("reference_sample",), reference["weight"],
                                         "weight of the value-net bootstrap inside the return", "1"),
        },
        coords={"reference_sample": ("reference_sample", np.arange(reference["stream"].size),
                                     {"long_name": "sample index within the shard", "units": "1"}),
                "obs_dim": ("obs_dim", np.arange(reference["obs"].shape[1]),
                            {"long_name": "observation component", "units": "1"})})
    ds.attrs = provenance("baselines-shard", {k: settings[k] for k in REFERENCE_KEYS}, checkpoint.sha256,
                          probe_seed=int(seed),
                          **sharding.shard_attrs(_reference_key(checkpoint, settings, seed), shard,
                                                 settings["true_value_shards"]),
                          env=checkpoint.env_id, algo=checkpoint.algo, seed=checkpoint.seed,
                          iteration=checkpoint.iteration)
    return ds


def _reference_key(checkpoint, settings: dict, seed: int) -> str:
    return sharding.shard_key(checkpoint_sha256=checkpoint.sha256, probe_seed=int(seed),
                              **{k: settings[k] for k in REFERENCE_KEYS})


def gather_shards(paths: Sequence[str], checkpoint, settings: dict, seed: int) -> dict:
    """Concatenate shard files into the reference sample, in stream order (the unsharded
    order); ``sharding.gather`` checks they are this reference's shards, each once.  Each
    shard's rows are written straight to their stream-order places in one preallocated array
    per variable (at paper scale on Humanoid the observations alone are 5·10⁶ × 348 float32
    = 6.5 GB: no second copy)."""
    shards = sharding.gather(paths, "baselines-shard", _reference_key(checkpoint, settings, seed),
                             settings["true_value_shards"], load=False)
    names = {"stream": "stream_index", "obs": "obs", "returns": "returns", "weight": "bootstrap_weight"}
    try:
        streams = [np.asarray(ds["stream_index"].values) for ds in shards]
        order = np.argsort(np.concatenate(streams), kind="stable")   # stream order = the unsharded order
        place = np.empty_like(order)
        place[order] = np.arange(len(order))        # row k of the concatenation goes to place[k]
        merged = {key: np.empty((len(order),) + shards[0][name].shape[1:],
                                np.float32 if key == "obs" else shards[0][name].dtype)
                  for key, name in names.items()}
        start = 0
        for index, (ds, stream) in enumerate(zip(shards, streams)):
            rows = place[start:start + len(stream)]
            try:
                for key, name in names.items():
                    merged[key][rows] = stream if key == "stream" else ds[name].values
            except (OSError, RuntimeError, ValueError) as exc:
                raise PgprobeError(f"baselines shard {index}: unreadable ({str(exc).splitlines()[0]})") from None
            start += len(stream)
    finally:
        for ds in shards:
            ds.close()
    return merged


# ---------------------------------------------------------------------------- the probe
def default_baselines(true_value_net) -> list[Baseline]:
    from ..policies import NumpyMLP

    return [
        Baseline("true_value", "function", NumpyMLP(true_value_net.net),
                 "fresh value net fit to returns of a large sample of the same policy"),
        Baseline("value_net", "agent", None, "the agent's value net (training's GAE advantages)"),
        Baseline("zero", "zero", None, "zero baseline: advantages replaced by discounted returns"),
    ]


def _advantages(rollout, baseline: Baseline, gamma: float, lam: float) -> np.ndarray:
    """GAE(γ, λ) advantages of one stream with baseline b (eq. 2): the agent's sampled
    V, b ≡ 0, or a function baseline (sampled b(s) in ``rollout.values``)."""
    from ..update import rollout_advantages

    if baseline.kind == "zero":
        zeros = np.zeros_like(rollout.rewards)
        return rollout_advantages(rollout, gamma, lam, values=zeros, next_values=zeros)[0]
    return rollout_advantages(rollout, gamma, lam)[0]


def measure_baselines(checkpoint, settings: dict | None = None, seed: int = 0, workers: int = 1,
                      shards: Sequence[str] | None = None, baselines: list[Baseline] | None = None,
                      extra_baselines: list[Baseline] | None = None,
                      progress: bool = False) -> xr.Dataset:
    """Compute the baselines dataset for one loaded checkpoint (see the module docstring).

    ``baselines``: replace the default three (true_value, value_net, zero); the reference fit
    is then skipped and its statistics are NaN.  ``extra_baselines``: compared in addition to
    the default three (e.g. an exact value function on the closed-form env).
    """
    from ..estimators import single_torch_thread

    with single_torch_thread():
        return _measure_baselines(checkpoint, settings, seed, workers, shards, baselines,
                                  extra_baselines, progress)


def _measure_baselines(checkpoint, settings, seed, workers, shards, baselines, extra_baselines,
                       progress) -> xr.Dataset:
    from ..datasets import add_run_coords, provenance, variable
    from ..estimators import gradient_sums
    from ..sampling import StreamSpec, sample_streams
    from ..stats import PLUG_IN_NOTE, gram_matrix, pairwise_cosine, relative_variance, variance_summary

    settings = checked_settings(settings)
    hp = checkpoint.hyperparameters
    gamma = float(hp["gamma"])
    lam = float(hp["gae_lambda"] if settings["advantage_lambda"] is None else settings["advantage_lambda"])
    agent = checkpoint.frozen_agent()

    fit_stats = dict.fromkeys(["train_samples", "validation_samples", "train_mre", "validation_mre",
                               "validation_explained_variance", "value_net_validation_mre",
                               "value_net_validation_explained_variance"], math.nan)
    if baselines is None:
        reference = (gather_shards(shards, checkpoint, settings, seed) if shards
                     else sample_reference(checkpoint, settings, seed, workers, progress=progress))
        net, fit_stats = fit_true_value(checkpoint, reference, settings, seed, progress)
        baselines = default_baselines(net)
    baselines = list(baselines) + list(extra_baselines or [])
    names = [b.name for b in baselines]
    if len(set(names)) != len(names):
        raise PgprobeError(f"baseline names must be distinct, got {names}")

    counts = settings["sample_counts"]
    m = settings["estimates"]
    specs = [StreamSpec((int(seed), checkpoint.seed, checkpoint.iteration, PURPOSE_ESTIMATES, n, e), n)
             for n in counts for e in range(m)]
    # One sampling pass for the agent's value function (serves "agent" and "zero"), one per
    # function baseline: same seeds, so the same trajectories, with b evaluated by the sampler.
    passes: dict[str | None, list] = {}
    for b in baselines:
        key = b.name if b.kind == "function" else None
        if key in passes:
            continue
        run_agent = agent if key is None else dataclasses.replace(agent, value=b.value_fn)
        passes[key] = sample_streams(run_agent, specs, workers=workers, chunk_size=settings["chunk_size"],
                                     progress=f"baselines: {b.name if key else 'agent'} pass"
                                     if progress else None)
    base = passes[None] if None in passes else next(iter(passes.values()))
    for rollouts in passes.values():  # paired comparison: identical trajectories in every pass
        for r0, r1 in zip(base, rollouts):
            if not (np.array_equal(r0.actions, r1.actions) and np.array_equal(r0.raw_rewards, r1.raw_rewards)):
                raise RuntimeError("baseline passes sampled different trajectories (sampler not deterministic)")

    zero_lam = float(settings["zero_baseline_lambda"])
    # (lambda setting, baseline) -> λ of its GAE: "paper" keeps the paper's comparison (the
    # zero arm at zero_baseline_lambda, the others at the checkpoint's λ); "matched" puts
    # every arm at zero_baseline_lambda (1: Â = R − b(s)), so only the baseline differs.
    lambdas = np.array([[zero_lam if b.kind == "zero" else lam for b in baselines],
                        [zero_lam for _ in baselines]])
    pair_a, pair_b = np.triu_indices(m, k=1)
    shape = (len(LAMBDA_SETTINGS), len(baselines), len(counts))
    cosine = np.zeros(shape + (pair_a.size,))
    norms = np.zeros(shape + (m,))
    adv_std = np.zeros(shape + (m,))
    variance = np.zeros(shape)
    gram = np.zeros(shape + (m, m))
    trajectories = np.zeros((len(counts), m), np.int64)
    for li in range(len(LAMBDA_SETTINGS)):
        for bi, b in enumerate(baselines):
            rollouts = passes[b.name if b.kind == "function" else None]
            for ci, n in enumerate(counts):
                grads = []
                for e in range(m):
                    r = rollouts[ci * m + e]
                    adv = _advantages(r, b, gamma, float(lambdas[li, bi]))
                    g = gradient_sums(checkpoint.policy, r.obs, r.actions, adv).gradient(
                        settings["normalize_advantages"])
                    grads.append(g)
                    norms[li, bi, ci, e] = np.linalg.norm(g)
                    adv_std[li, bi, ci, e] = float(np.std(adv))
                    trajectories[ci, e] = r.trajectory_count
                values, ia, ib = pairwise_cosine(np.stack(grads))
                assert np.array_equal(ia, pair_a) and np.array_equal(ib, pair_b)
                cosine[li, bi, ci] = values
                variance[li, bi, ci] = relative_variance(np.stack(grads))
                gram[li, bi, ci] = gram_matrix(np.stack(grads))

    adv_units = "scaled return" if hp.get("normalize_rewards") else "return"
    ds = xr.Dataset(
        {
            "pairwise_cosine": variable(("lambda_setting", "baseline", "sample_count", "pair"), cosine,
                                        "cosine similarity of the gradient estimates of a pair", "1"),
            "mean_pairwise_cosine": variable(("lambda_setting", "baseline", "sample_count"),
                                             np.nanmean(cosine, -1) if np.isfinite(cosine).any() else cosine.mean(-1),
                                             "mean pairwise cosine similarity of the M gradient "
                                             "estimates (higher = lower variance)", "1"),
            "relative_variance": variable(("lambda_setting", "baseline", "sample_count"), variance,
                                          PLUG_IN_NOTE, "1", estimator="plug-in (biased)"),
            **{name: variable(("lambda_setting", "baseline", "sample_count") + dims, data, long_name, units,
                              **attrs)
               for name, (dims, data, long_name, units, attrs) in _variance_variables(gram).items()},
            "gradient_norm": variable(("lambda_setting", "baseline", "sample_count", "estimate"), norms,
                                      "L2 norm of the gradient estimate (eq. 1, eq. 15 advantages)", "1"),
            "advantage_std": variable(("lambda_setting", "baseline", "sample_count", "estimate"), adv_std,
                                      "std of the unnormalized advantages of the estimate", adv_units),
            "gae_lambda": variable(("lambda_setting", "baseline"), lambdas,
                                   "GAE lambda of the baseline's advantages", "1"),
            "trajectory_count": variable(("sample_count", "estimate"), trajectories,
                                         "trajectories in the estimate's stream (last one cut)", "1"),
            "true_value_fit_mre": variable((), fit_stats["validation_mre"],
                                           "true-value net MRE against returns on held-out reference streams", "1"),
            "true_value_fit_explained_variance": variable(
                (), fit_stats["validation_explained_variance"],
                "true-value net explained variance of returns on held-out reference streams", "1"),
            "true_value_fit_train_mre": variable((), fit_stats["train_mre"],
                                                 "true-value net MRE against returns on its fit samples", "1"),
            "value_net_reference_mre": variable((), fit_stats["value_net_validation_mre"],
                                                "agent value net MRE against returns on the same "
                                                "held-out reference samples", "1"),
            "value_net_reference_explained_variance": variable(
                (), fit_stats["value_net_validation_explained_variance"],
                "agent value net explained variance of returns on the same held-out reference samples", "1"),
            "true_value_fit_samples": variable((), fit_stats["train_samples"],
                                               "reference samples the true-value net was fit on", "1"),
            "true_value_validation_samples": variable((), fit_stats["validation_samples"],
                                                      "held-out reference samples of the fit error", "1"),
        },
        coords={
            "lambda_setting": ("lambda_setting", LAMBDA_SETTINGS,
                               {"long_name": "GAE lambda of the arms (paper: zero baseline at "
                                "zero_baseline_lambda, the others at the checkpoint's lambda; matched: "
                                "every arm at zero_baseline_lambda)", "units": "1"}),
            "baseline": ("baseline", names, {"long_name": "baseline function b(s) of eq. 2", "units": "1",
                                             "description": " | ".join(f"{b.name}: {b.description}"
                                                                       for b in baselines)}),
            "sample_count": ("sample_count", np.asarray(counts, np.int64),
                             {"long_name": "state-action pairs per gradient estimate", "units": "1"}),
            "estimate": ("estimate", np.arange(m), {"long_name": "independent estimate index (the same "
                                                    "stream for every baseline)", "units": "1"}),
            "pair": ("pair", np.arange(pair_a.size), {"long_name": "estimate pair index", "units": "1"}),
            "estimate_a": ("pair", pair_a, {"long_name": "first estimate of the pair", "units": "1"}),
            "estimate_b": ("pair", pair_b, {"long_name": "second estimate of the pair", "units": "1"}),
        })
    ds = add_run_coords(ds, checkpoint.env_id, checkpoint.label, checkpoint.seed, checkpoint.iteration,
                        source=checkpoint.source, env_steps=checkpoint.env_steps)
    ds.attrs = provenance("baselines", settings, checkpoint.sha256, probe_seed=int(seed),
                          gamma=gamma, gae_lambda=lam, sharded_reference=len(shards or []),
                          paired_streams="all baselines use the same sampled streams; only b differs")
    return ds


def _variance_variables(gram: np.ndarray) -> dict:
    """``stats.variance_summary``'s variables from Gram matrices (..., M, M) already computed
    (the estimates themselves are not kept)."""
    from ..stats import gram_components, unbiased_relative_variance, variance_summary

    template = variance_summary(np.zeros((2, 1)), quantity="gradient", units="1")
    noise, signal = gram_components(gram)
    ratio, standard_error = unbiased_relative_variance(gram)
    values = {"gram": gram, "noise_trace": noise, "signal_norm_sq": signal,
              "relative_variance_unbiased": ratio, "relative_variance_unbiased_se": standard_error}
    out = {name: (dims, values[name], long_name, units, attrs)
           for name, (dims, _, long_name, units, attrs) in template.items()}
    out["gram"] = (out["gram"][0], gram, out["gram"][2] + " (same stream for every baseline: paired)",
                   out["gram"][3], {})
    return out


# ---------------------------------------------------------------------------- CLI
def _cmd(args) -> None:
    from ..datasets import write_netcdf

    settings = checked_settings(args.settings)
    checkpoint = load_checked_checkpoint(args.checkpoint)
    ds = measure_baselines(checkpoint, settings, seed=args.seed, workers=args.workers,
                           shards=args.shards, progress=not args.no_progress)
    write_netcdf(ds, args.out)
    mean = ds["mean_pairwise_cosine"].isel(env=0, algo=0, seed=0, iteration=0).sel(lambda_setting="paper")
    summary = ", ".join(f"{b}={float(mean.sel(baseline=b).isel(sample_count=-1)):.3f}"
                        for b in mean["baseline"].values)
    print(f"wrote {args.out}: mean pairwise cosine at N={int(mean['sample_count'][-1])}: {summary}")


def _cmd_shard(args) -> None:
    from ..datasets import write_netcdf

    settings = checked_settings(args.settings, reference_only=True)
    sharding.check_shard(args.shard, settings["true_value_shards"], "probes.baselines setting true_value_shards")
    checkpoint = load_checked_checkpoint(args.checkpoint)
    reference = sample_reference(checkpoint, settings, args.seed, args.workers, shard=args.shard,
                                 progress=not args.no_progress)
    write_netcdf(shard_dataset(checkpoint, settings, args.seed, args.shard, reference), args.out)
    print(f"wrote {args.out}: {reference['stream'].size} reference samples")


def add_parser(subparsers) -> None:
    from ..cli import nonnegative_int

    parser = subparsers.add_parser("baselines", help="gradient variance with value-net / true-value / "
                                   "zero baselines (§2.2, Fig. 4)", description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--shards", nargs="+", metavar="FILE",
                        help="gather these baselines-shard files instead of sampling the reference")
    parser.set_defaults(func=_cmd)

    shard = subparsers.add_parser("baselines-shard", help="one shard of the baselines probe's true-value "
                                  "reference sample")
    add_common_arguments(shard)
    shard.add_argument("--shard", required=True, type=nonnegative_int, help="shard index K")
    shard.set_defaults(func=_cmd_shard)


check_settings = checked_settings
