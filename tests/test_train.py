"""Training through the CLI: files written, exact checkpoints, determinism, clear errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml

from pgprobe.checkpoint import load_checkpoint
from pgprobe.train import TRAIN_VARIABLES, Trainer

TINY = {"steps_per_iteration": 256, "minibatches": 4}


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pgprobe.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def write_config(path: Path, iterations=3, checkpoints=(0, 1, 3), **hp) -> Path:
    path.write_text(yaml.safe_dump({"training": {
        "iterations": iterations, "checkpoint_iterations": list(checkpoints),
        "hyperparameters": {"common": {**TINY, **hp}}}}))
    return path


def assert_same_checkpoint(path_a: Path, path_b: Path):
    a = torch.load(path_a, weights_only=True)
    b = torch.load(path_b, weights_only=True)

    def compare(x, y, where):
        if isinstance(x, dict):
            assert x.keys() == y.keys(), where
            for k in x:
                compare(x[k], y[k], f"{where}.{k}")
        elif isinstance(x, torch.Tensor):
            assert torch.equal(x, y), where
        elif isinstance(x, (list, tuple)):
            for i, (u, v) in enumerate(zip(x, y)):
                compare(u, v, f"{where}[{i}]")
        else:
            assert x == y, where
    compare(a, b, "checkpoint")


@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_three_iteration_cli_run_writes_checkpoints_and_train_nc(tmp_path, algo):
    config = write_config(tmp_path / "c.yaml")
    out = tmp_path / "run"
    result = run_cli("train", "--env", "Hopper-v5", "--algo", algo, "--seed", "1", "--config", str(config),
                     "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["iter0000.pt", "iter0001.pt", "iter0003.pt"]
    with xr.open_dataset(out / "train.nc") as ds:
        assert list(ds.iteration.values) == [1, 2, 3]
        for name, _, _ in TRAIN_VARIABLES:
            assert ds[name].dims == ("iteration",)
            assert ds[name].attrs["long_name"] and "units" in ds[name].attrs
        assert ds.attrs["pgprobe_dataset"] == "training"
        assert json.loads(ds.attrs["config_json"])["hyperparameters"]["steps_per_iteration"] == 256
        assert (ds.env_steps.values == [256, 512, 768]).all()
        assert np.isfinite(ds.kl.values).all() and (ds.kl.values >= 0).all()
    ckpt = load_checkpoint(out / "checkpoints" / "iter0003.pt")
    assert (ckpt.env_id, ckpt.algo, ckpt.seed, ckpt.iteration) == ("Hopper-v5", algo, 1, 3)
    assert ckpt.fit_batch["obs"].shape == (256, 11)
    assert ckpt.hyperparameters["max_kl" if algo == "trpo" else "clip_epsilon"] > 0


def test_same_seed_and_config_give_identical_checkpoints(tmp_path):
    config = write_config(tmp_path / "c.yaml", iterations=2, checkpoints=(2,))
    for name in ("a", "b"):
        result = run_cli("train", "--env", "Hopper-v5", "--algo", "ppo", "--seed", "3", "--config", str(config),
                         "--out", str(tmp_path / name), "--no-progress")
        assert result.returncode == 0, result.stderr
    assert_same_checkpoint(tmp_path / "a/checkpoints/iter0002.pt", tmp_path / "b/checkpoints/iter0002.pt")
    with xr.open_dataset(tmp_path / "a/train.nc") as a, xr.open_dataset(tmp_path / "b/train.nc") as b:
        xr.testing.assert_equal(a.drop_vars("wall_time"), b.drop_vars("wall_time"))


@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_checkpoint_reproduces_next_update_bit_for_bit(tmp_path, algo):
    config = {"training": {"iterations": 3, "hyperparameters": {"common": TINY}}}
    straight = Trainer("Hopper-v5", algo, 5, config)
    for _ in range(3):
        straight.step()
    first = Trainer("Hopper-v5", algo, 5, config)
    first.step()
    state = tmp_path / "state.pt"
    first.save_resume(state)
    resumed = Trainer("Hopper-v5", algo, 5, config)
    assert resumed.load_resume(state)
    resumed.step()
    resumed.step()
    for a, b in zip(straight.policy.parameters(), resumed.policy.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(straight.value_net.parameters(), resumed.value_net.parameters()):
        assert torch.equal(a, b)
    assert [r["mean_return"] for r in straight.history] == [r["mean_return"] for r in resumed.history]


def test_checkpoint_round_trip_is_exact(tmp_path, hopper_ppo_checkpoint):
    ckpt = load_checkpoint(hopper_ppo_checkpoint)
    raw = torch.load(hopper_ppo_checkpoint, weights_only=True)
    for key, tensor in ckpt.policy.state_dict().items():
        assert torch.equal(tensor, raw["policy"][key])
    for key, tensor in ckpt.value_net.state_dict().items():
        assert torch.equal(tensor, raw["value"][key])
    assert raw["policy_optimizer"]["state"], "PPO checkpoints carry Adam moments"
    agent = ckpt.frozen_agent()
    obs = np.random.default_rng(0).normal(size=(5, 11)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(agent.policy_mean(obs), ckpt.policy(torch.from_numpy(obs)).numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_any_continuous_task_trains(tmp_path):
    config = write_config(tmp_path / "c.yaml", iterations=1, checkpoints=(1,))
    result = run_cli("train", "--env", "Pendulum-v1", "--algo", "trpo", "--seed", "0", "--config", str(config),
                     "--out", str(tmp_path / "p"), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert load_checkpoint(tmp_path / "p/checkpoints/iter0001.pt").act_dim == 1


@pytest.mark.parametrize("args, message", [
    (["--env", "Hoper-v5", "--algo", "ppo"], "unknown environment id 'Hoper-v5'"),
    (["--env", "CartPole-v1", "--algo", "ppo"], "Discrete action space"),
    (["--env", "Hopper-v5", "--algo", "ppo", "--config", "{cfg_lr}"], "policy_lr=-0.1"),
    (["--env", "Hopper-v5", "--algo", "ppo", "--config", "{cfg_key}"], "unknown hyperparameter 'polcy_lr'"),
    (["--env", "Hopper-v5", "--algo", "ppo", "--config", "{missing}"], "not found"),
])
def test_bad_input_gives_one_line_error_and_no_output(tmp_path, args, message):
    cfg_lr = tmp_path / "lr.yaml"
    cfg_lr.write_text(yaml.safe_dump({"training": {"iterations": 1, "hyperparameters": {"ppo": {"policy_lr": -0.1}}}}))
    cfg_key = tmp_path / "key.yaml"
    cfg_key.write_text(yaml.safe_dump({"training": {"iterations": 1, "hyperparameters": {"ppo": {"polcy_lr": 1e-3}}}}))
    args = [a.format(cfg_lr=cfg_lr, cfg_key=cfg_key, missing=tmp_path / "nope.yaml") for a in args]
    out = tmp_path / "out"
    result = run_cli("train", *args, "--seed", "0", "--out", str(out), "--no-progress")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pgprobe: error:"), result.stderr
    assert message in lines[0]
    assert not out.exists(), "a refused run must not create its output directory"
