"""Checkpoint series (pgprobe.importers.series): one run's saved checkpoints imported as one run.

A tiny SB3 PPO agent (Hopper-v5, VecNormalize, n_steps 128) trained for 640 steps with SB3's
own CheckpointCallback every 160 steps: rl_model_{160,320,480,640}_steps.zip and
rl_model_vecnormalize_*_steps.pkl, i.e. iterations ⌈S/128⌉ − 1 = 1, 2, 3, 4 (640 is a
multiple of the batch: saved before that rollout's update).  CleanRL series are built
from CleanRL-shaped state dicts.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3")
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.vec_env import VecNormalize  # noqa: E402

from pgprobe.checkpoint import load_checkpoint  # noqa: E402
from pgprobe.cli import main  # noqa: E402

SAVE_EVERY, BATCH, TOTAL = 160, 128, 640
STEPS = [160, 320, 480, 640]
MODEL_PATTERN, VECNORM_PATTERN = "rl_model_{steps}_steps.zip", "rl_model_vecnormalize_{steps}_steps.pkl"


class UpdatesAtSave(BaseCallback):
    """Records, at each CheckpointCallback save step, how many train() calls had run and the
    policy's log-std (the truth the importer's iteration and parameters must match)."""

    def __init__(self):
        super().__init__()
        self.seen: dict[int, tuple[int, torch.Tensor]] = {}
        self.trains = 0

    def _on_rollout_start(self) -> None:
        self.trains = self.model._n_updates   # n_epochs = 1: one per train()

    def _on_step(self) -> bool:
        if self.num_timesteps % SAVE_EVERY == 0:
            self.seen[self.num_timesteps] = (self.trains, self.model.policy.log_std.detach().clone())
        return True


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> dict:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("series")
    venv = VecNormalize(make_vec_env("Hopper-v5", n_envs=1, seed=0))
    model = PPO("MlpPolicy", venv, seed=0, device="cpu", n_steps=BATCH, batch_size=64, n_epochs=1,
                policy_kwargs={"net_arch": [16]})
    truth = UpdatesAtSave()
    model.learn(TOTAL, callback=[CheckpointCallback(SAVE_EVERY, str(root / "logs"), save_vecnormalize=True), truth])
    return {"dir": root / "logs", "truth": truth.seen}


def _copy(series: dict, dst: Path, drop: tuple[str, ...] = ()) -> Path:
    shutil.copytree(series["dir"], dst)
    for name in drop:
        (dst / name).unlink()
    return dst


def _import(capsys, source: str, model, pair_flag: str, pair, out_dir: Path, *extra) -> tuple[int, str]:
    argv = ["import", source, "--model", *([model] if isinstance(model, str) else model), "--env", "Hopper-v5",
            "--out-dir", str(out_dir), *extra]
    if pair is not None:
        argv += [pair_flag, *([pair] if isinstance(pair, str) else pair)]
    capsys.readouterr()
    rc = main(argv)
    return rc, capsys.readouterr().err.strip()


def test_series_pattern_imports_each_checkpoint_at_its_iteration(series, tmp_path, capsys):
    logs = series["dir"]
    rc, err = _import(capsys, "sb3", str(logs / MODEL_PATTERN), "--vecnormalize", str(logs / VECNORM_PATTERN),
                      tmp_path / "out")
    assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"iter000{i}.pt" for i in (1, 2, 3, 4)]
    for steps in STEPS:
        trains, log_std = series["truth"][steps]
        ckpt = load_checkpoint(tmp_path / "out" / f"iter{(steps - 1) // BATCH:04d}.pt")
        assert ckpt.iteration == trains == (steps - 1) // BATCH, steps     # updates made when saved
        assert ckpt.env_steps == steps
        assert torch.equal(ckpt.policy.log_std.detach(), log_std)          # the parameters saved then
        assert ckpt.provenance["vecnormalize_file"].endswith(f"rl_model_vecnormalize_{steps}_steps.pkl")
    # one file alone (no --steps) gets the same iteration, from the zip's update count
    assert main(["import", "sb3", "--model", str(logs / MODEL_PATTERN.format(steps=640)), "--env", "Hopper-v5",
                 "--out", str(tmp_path / "alone.pt")]) == 0
    assert (load_checkpoint(tmp_path / "alone.pt").iteration, load_checkpoint(tmp_path / "alone.pt").env_steps) == (4, 640)
    # the list form (any order) gives the same checkpoints
    files = [str(logs / MODEL_PATTERN.format(steps=s)) for s in reversed(STEPS)]
    pairs = [str(logs / VECNORM_PATTERN.format(steps=s)) for s in STEPS]
    rc, err = _import(capsys, "sb3", files, "--vecnormalize", pairs, tmp_path / "listed")
    assert rc == 0, err
    for i in (1, 2, 3, 4):
        a, b = (load_checkpoint(tmp_path / d / f"iter000{i}.pt") for d in ("out", "listed"))
        assert all(torch.equal(x, y) for x, y in zip(a.policy.state_dict().values(), b.policy.state_dict().values()))
        assert np.array_equal(a.obs_normalizer["mean"], b.obs_normalizer["mean"])


def _refused(capsys, *args) -> str:
    rc, err = _import(capsys, *args)
    assert rc == 2 and len(err.splitlines()) == 1, err
    return err


def test_series_missing_vecnormalize_pair_is_one_line_error(series, tmp_path, capsys):
    logs = _copy(series, tmp_path / "logs", drop=("rl_model_vecnormalize_320_steps.pkl",))
    err = _refused(capsys, "sb3", str(logs / MODEL_PATTERN), "--vecnormalize", str(logs / VECNORM_PATTERN),
                   tmp_path / "out")
    assert "rl_model_320_steps.zip' (step 320) has no VecNormalize statistics pair" in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.pt"))
    err = _refused(capsys, "sb3", str(logs / MODEL_PATTERN), "--vecnormalize",
                   str(logs / "rl_model_vecnormalize_160_steps.pkl"), tmp_path / "out")
    assert "is one file for a series" in err, err


def test_series_gap_in_steps_is_one_line_error(series, tmp_path, capsys):
    logs = _copy(series, tmp_path / "logs", drop=("rl_model_320_steps.zip", "rl_model_vecnormalize_320_steps.pkl"))
    err = _refused(capsys, "sb3", str(logs / MODEL_PATTERN), "--vecnormalize", str(logs / VECNORM_PATTERN),
                   tmp_path / "out")
    assert "gap in steps: 160 is followed by 480" in err and "step 320 is missing" in err, err


def test_series_mixed_architectures_is_one_line_error(series, tmp_path, capsys):
    logs = _copy(series, tmp_path / "logs")
    other = PPO("MlpPolicy", "Hopper-v5", seed=0, device="cpu", n_steps=BATCH, policy_kwargs={"net_arch": [8]})
    other.save(logs / "rl_model_800_steps.zip")
    shutil.copy(logs / "rl_model_vecnormalize_640_steps.pkl", logs / "rl_model_vecnormalize_800_steps.pkl")
    err = _refused(capsys, "sb3", str(logs / MODEL_PATTERN), "--vecnormalize", str(logs / VECNORM_PATTERN),
                   tmp_path / "out")
    assert "mixed architectures" in err and "rl_model_800_steps.zip" in err and "[8]" in err and "[16]" in err, err


def test_series_file_named_for_other_steps_and_bad_patterns_are_one_line_errors(series, tmp_path, capsys):
    logs = _copy(series, tmp_path / "logs")
    (logs / "rl_model_800_steps.zip").write_bytes((logs / "rl_model_640_steps.zip").read_bytes())
    shutil.copy(logs / "rl_model_vecnormalize_640_steps.pkl", logs / "rl_model_vecnormalize_800_steps.pkl")
    err = _refused(capsys, "sb3", str(logs / MODEL_PATTERN), "--vecnormalize", str(logs / VECNORM_PATTERN),
                   tmp_path / "out")
    assert "named for step 800 but the model's num_timesteps is 640" in err, err
    err = _refused(capsys, "sb3", str(logs / "rl_model_*_{steps}.zip"), "--vecnormalize", str(logs / VECNORM_PATTERN),
                   tmp_path / "out")
    assert "glob characters" in err, err
    err = _refused(capsys, "sb3", str(tmp_path / "none_{steps}.zip"), "--vecnormalize", None, tmp_path / "out")
    assert "no file matches" in err, err
    capsys.readouterr()
    rc = main(["import", "sb3", "--model", str(logs / MODEL_PATTERN), "--env", "Hopper-v5", "--out", "x.pt"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "expected --out-dir DIR" in err and len(err.splitlines()) == 1, err


# ----------------------------------------------------------------------------- CleanRL
def _cleanrl_state(hidden: int, seed: int) -> dict:
    from torch import nn
    torch.manual_seed(seed)
    seq = lambda out: nn.Sequential(nn.Linear(11, hidden), nn.Tanh(), nn.Linear(hidden, out))  # noqa: E731
    state = {**{f"critic.{k}": v for k, v in seq(1).state_dict().items()},
             **{f"actor_mean.{k}": v for k, v in seq(3).state_dict().items()},
             "actor_logstd": torch.full((1, 3), -0.5 - seed / 10)}
    return state


def test_cleanrl_series_and_its_refusals(tmp_path, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    for k, steps in enumerate((2048, 4096, 6144)):
        torch.save(_cleanrl_state(16, k), runs / f"agent_{steps}.cleanrl_model")
        np.savez(runs / f"stats_{steps}.npz", mean=np.full(11, k), var=np.ones(11), clip=10.0)
    rc, err = _import(capsys, "cleanrl", str(runs / "agent_{steps}.cleanrl_model"), "--obs-stats",
                      str(runs / "stats_{steps}.npz"), tmp_path / "out", "--num-steps", "1024")
    assert rc == 0, err
    for k, steps in enumerate((2048, 4096, 6144)):
        ckpt = load_checkpoint(tmp_path / "out" / f"iter{steps // 1024:04d}.pt")     # ⌊S / num_steps⌋
        assert (ckpt.iteration, ckpt.env_steps) == (steps // 1024, steps)
        assert float(ckpt.obs_normalizer["mean"][0]) == k                            # paired by step count
        assert float(ckpt.policy.log_std.detach()[0]) == pytest.approx(-0.5 - k / 10)
    torch.save(_cleanrl_state(24, 3), runs / "agent_8192.cleanrl_model")
    np.savez(runs / "stats_8192.npz", mean=np.zeros(11), var=np.ones(11), clip=10.0)
    err = _refused(capsys, "cleanrl", str(runs / "agent_{steps}.cleanrl_model"), "--obs-stats",
                   str(runs / "stats_{steps}.npz"), tmp_path / "out2")
    assert "mixed architectures" in err and "agent_8192.cleanrl_model" in err, err
    (runs / "agent_8192.cleanrl_model").unlink()
    (runs / "stats_4096.npz").unlink()
    err = _refused(capsys, "cleanrl", str(runs / "agent_{steps}.cleanrl_model"), "--obs-stats",
                   str(runs / "stats_{steps}.npz"), tmp_path / "out2")
    assert "(step 4096) has no observation statistics pair" in err, err


# ----------------------------------------------------------------------------- the workflow
def test_workflow_probes_every_checkpoint_of_a_series(series, tmp_path):
    """config agents with a series: one import job per file (iteration from its steps), every
    listed probe at every checkpoint, env_steps in the datasets; a gap stops parsing with one
    line naming the agent."""
    from test_workflow import job_counts, snakemake, write_config

    from pgprobe.collect import collect

    logs = series["dir"]
    agent = {"source": "sb3", "env": "Hopper-v5", "path": str(logs / MODEL_PATTERN),
             "vecnormalize": str(logs / VECNORM_PATTERN), "probes": ["values"]}
    config = write_config(tmp_path, "series.yaml", {"agents": {"zoo": agent}})
    targets = [f"results/probes/values/Hopper-v5/zoo/seed0/iter000{i}.nc" for i in (1, 2, 3, 4)]
    dry = snakemake(tmp_path, *targets, "-n", config=config, timeout=600)
    assert dry.returncode == 0, dry.stdout[-2000:] + dry.stderr[-3000:]
    assert job_counts(dry.stdout + dry.stderr) == {"import_agent": 4, "probe_values": 4}
    chosen = write_config(tmp_path, "chosen.yaml", {"agents": {"zoo": {**agent, "steps": [160, 640]}}})
    dry = snakemake(tmp_path, "-n", "--quiet", "rules", config=chosen, timeout=600)
    counts = job_counts(dry.stdout + dry.stderr)
    assert (counts["import_agent"], counts["probe_values"]) == (2, 4), counts    # + the tiny config's 2 runs
    unknown = write_config(tmp_path, "unknown.yaml", {"agents": {"zoo": {**agent, "steps": [161]}}})
    refused = snakemake(tmp_path, "-n", config=unknown, timeout=600)
    assert "agents.zoo.steps: 161 is not a step count of the series (160, 320, 480, 640)" in refused.stderr, \
        refused.stderr[-2000:]
    run = snakemake(tmp_path, targets[0], targets[3], config=config, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    merged = collect("values", [str(tmp_path / targets[0]), str(tmp_path / targets[3])], tmp_path / "values.nc")
    assert list(merged["iteration"].values) == [1, 4]
    assert merged["env_steps"].sel(algo="zoo").values.ravel().tolist() == [160.0, 640.0]

    gapped = _copy(series, tmp_path / "gapped", drop=("rl_model_480_steps.zip",))
    bad = write_config(tmp_path, "bad.yaml", {"agents": {"zoo": {**agent, "path": str(gapped / MODEL_PATTERN),
                                                                  "vecnormalize": str(gapped / VECNORM_PATTERN)}}})
    refused = snakemake(tmp_path, "-n", config=bad, timeout=600)
    lines = [line for line in (refused.stdout + refused.stderr).splitlines() if "pgprobe config error" in line]
    assert refused.returncode != 0 and len(lines) == 1, refused.stderr[-2000:]
    assert "agents.zoo: path: gap in steps: 320 is followed by 640" in lines[0], lines[0]
