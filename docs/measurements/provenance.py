"""Print, for every NetCDF file under docs/measurements/, the commit and package versions that
made it, read from its own attributes (the table in docs/measurements/README.md).

    python docs/measurements/provenance.py
"""
from pathlib import Path

import xarray as xr

from pgprobe.versions import PHYSICS_ATTRS

HERE = Path(__file__).resolve().parent
print("| file | kind | commit | " + " | ".join(a.removesuffix("_version") for a in PHYSICS_ATTRS) + " |")
print("|---|---|---|" + "---|" * len(PHYSICS_ATTRS))
for path in sorted(HERE.rglob("*.nc")):
    with xr.open_dataset(path) as ds:
        attrs = ds.attrs
    versions = " | ".join(str(attrs.get(a, "not recorded")) for a in PHYSICS_ATTRS)
    print(f"| {path.relative_to(HERE)} | {attrs.get('pgprobe_dataset', '?')} | {attrs.get('git_commit', '?')[:7]} | {versions} |")
