"""``pgprobe collect``: merge per-checkpoint / per-run datasets into one file per probe.

Usage::

  pgprobe collect --probe gradients --inputs results/probes/gradients/*/*/seed*/iter*.nc \\
      --out results/datasets/gradients.nc
  pgprobe collect --probe training --inputs results/runs/*/*/seed*/train.nc \\
      --out results/datasets/training.nc
  pgprobe collect --probe sample_regime --inputs A/train.nc B/train.nc \\
      --coords '[{"steps_per_iteration": 2048, "lr_scale": 1.0}, {...}]' \\
      --out results/datasets/sample_regime.nc

Probe files already carry length-1 dims env, algo, seed, iteration
(``pgprobe.datasets.add_run_coords``); ``train.nc`` files (one row per iteration) get
length-1 dims env, algo, seed from their attributes.  ``--coords`` (a JSON list, one object
per input) adds further length-1 dims, e.g. the sample-regime grid.  The files are merged
with ``xarray.combine_by_coords`` (outer join: a run or checkpoint missing somewhere is
NaN there).  Global attributes that all inputs share are kept; the provenance attributes
describe the merge, and ``sources_json`` lists every input file with all of its own global
attributes (checkpoint hash, config hash, git commit, creation time, ...).  Variable
attributes that differ between inputs (e.g. the landscapes' surrogate is eq. 17 for PPO and
eq. 14 for TRPO) keep long_name/units as the distinct values joined by " | ".

Package versions: every input records the versions that made it (``pgprobe.versions``).
Inputs whose physics-relevant versions (numpy, torch, mujoco, gymnasium) differ are refused
with one line naming the first difference, since their numbers are not comparable bit for
bit; ``--allow-mixed-versions`` merges them anyway.  The merged dataset's ``*_version``
attributes are the inputs' versions (``"mixed: a | b"`` where they differ), not the
collector's.

Dataset kinds: ``--probe NAME`` is the output's kind; inputs must be of kind NAME, except
``sample_regime`` whose inputs are ``training`` files.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from .errors import PgprobeError
from .versions import PHYSICS_ATTRS, UNRECORDED, VERSION_ATTRS

# Output kind -> kind of its input files (default: the same).
INPUT_KIND = {"sample_regime": "training"}

# Long names/units of dims the collector adds.
ADDED_DIM_ATTRS = {
    "env": ("environment id", "1"),
    "algo": ("algorithm", "1"),
    "seed": ("training seed", "1"),
    "steps_per_iteration": ("state-action pairs per training iteration", "1"),
    "lr_scale": ("policy learning rate (PPO) / KL bound (TRPO) relative to Table 1", "1"),
}
# Attributes describing one input only; never carried to the merged dataset's top level
# (every input's global attributes are kept in ``sources_json``).
PER_INPUT_ATTRS = {"pgprobe_dataset", "checkpoint_sha256", "config_hash", "git_commit", "created",
                   "probe_seed", "env", "algo", "seed", "iteration", "shard", *VERSION_ATTRS}


def merge_attrs(attrs_list: list[dict], context=None) -> dict:
    """``combine_attrs`` for xarray: keep attributes all inputs agree on; where they differ,
    keep ``long_name``/``units``/``description`` as the distinct values joined by " | " (e.g.
    the surrogate objective is PPO's eq. 17 for PPO runs and TRPO's eq. 14 for TRPO runs) and
    drop the rest (per-input values are in ``sources_json``)."""
    if not attrs_list:
        return {}
    merged = {}
    keys = [k for k in attrs_list[0]] + [k for a in attrs_list[1:] for k in a if k not in attrs_list[0]]
    for key in dict.fromkeys(keys):
        values = [a[key] for a in attrs_list if key in a]
        distinct = []
        for v in values:
            if not any(_same(v, d) for d in distinct):
                distinct.append(v)
        if len(distinct) == 1 and len(values) == len(attrs_list):
            merged[key] = distinct[0]
        elif key in ("long_name", "units", "description"):
            merged[key] = " | ".join(str(v) for v in distinct)
    return merged


def _same(a, b) -> bool:
    try:
        return bool(np.all(np.asarray(a) == np.asarray(b))) and np.shape(a) == np.shape(b)
    except Exception:  # noqa: BLE001 - incomparable values are different
        return False


def _run_dims_from_attrs(ds: xr.Dataset, path: str) -> dict:
    try:
        return {"env": str(ds.attrs["env"]), "algo": str(ds.attrs["algo"]), "seed": int(ds.attrs["seed"])}
    except KeyError as exc:
        raise PgprobeError(f"{path!r} lacks attribute {exc.args[0]!r} (not a train.nc written by pgprobe train?)") from None


def _learning_rate(ds: xr.Dataset) -> float:
    hp = json.loads(ds.attrs.get("config_json", "{}")).get("hyperparameters", {})
    key = "policy_lr" if ds.attrs.get("algo") == "ppo" else "max_kl"
    return float(hp.get(key, np.nan))


def _expand(ds: xr.Dataset, dims: dict) -> xr.Dataset:
    ds = ds.expand_dims({k: [v] for k, v in dims.items()})
    for name in dims:
        long_name, units = ADDED_DIM_ATTRS.get(name, (name.replace("_", " "), "1"))
        ds[name].attrs = {"long_name": long_name, "units": units}
    return ds


def load_inputs(probe: str, paths: list[str], coords: list[dict] | None) -> list[xr.Dataset]:
    from .datasets import open_dataset

    if not paths:
        raise PgprobeError("--inputs: expected at least one file")
    if len(set(paths)) != len(paths):
        dup = next(p for p in paths if paths.count(p) > 1)
        raise PgprobeError(f"--inputs: {dup!r} given twice")
    if coords is not None and len(coords) != len(paths):
        raise PgprobeError(f"--coords has {len(coords)} entries for {len(paths)} inputs: expected one per input")
    kind = INPUT_KIND.get(probe, probe)
    datasets = []
    for i, path in enumerate(paths):
        ds = open_dataset(path, kind)
        source = {"file": str(path), **ds.attrs}
        added: dict = {}
        if kind == "training":
            added.update(_run_dims_from_attrs(ds, path))
        if coords is not None:
            extra = coords[i]
            if not isinstance(extra, dict) or not extra:
                raise PgprobeError(f"--coords entry {i}: expected a non-empty JSON object")
            clash = [k for k in extra if k in ds.dims or k in added]
            if clash:
                raise PgprobeError(f"--coords entry {i}: {clash[0]!r} is already a dimension of {path!r}")
            added.update(extra)
        if probe == "sample_regime":
            ds["learning_rate"] = xr.Variable((), _learning_rate(ds), attrs={
                "long_name": "policy learning rate (PPO) or KL bound delta (TRPO) of the run", "units": "1"})
        if added:
            ds = _expand(ds, added)
        # Fixed-width string coords ('<U3' for "ppo") would truncate longer values ("trpo")
        # when concatenated: make every string dimension coordinate variable-length.
        for dim in ds.dims:
            if dim in ds.coords and ds[dim].dtype.kind in "US":
                attrs = ds[dim].attrs
                ds = ds.assign_coords({dim: ds[dim].values.astype(object)})
                ds[dim].attrs = attrs
        ds.attrs = {k: v for k, v in ds.attrs.items() if k not in PER_INPUT_ATTRS}
        ds.attrs["_source"] = json.dumps(source, sort_keys=True, default=str)
        datasets.append(ds)
    return datasets


def check_distinct_runs(datasets: list[xr.Dataset], paths: list[str]) -> None:
    """Refuse two inputs that sit at the same place of the merged dataset (the same values of
    every length-1 dimension: env, algo, seed, iteration, and --coords): combining them would
    keep one and drop the other."""
    seen: dict = {}
    for ds, path in zip(datasets, paths):
        key = tuple(sorted((str(d), str(ds[d].values[0])) for d in ds.dims if d in ds.coords and ds.sizes[d] == 1))
        if key in seen:
            where = ", ".join(f"{d}={v}" for d, v in key)
            raise PgprobeError(f"--inputs: {seen[key]!r} and {path!r} are the same run ({where}): give each "
                               "input a distinguishing --coords entry")
        seen[key] = path


def merged_versions(sources: list[dict], paths: list[str], allow_mixed: bool = False) -> dict:
    """The package versions of the merged dataset: each ``*_version`` attribute the inputs
    share, ``"mixed: a | b"`` where they differ.  Raises a one-line PgprobeError naming the
    first two inputs whose physics-relevant versions differ, unless ``allow_mixed``."""
    first = {name: str(sources[0].get(name, UNRECORDED)) for name in VERSION_ATTRS}
    if not allow_mixed:
        for source, path in zip(sources[1:], paths[1:]):
            for name in PHYSICS_ATTRS:
                value = str(source.get(name, UNRECORDED))
                if value != first[name]:
                    raise PgprobeError(
                        f"--inputs: {paths[0]!r} was made with {name} {first[name]} but {path!r} with "
                        f"{value}: their numbers are not comparable; re-measure at one version or "
                        "pass --allow-mixed-versions")
    merged = {}
    for name in VERSION_ATTRS:
        distinct = list(dict.fromkeys(str(s.get(name, UNRECORDED)) for s in sources))
        merged[name] = distinct[0] if len(distinct) == 1 else "mixed: " + " | ".join(distinct)
    return merged


def pad_ragged_dims(datasets: list[xr.Dataset]) -> list[xr.Dataset]:
    """Dimensions without a coordinate whose size differs between inputs (e.g. the values
    probe's ``observation_component``: 11 on Hopper-v5, 17 on Walker2d-v5) get an integer
    index 0 … n−1 and are padded with NaN to the largest size, so the inputs combine; other
    dimensions are left as they are."""
    sizes: dict[str, set] = {}
    for ds in datasets:
        for dim, size in ds.sizes.items():
            if dim not in ds.coords:
                sizes.setdefault(dim, set()).add(size)
    ragged = {dim: max(found) for dim, found in sizes.items() if len(found) > 1}
    if not ragged:
        return datasets
    out = []
    for ds in datasets:
        index = {dim: np.arange(ds.sizes[dim]) for dim in ragged if dim in ds.dims}
        ds = ds.assign_coords(index).reindex({dim: np.arange(ragged[dim]) for dim in index})
        for dim in index:
            ds[dim].attrs = {"long_name": f"index along {dim} (padded with NaN to the largest input)",
                             "units": "1"}
        out.append(ds)
    return out


def keep_missing_as_nan(merged: xr.Dataset) -> None:
    """An integer or boolean variable that the outer join padded with NaN (a run or checkpoint
    missing from some inputs) is float now, but still carries its input files' integer
    encoding, which would write NaN as −2⁶³: drop that encoding so missing stays NaN."""
    for var in merged.variables.values():
        stored = var.encoding.get("dtype")
        if stored is not None and np.dtype(stored).kind in "iub" and var.dtype.kind == "f":
            var.encoding.pop("dtype")
            var.encoding.pop("_FillValue", None)


def collect(probe: str, paths: list[str], out: str | Path, coords: list[dict] | None = None,
            allow_mixed_versions: bool = False) -> xr.Dataset:
    """Merge ``paths`` into one dataset of kind ``probe`` and write it to ``out``."""
    from .datasets import provenance, write_netcdf

    datasets = load_inputs(probe, paths, coords)
    check_distinct_runs(datasets, paths)
    datasets = pad_ragged_dims(datasets)
    sources = [json.loads(ds.attrs.pop("_source")) for ds in datasets]
    versions = merged_versions(sources, paths, allow_mixed_versions)
    try:
        merged = xr.combine_by_coords(datasets, join="outer", compat="no_conflicts", data_vars="all",
                                      coords="different", combine_attrs=merge_attrs)
    except (ValueError, TypeError) as exc:
        raise PgprobeError(f"cannot merge the {probe} datasets with xarray.combine_by_coords: "
                           f"{str(exc).splitlines()[0]}") from None
    if not isinstance(merged, xr.Dataset):  # combine_by_coords returns a DataArray only for DataArrays
        raise PgprobeError(f"cannot merge the {probe} datasets into one Dataset")
    shared = {k: v for k, v in merged.attrs.items() if k not in PER_INPUT_ATTRS}
    # The probe settings (config_json) when every input was made with the same ones.
    section = json.loads(shared.pop("config_json")) if "config_json" in shared else None
    keep_missing_as_nan(merged)
    merged.attrs = {**shared, **provenance(probe, section, None, versions=versions, inputs=len(paths),
                                            sources_json=json.dumps(sources, sort_keys=True, default=str))}
    write_netcdf(merged, out)
    return merged


def _cmd(args) -> None:
    coords = None
    if args.coords:
        try:
            coords = json.loads(args.coords)
        except json.JSONDecodeError as exc:
            raise PgprobeError(f"--coords is not valid JSON: {exc.msg} at position {exc.pos}") from None
        if not isinstance(coords, list):
            raise PgprobeError("--coords: expected a JSON list with one object per input")
    merged = collect(args.probe, args.inputs, args.out, coords, args.allow_mixed_versions)
    sizes = ", ".join(f"{k}={v}" for k, v in merged.sizes.items())
    print(f"wrote {args.out} ({sizes})")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("collect", help="merge per-checkpoint datasets into one file per probe",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--probe", required=True,
                        help="dataset kind: a probe name, 'training' or 'sample_regime'")
    parser.add_argument("--inputs", required=True, nargs="+", metavar="FILE", help="datasets to merge")
    parser.add_argument("--coords", help="JSON list, one object per input: extra length-1 dims to add")
    parser.add_argument("--out", required=True, help="output NetCDF file")
    parser.add_argument("--allow-mixed-versions", action="store_true",
                        help="merge inputs made with different numpy/torch/mujoco/gymnasium versions")
    parser.set_defaults(func=_cmd)
