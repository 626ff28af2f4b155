"""A closed-form check environment: every quantity the probes estimate is known exactly.

LinearQuadraticBandit: states s are drawn i.i.d. and uniformly from a fixed finite set
{s_1 … s_K} ⊂ R^d, independent of actions; the reward is r(s, a) = −‖a − C s‖²; after
every step the episode terminates with probability p (geometric length, mean 1/p).

For a Gaussian policy with mean μ_θ(s) and std σ:
  m(s)   = E_a[r(s, a)]      = −‖μ_θ(s) − C s‖² − Σ_j σ_j²
  r̄      = mean_k m(s_k)
  J(θ)   = E[Σ_t r_t]         = r̄ / p                     (undiscounted return)
  V(s)   = m(s) + γ(1−p) V̄,   V̄ = r̄ / (1 − γ(1−p))        (discounted value)
  ∇_θ J  = ∇_θ r̄ / p.
Because states do not depend on actions, E[∇log π(a_t|s_t) · Â_t] = ∇_θ r̄ for GAE
advantages with any state-dependent baseline, so the surrogate gradient of eq. (1) points
along ∇_θ J exactly; eq. (15)'s normalization only rescales it.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

OBS_DIM = 3
ACT_DIM = 2
STATE_COUNT = 8
TERMINATION_PROBABILITY = 0.1


def _problem() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20200101)
    states = rng.normal(size=(STATE_COUNT, OBS_DIM)).astype(np.float32)
    gain = rng.normal(size=(ACT_DIM, OBS_DIM)).astype(np.float32)
    return states, gain


STATES, GAIN = _problem()


class LinearQuadraticBandit(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
        self.action_space = gym.spaces.Box(-np.inf, np.inf, (ACT_DIM,), np.float32)
        self._state_index = 0

    def _draw(self) -> np.ndarray:
        self._state_index = int(self.np_random.integers(STATE_COUNT))
        return STATES[self._state_index].copy()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._draw(), {}

    def get_sim_state(self) -> np.ndarray:
        """The current state's index (the restore protocol of ``pgprobe.envs``)."""
        return np.array([self._state_index], np.float64)

    def set_sim_state(self, state) -> np.ndarray:
        """Move to the state with index ``state[0]``; returns its observation.  Later
        states and terminations come from this env's own (freshly seeded) generator."""
        self._state_index = int(np.asarray(state).reshape(-1)[0])
        return STATES[self._state_index].copy()

    def step(self, action):
        target = GAIN @ STATES[self._state_index]
        reward = -float(np.sum((np.asarray(action, np.float64) - target) ** 2))
        terminated = bool(self.np_random.random() < TERMINATION_PROBABILITY)
        return self._draw(), reward, terminated, False, {}


def expected_step_reward(mean_fn, log_std: torch.Tensor, states: np.ndarray | None = None) -> torch.Tensor:
    """m(s) for each state (differentiable). ``mean_fn`` maps a float32 tensor of states
    (as the policy sees them) to action means."""
    states = STATES if states is None else states
    means = mean_fn(torch.as_tensor(states))
    targets = torch.as_tensor(states @ GAIN.T)
    return -((means - targets) ** 2).sum(-1) - torch.exp(2 * log_std).sum()


def expected_return(mean_fn, log_std: torch.Tensor) -> torch.Tensor:
    """J(θ) = r̄ / p, the expected undiscounted episode return."""
    return expected_step_reward(mean_fn, log_std).mean() / TERMINATION_PROBABILITY


def exact_values(mean_fn, log_std: torch.Tensor, states: np.ndarray, gamma: float) -> np.ndarray:
    """V(s) = m(s) + γ(1−p) r̄ / (1 − γ(1−p)) for the given states."""
    with torch.no_grad():
        continuation = gamma * (1 - TERMINATION_PROBABILITY)
        mean_reward = expected_step_reward(mean_fn, log_std).mean()
        per_state = expected_step_reward(mean_fn, log_std, np.asarray(states, np.float32))
        return (per_state + continuation * mean_reward / (1 - continuation)).numpy().astype(np.float64)


def analytic_gradient(policy) -> torch.Tensor:
    """∇_θ J for a ``GaussianPolicy`` (all parameters, flattened, in ``parameters()`` order),
    assuming the policy sees raw states (observation normalization off)."""
    params = list(policy.parameters())
    objective = expected_return(policy.mean_net, policy.log_std)
    grads = torch.autograd.grad(objective, params)
    return torch.cat([g.reshape(-1) for g in grads])
