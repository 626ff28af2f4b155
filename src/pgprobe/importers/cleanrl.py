"""Import a CleanRL ``ppo_continuous_action.py`` agent (its ``.cleanrl_model`` file).

The file is ``torch.save(agent.state_dict())`` of CleanRL's ``Agent``: ``actor_mean`` and
``critic`` (``nn.Sequential`` of Linear layers with an activation between them, any sizes)
and ``actor_logstd`` (shape (1, act_dim)).  It holds neither the activation (tanh in
``ppo_continuous_action.py``: ``--activation``) nor the observation statistics of the
``NormalizeObservation`` wrapper that script trains with: ``--obs-stats STATS.npz`` gives
them (``mean``, ``var``, ``clip``; optionally ``return_var`` and ``reward_clip`` of
``NormalizeReward``, ``epsilon``), ``--raw-observations`` says the agent saw raw ones.
"""
from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import PgprobeError
from .common import (build_networks, check_env_dims, linear_chain, normalizer_states,
                     source_provenance, write_imported_checkpoint)

LIBRARY = "cleanrl"
# ppo_continuous_action.py's defaults (its Args): used unless given.
CLEANRL_DEFAULTS = {"gamma": 0.99, "gae_lambda": 0.95, "num_steps": 2048}


def read_state_dict(path: Path) -> dict:
    where = f"CleanRL model {str(path)!r}"
    if not path.is_file():
        raise PgprobeError(f"{where} not found")
    from ..checkpoint import safe_torch_load

    state = safe_torch_load(path, where)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PgprobeError(f"{where} is not a state dict of tensors: expected torch.save(agent.state_dict())")
    return state


def read_obs_stats(path: str | Path, obs_dim: int) -> dict:
    """mean, var (obs_dim,), clip; optional return_var, reward_clip, epsilon (allow_pickle=False)."""
    path = Path(path)
    where = f"--obs-stats {str(path)!r}"
    if not path.is_file():
        raise PgprobeError(f"{where} not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: np.asarray(npz[k]) for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise PgprobeError(f"{where} is not a readable .npz without pickles: "
                           f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    allowed = {"mean", "var", "clip", "return_var", "reward_clip", "epsilon"}
    unknown = sorted(set(arrays) - allowed)
    if unknown:
        raise PgprobeError(f"{where}: unknown array {unknown[0]!r}: expected {', '.join(sorted(allowed))}")
    for key in ("mean", "var", "clip"):
        if key not in arrays:
            raise PgprobeError(f"{where} lacks {key!r}: expected arrays mean, var ({obs_dim},) and clip")
    for key in ("mean", "var"):
        if arrays[key].shape != (obs_dim,) or not np.isfinite(arrays[key]).all():
            raise PgprobeError(f"{where}: {key} has shape {arrays[key].shape}: expected {obs_dim} finite numbers")
    if (arrays["var"] < 0).any():
        raise PgprobeError(f"{where}: var has negative entries")
    stats = {"mean": arrays["mean"].astype(np.float64), "var": arrays["var"].astype(np.float64)}
    for key in ("clip", "return_var", "reward_clip", "epsilon"):
        if key in arrays:
            value = arrays[key]
            if value.size != 1 or not math.isfinite(float(value.reshape(()))) or float(value.reshape(())) <= 0:
                raise PgprobeError(f"{where}: {key} = {value.tolist()!r}: expected one positive number")
            stats[key] = float(value.reshape(()))
    return stats


def import_cleanrl(model: str | Path, env_id: str, out: str | Path, obs_stats: str | Path | None = None,
                   raw_observations: bool = False, activation: str = "tanh",
                   gamma: float = CLEANRL_DEFAULTS["gamma"], gae_lambda: float = CLEANRL_DEFAULTS["gae_lambda"],
                   num_steps: int = CLEANRL_DEFAULTS["num_steps"], seed: int = 0, iteration: int = 0,
                   name: str | None = None, steps: int | None = None) -> Path:
    """Write ``out``: the pgprobe checkpoint of the CleanRL agent in ``model``.  Exactly one of
    ``obs_stats`` / ``raw_observations`` must be given (the file cannot tell which applies).
    ``steps``: the environment steps S it was saved at (a series member): iteration ⌊S /
    num_steps⌋ (saved after that iteration's update); without it, ``iteration`` and
    S = iteration · num_steps."""
    if steps is not None:
        iteration = int(steps) // int(num_steps)
    model = Path(model)
    where = f"CleanRL model {str(model)!r}"
    if obs_stats is None and not raw_observations:
        raise PgprobeError(f"{where} holds no observation statistics: pass --obs-stats STATS.npz (mean, var, "
                           "clip of the NormalizeObservation wrapper ppo_continuous_action.py trains with), "
                           "or --raw-observations if the agent was trained without it")
    if obs_stats is not None and raw_observations:
        raise PgprobeError("--obs-stats and --raw-observations contradict each other: give one")
    if activation not in ("tanh", "relu"):
        raise PgprobeError(f"--activation {activation!r}: expected tanh or relu")
    state = read_state_dict(model)
    unknown = [k for k in state if not (k == "actor_logstd" or k.startswith("actor_mean.")
                                        or k.startswith("critic."))]
    if unknown or "actor_logstd" not in state:
        raise PgprobeError(f"{where}: {'unexpected entry ' + repr(unknown[0]) if unknown else 'no actor_logstd'}: "
                           "expected ppo_continuous_action.py's Agent (actor_mean, actor_logstd, critic)")
    mean_chain = linear_chain(state, "actor_mean.", where)
    value_chain = linear_chain(state, "critic.", where)
    if not mean_chain or not value_chain or len(mean_chain) * 2 + len(value_chain) * 2 != len(state) - 1:
        raise PgprobeError(f"{where}: actor_mean and critic must be Sequentials of Linear layers and activations")
    obs_dim, act_dim = int(mean_chain[0][0].shape[1]), int(mean_chain[-1][0].shape[0])
    log_std = state["actor_logstd"]
    if log_std.numel() != act_dim or log_std.dim() > 2:
        raise PgprobeError(f"{where}: actor_logstd has shape {tuple(log_std.shape)}: expected (1, {act_dim}), "
                           "a state-independent log-std")
    if value_chain[0][0].shape[1] != obs_dim or value_chain[-1][0].shape[0] != 1:
        raise PgprobeError(f"{where}: critic maps {value_chain[0][0].shape[1]} inputs to "
                           f"{value_chain[-1][0].shape[0]} outputs: expected {obs_dim} to 1")
    check_env_dims(env_id, obs_dim, act_dim, where)
    stats = read_obs_stats(obs_stats, obs_dim) if obs_stats is not None else None
    hp = {
        "source": LIBRARY, "policy_hidden": [int(w.shape[0]) for w, _ in mean_chain[:-1]],
        "value_hidden": [int(w.shape[0]) for w, _ in value_chain[:-1]], "activation": activation,
        "init": "orthogonal", "gamma": float(gamma), "gae_lambda": float(gae_lambda),
        "num_envs": 1, "steps_per_iteration": int(num_steps),
        "normalize_observations": stats is not None, "obs_clip": stats["clip"] if stats else None,
        "normalize_rewards": bool(stats and "return_var" in stats),
        "reward_clip": stats.get("reward_clip") if stats else None,
        "normalizer_epsilon": stats.get("epsilon", 1e-8) if stats else 1e-8,
        "update_rule": None,
    }
    policy, value_net = build_networks(obs_dim, act_dim, mean_chain, log_std, value_chain, activation)
    if stats is not None:
        obs_norm, reward_norm = normalizer_states(obs_dim, stats["mean"], stats["var"],
                                                  return_var=stats.get("return_var", 1.0))
    else:
        obs_norm, reward_norm = normalizer_states(obs_dim)
    extra = {"algorithm": "PPO (ppo_continuous_action.py)",
             "env_steps": int(steps) if steps is not None else int(iteration) * int(num_steps), **({"agent_name": name} if name else {})}
    if obs_stats is not None:
        from ..checkpoint import file_sha256
        extra.update({"obs_stats_file": str(Path(obs_stats).resolve()), "obs_stats_sha256": file_sha256(obs_stats)})
    return write_imported_checkpoint(
        out, env_id=env_id, algo="ppo", seed=seed, iteration=iteration, hyperparameters=hp, policy=policy,
        value_net=value_net, optimizer_state={}, obs_normalizer=obs_norm, reward_normalizer=reward_norm,
        provenance=source_provenance(model, LIBRARY, "unknown (not recorded in .cleanrl_model)", **extra))
