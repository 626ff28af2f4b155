"""Hyperparameters: the paper's Table 1 (Appendix A.2), code-level defaults, validation.

Table 1 fixes the values below per task and algorithm. Everything Table 1 leaves open
is a documented code-level default in ``CODE_LEVEL_DEFAULTS`` (see docs/reference/training.md).
Tasks outside Table 1 (HalfCheetah-v5, Ant-v5, Pendulum-v1, ...) use the Hopper column,
the middle of the three.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from .errors import PgprobeError

ALGOS = ("ppo", "trpo")

# Shared rows of Table 1.
_COMMON = {
    "steps_per_iteration": 2048,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "value_epochs": 10,
    "policy_hidden": [64, 64],
    "value_hidden": [64, 64],
    "entropy_coef": 0.0,
}
_PPO = {"policy_epochs": 10, "clip_epsilon": 0.2, "reward_clip": 10.0,
        "normalize_rewards": True, "obs_clip": 10.0, "normalize_observations": True}
# TRPO: Table 1 lists reward normalization "Off" and no reward or state clipping.  The
# authors' code (MadryLab/implementation-matters) still normalizes observations for TRPO
# (running mean/std, no clipping); so do we.
_TRPO = {"fisher_fraction": 0.1, "cg_steps": 10, "cg_damping": 0.1,
         "backtrack_steps": 10, "reward_clip": None, "normalize_rewards": False,
         "obs_clip": None, "normalize_observations": True}

# Per-task rows of Table 1: value LR, policy LR (PPO), KL constraint (TRPO).
TABLE1 = {
    "Humanoid-v5": {"ppo": {"value_lr": 1e-4, "policy_lr": 2.5e-4},
                    "trpo": {"value_lr": 3e-4, "max_kl": 0.07}},
    "Walker2d-v5": {"ppo": {"value_lr": 3e-4, "policy_lr": 4e-4},
                    "trpo": {"value_lr": 3e-4, "max_kl": 0.04}},
    "Hopper-v5": {"ppo": {"value_lr": 2e-4, "policy_lr": 4.5e-4},
                  "trpo": {"value_lr": 2e-4, "max_kl": 0.13}},
}
DEFAULT_TASK_ROW = "Hopper-v5"

# Choices Table 1 does not fix.  Each is documented in docs/reference/training.md.
CODE_LEVEL_DEFAULTS = {
    "num_envs": 1,             # one environment stream of 2048 steps, as the paper's code
    "minibatches": 32,         # 2048 / 32 = 64 samples per minibatch (PPO and value net)
    "anneal_lr": True,         # PPO: policy and value LR decay linearly to 0 (PPO paper)
    "max_grad_norm": None,     # no gradient clipping (the paper's code default)
    "clip_value_loss": True,   # PPO only: value loss clipped with clip_epsilon
    "init": "orthogonal",      # PPO; TRPO uses "xavier" (both as in the authors' configs)
    "initial_log_std": 0.0,    # state-independent log-std starts at 0 (std 1)
    "adam_eps": 1e-5,
    "backtrack_ratio": 0.5,    # TRPO line search shrink factor
    "total_iterations": 500,   # 500 x 2048 = 1M steps, Figure 8's horizon
}

HYPERPARAMETER_NAMES = sorted(
    set(_COMMON) | set(_PPO) | set(_TRPO) | set(CODE_LEVEL_DEFAULTS)
    | {"value_lr", "policy_lr", "max_kl"})

_POSITIVE = {"steps_per_iteration", "value_epochs", "policy_epochs", "value_lr", "policy_lr",
             "max_kl", "cg_steps", "backtrack_steps", "num_envs", "minibatches",
             "total_iterations", "clip_epsilon", "adam_eps"}
_UNIT_INTERVAL = {"gamma", "gae_lambda", "fisher_fraction", "backtrack_ratio"}


def resolve_hyperparameters(env_id: str, algo: str, overrides: dict | None = None) -> dict:
    """Table 1 for (env_id, algo), then code-level defaults, then ``overrides``."""
    if algo not in ALGOS:
        raise PgprobeError(f"unknown algorithm {algo!r}: expected one of {', '.join(ALGOS)}")
    row = TABLE1.get(env_id, TABLE1[DEFAULT_TASK_ROW])[algo]
    hp = {**_COMMON, **(_PPO if algo == "ppo" else _TRPO), **CODE_LEVEL_DEFAULTS, **row}
    if algo == "trpo":
        hp["anneal_lr"] = False
        hp["clip_value_loss"] = False
        hp["init"] = "xavier"    # the authors' TRPO configs use xavier initialization
    for key, value in (overrides or {}).items():
        if key not in HYPERPARAMETER_NAMES:
            raise PgprobeError(f"unknown hyperparameter {key!r}: expected one of "
                               f"{', '.join(HYPERPARAMETER_NAMES)}")
        hp[key] = value
    validate_hyperparameters(hp)
    return hp


def validate_hyperparameters(hp: dict) -> None:
    for key in _POSITIVE:
        if key in hp and hp[key] is not None:
            value = hp[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise PgprobeError(f"hyperparameter {key}={value!r}: expected a positive number")
    for key in _UNIT_INTERVAL:
        if key in hp:
            value = hp[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
                raise PgprobeError(f"hyperparameter {key}={value!r}: expected a number in (0, 1]")
    for key in ("policy_hidden", "value_hidden"):
        value = hp[key]
        if not isinstance(value, list) or not value or not all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
            raise PgprobeError(f"hyperparameter {key}={value!r}: expected a list of positive ints")
    if hp["steps_per_iteration"] % hp["num_envs"]:
        raise PgprobeError(f"hyperparameter steps_per_iteration={hp['steps_per_iteration']} "
                           f"must be divisible by num_envs={hp['num_envs']}")
    if hp["minibatches"] > hp["steps_per_iteration"]:
        raise PgprobeError(f"hyperparameter minibatches={hp['minibatches']}: expected at most "
                           f"steps_per_iteration={hp['steps_per_iteration']}")


def load_config(path: str | Path | None) -> dict:
    """Read a YAML config file; ``None`` gives an empty config (all defaults)."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise PgprobeError(f"config file {str(path)!r} not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise PgprobeError(f"config file {str(path)!r} is not valid YAML: "
                           f"{str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PgprobeError(f"config file {str(path)!r}: expected a mapping at top level")
    return data


def training_overrides(config: dict, env_id: str, algo: str) -> dict:
    """Hyperparameter overrides from ``config['training']``.

    ``training.hyperparameters.{common,ppo,trpo}`` apply to every task;
    ``training.hyperparameters.per_env.{ENV}.{ppo,trpo}`` to one task.
    """
    training = config.get("training") or {}
    hps = training.get("hyperparameters") or {}
    merged = dict(hps.get("common") or {})
    merged.update(hps.get(algo) or {})
    merged.update(((hps.get("per_env") or {}).get(env_id) or {}).get(algo) or {})
    if "iterations" in training:
        merged.setdefault("total_iterations", training["iterations"])
    return merged


def config_hash(section: Any) -> str:
    """Stable short hash of a JSON-serializable config section (provenance)."""
    blob = json.dumps(section, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
