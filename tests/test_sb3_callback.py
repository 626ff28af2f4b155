"""pgprobe.integrations.sb3.ProbeCheckpointCallback: the saved checkpoint replays SB3's own
next update.

A tiny SB3 PPO agent (Walker2d-v5, 2 envs × 128 steps, VecNormalize, ReLU pi [32, 32] / vf
[48], entropy bonus, value clipping, a minibatch size that does not divide the batch, and a
linear learning-rate schedule, so that the schedule's position matters) trains for 3
rollouts; the callback saves before update 2 (iteration 1).  SB3's actual train() then runs
inside learn(); its result is read at the next rollout's start.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3")
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.vec_env import VecNormalize  # noqa: E402

from pgprobe.checkpoint import load_checkpoint  # noqa: E402
from pgprobe.errors import PgprobeError  # noqa: E402
from pgprobe.importers.sb3 import pgprobe_parameter_names  # noqa: E402
from pgprobe.integrations.sb3 import replay_next_update  # noqa: E402

N_ENVS, N_STEPS, SAVED_ITERATION = 2, 128, 1
# Largest absolute difference allowed between SB3's parameters (and Adam moments) after its
# train() and the replay's: none, the replay computes what SB3 computes in the same order.
TOLERANCE = 0.0


class AfterNextTrain(BaseCallback):
    """SB3's parameters and Adam first moments right after the train() that follows a save."""

    def __init__(self, probe_callback):
        super().__init__()
        self.probe_callback, self.armed, self.result = probe_callback, False, None

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.armed = bool(self.probe_callback.saved) and self.result is None

    def _on_rollout_start(self) -> None:
        if self.armed:
            optimizer = self.model.policy.optimizer.state_dict()
            self.result = {"params": {k: v.detach().clone() for k, v in self.model.policy.state_dict().items()},
                           "exp_avg": {i: s["exp_avg"].clone() for i, s in optimizer["state"].items()},
                           "lr": optimizer["param_groups"][0]["lr"]}
            self.armed = False


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from pgprobe.integrations.sb3 import ProbeCheckpointCallback

    torch.set_num_threads(1)
    directory = tmp_path_factory.mktemp("callback")
    venv = VecNormalize(make_vec_env("Walker2d-v5", n_envs=N_ENVS, seed=0))
    model = PPO("MlpPolicy", venv, seed=0, device="cpu", n_steps=N_STEPS, batch_size=100, n_epochs=3,
                ent_coef=0.01, clip_range_vf=0.3, max_grad_norm=0.3, learning_rate=lambda p: 1e-3 * p,
                policy_kwargs=dict(net_arch=dict(pi=[32, 32], vf=[48]), activation_fn=torch.nn.ReLU))
    probe = ProbeCheckpointCallback([SAVED_ITERATION], directory)
    after = AfterNextTrain(probe)
    before = {}

    class Before(BaseCallback):
        def _on_step(self):
            return True

        def _on_rollout_end(self):
            if probe.saved and not before:
                before.update({k: v.detach().clone() for k, v in self.model.policy.state_dict().items()})

    model.learn(3 * N_ENVS * N_STEPS, callback=[probe, Before(), after])
    return {"model": model, "path": probe.saved[0], "after": after.result, "before": before,
            "directory": directory}


def test_callback_checkpoint_replays_sb3_next_train_exactly(trained):
    """test_callback_checkpoint_replays_sb3_next_train_exactly: SB3's actual next train()
    after the callback fired equals pgprobe's replay from the saved checkpoint: parameters
    and Adam first moments bitwise (TOLERANCE 0)."""
    ckpt = load_checkpoint(trained["path"])
    assert trained["path"].name == f"iter{SAVED_ITERATION:04d}.pt"
    assert (ckpt.iteration, ckpt.env_steps) == (SAVED_ITERATION, (SAVED_ITERATION + 1) * N_ENVS * N_STEPS)
    hp = ckpt.hyperparameters
    progress = 1 - ckpt.env_steps / (3 * N_ENVS * N_STEPS)
    assert hp["update_rule"] == "sb3_ppo" and hp["sb3_progress_remaining"] == pytest.approx(progress)
    assert hp["policy_lr"] == pytest.approx(1e-3 * progress) == pytest.approx(trained["after"]["lr"])
    policy, value_net, stats = replay_next_update(ckpt)
    after, before = trained["after"]["params"], trained["before"]
    names = pgprobe_parameter_names({"pi": hp["policy_hidden"], "vf": hp["value_hidden"]})
    ours = [*policy.parameters(), *value_net.parameters()]
    moved = max((after[n] - before[n]).abs().max().item() for n in names)
    diff = max((p.detach() - after[n]).abs().max().item() for p, n in zip(ours, names))
    sb3_index = {n: i for i, n in enumerate(after)}
    moment = max((stats["optimizer_state"]["state"][i]["exp_avg"] - trained["after"]["exp_avg"][sb3_index[n]])
                 .abs().max().item() for i, n in enumerate(names))
    print(f"\ncallback replay ({stats['steps']} Adam steps, parameters moved up to {moved:.2e}): "
          f"max abs parameter difference {diff:.2e}, Adam first moment {moment:.2e}")
    assert stats["steps"] == 3 * 3 and moved > 1e-3          # 256 samples: minibatches 100, 100, 56
    assert diff <= TOLERANCE and moment <= TOLERANCE
    # the checkpoint's parameters are SB3's before that train()
    for p, n in zip([*ckpt.policy.parameters(), *ckpt.value_net.parameters()], names):
        assert torch.equal(p.detach(), before[n])


def test_replay_needs_the_saved_minibatch_order(trained):
    """Without the saved RNG state (another permutation) the replay is not SB3's update."""
    from pgprobe.algos.sb3_ppo import sb3_ppo_updated_networks
    from pgprobe.integrations.sb3 import next_update_batch

    ckpt = load_checkpoint(trained["path"])
    policy, _, _ = sb3_ppo_updated_networks(ckpt, next_update_batch(ckpt), np.random.RandomState(12345))
    after = trained["after"]["params"]
    assert (policy.log_std.detach() - after["log_std"]).abs().max().item() > 1e-6


def test_callback_without_sb3_is_a_one_line_error(monkeypatch):
    import pgprobe.integrations.sb3 as integration

    monkeypatch.setitem(sys.modules, "stable_baselines3.common.callbacks", None)
    with pytest.raises(PgprobeError) as info:
        integration._callback_class()
    assert "needs stable-baselines3" in str(info.value) and "\n" not in str(info.value)


def test_checkpoint_without_next_update_is_refused(tmp_path):
    from pgprobe.integrations.sb3 import next_update_batch

    model = PPO("MlpPolicy", "Hopper-v5", seed=0, device="cpu", n_steps=64, batch_size=32)
    model.save(tmp_path / "m.zip")
    from pgprobe.importers.sb3 import import_sb3
    ckpt = load_checkpoint(import_sb3(tmp_path / "m.zip", "Hopper-v5", tmp_path / "c.pt"))
    with pytest.raises(PgprobeError, match="holds no next update"):
        next_update_batch(ckpt)


def test_steps_probe_runs_on_a_callback_checkpoint(trained, tmp_path):
    """The update-based probes apply SB3's update from the saved state (learning rate at the
    schedule's position); the dataset's env_steps is the step count it was saved at."""
    import json

    from pgprobe.cli import main
    from pgprobe.datasets import open_dataset

    settings = json.dumps({"sample_counts": [128], "estimates": 2, "reference_samples": 256,
                           "reference_stream_steps": 128, "chunk_size": 2})
    out = tmp_path / "steps.nc"
    assert main(["probe", "steps", "--checkpoint", str(trained["path"]), "--out", str(out), "--settings", settings,
                 "--workers", "1"]) == 0
    steps = open_dataset(out, kind="steps")
    assert (steps["estimate_norm"].values > 0).all()
    assert steps["env_steps"].values.ravel().tolist() == [float((SAVED_ITERATION + 1) * N_ENVS * N_STEPS)]
    assert steps["iteration"].values.tolist() == [SAVED_ITERATION]
    # the step SB3 actually took next (its own train() after the callback fired), recorded
    # beside the sampled steps: its norm is that of SB3's real policy-parameter change
    hp = load_checkpoint(trained["path"]).hyperparameters
    names = pgprobe_parameter_names({"pi": hp["policy_hidden"], "vf": hp["value_hidden"]})
    policy_names = names[:len(list(load_checkpoint(trained["path"]).policy.parameters()))]
    change = torch.cat([(trained["after"]["params"][n] - trained["before"][n]).double().reshape(-1)
                        for n in policy_names])
    assert steps["recorded_step_norm"].item() == pytest.approx(change.norm().item(), rel=1e-6)
    assert steps["recorded_step_sample_count"].item() == N_ENVS * N_STEPS
    assert np.isfinite(steps["recorded_step_reference_cosine"].item())
