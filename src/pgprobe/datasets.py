"""xarray datasets: run coordinates, CF-style attributes, provenance, atomic NetCDF writes.

Conventions (docs/architecture.md, docs/reference/datasets.md): every variable has ``long_name`` and ``units``; per-checkpoint
datasets carry length-1 dimension coordinates ``env``, ``algo``, ``seed``, ``iteration`` so
that ``xarray.combine_by_coords`` stacks them; attributes are str/int/float only (dicts as
JSON strings, booleans as 0/1).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import xarray as xr

from .atomic import atomic_output
from .errors import PgprobeError

RUN_DIMS = ("env", "algo", "seed", "iteration")


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def creation_time() -> str:
    """UTC now, or SOURCE_DATE_EPOCH when set (byte-stable outputs)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = (_dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc) if epoch
              else _dt.datetime.now(_dt.timezone.utc))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def provenance(kind: str, config_section=None, checkpoint_sha256: str | None = None,
               versions: dict | None = None, **extra) -> dict:
    """Global attributes: what made this dataset, from what, when, with which package versions
    (``pgprobe.versions``: this process's, or ``versions`` for a merge of earlier datasets)."""
    from .config import config_hash
    from .versions import package_versions

    attrs = {
        "pgprobe_dataset": kind,
        "git_commit": git_commit(),
        "config_hash": config_hash(config_section) if config_section is not None else "none",
        "config_json": json.dumps(config_section, sort_keys=True, default=str)
        if config_section is not None else "{}",
        "created": creation_time(),
        "Conventions": "CF-1.8",
        **(package_versions() if versions is None else versions),
    }
    if checkpoint_sha256:
        attrs["checkpoint_sha256"] = checkpoint_sha256
    for key, value in extra.items():
        attrs[key] = clean_attr(value)
    return attrs


def clean_attr(value):
    if isinstance(value, bool):
        return int(value)
    if value is None:
        return "none"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, np.generic):
        return value.item()
    return value


def variable(dims, data, long_name: str, units: str, **attrs) -> xr.Variable:
    return xr.Variable(dims, data, attrs={"long_name": long_name, "units": units, **attrs})


def add_run_coords(ds: xr.Dataset, env: str, algo: str, seed: int, iteration: int,
                   source: str = "pgprobe", env_steps: int | None = None) -> xr.Dataset:
    """Expand ``ds`` with length-1 dims env, algo, seed, iteration (for combine_by_coords);
    ``algo`` is the algorithm, or an imported agent's name; coordinate ``source`` (along
    algo) says where the agent was trained; coordinate ``env_steps`` (along all four, as
    runs differ in batch size: ``Checkpoint.env_steps``; float, NaN where a merged dataset
    has no checkpoint) the training steps at the checkpoint."""
    ds = ds.expand_dims({"env": [env], "algo": [algo], "seed": [int(seed)], "iteration": [int(iteration)]})
    ds = ds.assign_coords(source=("algo", [source], {"long_name": "where the agent was trained (pgprobe, or "
                                                               "the library of an imported agent)", "units": "1"}))
    if env_steps is not None:
        ds = ds.assign_coords(env_steps=(RUN_DIMS, np.full((1, 1, 1, 1), float(env_steps)), {
            "long_name": "environment steps of training at the checkpoint (NaN: no such checkpoint)",
            "units": "1"}))
    ds["env"].attrs = {"long_name": "environment id", "units": "1"}
    ds["algo"].attrs = {"long_name": "algorithm", "units": "1"}
    ds["seed"].attrs = {"long_name": "training seed", "units": "1"}
    ds["iteration"].attrs = {"long_name": "training iteration of the checkpoint", "units": "1"}
    return ds


def check_attributes(ds: xr.Dataset) -> None:
    """Every data variable and coordinate has long_name and units (raises otherwise)."""
    for name, var in {**ds.data_vars, **ds.coords}.items():
        for key in ("long_name", "units"):
            if key not in var.attrs:
                raise ValueError(f"variable {name!r} lacks attribute {key!r}")


def write_netcdf(ds: xr.Dataset, path: str | Path) -> Path:
    """Atomic NetCDF write: temporary file in the target directory, then rename."""
    path = Path(path)
    check_attributes(ds)
    ds.attrs = {k: clean_attr(v) for k, v in ds.attrs.items()}
    with atomic_output(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4")
    return path


def open_dataset(path: str | Path, kind: str | None = None, load: bool = True) -> xr.Dataset:
    """Open a pgprobe NetCDF (loaded into memory; ``load=False``: lazily, the caller closes
    it); with ``kind``, refuse another probe's file."""
    path = Path(path)
    if not path.is_file():
        raise PgprobeError(f"dataset {str(path)!r} not found")
    try:
        if load:
            with xr.open_dataset(path, engine="netcdf4") as ds:
                ds = ds.load()
        else:   # cache=False: a variable read with .values is not kept by the dataset
            ds = xr.open_dataset(path, engine="netcdf4", cache=False)
    except Exception as exc:  # netCDF4 raises OSError/ValueError variants on corrupt files
        raise PgprobeError(f"dataset {str(path)!r} is not a readable NetCDF file: "
                           f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if kind is not None and ds.attrs.get("pgprobe_dataset") != kind:
        raise PgprobeError(f"dataset {str(path)!r} holds {ds.attrs.get('pgprobe_dataset', 'unknown')!r} "
                           f"data, expected {kind!r}")
    return ds
