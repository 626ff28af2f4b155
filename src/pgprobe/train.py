"""Training loop: PPO or TRPO with Table 1 hyperparameters, writing checkpoints and train.nc.

Every iteration i draws all of its randomness from (seed, i): the environments are reset
with seeds from ``SeedSequence([seed, i])`` at the start of the iteration (each iteration's
batch is whole trajectories from fresh resets, the last one cut and bootstrapped), the
action noise and the minibatch order likewise.  Hence a checkpoint plus the seed fixes the
next update bit for bit, and a killed run resumes exactly from its last saved state.
"""
from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from .algos.common import fit_value
from .checkpoint import atomic_torch_save, save_checkpoint
from .config import resolve_hyperparameters, training_overrides
from .datasets import provenance, variable, write_netcdf
from .envs import ObservationNormalizer, RewardNormalizer, check_env_id, make_env
from .errors import PgprobeError
from .policies import GaussianPolicy, NumpyMLP, ValueNet, flat_params, gaussian_kl
from .sampling import rollout
from .stats import mean_relative_error
from .update import learning_rate_fraction, policy_optimizer, policy_update, set_learning_rate, update_batch

# (name, long_name, units) of train.nc's per-iteration variables.
TRAIN_VARIABLES = [
    ("mean_return", "mean undiscounted return of episodes completed in the iteration", "reward"),
    ("std_return", "std of undiscounted returns of episodes completed in the iteration", "reward"),
    ("episodes", "episodes completed in the iteration", "1"),
    ("mean_episode_length", "mean length of episodes completed in the iteration", "steps"),
    ("kl", "mean KL(pi_old || pi_new) over the batch", "nat"),
    ("entropy", "policy entropy after the update", "nat"),
    ("policy_loss", "policy loss (negated surrogate) of the update", "1"),
    ("value_loss", "value-network loss, last epoch", "scaled reward^2"),
    ("value_mre_gae", "value-net MRE against GAE targets V_old + A on its own fit batch", "1"),
    ("value_mre_returns", "value-net MRE against discounted returns on its own fit batch", "1"),
    ("policy_lr", "policy learning rate used (PPO)", "1"),
    ("wall_time", "wall-clock seconds of the iteration", "s"),
    ("env_steps", "environment steps so far", "steps"),
]


class Terminated(Exception):
    """Raised when SIGTERM arrived; the state of the last finished iteration is saved."""


def _iteration_seeds(seed: int, iteration: int, num_envs: int):
    seq = np.random.SeedSequence([int(seed), int(iteration)])
    env_seq, noise_seq, torch_seq = seq.spawn(3)
    env_seeds = [int(s) for s in env_seq.generate_state(num_envs)]
    noise_rngs = [np.random.default_rng(s) for s in noise_seq.spawn(num_envs)]
    torch_seed = int(torch_seq.generate_state(1, dtype=np.uint64)[0] % (2 ** 63))
    return env_seeds, noise_rngs, torch_seed


def checkpoint_iterations(config: dict, total: int) -> list[int]:
    training = config.get("training") or {}
    its = training.get("checkpoint_iterations", [0, total])
    if not isinstance(its, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in its):
        raise PgprobeError(f"training.checkpoint_iterations={its!r}: expected a list of integers")
    for i in its:
        if not 0 <= i <= total:
            raise PgprobeError(f"training.checkpoint_iterations contains {i}: expected 0..{total} "
                               "(training.iterations)")
    return sorted(set(its))


class Trainer:
    """State of one training run; ``run`` trains to ``total_iterations``."""

    def __init__(self, env_id: str, algo: str, seed: int, config: dict | None = None):
        config = config or {}
        check_env_id(env_id)
        self.env_id, self.algo, self.seed = env_id, algo, int(seed)
        self.hp = resolve_hyperparameters(env_id, algo, training_overrides(config, env_id, algo))
        self.total = int(self.hp["total_iterations"])
        self.checkpoint_at = checkpoint_iterations(config, self.total)
        hp = self.hp
        self.envs = [make_env(env_id, _checked=True) for _ in range(hp["num_envs"])]
        self.obs_dim = int(np.prod(self.envs[0].observation_space.shape))
        self.act_dim = int(np.prod(self.envs[0].action_space.shape))
        torch.manual_seed(self.seed)
        self.policy = GaussianPolicy(self.obs_dim, self.act_dim, hp["policy_hidden"], hp["init"],
                                     hp["initial_log_std"])
        self.value_net = ValueNet(self.obs_dim, hp["value_hidden"], hp["init"])
        self.value_opt = torch.optim.Adam(self.value_net.parameters(), lr=hp["value_lr"], eps=hp["adam_eps"])
        self.policy_opt = policy_optimizer(self.policy, hp) if algo == "ppo" else None
        self.obs_norm = ObservationNormalizer(self.obs_dim, hp["normalize_observations"], hp["obs_clip"])
        self.rew_norm = RewardNormalizer(hp["num_envs"], hp["gamma"], hp["normalize_rewards"], hp["reward_clip"])
        self.iteration = 0
        self.history: list[dict] = []
        self.fit_batch: dict | None = None

    # ----------------------------------------------------------------- state
    def state(self) -> dict:
        return {
            "env_id": self.env_id, "algo": self.algo, "seed": self.seed, "iteration": self.iteration,
            "hyperparameters": self.hp, "obs_dim": self.obs_dim, "act_dim": self.act_dim,
            "policy": self.policy, "value_net": self.value_net, "policy_optimizer": self.policy_opt,
            "value_optimizer": self.value_opt, "obs_normalizer": self.obs_norm.stats.state(),
            "reward_normalizer": self.rew_norm.stats.state(), "fit_batch": self.fit_batch,
        }

    def save_resume(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(path, **self.state())
        atomic_torch_save({"history_json": json.dumps(self.history)}, path.with_suffix(".history.pt"))

    def load_resume(self, path: Path) -> bool:
        """Restore from a resume state written by ``save_resume``; False if none usable."""
        from .checkpoint import load_checkpoint

        history_path = path.with_suffix(".history.pt")
        if not path.is_file() or not history_path.is_file():
            return False
        ckpt = load_checkpoint(path)
        if (ckpt.env_id, ckpt.algo, ckpt.seed, ckpt.hyperparameters) != (
                self.env_id, self.algo, self.seed, json.loads(json.dumps(self.hp))):
            raise PgprobeError(f"resume state {str(path)!r} belongs to another run or config; "
                               "delete it to start over")
        history = json.loads(torch.load(history_path, weights_only=True)["history_json"])
        if len(history) != ckpt.iteration:
            return False
        self.policy.load_state_dict(ckpt.policy.state_dict())
        self.value_net.load_state_dict(ckpt.value_net.state_dict())
        self.value_opt.load_state_dict(ckpt.value_optimizer_state)
        if self.policy_opt is not None:
            self.policy_opt.load_state_dict(ckpt.policy_optimizer_state)
        self.obs_norm.stats.load(ckpt.obs_normalizer)
        self.rew_norm.stats.load(ckpt.reward_normalizer)
        self.fit_batch = ckpt.fit_batch or None
        self.iteration = ckpt.iteration
        self.history = history
        return True

    # ----------------------------------------------------------------- one iteration
    def collect(self, iteration: int):
        """Iteration ``iteration``'s rollouts (updating the normalizers) and its torch seed."""
        hp = self.hp
        env_seeds, noise_rngs, torch_seed = _iteration_seeds(self.seed, iteration, hp["num_envs"])
        self.rew_norm.reset()
        steps = hp["steps_per_iteration"] // hp["num_envs"]
        rollouts = rollout(
            self.envs, NumpyMLP(self.policy.mean_net), self.policy.log_std.detach().numpy().copy(),
            NumpyMLP(self.value_net.net), [steps] * hp["num_envs"], noise_rngs, env_seeds,
            self.obs_norm, self.rew_norm, update_normalizers=True)
        return rollouts, torch_seed

    def collect_batch(self, iteration: int):
        """(rollouts, update batch, torch seed) of iteration ``iteration`` (``pgprobe.update``)."""
        rollouts, torch_seed = self.collect(iteration)
        return rollouts, update_batch(rollouts, self.hp["gamma"], self.hp["gae_lambda"]), torch_seed

    def update(self, batch, iteration: int, generator: torch.Generator) -> tuple[float, float]:
        """Update ``iteration`` on ``batch``: learning rates, the policy update
        (``pgprobe.update.policy_update``, the probes' path too), then the value fit.
        Returns (policy loss, value loss)."""
        hp = self.hp
        fraction = learning_rate_fraction(hp, iteration)
        if self.policy_opt is not None:
            set_learning_rate(self.policy_opt, hp["policy_lr"], fraction)
        set_learning_rate(self.value_opt, hp["value_lr"], fraction)
        policy_loss = policy_update(self.algo, self.policy, self.policy_opt, batch, hp, generator)
        value_loss = fit_value(self.value_net, self.value_opt, batch, hp["value_epochs"], hp["minibatches"],
                               generator, hp["clip_epsilon"] if hp["clip_value_loss"] else None,
                               hp["max_grad_norm"])
        return policy_loss, value_loss

    def step(self) -> dict:
        """Run iteration ``self.iteration + 1``: collect, fit, update; returns its log row."""
        hp = self.hp
        iteration = self.iteration + 1
        start = time.perf_counter()
        rollouts, batch, torch_seed = self.collect_batch(iteration)
        generator = torch.Generator().manual_seed(torch_seed)
        with torch.no_grad():
            old_mean = self.policy(batch.obs)
            old_log_std = self.policy.log_std.detach().clone()
        policy_loss, value_loss = self.update(batch, iteration, generator)
        with torch.no_grad():
            kl = float(gaussian_kl(old_mean, old_log_std, self.policy(batch.obs), self.policy.log_std).mean())
            entropy = float(self.policy.entropy())
            fitted = self.value_net(batch.obs).numpy()
        self._check_finite(iteration, {"policy loss": policy_loss, "value loss": value_loss, "KL": kl})
        episode_returns = [x for r in rollouts for x in r.episode_returns]
        episode_lengths = [x for r in rollouts for x in r.episode_lengths]
        row = {
            "mean_return": float(np.mean(episode_returns)) if episode_returns else math.nan,
            "std_return": float(np.std(episode_returns)) if episode_returns else math.nan,
            "episodes": len(episode_returns),
            "mean_episode_length": float(np.mean(episode_lengths)) if episode_lengths else math.nan,
            "kl": kl, "entropy": entropy, "policy_loss": policy_loss, "value_loss": value_loss,
            "value_mre_gae": mean_relative_error(fitted, batch.value_targets.numpy()),
            "value_mre_returns": mean_relative_error(fitted, batch.returns.numpy()),
            "policy_lr": float(self.policy_opt.param_groups[0]["lr"]) if self.policy_opt else math.nan,
            "wall_time": time.perf_counter() - start,
            "env_steps": iteration * hp["steps_per_iteration"],
        }
        self.fit_batch = {
            "obs": batch.obs.numpy(), "actions": batch.actions.numpy(),
            "log_probs": batch.old_log_probs.numpy(), "values": batch.old_values.numpy(),
            "advantages": batch.advantages.numpy(), "returns": batch.returns.numpy(),
            # episode structure, for the values probe's authors'-definition targets
            **{key: np.concatenate([getattr(r, key) for r in rollouts])
               for key in ("rewards", "next_values", "terminated", "truncated", "segment_end")},
        }
        self.iteration = iteration
        self.history.append(row)
        return row

    def _check_finite(self, iteration: int, scalars: dict) -> None:
        for name, value in scalars.items():
            if not math.isfinite(value):
                raise PgprobeError(f"training diverged at iteration {iteration}: {name} is {value}")
        for name, module in (("policy parameters", self.policy), ("value-net parameters", self.value_net)):
            if not torch.isfinite(flat_params(module)).all():
                raise PgprobeError(f"training diverged at iteration {iteration}: {name} are not finite")

    # ----------------------------------------------------------------- outputs
    def dataset(self) -> xr.Dataset:
        iterations = np.arange(1, len(self.history) + 1)
        data = {name: variable(("iteration",), np.array([row[name] for row in self.history], np.float64),
                               long_name, units) for name, long_name, units in TRAIN_VARIABLES}
        ds = xr.Dataset(data, coords={"iteration": ("iteration", iterations,
                                                    {"long_name": "training iteration (policy updates done)",
                                                     "units": "1"})})
        ds.attrs = provenance("training", {"env": self.env_id, "algo": self.algo, "seed": self.seed,
                                           "hyperparameters": self.hp},
                              env=self.env_id, algo=self.algo, seed=self.seed)
        return ds

    def write_checkpoint(self, out_dir: Path) -> None:
        path = out_dir / "checkpoints" / f"iter{self.iteration:04d}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(path, **self.state())


def train(env_id: str, algo: str, seed: int, config: dict | None, out_dir: str | Path,
          resume_dir: str | Path | None = None, progress: bool = True) -> Path:
    """Train one agent; write ``out_dir/checkpoints/iterNNNN.pt`` and ``out_dir/train.nc``.

    Resume state lives in ``resume_dir`` (default ``out_dir/resume``), outside the declared
    outputs, and is refreshed after every iteration; rerunning picks it up.
    """
    from tqdm import tqdm

    torch.set_num_threads(1)
    out_dir = Path(out_dir)
    trainer = Trainer(env_id, algo, seed, config)  # validates everything before any file is made
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "checkpoints").mkdir(exist_ok=True)
    except OSError as exc:
        raise PgprobeError(f"cannot create output directory {str(out_dir)!r}: {exc.strerror}") from None
    resume_path = Path(resume_dir) if resume_dir else out_dir / "resume"
    resume_file = resume_path / "state.pt"
    resumed = trainer.load_resume(resume_file)
    if not resumed and 0 in trainer.checkpoint_at:
        trainer.write_checkpoint(out_dir)

    stop = {"flag": False}
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        stop["flag"] = True
    signal.signal(signal.SIGTERM, on_term)
    bar = tqdm(total=trainer.total, initial=trainer.iteration, disable=not progress, unit="it",
               desc=f"{algo} {env_id} seed {seed}", mininterval=1.0)
    try:
        while trainer.iteration < trainer.total:
            row = trainer.step()
            if trainer.iteration in trainer.checkpoint_at:
                trainer.write_checkpoint(out_dir)
            trainer.save_resume(resume_file)
            bar.update(1)
            bar.set_postfix(ret=f"{row['mean_return']:.0f}",
                            sps=f"{trainer.hp['steps_per_iteration'] / row['wall_time']:.0f}")
            if stop["flag"]:
                raise Terminated(f"SIGTERM: saved state after iteration {trainer.iteration} in "
                                 f"{resume_file}; rerun the same command to resume")
    finally:
        bar.close()
        signal.signal(signal.SIGTERM, previous)
    write_netcdf(trainer.dataset(), out_dir / "train.nc")
    return out_dir
