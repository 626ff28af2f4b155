"""What the importers share: reading MLP layers out of a state dict, building pgprobe's
networks from them, and writing the checkpoint with its provenance."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..checkpoint import file_sha256, load_checkpoint, save_checkpoint
from ..envs import env_dims
from ..errors import PgprobeError
from ..policies import GaussianPolicy, ValueNet


def linear_chain(state: dict, prefix: str, source: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (weight, bias) pairs of an ``nn.Sequential`` of Linear layers at indices 0, 2, 4, …
    (activations between them hold no parameters) stored under ``prefix`` in ``state``;
    one-line PgprobeError when indices or shapes do not form such a chain."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.(weight|bias)$")
    found: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        match = pattern.match(key)
        if match:
            found.setdefault(int(match.group(1)), {})[match.group(2)] = value
    indices = sorted(found)
    if indices != list(range(0, 2 * len(indices), 2)):
        raise PgprobeError(f"{source}: layers {prefix}{indices} are not Linear layers at indices "
                           "0, 2, 4, … with one activation between them")
    chain = []
    for index in indices:
        layer = found[index]
        if set(layer) != {"weight", "bias"}:
            raise PgprobeError(f"{source}: layer {prefix}{index} lacks a weight or a bias")
        weight, bias = layer["weight"], layer["bias"]
        if weight.dim() != 2 or bias.shape != (weight.shape[0],):
            raise PgprobeError(f"{source}: layer {prefix}{index} has weight {tuple(weight.shape)} and "
                               f"bias {tuple(bias.shape)}: expected a Linear layer")
        if chain and chain[-1][0].shape[0] != weight.shape[1]:
            raise PgprobeError(f"{source}: layer {prefix}{index} takes {weight.shape[1]} inputs but the "
                               f"layer before it gives {chain[-1][0].shape[0]}")
        chain.append((weight, bias))
    return chain


def sequential_state(chain: list[tuple[torch.Tensor, torch.Tensor]]) -> dict:
    """State dict of pgprobe's ``mlp`` (Linear layers at indices 0, 2, 4, …) holding ``chain``."""
    state = {}
    for i, (weight, bias) in enumerate(chain):
        state[f"{2 * i}.weight"] = weight.detach().clone().float()
        state[f"{2 * i}.bias"] = bias.detach().clone().float()
    return state


def build_networks(obs_dim: int, act_dim: int, mean_chain: list, log_std: torch.Tensor,
                   value_chain: list, activation: str) -> tuple[GaussianPolicy, ValueNet]:
    """pgprobe's policy and value net holding the given layers (hidden sizes read off them)."""
    policy_hidden = [int(w.shape[0]) for w, _ in mean_chain[:-1]]
    value_hidden = [int(w.shape[0]) for w, _ in value_chain[:-1]]
    policy = GaussianPolicy(obs_dim, act_dim, policy_hidden, activation=activation)
    value_net = ValueNet(obs_dim, value_hidden, activation=activation)
    policy_state = {"log_std": log_std.detach().clone().float().reshape(act_dim)}
    policy_state.update({f"mean_net.{k}": v for k, v in sequential_state(mean_chain).items()})
    policy.load_state_dict(policy_state)
    value_net.load_state_dict({f"net.{k}": v for k, v in sequential_state(value_chain).items()})
    return policy, value_net


def check_env_dims(env_id: str, obs_dim: int, act_dim: int, source: str) -> None:
    """One-line PgprobeError unless ``env_id`` has these observation and action sizes."""
    env_obs, env_act = env_dims(env_id)
    if (env_obs, env_act) != (obs_dim, act_dim):
        raise PgprobeError(f"{source} has observation size {obs_dim} and action size {act_dim}, but "
                           f"--env {env_id} has {env_obs} and {env_act}: expected the task it was trained on")


def normalizer_states(obs_dim: int, obs_mean=None, obs_var=None, obs_count: float = 0.0,
                      return_var: float = 1.0, return_count: float = 0.0) -> tuple[dict, dict]:
    """Observation and reward normalizer states in ``pgprobe.envs.RunningMeanStd.state()`` form."""
    obs = {"mean": np.zeros(obs_dim) if obs_mean is None else np.asarray(obs_mean, np.float64),
           "var": np.ones(obs_dim) if obs_var is None else np.asarray(obs_var, np.float64),
           "count": float(obs_count)}
    reward = {"mean": np.array(0.0), "var": np.array(float(return_var)), "count": float(return_count)}
    return obs, reward


def source_provenance(path: Path, library: str, library_version: str, **extra) -> dict:
    """Provenance of an imported agent: its file, SHA-256, library and version."""
    return {"source_file": str(Path(path).resolve()), "source_sha256": file_sha256(path),
            "library": library, "library_version": library_version,
            "imported_by": f"pgprobe {__version__}", **extra}


def write_imported_checkpoint(out: str | Path, *, env_id: str, algo: str, seed: int, iteration: int,
                              hyperparameters: dict, policy: GaussianPolicy, value_net: ValueNet,
                              optimizer_state: dict, obs_normalizer: dict, reward_normalizer: dict,
                              provenance: dict, next_update: dict | None = None) -> Path:
    """Write the checkpoint (optimizer state in ``policy_optimizer``; see the importer;
    ``next_update``: see ``pgprobe.integrations.sb3``) and load it back once, so that a file
    that pgprobe cannot read is never left behind."""
    out = Path(out)
    save_checkpoint(out, env_id=env_id, algo=algo, seed=seed, iteration=iteration,
                    hyperparameters=hyperparameters, obs_dim=value_net.net[0].in_features,
                    act_dim=policy.log_std.numel(), policy=policy, value_net=value_net,
                    policy_optimizer=optimizer_state, value_optimizer={}, obs_normalizer=obs_normalizer,
                    reward_normalizer=reward_normalizer, fit_batch=None, provenance=provenance,
                    next_update=next_update)
    load_checkpoint(out, expect_env=env_id)
    return out
