"""Generalized advantage estimation (Schulman et al. 2015c) and discounted returns.

Inputs are time-major arrays of one rollout, shape (T, E) for E parallel streams.
``next_values[t]`` is V(s_{t+1}) where the step did not terminate: the value of the
next state inside an episode, the value of the final observation at a time-limit
truncation (bootstrap), or V(s_T) after the last step of the rollout; it is ignored where
``terminated[t]``.  ``segment_end[t]`` marks the end of a trajectory segment (episode
end or rollout end), where the recursion is cut:

  δ_t = r_t + γ (1 − term_t) V(s_{t+1}) − V(s_t)
  A_t = δ_t + γ λ (1 − end_t) A_{t+1}
  R_t = r_t + γ (1 − end_t) R_{t+1} + γ end_t (1 − term_t) V(s_{t+1})
"""
from __future__ import annotations

import numpy as np


def gae(rewards, values, next_values, terminated, segment_end, gamma: float, lam: float) -> np.ndarray:
    rewards, values, next_values = (np.asarray(x, np.float64) for x in (rewards, values, next_values))
    nonterminal = 1.0 - np.asarray(terminated, np.float64)
    continues = 1.0 - np.asarray(segment_end, np.float64)
    deltas = rewards + gamma * nonterminal * next_values - values
    advantages = np.zeros_like(deltas)
    running = np.zeros_like(deltas[0])
    for t in range(len(deltas) - 1, -1, -1):
        running = deltas[t] + gamma * lam * continues[t] * running
        advantages[t] = running
    return advantages


def discounted_returns(rewards, next_values, terminated, segment_end, gamma: float) -> np.ndarray:
    """Discounted return R_t of the remaining segment, bootstrapped with V only where a
    segment ends without termination (time limit or rollout end)."""
    rewards, next_values = np.asarray(rewards, np.float64), np.asarray(next_values, np.float64)
    nonterminal = 1.0 - np.asarray(terminated, np.float64)
    ends = np.asarray(segment_end, np.float64)
    returns = np.zeros_like(rewards)
    running = np.zeros_like(rewards[0])
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * ((1 - ends[t]) * running + ends[t] * nonterminal[t] * next_values[t])
        returns[t] = running
    return returns


def normalize(advantages: np.ndarray, epsilon: float = 1e-8) -> np.ndarray:
    """Eq. (15): Â = (A − μ(A)) / σ(A)."""
    return (advantages - advantages.mean()) / (advantages.std() + epsilon)
