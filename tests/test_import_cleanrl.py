"""pgprobe import cleanrl: a CleanRL ppo_continuous_action-shaped agent built here gives the
same normalized observation, action mean, log-std and value in pgprobe; refusals."""
from __future__ import annotations


import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from pgprobe.checkpoint import load_checkpoint
from pgprobe.cli import main

TOLERANCE = 1e-5


class CleanRLShapedAgent(nn.Module):
    """The module layout of ppo_continuous_action.py's Agent (actor_mean, actor_logstd, critic)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 64, activation=nn.Tanh):
        super().__init__()
        self.critic = nn.Sequential(nn.Linear(obs_dim, hidden), activation(), nn.Linear(hidden, hidden),
                                    activation(), nn.Linear(hidden, 1))
        self.actor_mean = nn.Sequential(nn.Linear(obs_dim, hidden), activation(), nn.Linear(hidden, hidden),
                                        activation(), nn.Linear(hidden, act_dim))
        self.actor_logstd = nn.Parameter(torch.zeros(1, act_dim))

    def mean_logstd_value(self, x):
        mean = self.actor_mean(x)
        return mean, self.actor_logstd.expand_as(mean), self.critic(x)


def _agent(env_id: str, activation, hidden: int) -> tuple[CleanRLShapedAgent, int, int]:
    env = gym.make(env_id)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    torch.manual_seed(0)
    agent = CleanRLShapedAgent(obs_dim, act_dim, hidden, activation)
    with torch.no_grad():                     # a "trained" agent: no zero biases, log-std ≠ 0
        for p in agent.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return agent, obs_dim, act_dim


def _raw_observations(env_id: str, count: int = 1200) -> np.ndarray:
    from conftest import random_play_observations
    return random_play_observations(env_id, count)


@pytest.mark.parametrize("env_id,activation,hidden", [("Hopper-v5", "tanh", 64), ("Walker2d-v5", "relu", 40)])
def test_imported_cleanrl_agent_matches(tmp_path, env_id, activation, hidden):
    agent, obs_dim, act_dim = _agent(env_id, {"tanh": nn.Tanh, "relu": nn.ReLU}[activation], hidden)
    model = tmp_path / "ppo_continuous_action.cleanrl_model"
    torch.save(agent.state_dict(), model)
    raw = _raw_observations(env_id)
    rng = np.random.default_rng(2)
    # NormalizeObservation's statistics as they would be after training
    wrapper = gym.wrappers.NormalizeObservation(gym.make(env_id))
    wrapper.update_running_mean = False
    wrapper.obs_rms.mean = raw[1::5].mean(0)
    wrapper.obs_rms.var = raw[1::5].var(0) + rng.uniform(0, 0.1, obs_dim)
    stats = tmp_path / "stats.npz"
    np.savez(stats, mean=wrapper.obs_rms.mean, var=wrapper.obs_rms.var, clip=10.0, return_var=37.5, reward_clip=10.0)
    out = tmp_path / "ckpt.pt"
    argv = ["import", "cleanrl", "--model", str(model), "--env", env_id, "--obs-stats", str(stats),
            "--out", str(out), "--activation", activation]
    assert main(argv) == 0
    ckpt = load_checkpoint(out, expect_env=env_id)
    frozen = ckpt.frozen_agent()

    # CleanRL: NormalizeObservation, then TransformObservation(clip to ±10), then float32
    reference_obs = np.clip(np.stack([wrapper.observation(o) for o in raw]), -10, 10).astype(np.float32)
    ours_obs = frozen.observe(raw)
    assert (np.abs(reference_obs) >= 10).any()
    with torch.no_grad():
        mean, logstd, value = agent.mean_logstd_value(torch.as_tensor(reference_obs))
    diffs = {
        "normalized obs": np.abs(ours_obs - reference_obs).max(),
        "action mean": np.abs(frozen.policy_mean(ours_obs) - mean.numpy()).max(),
        "log-std": np.abs(frozen.log_std - logstd[0].detach().numpy()).max(),
        "value": np.abs(frozen.value(ours_obs).ravel() - value.numpy().ravel()).max(),
        "action mean (torch)": (ckpt.policy(torch.as_tensor(ours_obs)) - mean).abs().max().item(),
    }
    print(f"\nCleanRL {env_id} ({activation}): max abs difference over {len(raw)} observations:",
          ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()),
          f"(largest |mean| {mean.abs().max().item():.2f}, |value| {value.abs().max().item():.2f})")
    assert max(diffs.values()) <= TOLERANCE, diffs
    hp = ckpt.hyperparameters
    assert (hp["policy_hidden"], hp["activation"], hp["obs_clip"]) == ([hidden, hidden], activation, 10.0)
    assert float(ckpt.reward_normalizer["var"]) == 37.5 and hp["normalize_rewards"]
    assert ckpt.provenance["library"] == "cleanrl"


def test_missing_obs_stats_and_bad_files_are_one_line_errors(tmp_path, capsys):
    agent, _, _ = _agent("Hopper-v5", nn.Tanh, 16)
    model = tmp_path / "a.cleanrl_model"
    torch.save(agent.state_dict(), model)
    base = ["import", "cleanrl", "--model", str(model), "--env", "Hopper-v5", "--out", str(tmp_path / "c.pt")]

    def run(extra):
        rc = main(base + extra)
        return rc, capsys.readouterr().err.strip()

    rc, err = run([])
    assert rc == 2 and len(err.splitlines()) == 1 and "--obs-stats" in err and "NormalizeObservation" in err
    np.savez(tmp_path / "short.npz", mean=np.zeros(3), var=np.ones(3), clip=10.0)
    rc, err = run(["--obs-stats", str(tmp_path / "short.npz")])
    assert rc == 2 and "mean has shape (3,): expected 11" in err, err
    np.savez(tmp_path / "noclip.npz", mean=np.zeros(11), var=np.ones(11))
    rc, err = run(["--obs-stats", str(tmp_path / "noclip.npz")])
    assert rc == 2 and "lacks 'clip'" in err, err
    rc, err = run(["--raw-observations"])
    assert rc == 0
    assert not load_checkpoint(tmp_path / "c.pt").hyperparameters["normalize_observations"]
    rc, err = run(["--raw-observations", "--env", "Walker2d-v5"])
    assert rc == 2 and "Walker2d-v5 has 17 and 6" in err, err


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_cleanrl_model_is_refused_without_running_it(tmp_path, capsys):
    marker = tmp_path / "marker"
    model = tmp_path / "evil.cleanrl_model"
    torch.save({"actor_logstd": Payload(marker)}, model)
    rc = main(["import", "cleanrl", "--model", str(model), "--env", "Hopper-v5", "--raw-observations",
               "--out", str(tmp_path / "c.pt")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "refused" in err, err
    assert not marker.exists()
    stats = tmp_path / "evil.npz"
    np.savez(stats, mean=np.array([Payload(marker)], dtype=object), var=np.ones(11), clip=10.0)
    agent, _, _ = _agent("Hopper-v5", nn.Tanh, 16)
    torch.save(agent.state_dict(), tmp_path / "ok.cleanrl_model")
    rc = main(["import", "cleanrl", "--model", str(tmp_path / "ok.cleanrl_model"), "--env", "Hopper-v5",
               "--obs-stats", str(stats), "--out", str(tmp_path / "c.pt")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "without pickles" in err, err
    assert not marker.exists()
