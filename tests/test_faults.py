"""Fault injection: kills, signals, corrupt and malicious files, numerical faults.

Nothing may be lost or half-written, and every refusal is a one-line error.
"""
from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml

from pgprobe.checkpoint import load_checkpoint
from pgprobe.datasets import variable, write_netcdf
from pgprobe.errors import PgprobeError
from pgprobe.train import Trainer

from test_train import assert_same_checkpoint

TINY = {"steps_per_iteration": 256, "minibatches": 4}
ITERATIONS = 8


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"training": {"iterations": ITERATIONS, "checkpoint_iterations": [0, 3, 6, 8],
                                                 "hyperparameters": {"common": TINY}}}))
    return path


def _train_cmd(config: Path, out: Path, algo: str = "ppo") -> list[str]:
    return [sys.executable, "-m", "pgprobe.cli", "train", "--env", "Hopper-v5", "--algo", algo, "--seed", "4",
            "--config", str(config), "--out", str(out), "--no-progress"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("straight")
    out = tmp / "run"
    result = subprocess.run(_train_cmd(_config(tmp), out), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return out


def _history_length(out: Path) -> int:
    path = out / "resume" / "state.history.pt"
    try:
        import json
        return len(json.loads(torch.load(path, weights_only=True)["history_json"]))
    except Exception:
        return 0


def _assert_same_run(a: Path, b: Path) -> None:
    names = sorted(p.name for p in (a / "checkpoints").glob("*.pt"))
    assert names == sorted(p.name for p in (b / "checkpoints").glob("*.pt"))
    for name in names:
        assert_same_checkpoint(a / "checkpoints" / name, b / "checkpoints" / name)
    with xr.open_dataset(a / "train.nc") as x, xr.open_dataset(b / "train.nc") as y:
        xr.testing.assert_equal(x.drop_vars("wall_time"), y.drop_vars("wall_time"))


def _start_and_wait(cmd, out: Path, min_iterations: int, timeout: float = 300):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    while _history_length(out) < min_iterations:
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, "training made no progress"
        time.sleep(0.05)
    return proc


def test_kill9_during_training_then_rerun_gives_identical_result(tmp_path, uninterrupted):
    config, out = _config(tmp_path), tmp_path / "run"
    rng = random.Random(os.getpid())
    proc = _start_and_wait(_train_cmd(config, out), out, min_iterations=2)
    time.sleep(rng.uniform(0.0, 0.6))  # a random instant, possibly inside a write
    proc.kill()
    proc.wait()
    assert not (out / "train.nc").exists()
    done_before = _history_length(out)
    assert done_before < ITERATIONS, "the kill came too late to test anything"
    result = subprocess.run(_train_cmd(config, out), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    _assert_same_run(uninterrupted, out)


def test_sigterm_saves_and_exits_promptly_then_resumes(tmp_path, uninterrupted):
    config, out = _config(tmp_path), tmp_path / "run"
    proc = _start_and_wait(_train_cmd(config, out), out, min_iterations=2)
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert time.time() - sent < 10
    assert "SIGTERM: saved state after iteration" in stderr
    assert stderr.strip().splitlines()[-1].startswith("pgprobe: SIGTERM")
    result = subprocess.run(_train_cmd(config, out), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    _assert_same_run(uninterrupted, out)


def test_kill_during_netcdf_write_leaves_old_or_new_file(tmp_path):
    target = tmp_path / "data.nc"
    script = (
        "import sys, numpy as np, xarray as xr\n"
        "from pgprobe.datasets import variable, write_netcdf\n"
        "i = 0\n"
        "while True:\n"
        "    data = np.full((400, 400), float(i))\n"
        "    ds = xr.Dataset({'x': variable(('a', 'b'), data, 'filler', '1')})\n"
        "    write_netcdf(ds, sys.argv[1]); i += 1\n")
    for attempt in range(3):
        proc = subprocess.Popen([sys.executable, "-c", script, str(target)])
        time.sleep(2.0 + attempt * 0.37)
        proc.kill()
        proc.wait()
        if target.exists():
            with xr.open_dataset(target) as ds:
                values = ds.x.values
                assert (values == values.flat[0]).all(), "a half-written file was visible"
    assert target.exists()
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".data.nc.tmp")]
    # a killed writer may leave its hidden temporary file, never a wrong target file
    assert all(p.name != "data.nc" for p in leftovers)


def test_malicious_pickle_checkpoint_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    path = tmp_path / "evil.pt"
    torch.save({"format": "pgprobe-checkpoint-v1", "payload": Evil()}, path)
    with pytest.raises(PgprobeError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(PgprobeError):
        load_checkpoint(raw)
    assert not marker.exists()


def test_truncated_and_garbage_checkpoints_are_refused(tmp_path, hopper_ppo_checkpoint):
    data = hopper_ppo_checkpoint.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(PgprobeError, match="truncated or corrupt"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(PgprobeError, match="truncated or corrupt|refused|not a pgprobe"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(PgprobeError, match="not a pgprobe checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(PgprobeError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(PgprobeError, match="is for env 'Hopper-v5', expected 'Walker2d-v5'"):
        load_checkpoint(hopper_ppo_checkpoint, expect_env="Walker2d-v5")


def test_nan_parameters_stop_training_with_iteration_and_quantity(tmp_path):
    trainer = Trainer("Hopper-v5", "ppo", 0, {"training": {"iterations": 5, "hyperparameters": {"common": TINY}}})
    trainer.step()
    with torch.no_grad():
        next(trainer.value_net.parameters()).fill_(float("nan"))
    with pytest.raises(PgprobeError, match=r"training diverged at iteration 2: .*(value|not finite|nan)"):
        trainer.step()


def test_probes_refuse_non_finite_checkpoint(tmp_path, hopper_ppo_checkpoint):
    raw = torch.load(hopper_ppo_checkpoint, weights_only=True)
    raw["policy"]["log_std"] = torch.full_like(raw["policy"]["log_std"], float("inf"))
    bad = tmp_path / "nonfinite.pt"
    torch.save(raw, bad)
    with pytest.raises(PgprobeError, match="policy parameters are not finite"):
        load_checkpoint(bad).require_finite()


def test_unwritable_output_location_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    config = _config(tmp_path)
    result = subprocess.run(_train_cmd(config, blocker / "run"), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("pgprobe: error: cannot create output directory")
    ds = __import__("xarray").Dataset({"x": variable(("a",), np.zeros(2), "x", "1")})
    with pytest.raises(PgprobeError, match="cannot create output directory"):
        write_netcdf(ds, blocker / "sub" / "x.nc")


# ----------------------------------------------------------------- bad input at the CLI
def _pgprobe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pgprobe.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def _assert_one_line_refusal(result: subprocess.CompletedProcess, *words: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("pgprobe: error: "), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def _wrong_architecture(checkpoint: Path, out: Path) -> Path:
    raw = torch.load(checkpoint, weights_only=True)
    name, tensor = next(iter(raw["policy"].items()))
    raw["policy"][name] = torch.zeros(tensor.shape[0] + 1, *tensor.shape[1:])
    torch.save(raw, out)
    return out


def _malicious(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    path = tmp_path / "malicious.pt"
    path.write_bytes(pickle.dumps({"policy": Exploit()}))
    return path, marker


@pytest.mark.parametrize("probe, settings, words", [
    ("gradients", {"estimates": -1}, ["estimates", "-1"]),
    ("gradients", {"sample_counts": [0, 128]}, ["sample_counts", "0"]),
    ("steps", {"sample_counts": [128], "estimates": 0}, ["estimates", "0"]),
    ("values", {"heldout_streams": -2}, ["heldout_streams", "-2"]),
    ("baselines", {"sample_counts": [-512]}, ["sample_counts", "-512"]),
    ("landscapes", {"alpha_points": 0}, ["alpha_points", "0"]),
    ("gradients", {"no_such_setting": 1}, ["no_such_setting"]),
])
def test_probe_bad_settings_are_one_line_errors_without_output(tmp_path, hopper_ppo_checkpoint, probe, settings,
                                                               words):
    out = tmp_path / "out.nc"
    result = _pgprobe("probe", probe, "--checkpoint", hopper_ppo_checkpoint, "--out", out,
                      "--settings", __import__("json").dumps(settings))
    _assert_one_line_refusal(result, *words)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["truncated", "architecture", "malicious", "missing"])
def test_probe_refuses_bad_checkpoints_with_one_line(tmp_path, hopper_ppo_checkpoint, kind):
    marker = None
    if kind == "truncated":
        bad = tmp_path / "truncated.pt"
        bad.write_bytes(hopper_ppo_checkpoint.read_bytes()[:5000])
        words = ["truncated or corrupt"]
    elif kind == "architecture":
        bad = _wrong_architecture(hopper_ppo_checkpoint, tmp_path / "arch.pt")
        words = ["does not match its recorded architecture"]
    elif kind == "malicious":
        bad, marker = _malicious(tmp_path)
        words = ["refused"]
    else:
        bad = tmp_path / "missing.pt"
        words = ["not found"]
    out = tmp_path / "out" / "values.nc"
    result = _pgprobe("probe", "values", "--checkpoint", bad, "--out", out)
    _assert_one_line_refusal(result, str(bad), *words)
    assert not out.exists() and not out.parent.exists() or list(out.parent.iterdir()) == []
    if marker is not None:
        assert not marker.exists(), "the malicious checkpoint ran code"


def test_figure_and_collect_refuse_another_probes_dataset(tmp_path):
    values_like = tmp_path / "values.nc"
    ds = xr.Dataset({"mre": variable(("split",), np.zeros(2), "MRE", "1")},
                    attrs={"pgprobe_dataset": "values"})
    write_netcdf(ds, values_like)
    figure = tmp_path / "fig1.pdf"
    result = _pgprobe("figure", "fig1", "--datasets", f"gradients={values_like}", "--out", figure)
    _assert_one_line_refusal(result, str(values_like), "'values'", "expected 'gradients'")
    assert not figure.exists()
    collected = tmp_path / "gradients.nc"
    result = _pgprobe("collect", "--probe", "gradients", "--inputs", values_like, "--out", collected)
    _assert_one_line_refusal(result, str(values_like), "'values'", "'gradients'")
    assert not collected.exists()
    garbage = tmp_path / "garbage.nc"
    garbage.write_bytes(os.urandom(2048))
    result = _pgprobe("figure", "fig1", "--datasets", f"gradients={garbage}", "--out", figure)
    _assert_one_line_refusal(result, str(garbage), "not a readable NetCDF")
    assert not figure.exists()
