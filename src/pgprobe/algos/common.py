"""The update batch and the value-network fit shared by PPO and TRPO."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..advantages import normalize


@dataclass
class UpdateBatch:
    """One iteration's samples as flat tensors (N = steps per iteration).

    advantages: GAE A_t; normalized_advantages: eq. (15); value_targets: V_old(s_t) + A_t,
    the regression target of eq. (4); returns: discounted returns R_t.
    """
    obs: torch.Tensor
    actions: torch.Tensor
    old_log_probs: torch.Tensor
    old_values: torch.Tensor
    advantages: torch.Tensor
    normalized_advantages: torch.Tensor
    value_targets: torch.Tensor
    returns: torch.Tensor

    @classmethod
    def from_arrays(cls, obs, actions, log_probs, values, advantages, returns) -> "UpdateBatch":
        f = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32)  # noqa: E731
        advantages = np.asarray(advantages, np.float64)
        return cls(obs=f(obs), actions=f(actions), old_log_probs=f(log_probs), old_values=f(values),
                   advantages=f(advantages), normalized_advantages=f(normalize(advantages)),
                   value_targets=f(np.asarray(values) + advantages), returns=f(returns))

    def __len__(self) -> int:
        return self.obs.shape[0]


def minibatch_indices(size: int, minibatches: int, generator: torch.Generator):
    perm = torch.randperm(size, generator=generator)
    return torch.tensor_split(perm, minibatches)


def fit_value(value_net, optimizer, batch: UpdateBatch, epochs: int, minibatches: int,
              generator: torch.Generator, clip_epsilon: float | None = None,
              max_grad_norm: float | None = None) -> float:
    """Minimize eq. (4), mean (V(s) − (V_old(s) + A))², by minibatch Adam for ``epochs``.

    With ``clip_epsilon`` (PPO), the loss is max((V − y)², (V_old + clip(V − V_old, ±ε) − y)²).
    Returns the mean loss of the last epoch.
    """
    losses = []
    for _ in range(epochs):
        losses = []
        for idx in minibatch_indices(len(batch), minibatches, generator):
            pred = value_net(batch.obs[idx])
            target = batch.value_targets[idx]
            loss = (pred - target) ** 2
            if clip_epsilon is not None:
                old = batch.old_values[idx]
                clipped = old + torch.clamp(pred - old, -clip_epsilon, clip_epsilon)
                loss = torch.maximum(loss, (clipped - target) ** 2)
            loss = loss.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(value_net.parameters(), max_grad_norm)
            optimizer.step()
            losses.append(loss.detach())
    return float(torch.stack(losses).mean())
