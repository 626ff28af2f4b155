"""Import a Stable-Baselines3 (or RL Baselines3 Zoo) PPO / A2C agent.

Supported: ``MlpPolicy`` (``ActorCriticPolicy``) with a flat Box observation space and a
Box action space, separate policy and value networks of any ``net_arch`` sizes, tanh or
ReLU, a state-independent log-std.  Read without running any code from the files:

* ``policy.pth`` / ``policy.optimizer.pth`` of the zip: ``torch.load(weights_only=True)``;
* the zip's ``data`` JSON: plain JSON entries only; its cloudpickled entries are never
  unpickled (the policy class is read off the pickle's opcodes, ``pickle_global``; constant
  schedules off their JSON description);
* ``vecnormalize.pkl``: ``RestrictedUnpickler``, which admits numpy arrays, dtypes and
  scalars and turns the few SB3 / gymnasium / numpy-RNG classes that file holds into inert
  records; any other class is refused.

Everything else (gSDE, squashed outputs, shared layers, other feature extractors, image or
dict observations, other policy classes) is refused with one line naming it.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import math
import pickle
import pickletools
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import PgprobeError
from .common import (build_networks, check_env_dims, linear_chain, normalizer_states,
                     source_provenance, write_imported_checkpoint)

LIBRARY = "stable-baselines3"
POLICY_CLASS = ("stable_baselines3.common.policies", "ActorCriticPolicy")
ACTIVATION_CLASSES = {"torch.nn.modules.activation.Tanh": "tanh", "torch.nn.modules.activation.ReLU": "relu"}
FLATTEN_EXTRACTOR = "stable_baselines3.common.torch_layers.FlattenExtractor"
BOX = "gymnasium.spaces.box.Box"
# policy_kwargs entries that do not change the function the policy computes (or only
# matter with gSDE, which is refused separately).
HARMLESS_POLICY_KWARGS = {"ortho_init", "log_std_init", "full_std", "use_expln", "normalize_images",
                          "share_features_extractor", "optimizer_class", "optimizer_kwargs"}
MAX_MEMBER_BYTES = 1 << 30


# ----------------------------------------------------------------------------- pickles
def pickle_global(data: bytes) -> tuple[str, str] | None:
    """(module, name) when the pickle ``data`` is nothing but a reference to one global
    (how cloudpickle stores an importable class); None otherwise.  Reads opcodes only."""
    allowed = {"PROTO", "FRAME", "SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "MEMOIZE", "STACK_GLOBAL",
               "GLOBAL", "STOP"}
    strings, found = [], None
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name not in allowed:
                return None
            if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                strings.append(arg)
            elif opcode.name == "STACK_GLOBAL":
                if len(strings) < 2 or found:
                    return None
                found = (strings[-2], strings[-1])
            elif opcode.name == "GLOBAL":
                if found:
                    return None
                module, _, name = str(arg).partition(" ")
                found = (module, name)
    except Exception:  # malformed pickle: not a plain reference
        return None
    return found


def _class_string(text) -> str | None:
    """'a.b.C' from the "<class 'a.b.C'>" strings SB3 writes for non-JSON entries."""
    match = re.fullmatch(r"<class '([\w.]+)'>", str(text))
    return match.group(1) if match else None


class _Record:
    """Inert stand-in for an admitted class of vecnormalize.pkl: keeps its arguments and state."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state):
        self.state = state


def _record_class(qualified: str) -> type:
    return type(qualified.rsplit(".", 1)[-1], (_Record,), {"qualified_name": qualified})


def _numpy_global(name: str):
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    return {"_reconstruct": multiarray._reconstruct, "scalar": multiarray.scalar}[name]


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for the RL Zoo's ``vecnormalize.pkl``.

    Admits numpy arrays, dtypes and scalars (real numpy objects), and replaces the classes
    that file holds besides (VecNormalize, RunningMeanStd, gymnasium's Box and the numpy RNG
    that Box pickles) by inert ``_Record`` stand-ins.  Any other global is refused: loading
    stops before it is called, so its payload never runs.
    """

    NUMPY = {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
             for n in ("_reconstruct", "scalar")}
    RECORDS = {
        "stable_baselines3.common.vec_env.vec_normalize.VecNormalize",
        "stable_baselines3.common.running_mean_std.RunningMeanStd",
        BOX,
        "numpy.random._pickle.__generator_ctor", "numpy.random._pickle.__bit_generator_ctor",
        "numpy.random._pickle.__randomstate_ctor", "numpy.random._pcg64.PCG64",
        "numpy.random._mt19937.MT19937", "numpy.random.bit_generator.SeedSequence",
        "numpy.random.bit_generator.__pyx_unpickle_SeedSequence",
    }

    def __init__(self, file):
        super().__init__(file)
        self._records: dict[str, type] = {}

    def find_class(self, module: str, name: str):
        qualified = f"{module}.{name}"
        if (module, name) in self.NUMPY:
            return _numpy_global(name)
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module == "numpy.dtypes" and re.fullmatch(r"(Float|Int|UInt|Bool)\d*DType", name):
            return getattr(np.dtypes, name)
        if qualified in self.RECORDS:
            return self._records.setdefault(qualified, _record_class(qualified))
        raise pickle.UnpicklingError(f"refused global {qualified}")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refused persistent id")


def read_vecnormalize(path: str | Path) -> dict:
    """The statistics of a ``vecnormalize.pkl`` (RL Zoo / ``VecNormalize.save``):
    obs_mean, obs_var, obs_count, return_var, return_count, clip_obs, clip_reward, norm_obs,
    norm_reward, gamma, epsilon.  One-line PgprobeError for anything else."""
    path = Path(path)
    where = f"vecnormalize file {str(path)!r}"
    if not path.is_file():
        raise PgprobeError(f"{where} not found")
    try:
        with open(path, "rb") as fh:
            obj = RestrictedUnpickler(fh).load()
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if text.startswith("refused"):
            raise PgprobeError(f"{where} refused: it holds {text[len('refused '):]}, expected only "
                               "VecNormalize's numeric statistics (it could run code)") from None
        raise PgprobeError(f"{where} is not a readable pickle: {text.splitlines()[0] if text else 'corrupt'}") from None
    except Exception as exc:  # truncated or malformed files raise many types
        raise PgprobeError(f"{where} is not a readable pickle: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(obj, _Record) or obj.qualified_name != "stable_baselines3.common.vec_env.vec_normalize.VecNormalize" \
            or not isinstance(obj.state, dict):
        raise PgprobeError(f"{where} does not hold a VecNormalize object")
    state = obj.state

    def rms(key):
        value = state.get(key)
        if not isinstance(value, _Record) or not isinstance(value.state, dict) or \
                not {"mean", "var", "count"} <= set(value.state):
            raise PgprobeError(f"{where}: entry {key!r} is not a RunningMeanStd (mean, var, count)")
        return value.state

    obs_rms, ret_rms = rms("obs_rms"), rms("ret_rms")
    if not isinstance(obs_rms["mean"], np.ndarray) or obs_rms["mean"].ndim != 1:
        raise PgprobeError(f"{where}: observation statistics of shape {np.shape(obs_rms['mean'])} "
                           "(dict or image observations?): expected a flat vector")
    numbers = {}
    for key in ("clip_obs", "clip_reward", "gamma", "epsilon"):
        value = state.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
                or not math.isfinite(float(value)):
            raise PgprobeError(f"{where}: entry {key!r} = {value!r}: expected a finite number")
        numbers[key] = float(value)
    for key in ("norm_obs", "norm_reward"):
        if not isinstance(state.get(key), (bool, np.bool_)):
            raise PgprobeError(f"{where}: entry {key!r} = {state.get(key)!r}: expected true or false")
    if state.get("norm_obs_keys"):
        raise PgprobeError(f"{where}: normalizes dict observations (norm_obs_keys "
                           f"{state['norm_obs_keys']!r}): expected a flat Box observation")
    try:
        obs_mean = np.asarray(obs_rms["mean"], np.float64)
        obs_var = np.asarray(obs_rms["var"], np.float64)
        scalars = {"obs_count": float(obs_rms["count"]), "return_count": float(ret_rms["count"]),
                   "return_var": float(np.asarray(ret_rms["var"], np.float64).reshape(()))}
    except (TypeError, ValueError):
        raise PgprobeError(f"{where}: running statistics that are not numbers") from None
    if obs_var.shape != obs_mean.shape or not (np.isfinite(obs_mean).all() and np.isfinite(obs_var).all()):
        raise PgprobeError(f"{where}: observation mean/var are not finite vectors of one shape")
    return {"obs_mean": obs_mean, "obs_var": obs_var, **scalars,
            "norm_obs": bool(state["norm_obs"]), "norm_reward": bool(state["norm_reward"]), **numbers}


# ----------------------------------------------------------------------------- the zip
def _torch_member(archive: zipfile.ZipFile, name: str, where: str):
    info = archive.getinfo(name)
    if info.file_size > MAX_MEMBER_BYTES:
        raise PgprobeError(f"{where}: member {name!r} is {info.file_size} bytes: too large")
    from ..checkpoint import safe_torch_load

    return safe_torch_load(io.BytesIO(archive.read(name)), f"{where}: member {name!r}")


def read_sb3_zip(path: str | Path) -> dict:
    """{"data": the JSON, "version": SB3 version, "policy": state dict, "optimizer": state dict or {}}."""
    path = Path(path)
    where = f"SB3 model {str(path)!r}"
    if not path.is_file():
        raise PgprobeError(f"{where} not found")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            for required in ("data", "policy.pth"):
                if required not in names:
                    raise PgprobeError(f"{where} lacks {required!r}: expected a zip written by an SB3 "
                                       "model's save()")
            if archive.getinfo("data").file_size > MAX_MEMBER_BYTES:
                raise PgprobeError(f"{where}: member 'data' is too large")
            try:
                data = json.loads(archive.read("data").decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise PgprobeError(f"{where}: member 'data' is not JSON: {exc}") from None
            version = (archive.read("_stable_baselines3_version").decode("utf-8", "replace").strip()
                       if "_stable_baselines3_version" in names else "unknown")
            policy = _torch_member(archive, "policy.pth", where)
            optimizer = (_torch_member(archive, "policy.optimizer.pth", where)
                         if "policy.optimizer.pth" in names else {})
    except zipfile.BadZipFile as exc:
        raise PgprobeError(f"{where} is not a zip file: {exc}") from None
    if not isinstance(data, dict):
        raise PgprobeError(f"{where}: member 'data' is not a JSON object")
    if not isinstance(policy, dict) or not all(isinstance(v, torch.Tensor) for v in policy.values()):
        raise PgprobeError(f"{where}: policy.pth is not a state dict of tensors")
    return {"data": data, "version": version, "policy": policy,
            "optimizer": optimizer if isinstance(optimizer, dict) else {}}


# ----------------------------------------------------------------------------- data JSON
def _plain_entries(entry) -> dict:
    """The JSON-readable first-level items SB3 writes next to a cloudpickled dict entry."""
    if not isinstance(entry, dict):
        return {}
    return {k: v for k, v in entry.items() if k not in (":type:", ":serialized:")}


def constant_value(entry):
    """A constant hyperparameter: a JSON number, or a schedule SB3 describes as
    ``ConstantSchedule(val=X)`` / ``constant_fn(X)``; None when absent (JSON null); the string
    "schedule" for anything else (a schedule that is not constant)."""
    if entry is None:
        return None
    if isinstance(entry, (int, float)) and not isinstance(entry, bool):
        return float(entry)
    for text in _plain_entries(entry).values():
        match = re.fullmatch(r"ConstantSchedule\(val=([-+0-9.eE]+|inf|nan)\)", str(text))
        if match:
            return float(match.group(1))
    return "schedule"


def _space(data: dict, key: str, where: str) -> tuple[int, ...]:
    entry = data.get(key)
    kind = _class_string(entry.get(":type:")) if isinstance(entry, dict) else None
    shape = entry.get("_shape") if isinstance(entry, dict) else None
    if kind != BOX:
        raise PgprobeError(f"{where}: {key} is {kind or entry!r}: expected a Box "
                           "(dict, discrete and other spaces are not supported)")
    if not isinstance(shape, list) or len(shape) != 1:
        what = "image observations" if key == "observation_space" and isinstance(shape, list) \
            and len(shape) == 3 else f"a {key} of shape {shape}"
        raise PgprobeError(f"{where}: {what} not supported: expected a flat (1-D) Box")
    return tuple(shape)


def _policy_class(data: dict, where: str) -> None:
    entry = data.get("policy_class")
    serialized = entry.get(":serialized:") if isinstance(entry, dict) else None
    found = None
    if isinstance(serialized, str):
        try:
            found = pickle_global(base64.b64decode(serialized, validate=True))
        except (binascii.Error, ValueError):
            found = None
    if found is None:
        raise PgprobeError(f"{where}: policy_class is not a plain class reference (refused without "
                           "unpickling it): expected stable_baselines3's ActorCriticPolicy (MlpPolicy)")
    if found != POLICY_CLASS:
        raise PgprobeError(f"{where}: policy class {'.'.join(found)} is not supported: expected "
                           f"{'.'.join(POLICY_CLASS)} (MlpPolicy)")


def _policy_kwargs(data: dict, where: str) -> dict:
    """Checks policy_kwargs; returns {"net_arch", "activation", "optimizer_class", "optimizer_kwargs"}."""
    entry = data.get("policy_kwargs") or {}
    if not isinstance(entry, dict):
        raise PgprobeError(f"{where}: policy_kwargs is {type(entry).__name__}: expected an object")
    kwargs = _plain_entries(entry) if ":serialized:" in entry else dict(entry)
    unknown = sorted(set(kwargs) - HARMLESS_POLICY_KWARGS - {"net_arch", "activation_fn", "squash_output",
                                                              "features_extractor_class",
                                                              "features_extractor_kwargs"})
    if unknown:
        raise PgprobeError(f"{where}: policy_kwargs entry {unknown[0]!r} is not supported")
    if kwargs.get("squash_output"):
        raise PgprobeError(f"{where}: squashed outputs (policy_kwargs squash_output=True) are not supported")
    extractor = kwargs.get("features_extractor_class")
    if extractor is not None and _class_string(extractor) != FLATTEN_EXTRACTOR:
        raise PgprobeError(f"{where}: features extractor {extractor} is not supported: expected "
                           f"{FLATTEN_EXTRACTOR} (the MlpPolicy default)")
    if kwargs.get("features_extractor_kwargs"):
        raise PgprobeError(f"{where}: features_extractor_kwargs {kwargs['features_extractor_kwargs']!r} "
                           "are not supported")
    activation = "tanh"
    if "activation_fn" in kwargs:
        name = _class_string(kwargs["activation_fn"])
        if name not in ACTIVATION_CLASSES:
            raise PgprobeError(f"{where}: activation_fn {kwargs['activation_fn']} is not supported: "
                               "expected torch.nn.Tanh or torch.nn.ReLU")
        activation = ACTIVATION_CLASSES[name]
    net_arch = kwargs.get("net_arch")
    if isinstance(net_arch, list) and len(net_arch) == 1 and isinstance(net_arch[0], dict):
        net_arch = net_arch[0]    # pre-1.8 spelling of separate networks, as SB3 reads it
    if isinstance(net_arch, list) and any(isinstance(x, dict) for x in net_arch):
        raise PgprobeError(f"{where}: net_arch {net_arch!r} has shared layers: expected separate "
                           "policy and value networks (net_arch=dict(pi=[...], vf=[...]) or a list)")
    if isinstance(net_arch, list):
        net_arch = {"pi": list(net_arch), "vf": list(net_arch)}
    optimizer_class = _class_string(kwargs.get("optimizer_class", "<class 'torch.optim.adam.Adam'>"))
    optimizer_kwargs = kwargs.get("optimizer_kwargs")
    return {"net_arch": net_arch, "activation": activation, "optimizer_class": optimizer_class,
            "optimizer_kwargs": optimizer_kwargs if isinstance(optimizer_kwargs, dict) else None}


def _networks(policy_state: dict, obs_dim: int, act_dim: int, net_arch, where: str):
    known = re.compile(r"(log_std|action_net\.(weight|bias)|value_net\.(weight|bias)|"
                       r"mlp_extractor\.(policy_net|value_net)\.\d+\.(weight|bias))$")
    for key in policy_state:
        if not known.match(key):
            what = ("shared layers" if "shared_net" in key else
                    "a features extractor with parameters" if "features_extractor" in key else "a parameter")
            raise PgprobeError(f"{where}: policy.pth holds {what} ({key!r}) that an MlpPolicy with separate "
                               "policy and value networks does not have")
    for key in ("log_std", "action_net.weight", "action_net.bias", "value_net.weight", "value_net.bias"):
        if key not in policy_state:
            raise PgprobeError(f"{where}: policy.pth lacks {key!r}")
    log_std = policy_state["log_std"]
    if log_std.shape != (act_dim,):
        raise PgprobeError(f"{where}: log_std has shape {tuple(log_std.shape)}: expected ({act_dim},), "
                           "a state-independent log-std (gSDE is not supported)")
    pi = linear_chain(policy_state, "mlp_extractor.policy_net.", where)
    vf = linear_chain(policy_state, "mlp_extractor.value_net.", where)
    mean_chain = pi + [(policy_state["action_net.weight"], policy_state["action_net.bias"])]
    value_chain = vf + [(policy_state["value_net.weight"], policy_state["value_net.bias"])]
    for name, chain, out_dim in (("policy", mean_chain, act_dim), ("value", value_chain, 1)):
        if chain[0][0].shape[1] != obs_dim or chain[-1][0].shape[0] != out_dim or any(
                a[0].shape[0] != b[0].shape[1] for a, b in zip(chain[:-1], chain[1:])):
            raise PgprobeError(f"{where}: the {name} network's layer shapes "
                               f"{[tuple(w.shape) for w, _ in chain]} do not map {obs_dim} observations "
                               f"to {out_dim} outputs")
    sizes = {"pi": [int(w.shape[0]) for w, _ in pi], "vf": [int(w.shape[0]) for w, _ in vf]}
    if net_arch is not None and (not isinstance(net_arch, dict) or
                                 {k: list(net_arch.get(k, [])) for k in ("pi", "vf")} != sizes):
        raise PgprobeError(f"{where}: policy.pth has layers {sizes} but policy_kwargs net_arch is {net_arch!r}")
    return mean_chain, log_std, value_chain, sizes


def sb3_parameter_names(policy_state: dict) -> list[str]:
    """SB3's ``policy.parameters()`` order: the state dict's order (an MlpPolicy has no buffers)."""
    return list(policy_state)


def pgprobe_parameter_names(sizes: dict) -> list[str]:
    """SB3 names in pgprobe's joint order: ``[*policy.parameters(), *value_net.parameters()]``
    (log-std, policy hidden layers, action head, value hidden layers, value head)."""
    names = ["log_std"]
    for i in range(len(sizes["pi"])):
        names += [f"mlp_extractor.policy_net.{2 * i}.weight", f"mlp_extractor.policy_net.{2 * i}.bias"]
    names += ["action_net.weight", "action_net.bias"]
    for i in range(len(sizes["vf"])):
        names += [f"mlp_extractor.value_net.{2 * i}.weight", f"mlp_extractor.value_net.{2 * i}.bias"]
    return names + ["value_net.weight", "value_net.bias"]


def joint_optimizer_state(optimizer_state: dict, policy_state: dict, sizes: dict, where: str) -> dict:
    """SB3's optimizer state dict (one optimizer over policy and value parameters, in SB3's
    order) re-indexed to pgprobe's joint order; {} when there is none or it is not one group."""
    groups = optimizer_state.get("param_groups") if isinstance(optimizer_state, dict) else None
    if not groups or len(groups) != 1:
        return {}
    sb3_names = sb3_parameter_names(policy_state)
    if sorted(groups[0].get("params", [])) != list(range(len(sb3_names))):
        raise PgprobeError(f"{where}: policy.optimizer.pth covers parameters {groups[0].get('params')}: "
                           f"expected the policy's {len(sb3_names)} parameters")
    new_index = {name: i for i, name in enumerate(pgprobe_parameter_names(sizes))}
    state = {}
    for old, entry in optimizer_state.get("state", {}).items():
        name = sb3_names[int(old)]
        for key, value in entry.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != policy_state[name].shape:
                raise PgprobeError(f"{where}: optimizer state {key!r} of {name!r} has shape "
                                   f"{tuple(value.shape)}, the parameter {tuple(policy_state[name].shape)}")
        state[new_index[name]] = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in entry.items()}
    group = dict(groups[0])
    group["params"] = list(range(len(sb3_names)))
    return {"state": state, "param_groups": [group]}


def _number(data: dict, key: str, where: str, kind=float):
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PgprobeError(f"{where}: data entry {key!r} = {value!r}: expected a number")
    return kind(value)


def sb3_hyperparameters(data: dict, kwargs: dict, sizes: dict, optimizer_state: dict,
                        vecnormalize: dict | None, where: str) -> tuple[str, dict]:
    """(algo, hyperparameters) in pgprobe's names, plus SB3's own update settings."""
    # The zip does not name its algorithm: PPO saves clip_range and n_epochs, A2C (the other
    # on-policy ActorCriticPolicy algorithm) n_steps, gae_lambda and vf_coef without them.
    if "clip_range" in data and "n_epochs" in data:
        algo = "ppo"
    elif {"n_steps", "gae_lambda", "vf_coef"} <= set(data) and not {"clip_range", "n_epochs"} & set(data):
        algo = "a2c"
    else:
        raise PgprobeError(f"{where}: unknown SB3 algorithm: expected PPO (data has clip_range and "
                           "n_epochs) or A2C (n_steps, gae_lambda, vf_coef and neither of those)")
    n_envs, n_steps = _number(data, "n_envs", where, int), _number(data, "n_steps", where, int)
    learning_rate = constant_value(data.get("learning_rate"))
    groups = (optimizer_state.get("param_groups") if isinstance(optimizer_state, dict) else None) or [{}]
    default_eps = 1e-5 if kwargs["optimizer_class"] == "torch.optim.adam.Adam" else None   # SB3's default
    adam_eps = groups[0].get("eps", (kwargs["optimizer_kwargs"] or {}).get("eps", default_eps))
    hp = {
        "source": LIBRARY, "policy_hidden": sizes["pi"], "value_hidden": sizes["vf"],
        "activation": kwargs["activation"], "init": "orthogonal",
        "gamma": _number(data, "gamma", where), "gae_lambda": _number(data, "gae_lambda", where),
        "num_envs": n_envs, "steps_per_iteration": n_steps * n_envs,
        "entropy_coef": _number(data, "ent_coef", where) if isinstance(data.get("ent_coef"), (int, float)) else None,
        "vf_coef": _number(data, "vf_coef", where),
        "max_grad_norm": _number(data, "max_grad_norm", where),
        "policy_lr": learning_rate, "value_lr": learning_rate,
        "optimizer": kwargs["optimizer_class"],
        "adam_eps": float(adam_eps) if isinstance(adam_eps, (int, float)) and default_eps else None,
        "normalize_advantage": bool(data.get("normalize_advantage", algo == "ppo")),
    }
    if algo == "ppo":
        hp.update({
            "policy_epochs": _number(data, "n_epochs", where, int), "value_epochs": _number(data, "n_epochs", where, int),
            "minibatch_size": _number(data, "batch_size", where, int),
            "clip_epsilon": constant_value(data.get("clip_range")),
            "clip_range_vf": constant_value(data.get("clip_range_vf")),
            "target_kl": data.get("target_kl") if isinstance(data.get("target_kl"), (int, float)) else None,
        })
    vn = vecnormalize
    hp.update({
        "normalize_observations": bool(vn and vn["norm_obs"]), "obs_clip": vn["clip_obs"] if vn else None,
        "normalize_rewards": bool(vn and vn["norm_reward"]), "reward_clip": vn["clip_reward"] if vn else None,
        "normalizer_epsilon": vn["epsilon"] if vn else 1e-8,
    })
    readable = algo == "ppo" and hp["optimizer"] == "torch.optim.adam.Adam" and all(
        isinstance(hp[k], float) for k in ("policy_lr", "clip_epsilon")) and hp["clip_range_vf"] != "schedule"
    hp["update_rule"] = "sb3_ppo" if readable else None
    return algo, hp


def updates_made(data: dict, algo: str, batch: int, steps: int | None, model: Path) -> tuple[int, int]:
    """(iteration, env steps) of a saved SB3 model: the updates its parameters went through.

    With ``steps`` (a series member, ``pgprobe.importers.series``): ⌈S / B⌉ − 1, checked
    against ``num_timesteps`` and ``_n_updates``.  Without: S = ``num_timesteps``; PPO without
    ``target_kl`` counts ``_n_updates`` = n_epochs per update, so iteration =
    ``_n_updates / n_epochs`` (exact for a save during a rollout and after ``learn()``);
    otherwise ⌊S / B⌋ (a model saved after ``learn()``)."""
    from .series import sb3_iteration

    timesteps = data.get("num_timesteps") if isinstance(data.get("num_timesteps"), int) else 0
    n_updates, n_epochs = data.get("_n_updates"), data.get("n_epochs")
    if steps is not None:
        summary = {"batch": batch, "num_timesteps": timesteps, "n_updates": n_updates, "n_epochs": n_epochs,
                   "target_kl": data.get("target_kl")}
        return sb3_iteration(int(steps), summary, str(model), "--steps"), int(steps)
    if algo == "ppo" and data.get("target_kl") is None and isinstance(n_updates, int) \
            and isinstance(n_epochs, int) and n_epochs > 0 and n_updates % n_epochs == 0:
        return n_updates // n_epochs, timesteps
    return timesteps // batch, timesteps


def sb3_checkpoint_parts(model: str | Path, env_id: str, vecnormalize: str | Path | None = None,
                         name: str | None = None, steps: int | None = None) -> dict:
    """The keyword arguments of ``write_imported_checkpoint`` for the SB3 agent in ``model``
    (a saved zip) with the statistics of ``vecnormalize`` (see ``import_sb3``)."""
    model = Path(model)
    where = f"SB3 model {str(model)!r}"
    content = read_sb3_zip(model)
    data = content["data"]
    _policy_class(data, where)
    if data.get("use_sde"):
        raise PgprobeError(f"{where}: gSDE (use_sde=True) is not supported: expected a state-independent log-std")
    (obs_dim,), (act_dim,) = _space(data, "observation_space", where), _space(data, "action_space", where)
    kwargs = _policy_kwargs(data, where)
    check_env_dims(env_id, obs_dim, act_dim, where)
    mean_chain, log_std, value_chain, sizes = _networks(content["policy"], obs_dim, act_dim,
                                                        kwargs["net_arch"], where)
    stats = read_vecnormalize(vecnormalize) if vecnormalize is not None else None
    if stats is not None and stats["obs_mean"].shape != (obs_dim,):
        raise PgprobeError(f"vecnormalize file {str(vecnormalize)!r} has statistics of "
                           f"{stats['obs_mean'].shape[0]} observations: expected {obs_dim}")
    algo, hp = sb3_hyperparameters(data, kwargs, sizes, content["optimizer"], stats, where)
    policy, value_net = build_networks(obs_dim, act_dim, mean_chain, log_std, value_chain, kwargs["activation"])
    optimizer = joint_optimizer_state(content["optimizer"], content["policy"], sizes, where)
    if stats is not None:
        obs_norm, reward_norm = normalizer_states(obs_dim, stats["obs_mean"], stats["obs_var"], stats["obs_count"],
                                                  stats["return_var"], stats["return_count"])
    else:
        obs_norm, reward_norm = normalizer_states(obs_dim)
    iteration, env_steps = updates_made(data, algo, hp["steps_per_iteration"], steps, model)
    extra = {"algorithm": algo.upper(), "env_steps": env_steps, **({"agent_name": name} if name else {})}
    if vecnormalize is not None:
        from ..checkpoint import file_sha256
        extra.update({"vecnormalize_file": str(Path(vecnormalize).resolve()),
                      "vecnormalize_sha256": file_sha256(vecnormalize)})
    seed = data.get("seed") if isinstance(data.get("seed"), int) and data.get("seed") >= 0 else 0
    return dict(env_id=env_id, algo=algo, seed=seed, iteration=iteration,
                hyperparameters=hp, policy=policy, value_net=value_net, optimizer_state=optimizer,
                obs_normalizer=obs_norm, reward_normalizer=reward_norm,
                provenance=source_provenance(model, LIBRARY, content["version"], **extra))


def import_sb3(model: str | Path, env_id: str, out: str | Path, vecnormalize: str | Path | None = None,
               name: str | None = None, steps: int | None = None) -> Path:
    """Write ``out``: the pgprobe checkpoint of the SB3 agent in ``model`` (a saved zip) with
    the observation / reward statistics of ``vecnormalize`` (none: raw observations and
    rewards).  The checkpoint's ``policy_optimizer`` holds SB3's one optimizer over policy and
    value parameters, re-indexed to ``[*policy.parameters(), *value_net.parameters()]``.
    ``steps``: the step count of a series member (``updates_made``); provenance ``env_steps``
    records the step count either way."""
    return write_imported_checkpoint(out, **sb3_checkpoint_parts(model, env_id, vecnormalize, name, steps))
