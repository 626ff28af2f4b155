"""Stable-Baselines3's PPO update (``PPO.train()``) as a pgprobe update rule.

One Adam over the policy and value parameters minimizes, per minibatch of ``minibatch_size``
samples (the last one smaller when it does not divide the batch), for ``policy_epochs``
passes over a fresh permutation each,

  L = −mean(min(ρ Â, clip(ρ, 1 − ε, 1 + ε) Â)) − c_ent · H + c_vf · mean((R − V̂)²),

with Â the minibatch's advantages normalized by its own mean and (unbiased) std
(``normalize_advantage``), R = V_old + A (the batch's value targets), V̂ = V or, with
``clip_range_vf`` δ, V_old + clip(V − V_old, ±δ); the gradient's global norm over all
parameters is clipped to ``max_grad_norm``.  With ``target_kl``, an epoch stops before the
step whose minibatch has approximate KL mean((ρ − 1) − log ρ) > 1.5 · target_kl, and no
further epoch runs.  Hyperparameters are those ``pgprobe import sb3`` records.  Log-probabilities
and entropy come from ``torch.distributions.Normal`` and the gradient norm is taken in SB3's
parameter order, as SB3 computes them, so that the update is SB3's bit for bit
(tests/test_sb3_callback.py, tests/test_import_sb3.py).
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import PgprobeError
from .common import UpdateBatch

REQUIRED = {"policy_lr": float, "adam_eps": float, "clip_epsilon": float, "vf_coef": float,
            "entropy_coef": float, "max_grad_norm": float, "policy_epochs": int, "minibatch_size": int}


def _check_hyperparameters(hp: dict) -> None:
    for key, kind in REQUIRED.items():
        value = hp.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
            raise PgprobeError(f"SB3 PPO update: hyperparameter {key}={value!r}: expected a constant "
                               f"{'integer' if kind is int else 'number'}")
    for key in ("clip_range_vf", "target_kl"):
        value = hp.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise PgprobeError(f"SB3 PPO update: hyperparameter {key}={value!r}: expected null or a constant number")


def _permutation(generator, size: int) -> np.ndarray:
    """SB3 draws ``np.random.permutation(n)`` per epoch; any object with ``permutation``
    (the ``np.random`` module, a ``np.random.Generator`` or ``RandomState``) or a
    ``torch.Generator`` (``torch.randperm``) gives the order here."""
    if isinstance(generator, torch.Generator):
        return torch.randperm(size, generator=generator).numpy()
    return np.asarray(generator.permutation(size))


def sb3_ppo_update(policy, value_net, optimizer_state: dict, batch: UpdateBatch, hp: dict,
                   generator) -> dict:
    """Apply SB3's PPO update to ``policy`` and ``value_net`` in place.

    ``optimizer_state``: the state dict of one Adam over ``[*policy.parameters(),
    *value_net.parameters()]`` (as ``pgprobe import sb3`` stores it; {} for a fresh one);
    it is not modified (the new state is returned).
    ``batch``: obs, actions, old_log_probs, old_values, advantages (raw GAE), value_targets.
    ``generator``: source of the per-epoch permutations (see ``_permutation``).
    Returns {"optimizer_state", "policy_loss", "value_loss", "entropy_loss" (means over the
    steps taken), "approx_kl" (last epoch), "epochs", "steps"}.
    """
    _check_hyperparameters(hp)
    params = [*policy.parameters(), *value_net.parameters()]
    pi, vf = list(policy.mean_net.parameters()), list(value_net.parameters())
    sb3_order = [policy.log_std, *pi[:-2], *vf[:-2], *pi[-2:], *vf[-2:]]   # SB3's policy.parameters()
    optimizer = torch.optim.Adam(params, lr=float(hp["policy_lr"]), eps=float(hp["adam_eps"]))
    if optimizer_state:   # a copy: load_state_dict keeps the given tensors, step() updates them in place
        optimizer.load_state_dict(copy.deepcopy(optimizer_state))
    for group in optimizer.param_groups:
        group["lr"] = float(hp["policy_lr"])
    clip, clip_vf, target_kl = float(hp["clip_epsilon"]), hp.get("clip_range_vf"), hp.get("target_kl")
    size, count = int(hp["minibatch_size"]), len(batch)
    normalize = bool(hp.get("normalize_advantage", True))
    losses = {"policy_loss": [], "value_loss": [], "entropy_loss": []}
    kls: list[float] = []
    epochs = steps = 0
    for _ in range(int(hp["policy_epochs"])):
        order = _permutation(generator, count)
        kls, stop = [], False
        for start in range(0, count, size):
            idx = torch.as_tensor(order[start:start + size], dtype=torch.long)
            mean = policy(batch.obs[idx])
            normal = torch.distributions.Normal(mean, torch.ones_like(mean) * policy.log_std.exp())
            log_prob = normal.log_prob(batch.actions[idx]).sum(dim=1)
            values = value_net(batch.obs[idx])
            advantages = batch.advantages[idx]
            if normalize and len(advantages) > 1:
                advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
            ratio = torch.exp(log_prob - batch.old_log_probs[idx])
            policy_loss = -torch.min(advantages * ratio,
                                     advantages * torch.clamp(ratio, 1 - clip, 1 + clip)).mean()
            old_values = batch.old_values[idx]
            predicted = values if clip_vf is None else old_values + torch.clamp(
                values - old_values, -float(clip_vf), float(clip_vf))
            value_loss = F.mse_loss(batch.value_targets[idx], predicted)
            entropy_loss = -torch.mean(normal.entropy().sum(dim=1))
            loss = policy_loss + float(hp["entropy_coef"]) * entropy_loss + float(hp["vf_coef"]) * value_loss
            with torch.no_grad():
                log_ratio = log_prob - batch.old_log_probs[idx]
                kls.append(float(torch.mean(torch.exp(log_ratio) - 1 - log_ratio)))
            if target_kl is not None and kls[-1] > 1.5 * float(target_kl):
                stop = True
                break
            for name, value in (("policy_loss", policy_loss), ("value_loss", value_loss),
                                ("entropy_loss", entropy_loss)):
                losses[name].append(value.item())
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(sb3_order, float(hp["max_grad_norm"]))
            optimizer.step()
            steps += 1
        epochs += 1
        if stop:
            break
    mean = lambda xs: float(np.mean(xs)) if xs else float("nan")  # noqa: E731
    return {"optimizer_state": optimizer.state_dict(), **{k: mean(v) for k, v in losses.items()},
            "approx_kl": mean(kls), "epochs": epochs, "steps": steps}


def sb3_ppo_updated_networks(checkpoint, batch: UpdateBatch, generator):
    """(policy, value net, statistics) after SB3's PPO update from an imported checkpoint's
    parameters and Adam state; the checkpoint itself is left untouched.  One-line
    PgprobeError unless its ``update_rule`` is "sb3_ppo" (set by ``pgprobe import sb3``)."""
    rule = checkpoint.hyperparameters.get("update_rule")
    if rule != "sb3_ppo":
        raise PgprobeError(f"checkpoint {str(checkpoint.path)!r} has update rule {rule!r}: expected 'sb3_ppo' "
                           "(an SB3 PPO import with a constant learning rate and clip range)")
    policy, value_net = copy.deepcopy(checkpoint.policy), copy.deepcopy(checkpoint.value_net)
    policy.train()
    value_net.train()
    stats = sb3_ppo_update(policy, value_net, checkpoint.policy_optimizer_state, batch,
                           checkpoint.hyperparameters, generator)
    return policy, value_net, stats
