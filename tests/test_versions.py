"""Package versions in every artefact, and the refusals that keep mixed versions apart:
checkpoints, train.nc and probe datasets record them; ``pgprobe collect`` and the shard
gather refuse physics-relevant differences; the claims table names its data's versions."""
from __future__ import annotations

from importlib import metadata

import numpy as np
import pytest
import xarray as xr

from pgprobe import claims
from pgprobe.checkpoint import load_checkpoint
from pgprobe.cli import main
from pgprobe.collect import collect
from pgprobe.datasets import add_run_coords, open_dataset, provenance, variable, write_netcdf
from pgprobe.errors import PgprobeError
from pgprobe.probes.sharding import gather, shard_attrs

INSTALLED = {"numpy_version": metadata.version("numpy"), "torch_version": metadata.version("torch"),
             "mujoco_version": metadata.version("mujoco"), "gymnasium_version": metadata.version("gymnasium")}


def test_checkpoints_and_train_nc_record_the_installed_versions(hopper_ppo_run):
    import platform

    train = open_dataset(hopper_ppo_run / "train.nc", kind="training")
    ckpt = load_checkpoint(hopper_ppo_run / "checkpoints" / "iter0001.pt")
    for attrs in (train.attrs, ckpt.versions):
        assert {k: attrs[k] for k in INSTALLED} == INSTALLED
        assert attrs["python_version"] == platform.python_version()


def test_probe_datasets_record_the_installed_versions(hopper_ppo_checkpoint, tmp_path):
    out = tmp_path / "values.nc"
    assert main(["probe", "values", "--checkpoint", str(hopper_ppo_checkpoint), "--out", str(out),
                 "--workers", "1", "--no-progress", "--settings", '{"heldout_streams": 1, "heldout_steps": 64, "true_value_states": 2, '
                               '"true_value_rollouts": 1}']) == 0
    ds = open_dataset(out, kind="values")
    assert {k: ds.attrs[k] for k in INSTALLED} == INSTALLED


def _probe_file(path, seed: int, **version_overrides) -> str:
    ds = xr.Dataset({"x": variable(("sample_count",), np.arange(3.0) + seed, "a number", "1")},
                    coords={"sample_count": variable(("sample_count",), [1, 2, 3], "pairs", "1")})
    ds = add_run_coords(ds, "Hopper-v5", "ppo", seed, 0)
    ds.attrs = {**provenance("gradients", {}), **version_overrides}
    write_netcdf(ds, path)
    return str(path)


def test_collect_refuses_mixed_physics_versions_unless_allowed(tmp_path, capsys):
    first = _probe_file(tmp_path / "a.nc", 0)
    moved = _probe_file(tmp_path / "b.nc", 1, mujoco_version="3.3.7")
    with pytest.raises(PgprobeError, match=f"made with mujoco_version {INSTALLED['mujoco_version']} but .* with 3.3.7"):
        collect("gradients", [first, moved], tmp_path / "out.nc")
    assert not (tmp_path / "out.nc").exists()
    # the CLI: one line, exit 2, nothing written
    assert main(["collect", "--probe", "gradients", "--inputs", first, moved, "--out", str(tmp_path / "o.nc")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "mujoco_version" in err and "3.3.7" in err and "--allow-mixed-versions" in err
    merged = collect("gradients", [first, moved], tmp_path / "out.nc", allow_mixed_versions=True)
    assert merged.attrs["mujoco_version"] == f"mixed: {INSTALLED['mujoco_version']} | 3.3.7"
    assert merged.attrs["numpy_version"] == INSTALLED["numpy_version"]


def test_collect_keeps_the_inputs_versions_and_ignores_python_differences(tmp_path):
    """Python is recorded but not physics-relevant; the merged file carries the inputs' versions
    (here an older torch than the one collecting), not the collector's."""
    a = _probe_file(tmp_path / "a.nc", 0, torch_version="2.0.0", python_version="3.10.1")
    b = _probe_file(tmp_path / "b.nc", 1, torch_version="2.0.0", python_version="3.11.7")
    collect("gradients", [a, b], tmp_path / "out.nc")
    merged = open_dataset(tmp_path / "out.nc")
    assert merged.attrs["torch_version"] == "2.0.0"
    assert merged.attrs["python_version"] == "mixed: 3.10.1 | 3.11.7"


def test_gather_refuses_a_shard_of_other_versions():
    def shard(k, **versions):
        ds = xr.Dataset({"s": ((), float(k))})
        ds.attrs = {**provenance("gradients-shard", {}), **shard_attrs("key", k, 2), **versions}
        return ds
    assert len(gather([shard(0), shard(1)], "gradients-shard", "key", 2)) == 2
    with pytest.raises(PgprobeError, match="computed with numpy_version 1.26.4, this gather runs"):
        gather([shard(0), shard(1, numpy_version="1.26.4")], "gradients-shard", "key", 2)


def test_claims_table_names_the_data_versions():
    rng = np.random.default_rng(0)
    parts = []
    for seed in (0, 1):
        ds = xr.Dataset({"pairwise_cosine": (("sample_count", "pair"), rng.uniform(0, 0.2, (2, 6)))},
                        coords={"sample_count": [1024, 2048]})
        parts.append(add_run_coords(ds, "Hopper-v5", "ppo", seed, 10))
    gradients = xr.combine_by_coords(parts)
    gradients.attrs = {"mujoco_version": "3.9.9", "numpy_version": "2.4.6", "torch_version": "2.13.0",
                       "gymnasium_version": "1.4.0", "python_version": "3.11.7", "pgprobe_version": "0.1.0"}
    table = claims.markdown(claims.evaluate({"gradients": gradients}, {"resamples": 50}))
    assert "Data made with python 3.11.7, numpy 2.4.6, torch 2.13.0, mujoco 3.9.9, gymnasium 1.4.0" in table


def _lock() -> dict[str, str]:
    import re

    from conftest import REPO

    text = (REPO / "envs" / "lock.txt").read_text()
    return {re.sub(r"[-_.]+", "-", m.group(1)).lower(): m.group(2)
            for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.M)}


def test_lock_pins_every_declared_dependency_within_its_range():
    """A dependency added to or re-ranged in pyproject.toml without `bash envs/lock.sh` fails
    here: every requirement of the package and its extras is pinned, inside its range."""
    import re
    import tomllib

    from packaging.requirements import Requirement

    from conftest import REPO

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lock = _lock()
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    assert len(requirements) > 15
    for text in requirements:
        requirement = Requirement(text)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in lock, f"{text}: not in envs/lock.txt"
        assert requirement.specifier.contains(lock[name], prereleases=True), f"{text}: lock has {lock[name]}"
    assert lock["torch"] == "2.13.0"   # the spelling that takes the CPU build on the reference machines


def test_conda_environment_pins_the_lock_versions():
    import yaml

    from conftest import REPO

    environment = yaml.safe_load((REPO / "envs" / "pgprobe.yaml").read_text())
    lock = _lock()
    pinned = [d for d in environment["dependencies"] if isinstance(d, str) and "=" in d and not d.startswith("python=")]
    assert len(pinned) >= 9
    for item in pinned:
        name, version = item.split("=", 1)
        assert lock.get(name) == version, f"envs/pgprobe.yaml pins {item}, envs/lock.txt has {lock.get(name)}"
