"""Optimization landscapes (paper §2.3, Figures 5–7 and 13–20): true reward and surrogate
objective on a 2-D plane through the checkpoint's parameters.

Usage::

  pgprobe probe landscapes --checkpoint PATH --out FILE.nc [--settings JSON] [--workers N] [--seed S]
  pgprobe probe landscapes-shard --checkpoint PATH --out FILE.shardK.nc --shard K \\
          [--settings JSON with grid_shards N] [--workers N] [--seed S]
  pgprobe probe landscapes --checkpoint PATH --out FILE.nc --shards FILE.shard0.nc FILE.shard1.nc ...
  pgprobe probe landscapes-directions --checkpoint PATH --out FILE.directions.nc [--settings JSON] ...
  (then landscapes-shard ... --directions FILE.directions.nc: shards read the plane)

The plane.  For each *regime* (a number N of state-action pairs used for the step) the
probe samples an N-sample batch from the frozen checkpoint policy π_0 (whole trajectories
from resets, streams of ``steps_per_iteration`` steps, exactly as training collects its
batch), and computes the algorithm's actual update step on it,

  d_step = θ' − θ_0          (``pgprobe.update.update_step``, training's own update: PPO's 10 epochs of
                              minibatch Adam on eq. 17; TRPO's natural step + line search),

and draws one Gaussian direction g ~ N(0, I) over all policy parameters (log-std included),
rescaled to ``random_direction_norm`` (default 1: one unit along the random axis moves
the parameters by an ℓ2 distance of 1; Figure 5's caption reads "one unit corresponds to
moving along a random norm 2 Gaussian vector", which we read as an ℓ2-normalized Gaussian
vector; set ``random_direction_norm: 2`` for the literal "norm 2" reading).  The grid is

  θ(α, β) = θ_0 + α · d_step + β · d_rand,

α = 1 is one full step ("step direction" axis), β the random axis.  At every grid point:

* true reward J(θ) = E[Σ_t r_t]: the mean undiscounted return of ``max(trajectory_counts)``
  complete episodes of the perturbed policy, each from a fresh reset with its own seed
  (independent across grid points; episode-count sampling, so no episode is cut and
  short episodes are not over-represented).  With ``common_random_numbers`` episode k has
  the same reset seed and action-noise stream at every grid point (common random numbers:
  differences between points then carry no episode-draw noise; the Figure 5 concentration
  panels, and claim C5, assume independent episodes and are not measured from such a grid).
  ``true_reward_reliability`` is each regime's split-half reliability (even vs odd episodes,
  Spearman–Brown).  Per-episode returns are kept
  (``episode_return``), and ``true_reward`` is the mean of the first T of them for every
  T in ``trajectory_counts`` (Figure 5's concentration panels).  Observations are
  normalized with the checkpoint's frozen statistics.
* surrogate objective on the step's own batch (what the algorithm optimizes):
  PPO eq. (17) L^CLIP = mean min(ρ Â, clip(ρ, 1 ± ε) Â); TRPO eq. (14) L = mean ρ Â;
  ρ = π_θ(a|s)/π_0(a|s), Â normalized as eq. (15).  At α = β = 0, ρ = 1 and both equal
  mean Â = 0.
* mean KL(π_0 ‖ π_θ) over the batch's states (TRPO's constraint, eq. 16; reported for PPO
  too).

Sharding: true-reward points are independent.  Grid points (regime, α, β), flattened in
that order, go round-robin to shards; each shard evaluates its points and writes their raw
results.  The plane (d_step per regime, d_rand) and the surrogate and KL at every grid
point (which need the step batches) are computed once per checkpoint by
``landscapes-directions`` (settings ``DIRECTION_KEYS`` only) into a file the shards read
(``--directions``); without it a shard computes them itself.  Gathering checks that the
shards agree on checkpoint, settings, seed and the update steps, and builds the same
dataset as the unsharded run (which is computed as a single shard).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

if TYPE_CHECKING:   # torch is imported where it is used: parsing the workflow imports this module
    import torch

from ..errors import PgprobeError
from ..stats import cosine_similarity
from . import sharding
from .common import defaults, derived_seed, parse_settings

KIND = "landscapes"

DEFAULTS = defaults("landscapes")   # settings.schema.yaml: the one source

# The paper's sizes (SLURM scale): ~10^6 state-action pairs per true-reward point
# (1000 Hopper/Walker/Humanoid episodes of <= 1000 steps), the 2K regime versus a
# regime with several orders of magnitude more samples.
PAPER_SETTINGS = {
    **DEFAULTS,
    "alpha_points": 11,
    "beta_points": 11,
    "step_sample_counts": [2048, 1024000],
    "trajectory_counts": [1, 10, 100, 1000],
}

# Settings that define the plane and the surrogate grid on it (the landscapes-directions
# job's settings: a change to any other key leaves the directions file as it is).
DIRECTION_KEYS = ("step_sample_counts", "random_direction_norm", "alpha_min", "alpha_max",
                  "alpha_points", "beta_min", "beta_max", "beta_points")

# seed_key purpose codes (distinct from other probes' codes).
PURPOSE_STEP_BATCH = 5101
PURPOSE_STEP_UPDATE = 5102
PURPOSE_RANDOM_DIRECTION = 5103
PURPOSE_TRUE_REWARD = 5104
PURPOSE_TRUE_REWARD_COMMON = 5105

# ----------------------------------------------------------------------------- settings

def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def validate_settings(settings) -> dict:
    """The landscapes probe's settings (``common.parse_settings``) plus what one key cannot
    say alone: distinct regimes and trajectory counts, min <= max on each axis."""
    merged = parse_settings(settings, "landscapes")
    for key in ("step_sample_counts", "trajectory_counts"):
        if len(set(merged[key])) != len(merged[key]):
            raise PgprobeError(f"probes.landscapes setting {key!r} = {json.dumps(merged[key])}: "
                               "expected distinct values")
        merged[key] = sorted(int(v) for v in merged[key])
    for key in ("alpha_min", "alpha_max", "beta_min", "beta_max", "random_direction_norm"):
        merged[key] = float(merged[key])
    for axis in ("alpha", "beta"):
        if merged[f"{axis}_min"] > merged[f"{axis}_max"]:
            raise PgprobeError(f"probes.landscapes setting {axis}_min = {merged[f'{axis}_min']!r} is greater "
                               f"than {axis}_max = {merged[f'{axis}_max']!r}")
    return merged


check_settings = validate_settings


def grid_axes(settings: dict) -> tuple[np.ndarray, np.ndarray]:
    """(α values, β values): evenly spaced, endpoints included."""
    alphas = np.linspace(settings["alpha_min"], settings["alpha_max"], settings["alpha_points"])
    betas = np.linspace(settings["beta_min"], settings["beta_max"], settings["beta_points"])
    return alphas, betas


def grid_points(settings: dict) -> list[tuple[int, int, int]]:
    """All (regime index, α index, β index), flattened in that order (shard assignment)."""
    regimes = len(settings["step_sample_counts"])
    return [(r, i, j) for r in range(regimes) for i in range(settings["alpha_points"])
            for j in range(settings["beta_points"])]


def shard_points(settings: dict, shard: int, shard_count: int) -> list[tuple[int, int, int]]:
    """Round-robin share of the grid for ``shard`` of ``shard_count`` (``sharding.shard_items``)."""
    return sharding.shard_items(grid_points(settings), shard, shard_count)


def _measurement_settings(settings: dict) -> dict:
    """The settings a landscape's numbers depend on: all but the shard count (every grid
    point is computed whole inside one shard)."""
    return {k: v for k, v in settings.items() if k != "grid_shards"}


def _shard_key(ckpt, settings: dict, seed: int) -> str:
    return sharding.shard_key(checkpoint_sha256=ckpt.sha256, probe_seed=int(seed),
                              settings=_measurement_settings(settings))


# ----------------------------------------------------------------------------- directions

@dataclasses.dataclass
class Directions:
    """The plane: θ_0, one update step (and its batch) per regime, and the random direction."""
    theta0: torch.Tensor
    steps: list[np.ndarray]          # d_step per regime (float64)
    batches: list                    # UpdateBatch per regime
    random_direction: np.ndarray     # d_rand (float64), ℓ2 norm = random_direction_norm

    def digest(self) -> str:
        """Hash of the exact directions (shards must agree bit for bit)."""
        h = hashlib.sha256()
        for step in self.steps:
            h.update(np.ascontiguousarray(step).tobytes())
        h.update(np.ascontiguousarray(self.random_direction).tobytes())
        return h.hexdigest()


def step_batch(ckpt, sample_count: int, seed: int, workers: int | None, progress: str | None):
    """An N-sample batch from π_0: streams of ``steps_per_iteration`` steps (the last one
    shorter), GAE from the checkpoint's value net, as ``update_batch`` builds it."""
    from ..estimators import update_batch
    from ..sampling import StreamSpec, sample_streams

    hp = ckpt.hyperparameters
    stream_length = int(hp["steps_per_iteration"])
    lengths = [stream_length] * (sample_count // stream_length)
    if sample_count % stream_length:
        lengths.append(sample_count % stream_length)
    specs = [StreamSpec((seed, ckpt.seed, ckpt.iteration, PURPOSE_STEP_BATCH, sample_count, k), n)
             for k, n in enumerate(lengths)]
    rollouts = sample_streams(ckpt.frozen_agent(), specs, workers=workers, progress=progress)
    return update_batch(rollouts, float(hp["gamma"]), float(hp["gae_lambda"]))


def compute_directions(ckpt, settings: dict, seed: int, workers: int | None,
                       progress: bool = True) -> Directions:
    """d_step for every regime (on a fresh batch of that size) and d_rand."""
    from ..estimators import single_torch_thread, update_step
    from ..policies import flat_params

    theta0 = flat_params(ckpt.policy).double()
    steps, batches = [], []
    for count in settings["step_sample_counts"]:
        batch = step_batch(ckpt, count, seed, workers, f"step batch {count}" if progress else None)
        with single_torch_thread():
            step = update_step(ckpt, batch, derived_seed(*(seed, ckpt.seed, ckpt.iteration,
                                                       PURPOSE_STEP_UPDATE, count)))
        steps.append(np.asarray(step, np.float64))
        batches.append(batch)
    rng = np.random.default_rng(np.random.SeedSequence(
        [seed, ckpt.seed, ckpt.iteration, PURPOSE_RANDOM_DIRECTION]))
    gaussian = rng.standard_normal(theta0.numel())
    random_direction = gaussian * (settings["random_direction_norm"] / np.linalg.norm(gaussian))
    return Directions(theta0, steps, batches, random_direction)


def surrogate_grid(ckpt, settings: dict, directions: Directions) -> tuple[np.ndarray, np.ndarray]:
    """(surrogate, mean KL) at every grid point, arrays (regime, α, β), on each regime's batch."""
    import torch

    alphas, betas = grid_axes(settings)
    clip_epsilon = float(ckpt.hyperparameters.get("clip_epsilon") or 0.2)
    shape = (len(settings["step_sample_counts"]), len(alphas), len(betas))
    surrogates, kls = np.zeros(shape), np.zeros(shape)
    with torch.no_grad():
        olds = [(ckpt.policy(b.obs), ckpt.policy.log_std.detach().clone()) for b in directions.batches]
    for r, i, j in grid_points(settings):
        policy = perturbed_policy(ckpt, directions, r, alphas[i], betas[j])
        surrogates[r, i, j], kls[r, i, j] = surrogate_and_kl(ckpt.algo, policy, directions.batches[r],
                                                             *olds[r], clip_epsilon)
    return surrogates, kls


def direction_settings(settings: dict) -> dict:
    return {key: settings[key] for key in DIRECTION_KEYS}


def directions_dataset(ckpt, settings: dict, seed: int, workers: int | None = None,
                       progress: bool = True) -> xr.Dataset:
    """The plane of one checkpoint (d_step per regime, d_rand) and the surrogate and KL at
    every grid point: what the landscapes-shard jobs read (kind ``landscapes-directions``)."""
    from ..datasets import provenance, variable

    ckpt.require_finite()
    settings = validate_settings(settings)
    directions = compute_directions(ckpt, settings, seed, workers, progress)
    surrogates, kls = surrogate_grid(ckpt, settings, directions)
    grid = ("regime", "alpha_index", "beta_index")
    ds = xr.Dataset(
        {
            "step_direction": variable(("regime", "parameter"), np.stack(directions.steps),
                                       "update step theta' - theta_0 (d_step)", "1"),
            "random_direction": variable(("parameter",), directions.random_direction,
                                         "random direction d_rand", "1"),
            "surrogate": variable(grid, surrogates, _surrogate_long_name(ckpt.algo), "1"),
            "mean_kl": variable(grid, kls, "mean KL(pi_0 || pi_theta) over the step batch's states", "nat"),
        },
        coords={"regime": variable(("regime",), np.array(settings["step_sample_counts"], np.int64),
                                   "state-action pairs used to compute the update step", "1")},
    )
    ds.attrs = provenance(KIND + "-directions", direction_settings(settings), ckpt.sha256,
                          probe_seed=int(seed), direction_digest=directions.digest())
    return ds


def read_directions(path, ckpt, settings: dict, seed: int) -> tuple[Directions, np.ndarray, np.ndarray]:
    """(directions without batches, surrogate grid, KL grid) from a landscapes-directions
    file, checked against this checkpoint, settings and seed."""
    from ..datasets import open_dataset
    from ..policies import flat_params

    ds = open_dataset(path, KIND + "-directions")
    expected = {"checkpoint_sha256": ckpt.sha256, "probe_seed": int(seed),
                "config_json": json.dumps(direction_settings(settings), sort_keys=True, default=str)}
    for key, value in expected.items():
        if ds.attrs.get(key) != value:
            raise PgprobeError(f"directions file {str(path)!r}: {key}={ds.attrs.get(key)!r} does not match "
                               f"this shard's {value!r} (wrong checkpoint, settings or seed?)")
    steps = [np.asarray(step, np.float64) for step in ds["step_direction"].values]
    directions = Directions(flat_params(ckpt.policy).double(), steps, [],
                            np.asarray(ds["random_direction"].values, np.float64))
    return directions, ds["surrogate"].values, ds["mean_kl"].values


def perturbed_policy(ckpt, directions: Directions, regime: int, alpha: float, beta: float):
    """A copy of the checkpoint's policy at θ_0 + α d_step + β d_rand."""
    import torch

    from ..policies import set_flat_params

    policy = copy.deepcopy(ckpt.policy)
    theta = (directions.theta0.numpy() + alpha * directions.steps[regime]
             + beta * directions.random_direction)
    set_flat_params(policy, torch.as_tensor(theta, dtype=torch.float32))
    policy.eval()
    return policy


def perturbed_agent(ckpt, policy):
    """The checkpoint's FrozenAgent (frozen normalizers) acting with ``policy``; no value net
    (the true reward reads none)."""
    from ..policies import NumpyMLP

    from ..sampling import ZeroValue

    return dataclasses.replace(
        ckpt.frozen_agent(), policy_mean=NumpyMLP(policy.mean_net),
        log_std=policy.log_std.detach().numpy().astype(np.float32).copy(), value=ZeroValue())


# ----------------------------------------------------------------------------- objectives

def surrogate_and_kl(algo: str, policy, batch, old_mean: torch.Tensor, old_log_std: torch.Tensor,
                     clip_epsilon: float) -> tuple[float, float]:
    """(the algorithm's surrogate, mean KL(π_0 ‖ π_θ)) on ``batch``.

    PPO: eq. (17) with clip ε; TRPO: eq. (14).  Advantages are eq. (15)-normalized.
    """
    import torch

    from ..algos.ppo import clipped_surrogate
    from ..algos.trpo import mean_kl, surrogate

    with torch.no_grad():
        if algo == "ppo":
            log_probs = policy.log_prob(batch.obs, batch.actions)
            value = clipped_surrogate(log_probs, batch.old_log_probs,
                                      batch.normalized_advantages, clip_epsilon)
        else:
            value = surrogate(policy, batch)
        kl = mean_kl(policy, batch.obs, old_mean, old_log_std)
    return float(value), float(kl)


# ----------------------------------------------------------------------------- episodes

def episode_returns(agent, seed_keys: list[tuple], chunk_size: int,
                    max_episode_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """One complete episode per seed key: (undiscounted raw returns, lengths).

    Each episode is a single-episode stream of the rollout engine (``pgprobe.sampling``):
    ``env.reset(seed)`` with the env seed and action-noise generator of
    ``stream_rngs(key)``, actions a = μ(s) + σ·ξ clipped to the action bounds, run until it
    terminates or hits the task's time limit, in lockstep chunks of ``chunk_size`` episodes.
    Each episode depends only on its key (up to float32 rounding of batched forward passes
    of other sizes: for a fixed ``chunk_size`` results are bit-identical however points are
    spread over workers and shards).  An episode still running after ``max_episode_steps``
    steps is a one-line error.
    """
    from ..sampling import StreamSpec, sample_streams

    limit = _max_episode_steps(agent.env_id)
    horizon = max_episode_steps if limit is None else min(int(limit), max_episode_steps)
    specs = [StreamSpec(tuple(key), horizon, single_episode=True) for key in seed_keys]
    out = sample_streams(agent, specs, workers=1, chunk_size=chunk_size, reduce=_whole_episode)
    if any(length is None for _, length in out):
        raise PgprobeError(f"an episode of {agent.env_id!r} ran past max_episode_steps={max_episode_steps} "
                           "without ending: raise the setting or use an environment with a time limit")
    return np.array([r for r, _ in out], np.float64), np.array([n for _, n in out], np.int64)


def _whole_episode(rollout, spec):
    """``reduce`` of a single-episode stream: (undiscounted raw return, length), or
    (nan, None) when the stream stopped before its episode ended."""
    if not rollout.episode_lengths:
        return np.nan, None
    return rollout.episode_returns[0], rollout.episode_lengths[0]


def _max_episode_steps(env_id: str) -> int | None:
    import gymnasium as gym

    from .. import envs  # noqa: F401  (registers pgprobe's closed-form task)
    return gym.spec(env_id).max_episode_steps


def _point_job(agent, seed_keys, chunk_size, max_episode_steps):
    return episode_returns(agent, seed_keys, chunk_size, max_episode_steps)


def _episode_keys(seed: int, ckpt, point: tuple[int, int, int], settings: dict) -> list[tuple]:
    """Seed keys of a point's episodes: own keys per (regime, α, β, k), or with
    ``common_random_numbers`` one key per k shared by every point and regime (the same reset
    seed and action-noise stream for episode k everywhere)."""
    regime, i, j = point
    if settings.get("common_random_numbers"):
        return [(seed, ckpt.seed, ckpt.iteration, PURPOSE_TRUE_REWARD_COMMON, k)
                for k in range(max(settings["trajectory_counts"]))]
    count = settings["step_sample_counts"][regime]
    return [(seed, ckpt.seed, ckpt.iteration, PURPOSE_TRUE_REWARD, count, i, j, k)
            for k in range(max(settings["trajectory_counts"]))]


def split_half_reliability(episode_returns: np.ndarray) -> float:
    """Split-half reliability of a grid's true reward from its episodes (points..., K):
    r = correlation over the points of the mean of the even-index episodes with the mean of
    the odd ones, stepped up to all K by Spearman–Brown, 2r/(1 + r).  The share of the
    between-point variance of the K-episode means that is not episode noise (1: the grid's
    pattern is all signal; ≤ 0: none of it).  With common random numbers the halves share no
    episode either (even vs odd k), so it reads the same way.  NaN with K < 2 or a flat half."""
    returns = np.asarray(episode_returns, np.float64)
    returns = returns.reshape(-1, returns.shape[-1])
    if returns.shape[-1] < 2:
        return float("nan")
    with np.errstate(invalid="ignore"):
        even, odd = np.nanmean(returns[:, 0::2], -1), np.nanmean(returns[:, 1::2], -1)
    keep = np.isfinite(even) & np.isfinite(odd)
    if keep.sum() < 3 or np.std(even[keep]) == 0 or np.std(odd[keep]) == 0:
        return float("nan")
    r = float(np.corrcoef(even[keep], odd[keep])[0, 1])
    return 2 * r / (1 + r) if r > -1 else float("nan")


# ----------------------------------------------------------------------------- shards

def compute_shard(ckpt, settings: dict, seed: int, shard: int,
                  workers: int | None = None, progress: bool = True,
                  directions_path=None) -> xr.Dataset:
    """Evaluate shard ``shard`` of ``grid_shards``'s grid points; returns the raw shard
    dataset (dim ``point``).
    The plane and the surrogate grid come from ``directions_path`` (a landscapes-directions
    file) when given, else are computed here."""
    from tqdm import tqdm

    from ..sampling import default_workers

    settings = validate_settings(settings)
    shard_count = settings["grid_shards"]
    sharding.check_shard(shard, shard_count, "probes.landscapes setting grid_shards")
    ckpt.require_finite()
    alphas, betas = grid_axes(settings)
    if directions_path is None:
        directions = compute_directions(ckpt, settings, seed, workers, progress)
        surrogate_values, kl_values = surrogate_grid(ckpt, settings, directions)
    else:
        directions, surrogate_values, kl_values = read_directions(directions_path, ckpt, settings, seed)
    points = shard_points(settings, shard, shard_count)
    surrogates = np.array([surrogate_values[p] for p in points], np.float64)
    kls = np.array([kl_values[p] for p in points], np.float64)
    agents = [perturbed_agent(ckpt, perturbed_policy(ckpt, directions, r, alphas[i], betas[j]))
              for r, i, j in points]

    # True reward: whole episodes at every point, points in parallel.
    trajectories = max(settings["trajectory_counts"])
    returns = np.zeros((len(points), trajectories))
    lengths = np.zeros((len(points), trajectories), np.int64)
    jobs = [(agents[n], _episode_keys(seed, ckpt, p, settings), settings["chunk_size"],
             settings["max_episode_steps"]) for n, p in enumerate(points)]
    workers = default_workers() if workers is None else workers
    bar = tqdm(total=len(jobs), unit="point", desc="landscape points", disable=not progress,
               mininterval=2.0)
    if workers == 1 or len(jobs) <= 1:
        for n, job in enumerate(jobs):
            returns[n], lengths[n] = _point_job(*job)
            bar.update(1)
    else:
        ctx = mp.get_context("fork")
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
            futures = [pool.submit(_point_job, *job) for job in jobs]
            for n, future in enumerate(futures):
                returns[n], lengths[n] = future.result()
                bar.update(1)
    bar.close()

    from ..datasets import provenance, variable

    point_index = np.array(points, np.int64).reshape(-1, 3)
    ds = xr.Dataset(
        {
            "regime_index": variable(("point",), point_index[:, 0], "index into step_sample_counts", "1"),
            "alpha_index": variable(("point",), point_index[:, 1], "index of the step-direction coordinate", "1"),
            "beta_index": variable(("point",), point_index[:, 2], "index of the random-direction coordinate", "1"),
            "episode_return": variable(("point", "trajectory"), returns,
                                       "undiscounted return of one episode of the perturbed policy", "reward"),
            "episode_length": variable(("point", "trajectory"), lengths,
                                       "length of one episode of the perturbed policy", "steps"),
            "surrogate": variable(("point",), surrogates, _surrogate_long_name(ckpt.algo), "1"),
            "mean_kl": variable(("point",), kls, "mean KL(pi_0 || pi_theta) over the step batch's states", "nat"),
            "step_norm": variable(("regime",), [float(np.linalg.norm(s)) for s in directions.steps],
                                  "l2 norm of the update step theta' - theta_0", "1"),
            "step_random_cosine": variable(("regime",), [cosine_similarity(s, directions.random_direction)
                                                         for s in directions.steps],
                                           "cosine similarity of the update step and the random direction", "1"),
        },
        coords={"regime": variable(("regime",), np.array(settings["step_sample_counts"], np.int64),
                                   "state-action pairs used to compute the update step", "1")},
    )
    ds.attrs = provenance(KIND + "-shard", settings, ckpt.sha256, probe_seed=int(seed),
                          **sharding.shard_attrs(_shard_key(ckpt, settings, seed), shard, shard_count),
                          direction_digest=directions.digest(),
                          random_direction_norm=float(np.linalg.norm(directions.random_direction)),
                          env=ckpt.env_id, algo=ckpt.algo, training_seed=int(ckpt.seed),
                          iteration=int(ckpt.iteration))
    return ds


def _surrogate_long_name(algo: str) -> str:
    if algo == "ppo":
        return "PPO clipped surrogate objective (eq. 17) on the step batch"
    return "TRPO surrogate objective (eq. 14) on the step batch"


def gather(ckpt, settings: dict, seed: int, shards: list) -> xr.Dataset:
    """Assemble shard datasets (or files) into the landscape dataset (``sharding.gather``
    checks they belong together; all must share one plane, ``direction_digest``)."""
    from ..datasets import add_run_coords, open_dataset, provenance, variable

    settings = validate_settings(settings)
    if not shards:
        raise PgprobeError("no shards to gather")
    first = shards[0] if isinstance(shards[0], xr.Dataset) else open_dataset(shards[0], KIND + "-shard")
    shards = sharding.gather(shards, KIND + "-shard", _shard_key(ckpt, settings, seed),
                             settings["grid_shards"])
    first = shards[0].attrs
    for n, shard in enumerate(shards):
        if shard.attrs.get("direction_digest") != first.get("direction_digest"):
            raise PgprobeError(f"shard {n}: its update steps differ from shard 0's (shards must run "
                               "the same pgprobe/torch version)")

    alphas, betas = grid_axes(settings)
    counts = settings["step_sample_counts"]
    trajectory_counts = settings["trajectory_counts"]
    trajectories = max(trajectory_counts)
    shape = (len(counts), len(alphas), len(betas))
    returns = np.full(shape + (trajectories,), np.nan)
    lengths = np.zeros(shape + (trajectories,), np.int64)
    surrogate = np.full(shape, np.nan)
    kl = np.full(shape, np.nan)
    filled = np.zeros(shape, bool)
    for shard in shards:
        r, i, j = (shard[k].values for k in ("regime_index", "alpha_index", "beta_index"))
        returns[r, i, j] = shard["episode_return"].values
        lengths[r, i, j] = shard["episode_length"].values
        surrogate[r, i, j] = shard["surrogate"].values
        kl[r, i, j] = shard["mean_kl"].values
        filled[r, i, j] = True
    if not filled.all():
        raise PgprobeError("the shards do not cover the whole grid")
    true_reward = np.stack([returns[..., :t].mean(-1) for t in trajectory_counts], axis=-1)
    hp = ckpt.hyperparameters
    dims = ("regime", "alpha", "beta")
    ds = xr.Dataset(
        {
            "episode_return": variable(dims + ("trajectory",), returns,
                                       "undiscounted return of one episode of the perturbed policy", "reward"),
            "episode_length": variable(dims + ("trajectory",), lengths,
                                       "length of one episode of the perturbed policy", "steps"),
            "true_reward": variable(dims + ("trajectories",), true_reward,
                                    "true reward: mean undiscounted return of the first T episodes", "reward"),
            "surrogate": variable(dims, surrogate, _surrogate_long_name(ckpt.algo), "1"),
            "mean_kl": variable(dims, kl, "mean KL(pi_0 || pi_theta) over the step batch's states", "nat"),
            "step_norm": variable(("regime",), shards[0]["step_norm"].values,
                                  "l2 norm of the update step theta' - theta_0", "1"),
            "step_random_cosine": variable(("regime",), shards[0]["step_random_cosine"].values,
                                           "cosine similarity of the update step and the random direction", "1"),
            "random_direction_norm": variable((), float(first["random_direction_norm"]),
                                              "l2 norm of the random direction (one unit of beta)", "1"),
            "kl_constraint": variable((), float(hp["max_kl"]) if ckpt.algo == "trpo" else np.nan,
                                      "TRPO KL constraint delta (NaN for PPO)", "nat"),
            "true_reward_reliability": variable(
                ("regime",), [split_half_reliability(returns[r]) for r in range(len(counts))],
                "split-half reliability of the grid's true reward with all its episodes: correlation over "
                "the points of the even- and odd-episode means, Spearman-Brown 2r/(1+r)", "1"),
            "common_random_numbers": variable(
                (), int(bool(settings.get("common_random_numbers"))),
                "1: episode k had the same reset seed and action noise at every grid point; 0: independent "
                "episodes per point", "1"),
        },
        coords={
            "regime": variable(("regime",), np.array(counts, np.int64),
                               "state-action pairs used to compute the update step", "1"),
            "alpha": variable(("alpha",), alphas, "step direction (units of one full update step)", "1"),
            "beta": variable(("beta",), betas, "random direction (units of the random direction)", "1"),
            "trajectory": variable(("trajectory",), np.arange(trajectories, dtype=np.int64),
                                   "episode index at a grid point", "1"),
            "trajectories": variable(("trajectories",), np.array(trajectory_counts, np.int64),
                                     "episodes averaged for the true reward", "1"),
        },
    )
    ds = add_run_coords(ds, ckpt.env_id, ckpt.label, ckpt.seed, ckpt.iteration,
                        source=ckpt.source, env_steps=ckpt.env_steps)
    ds.attrs = provenance(KIND, _measurement_settings(settings), ckpt.sha256, probe_seed=int(seed),
                          surrogate=("ppo_clipped_eq17" if ckpt.algo == "ppo" else "trpo_eq14"),
                          direction_digest=first["direction_digest"])
    return ds


def run(ckpt, settings: dict, seed: int, workers: int | None = None, progress: bool = True) -> xr.Dataset:
    """The whole landscape at one checkpoint (computed as a single shard)."""
    settings = {**validate_settings(settings), "grid_shards": 1}
    return gather(ckpt, settings, seed, [compute_shard(ckpt, settings, seed, 0, workers, progress)])


# ----------------------------------------------------------------------------- CLI

def _parse_settings(text: str | None) -> dict:
    return validate_settings(text)


def _check_out(path: str) -> None:
    if not str(path).endswith(".nc"):
        raise PgprobeError(f"--out {path!r}: expected a .nc file name")


def _cmd_landscapes(args) -> None:
    from ..checkpoint import load_checkpoint
    from ..datasets import write_netcdf

    _check_out(args.out)
    settings = _parse_settings(args.settings)
    ckpt = load_checkpoint(args.checkpoint)
    ckpt.require_finite()
    if args.shards:
        ds = gather(ckpt, settings, args.seed, args.shards)
    else:
        ds = run(ckpt, settings, args.seed, args.workers, progress=True)
    write_netcdf(ds, args.out)
    print(f"wrote {args.out}")


def _cmd_shard(args) -> None:
    from ..checkpoint import load_checkpoint
    from ..datasets import write_netcdf

    _check_out(args.out)
    settings = _parse_settings(args.settings)
    sharding.check_shard(args.shard, settings["grid_shards"], "probes.landscapes setting grid_shards")
    ckpt = load_checkpoint(args.checkpoint)
    ckpt.require_finite()
    ds = compute_shard(ckpt, settings, args.seed, args.shard, args.workers,
                       directions_path=args.directions)
    write_netcdf(ds, args.out)
    print(f"wrote {args.out}")


def _cmd_directions(args) -> None:
    from ..checkpoint import load_checkpoint
    from ..datasets import write_netcdf

    _check_out(args.out)
    settings = _parse_settings(args.settings)
    ckpt = load_checkpoint(args.checkpoint)
    write_netcdf(directions_dataset(ckpt, settings, args.seed, args.workers), args.out)
    print(f"wrote {args.out}")


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    from ..cli import nonnegative_int, positive_int

    parser.add_argument("--checkpoint", required=True, help="checkpoint .pt file")
    parser.add_argument("--out", required=True, help="output NetCDF file")
    parser.add_argument("--settings", help="JSON object: config section probes.landscapes "
                        f"(keys: {', '.join(sorted(DEFAULTS))})")
    parser.add_argument("--workers", type=positive_int, default=None,
                        help="worker processes (default: available cores)")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="probe seed (default 0)")


def add_parser(subparsers) -> None:
    main = subparsers.add_parser(
        KIND, help="true-reward and surrogate landscapes along the update step and a random direction",
        description=__doc__.split("\n\n")[0])
    _common_arguments(main)
    main.add_argument("--shards", nargs="+", metavar="FILE",
                      help="gather these landscapes-shard files instead of computing")
    main.set_defaults(func=_cmd_landscapes)

    shard = subparsers.add_parser(
        KIND + "-shard", help="one shard of the landscape grid (gather with landscapes --shards)")
    _common_arguments(shard)
    from ..cli import nonnegative_int
    shard.add_argument("--shard", type=nonnegative_int, required=True, help="shard index K")
    shard.add_argument("--directions", metavar="FILE",
                       help="read the plane and surrogate grid from this landscapes-directions file")
    shard.set_defaults(func=_cmd_shard)

    directions = subparsers.add_parser(
        KIND + "-directions", help="the landscape plane (update step per regime, random direction) "
        "and surrogate grid of one checkpoint, for landscapes-shard --directions")
    _common_arguments(directions)
    directions.set_defaults(func=_cmd_directions)
