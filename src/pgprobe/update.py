"""The one update path: the batch an iteration updates on, its learning rates, and the
algorithm's policy update.  Training (``pgprobe.train.Trainer``) and the update-based probes
(steps, landscapes) call exactly these functions, so a probe's θ′ is training's θ′ bit for
bit given the same checkpoint, batch and seed (tests/test_update_path.py).

* ``update_batch(streams, γ, λ)``: per stream GAE advantages A_t (eq. 3's estimator with
  the checkpoint's value net) and discounted returns, concatenated into an ``UpdateBatch``
  (which also holds eq. 15's normalized advantages and eq. 4's targets V_old + A).
* ``learning_rate_fraction(hp, i)``: PPO's linear annealing, 1 − (i − 1)/T at update i of
  T; past the last update (a probe of the final checkpoint) the last rate used, 1/T.
* ``policy_update(algo, policy, optimizer, batch, hp, generator)``: PPO's epochs of
  minibatch Adam on eq. (17), or TRPO's natural-gradient step with line search (eq. 14, 16).
* ``updated_policy(checkpoint, batch, seed)`` / ``update_step``: the policy after update
  i = checkpoint.iteration + 1 from that checkpoint's parameters and optimizer state, and
  the step θ′ − θ0.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from .advantages import discounted_returns, gae
from .algos.common import UpdateBatch
from .algos.ppo import ppo_policy_update
from .algos.trpo import trpo_policy_update
from .errors import PgprobeError
from .policies import flat_params


@dataclass
class StreamBatch:
    """One stream reduced to what an update needs (small enough to cross processes)."""
    obs: np.ndarray
    actions: np.ndarray
    log_probs: np.ndarray
    values: np.ndarray
    advantages: np.ndarray
    returns: np.ndarray
    trajectory_count: int
    episode_lengths: list


def rollout_advantages(rollout, gamma: float, lam: float, values: np.ndarray | None = None,
                       next_values: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(GAE(γ, λ) advantages, discounted returns) of one stream.  ``values``/``next_values``
    replace the sampled value-net predictions (another baseline b): δ_t = r_t + γ b(s_{t+1})
    − b(s_t); b ≡ 0 with λ = 1 gives advantages equal to the returns."""
    values = rollout.values if values is None else values
    next_values = rollout.next_values if next_values is None else next_values
    advantages = gae(rollout.rewards, values, next_values, rollout.terminated, rollout.segment_end, gamma, lam)
    returns = discounted_returns(rollout.rewards, next_values, rollout.terminated, rollout.segment_end, gamma)
    return advantages, returns


def stream_batch(rollout, spec=None, *, gamma: float, lam: float) -> StreamBatch:
    """A stream's update arrays (usable as a ``sample_streams`` reduce: ``spec`` is unused)."""
    advantages, returns = rollout_advantages(rollout, gamma, lam)
    return StreamBatch(rollout.obs, rollout.actions, rollout.log_probs, rollout.values, advantages,
                       returns, rollout.trajectory_count, list(rollout.episode_lengths))


def concatenate(pieces) -> UpdateBatch:
    """One ``UpdateBatch`` from ``StreamBatch`` pieces, in order."""
    cat = lambda xs: np.concatenate(xs, axis=0)  # noqa: E731
    return UpdateBatch.from_arrays(cat([p.obs for p in pieces]), cat([p.actions for p in pieces]),
                                   cat([p.log_probs for p in pieces]), cat([p.values for p in pieces]),
                                   cat([p.advantages for p in pieces]), cat([p.returns for p in pieces]))


def update_batch(rollouts, gamma: float, lam: float) -> UpdateBatch:
    """The batch the algorithm builds from these streams (training's and the probes')."""
    return concatenate([stream_batch(r, gamma=gamma, lam=lam) for r in rollouts])


def learning_rate_fraction(hp: dict, iteration: int) -> float:
    """Multiplier of the base learning rates at update ``iteration`` (1-based): with
    ``anneal_lr``, 1 − (iteration − 1)/T for T = total_iterations, never below 1/T (the
    rate of the last update); else 1."""
    if not hp["anneal_lr"]:
        return 1.0
    total = hp["total_iterations"]
    return max(1.0 - (iteration - 1) / total, 1.0 / total)


def set_learning_rate(optimizer, base_lr: float, fraction: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = fraction * base_lr


def policy_optimizer(policy, hp: dict, state: dict | None = None):
    """PPO's Adam over the policy parameters, restored from a copy of ``state`` when given.

    The copy matters: ``Optimizer.load_state_dict`` keeps the given tensors (exp_avg,
    exp_avg_sq, step) and Adam updates them in place, so without it every update would
    advance the checkpoint's own optimizer state and the next update from "the same
    checkpoint" would start elsewhere (tests/test_update_path.py)."""
    optimizer = torch.optim.Adam(policy.parameters(), lr=hp["policy_lr"], eps=hp["adam_eps"])
    if state:
        optimizer.load_state_dict(copy.deepcopy(state))
    return optimizer


def policy_update(algo: str, policy, optimizer, batch: UpdateBatch, hp: dict,
                  generator: torch.Generator) -> float:
    """The algorithm's policy update in place; returns the policy loss (PPO: −L^CLIP of the
    last epoch; TRPO: −L(θ0))."""
    if algo == "ppo":
        return ppo_policy_update(policy, optimizer, batch, hp, generator)
    if algo == "trpo":
        return trpo_policy_update(policy, batch, hp, generator)["policy_loss"]
    raise ValueError(f"unknown algorithm {algo!r}: expected 'ppo' or 'trpo'")


def update_rule(checkpoint) -> str:
    """The update rule a checkpoint's agent follows: "ppo" / "trpo" for pgprobe's own runs,
    the ``update_rule`` an import recorded (e.g. "sb3_ppo"); a one-line PgprobeError for an
    imported agent whose rule is unknown (the update-based probes cannot run on it)."""
    hp = checkpoint.hyperparameters
    if "update_rule" not in hp:
        return checkpoint.algo
    if hp["update_rule"] is None:
        raise PgprobeError(f"checkpoint {str(checkpoint.path)!r} ({hp.get('source', 'imported')}) has no known "
                           "update rule: the steps and landscapes probes need the algorithm's update; "
                           "the gradients, values and baselines probes still run")
    return hp["update_rule"]


def updated_policy(checkpoint, batch: UpdateBatch, seed: int):
    """A copy of the checkpoint's policy after update ``checkpoint.iteration + 1`` on
    ``batch``: PPO starts from the checkpoint's Adam state at that update's learning rate;
    ``seed`` seeds the generator of the minibatch order (PPO) / Fisher subset (TRPO), which
    training draws from first in its iteration (so training's seed gives training's θ′).
    An imported SB3 PPO agent gets SB3's update (``pgprobe.algos.sb3_ppo``), its minibatch
    order from ``numpy.random.default_rng(seed)``."""
    hp = checkpoint.hyperparameters
    if update_rule(checkpoint) == "sb3_ppo":
        from .algos.sb3_ppo import sb3_ppo_updated_networks

        return sb3_ppo_updated_networks(checkpoint, batch, np.random.default_rng(int(seed)))[0]
    policy = copy.deepcopy(checkpoint.policy)
    policy.train()
    optimizer = policy_optimizer(policy, hp, checkpoint.policy_optimizer_state) if checkpoint.algo == "ppo" else None
    if optimizer is not None:
        set_learning_rate(optimizer, hp["policy_lr"], learning_rate_fraction(hp, checkpoint.iteration + 1))
    generator = torch.Generator().manual_seed(int(seed))
    policy_update(checkpoint.algo, policy, optimizer, batch, hp, generator)
    return policy


def update_step(checkpoint, batch: UpdateBatch, seed: int) -> np.ndarray:
    """The algorithm's actual step θ′ − θ0 (float64, ``flat_params`` order)."""
    theta0 = flat_params(checkpoint.policy)
    return (flat_params(updated_policy(checkpoint, batch, seed)) - theta0).double().numpy()
