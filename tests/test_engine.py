"""Stepping engines (pgprobe.mujoco_engine): the MuJoCo chunk engine is bit-identical to
gymnasium's own env.step (observations, rewards, terminated, truncated over 2000 steps with
resets, terminations and time limits), the sampler gives the same rollouts on both engines,
probe datasets are identical on both, and the engine is chosen per task."""
from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import xarray as xr

from pgprobe.cli import main
from pgprobe.datasets import open_dataset
from pgprobe.envs import make_env
from pgprobe.errors import PgprobeError
from pgprobe.mujoco_engine import GymnasiumChunk, MujocoChunk, make_chunk
from pgprobe.sampling import rollout, stream_rngs

# (task, time limit short enough that 2000 random steps hit it as well as terminations)
FAST_TASKS = [("Hopper-v5", 40), ("Walker2d-v5", 40), ("HalfCheetah-v5", 300), ("Ant-v5", 150),
              ("Humanoid-v5", 30)]
STEPS = 2000
ENV_COUNT = 3


def _random_actions(space, seed: int) -> np.ndarray:
    """Uniform actions 20% beyond the bounds, clipped to them as the sampler does (float32),
    so that the bounds themselves occur too."""
    rng = np.random.default_rng(seed)
    wide = rng.uniform(1.2 * space.low, 1.2 * space.high, (STEPS, ENV_COUNT) + space.shape)
    return np.clip(wide, space.low, space.high).astype(np.float32)


def _gymnasium_reference(env_id: str, limit: int, actions: np.ndarray, seeds: list[int]):
    """gymnasium's own wrapped env.step (TimeLimit included), reset after every episode end."""
    envs = [gym.make(env_id, max_episode_steps=limit, disable_env_checker=True) for _ in seeds]
    for env, seed in zip(envs, seeds):
        env.reset(seed=seed)
    out = {"obs": [], "reward": [], "terminated": [], "truncated": []}
    for t in range(STEPS):
        row = [env.step(actions[t, i]) for i, env in enumerate(envs)]
        out["obs"].append(np.stack([r[0] for r in row]))
        out["reward"].append(np.array([r[1] for r in row]))
        out["terminated"].append(np.array([r[2] for r in row]))
        out["truncated"].append(np.array([r[3] for r in row]))
        for env, r in zip(envs, row):
            if r[2] or r[3]:
                env.reset()
    return {k: np.stack(v) for k, v in out.items()}


def _engine_run(env_id: str, limit: int, actions: np.ndarray, seeds: list[int]):
    """The MuJoCo chunk engine, with the sampler's time-limit rule (truncated once an
    episode has run the TimeLimit wrapper's max_episode_steps)."""
    envs = [gym.make(env_id, max_episode_steps=limit, disable_env_checker=True) for _ in seeds]
    chunk = make_chunk(envs, "auto")
    assert isinstance(chunk, MujocoChunk) and chunk.limits == [limit] * len(seeds)
    for i, seed in enumerate(seeds):
        chunk.reset(i, seed=seed)
    elapsed = np.zeros(len(seeds), int)
    out = {"obs": [], "reward": [], "terminated": [], "truncated": []}
    rows = list(range(len(seeds)))
    for t in range(STEPS):
        obs, reward, terminated, truncated = chunk.step(rows, actions[t])
        elapsed += 1
        truncated = truncated | (elapsed >= np.array(chunk.limits))
        for name, value in zip(out, (obs, reward, terminated, truncated)):
            out[name].append(value)
        for i in np.flatnonzero(terminated | truncated):
            chunk.reset(int(i))
            elapsed[i] = 0
    return {k: np.stack(v) for k, v in out.items()}


@pytest.mark.parametrize("env_id, limit", FAST_TASKS)
def test_engine_bit_identical_to_gymnasium(env_id, limit):
    space = make_env(env_id).action_space
    actions = _random_actions(space, 11)
    seeds = [5, 6, 7]
    want = _gymnasium_reference(env_id, limit, actions, seeds)
    got = _engine_run(env_id, limit, actions, seeds)
    for name in ("obs", "reward", "terminated", "truncated"):
        assert got[name].dtype == want[name].dtype, name
        assert np.array_equal(got[name], want[name]), \
            f"{name}: first difference at (step, env) {np.argwhere(got[name] != want[name])[:1].tolist()}"
    # the run went through resets after both kinds of episode end
    assert want["truncated"].sum() >= 3
    if env_id != "HalfCheetah-v5":                    # HalfCheetah never terminates
        assert want["terminated"].sum() >= 3


def _zero_policy(obs):
    return np.zeros((len(obs), _zero_policy.act_dim), np.float32)


@pytest.mark.parametrize("env_id, limit", [("Hopper-v5", 40), ("Humanoid-v5", 30)])
def test_rollouts_identical_on_both_engines(env_id, limit):
    """The sampler itself (noise, clipping, resets, time limit, episode bookkeeping) gives
    the same rollouts with the engine chosen automatically as with gymnasium's path."""
    space = make_env(env_id).action_space
    _zero_policy.act_dim = space.shape[0]
    keys, counts = [(9, 0), (9, 1), (9, 2)], [600, 350, 600]
    results = []
    for engine in ("auto", "gymnasium"):
        seeds, rngs = zip(*(stream_rngs(k) for k in keys))
        envs = [gym.make(env_id, max_episode_steps=limit, disable_env_checker=True) for _ in keys]
        results.append(rollout(envs, _zero_policy, np.zeros(space.shape[0], np.float32),
                               lambda obs: obs[:, :1].astype(np.float64), counts, rngs, seeds,
                               lambda raw, update=False: raw.astype(np.float32),
                               lambda rewards, dones: rewards, engine=engine))
    for fast, slow in zip(*results):
        for name in ("obs", "actions", "log_probs", "values", "next_values", "raw_rewards",
                     "terminated", "truncated", "segment_end"):
            assert np.array_equal(getattr(fast, name), getattr(slow, name)), name
        assert fast.episode_returns == slow.episode_returns
        assert fast.episode_lengths == slow.episode_lengths
        assert fast.trajectory_count == slow.trajectory_count
    assert sum(r.truncated.sum() for r in results[0]) > 0 and sum(r.terminated.sum() for r in results[0]) > 0


def _without_provenance(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.copy()
    ds.attrs = {}
    return ds


@pytest.mark.parametrize("probe, settings", [
    ("gradients", {"sample_counts": [256, 512], "estimates": 3, "reference_samples": 2048,
                   "reference_stream_steps": 512, "chunk_size": 2}),
    ("landscapes-shard", {"alpha_points": 2, "beta_points": 2, "step_sample_counts": [256],
                          "trajectory_counts": [1, 3], "grid_shards": 2}),
])
def test_probe_datasets_identical_on_both_engines(hopper_ppo_checkpoint, tmp_path, monkeypatch,
                                                  probe, settings):
    """A probe at one Hopper checkpoint writes the same dataset on both engines."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1577836800")
    datasets = []
    for engine in ("auto", "gymnasium"):
        monkeypatch.setenv("PGPROBE_SAMPLING_ENGINE", engine)
        out = tmp_path / f"{engine}.shard0.nc" if probe.endswith("shard") else tmp_path / f"{engine}.nc"
        args = ["probe", probe, "--checkpoint", str(hopper_ppo_checkpoint), "--out", str(out),
                "--settings", json.dumps(settings), "--seed", "1", "--workers", "1"]
        if probe.endswith("shard"):
            args += ["--shard", "0"]
        assert main(args) == 0
        datasets.append(open_dataset(out, probe))
    xr.testing.assert_identical(_without_provenance(datasets[0]), _without_provenance(datasets[1]))


def test_engine_choice():
    """MujocoChunk for the v5 locomotion tasks with default observations; gymnasium's path
    for other tasks, non-default observation layouts, extra wrappers, or when forced."""
    assert isinstance(make_chunk([make_env("Hopper-v5")], "auto"), MujocoChunk)
    assert isinstance(make_chunk([make_env("Pendulum-v1")], "auto"), GymnasiumChunk)
    assert isinstance(make_chunk([make_env("Hopper-v5")], "gymnasium"), GymnasiumChunk)
    full_obs = gym.make("Hopper-v5", exclude_current_positions_from_observation=False)
    assert isinstance(make_chunk([full_obs], "auto"), GymnasiumChunk)
    wrapped = gym.wrappers.ClipAction(make_env("Walker2d-v5"))
    assert isinstance(make_chunk([wrapped], "auto"), GymnasiumChunk)
    assert isinstance(make_chunk([make_env("Hopper-v5"), make_env("Walker2d-v5")], "auto"), GymnasiumChunk)


def test_engine_setting(monkeypatch):
    monkeypatch.setenv("PGPROBE_SAMPLING_ENGINE", "gymnasium")
    assert isinstance(make_chunk([make_env("Hopper-v5")]), GymnasiumChunk)
    monkeypatch.setenv("PGPROBE_SAMPLING_ENGINE", "fast")
    with pytest.raises(PgprobeError, match="PGPROBE_SAMPLING_ENGINE='fast': expected one of auto, gymnasium"):
        make_chunk([make_env("Hopper-v5")])


@pytest.mark.parametrize("env_id", ["Hopper-v5", "Humanoid-v5"])
def test_restored_rollouts_identical_on_both_engines(env_id):
    """Rollouts started from restored simulator states (the values probe's true-value
    rollouts, single-episode) and recorded states are the same on both engines."""
    from pgprobe.envs import RestorePoint

    space = make_env(env_id).action_space
    _zero_policy.act_dim = space.shape[0]
    log_std = np.full(space.shape[0], -1.0, np.float32)

    def run(engine, keys, counts, starts=None, record=False, single=False):
        seeds, rngs = zip(*(stream_rngs(k) for k in keys))
        envs = [make_env(env_id) for _ in keys]
        return rollout(envs, _zero_policy, log_std, lambda obs: obs[:, :1].astype(np.float64), counts, rngs,
                       seeds, lambda raw, update=False: raw.astype(np.float32), lambda rewards, dones: rewards,
                       record_states=record, starts=starts, single_episode=single, engine=engine)

    recorded = run("gymnasium", [(4, 0)], [60], record=True)[0]
    clipped = np.clip(recorded.actions, space.low, space.high)
    starts = [RestorePoint(recorded.sim_states[t], recorded.sim_states[t - 1], clipped[t - 1])
              for t in (5, 17, 33)] + [RestorePoint(recorded.sim_states[0])]
    keys, counts = [(8, k) for k in range(4)], [200] * 4
    fast, slow = (run(engine, keys, counts, starts=starts, record=True, single=True)
                  for engine in ("auto", "gymnasium"))
    for a, b in zip(fast, slow):
        for name in ("obs", "actions", "raw_rewards", "terminated", "truncated", "sim_states"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
        assert a.episode_returns == b.episode_returns
