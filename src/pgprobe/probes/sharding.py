"""One shard/gather scheme for every sharded probe (gradients' reference, baselines'
true-value sample, landscapes' grid points).

Split: a probe's work list (reference streams, grid points) is cut into groups of
``group_size`` consecutive items (the sampler's chunk for streams, so that every chunk a
shard samples is exactly a chunk of the unsharded run and results do not depend on the
sharding; 1 for grid points), and shard k of S takes groups k, k + S, k + 2S, ... (round
robin, which balances work that varies along the list).

Gather: each shard file records ``shard``, ``shard_count`` and ``shard_key``, a canonical
JSON of everything its numbers depend on (checkpoint hash, probe seed, the settings that
define the shared sample or plane).  ``gather`` opens the files, refuses one whose key
differs from the gathering job's (naming the file and the differing fields), a shard given
twice, a missing shard and a shard computed with other physics-relevant package versions
than the gathering job's (``pgprobe.versions``: the gathered numbers would mix two
simulators or random streams; shards older than version recording are not checked), and returns the datasets in shard order.
"""
from __future__ import annotations

import json
from typing import Sequence

import numpy as np

from ..errors import PgprobeError


def check_shard(shard: int, shard_count: int, what: str = "shard count") -> None:
    if shard_count < 1 or not 0 <= shard < shard_count:
        raise PgprobeError(f"--shard {shard}: expected 0 <= shard < {shard_count} (the {what})")


def shard_items(items: Sequence, shard: int, shard_count: int, group_size: int = 1,
                blocks: bool = False) -> list:
    """The items of shard ``shard`` of ``shard_count``: groups of ``group_size`` consecutive
    items dealt round robin, or (``blocks``) in contiguous runs of groups, shard k taking
    groups round(kG/S) … round((k+1)G/S) − 1 of G.  A shard may be empty when there are
    fewer groups than shards."""
    check_shard(shard, shard_count)
    groups = [items[i:i + group_size] for i in range(0, len(items), group_size)]
    if blocks:
        bounds = np.linspace(0, len(groups), shard_count + 1).round().astype(int)
        chosen = groups[bounds[shard]:bounds[shard + 1]]
    else:
        chosen = groups[shard::shard_count]
    return [item for group in chosen for item in group]


def shard_key(**fields) -> str:
    """Canonical JSON of what a shard's numbers depend on."""
    return json.dumps(fields, sort_keys=True, default=str)


def shard_attrs(key: str, shard: int, shard_count: int) -> dict:
    return {"shard_key": key, "shard": int(shard), "shard_count": int(shard_count)}


def _differences(theirs: str | None, ours: str) -> str:
    try:
        a, b = json.loads(theirs), json.loads(ours)
    except (TypeError, json.JSONDecodeError):
        return "no shard key"
    names = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in names)


def gather(shards: Sequence, kind: str, key: str, shard_count: int, load: bool = True) -> list:
    """The shard datasets of ``shards`` (paths of files of dataset kind ``kind``, or such
    datasets) in shard order, after checking they are shards 0 … shard_count − 1 of this
    key, each once (``load=False``: files opened lazily, for the caller to read and close)."""
    import xarray as xr

    from ..datasets import open_dataset
    from ..versions import UNRECORDED, package_versions, physics_versions

    ours = physics_versions(package_versions())
    by_index = {}
    for n, item in enumerate(shards):
        ds, path = ((item, f"#{n}") if isinstance(item, xr.Dataset) else
                    (open_dataset(item, kind=kind, load=load), item))
        if ds.attrs.get("shard_key") != key or int(ds.attrs.get("shard_count", -1)) != shard_count:
            raise PgprobeError(f"shard {str(path)!r} was computed with other reference settings, checkpoint or "
                               f"probe seed than this gather ({_differences(ds.attrs.get('shard_key'), key)}"
                               f"{'' if int(ds.attrs.get('shard_count', -1)) == shard_count else ', shard count'})")
        theirs = physics_versions(ds.attrs)
        differing = [k for k in ours if theirs[k] not in (ours[k], UNRECORDED)]
        if differing:
            name = differing[0]
            raise PgprobeError(f"shard {str(path)!r} was computed with {name} {theirs[name]}, this gather runs "
                               f"{ours[name]}: recompute the shard at the gather's versions")
        index = int(ds.attrs["shard"])
        if index in by_index:
            raise PgprobeError(f"shard {str(path)!r}: shard {index} given twice")
        by_index[index] = ds
    missing = sorted(set(range(shard_count)) - set(by_index))
    if missing:
        raise PgprobeError(f"--shards: missing shard(s) {', '.join(map(str, missing))} of {shard_count}")
    return [by_index[k] for k in range(shard_count)]
