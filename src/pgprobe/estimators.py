"""Estimators on sampled rollouts: advantages, surrogate gradients (eq. 1), and update steps.

Gradient of the surrogate at θ0 (eq. 1 with eq. 15's normalization):

  ĝ = (1/n) Σ_i ∇log π_θ(a_i|s_i) · (A_i − μ_A) / σ_A
    = (S_gA − μ_A S_g) / (n σ_A),

with S_gA = Σ ∇log π · A, S_g = Σ ∇log π, μ_A = ΣA / n, σ_A² = ΣA²/n − μ_A².  Those sums
(``GradientSums``) add across shards, so a gathered gradient equals the unsharded one.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import numpy as np
import torch

from .advantages import discounted_returns, gae
from .algos.common import UpdateBatch
from .algos.ppo import ppo_policy_update
from .algos.trpo import trpo_policy_update
from .policies import flat_params
from .sampling import Rollout


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


def rollout_advantages(rollout: Rollout, gamma: float, lam: float,
                       values: np.ndarray | None = None,
                       next_values: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(GAE advantages, discounted returns) of one stream.  ``values``/``next_values``
    replace the sampled value-net predictions (another baseline); the zero baseline is
    ``values = next_values = 0`` with λ = 1, which gives advantages equal to returns."""
    values = rollout.values if values is None else values
    next_values = rollout.next_values if next_values is None else next_values
    advantages = gae(rollout.rewards, values, next_values, rollout.terminated, rollout.segment_end, gamma, lam)
    returns = discounted_returns(rollout.rewards, next_values, rollout.terminated, rollout.segment_end, gamma)
    return advantages, returns


def update_batch(rollouts: list[Rollout], gamma: float, lam: float) -> UpdateBatch:
    """The training batch the algorithm would build from these streams."""
    pieces = [rollout_advantages(r, gamma, lam) for r in rollouts]
    cat = lambda xs: np.concatenate(xs, axis=0)  # noqa: E731
    return UpdateBatch.from_arrays(cat([r.obs for r in rollouts]), cat([r.actions for r in rollouts]),
                                   cat([r.log_probs for r in rollouts]), cat([r.values for r in rollouts]),
                                   cat([p[0] for p in pieces]), cat([p[1] for p in pieces]))


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


def update_step(checkpoint, batch: UpdateBatch, seed: int) -> np.ndarray:
    """The algorithm's actual step θ′ − θ0 from ``batch`` at ``checkpoint``.

    PPO: the full multi-epoch minibatch Adam run, starting from the checkpoint's optimizer
    state at the learning rate the next iteration would use; TRPO: the natural-gradient
    step after line search.  ``seed`` fixes minibatch order / the Fisher subset.
    """
    hp = checkpoint.hyperparameters
    policy = copy.deepcopy(checkpoint.policy)
    policy.train()
    theta0 = flat_params(policy)
    generator = torch.Generator().manual_seed(int(seed))
    if checkpoint.algo == "ppo":
        optimizer = torch.optim.Adam(policy.parameters(), lr=hp["policy_lr"], eps=hp["adam_eps"])
        if checkpoint.policy_optimizer_state:
            optimizer.load_state_dict(checkpoint.policy_optimizer_state)
        lr = hp["policy_lr"]
        if hp["anneal_lr"]:  # the next iteration's rate; at the last checkpoint, the last one used
            total = hp["total_iterations"]
            lr *= max(1.0 - checkpoint.iteration / total, 1.0 / total)
        for group in optimizer.param_groups:
            group["lr"] = max(lr, 0.0)
        ppo_policy_update(policy, optimizer, batch, hp, generator)
    else:
        trpo_policy_update(policy, batch, hp, generator)
    return (flat_params(policy) - theta0).double().numpy()
