"""Where one sampled step's CPU time goes: physics, the environment's Python, the policy and
value forward passes, and the sampler's bookkeeping, per task and per stepping engine,
printed as microseconds per sampled step and as fractions, in one run.

    python bench/step_profile.py [--envs Hopper-v5 Walker2d-v5 Humanoid-v5] [--streams 8]
                                 [--steps 2048] [--engines gymnasium auto]

One chunk of ``--streams`` streams runs ``pgprobe.sampling.rollout`` for ``--steps`` lockstep
steps with a fresh [64, 64] tanh policy and value net (Table 1 architecture, observation and
reward normalization on), exactly as a probe samples.  The engine's ``step``/``reset`` and
the policy and value calls are timed around each call; bookkeeping is the rest of the
rollout.  Physics is ``mj_step`` x frame_skip alone, timed in C by MuJoCo's ``rollout``
module replaying every recorded (state, warm start, control) of the run.  All times
are CPU time of this thread (time.thread_time), robust to other load on shared cores; the environment's
Python is the engine's time minus that physics (for the ``mujoco`` engine: its per-env calls
and the vectorized observation/reward/termination arithmetic; Humanoid's
mj_rnePostConstraint counts there too).  Last, per task, a bare ``gym.make`` ``env.step``
loop and the physics of its own steps: bare / physics bounds the sampler's ratio to bare
``env.step`` (bench/sampler_throughput.py) for any engine whose physics is bit-identical.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import mujoco  # noqa: E402
import mujoco.rollout  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from pgprobe import mujoco_engine  # noqa: E402
from pgprobe.envs import env_dims, make_env  # noqa: E402
from pgprobe.policies import GaussianPolicy, NumpyMLP, ValueNet  # noqa: E402
from pgprobe.sampling import FrozenAgent, rollout, stream_rngs  # noqa: E402


def make_agent(env_id: str) -> FrozenAgent:
    torch.manual_seed(0)
    obs_dim, act_dim = env_dims(env_id)
    policy, value = GaussianPolicy(obs_dim, act_dim, [64, 64]), ValueNet(obs_dim, [64, 64])
    return FrozenAgent(env_id, NumpyMLP(policy.mean_net), np.zeros(act_dim, np.float32), NumpyMLP(value.net),
                       np.zeros(obs_dim), np.ones(obs_dim), True, 10.0, 1.0, True, 10.0, 0.99, 0.95)


class Timed:
    """Wraps a callable and adds its CPU time (thread_time) to ``total``."""

    def __init__(self, fn):
        self.fn, self.total = fn, 0.0

    def __call__(self, *args, **kwargs):
        start = time.thread_time()
        out = self.fn(*args, **kwargs)
        self.total += time.thread_time() - start
        return out


class InstrumentedChunk:
    """The engine's chunk with its step/reset/restore timed, and the MuJoCo state, warm
    start and control of every env step recorded (outside the timing) for the physics replay."""

    def __init__(self, chunk):
        self.chunk, self.limits, self.total, self.recording = chunk, chunk.limits, 0.0, 0.0
        self.envs = chunk.envs
        spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        base = self.envs[0].unwrapped
        self.spec, self.model = spec, base.model
        self.frame_skip = base.frame_skip
        self.states, self.warm, self.ctrl = [], [], []

    def _record(self, rows, actions):
        for k, i in enumerate(rows):
            base = self.envs[i].unwrapped
            state = np.empty(mujoco.mj_stateSize(base.model, self.spec))
            mujoco.mj_getState(base.model, base.data, state, self.spec)
            self.states.append(state)
            self.warm.append(base.data.qacc_warmstart.copy())
            self.ctrl.append(np.asarray(actions[k], np.float64))

    def step(self, rows, actions):
        start = time.thread_time()
        self._record(rows, actions)
        self.recording += time.thread_time() - start
        start = time.thread_time()
        out = self.chunk.step(rows, actions)
        self.total += time.thread_time() - start
        return out

    def reset(self, index, seed=None):
        start = time.thread_time()
        out = self.chunk.reset(index, seed=seed)
        self.total += time.thread_time() - start
        return out

    def restore(self, index, start_point):
        return self.chunk.restore(index, start_point)

    def physics_seconds(self, repeats: int = 3) -> float:
        """min over ``repeats`` of the C time of mj_step x frame_skip from every recorded state."""
        states = np.stack(self.states)
        warm = np.stack(self.warm)
        ctrl = np.stack(self.ctrl)[:, None, :]
        data = mujoco.MjData(self.model)
        out = np.empty((len(states), self.frame_skip, states.shape[1]))
        best = np.inf
        for _ in range(repeats):
            start = time.thread_time()
            mujoco.rollout.rollout(self.model, data, states, ctrl, nstep=self.frame_skip,
                                   initial_warmstart=warm, state=out)
            best = min(best, time.thread_time() - start)
        return best


def profile(env_id: str, engine: str, streams: int, steps: int) -> dict:
    agent = make_agent(env_id)
    envs = [make_env(env_id, _checked=True) for _ in range(streams)]
    seeds, rngs = zip(*(stream_rngs((0, i)) for i in range(streams)))
    policy, value = Timed(agent.policy_mean), Timed(agent.value)
    made = []
    original = mujoco_engine.make_chunk

    def instrumented(envs_, engine_=None):
        made.append(InstrumentedChunk(original(envs_, engine_)))
        return made[-1]

    mujoco_engine.make_chunk = instrumented
    try:
        start = time.thread_time()
        wall = time.perf_counter()
        rollout(envs, policy, agent.log_std, value, [steps] * streams, rngs, seeds,
                agent.observe, agent.scale_rewards, engine=engine)
        total = time.thread_time() - start
        wall = time.perf_counter() - wall
    finally:
        mujoco_engine.make_chunk = original
    chunk = made[0]
    total -= chunk.recording                 # the profile's own state recording is no part of a step
    physics = chunk.physics_seconds()
    pairs = streams * steps
    parts = {"physics": physics, "env python": chunk.total - physics,
             "forward passes": policy.total + value.total,
             "bookkeeping": total - chunk.total - policy.total - value.total}
    wall -= chunk.recording
    return {"engine": chunk.chunk.name, "total_us": total / pairs * 1e6, "wall_us": wall / pairs * 1e6,
            "parts_us": {k: v / pairs * 1e6 for k, v in parts.items()}}


def bare_step_bound(env_id: str, steps: int) -> dict:
    """A bare ``gym.make(env_id)`` loop of ``steps`` uniform random actions (reset at the end
    of each episode): its CPU microseconds per step, and the physics of exactly those steps
    (mj_step x frame_skip in C by mujoco.rollout, as in the profile).  bare / physics is the
    largest ratio to bare ``env.step`` that a sampler computing bit-identical physics can reach
    even with no policy, no environment Python and no bookkeeping at all."""
    import gymnasium

    env = gymnasium.make(env_id)
    base = env.unwrapped
    rng = np.random.default_rng(0)
    low, high = env.action_space.low, env.action_space.high
    actions = rng.uniform(low, high, size=(steps, len(low))).astype(np.float32)
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    states = np.empty((steps, mujoco.mj_stateSize(base.model, spec)))
    warm = np.empty((steps, base.model.nv))
    env.reset(seed=0)
    spent = 0.0
    for t in range(steps):
        mujoco.mj_getState(base.model, base.data, states[t], spec)
        warm[t] = base.data.qacc_warmstart
        start = time.thread_time()
        _, _, terminated, truncated, _ = env.step(actions[t])
        if terminated or truncated:
            env.reset()
        spent += time.thread_time() - start
    data = mujoco.MjData(base.model)
    out = np.empty((steps, base.frame_skip, states.shape[1]))
    physics = np.inf
    for _ in range(3):
        start = time.thread_time()
        mujoco.rollout.rollout(base.model, data, states, actions.astype(np.float64)[:, None, :],
                               nstep=base.frame_skip, initial_warmstart=warm, state=out)
        physics = min(physics, time.thread_time() - start)
    return {"bare_us": spent / steps * 1e6, "physics_us": physics / steps * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["Hopper-v5", "Walker2d-v5", "Humanoid-v5"])
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2048)
    parser.add_argument("--engines", nargs="+", default=["gymnasium", "auto"])
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    import gymnasium

    print(f"commit {commit}; python {platform.python_version()}, numpy {np.__version__}, "
          f"mujoco {mujoco.__version__}, gymnasium {gymnasium.__version__}, torch {torch.__version__}")
    print(f"one chunk of {args.streams} streams x {args.steps} steps; microseconds per sampled "
          "step (fraction of the rollout's CPU time)")
    names = ["physics", "env python", "forward passes", "bookkeeping"]
    print(f"{'env':<13}{'engine':<11}" + "".join(f"{n:>20}" for n in names) + f"{'CPU us':>10}{'wall us':>9}")
    for env_id in args.envs:
        for engine in args.engines:
            row = profile(env_id, engine, args.streams, args.steps)
            cells = "".join(f"{row['parts_us'][n]:>10.2f} ({row['parts_us'][n] / row['total_us']:>5.1%})"
                            for n in names)
            print(f"{env_id:<13}{row['engine']:<11}{cells}{row['total_us']:>10.2f}{row['wall_us']:>9.2f}",
                  flush=True)
    print()
    print("bare gym.make env.step loop (random actions, resets included) and the physics of its own steps:")
    print(f"{'env':<13}{'bare us':>10}{'physics us':>12}{'bound bare/physics':>20}")
    for env_id in args.envs:
        bound = bare_step_bound(env_id, args.streams * args.steps)
        print(f"{env_id:<13}{bound['bare_us']:>10.2f}{bound['physics_us']:>12.2f}"
              f"{bound['bare_us'] / bound['physics_us']:>20.2f}", flush=True)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
