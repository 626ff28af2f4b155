"""Make (or check) the committed probe datasets that tests/test_rederive.py re-derives.

    python docs/measurements/rederive/rederive.py make    # write the datasets here
    python docs/measurements/rederive/rederive.py check   # recompute into a temp dir, compare

``probes.json`` lists the probe commands (the `pgprobe` CLI's argument lists; settings as JSON
objects), all on the committed checkpoint; paths in them are relative to this directory.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Attributes that say when/where a file was made, not what it holds.
VOLATILE_ATTRS = {"created", "git_commit", "sources_json"}
# Package versions are compared through the numbers they make, not as text.


def commands(out_dir: Path) -> list[tuple[str, list[str]]]:
    """(output name, full CLI argv) of every probe run of probes.json, writing into out_dir."""
    spec = json.loads((HERE / "probes.json").read_text())
    runs = []
    for run in spec["runs"]:
        argv = []
        for i, item in enumerate(run["argv"]):
            if isinstance(item, dict):
                item = json.dumps(item, sort_keys=True)
            elif run["argv"][i - 1] == "--directions":
                item = str(out_dir / item)
            argv.append(item)
        argv += ["--checkpoint", str(HERE / spec["checkpoint"]), "--out", str(out_dir / run["out"])]
        runs.append((run["out"], argv))
    return runs


def run_all(out_dir: Path) -> list[str]:
    from pgprobe.cli import main

    names = []
    for name, argv in commands(out_dir):
        if main(argv) != 0:
            raise SystemExit(f"pgprobe {' '.join(argv)} failed")
        names.append(name)
    return names


def differences(name: str, fresh_dir: Path) -> list[str]:
    """What differs between the committed dataset ``name`` and the fresh one: data and
    coordinates compared bit for bit, attributes except ``VOLATILE_ATTRS``."""
    import numpy as np
    import xarray as xr

    with xr.open_dataset(HERE / name) as old, xr.open_dataset(fresh_dir / name) as new:
        problems = []
        for var in sorted(set(old.variables) | set(new.variables)):
            if var not in old.variables or var not in new.variables:
                problems.append(f"{name}: variable {var} only in {'fresh' if var in new.variables else 'committed'}")
                continue
            a, b = old[var].values, new[var].values
            same = (np.array_equal(a, b, equal_nan=True) if a.dtype.kind in "fc" else np.array_equal(a, b))
            if not same or old[var].dims != new[var].dims:
                problems.append(f"{name}: {var} differs")
        from pgprobe.versions import VERSION_ATTRS

        for key in sorted((set(old.attrs) | set(new.attrs)) - VOLATILE_ATTRS - set(VERSION_ATTRS)):
            if str(old.attrs.get(key)) != str(new.attrs.get(key)):
                problems.append(f"{name}: attribute {key}: {old.attrs.get(key)!r} vs {new.attrs.get(key)!r}")
        return problems


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "check"
    if mode == "make":
        print("wrote", ", ".join(run_all(HERE)))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            found = [p for n in run_all(Path(tmp)) for p in differences(n, Path(tmp))]
        print("\n".join(found) or "all committed datasets re-derived bit for bit")
        sys.exit(1 if found else 0)
