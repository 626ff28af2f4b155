"""Checkpoints: everything needed to reproduce the next update exactly, loaded safely.

A checkpoint is a ``torch.save`` dict of tensors, plain numbers and strings, read back with
``torch.load(weights_only=True)`` so that a file can never run code.  All randomness of
iteration i is derived from (seed, i) (see ``pgprobe.train``), so no RNG state needs saving.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .atomic import atomic_output
from .errors import PgprobeError
from .policies import ACTIVATIONS, GaussianPolicy, NumpyMLP, ValueNet, flat_params
from .sampling import FrozenAgent

FORMAT = "pgprobe-checkpoint-v1"


def atomic_torch_save(obj, path: str | Path) -> None:
    """torch.save through pgprobe.atomic.atomic_output (temporary file, fsync, rename)."""
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _to_tensor_tree(obj):
    if isinstance(obj, (np.ndarray, np.generic)):
        return torch.from_numpy(np.array(obj))
    if isinstance(obj, dict):
        return {k: _to_tensor_tree(v) for k, v in obj.items()}
    return obj


def _optimizer_state(optimizer) -> dict:
    """An optimizer's state dict; a state dict given as such (imports); {} for None."""
    if optimizer is None:
        return {}
    return optimizer if isinstance(optimizer, dict) else optimizer.state_dict()


def save_checkpoint(path: str | Path, *, env_id: str, algo: str, seed: int, iteration: int,
                    hyperparameters: dict, obs_dim: int, act_dim: int, policy, value_net,
                    policy_optimizer, value_optimizer, obs_normalizer: dict,
                    reward_normalizer: dict, fit_batch: dict | None,
                    provenance: dict | None = None, next_update: dict | None = None) -> None:
    """Write a checkpoint.  The networks' architecture is read back from ``hyperparameters``
    (``policy_hidden``, ``value_hidden``, ``activation``, default "tanh").  ``provenance``
    (imported agents: source file, SHA-256, library and version) is stored as JSON.
    ``next_update``: the batch and minibatch-order state of the agent's next update, when
    its trainer saved them (``pgprobe.integrations.sb3``)."""
    from .versions import package_versions

    payload = {
        "format": FORMAT,
        "package_version": __version__,
        "versions_json": json.dumps(package_versions(), sort_keys=True),
        "env_id": env_id, "algo": algo, "seed": int(seed), "iteration": int(iteration),
        "hyperparameters_json": json.dumps(hyperparameters, sort_keys=True),
        "obs_dim": int(obs_dim), "act_dim": int(act_dim),
        "policy": policy.state_dict(), "value": value_net.state_dict(),
        "policy_optimizer": _optimizer_state(policy_optimizer),
        "value_optimizer": _optimizer_state(value_optimizer),
        "obs_normalizer": _to_tensor_tree(obs_normalizer),
        "reward_normalizer": _to_tensor_tree(reward_normalizer),
        "fit_batch": _to_tensor_tree(fit_batch) if fit_batch is not None else {},
    }
    if next_update:
        payload["next_update"] = _to_tensor_tree(next_update)
    if provenance is not None:
        payload["provenance_json"] = json.dumps(provenance, sort_keys=True)
    atomic_torch_save(payload, path)


@dataclass
class Checkpoint:
    """A loaded checkpoint: networks (in eval mode), normalizer states and metadata.

    ``fit_batch`` holds the batch the value net was last fit on (empty at iteration 0):
    obs, actions, log_probs, values (V_old), advantages (GAE), returns.
    ``provenance``: where an imported agent came from (empty for agents pgprobe trained).
    ``versions``: the package versions that wrote it (``pgprobe.versions``; empty for
    checkpoints written before versions were recorded).
    ``next_update``: the rollout buffer and minibatch-order state of the next update (SB3
    callback checkpoints; empty otherwise).
    """
    path: Path
    env_id: str
    algo: str
    seed: int
    iteration: int
    hyperparameters: dict
    obs_dim: int
    act_dim: int
    policy: GaussianPolicy
    value_net: ValueNet
    policy_optimizer_state: dict
    value_optimizer_state: dict
    obs_normalizer: dict
    reward_normalizer: dict
    fit_batch: dict
    sha256: str
    provenance: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    next_update: dict = field(default_factory=dict)

    @property
    def env_steps(self) -> int:
        """Environment steps of training when it was saved: an import's recorded step count,
        else iteration × steps_per_iteration."""
        recorded = self.provenance.get("env_steps")
        if isinstance(recorded, int):
            return recorded
        return int(self.iteration) * int(self.hyperparameters.get("steps_per_iteration", 0))

    @property
    def label(self) -> str:
        """The datasets' ``algo`` coordinate: an imported agent's name (``pgprobe import
        --name``), else the algorithm."""
        return self.provenance.get("agent_name") or self.algo

    @property
    def source(self) -> str:
        """Where the agent was trained: "pgprobe", or the importing library ("stable-baselines3", ...)."""
        return self.provenance.get("library", "pgprobe")

    def frozen_agent(self) -> FrozenAgent:
        """The numpy sampling view of this checkpoint's policy, value net and normalizers."""
        hp = self.hyperparameters
        return FrozenAgent(
            env_id=self.env_id, policy_mean=NumpyMLP(self.policy.mean_net),
            log_std=self.policy.log_std.detach().numpy().astype(np.float32).copy(),
            value=NumpyMLP(self.value_net.net),
            obs_mean=np.asarray(self.obs_normalizer["mean"], np.float64),
            obs_var=np.asarray(self.obs_normalizer["var"], np.float64),
            obs_normalize=bool(hp["normalize_observations"]), obs_clip=hp["obs_clip"],
            reward_var=float(np.asarray(self.reward_normalizer["var"])),
            reward_normalize=bool(hp["normalize_rewards"]), reward_clip=hp["reward_clip"],
            gamma=float(hp["gamma"]), gae_lambda=float(hp["gae_lambda"]),
            epsilon=float(hp.get("normalizer_epsilon", 1e-8)))

    def require_finite(self) -> None:
        """Probes refuse checkpoints whose parameters are NaN or infinite."""
        for name, module in (("policy", self.policy), ("value net", self.value_net)):
            if not torch.isfinite(flat_params(module)).all():
                raise PgprobeError(f"checkpoint {str(self.path)!r}: {name} parameters are not finite")


def _numpy_tree(obj):
    if isinstance(obj, torch.Tensor):
        return obj.numpy()
    if isinstance(obj, dict):
        return {k: _numpy_tree(v) for k, v in obj.items()}
    return obj


def safe_torch_load(source, where: str):
    """``torch.load(source, weights_only=True)`` with one-line PgprobeErrors naming ``where``:
    refused when the pickle asks for objects other than tensors and plain data (its payload
    never runs), "truncated or corrupt" for anything else the unpickler cannot read."""
    try:
        with warnings.catch_warnings():   # torch warns about foreign pickle protocols before refusing
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise PgprobeError(f"{where} refused: it contains objects other than tensors and plain data "
                               "(it could run code)") from None
        raise PgprobeError(f"{where} is truncated or corrupt: {first}") from None
    except Exception as exc:  # garbage bytes make the unpickler raise KeyError, IndexError, …
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PgprobeError(f"{where} is truncated or corrupt: {first}") from None


def load_checkpoint(path: str | Path, expect_env: str | None = None) -> Checkpoint:
    """Load a checkpoint safely (``weights_only=True``); one-line PgprobeError on a missing,
    truncated, corrupt or foreign file, a file that tries to unpickle code, or a mismatch."""
    path = Path(path)
    if not path.is_file():
        raise PgprobeError(f"checkpoint {str(path)!r} not found")
    raw = safe_torch_load(path, f"checkpoint {str(path)!r}")
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise PgprobeError(f"checkpoint {str(path)!r} is not a pgprobe checkpoint "
                           f"(expected format {FORMAT!r})")
    if expect_env is not None and raw["env_id"] != expect_env:
        raise PgprobeError(f"checkpoint {str(path)!r} is for env {raw['env_id']!r}, expected {expect_env!r}")
    hp = json.loads(raw["hyperparameters_json"])
    activation = hp.get("activation", "tanh")
    if activation not in ACTIVATIONS:
        raise PgprobeError(f"checkpoint {str(path)!r} has activation {activation!r}: expected one of "
                           f"{', '.join(ACTIVATIONS)}")
    policy = GaussianPolicy(raw["obs_dim"], raw["act_dim"], hp["policy_hidden"], hp["init"],
                            activation=activation)
    value_net = ValueNet(raw["obs_dim"], hp["value_hidden"], hp["init"], activation=activation)
    try:
        policy.load_state_dict(raw["policy"])
        value_net.load_state_dict(raw["value"])
    except (RuntimeError, KeyError) as exc:
        raise PgprobeError(f"checkpoint {str(path)!r} does not match its recorded architecture: "
                           f"{str(exc).splitlines()[0]}") from None
    policy.eval()
    value_net.eval()
    return Checkpoint(
        path=path, env_id=raw["env_id"], algo=raw["algo"], seed=int(raw["seed"]),
        iteration=int(raw["iteration"]), hyperparameters=hp, obs_dim=int(raw["obs_dim"]),
        act_dim=int(raw["act_dim"]), policy=policy, value_net=value_net,
        policy_optimizer_state=raw["policy_optimizer"], value_optimizer_state=raw["value_optimizer"],
        obs_normalizer=_numpy_tree(raw["obs_normalizer"]),
        reward_normalizer=_numpy_tree(raw["reward_normalizer"]),
        fit_batch=_numpy_tree(raw["fit_batch"]), sha256=file_sha256(path),
        provenance=json.loads(raw.get("provenance_json", "{}")),
        versions=json.loads(raw.get("versions_json", "{}")),
        next_update=_numpy_tree(raw.get("next_update", {})))
