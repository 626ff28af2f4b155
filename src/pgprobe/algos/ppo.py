"""PPO's policy update: maximize the clipped surrogate (eq. 17),

  L^CLIP(θ) = E[min(ρ_t Â_t, clip(ρ_t, 1 − ε, 1 + ε) Â_t)],  ρ_t = π_θ(a_t|s_t) / π_0(a_t|s_t),

with Â from eq. (15), by ``policy_epochs`` epochs of minibatch Adam.
"""
from __future__ import annotations

import torch

from .common import UpdateBatch, minibatch_indices


def clipped_surrogate(log_probs: torch.Tensor, old_log_probs: torch.Tensor,
                      advantages: torch.Tensor, clip_epsilon: float) -> torch.Tensor:
    """Eq. (17) averaged over the given samples (to be maximized)."""
    ratio = torch.exp(log_probs - old_log_probs)
    clipped = torch.clamp(ratio, 1 - clip_epsilon, 1 + clip_epsilon)
    return torch.minimum(ratio * advantages, clipped * advantages).mean()


def ppo_policy_update(policy, optimizer, batch: UpdateBatch, hp: dict,
                      generator: torch.Generator) -> float:
    """Run the PPO epochs in place; returns the mean policy loss (−L^CLIP) of the last epoch."""
    losses = []
    for _ in range(hp["policy_epochs"]):
        losses = []
        for idx in minibatch_indices(len(batch), hp["minibatches"], generator):
            log_probs = policy.log_prob(batch.obs[idx], batch.actions[idx])
            loss = -clipped_surrogate(log_probs, batch.old_log_probs[idx],
                                      batch.normalized_advantages[idx], hp["clip_epsilon"])
            if hp["entropy_coef"]:
                loss = loss - hp["entropy_coef"] * policy.entropy()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if hp["max_grad_norm"] is not None:
                torch.nn.utils.clip_grad_norm_(policy.parameters(), hp["max_grad_norm"])
            optimizer.step()
            losses.append(loss.detach())
    return float(torch.stack(losses).mean())
