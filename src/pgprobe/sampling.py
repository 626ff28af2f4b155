"""Rollouts of a policy: the one sampler used by training and by every probe.

A *stream* is one environment instance with its own seed and its own action-noise RNG,
stepped for a fixed number of steps from a reset: a sequence of whole trajectories, the
last one cut at the stream's end (bootstrapped from the value net like a time-limit
truncation).  A stream of N steps is exactly one N-sample estimate's batch, the same way
the algorithms collect their 2048-step batches.

Streams are grouped into fixed *chunks* that step in lockstep (one batched numpy forward
pass per step for all streams of the chunk).  Chunks are defined by the work list alone,
never by the worker count, so any number of worker processes gives identical results.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
import multiprocessing as mp
from typing import Callable, Sequence

import numpy as np

from .policies import NumpyMLP
from .errors import PgprobeError

LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class FrozenAgent:
    """Everything needed to act and evaluate V with a fixed policy (picklable, numpy only).

    Observations are normalized with the frozen statistics
    o ↦ clip((o − μ)/sqrt(σ² + ε), ±c); rewards are scaled as in training,
    r ↦ clip(r / sqrt(Var[R] + ε), ±c), so that advantages match the value net's scale.
    """
    env_id: str
    policy_mean: NumpyMLP
    log_std: np.ndarray
    value: NumpyMLP
    obs_mean: np.ndarray
    obs_var: np.ndarray
    obs_normalize: bool
    obs_clip: float | None
    reward_var: float
    reward_normalize: bool
    reward_clip: float | None
    gamma: float
    gae_lambda: float
    epsilon: float = 1e-8

    def observe(self, raw_obs: np.ndarray, update: bool = False) -> np.ndarray:
        raw_obs = np.asarray(raw_obs, np.float64)
        if not self.obs_normalize:
            return raw_obs.astype(np.float32)
        out = np.asarray((raw_obs - self.obs_mean) / np.sqrt(self.obs_var + self.epsilon))
        if self.obs_clip is not None:      # np.clip's arithmetic, without its Python wrapper
            if out.ndim:
                np.minimum(np.maximum(out, -self.obs_clip, out=out), self.obs_clip, out=out)
            else:
                out = np.clip(out, -self.obs_clip, self.obs_clip)
        return out.astype(np.float32)

    def scale_rewards(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        rewards = np.asarray(rewards, np.float64)
        if not self.reward_normalize:
            return rewards
        out = rewards / math.sqrt(self.reward_var + self.epsilon)
        if self.reward_clip is not None:
            if isinstance(out, np.ndarray) and out.ndim:
                np.minimum(np.maximum(out, -self.reward_clip, out=out), self.reward_clip, out=out)
            else:
                out = np.clip(out, -self.reward_clip, self.reward_clip)
        return out


@dataclass
class Rollout:
    """One stream's samples, time-major, length T (or (T, E) inside training).

    obs: what the policy saw (normalized); rewards: scaled as in training; raw_rewards: the
    environment's rewards.  next_values[t] = V(s_{t+1}) (bootstrap value at truncations and
    at the rollout's end; meaningless where terminated).  segment_end marks episode ends
    and the rollout's last step.  episode_returns / episode_lengths: completed episodes
    (undiscounted raw rewards); trajectory_count counts every trajectory started,
    including the cut last one.
    """
    obs: np.ndarray
    actions: np.ndarray
    log_probs: np.ndarray
    values: np.ndarray
    next_values: np.ndarray
    rewards: np.ndarray
    raw_rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    segment_end: np.ndarray
    episode_returns: list = field(default_factory=list)
    episode_lengths: list = field(default_factory=list)
    trajectory_count: int = 0
    sim_states: np.ndarray | None = None

    @property
    def sample_count(self) -> int:
        return int(self.rewards.size)


class _BlockForward:
    """A net applied to the rows of a rollout's envs block by block (see ``rollout``'s
    ``block_size``): per block one call on its rows, or on its running rows only where
    ``only_running`` and the block is partly stopped; blocks with no running row are not
    forwarded (their output rows are 0).  Whole blocks go through a ``NumpyMLP`` as one
    stacked (blocks, block_size, features) matmul: numpy runs a separate gemm per block,
    so each block's bits are those of its own call."""

    def __init__(self, env_count: int, block_size: int):
        self.env_count, self.block_size = env_count, block_size
        self.starts = list(range(0, env_count, block_size))

    def rows_by_block(self, rows: Sequence[int]) -> list[list[int]]:
        """Sorted env ``rows`` split by block (one call per block, as the blocks alone)."""
        out: dict[int, list[int]] = {}
        for i in rows:
            out.setdefault(i // self.block_size, []).append(i)
        return list(out.values())

    def __call__(self, fn: Callable, x: np.ndarray, running: np.ndarray, only_running: bool) -> np.ndarray:
        size, count = self.block_size, self.env_count
        if size >= count:                                     # one block: the plain call
            if running.all() or not only_running:
                return fn(x) if running.any() else np.zeros((count, 1), np.float32)
        stack, singles = [], []
        for start in self.starts:
            part = running[start:start + size]
            if not part.any():
                continue
            if only_running and not part.all():
                singles.append(start + np.flatnonzero(part))
            elif start + size <= count and isinstance(fn, NumpyMLP):
                stack.append(start)
            else:
                singles.append(np.arange(start, min(start + size, count)))
        pieces = []
        if stack:
            if len(stack) * size == count:                   # every env, in order: a view
                index = slice(None)
                stacked = x.reshape(len(stack), size, -1)
            else:
                index = np.concatenate([np.arange(b, b + size) for b in stack])
                stacked = x[index].reshape(len(stack), size, -1)
            out = fn(stacked)
            pieces.append((index, out.reshape(len(stack) * size, -1)))
        # a net may return (rows,) or (rows, k): rows first either way
        pieces += [(rows, np.asarray(fn(x[rows])).reshape(len(rows), -1)) for rows in singles]
        if len(pieces) == 1 and isinstance(pieces[0][0], slice):
            return pieces[0][1]
        width = pieces[0][1].shape[-1] if pieces else 1
        result = np.zeros((count, width), pieces[0][1].dtype if pieces else np.float32)
        for rows, values in pieces:
            result[rows] = values
        return result


def rollout(envs: Sequence, agent_policy: Callable[[np.ndarray], np.ndarray], log_std: np.ndarray,
            value_fn: Callable[[np.ndarray], np.ndarray], step_counts: Sequence[int],
            noise_rngs: Sequence[np.random.Generator], env_seeds: Sequence[int],
            observe: Callable[..., np.ndarray], scale_rewards: Callable[[np.ndarray, np.ndarray], np.ndarray],
            update_normalizers: bool = False, record_states: bool = False,
            starts: Sequence | None = None, single_episode: bool = False,
            engine: str | None = None, block_size: int | None = None,
            time_limits: Sequence[bool] | None = None) -> list[Rollout]:
    """Step ``envs`` in lockstep from fresh resets; env i runs ``step_counts[i]`` steps.

    ``starts[i]`` (a ``pgprobe.envs.RestorePoint`` or None): after its seeded reset, env i
    is restored to that simulator state and starts from there.  ``single_episode``: each
    env stops at the end of its first episode (termination or time limit) instead of
    resetting, so its rollout may be shorter than ``step_counts[i]`` (once one has stopped,
    the policy and value net run on the running episodes' rows only).  ``record_states``:
    ``Rollout.sim_states[t]`` is the simulator state step t starts from
    (``pgprobe.envs.capture_state``; None where the env cannot be restored).
    ``time_limits[i]`` False: env i's episodes run past the task's time limit (they end
    only by termination; for true values of agents that bootstrap at the limit, i.e. estimate
    the time-unlimited value, ``pgprobe.probes.baselines``).

    Actions a = μ(s) + σ·ξ with ξ ~ N(0, I) from env i's own generator; the environment
    receives a clipped to its action bounds, log π is of the unclipped a.
    Returns one ``Rollout`` per env (1-D time axis).

    Speed (bench/sampler_throughput.py): each stream's noise ξ is drawn in a few blocks of
    rows (the same numbers, in the same order, as one draw per step), the policy and value
    net run once per step for all envs, and the chunk is stepped
    by ``pgprobe.mujoco_engine.make_chunk(envs, engine)``: gymnasium's MuJoCo v5 locomotion
    tasks with physics in C and observations, rewards and terminations vectorized over the
    chunk (bit-identical to ``env.step``), any other task by its own ``env.step`` below the
    TimeLimit/OrderEnforcing wrappers; the time limit (``max_episode_steps``) is applied
    here.  ``engine``: ``auto`` or ``gymnasium`` (None: the PGPROBE_SAMPLING_ENGINE setting).

    ``block_size``: the envs are consecutive blocks of this many (the last may be shorter),
    each forwarded through the nets exactly as a rollout of that block alone would forward
    it (one call per block and step, on the block's rows), so every stream's numbers are
    those of the rollout of its own block, bit for bit: a float32 matmul's rounding depends
    on its batch size.  Whole blocks go through a ``NumpyMLP`` in one stacked matmul (numpy
    runs one gemm per block), so a group of blocks costs fewer Python and numpy calls per
    step than its blocks one by one.  None: one block of all envs.
    """
    from .mujoco_engine import make_chunk

    env_count = len(envs)
    forward = _BlockForward(env_count, block_size or env_count)
    step_counts = np.asarray(step_counts, int)
    horizon = int(step_counts.max())
    act_dim = log_std.shape[0]
    std = np.exp(log_std).astype(np.float32)
    log_norm = float(log_std.sum()) + 0.5 * LOG_2PI * act_dim
    low = np.stack([env.action_space.low for env in envs]).astype(np.float32)
    high = np.stack([env.action_space.high for env in envs]).astype(np.float32)
    chunk = make_chunk(envs, engine)
    no_limit = np.iinfo(np.int64).max
    keep_limit = [True] * env_count if time_limits is None else [bool(x) for x in time_limits]
    for env, limit, keep in zip(envs, chunk.limits, keep_limit):
        spec_limit = getattr(getattr(env, "spec", None), "max_episode_steps", None)
        if not keep and limit is None and spec_limit is not None:
            raise PgprobeError(f"{env.spec.id}: cannot run past its time limit ({spec_limit} steps): "
                               "its wrappers apply the limit, not the sampler")
    limits = np.array([no_limit if limit is None or not keep else limit
                       for limit, keep in zip(chunk.limits, keep_limit)], np.int64)
    elapsed = np.zeros(env_count, np.int64)

    # Action noise, time-major; zero rows after a stream's end.  Drawn in blocks of rows that
    # double as the rollout goes on (the same numbers as one draw of step_counts[i] rows:
    # numpy's generators fill sequentially), so single-episode streams, whose step count is
    # only a guard (up to 10⁵ steps), draw about what their episodes use.
    noise_all = np.zeros((horizon, env_count, act_dim), np.float32)
    drawn = 0

    def draw_noise_through(t: int) -> int:
        end = min(horizon, max(2 * drawn, t + 1, 256))
        for i, rng in enumerate(noise_rngs):
            rows = min(end, int(step_counts[i])) - min(drawn, int(step_counts[i]))
            if rows > 0:
                start = min(drawn, int(step_counts[i]))
                noise_all[start:start + rows, i] = rng.standard_normal((rows, act_dim), dtype=np.float32)
        return end

    first = []
    for i, seed in enumerate(env_seeds):
        o = chunk.reset(i, seed=int(seed))
        if starts is not None and starts[i] is not None:
            o = chunk.restore(i, starts[i])
        first.append(o)
    raw = np.stack(first).astype(np.float64)
    obs = observe(raw, update_normalizers)
    obs_dim = obs.shape[1]
    buf_obs = np.zeros((horizon, env_count, obs_dim), np.float32)
    buf_act = np.zeros((horizon, env_count, act_dim), np.float32)
    buf_val = np.zeros((horizon, env_count))
    buf_next = np.zeros((horizon, env_count))
    buf_raw_rew = np.zeros((horizon, env_count))
    buf_rew = np.zeros((horizon, env_count))
    buf_term = np.zeros((horizon, env_count), bool)
    buf_trunc = np.zeros((horizon, env_count), bool)
    buf_states = None
    if record_states:
        from .envs import capture_state, supports_restore
        if supports_restore(envs[0]):
            buf_states = np.zeros((horizon, env_count, capture_state(envs[0]).size))
    episode_returns: list[list[float]] = [[] for _ in range(env_count)]
    episode_lengths: list[list[int]] = [[] for _ in range(env_count)]
    running_return = np.zeros(env_count)
    trajectories = [1] * env_count
    all_rows = np.ones(env_count, bool)
    values = forward(value_fn, obs, all_rows, False).reshape(-1).astype(np.float64)
    all_active = list(range(env_count))
    lengths = step_counts.copy()         # shortened where single_episode ends a stream early
    last_steps = [int(n) - 1 for n in step_counts]

    shortest = int(lengths.min())        # every stream runs while t < shortest
    for t in range(horizon):
        active = all_active if t < shortest else [i for i in all_active if t < lengths[i]]
        if not active:
            break
        rows = slice(None) if len(active) == env_count else np.asarray(active)
        if t >= drawn:
            drawn = draw_noise_through(t)
        noise = noise_all[t]
        running = all_rows
        if len(active) < env_count:
            running = np.zeros(env_count, bool)
            running[active] = True
        # single_episode: forward only the episodes still running (per block)
        mean = forward(agent_policy, obs, running, single_episode)
        actions = mean + std * noise
        buf_obs[t], buf_act[t], buf_val[t] = obs, actions, values
        clipped = np.minimum(np.maximum(actions, low), high)
        if buf_states is not None:
            for i in active:
                buf_states[t, i] = capture_state(envs[i])
        step_obs, step_rewards, term, trunc = chunk.step(active, clipped[rows])
        elapsed[rows] += 1
        trunc = trunc | (elapsed[rows] >= limits[rows])
        buf_raw_rew[t, rows] = step_rewards
        running_return[rows] += step_rewards
        buf_term[t, rows] = term
        buf_trunc[t, rows] = trunc
        raw[rows] = step_obs
        final_raw = {}
        ended = np.flatnonzero(term | trunc)
        for k in ended:
            i = active[k]
            episode_returns[i].append(float(running_return[i]))
            episode_lengths[i].append(int(elapsed[i]))
            running_return[i] = 0.0
            elapsed[i] = 0
            if trunc[k] and not term[k]:
                final_raw[i] = raw[i].copy()
            if single_episode:
                lengths[i] = t + 1
                shortest = min(shortest, t + 1)
            elif t < last_steps[i]:
                raw[i] = chunk.reset(i)
                trajectories[i] += 1
        dones = buf_term[t] | buf_trunc[t]
        buf_rew[t] = scale_rewards(buf_raw_rew[t], dones)
        obs = observe(raw, update_normalizers)
        values = forward(value_fn, obs, running, single_episode).reshape(-1).astype(np.float64)
        buf_next[t] = values
        if final_raw:
            for idx in forward.rows_by_block(sorted(final_raw)):
                final_obs = observe(np.stack([final_raw[i] for i in idx]), False)
                buf_next[t, idx] = value_fn(final_obs).reshape(-1)
    # log π(a|s) = −½‖ξ‖² − Σ log σ − (d/2) log 2π, all steps at once (the steps run).
    used = int(lengths.max())
    buf_logp = -0.5 * np.sum(noise_all[:used].astype(np.float64) ** 2, axis=2) - log_norm

    results = []
    for i in range(env_count):
        steps = int(lengths[i])
        end = buf_term[:steps, i] | buf_trunc[:steps, i]
        end[steps - 1] = True
        results.append(Rollout(
            obs=buf_obs[:steps, i], actions=buf_act[:steps, i], log_probs=buf_logp[:steps, i],
            values=buf_val[:steps, i], next_values=buf_next[:steps, i],
            rewards=buf_rew[:steps, i], raw_rewards=buf_raw_rew[:steps, i],
            terminated=buf_term[:steps, i], truncated=buf_trunc[:steps, i], segment_end=end,
            episode_returns=episode_returns[i], episode_lengths=episode_lengths[i],
            trajectory_count=int(trajectories[i]),
            sim_states=None if buf_states is None else buf_states[:steps, i]))
    return results


@dataclass(frozen=True)
class StreamSpec:
    """One independent stream: ``seed_key`` (tuple of ints, fed to numpy's SeedSequence as
    entropy) fixes the env seed and action noise; ``step_count`` its length.  ``start``: a
    ``pgprobe.envs.RestorePoint`` to start from instead of the reset state;
    ``single_episode``: stop at the first episode end (see ``rollout``); ``time_limit``:
    False runs episodes past the task's time limit (``rollout``'s ``time_limits``)."""
    seed_key: tuple
    step_count: int
    start: object = None
    single_episode: bool = False
    time_limit: bool = True


class ZeroValue:
    """V ≡ 0 (picklable): for rollouts whose value-net outputs nothing reads (true-reward
    episodes), so that the engine does not run the value net for them."""

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.zeros((len(obs), 1), np.float32)


def stream_rngs(seed_key: tuple) -> tuple[int, np.random.Generator]:
    """(env reset seed, action-noise generator) of a stream, independent across keys."""
    seq = np.random.SeedSequence(list(seed_key))
    env_seq, noise_seq = seq.spawn(2)
    return int(env_seq.generate_state(1)[0]), np.random.default_rng(noise_seq)


# Environments kept for reuse in this process, per env id (``_borrow_envs``).
_ENV_POOL: dict[str, list] = {}
ENV_POOL_LIMIT = 512


def _borrow_envs(env_id: str, count: int) -> list:
    """``count`` environments of ``env_id``: kept ones first, new ones (``gym.make``, about
    6 ms each: as long as ~50 Hopper steps) for the rest.  Every stream starts with
    ``env.reset(seed)``, and for the gymnasium MuJoCo v5 tasks that ``mujoco_engine``
    steps (``fast_task``) a seeded reset is the whole state: it reseeds the env's RNG,
    ``mj_resetData`` returns MjData to the state ``MjData(model)`` starts in (time, qacc
    warm start, controls, ...), and the TimeLimit counter restarts.  So a kept env gives the
    numbers a new one gives, bit for bit (tests/test_sampler.py).  Other environments are
    never kept: their reset may not restore everything."""
    from .envs import make_env  # workers import lazily (fork-safe)

    kept = _ENV_POOL.get(env_id, [])
    envs = [kept.pop() for _ in range(min(count, len(kept)))]
    return envs + [make_env(env_id, _checked=True) for _ in range(count - len(envs))]


def _return_envs(env_id: str, envs: list) -> None:
    """Keep ``envs`` for the next chunk of this process if their seeded reset restores
    everything (``_borrow_envs``); close the rest."""
    from .mujoco_engine import fast_task

    kept = _ENV_POOL.setdefault(env_id, [])
    for env in envs:
        if len(kept) < ENV_POOL_LIMIT and fast_task(env) is not None:
            kept.append(env)
        else:
            env.close()


def _run_chunk(agent: FrozenAgent, streams: Sequence[StreamSpec], record_states: bool,
               reduce: Callable | None, block_size: int | None = None):
    envs = _borrow_envs(agent.env_id, len(streams))
    seeds, rngs = zip(*(stream_rngs(s.seed_key) for s in streams))
    if len({s.single_episode for s in streams}) > 1:
        raise ValueError("streams of one chunk must agree on single_episode")
    starts = [s.start for s in streams]
    rollouts = rollout(envs, agent.policy_mean, agent.log_std, agent.value,
                       [s.step_count for s in streams], rngs, seeds,
                       agent.observe, agent.scale_rewards, record_states=record_states,
                       starts=None if all(x is None for x in starts) else starts,
                       single_episode=streams[0].single_episode, block_size=block_size,
                       time_limits=[s.time_limit for s in streams])
    _return_envs(agent.env_id, envs)
    if reduce is not None:
        return [reduce(r, s) for r, s in zip(rollouts, streams)]
    return rollouts


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def chunked(streams: Sequence[StreamSpec], chunk_size: int) -> list[list[StreamSpec]]:
    return [list(streams[i:i + chunk_size]) for i in range(0, len(streams), chunk_size)]


def sample_streams(agent: FrozenAgent, streams: Sequence[StreamSpec], workers: int | None = None,
                   chunk_size: int = 16, record_states: bool = False,
                   reduce: Callable | None = None, progress: str | None = None) -> list:
    """Sample every stream; returns one ``Rollout`` per stream (or ``reduce(rollout, spec)``,
    computed inside the worker, when given: use it to keep large samples out of IPC).

    Results do not depend on ``workers``: chunks of ``chunk_size`` consecutive streams are
    the unit of the numbers (each chunk's forward passes are batched alone, bit for bit); a
    worker call steps a group of consecutive chunks in lockstep (``grouped``).  ``reduce`` must be picklable (a module-level function or partial).
    """
    from tqdm import tqdm

    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers={workers}: expected at least 1")
    chunks = chunked(streams, chunk_size)
    groups = grouped(chunks, workers, int(np.size(agent.obs_mean)), record_states)
    bar = tqdm(total=sum(s.step_count for s in streams), unit="step", desc=progress,
               disable=progress is None, mininterval=2.0)
    results: list = []
    if workers == 1 or len(groups) == 1:
        for group in groups:
            results.extend(_run_chunk(agent, group, record_states, reduce, chunk_size))
            bar.update(sum(s.step_count for s in group))
    else:
        ctx = mp.get_context("fork")
        with ProcessPoolExecutor(max_workers=min(workers, len(groups)), mp_context=ctx) as pool:
            futures = [pool.submit(_run_chunk, agent, group, record_states, reduce, chunk_size) for group in groups]
            for group, future in zip(groups, futures):
                results.extend(future.result())
                bar.update(sum(s.step_count for s in group))
    bar.close()
    return results


# A worker call steps consecutive chunks in lockstep (``rollout``'s blocks: each chunk's numbers
# are its own, bit for bit) while their buffers stay under this many bytes.
GROUP_BUFFER_BYTES = 64 * 2 ** 20


def grouped(chunks: list[list[StreamSpec]], workers: int, obs_dim: int,
            record_states: bool = False) -> list[list[StreamSpec]]:
    """Consecutive ``chunks`` joined into worker calls: at least two calls per worker where
    there are enough chunks, chunks of one kind (single-episode or not) per call, and each
    call's rollout buffers (≈ steps × streams × (4·obs_dim + 64 [+ 800 with states]) bytes)
    under GROUP_BUFFER_BYTES.  Results do not depend on the grouping."""
    if not chunks:
        return []
    per_worker_call = len(chunks) if workers <= 1 else math.ceil(len(chunks) / (2 * workers))
    groups: list[list[StreamSpec]] = []
    current: list[StreamSpec] = []
    count = 0
    for chunk in chunks:
        horizon = max(s.step_count for s in current + chunk)
        bytes_per = horizon * (4 * obs_dim + 64 + (800 if record_states else 0))
        fits = (count < per_worker_call and bytes_per * (len(current) + len(chunk)) <= GROUP_BUFFER_BYTES
                and all(s.single_episode == chunk[0].single_episode for s in current))
        if current and not fits:
            groups.append(current)
            current, count = [], 0
        current = current + list(chunk)
        count += 1
    groups.append(current)
    return groups
