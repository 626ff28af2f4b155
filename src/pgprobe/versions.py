"""The package versions that made an artefact, and which of them decide its numbers.

Every checkpoint, ``train.nc`` and probe dataset records ``VERSION_ATTRS`` (one global
attribute per package: ``python_version``, ``numpy_version``, …).  The *physics-relevant*
ones are the packages whose upgrade can change a measured number with the same code and
seed: numpy (random streams, summation order), torch (kernels, initialisation), mujoco (the
simulator) and gymnasium (the tasks' rewards, resets and termination rules).  Python and
pgprobe are recorded too; pgprobe's own numerics are tied to ``git_commit`` instead.
"""
from __future__ import annotations

import platform
from importlib import metadata

from . import __version__

# Package name -> distribution name used to look up its version.
PHYSICS_PACKAGES = {"numpy": "numpy", "torch": "torch", "mujoco": "mujoco", "gymnasium": "gymnasium"}
RECORDED_PACKAGES = ("python", *PHYSICS_PACKAGES, "pgprobe")
UNRECORDED = "unrecorded"


def attr_name(package: str) -> str:
    """The global attribute holding ``package``'s version, e.g. ``mujoco_version``."""
    return f"{package}_version"


VERSION_ATTRS = tuple(attr_name(p) for p in RECORDED_PACKAGES)
PHYSICS_ATTRS = tuple(attr_name(p) for p in PHYSICS_PACKAGES)


def _installed(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def package_versions() -> dict[str, str]:
    """``{attribute: version}`` for every recorded package in this process."""
    versions = {attr_name("python"): platform.python_version()}
    versions.update({attr_name(p): _installed(d) for p, d in PHYSICS_PACKAGES.items()})
    versions[attr_name("pgprobe")] = __version__
    return versions


def physics_versions(attrs: dict) -> dict[str, str]:
    """The physics-relevant versions an artefact's attributes record (``"unrecorded"`` where
    an older artefact lacks one)."""
    return {name: str(attrs.get(name, UNRECORDED)) for name in PHYSICS_ATTRS}


def describe(attrs: dict) -> str:
    """``"numpy 2.4.6, torch 2.13.0+cpu, …"``: the versions ``attrs`` records, for tables."""
    return ", ".join(f"{p} {attrs.get(attr_name(p), UNRECORDED)}" for p in RECORDED_PACKAGES)
