"""Environment construction and the observation / reward normalizers of Table 1.

Normalizers are plain numpy state (no gymnasium wrappers) so that a checkpoint can store
them exactly and probes can apply them frozen.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from .errors import PgprobeError

CLOSED_FORM_ENV_ID = "pgprobe/LinearQuadraticBandit-v0"


def _register_closed_form() -> None:
    if CLOSED_FORM_ENV_ID not in gym.registry:
        gym.register(id=CLOSED_FORM_ENV_ID, entry_point="pgprobe.closed_form:LinearQuadraticBandit",
                     max_episode_steps=None)


_register_closed_form()


def check_env_id(env_id: str) -> gym.spaces.Box:
    """Raise a one-line PgprobeError unless ``env_id`` is a continuous-control task."""
    try:
        spec = gym.spec(env_id)
    except Exception:  # gymnasium raises several error types for unknown / versioned ids
        raise PgprobeError(f"unknown environment id {env_id!r}: expected a gymnasium "
                           "continuous-control task such as Hopper-v5, Walker2d-v5, "
                           "Humanoid-v5, HalfCheetah-v5, Pendulum-v1") from None
    env = make_env(env_id, _checked=True, _spec=spec)
    space = env.action_space
    obs_space = env.observation_space
    env.close()
    if not isinstance(space, gym.spaces.Box):
        raise PgprobeError(f"environment {env_id!r} has a {type(space).__name__} action space: "
                           "expected a continuous (Box) action space")
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise PgprobeError(f"environment {env_id!r} has observation space {obs_space}: "
                           "expected a flat Box observation space")
    return space


def make_env(env_id: str, *, _checked: bool = False, _spec=None) -> gym.Env:
    """``gym.make`` without the passive checker; errors become one-line PgprobeErrors."""
    if not _checked:
        check_env_id(env_id)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return gym.make(env_id, disable_env_checker=True)
    except Exception as exc:
        raise PgprobeError(f"cannot create environment {env_id!r}: "
                           f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                           ) from None


def env_dims(env_id: str) -> tuple[int, int]:
    space = check_env_id(env_id)
    env = make_env(env_id, _checked=True)
    obs_dim = int(np.prod(env.observation_space.shape))
    env.close()
    return obs_dim, int(np.prod(space.shape))


# ---------------------------------------------------------------------------- simulator state
def _mujoco(env):
    base = env.unwrapped
    model, data = getattr(base, "model", None), getattr(base, "data", None)
    if model is None or data is None or not hasattr(base, "_get_obs"):
        return None
    import mujoco

    return (base, model, data) if isinstance(model, mujoco.MjModel) else None


def supports_restore(env) -> bool:
    """True if the simulator state of ``env`` can be captured and restored exactly: MuJoCo
    environments, or any environment whose unwrapped class has ``get_sim_state()`` and
    ``set_sim_state(state) -> observation`` (the closed-form bandit)."""
    base = env.unwrapped
    return _mujoco(env) is not None or (hasattr(base, "get_sim_state") and hasattr(base, "set_sim_state"))


def capture_state(env) -> np.ndarray:
    """The state the next ``step`` starts from.  MuJoCo: the full integration state
    (``mj_getState`` with mjSTATE_INTEGRATION: time, qpos, qvel, act, qacc_warmstart,
    plugin state, mocap, user data, ...), which fixes ``mj_step`` bit for bit."""
    sim = _mujoco(env)
    if sim is None:
        return np.asarray(env.unwrapped.get_sim_state(), np.float64)
    import mujoco

    _, model, data = sim
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(model, spec), np.float64)
    mujoco.mj_getState(model, data, state, spec)
    return state


@dataclass(frozen=True)
class RestorePoint:
    """Where a restored rollout starts: the state captured before step t, and, when step t is
    not the first of its episode, the state and (clipped) action of step t − 1.

    MuJoCo environments compute part of an observation and of the next reward from data
    that ``mj_step`` derives (Humanoid: cinert, cvel, qfrc_actuator, cfrc_ext, the centre of
    mass), and those hold the values of the *previous* step's substeps, not functions of the
    state at t.  So t is restored by setting the integration state of t − 1 and replaying
    the recorded action a_{t−1}: everything ``mj_step`` derives is then exactly the original
    (tests/test_restore.py replays 50 recorded steps on Hopper, Walker2d and Humanoid).  At
    an episode's first step the state is set and ``mj_forward`` run, as the reset did.
    """
    state: np.ndarray
    previous_state: np.ndarray | None = None
    previous_action: np.ndarray | None = None

    def restore(self, env) -> np.ndarray:
        """Put ``env`` (already reset) at this point; returns the raw observation there."""
        sim = _mujoco(env)
        if sim is None:
            return np.asarray(env.unwrapped.set_sim_state(self.state))
        import mujoco

        base, model, data = sim
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        if self.previous_state is None:
            mujoco.mj_setState(model, data, np.asarray(self.state, np.float64), spec)
            mujoco.mj_forward(model, data)
            return np.asarray(base._get_obs())
        mujoco.mj_setState(model, data, np.asarray(self.previous_state, np.float64), spec)
        return np.asarray(base.step(np.asarray(self.previous_action))[0])


class RunningMeanStd:
    """Running mean and variance (Chan et al. parallel update), float64."""

    def __init__(self, shape: tuple[int, ...] = ()):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4

    def update(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch, np.float64).reshape((-1,) + self.mean.shape)
        if batch.shape[0] == 1:  # the per-step case: same formula with batch variance 0
            total = self.count + 1.0
            delta = batch[0] - self.mean
            self.mean = self.mean + delta / total
            self.var = (self.var * self.count + delta * delta * (self.count / total)) / total
            self.count = total
            return
        batch_mean, batch_var, batch_count = batch.mean(0), batch.var(0), batch.shape[0]
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta ** 2 * self.count * batch_count / total
        self.var = m2 / total
        self.count = total

    def state(self) -> dict:
        return {"mean": np.array(self.mean, np.float64), "var": np.array(self.var, np.float64),
                "count": float(self.count)}

    def load(self, state: dict) -> None:
        self.mean = np.asarray(state["mean"], np.float64).copy()
        self.var = np.asarray(state["var"], np.float64).copy()
        self.count = float(state["count"])


class ObservationNormalizer:
    """o ↦ clip((o − μ) / sqrt(σ² + ε), −c, c) with running μ, σ² (Table 1 "state clipping")."""

    def __init__(self, obs_dim: int, enabled: bool, clip: float | None, epsilon: float = 1e-8):
        self.stats = RunningMeanStd((obs_dim,))
        self.enabled = enabled
        self.clip = clip
        self.epsilon = epsilon

    def __call__(self, obs: np.ndarray, update: bool) -> np.ndarray:
        obs = np.asarray(obs, np.float64)
        if not self.enabled:
            return obs.astype(np.float32)
        if update:
            self.stats.update(obs)
        out = (obs - self.stats.mean) / np.sqrt(self.stats.var + self.epsilon)
        if self.clip is not None:
            out = np.clip(out, -self.clip, self.clip)
        return out.astype(np.float32)


class RewardNormalizer:
    """Reward scaling by the running std of the discounted return (Table 1 "reward
    normalization"), then clipping to [−c, c]: r ↦ clip(r / sqrt(Var[R] + ε), −c, c),
    where R_t = γ R_{t−1} + r_t is reset at episode ends."""

    def __init__(self, num_envs: int, gamma: float, enabled: bool, clip: float | None,
                 epsilon: float = 1e-8):
        self.stats = RunningMeanStd(())
        self.returns = np.zeros(num_envs, np.float64)
        self.gamma = gamma
        self.enabled = enabled
        self.clip = clip
        self.epsilon = epsilon

    def __call__(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        rewards = np.asarray(rewards, np.float64)
        if not self.enabled:
            return rewards
        self.returns = self.returns * self.gamma + rewards
        self.stats.update(self.returns)
        out = rewards / np.sqrt(self.stats.var + self.epsilon)
        self.returns[np.asarray(dones, bool)] = 0.0
        if self.clip is not None:
            out = np.clip(out, -self.clip, self.clip)
        return out

    def reset(self) -> None:
        self.returns[:] = 0.0
