"""pgprobe import sb3: equivalence with SB3's own policy, refusals, and SB3's PPO update rule.

Two tiny SB3 PPO agents (1024 steps each, VecNormalize) saved the RL Zoo way
(``ENV.zip`` + ``ENV/vecnormalize.pkl``): Hopper-v5 (act dim 3, default tanh [64, 64]) and
Walker2d-v5 (act dim 6, ReLU, pi [32, 32] / vf [48], entropy bonus, value clipping,
a minibatch size that does not divide the rollout).
"""
from __future__ import annotations

import base64
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

sb3 = pytest.importorskip("stable_baselines3")
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.vec_env import VecNormalize  # noqa: E402

from pgprobe.algos.common import UpdateBatch  # noqa: E402
from pgprobe.algos.sb3_ppo import sb3_ppo_updated_networks  # noqa: E402
from pgprobe.checkpoint import load_checkpoint  # noqa: E402
from pgprobe.cli import main  # noqa: E402
from pgprobe.importers.sb3 import pgprobe_parameter_names  # noqa: E402
from pgprobe.policies import gaussian_log_prob  # noqa: E402

AGENTS = {
    "Hopper-v5": dict(n_steps=512, batch_size=64, n_epochs=2),
    "Walker2d-v5": dict(n_steps=512, batch_size=100, n_epochs=3, ent_coef=0.01, clip_range_vf=0.3,
                        max_grad_norm=0.3, policy_kwargs=dict(net_arch=dict(pi=[32, 32], vf=[48]),
                                                              activation_fn=torch.nn.ReLU)),
}
TOLERANCE = 1e-5


class Payload:
    """Unpickling this object creates ``marker`` (it must never happen)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _train(env_id: str, root: Path) -> dict:
    torch.set_num_threads(1)
    venv = VecNormalize(make_vec_env(env_id, n_envs=1, seed=0))
    model = PPO("MlpPolicy", venv, seed=0, device="cpu", **AGENTS[env_id])
    model.learn(1024)
    run = root / "ppo" / f"{env_id}_1"          # RL Zoo layout
    (run / env_id).mkdir(parents=True)
    model.save(run / f"{env_id}.zip")
    venv.save(run / env_id / "vecnormalize.pkl")
    return {"model": model, "zip": run / f"{env_id}.zip", "vecnormalize": run / env_id / "vecnormalize.pkl"}


@pytest.fixture(scope="module")
def agents(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("zoo")
    return {env_id: _train(env_id, root) for env_id in AGENTS}


def _import(agent: dict, env_id: str, out: Path) -> Path:
    assert main(["import", "sb3", "--model", str(agent["zip"]), "--vecnormalize", str(agent["vecnormalize"]),
                 "--env", env_id, "--out", str(out)]) == 0
    return out


def _raw_observations(env_id: str, count: int = 1200) -> np.ndarray:
    from conftest import random_play_observations
    return random_play_observations(env_id, count)


@pytest.mark.parametrize("env_id", list(AGENTS))
def test_imported_agent_matches_sb3(agents, env_id, tmp_path):
    agent = agents[env_id]
    ckpt = load_checkpoint(_import(agent, env_id, tmp_path / "ckpt.pt"), expect_env=env_id)
    model = PPO.load(agent["zip"], device="cpu")
    venv = VecNormalize.load(str(agent["vecnormalize"]), make_vec_env(env_id, n_envs=1))
    raw = _raw_observations(env_id)
    frozen = ckpt.frozen_agent()

    ours_obs = frozen.observe(raw)
    sb3_obs = venv.normalize_obs(raw).astype(np.float32)
    assert (np.abs(sb3_obs) >= venv.clip_obs).any()          # clipping was exercised
    obs_t = torch.as_tensor(sb3_obs)
    actions = torch.as_tensor(np.random.default_rng(1).normal(size=(len(raw), ckpt.act_dim)), dtype=torch.float32)
    with torch.no_grad():
        sb3_mean = model.policy.get_distribution(obs_t).distribution.mean
        sb3_values, sb3_log_prob, sb3_entropy = model.policy.evaluate_actions(obs_t, actions)
        sb3_predicted = model.policy.predict_values(obs_t)
        torch_mean = ckpt.policy(obs_t)
        diffs = {
            "normalized obs": np.abs(ours_obs - sb3_obs).max(),
            "action mean (numpy sampler)": np.abs(frozen.policy_mean(ours_obs) - sb3_mean.numpy()).max(),
            "action mean (torch)": (torch_mean - sb3_mean).abs().max().item(),
            "log-std": np.abs(frozen.log_std - model.policy.log_std.numpy()).max(),
            "value (numpy sampler)": np.abs(frozen.value(ours_obs).ravel() - sb3_predicted.numpy().ravel()).max(),
            "value (torch, evaluate_actions)": (ckpt.value_net(obs_t) - sb3_values.ravel()).abs().max().item(),
            "log-prob": (gaussian_log_prob(torch_mean, ckpt.policy.log_std, actions) - sb3_log_prob).abs().max().item(),
            "entropy": (ckpt.policy.entropy() - sb3_entropy).abs().max().item(),
        }
    print(f"\n{env_id}: max abs difference over {len(raw)} observations:",
          ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    assert max(diffs.values()) <= TOLERANCE, diffs
    assert np.abs(sb3_mean.numpy()).max() > 1e-3            # not a trivially zero policy


def test_imported_checkpoint_records_architecture_and_provenance(agents, tmp_path):
    agent = agents["Walker2d-v5"]
    ckpt = load_checkpoint(_import(agent, "Walker2d-v5", tmp_path / "w.pt"))
    hp = ckpt.hyperparameters
    assert (hp["policy_hidden"], hp["value_hidden"], hp["activation"]) == ([32, 32], [48], "relu")
    assert (hp["minibatch_size"], hp["policy_epochs"], hp["entropy_coef"], hp["clip_range_vf"]) == (100, 3, 0.01, 0.3)
    assert (hp["clip_epsilon"], hp["policy_lr"], hp["update_rule"]) == (0.2, 3e-4, "sb3_ppo")
    assert ckpt.algo == "ppo" and ckpt.iteration == 2
    prov = ckpt.provenance
    assert prov["library"] == "stable-baselines3" and prov["library_version"] == sb3.__version__
    assert prov["source_file"] == str(agent["zip"].resolve())
    import hashlib
    assert prov["source_sha256"] == hashlib.sha256(agent["zip"].read_bytes()).hexdigest()
    assert prov["vecnormalize_sha256"] == hashlib.sha256(agent["vecnormalize"].read_bytes()).hexdigest()
    raw = torch.load(tmp_path / "w.pt", weights_only=True)          # an ordinary, safe checkpoint
    assert raw["format"] == "pgprobe-checkpoint-v1"


def test_sb3_ppo_update_matches_sb3_train(agents, tmp_path):
    """Same parameters, optimizer state and rollout buffer: one SB3 train() call and
    sb3_ppo_update give the same parameters (minibatch order fixed by seeding np.random)."""
    env_id = "Walker2d-v5"
    agent = agents[env_id]
    model = agent["model"]
    ckpt = load_checkpoint(_import(agent, env_id, tmp_path / "u.pt"))
    buf = model.rollout_buffer          # the last rollout, flattened by the last train()
    flat = lambda a: torch.as_tensor(np.asarray(a, np.float32).reshape(len(buf.observations), -1))  # noqa: E731
    batch = UpdateBatch(obs=flat(buf.observations), actions=flat(buf.actions),
                        old_log_probs=flat(buf.log_probs)[:, 0], old_values=flat(buf.values)[:, 0],
                        advantages=flat(buf.advantages)[:, 0], normalized_advantages=flat(buf.advantages)[:, 0],
                        value_targets=flat(buf.returns)[:, 0], returns=flat(buf.returns)[:, 0])
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}

    saved_moments = [entry["exp_avg"].clone() for entry in ckpt.policy_optimizer_state["state"].values()]

    np.random.seed(1234)
    policy, value_net, stats = sb3_ppo_updated_networks(ckpt, batch, np.random)
    np.random.seed(1234)
    model.train()

    after = model.policy.state_dict()
    ours = [*policy.parameters(), *value_net.parameters()]
    sizes = {"pi": ckpt.hyperparameters["policy_hidden"], "vf": ckpt.hyperparameters["value_hidden"]}
    names = pgprobe_parameter_names(sizes)
    moved = max((after[n] - before[n]).abs().max().item() for n in names)
    diff = max((p.detach() - after[n]).abs().max().item() for p, n in zip(ours, names))
    exp_avg = stats["optimizer_state"]["state"]
    sb3_state = model.policy.optimizer.state_dict()["state"]
    sb3_index = {n: i for i, n in enumerate(model.policy.state_dict())}
    moment_diff = max((exp_avg[i]["exp_avg"] - sb3_state[sb3_index[n]]["exp_avg"]).abs().max().item()
                      for i, n in enumerate(names))
    print(f"\nSB3 PPO update ({stats['steps']} Adam steps, parameters moved up to {moved:.2e}): "
          f"max abs parameter difference {diff:.2e}, Adam first moment {moment_diff:.2e}")
    assert stats["steps"] == 3 * 6 and moved > 1e-3
    assert diff == 0 and moment_diff == 0      # bit for bit
    # the checkpoint is untouched: parameters and Adam state
    assert (ckpt.policy.log_std == torch.as_tensor(before["log_std"])).all()
    assert all((entry["exp_avg"] == saved).all()
               for entry, saved in zip(ckpt.policy_optimizer_state["state"].values(), saved_moments))


def test_update_rule_refuses_unreadable_hyperparameters(agents, tmp_path):
    from pgprobe.errors import PgprobeError
    ckpt = load_checkpoint(_import(agents["Hopper-v5"], "Hopper-v5", tmp_path / "h.pt"))
    batch = UpdateBatch.from_arrays(np.zeros((8, 11)), np.zeros((8, 3)), np.zeros(8), np.zeros(8), np.ones(8), np.ones(8))
    ckpt.hyperparameters["clip_epsilon"] = "schedule"
    with pytest.raises(PgprobeError, match="clip_epsilon='schedule': expected a constant number"):
        sb3_ppo_updated_networks(ckpt, batch, np.random.default_rng(0))
    ckpt.hyperparameters["update_rule"] = None
    with pytest.raises(PgprobeError, match="update rule None: expected 'sb3_ppo'"):
        sb3_ppo_updated_networks(ckpt, batch, np.random.default_rng(0))


@pytest.mark.parametrize("kind", ["a2c", "ppo unshared extractors"])
def test_a2c_and_unshared_feature_extractors_import(tmp_path, kind):
    """A2C's networks import the same way (no update rule); share_features_extractor=False
    changes nothing for an MlpPolicy (FlattenExtractor has no parameters)."""
    from stable_baselines3 import A2C
    if kind == "a2c":
        model = A2C("MlpPolicy", "Hopper-v5", device="cpu", seed=0)
    else:
        model = PPO("MlpPolicy", "Hopper-v5", device="cpu", seed=0,
                    policy_kwargs=dict(share_features_extractor=False, net_arch=[16]))
    model.save(tmp_path / "m.zip")
    assert main(["import", "sb3", "--model", str(tmp_path / "m.zip"), "--env", "Hopper-v5",
                 "--out", str(tmp_path / "c.pt")]) == 0
    ckpt = load_checkpoint(tmp_path / "c.pt")
    obs = torch.as_tensor(_raw_observations("Hopper-v5", 1000), dtype=torch.float32)
    with torch.no_grad():
        assert (ckpt.policy(obs) - model.policy.get_distribution(obs).distribution.mean).abs().max() <= TOLERANCE
        assert (ckpt.value_net(obs) - model.policy.predict_values(obs).ravel()).abs().max() <= TOLERANCE
    assert (ckpt.algo, ckpt.hyperparameters["update_rule"]) == (("a2c", None) if kind == "a2c" else ("ppo", "sb3_ppo"))


# ----------------------------------------------------------------------------- refusals
def _rewrite_zip(src: Path, dst: Path, replace: dict) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, replace.get(name, zin.read(name)))
    return dst


def _edited_data(src: Path, dst: Path, edit) -> Path:
    with zipfile.ZipFile(src) as z:
        data = json.loads(z.read("data"))
    edit(data)
    return _rewrite_zip(src, dst, {"data": json.dumps(data)})


def _run_import(capsys, model: Path, tmp_path: Path, vecnormalize: Path | None = None, env_id="Hopper-v5"):
    argv = ["import", "sb3", "--model", str(model), "--env", env_id, "--out", str(tmp_path / "x.pt")]
    if vecnormalize is not None:
        argv += ["--vecnormalize", str(vecnormalize)]
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    return rc, err


def test_malicious_vecnormalize_is_refused_without_running_it(agents, tmp_path, capsys):
    marker = tmp_path / "marker"
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps(Payload(marker)))
    # the real statistics with a payload hidden among them
    with open(agents["Hopper-v5"]["vecnormalize"], "rb") as fh:
        state = pickle.load(fh)
    state.hidden = Payload(marker)
    state.class_attributes, state.returns = {}, np.zeros(1)     # what VecNormalize.__getstate__ drops
    hidden = tmp_path / "hidden.pkl"
    hidden.write_bytes(pickle.dumps(state))
    for path in (plain, hidden):
        rc, err = _run_import(capsys, agents["Hopper-v5"]["zip"], tmp_path, vecnormalize=path)
        assert rc == 2 and len(err.splitlines()) == 1, err
        assert "refused" in err and "open" in err, err
        assert not marker.exists()
        assert not (tmp_path / "x.pt").exists()


def test_malicious_model_zip_is_refused_without_running_it(agents, tmp_path, capsys):
    marker = tmp_path / "marker"
    src = agents["Hopper-v5"]["zip"]
    with zipfile.ZipFile(src) as z:
        state = torch.load(z.open("policy.pth"), weights_only=True)
    state["log_std"] = Payload(marker)
    import io
    blob = io.BytesIO()
    torch.save(state, blob)
    evil_policy = _rewrite_zip(src, tmp_path / "evil_policy.zip", {"policy.pth": blob.getvalue()})
    payload = base64.b64encode(pickle.dumps(Payload(marker))).decode()
    evil_class = _edited_data(src, tmp_path / "evil_class.zip",
                              lambda d: d["policy_class"].update({":serialized:": payload}))
    for model, expected in ((evil_policy, "refused"), (evil_class, "not a plain class reference")):
        rc, err = _run_import(capsys, model, tmp_path)
        assert rc == 2 and len(err.splitlines()) == 1 and expected in err, err
        assert not marker.exists()
    # serialized entries pgprobe does not need are never unpickled: the import succeeds
    harmless = _edited_data(src, tmp_path / "evil_schedule.zip",
                            lambda d: d["lr_schedule"].update({":serialized:": payload}))
    rc, err = _run_import(capsys, harmless, tmp_path)
    assert rc == 0 and not marker.exists(), err


def _policy_kwargs(data: dict) -> dict:
    data.setdefault("policy_kwargs", {})
    return data["policy_kwargs"]


UNSUPPORTED = {
    "gSDE": (lambda d: d.update(use_sde=True), "gSDE (use_sde=True)"),
    "squash": (lambda d: _policy_kwargs(d).update(squash_output=True), "squashed outputs"),
    "shared layers": (lambda d: _policy_kwargs(d).update(net_arch=[64, {"pi": [64], "vf": [64]}]), "shared layers"),
    "image obs": (lambda d: d["observation_space"].update(_shape=[84, 84, 3]), "image observations"),
    "dict obs": (lambda d: d["observation_space"].update({":type:": "<class 'gymnasium.spaces.dict.Dict'>"}),
                 "gymnasium.spaces.dict.Dict"),
    "discrete actions": (lambda d: d["action_space"].update({":type:": "<class 'gymnasium.spaces.discrete.Discrete'>"}),
                         "gymnasium.spaces.discrete.Discrete"),
    "features extractor": (lambda d: _policy_kwargs(d).update(
        features_extractor_class="<class 'stable_baselines3.common.torch_layers.NatureCNN'>"), "NatureCNN"),
    "activation": (lambda d: _policy_kwargs(d).update(activation_fn="<class 'torch.nn.modules.activation.ELU'>"),
                   "activation.ELU"),
    "policy class": (lambda d: d["policy_class"].update({":serialized:": base64.b64encode(
        pickle.dumps(pickle.Pickler)).decode()}), "policy class _pickle.Pickler"),
}


@pytest.mark.parametrize("case", list(UNSUPPORTED))
def test_unsupported_agents_are_refused_with_one_line(agents, tmp_path, capsys, case):
    edit, expected = UNSUPPORTED[case]
    model = _edited_data(agents["Hopper-v5"]["zip"], tmp_path / "m.zip", edit)
    rc, err = _run_import(capsys, model, tmp_path)
    assert rc == 2 and len(err.splitlines()) == 1 and expected in err, err


def test_wrong_env_and_missing_files_are_one_line_errors(agents, tmp_path, capsys):
    rc, err = _run_import(capsys, agents["Hopper-v5"]["zip"], tmp_path, env_id="Walker2d-v5")
    assert rc == 2 and "Walker2d-v5 has 17 and 6" in err
    rc, err = _run_import(capsys, tmp_path / "nope.zip", tmp_path)
    assert rc == 2 and "not found" in err
    rc, err = _run_import(capsys, agents["Hopper-v5"]["zip"], tmp_path, vecnormalize=agents["Walker2d-v5"]["vecnormalize"])
    assert rc == 2 and "statistics of 17 observations: expected 11" in err, err


def test_steps_probe_runs_sb3_update_and_refuses_an_unknown_rule(agents, tmp_path, capsys):
    """The update-based probes apply an SB3 import's own update rule (pgprobe.update); an
    imported agent without a known rule gets a one-line refusal and no output."""
    import json

    from pgprobe.datasets import open_dataset

    ckpt_path = _import(agents["Hopper-v5"], "Hopper-v5", tmp_path / "h.pt")
    settings = json.dumps({"sample_counts": [256], "estimates": 2, "reference_samples": 512,
                           "reference_stream_steps": 256, "chunk_size": 2})
    out = tmp_path / "steps.nc"
    assert main(["probe", "steps", "--checkpoint", str(ckpt_path), "--out", str(out), "--settings", settings,
                 "--workers", "1"]) == 0
    steps = open_dataset(out, kind="steps").isel(env=0, algo=0, seed=0, iteration=0)
    assert (steps["estimate_norm"].values > 0).all() and float(steps["reference_norm"]) > 0
    raw = torch.load(ckpt_path, weights_only=True)
    hp = json.loads(raw["hyperparameters_json"])
    hp["update_rule"] = None
    raw["hyperparameters_json"] = json.dumps(hp)
    unknown = tmp_path / "unknown.pt"
    torch.save(raw, unknown)
    capsys.readouterr()
    refused = tmp_path / "refused.nc"
    assert main(["probe", "steps", "--checkpoint", str(unknown), "--out", str(refused), "--settings", settings]) == 2
    err = capsys.readouterr().err
    assert "no known update rule" in err and err.count("\n") == 1, err
    assert not refused.exists()
