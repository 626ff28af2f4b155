"""Stepping engines: how the sampler advances a chunk of environments by one step.

``GymnasiumChunk`` calls each environment's own ``step`` (below its TimeLimit /
OrderEnforcing wrappers when those are the only ones; the sampler applies the time limit).
``MujocoChunk`` steps gymnasium's MuJoCo v5 locomotion tasks (Hopper, Walker2d, HalfCheetah,
Ant, Humanoid) itself: per environment only ``ctrl ← a``, ``mj_step(nstep=frame_skip)``
(plus ``mj_rnePostConstraint`` where the task reads cfrc_ext) on the environment's own
``MjData``, then the observations, rewards and terminations of the whole chunk in
vectorized numpy with exactly gymnasium's arithmetic (same operations, same dtypes, same
summation order), so every quantity is bit-identical to ``env.step``
(tests/test_engine.py).  Resets and restores still go through the gymnasium environment
(its own ``np_random`` draws the reset noise), after which the engine re-reads the state.

``make_chunk(envs)`` picks ``MujocoChunk`` when every environment is one of those tasks with
its default observation layout and no wrapper besides TimeLimit / OrderEnforcing /
PassiveEnvChecker, else ``GymnasiumChunk``.  PGPROBE_SAMPLING_ENGINE=gymnasium forces
gymnasium's path (``auto``, the default, chooses per task).
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from .errors import PgprobeError

ENGINE_VARIABLE = "PGPROBE_SAMPLING_ENGINE"
ENGINE_CHOICES = ("auto", "gymnasium")
_BYPASSABLE_WRAPPERS = ("TimeLimit", "OrderEnforcing", "PassiveEnvChecker")


def engine_setting() -> str:
    """The engine setting from PGPROBE_SAMPLING_ENGINE (default ``auto``)."""
    value = os.environ.get(ENGINE_VARIABLE, "auto").strip().lower() or "auto"
    if value not in ENGINE_CHOICES:
        raise PgprobeError(f"{ENGINE_VARIABLE}={value!r}: expected one of {', '.join(ENGINE_CHOICES)}")
    return value


def direct_stepper(env) -> tuple[object, int | None]:
    """(object whose ``step`` to call, time limit to apply ourselves or None).

    ``gym.make`` wraps an environment in TimeLimit / OrderEnforcing (and, unless disabled,
    PassiveEnvChecker); each wrapper costs a few microseconds per step.  When the chain holds
    only these, the sampler steps ``env.unwrapped`` and applies TimeLimit's truncation itself
    (truncated once the episode has run ``max_episode_steps`` steps), which is exactly what the
    wrappers would do.  Resets still go through the wrapped env.  Any other wrapper: step
    the wrapped env as is.
    """
    limit = None
    layer = env
    while hasattr(layer, "env"):
        name = type(layer).__name__
        if name not in _BYPASSABLE_WRAPPERS:
            return env, None
        if name == "TimeLimit":
            limit = int(layer._max_episode_steps)
        layer = layer.env
    return layer, limit


class GymnasiumChunk:
    """Each environment's own ``step``, one Python call per environment."""

    name = "gymnasium"

    def __init__(self, envs: Sequence):
        self.envs = list(envs)
        steppers = [direct_stepper(env) for env in self.envs]
        self._step_fns = [stepper.step for stepper, _ in steppers]
        self.limits = [limit for _, limit in steppers]

    def reset(self, index: int, seed: int | None = None) -> np.ndarray:
        return self.envs[index].reset(seed=seed)[0] if seed is not None else self.envs[index].reset()[0]

    def restore(self, index: int, start) -> np.ndarray:
        return start.restore(self.envs[index])

    def step(self, rows: Sequence[int], actions: np.ndarray):
        """Step envs ``rows`` with ``actions[k]`` for row k: (obs, rewards, terminated,
        truncated), one entry per row (truncated: by a wrapper the sampler cannot bypass)."""
        count = len(rows)
        obs, rewards = [None] * count, [0.0] * count
        terminated, truncated = [False] * count, [False] * count
        step_fns = self._step_fns
        for k, i in enumerate(rows):
            obs[k], rewards[k], terminated[k], truncated[k], _ = step_fns[i](actions[k])
        return (np.stack(obs), np.array(rewards, np.float64), np.array(terminated, bool),
                np.array(truncated, bool))


# ----------------------------------------------------------------------------- MuJoCo v5 tasks
def _task_classes() -> dict:
    from gymnasium.envs.mujoco import ant_v5, half_cheetah_v5, hopper_v5, humanoid_v5, walker2d_v5

    return {hopper_v5.HopperEnv: "hopper", walker2d_v5.Walker2dEnv: "walker2d",
            half_cheetah_v5.HalfCheetahEnv: "half_cheetah", ant_v5.AntEnv: "ant",
            humanoid_v5.HumanoidEnv: "humanoid"}


def fast_task(env) -> str | None:
    """The ``MujocoChunk`` task name of ``env``, or None if it must keep gymnasium's step:
    an exact v5 class (no subclass), only bypassable wrappers, no rendering, the default
    observation layout."""
    base, _ = direct_stepper(env)
    if base is env and hasattr(env, "env"):          # a wrapper we cannot bypass
        return None
    task = _task_classes().get(type(base))
    if task is None or getattr(base, "render_mode", None) is not None:
        return None
    if not base._exclude_current_positions_from_observation:
        return None
    if task == "humanoid" and not (base._include_cinert_in_observation is True
                                   and base._include_cvel_in_observation is True
                                   and base._include_qfrc_actuator_in_observation is True
                                   and base._include_cfrc_ext_in_observation is True):
        return None
    if task == "ant" and not base._include_cfrc_ext_in_observation:
        return None
    return task


class MujocoChunk:
    """A chunk of one gymnasium MuJoCo v5 task, stepped with physics in C and everything
    else vectorized over the chunk.  Reproduces ``env.step`` of gymnasium 1.x v5 exactly:

    * all: x_velocity = (x_after − x_before)/dt with dt = timestep·frame_skip;
      ctrl_cost = w_ctrl·Σ a² in float32 on the float32 action (Humanoid: in float64 on
      data.ctrl); reward = (forward + healthy) − costs; terminated = ¬healthy ∧ flag.
    * Hopper: obs = [qpos[1:], clip(qvel, ±10)]; healthy ⇔ all of (qpos, qvel)[2:] in the
      open state range, z = qpos[1] and angle = qpos[2] in their open ranges.
    * Walker2d: same obs; healthy ⇔ z, angle in their open ranges.
    * HalfCheetah: obs = [qpos[1:], qvel]; reward = forward − ctrl_cost; never terminates.
    * Ant: obs = [qpos[2:], qvel, clip(cfrc_ext, range)[1:]]; x from the main body's xpos;
      contact_cost = w·Σ clip(cfrc_ext)²; healthy ⇔ finite state and z in the closed range.
    * Humanoid: obs = [qpos[2:], qvel, cinert[1:], cvel[1:], qfrc_actuator[6:],
      cfrc_ext[1:]]; x from the mass centre einsum("b,bj->j", m, xipos)/Σm;
      contact_cost = clip(w·Σ cfrc_ext², range); healthy ⇔ z = qpos[2] in the open range.
    """

    name = "mujoco"

    def __init__(self, envs: Sequence, task: str):
        import mujoco

        self._mujoco = mujoco
        self.envs = list(envs)
        self.task = task
        self.limits = [direct_stepper(env)[1] for env in self.envs]
        self.bases = [env.unwrapped for env in self.envs]
        base = self.bases[0]
        self.model = base.model
        if any(b.model.nq != self.model.nq or b.model.nu != self.model.nu for b in self.bases):
            raise ValueError("a MujocoChunk's environments must share one model layout")
        self.models = [b.model for b in self.bases]
        self.datas = [b.data for b in self.bases]
        self.ctrls = [d.ctrl for d in self.datas]   # views into each MjData (its memory stays put)
        self.frame_skip = int(base.frame_skip)
        self.dt = base.dt
        self.nq, self.nv = int(self.model.nq), int(self.model.nv)
        self.post_constraint = task in ("ant", "humanoid")  # the only tasks that read cfrc_ext
        self.forward_weight = base._forward_reward_weight
        self.ctrl_weight = base._ctrl_cost_weight
        if task != "half_cheetah":
            self.healthy_reward = base._healthy_reward
            self.terminate_when_unhealthy = base._terminate_when_unhealthy
            self.z_range = base._healthy_z_range
        if task == "hopper":
            self.state_range = base._healthy_state_range
        if task in ("hopper", "walker2d"):
            self.angle_range = base._healthy_angle_range
        if task in ("ant", "humanoid"):
            self.contact_weight = base._contact_cost_weight
        if task == "ant":
            self.force_range = base._contact_force_range
            self.main_body = int(self.datas[0].body(base._main_body).id)
        if task == "humanoid":
            self.contact_range = base._contact_cost_range
        if task in ("hopper", "walker2d"):
            # healthy ⇔ lower < x < upper elementwise on the checked entries x of (qpos, qvel):
            # z = qpos[1], angle = qpos[2] (and for Hopper every entry from qpos[2] on, in the
            # state range).  These are gymnasium's own comparisons; where two ranges cover one
            # entry (Hopper's angle) the tighter bound of each side.
            checked = self.nq + self.nv - 1 if task == "hopper" else 2
            lower, upper = np.empty(checked), np.empty(checked)
            if task == "hopper":
                lower[1:], upper[1:] = self.state_range
            lower[0], upper[0] = self.z_range
            lower[1] = max(lower[1], self.angle_range[0]) if task == "hopper" else self.angle_range[0]
            upper[1] = min(upper[1], self.angle_range[1]) if task == "hopper" else self.angle_range[1]
            self._lower, self._upper, self._checked = lower, upper, slice(1, 1 + checked)
        count = len(self.envs)
        self._state_spec = mujoco.mjtState.mjSTATE_QPOS | mujoco.mjtState.mjSTATE_QVEL
        self.state = np.zeros((count, self.nq + self.nv))     # (qpos, qvel) after the last step
        self.position = np.zeros((count, 2))                   # x (and y) the next step starts from
        self.nbody = int(self.model.nbody)
        if task == "ant":
            self.cfrc = np.zeros((count, self.nbody * 6))
        if task == "humanoid":
            # per env, after its last step: xipos, cinert, cvel, qfrc_actuator, cfrc_ext
            # (copied from views into its MjData, whose memory stays put)
            nbody, nv = self.nbody, self.nv
            self.xipos = np.zeros((count, nbody, 3))
            self.cinert = np.zeros((count, nbody, 10))
            self.cvel = np.zeros((count, nbody, 6))
            self.qfrc_actuator = np.zeros((count, nv))
            self.cfrc_ext = np.zeros((count, nbody, 6))
            self._views = [(d.xipos, d.cinert, d.cvel, d.qfrc_actuator, d.cfrc_ext) for d in self.datas]
            self.body_mass = self.model.body_mass
            if any(not np.array_equal(m.body_mass, self.body_mass) for m in self.models):
                raise ValueError("a MujocoChunk's Humanoid environments must share body masses")
        for i in range(count):
            self._after_reset(i)

    # -- per environment: state after a reset / restore / step
    def _read(self, i: int) -> None:
        mujoco, model, data = self._mujoco, self.models[i], self.datas[i]
        mujoco.mj_getState(model, data, self.state[i], self._state_spec)
        task = self.task
        if task == "ant":
            self.position[i] = data.xpos[self.main_body, :2]
            self.cfrc[i] = data.cfrc_ext.reshape(-1)
        elif task == "humanoid":
            xipos, cinert, cvel, qfrc_actuator, cfrc_ext = self._views[i]
            self.xipos[i], self.cinert[i], self.cvel[i] = xipos, cinert, cvel
            self.qfrc_actuator[i], self.cfrc_ext[i] = qfrc_actuator, cfrc_ext
        else:
            self.position[i, 0] = self.state[i, 0]

    def _mass_centre(self, index) -> np.ndarray:
        """Humanoid's x, y of the mass centre, gymnasium's einsum("b,bj->j", m, xipos)/Σm
        (the same contraction order for a stack of environments)."""
        return (np.einsum("b,ebj->ej", self.body_mass, self.xipos[index]) / self.body_mass.sum())[:, 0:2]

    def _after_reset(self, index: int) -> None:
        self._read(index)
        if self.task == "humanoid":
            self.position[index] = self._mass_centre([index])[0]

    def reset(self, index: int, seed: int | None = None) -> np.ndarray:
        env = self.envs[index]
        obs = env.reset(seed=seed)[0] if seed is not None else env.reset()[0]
        self._after_reset(index)
        return obs

    def restore(self, index: int, start) -> np.ndarray:
        obs = start.restore(self.envs[index])
        self._after_reset(index)
        return obs

    def step(self, rows: Sequence[int], actions: np.ndarray):
        """Step envs ``rows`` with the (already clipped, float32) ``actions[k]`` for row k:
        (obs, rewards, terminated, truncated) as gymnasium's ``env.step`` returns them
        (truncated is always False: the time limit is the sampler's)."""
        all_rows = len(rows) == len(self.envs)
        index = slice(None) if all_rows else np.asarray(rows)
        if self.task in ("hopper", "walker2d", "half_cheetah"):   # everything is in (qpos, qvel)
            return self._step_planar(rows, index, actions)
        mujoco, nstep = self._mujoco, self.frame_skip
        mj_step, post = mujoco.mj_step, self.post_constraint
        mj_post = mujoco.mj_rnePostConstraint
        before = self.position[index].copy()
        for k, i in enumerate(rows):
            model, data = self.models[i], self.datas[i]
            data.ctrl[:] = actions[k]
            mj_step(model, data, nstep=nstep)
            if post:
                mj_post(model, data)
            self._read(i)
        state = self.state[index]
        if self.task == "humanoid":
            self.position[index] = self._mass_centre(index)
        velocity = (self.position[index] - before) / self.dt
        x_velocity = velocity[:, 0]
        task = self.task
        actions = np.asarray(actions)
        if task == "humanoid":
            ctrl_cost = self.ctrl_weight * np.sum(np.square(actions.astype(np.float64)), axis=1)
        else:
            ctrl_cost = self.ctrl_weight * np.sum(np.square(actions), axis=1)
        count = state.shape[0]
        truncated = np.zeros(count, bool)
        if task == "ant":
            min_force, max_force = self.force_range
            forces = np.clip(self.cfrc, min_force, max_force)
            if not all_rows:
                forces = forces[index]
            obs = np.concatenate((state[:, 2:], forces[:, 6:]), axis=1)
            min_z, max_z = self.z_range
            z = state[:, 2]
            healthy = np.all(np.isfinite(state), axis=1) & (min_z <= z) & (z <= max_z)
            rewards = x_velocity * self.forward_weight + healthy * self.healthy_reward
            contact_cost = self.contact_weight * np.sum(np.square(forces), axis=1)
            reward = rewards - (ctrl_cost + contact_cost)
        else:  # humanoid
            count = len(state)
            cfrc_ext = self.cfrc_ext[index]
            obs = np.concatenate((state[:, 2:], self.cinert[index][:, 1:].reshape(count, -1),
                                  self.cvel[index][:, 1:].reshape(count, -1), self.qfrc_actuator[index][:, 6:],
                                  cfrc_ext[:, 1:].reshape(count, -1)), axis=1)
            min_z, max_z = self.z_range
            z = state[:, 2]
            healthy = (min_z < z) & (z < max_z)
            min_cost, max_cost = self.contact_range
            contact_cost = np.clip(self.contact_weight * np.sum(np.square(cfrc_ext.reshape(count, -1)), axis=1),
                                   min_cost, max_cost)
            rewards = self.forward_weight * x_velocity + healthy * self.healthy_reward
            reward = rewards - (ctrl_cost + contact_cost)
        terminated = ~healthy & bool(self.terminate_when_unhealthy)
        return obs, reward, terminated, truncated

    def _step_planar(self, rows, index, actions):
        """``step`` for Hopper, Walker2d, HalfCheetah, whose obs, reward and termination
        read (qpos, qvel) alone: as few numpy calls per chunk as the arithmetic allows."""
        mujoco = self._mujoco
        mj_step, get_state, spec, nstep = mujoco.mj_step, mujoco.mj_getState, self._state_spec, self.frame_skip
        state_rows, models, datas, ctrls = self.state, self.models, self.datas, self.ctrls
        x_before = state_rows[index, 0]                  # a copy (fancy index) or a view: copy
        if isinstance(index, slice):
            x_before = x_before.copy()
        for k, i in enumerate(rows):
            data, model = datas[i], models[i]
            ctrls[i][:] = actions[k]
            mj_step(model, data, nstep=nstep)
            get_state(model, data, state_rows[i], spec)
        state = state_rows[index]
        self.position[index, 0] = state[:, 0]
        nq = self.nq
        forward = self.forward_weight * ((state[:, 0] - x_before) / self.dt)
        ctrl_cost = self.ctrl_weight * np.add.reduce(np.square(actions), axis=1)
        obs = state[:, 1:]
        count = len(obs)
        if self.task == "half_cheetah":
            return obs.copy(), forward - ctrl_cost, np.zeros(count, bool), np.zeros(count, bool)
        obs = obs.copy()
        np.minimum(np.maximum(obs[:, nq - 1:], -10, out=obs[:, nq - 1:]), 10, out=obs[:, nq - 1:])
        x = state[:, self._checked]
        healthy = np.logical_and.reduce((self._lower < x) & (x < self._upper), axis=1)
        reward = (forward + healthy * self.healthy_reward) - ctrl_cost
        terminated = ~healthy if self.terminate_when_unhealthy else np.zeros(count, bool)
        return obs, reward, terminated, np.zeros(count, bool)


def make_chunk(envs: Sequence, engine: str | None = None):
    """The stepping engine for ``envs`` (see the module docstring); ``engine`` overrides the
    PGPROBE_SAMPLING_ENGINE setting."""
    engine = engine_setting() if engine is None else engine
    if engine not in ENGINE_CHOICES:
        raise PgprobeError(f"sampling engine {engine!r}: expected one of {', '.join(ENGINE_CHOICES)}")
    if engine == "auto" and envs:
        tasks = {fast_task(env) for env in envs}
        if len(tasks) == 1 and None not in tasks:
            return MujocoChunk(envs, tasks.pop())
    return GymnasiumChunk(envs)
