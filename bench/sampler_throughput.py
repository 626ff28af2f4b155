"""Sampler throughput: state-action pairs/s of ``pgprobe.sampling.sample_streams`` with one
worker and with all workers, against bare ``env.step`` with precomputed random actions on
one core, for Hopper-v5, Walker2d-v5 and Humanoid-v5, printed as ratios in one run.

    python bench/sampler_throughput.py [--envs Hopper-v5 ...] [--streams 16] [--steps 2048]
                                       [--chunk-size 8] [--workers N]

The policy is a freshly initialized Gaussian policy with the checkpoint pipeline's
architecture (Table 1: [64, 64] tanh, observation normalization on); the sampler does
everything a probe's sampling does (normalization, policy and value forward passes, action
noise, log-probs, time-limit bookkeeping).  Targets (issue): 1 worker ≥ 0.8× bare env.step
on Hopper-v5; 2 workers ≥ 1.6×.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pgprobe.envs import env_dims, make_env  # noqa: E402
from pgprobe.policies import GaussianPolicy, NumpyMLP, ValueNet  # noqa: E402
from pgprobe.sampling import FrozenAgent, StreamSpec, default_workers, sample_streams  # noqa: E402


def bare_steps_per_second(env_id: str, steps: int) -> tuple[float, float]:
    """(steps per wall-second, steps per CPU-second of this process)."""
    env = make_env(env_id)
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(env.action_space.low, env.action_space.high,
                                               (steps,) + env.action_space.shape).astype(np.float32)
    start, cpu = time.perf_counter(), time.process_time()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start), steps / (time.process_time() - cpu)


def make_agent(env_id: str) -> FrozenAgent:
    torch.manual_seed(0)
    obs_dim, act_dim = env_dims(env_id)
    policy, value = GaussianPolicy(obs_dim, act_dim, [64, 64]), ValueNet(obs_dim, [64, 64])
    return FrozenAgent(env_id, NumpyMLP(policy.mean_net), np.zeros(act_dim, np.float32), NumpyMLP(value.net),
                       np.zeros(obs_dim), np.ones(obs_dim), True, 10.0, 1.0, True, 10.0, 0.99, 0.95)


def _count(rollout, spec):  # reduce: keep IPC out of the measurement, as the probes do
    return rollout.sample_count


def sampler_steps_per_second(agent, streams: int, steps: int, workers: int, chunk_size: int) -> tuple[float, float]:
    """(steps per wall-second, steps per CPU-second of this process — meaningful for 1 worker,
    which samples in-process)."""
    specs = [StreamSpec((0, i), steps) for i in range(streams)]
    start, cpu = time.perf_counter(), time.process_time()
    total = sum(sample_streams(agent, specs, workers=workers, chunk_size=chunk_size, reduce=_count))
    return total / (time.perf_counter() - start), total / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["Hopper-v5", "Walker2d-v5", "Humanoid-v5"])
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2048)
    parser.add_argument("--chunk-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=default_workers())
    args = parser.parse_args()
    print(f"{args.streams} streams x {args.steps} steps, chunk {args.chunk_size}, "
          f"all workers = {args.workers}")
    print("wall-clock rates (ratio = sampler / bare env.step); cpu ratio = the same per CPU-second "
          "(robust to other load on the machine; 1 worker only)")
    print(f"{'env':<14}{'bare/s':>10}{'1 worker/s':>12}{'ratio':>8}{'cpu ratio':>11}"
          f"{f'{args.workers} workers/s':>14}{'ratio':>8}")
    for env_id in args.envs:
        agent = make_agent(env_id)
        bare, bare_cpu = bare_steps_per_second(env_id, 20000)
        one, one_cpu = sampler_steps_per_second(agent, args.streams, args.steps, 1, args.chunk_size)
        many, _ = sampler_steps_per_second(agent, args.streams, args.steps, args.workers, args.chunk_size)
        print(f"{env_id:<14}{bare:>10.0f}{one:>12.0f}{one / bare:>8.2f}{one_cpu / bare_cpu:>11.2f}"
              f"{many:>14.0f}{many / bare:>8.2f}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average at the end: {load:.1f} on {os.cpu_count()} CPUs (worker ratios need idle cores)")


if __name__ == "__main__":
    main()
