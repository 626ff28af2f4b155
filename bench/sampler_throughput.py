"""Sampler throughput: state-action pairs/s of ``pgprobe.sampling.sample_streams`` on each
stepping engine with one worker and with all workers, against bare gymnasium ``env.step``
with precomputed random actions on one core (and envpool where installed), per task,
printed as ratios in one run.

    python bench/sampler_throughput.py [--envs Hopper-v5 ...] [--streams 16] [--steps 2048]
                                       [--chunk-size 8] [--workers N]
                                       [--envpool-python /tmp/venv/bin/python]

The policy is a freshly initialized Gaussian policy with the checkpoint pipeline's
architecture (Table 1: [64, 64] tanh, observation normalization on); the sampler does
everything a probe's sampling does (normalization, policy and value forward passes, action
noise, log-probs, time-limit bookkeeping).  Engines: ``gymnasium`` (each env's own step),
``auto`` (``pgprobe.mujoco_engine``: the MuJoCo chunk engine on the v5 locomotion tasks).

Two ratios against bare env.step: ``cpu ratio`` = pairs per CPU-second of this process
over bare steps per CPU-second (1 worker samples in-process; robust to other load on the
machine), and ``wall ratio`` = pairs per wall-second over bare steps per wall-second (needs
idle cores; the all-workers column is only meaningful on an otherwise idle machine).
envpool (bench-only, never a pgprobe dependency) runs in ``--envpool-python``'s interpreter:
``num_envs`` = the chunk size, one thread, synchronous steps with random actions.
Targets (issue 24): 1 worker ≥ 1.9× bare env.step on Hopper-v5, ≥ 1.6× on Walker2d-v5,
≥ 1.2× on Humanoid-v5.  ``uptime`` is printed with the results (other agents share the cores).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pgprobe.envs import env_dims, make_env  # noqa: E402
from pgprobe.policies import GaussianPolicy, NumpyMLP, ValueNet  # noqa: E402
from pgprobe.sampling import FrozenAgent, StreamSpec, default_workers, sample_streams  # noqa: E402

ENVPOOL_SCRIPT = r"""
import json, sys, time
import numpy as np
import envpool
env_id, count, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
env = envpool.make(env_id, env_type="gymnasium", num_envs=count, batch_size=count, num_threads=1, seed=0)
env.reset()
low, high = env.action_space.low, env.action_space.high
actions = np.random.default_rng(0).uniform(low, high, (steps // count, count) + low.shape)
wall, cpu = time.perf_counter(), time.process_time()
for action in actions:
    env.step(action)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
total = len(actions) * count
print(json.dumps({"wall": total / wall, "cpu": total / cpu, "version": envpool.__version__}))
"""


def bare_steps_per_second(env_id: str, steps: int) -> tuple[float, float]:
    """(steps per wall-second, steps per CPU-second of this process): gymnasium's wrapped
    env.step with precomputed random actions, reset at episode ends."""
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


def sampler_steps_per_second(agent, streams: int, steps: int, workers: int, chunk_size: int,
                             engine: str) -> tuple[float, float]:
    """(pairs per wall-second, pairs per CPU-second of this process — meaningful for 1
    worker, which samples in-process)."""
    os.environ["PGPROBE_SAMPLING_ENGINE"] = engine   # forked workers inherit it
    specs = [StreamSpec((0, i), steps) for i in range(streams)]
    start, cpu = time.perf_counter(), time.process_time()
    total = sum(sample_streams(agent, specs, workers=workers, chunk_size=chunk_size, reduce=_count))
    return total / (time.perf_counter() - start), total / (time.process_time() - cpu)


def envpool_steps_per_second(python: str | None, env_id: str, count: int, steps: int) -> dict | None:
    if not python:
        return None
    done = subprocess.run([python, "-c", ENVPOOL_SCRIPT, env_id, str(count), str(steps)],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        print(f"envpool failed on {env_id}: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["Hopper-v5", "Walker2d-v5", "Humanoid-v5"])
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2048)
    parser.add_argument("--bare-steps", type=int, default=20000)
    parser.add_argument("--chunk-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--repeats", type=int, default=2,
                        help="measure each configuration this many times (interleaved), keep the best")
    parser.add_argument("--envpool-python", default=None,
                        help="python of a venv with envpool installed (bench-only comparison)")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"commit {commit}; {args.streams} streams x {args.steps} steps, chunk {args.chunk_size}, "
          f"all workers = {args.workers}, best of {args.repeats}")
    print("rates in pairs/s; cpu = per CPU-second of this process (1 worker, robust to load); "
          "wall = per wall-second; ratios against bare gymnasium env.step")
    header = (f"{'env':<13}{'engine':<11}{'bare cpu/s':>11}{'1w cpu/s':>10}{'cpu ratio':>10}"
              f"{'bare wall/s':>12}{'1w wall/s':>10}{'ratio':>7}{f'{args.workers}w wall/s':>11}{'ratio':>7}")
    print(header)
    for env_id in args.envs:
        agent = make_agent(env_id)
        best: dict = {}

        def keep(key, rates):
            best[key] = tuple(max(a, b) for a, b in zip(best.get(key, (0.0, 0.0)), rates))

        for _ in range(args.repeats):      # interleaved, best of --repeats: load comes and goes
            keep("bare", bare_steps_per_second(env_id, args.bare_steps))
            for engine in ("gymnasium", "auto"):
                keep((engine, 1), sampler_steps_per_second(agent, args.streams, args.steps, 1,
                                                           args.chunk_size, engine))
                keep((engine, args.workers), sampler_steps_per_second(agent, args.streams, args.steps,
                                                                      args.workers, args.chunk_size, engine))
        bare_wall, bare_cpu = best["bare"]
        rows = {}
        for engine in ("gymnasium", "auto"):
            (one_wall, one_cpu), (many_wall, _) = best[(engine, 1)], best[(engine, args.workers)]
            rows[engine] = one_cpu
            print(f"{env_id:<13}{engine:<11}{bare_cpu:>11.0f}{one_cpu:>10.0f}{one_cpu / bare_cpu:>10.2f}"
                  f"{bare_wall:>12.0f}{one_wall:>10.0f}{one_wall / bare_wall:>7.2f}"
                  f"{many_wall:>11.0f}{many_wall / bare_wall:>7.2f}", flush=True)
        print(f"{'':<13}{'auto/gymnasium (1 worker, cpu)':<40}{rows['auto'] / rows['gymnasium']:>6.2f}")
        pools = [envpool_steps_per_second(args.envpool_python, env_id, args.chunk_size, args.bare_steps)
                 for _ in range(args.repeats)]
        pool = None if None in pools else {**pools[0], "wall": max(p["wall"] for p in pools),
                                          "cpu": max(p["cpu"] for p in pools)}
        if pool is not None:
            print(f"{'':<13}{'envpool ' + pool['version']:<11}{bare_cpu:>11.0f}{pool['cpu']:>10.0f}"
                  f"{pool['cpu'] / bare_cpu:>10.2f}{bare_wall:>12.0f}{pool['wall']:>10.0f}"
                  f"{pool['wall'] / bare_wall:>7.2f}", flush=True)
    os.environ.pop("PGPROBE_SAMPLING_ENGINE", None)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
