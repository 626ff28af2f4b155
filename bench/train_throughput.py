"""Training throughput on Hopper-v5, one core: pgprobe PPO and TRPO vs bare env.step, and
vs Stable-Baselines3 PPO with the same hyperparameters when SB3 is installed
(``pip install stable-baselines3``; a benchmark-only dependency).

    python bench/train_throughput.py [--iterations 5] [--env Hopper-v5]

Prints env-steps/s and seconds per 2048-step iteration (rollout + 10 epochs), and ratios.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pgprobe.envs import make_env  # noqa: E402
from pgprobe.train import Trainer  # noqa: E402


def bare_env_steps_per_second(env_id: str, steps: int = 20000) -> float:
    env = make_env(env_id)
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(env.action_space.low, env.action_space.high,
                                               (steps,) + env.action_space.shape).astype(np.float32)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def pgprobe_seconds_per_iteration(env_id: str, algo: str, iterations: int) -> tuple[float, float]:
    """(seconds per iteration, seconds of it spent in the rollout)."""
    trainer = Trainer(env_id, algo, 0, {"training": {"iterations": iterations + 1}})
    trainer.step()  # warm-up
    total, sampling = 0.0, 0.0
    for _ in range(iterations):
        start = time.perf_counter()
        trainer.collect(trainer.iteration + 1)
        sampling += time.perf_counter() - start
        start = time.perf_counter()
        trainer.step()
        total += time.perf_counter() - start
    return total / iterations, sampling / iterations


def sb3_seconds_per_iteration(env_id: str, iterations: int) -> float | None:
    try:
        from stable_baselines3 import PPO
        from stable_baselines3.common.env_util import make_vec_env
        from stable_baselines3.common.vec_env import VecNormalize
    except ImportError:
        return None
    venv = VecNormalize(make_vec_env(env_id, n_envs=1, seed=0), clip_obs=10.0, clip_reward=10.0)
    model = PPO("MlpPolicy", venv, n_steps=2048, batch_size=64, n_epochs=10, learning_rate=4.5e-4,
                gamma=0.99, gae_lambda=0.95, clip_range=0.2, ent_coef=0.0, device="cpu", seed=0,
                policy_kwargs={"net_arch": {"pi": [64, 64], "vf": [64, 64]}, "activation_fn": torch.nn.Tanh})
    model.learn(total_timesteps=2048)  # warm-up
    start = time.perf_counter()
    model.learn(total_timesteps=2048 * iterations, reset_num_timesteps=False)
    return (time.perf_counter() - start) / iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--env", default="Hopper-v5")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bare = bare_env_steps_per_second(args.env)
    print(f"bare env.step ({args.env}, random actions): {bare:9.0f} steps/s")
    results = {}
    for algo in ("ppo", "trpo"):
        seconds, sampling = pgprobe_seconds_per_iteration(args.env, algo, args.iterations)
        # the timed step() repeats a rollout, so subtract nothing: `seconds` is one full iteration
        results[algo] = seconds
        steps_per_s = 2048 / seconds
        print(f"pgprobe {algo.upper():4s}: {seconds:6.3f} s/iteration  ({sampling:5.3f} s rollout), "
              f"{steps_per_s:7.0f} env-steps/s = {steps_per_s / bare:5.2f}x bare env.step; "
              f"rollout alone {2048 / sampling / bare:4.2f}x bare")
    sb3 = sb3_seconds_per_iteration(args.env, args.iterations)
    if sb3 is None:
        print("stable-baselines3 not installed: skipping the SB3 comparison")
    else:
        print(f"SB3 PPO    : {sb3:6.3f} s/iteration, {2048 / sb3:7.0f} env-steps/s")
        print(f"ratio pgprobe PPO / SB3 PPO seconds per iteration: {results['ppo'] / sb3:5.2f} "
              "(< 1 means pgprobe is faster)")


if __name__ == "__main__":
    main()
