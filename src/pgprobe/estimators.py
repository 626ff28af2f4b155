"""Estimators on sampled rollouts: advantages, surrogate gradients (eq. 1), and update steps.

Gradient of the surrogate at θ0 (eq. 1 with eq. 15's normalization):

  ĝ = (1/n) Σ_i ∇log π_θ(a_i|s_i) · (A_i − μ_A) / σ_A
    = (S_gA − μ_A S_g) / (n σ_A),

with S_gA = Σ ∇log π · A, S_g = Σ ∇log π, μ_A = ΣA / n, σ_A² = ΣA²/n − μ_A².  Those sums
(``GradientSums``) add across shards, so a gathered gradient equals the unsharded one.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

# The update path lives in pgprobe.update (one for training and probes); re-exported here
# for the probes that import it from the estimators.
from .update import rollout_advantages, update_batch, update_step  # noqa: F401


@contextlib.contextmanager
def single_torch_thread():
    """Run torch on one intra-op thread inside the block.  Results then do not depend on the
    machine's thread count (PPO's 320 Adam steps amplify summation-order differences: 4% in
    the step norm, measured), every shard process computes bit-identical steps, and for these
    small MLPs one thread is also ~10x faster on a busy 2-core machine; parallelism comes
    from sampler processes."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass
class GradientSums:
    """Sufficient statistics of the normalized surrogate gradient over n samples."""
    sum_grad_adv: np.ndarray   # Σ ∇log π(a|s) · A
    sum_grad: np.ndarray       # Σ ∇log π(a|s)
    sum_adv: float             # Σ A
    sum_adv_sq: float          # Σ A²
    count: int

    def __add__(self, other: "GradientSums") -> "GradientSums":
        return GradientSums(self.sum_grad_adv + other.sum_grad_adv, self.sum_grad + other.sum_grad,
                            self.sum_adv + other.sum_adv, self.sum_adv_sq + other.sum_adv_sq,
                            self.count + other.count)

    def gradient(self, normalize_advantages: bool = True) -> np.ndarray:
        """ĝ = (S_gA − μ_A S_g) / (n σ_A) (eq. 1 + 15); without normalization S_gA / n."""
        n = self.count
        if not normalize_advantages:
            return self.sum_grad_adv / n
        mean = self.sum_adv / n
        std = np.sqrt(max(self.sum_adv_sq / n - mean ** 2, 0.0)) + 1e-8
        return (self.sum_grad_adv - mean * self.sum_grad) / (n * std)


def gradient_sums(policy, obs: np.ndarray, actions: np.ndarray, advantages: np.ndarray) -> GradientSums:
    """Σ∇log π·A and Σ∇log π over the given samples (two backward passes, float64 sums)."""
    params = list(policy.parameters())
    log_probs = policy.log_prob(torch.as_tensor(obs, dtype=torch.float32),
                                torch.as_tensor(actions, dtype=torch.float32))
    adv = torch.as_tensor(np.asarray(advantages), dtype=torch.float32)
    g_adv = torch.autograd.grad((log_probs * adv).sum(), params, retain_graph=True)
    g_one = torch.autograd.grad(log_probs.sum(), params)
    flat = lambda gs: torch.cat([g.reshape(-1) for g in gs]).double().numpy()  # noqa: E731
    advantages = np.asarray(advantages, np.float64)
    return GradientSums(flat(g_adv), flat(g_one), float(advantages.sum()),
                        float((advantages ** 2).sum()), int(advantages.size))


def surrogate_gradient(policy, obs, actions, advantages) -> np.ndarray:
    """ĝ of eq. (1) with eq. (15)-normalized advantages, flattened over all policy
    parameters (log-std included), in ``policy.parameters()`` order."""
    return gradient_sums(policy, obs, actions, advantages).gradient()
