"""Shared fixtures: tiny real training runs whose checkpoints the probe tests use."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
# One math-library thread per process, here and in every process a test starts (CLI,
# snakemake jobs; set before torch is imported): pgprobe itself trains and probes with one
# torch thread (pgprobe.train.train, estimators.single_torch_thread), and with pytest-xdist's
# two workers on two cores, multi-threaded torch/BLAS only oversubscribes them (a Trainer
# test took 12.4 s instead of 2.2 s).
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
# Stable-Baselines3's learn() makes a fresh /tmp/SB3-<time> log directory unless told where.
os.environ.setdefault("SB3_LOGDIR", os.path.join(tempfile.gettempdir(), "pgprobe-tests-sb3"))
pytest_plugins = ["xdist_groups"]   # tests/xdist_groups.py
REPO = Path(__file__).resolve().parents[1]
TINY_STEPS = 512

# pytest-xdist (pyproject.toml: -n 2 --dist loadgroup): the tests using one of these
# fixtures run on one worker, in collection order, so that what the fixture builds is built
# once and its users can rely on each other's effects (tests/xdist_groups.py).  tiny_workflow_dir (the tiny DAG,
# minutes) is shared by test_workflow and the SLURM test that compares against it; the
# SLURM tests share one cluster, and there can be one per machine (started as root, its
# state in a fixed directory, its config in /etc/slurm).  The others are module fixtures
# that cost tens of seconds.
XDIST_GROUP_OF_FIXTURE = {
    "tiny_workflow_dir": "tiny_workflow",
    "slurm_cluster_beside_tiny_workflow": "tiny_workflow",
    "slurm_cluster": "slurm",           # the small SLURM tests: a worker of their own
    "touched_study": "touched_study",
    "uninterrupted_training": "train_delivery",
    "uninterrupted": "faults_training",
    "closed_form_landscape": "closed_form_landscape",
    "closed_form_baselines": "closed_form_baselines",
    "agents": "sb3_agents",
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Before pytest-xdist reads them: each test's group (tests/xdist_groups.py)."""
    from xdist_groups import mark_groups

    mark_groups(items, XDIST_GROUP_OF_FIXTURE)


def _train(tmp_root: Path, env_id: str, algo: str, iterations: int, checkpoints: list[int],
           overrides: dict | None = None, steps: int = TINY_STEPS) -> Path:
    from pgprobe.train import train

    hp = {"steps_per_iteration": steps, "minibatches": 8, **(overrides or {})}
    config = {"training": {"iterations": iterations, "checkpoint_iterations": checkpoints,
                           "hyperparameters": {"common": hp}}}
    out = tmp_root / f"{env_id.replace('/', '_')}_{algo}"
    train(env_id, algo, 0, config, out, progress=False)
    return out


@pytest.fixture(scope="session")
def hopper_ppo_run(tmp_path_factory) -> Path:
    """PPO on Hopper-v5, 3 iterations of 512 steps; checkpoints at 0, 1, 3."""
    return _train(tmp_path_factory.mktemp("runs"), "Hopper-v5", "ppo", 3, [0, 1, 3])


@pytest.fixture(scope="session")
def hopper_trpo_run(tmp_path_factory) -> Path:
    """TRPO on Hopper-v5, 3 iterations of 512 steps; checkpoints at 0, 3."""
    return _train(tmp_path_factory.mktemp("runs"), "Hopper-v5", "trpo", 3, [0, 3])


@pytest.fixture(scope="session")
def closed_form_run(tmp_path_factory) -> Path:
    """PPO on the closed-form bandit with observation normalization off (so the analytic
    formulas in pgprobe.closed_form apply to the policy as is); checkpoints at 0, 2."""
    return _train(tmp_path_factory.mktemp("runs"), "pgprobe/LinearQuadraticBandit-v0", "ppo", 2, [0, 2],
                  overrides={"normalize_observations": False, "normalize_rewards": False})


@pytest.fixture(scope="session")
def hopper_ppo_checkpoint(hopper_ppo_run) -> Path:
    return hopper_ppo_run / "checkpoints" / "iter0003.pt"


@pytest.fixture
def far_sighted_short_limit_checkpoint(hopper_ppo_checkpoint):
    """The tiny Hopper PPO checkpoint made far-sighted (γ = 0.999) on Hopper with an 8-step
    time limit: within the limit every return leans ≥ 0.999^8 on the value-net bootstrap."""
    import gymnasium as gym

    from pgprobe.checkpoint import load_checkpoint

    short = "pgprobe-test/HopperShortLimit-v5"
    if short not in gym.registry:
        gym.register(id=short, entry_point="gymnasium.envs.mujoco.hopper_v5:HopperEnv", max_episode_steps=8)
    checkpoint = load_checkpoint(hopper_ppo_checkpoint)
    checkpoint.env_id = short
    checkpoint.hyperparameters["gamma"] = 0.999
    return checkpoint


@pytest.fixture(scope="session")
def hopper_trpo_checkpoint(hopper_trpo_run) -> Path:
    return hopper_trpo_run / "checkpoints" / "iter0003.pt"


@pytest.fixture(scope="session")
def closed_form_checkpoint(closed_form_run) -> Path:
    return closed_form_run / "checkpoints" / "iter0002.pt"


@pytest.fixture(scope="session")
def tiny_workflow_dir(tmp_path_factory) -> Path:
    """The whole DAG of tests/tiny_config.yaml (training, every probe and shard, every
    collect and figure), run once locally with ``snakemake --cores 2`` in a temporary
    directory; its output is in ``first_run.log`` there.  Used by test_workflow (what
    reruns after a change) and test_slurm (the same run through SLURM gives the same
    datasets)."""
    import subprocess
    import sys

    workdir = tmp_path_factory.mktemp("workflow")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the pgprobe CLI
    env.setdefault("SOURCE_DATE_EPOCH", "0")
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--directory", str(workdir), "-s", str(REPO / "Snakefile"),
         "--cores", "2", "--configfile", str(REPO / "tests" / "tiny_config.yaml")],
        capture_output=True, text=True, env=env, timeout=1800, cwd=workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    workdir.joinpath("first_run.log").write_text(result.stdout + result.stderr)
    return workdir


@pytest.fixture
def saved_figures(monkeypatch) -> list:
    """Every matplotlib Figure saved during the test, in order (so that a figure test can
    compare the plotted line data with the dataset it was drawn from)."""
    from matplotlib.figure import Figure

    saved: list = []
    original = Figure.savefig

    def recording_savefig(self, *args, **kwargs):
        saved.append(self)
        return original(self, *args, **kwargs)
    monkeypatch.setattr(Figure, "savefig", recording_savefig)
    return saved


def plotted_lines(axes, point_count: int) -> list:
    """(x, y) arrays of the data lines of an Axes with ``point_count`` points; vertical
    reference lines (axvline: one x value) are left out."""
    import numpy as np

    lines = [(np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)) for line in axes.lines]
    return [(x, y) for x, y in lines if len(x) == point_count and len(np.unique(x)) > 1]


def random_play_observations(env_id: str, count: int = 1200):
    """Raw observations of random play (uniform actions in [-1, 1]), every fifth one blown
    up ×50 so that observation clipping is exercised (the import equivalence tests)."""
    import gymnasium as gym
    import numpy as np

    env = gym.make(env_id)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    rows = []
    for _ in range(count):
        rows.append(obs)
        obs, _, term, trunc, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
        if term or trunc:
            obs, _ = env.reset()
    raw = np.array(rows, np.float64)
    raw[::5] *= 50.0
    return raw
