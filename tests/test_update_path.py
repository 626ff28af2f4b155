"""One update path: the probes' update step is training's update, bit for bit.

From a checkpoint at iteration k and training's own batch and seed of iteration k + 1,
``pgprobe.update.updated_policy`` (what the steps and landscapes probes call) must give
exactly the parameters that ``Trainer.step`` reaches, for PPO (Adam state restored, the
annealed learning rate of update k + 1) and TRPO (natural step with line search).
"""
from __future__ import annotations

import pytest
import torch

from pgprobe.checkpoint import load_checkpoint
from pgprobe.policies import flat_params
from pgprobe.train import Trainer
from pgprobe.update import learning_rate_fraction, update_step, updated_policy

CONFIG = {"training": {"iterations": 4, "checkpoint_iterations": [0, 4],
                       "hyperparameters": {"common": {"steps_per_iteration": 256, "minibatches": 4,
                                                      "policy_epochs": 3, "value_epochs": 2}}}}


def _trainer_at(algo: str, iterations: int, tmp_path):
    trainer = Trainer("Hopper-v5", algo, 0, CONFIG)
    for _ in range(iterations):
        trainer.step()
    trainer.write_checkpoint(tmp_path)
    return trainer, load_checkpoint(tmp_path / "checkpoints" / f"iter{iterations:04d}.pt")


@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_probe_update_equals_training_update(algo, tmp_path):
    trainer, checkpoint = _trainer_at(algo, 2, tmp_path)
    _, batch, torch_seed = trainer.collect_batch(3)
    probe_policy = updated_policy(checkpoint, batch, torch_seed)
    theta0 = flat_params(trainer.policy)
    trainer.update(batch, 3, torch.Generator().manual_seed(torch_seed))
    trained = flat_params(trainer.policy)
    assert not torch.equal(trained, theta0), "the update did not move the policy"
    assert torch.equal(flat_params(probe_policy), trained)
    step = update_step(checkpoint, batch, torch_seed)
    assert torch.equal(torch.as_tensor(step), (trained - theta0).double())


def test_probe_update_uses_the_annealed_learning_rate_of_the_next_update(tmp_path):
    """PPO at iteration 2 of 4: update 3 runs at (1 − 2/4) of the base rate; a probe that used
    the base rate (or the checkpoint's last rate) would differ from training."""
    trainer, checkpoint = _trainer_at("ppo", 2, tmp_path)
    hp = checkpoint.hyperparameters
    assert learning_rate_fraction(hp, 3) == pytest.approx(0.5)
    _, batch, torch_seed = trainer.collect_batch(3)
    trainer.update(batch, 3, torch.Generator().manual_seed(torch_seed))
    assert trainer.policy_opt.param_groups[0]["lr"] == pytest.approx(0.5 * hp["policy_lr"])
    unannealed = dict(checkpoint.hyperparameters, anneal_lr=False)
    checkpoint.hyperparameters = unannealed
    other = updated_policy(checkpoint, batch, torch_seed)
    assert not torch.equal(flat_params(other), flat_params(trainer.policy))


def test_learning_rate_after_the_last_update_is_the_last_rate_used():
    hp = {"anneal_lr": True, "total_iterations": 4}
    assert [learning_rate_fraction(hp, i) for i in (1, 2, 4, 5, 9)] == [1.0, 0.75, 0.25, 0.25, 0.25]
    assert learning_rate_fraction({"anneal_lr": False, "total_iterations": 4}, 3) == 1.0


def test_repeated_updates_from_one_checkpoint_are_identical(tmp_path):
    """Every step estimate of the steps probe starts from the checkpoint's own Adam state: an
    update must not advance the loaded optimizer state in place."""
    trainer, checkpoint = _trainer_at("ppo", 2, tmp_path)
    _, batch, torch_seed = trainer.collect_batch(3)
    first = update_step(checkpoint, batch, torch_seed)
    second = update_step(checkpoint, batch, torch_seed)
    assert (first == second).all()
