"""Property-based tests (hypothesis): the config schema and the dataset merge."""
from __future__ import annotations

import copy
import itertools
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import xarray as xr
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgprobe.collect import collect
from pgprobe.errors import PgprobeError
from pgprobe.probes.common import config_probe_schemas
from pgprobe.datasets import add_run_coords, provenance, variable, write_netcdf

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
SCHEMA["properties"]["probes"]["properties"] = config_probe_schemas()   # as the workflow inserts them
DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA) if "$schema" not in SCHEMA or "2020" in SCHEMA["$schema"] \
    else jsonschema.validators.validator_for(SCHEMA)(SCHEMA)


def _leaves(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, path + (key,))
    else:
        yield path, node


def _mappings(node, path=()):
    if isinstance(node, dict):
        yield path
        for key, value in node.items():
            yield from _mappings(value, path + (key,))


POSITIVE_INT_LEAVES = [p for p, v in _leaves(DEFAULT)
                       if isinstance(v, int) and not isinstance(v, bool) and v > 0
                       and not any(part in ("seeds", "probe_iterations") for part in p)
                       and p[0] not in ("probe_seed",)]
MAPPINGS = [p for p in _mappings(DEFAULT)
            if not any(part in ("hyperparameters", "figures", "probe_iterations") for part in p)]


def _set(config, path, value):
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def test_default_config_is_valid():
    VALIDATOR.validate(DEFAULT)
    assert POSITIVE_INT_LEAVES, "the default config has counts to mutate"


@settings(max_examples=60, deadline=None)
@given(path=st.sampled_from(POSITIVE_INT_LEAVES),
       bad=st.one_of(st.integers(max_value=-1), st.text(min_size=1, max_size=5),
                     st.floats(max_value=-1e-3, allow_nan=False), st.booleans(), st.none(),
                     st.lists(st.integers(), max_size=2)))
def test_schema_rejects_negative_or_mistyped_counts(path, bad):
    config = copy.deepcopy(DEFAULT)
    _set(config, path, bad)
    errors = list(VALIDATOR.iter_errors(config))
    assert errors, f"{'.'.join(path)}={bad!r} was accepted"


@settings(max_examples=40, deadline=None)
@given(path=st.sampled_from(MAPPINGS), key=st.from_regex(r"[a-z]{3,10}_typo", fullmatch=True))
def test_schema_rejects_unknown_keys_anywhere(path, key):
    config = copy.deepcopy(DEFAULT)
    node = config
    for part in path:
        node = node[part]
    node[key] = 1
    errors = list(VALIDATOR.iter_errors(config))
    assert errors, f"unknown key {key!r} under {'.'.join(path) or 'top level'} was accepted"


UNIVERSE = list(itertools.product(["Hopper-v5", "Walker2d-v5"], ["ppo", "trpo"], [0, 1], [0, 50]))


def _checkpoint_dataset(env, algo, seed, iteration) -> xr.Dataset:
    rng = np.random.default_rng(abs(hash((env, algo, seed, iteration))) % 2**32)
    ds = xr.Dataset(
        {"pairwise_cosine": variable(("sample_count", "pair"), rng.uniform(-1, 1, (3, 6)), "pairwise cosine", "1"),
         "reference_norm": variable((), float(rng.uniform(1, 2)), "reference norm", "1")},
        coords={"sample_count": ("sample_count", [1024, 2048, 4096], {"long_name": "samples", "units": "1"}),
                "pair": ("pair", np.arange(6), {"long_name": "pair", "units": "1"})})
    ds = add_run_coords(ds, env, algo, seed, iteration)
    ds.attrs = provenance("gradients", {"estimates": 4}, "0" * 64)
    return ds


@pytest.fixture(scope="module")
def checkpoint_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("merge")
    files = {}
    for point in UNIVERSE:
        path = root / ("_".join(map(str, point)) + ".nc")
        write_netcdf(_checkpoint_dataset(*point), path)
        files[point] = path
    return files


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(subset=st.lists(st.sampled_from(UNIVERSE), min_size=1, max_size=8, unique=True), data=st.data())
def test_merge_of_any_subset_in_any_order(checkpoint_files, tmp_path_factory, subset, data):
    order = data.draw(st.permutations(subset))
    out_dir = tmp_path_factory.mktemp("merged")
    merged_a = collect("gradients", [str(checkpoint_files[p]) for p in subset], out_dir / "a.nc")
    merged_b = collect("gradients", [str(checkpoint_files[p]) for p in order], out_dir / "b.nc")
    xr.testing.assert_equal(merged_a, merged_b)
    for point in subset:
        env, algo, seed, iteration = point
        got = merged_a.sel(env=env, algo=algo, seed=seed, iteration=iteration)
        expected = _checkpoint_dataset(*point).squeeze(drop=True)
        np.testing.assert_array_equal(got.pairwise_cosine.values, expected.pairwise_cosine.values)
        assert float(got.reference_norm) == float(expected.reference_norm)
    expected_size = {d: len({p[i] for p in subset}) for i, d in enumerate(["env", "algo", "seed", "iteration"])}
    for dim, size in expected_size.items():
        assert merged_a.sizes[dim] == size


def test_collect_pads_a_dimension_whose_size_depends_on_the_task(tmp_path):
    """The values probe's observation_component has the task's observation size (11 on
    Hopper-v5, 17 on Walker2d-v5): collect pads it with NaN instead of refusing to merge."""
    paths = []
    for env, obs_dim in (("Hopper-v5", 11), ("Walker2d-v5", 17)):
        ds = xr.Dataset({"true_value_observation": variable(("true_value_state", "observation_component"),
                                                            np.full((2, obs_dim), float(obs_dim)), "obs", "1")})
        ds = add_run_coords(ds, env, "ppo", 0, 100)
        ds.attrs = provenance("values", {}, "0" * 64)
        paths.append(tmp_path / f"{env}.nc")
        write_netcdf(ds, paths[-1])
    merged = collect("values", [str(p) for p in paths], tmp_path / "values.nc")
    obs = merged["true_value_observation"].squeeze(["algo", "seed", "iteration"], drop=True)
    assert merged.sizes["observation_component"] == 17
    np.testing.assert_array_equal(obs.sel(env="Walker2d-v5").values, 17.0)
    np.testing.assert_array_equal(obs.sel(env="Hopper-v5").values[:, :11], 11.0)
    assert np.isnan(obs.sel(env="Hopper-v5").values[:, 11:]).all()


def test_collect_refuses_two_inputs_of_the_same_run(checkpoint_files, tmp_path):
    """Two inputs at the same (env, algo, seed, iteration) would leave one of them out of the
    merge silently (e.g. sample-regime runs collected without --coords)."""
    point = UNIVERSE[0]
    copy = tmp_path / "copy.nc"
    write_netcdf(_checkpoint_dataset(*point), copy)
    with pytest.raises(PgprobeError, match="are the same run"):
        collect("gradients", [str(checkpoint_files[point]), str(copy)], tmp_path / "merged.nc")
    assert not (tmp_path / "merged.nc").exists()
