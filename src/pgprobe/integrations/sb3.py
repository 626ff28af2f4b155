"""Probe-complete pgprobe checkpoints saved from inside Stable-Baselines3 PPO training.

``ProbeCheckpointCallback(iterations, directory)`` is an SB3 ``BaseCallback``: at the end of
each rollout whose next update is update i + 1, for i in ``iterations`` (i = updates made so
far = ⌈S / B⌉ − 1, S = ``num_timesteps``, B = ``n_steps`` · ``n_envs``: the iteration rule
of ``pgprobe.importers.series``), it writes ``directory/iter{i:04d}.pt``, a pgprobe
checkpoint (``pgprobe import sb3``'s format, provenance ``env_steps`` = S) holding

* the policy and value networks, the VecNormalize statistics (when the model's env has
  one), SB3's Adam state (re-indexed to pgprobe's parameter order);
* the learning-rate schedule's position: ``sb3_progress_remaining`` p = 1 − S / T (T the
  ``learn()`` total, what SB3 sets just before ``train()``) and the values the next update
  uses, ``policy_lr`` = lr_schedule(p), ``clip_epsilon`` = clip_range(p), ``clip_range_vf``
  = clip_range_vf(p) (so a schedule becomes the constants of that update);
* ``next_update``: the rollout buffer that update trains on (observations as stored,
  i.e. normalized when they were collected; actions; old log-probabilities and values;
  GAE advantages; returns = value targets; flattened env-major as SB3's buffer does) and
  the state of ``numpy.random``'s global MT19937 generator, from which SB3 draws each
  epoch's minibatch permutation.

``replay_next_update(checkpoint)`` applies SB3's PPO update (``pgprobe.algos.sb3_ppo``) to
that batch with permutations drawn from that state: SB3's own next ``train()``
(tests/test_sb3_callback.py).  Stable-Baselines3 is needed for the callback only; without
it, using the callback raises a one-line PgprobeError.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from ..errors import PgprobeError

SB3_MISSING = ("pgprobe.integrations.sb3.ProbeCheckpointCallback needs stable-baselines3, which is not "
               "installed: pip install stable-baselines3")
BUFFER_FIELDS = ("observations", "actions", "log_probs", "values", "advantages", "returns")


def _base_callback():
    try:
        from stable_baselines3.common.callbacks import BaseCallback
    except ImportError:
        raise PgprobeError(SB3_MISSING) from None
    return BaseCallback


def _flatten(array: np.ndarray) -> np.ndarray:
    """(n_steps, n_envs, ...) -> (n_envs · n_steps, ...), env-major: SB3's ``swap_and_flatten``."""
    array = np.asarray(array)
    if array.ndim < 3:
        array = array.reshape(*array.shape, 1)
    return np.ascontiguousarray(array.swapaxes(0, 1).reshape(array.shape[0] * array.shape[1], *array.shape[2:]))


def next_update_state(rollout_buffer) -> dict:
    """The rollout buffer (flattened as SB3's ``get`` flattens it) and the global numpy RNG
    state: what SB3's next ``train()`` reads."""
    if getattr(rollout_buffer, "generator_ready", False):
        raise PgprobeError("the rollout buffer was already flattened by train(): save at the end of a rollout")
    state = {name: _flatten(getattr(rollout_buffer, name)).astype(np.float32) for name in BUFFER_FIELDS}
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    if kind != "MT19937":
        raise PgprobeError(f"numpy's global generator is {kind!r}: expected MT19937")
    state.update({"rng_keys": np.asarray(keys, np.int64), "rng_position": int(position),
                  "rng_has_gauss": int(has_gauss), "rng_cached_gaussian": float(cached_gaussian)})
    return state


def next_update_batch(checkpoint):
    """The saved rollout buffer as an ``UpdateBatch`` (advantages raw, as SB3 stores them)."""
    from ..algos.common import UpdateBatch

    saved = checkpoint.next_update
    if not saved:
        raise PgprobeError(f"checkpoint {str(checkpoint.path)!r} holds no next update: expected one saved by "
                           "pgprobe.integrations.sb3.ProbeCheckpointCallback")
    as_tensor = lambda name: torch.as_tensor(np.asarray(saved[name], np.float32))  # noqa: E731
    count = len(saved["observations"])
    column = lambda name: as_tensor(name).reshape(count, -1)[:, 0]  # noqa: E731
    return UpdateBatch(obs=as_tensor("observations").reshape(count, -1), actions=as_tensor("actions").reshape(count, -1),
                       old_log_probs=column("log_probs"), old_values=column("values"),
                       advantages=column("advantages"), normalized_advantages=column("advantages"),
                       value_targets=column("returns"), returns=column("returns"))


def next_update_generator(checkpoint) -> np.random.RandomState:
    """A ``RandomState`` in the state SB3's global generator had before the next update."""
    saved = checkpoint.next_update
    generator = np.random.RandomState()
    generator.set_state(("MT19937", np.asarray(saved["rng_keys"], np.uint32), int(saved["rng_position"]),
                         int(saved["rng_has_gauss"]), float(saved["rng_cached_gaussian"])))
    return generator


def replay_next_update(checkpoint):
    """(policy, value net, statistics) after SB3's next PPO update, replayed from the
    checkpoint's parameters, Adam state, hyperparameters at the schedule's position,
    rollout buffer and minibatch-order state."""
    from ..algos.sb3_ppo import sb3_ppo_updated_networks

    return sb3_ppo_updated_networks(checkpoint, next_update_batch(checkpoint), next_update_generator(checkpoint))


def recorded_next_step(checkpoint) -> np.ndarray | None:
    """Δθ = θ′ − θ0 of the policy update the agent actually made next (SB3's own, replayed
    exactly by ``replay_next_update``), float64 in ``pgprobe.update.flat_params`` order (the
    order of the steps probe's sampled steps); None for a checkpoint without a saved next update."""
    if not checkpoint.next_update:
        return None
    from ..update import flat_params

    policy, _, _ = replay_next_update(checkpoint)
    return (flat_params(policy) - flat_params(checkpoint.policy)).double().numpy()


def save_probe_checkpoint(model, out: str | Path, env_id: str | None = None, name: str | None = None) -> Path:
    """Write the probe-complete checkpoint of an SB3 PPO ``model`` at the end of a rollout
    (see the module docstring); returns ``out``."""
    from stable_baselines3 import PPO

    from ..importers.common import write_imported_checkpoint
    from ..importers.sb3 import sb3_checkpoint_parts

    if not isinstance(model, PPO):
        raise PgprobeError(f"ProbeCheckpointCallback: the model is {type(model).__name__}: expected PPO")
    batch = model.n_steps * model.n_envs
    steps = int(model.num_timesteps)
    if steps % batch or not model.rollout_buffer.full:
        raise PgprobeError(f"ProbeCheckpointCallback: at step {steps} the rollout buffer is not complete: "
                           "expected to save at the end of a rollout")
    if env_id is None:
        env_id = model.get_env().get_attr("spec")[0].id
    next_update = next_update_state(model.rollout_buffer)
    vec_normalize = model.get_vec_normalize_env()
    with tempfile.TemporaryDirectory(prefix="pgprobe-sb3-") as tmp:
        zip_path = Path(tmp) / "model.zip"
        model.save(zip_path)
        stats_path = None
        if vec_normalize is not None:
            stats_path = Path(tmp) / "vecnormalize.pkl"
            vec_normalize.save(str(stats_path))
        parts = sb3_checkpoint_parts(zip_path, env_id, stats_path, name=name, steps=steps)
    progress = 1.0 - float(steps) / float(model._total_timesteps)
    hp = parts["hyperparameters"]
    learning_rate = float(model.lr_schedule(progress))
    hp.update({"sb3_progress_remaining": progress, "policy_lr": learning_rate, "value_lr": learning_rate,
               "clip_epsilon": float(model.clip_range(progress)),
               "clip_range_vf": None if model.clip_range_vf is None else float(model.clip_range_vf(progress))})
    if hp["optimizer"] == "torch.optim.adam.Adam" and isinstance(hp.get("adam_eps"), float):
        hp["update_rule"] = "sb3_ppo"
    provenance = parts["provenance"]
    for key in ("source_file", "source_sha256", "vecnormalize_file", "vecnormalize_sha256"):
        provenance.pop(key, None)
    provenance["saved_by"] = "pgprobe.integrations.sb3.ProbeCheckpointCallback"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_imported_checkpoint(out, next_update=next_update, **parts)


def _callback_class():
    base = _base_callback()

    class ProbeCheckpointCallback(base):
        """Save a probe-complete pgprobe checkpoint before each named update (module docstring).

        ``iterations``: the i's (updates made) to save at; ``directory``: where
        ``iter{i:04d}.pt`` go; ``env_id``: the task (default: the env's spec id); ``name``:
        the datasets' algo coordinate (default: ppo)."""

        def __init__(self, iterations, directory, env_id: str | None = None, name: str | None = None,
                     verbose: int = 0):
            super().__init__(verbose)
            self.iterations = sorted({int(i) for i in iterations})
            if any(i < 0 for i in self.iterations):
                raise PgprobeError(f"ProbeCheckpointCallback: iterations {self.iterations}: expected numbers >= 0")
            self.directory, self.env_id, self.name = Path(directory), env_id, name
            self.saved: list[Path] = []

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            batch = self.model.n_steps * self.model.n_envs
            iteration = (int(self.model.num_timesteps) - 1) // batch
            if iteration in self.iterations:
                out = save_probe_checkpoint(self.model, self.directory / f"iter{iteration:04d}.pt",
                                            self.env_id, self.name)
                self.saved.append(out)
                if self.verbose:
                    print(f"pgprobe: saved {out} (step {self.model.num_timesteps}, iteration {iteration})")

    return ProbeCheckpointCallback


def __getattr__(name: str):
    """``ProbeCheckpointCallback`` is built on first use, so that this module imports without SB3."""
    if name == "ProbeCheckpointCallback":
        cls = _callback_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
