"""The sampler: the fast lockstep rollout equals a plain per-step reference loop (wrapped
env.step, one noise draw per step, TimeLimit truncation), and results are deterministic and
independent of the worker count."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pgprobe.envs import make_env
from pgprobe.policies import GaussianPolicy, NumpyMLP, ValueNet
from pgprobe.sampling import FrozenAgent, StreamSpec, rollout, sample_streams, stream_rngs


def _agent(env_id: str, obs_dim: int, act_dim: int) -> FrozenAgent:
    torch.manual_seed(0)
    policy, value = GaussianPolicy(obs_dim, act_dim, [16, 16]), ValueNet(obs_dim, [16, 16])
    return FrozenAgent(env_id, NumpyMLP(policy.mean_net), np.full(act_dim, -0.5, np.float32), NumpyMLP(value.net),
                       np.zeros(obs_dim), np.ones(obs_dim), True, 10.0, 4.0, True, 10.0, 0.99, 0.95)


def _reference_loop(agent: FrozenAgent, keys: list, counts: list, make=None):
    """The obvious way: wrapped env.step, one noise draw per step and stream, the policy run
    on the whole lockstep batch each step (the same batch shape as the sampler, so the
    float32 forward passes are bitwise comparable).  ``make``: env factory (default make_env)."""
    envs = [(make or make_env)(agent.env_id) for _ in keys]
    seeds, rngs = zip(*(stream_rngs(k) for k in keys))
    raw = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, seeds)]).astype(np.float64)
    std = np.exp(agent.log_std)
    log_norm = float(agent.log_std.sum()) + 0.5 * math.log(2 * math.pi) * agent.log_std.size
    names = ("obs", "actions", "log_probs", "raw_rewards", "terminated", "truncated", "next_values")
    out = [{k: [] for k in names} for _ in keys]
    for t in range(max(counts)):
        obs = agent.observe(raw)
        means = agent.policy_mean(obs)
        for i, env in enumerate(envs):
            if t >= counts[i]:
                continue
            noise = rngs[i].standard_normal(agent.log_std.size, dtype=np.float32)
            action = means[i] + std * noise
            o, reward, term, trunc, _ = env.step(np.clip(action, env.action_space.low, env.action_space.high))
            rec = out[i]
            rec["obs"].append(obs[i])
            rec["actions"].append(action)
            rec["log_probs"].append(-0.5 * float(np.sum(noise.astype(np.float64) ** 2)) - log_norm)
            rec["raw_rewards"].append(reward)
            rec["terminated"].append(term)
            rec["truncated"].append(trunc)
            rec["next_values"].append(float(agent.value(agent.observe(o[None]))[0, 0]))
            if (term or trunc) and t + 1 < counts[i]:
                o, _ = env.reset()
            raw[i] = o
    return [{k: np.asarray(v) for k, v in rec.items()} for rec in out]


@pytest.mark.parametrize("env_id, obs_dim, act_dim, steps", [("Pendulum-v1", 3, 1, 450), ("Hopper-v5", 11, 3, 300)])
def test_rollout_equals_plain_loop(env_id, obs_dim, act_dim, steps):
    agent = _agent(env_id, obs_dim, act_dim)
    keys, counts = [(7, 0), (7, 1), (7, 2)], [steps, steps // 3, steps]
    seeds, rngs = zip(*(stream_rngs(k) for k in keys))
    envs = [make_env(env_id) for _ in keys]
    fast = rollout(envs, agent.policy_mean, agent.log_std, agent.value, counts, rngs, seeds,
                   agent.observe, agent.scale_rewards)
    for got, want in zip(fast, _reference_loop(agent, keys, counts)):
        for name in ("obs", "actions", "log_probs", "raw_rewards", "terminated", "truncated"):
            np.testing.assert_array_equal(getattr(got, name), want[name], err_msg=name)
        live = ~got.terminated  # next_values are meaningless where terminated
        np.testing.assert_allclose(got.next_values[live], want["next_values"][live], rtol=1e-5, atol=1e-6)
    if env_id == "Pendulum-v1":  # 200-step time limit: truncations happened and were bootstrapped
        assert fast[0].truncated.sum() == 2 and fast[0].trajectory_count == 3
        assert fast[0].episode_lengths == [200, 200]


@pytest.mark.parametrize("env_id, obs_dim, act_dim, limit, steps", [("Pendulum-v1", 3, 1, 200, 450),
                                                                   ("Hopper-v5", 11, 3, 12, 40)])
def test_streams_past_the_time_limit_equal_a_loop_without_one(env_id, obs_dim, act_dim, limit, steps):
    """``time_limits`` False (the baselines probe's time-unlimited true value): that env's
    episodes run on where the limit would truncate and reset them, exactly as a plain loop on
    an env without the limit; its neighbours in the chunk keep their limit."""
    import gymnasium as gym

    agent = _agent(env_id, obs_dim, act_dim)
    keys = [(9, 0), (9, 1)]
    seeds, rngs = zip(*(stream_rngs(k) for k in keys))
    envs = [gym.make(env_id, max_episode_steps=limit, disable_env_checker=True) for _ in keys]
    got = rollout(envs, agent.policy_mean, agent.log_std, agent.value, [steps, steps], rngs, seeds,
                  agent.observe, agent.scale_rewards, time_limits=[True, False])
    unlimited = _reference_loop(agent, keys, [steps, steps],
                                make=lambda e: gym.make(e, max_episode_steps=10 ** 6, disable_env_checker=True))
    limited = _reference_loop(agent, keys, [steps, steps],
                              make=lambda e: gym.make(e, max_episode_steps=limit, disable_env_checker=True))
    for name in ("obs", "actions", "raw_rewards", "terminated", "truncated"):
        np.testing.assert_array_equal(getattr(got[0], name), limited[0][name], err_msg=name)
        np.testing.assert_array_equal(getattr(got[1], name), unlimited[1][name], err_msg=name)
    assert got[0].truncated.sum() >= 1 and not got[1].truncated.any()


def test_sample_streams_deterministic_and_worker_independent():
    agent = _agent("Hopper-v5", 11, 3)
    streams = [StreamSpec((3, i), 150 + 50 * (i % 3)) for i in range(6)]
    one = sample_streams(agent, streams, workers=1, chunk_size=2)
    two = sample_streams(agent, streams, workers=2, chunk_size=2)
    for a, b in zip(one, two):
        for name in ("obs", "actions", "log_probs", "rewards", "next_values", "segment_end"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert [r.sample_count for r in one] == [s.step_count for s in streams]
    assert not np.array_equal(one[0].actions[:10], one[1].actions[:10])


def test_single_episode_streams_equal_a_plain_loop_over_running_episodes():
    """Single-episode mode (the landscapes' true reward, the values probe's restored
    rollouts): each stream stops at its first episode's end, and the policy runs on the
    still-running episodes' rows only; a plain loop doing exactly that gives the same
    actions, rewards and episode returns bit for bit."""
    from pgprobe.probes.landscapes import episode_returns

    agent = _agent("Hopper-v5", 11, 3)
    keys = [(3, k) for k in range(5)]
    horizon = 1000
    envs = [make_env("Hopper-v5") for _ in keys]
    seeds, rngs = zip(*(stream_rngs(k) for k in keys))
    raw = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, seeds)]).astype(np.float64)
    std = np.exp(agent.log_std)
    running, returns, lengths, actions = list(range(len(keys))), [0.0] * len(keys), [0] * len(keys), \
        [[] for _ in keys]
    while running:
        means = agent.policy_mean(agent.observe(raw[running]))
        for row, i in enumerate(list(running)):
            action = means[row] + std * rngs[i].standard_normal(3, dtype=np.float32)
            actions[i].append(action)
            o, reward, term, trunc, _ = envs[i].step(np.clip(action, envs[i].action_space.low,
                                                             envs[i].action_space.high))
            returns[i] += reward
            lengths[i] += 1
            raw[i] = o
            if term or trunc:
                running.remove(i)
    assert len(set(lengths)) > 1                       # episodes ended at different steps
    seeds, rngs = zip(*(stream_rngs(k) for k in keys))
    fast = rollout([make_env("Hopper-v5") for _ in keys], agent.policy_mean, agent.log_std, agent.value,
                   [horizon] * len(keys), rngs, seeds, agent.observe, agent.scale_rewards, single_episode=True)
    for i, got in enumerate(fast):
        np.testing.assert_array_equal(got.actions, np.asarray(actions[i]))
        assert got.episode_returns == [returns[i]] and got.episode_lengths == [lengths[i]]
    r, n = episode_returns(agent, keys, chunk_size=len(keys), max_episode_steps=100_000)
    assert list(r) == returns and list(n) == lengths


@pytest.mark.parametrize("env_id, single_episode, counts", [
    ("Hopper-v5", False, [300, 120, 300, 250, 60, 300, 300]),     # uneven, a short last chunk
    ("Hopper-v5", True, [1000] * 7),                               # episodes end at different steps
    ("Pendulum-v1", False, [450, 450, 420, 450, 450, 450, 300]),  # time limits: V(final obs) per chunk
    ("Humanoid-v5", False, [40, 40, 25, 40, 40, 40, 40]),
])
def test_chunks_stepped_together_equal_chunks_run_alone(env_id, single_episode, counts):
    """A worker call steps consecutive chunks in lockstep (rollout's blocks): every stream's
    rollout is bit for bit the one its chunk gives alone (float32 forward passes depend on
    the batch size, so each chunk must still be forwarded as its own batch)."""
    from pgprobe.envs import env_dims
    from pgprobe.sampling import _run_chunk, chunked

    obs_dim, act_dim = env_dims(env_id)
    agent = _agent(env_id, obs_dim, act_dim)
    streams = [StreamSpec((9, i), n, single_episode=single_episode) for i, n in enumerate(counts)]
    alone = [r for chunk in chunked(streams, 3) for r in _run_chunk(agent, chunk, False, None)]
    together = _run_chunk(agent, streams, False, None, block_size=3)
    sampled = sample_streams(agent, streams, workers=1, chunk_size=3)
    fields = ("obs", "actions", "log_probs", "values", "next_values", "rewards", "raw_rewards",
              "terminated", "truncated", "segment_end")
    for a, b, c in zip(alone, together, sampled):
        for name in fields:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
            np.testing.assert_array_equal(getattr(a, name), getattr(c, name), err_msg=name)
        assert a.episode_returns == b.episode_returns == c.episode_returns
    if env_id == "Pendulum-v1":
        assert any(r.truncated.any() for r in alone)


@pytest.mark.parametrize("env_id", ["Hopper-v5", "Walker2d-v5", "Humanoid-v5"])
def test_kept_environments_sample_what_new_ones_sample(env_id, monkeypatch):
    """A process keeps its MuJoCo v5 environments for the next chunk (``gym.make`` costs as
    much as ~50 Hopper steps): after other streams left them mid-episode, a seeded reset makes
    them give every number a new environment gives, simulator states included (time, qacc
    warm start).  Environments whose reset may not restore everything are never kept."""
    from pgprobe import sampling
    from pgprobe.envs import env_dims

    monkeypatch.setattr(sampling, "_ENV_POOL", {})
    obs_dim, act_dim = env_dims(env_id)
    agent = _agent(env_id, obs_dim, act_dim)
    streams = [StreamSpec((4, i), n) for i, n in enumerate([120, 90, 120])]
    new = sampling._run_chunk(agent, streams, True, None)
    assert len(sampling._ENV_POOL[env_id]) == len(streams)
    sampling._run_chunk(agent, [StreamSpec((8, i), 37 + i) for i in range(3)], False, None)
    kept = sampling._run_chunk(agent, streams, True, None)
    fields = ("obs", "actions", "log_probs", "values", "next_values", "rewards", "raw_rewards",
              "terminated", "truncated", "segment_end", "sim_states")
    for a, b in zip(new, kept):
        for name in fields:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert a.episode_returns == b.episode_returns
    pendulum = _agent("Pendulum-v1", 3, 1)
    sampling._run_chunk(pendulum, [StreamSpec((1, 0), 10)], False, None)
    assert sampling._ENV_POOL.get("Pendulum-v1", []) == []
