"""Figures of the paper, by number: ``pgprobe figure NAME`` and the workflow's figure rules.

Each figure module (``training``, ``gradients``, ``values``, ``landscapes``) defines
``FIGURES = {"figN": {"func": f, "datasets": ["probe", ...], "caption": "..."}}`` with
``f(datasets: dict[str, xarray.Dataset], options: dict, out_path) -> None``.  ``registry()``
merges them; a module that is not installed is skipped, any other import error surfaces.

Dataset names are the probe names plus ``training`` (results/datasets/training.nc) and
``sample_regime`` (results/datasets/sample_regime.nc).
"""
from __future__ import annotations

import importlib

FIGURE_MODULES = ["training", "gradients", "values", "landscapes"]

_REGISTRY: dict | None = None


def registry() -> dict:
    """{figure name: {"func", "datasets", "caption", "module"}} over all figure modules."""
    global _REGISTRY
    if _REGISTRY is None:
        merged: dict = {}
        for short in FIGURE_MODULES:
            module = importlib.import_module(f"{__name__}.{short}")
            for name, entry in getattr(module, "FIGURES", {}).items():
                if name in merged:
                    raise RuntimeError(f"figure {name!r} is defined by both {merged[name]['module']} "
                                       f"and {module.__name__}")
                missing = {"func", "datasets"} - set(entry)
                if missing:
                    raise RuntimeError(f"figure {name!r} in {module.__name__} lacks {sorted(missing)}")
                merged[name] = {"caption": "", **entry, "datasets": list(entry["datasets"]),
                                "module": module.__name__}
        _REGISTRY = merged
    return _REGISTRY


def __getattr__(name: str):
    if name == "FIGURES":
        return registry()
    raise AttributeError(name)
