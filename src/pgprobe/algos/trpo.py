"""TRPO's policy update (eq. 16): maximize the surrogate (eq. 14)

  L(θ) = E[ρ_t(θ) Â_t]  subject to  mean_s KL(π_0(·|s) ‖ π_θ(·|s)) ≤ δ,

by the natural-gradient step s = β F⁻¹g (F the Fisher matrix, g = ∇L at θ_0,
β = sqrt(2δ / sᵀFs)), with F⁻¹g from ``cg_steps`` conjugate-gradient iterations on
damped Fisher-vector products (F + c I)v computed on a ``fisher_fraction`` subset of the
batch, then a backtracking line search that halves the step until the KL constraint holds
and the surrogate improves (else no step).
"""
from __future__ import annotations

import torch

from ..policies import flat_grad, flat_params, gaussian_kl, set_flat_params
from .common import UpdateBatch


def surrogate(policy, batch: UpdateBatch, idx=None) -> torch.Tensor:
    """Eq. (14): mean ρ_t Â_t."""
    obs, actions = batch.obs, batch.actions
    old, adv = batch.old_log_probs, batch.normalized_advantages
    if idx is not None:
        obs, actions, old, adv = obs[idx], actions[idx], old[idx], adv[idx]
    return (torch.exp(policy.log_prob(obs, actions) - old) * adv).mean()


def mean_kl(policy, obs: torch.Tensor, old_mean: torch.Tensor, old_log_std: torch.Tensor) -> torch.Tensor:
    """mean_s KL(π_0(·|s) ‖ π_θ(·|s))."""
    return gaussian_kl(old_mean, old_log_std, policy(obs), policy.log_std).mean()


def conjugate_gradient(matvec, b: torch.Tensor, steps: int, tolerance: float = 1e-10) -> torch.Tensor:
    """Approximately solve A x = b for symmetric positive definite A (``steps`` iterations)."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    for _ in range(steps):
        if rr < tolerance:
            break
        ap = matvec(p)
        alpha = rr / (p @ ap)
        x += alpha * p
        r -= alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def fisher_vector_product_fn(policy, obs: torch.Tensor, damping: float):
    """v ↦ (F + c I) v with F the Hessian of mean KL(π_0 ‖ π_θ) at θ_0 (double backprop)."""
    params = list(policy.parameters())
    with torch.no_grad():
        old_mean = policy(obs)
        old_log_std = policy.log_std.detach().clone()
    kl = mean_kl(policy, obs, old_mean, old_log_std)
    kl_grad = flat_grad(kl, params, create_graph=True)

    def fvp(vector: torch.Tensor) -> torch.Tensor:
        return flat_grad(kl_grad @ vector, params, retain_graph=True) + damping * vector
    return fvp


def natural_gradient_step(policy, batch: UpdateBatch, hp: dict, generator: torch.Generator) -> torch.Tensor:
    """The proposed full step β F⁻¹g (before line search), as a flat vector."""
    params = list(policy.parameters())
    g = flat_grad(surrogate(policy, batch), params)
    count = max(1, int(round(hp["fisher_fraction"] * len(batch))))
    subset = torch.randperm(len(batch), generator=generator)[:count]
    fvp = fisher_vector_product_fn(policy, batch.obs[subset], hp["cg_damping"])
    direction = conjugate_gradient(fvp, g, hp["cg_steps"])
    shs = direction @ fvp(direction)
    if not torch.isfinite(shs) or shs <= 0:
        return torch.zeros_like(direction)
    return torch.sqrt(2 * hp["max_kl"] / shs) * direction


def trpo_policy_update(policy, batch: UpdateBatch, hp: dict, generator: torch.Generator) -> dict:
    """Natural-gradient step with backtracking line search, applied in place.

    Returns the surrogate loss before the step (−L(θ_0)), the accepted step's KL and
    improvement, and how many halvings were needed (−1: no acceptable step, θ unchanged).
    """
    theta0 = flat_params(policy)
    with torch.no_grad():
        old_mean = policy(batch.obs)
        old_log_std = policy.log_std.detach().clone()
        base = surrogate(policy, batch)
    full_step = natural_gradient_step(policy, batch, hp, generator)
    accepted, kl_value, improvement = -1, 0.0, 0.0
    for k in range(hp["backtrack_steps"]):
        set_flat_params(policy, theta0 + hp["backtrack_ratio"] ** k * full_step)
        with torch.no_grad():
            kl = float(mean_kl(policy, batch.obs, old_mean, old_log_std))
            gain = float(surrogate(policy, batch) - base)
        if kl <= hp["max_kl"] and gain > 0:
            accepted, kl_value, improvement = k, kl, gain
            break
    if accepted < 0:
        set_flat_params(policy, theta0)
    return {"policy_loss": -float(base), "kl": kl_value, "improvement": improvement,
            "backtracks": accepted}
