"""Out-of-sample check of ``pgprobe power``: predict the 3-seed claims study's CI half-widths
from the default run's datasets alone, and compare with what the study measured.

  python docs/measurements/power/validate.py > docs/measurements/power/validation.md

Source: docs/measurements/default_run/ (1 seed, Hopper-v5 PPO and TRPO, checkpoints 0, 100,
300; claims.nc for C3, whose values.nc is not committed).  Target: config.yaml merged with
docs/measurements/claims_study/config.yaml (3 seeds, 3 tasks, checkpoints 100 and 500).
Measured: (a) the claims study's committed claims.nc (the claims code of its commit), and (b)
this tree's claims code on the study's committed datasets (C3: not available, values.nc is
not committed), the statistics the prediction is for (C4 and C6 changed definitions).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from pgprobe import claims, power
from pgprobe.datasets import open_dataset

ROOT = Path(__file__).resolve().parents[3]
DEFAULT = ROOT / "docs/measurements/default_run"
STUDY = ROOT / "docs/measurements/claims_study"
NAMES = ["gradients", "baselines", "landscapes", "sample_regime"]


def half_widths(ds) -> dict:
    return {c: (float(ds["ci_high"].sel(claim=c)) - float(ds["ci_low"].sel(claim=c))) / 2
            for c in ds["claim"].values}


def main() -> None:
    source = {n: open_dataset(DEFAULT / "datasets" / f"{n}.nc", kind=n) for n in NAMES}
    config = power.merge_configs([ROOT / "config.yaml", STUDY / "config.yaml"])
    rows = power.plan(source, config, None, open_dataset(DEFAULT / "claims.nc", kind="claims"))
    committed = half_widths(open_dataset(STUDY / "claims.nc", kind="claims"))
    study = claims.evaluate({n: open_dataset(STUDY / "datasets" / f"{n}.nc", kind=n) for n in NAMES})
    current = half_widths(study)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    print(f"# Power plan, out of sample: default run → 3-seed claims study\n")
    print(f"Made by `python docs/measurements/power/validate.py` at commit {commit} "
          f"(numpy {np.__version__}; envs/lock.txt).  Predicted from docs/measurements/default_run "
          "alone; measured (a) = the claims study's committed claims.nc, (b) = this tree's claims "
          "code on the study's committed datasets.\n")
    print("| claim | statistic: default run → study (b) | units | predicted half-width | measured (a) | "
          "predicted / (a) | measured (b) | predicted / (b) | seeds needed | within size needed |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        c = r["claim"]
        a, b = committed.get(c, np.nan), current.get(c, np.nan)
        p = r["predicted_half_width"]
        ratio = lambda m: power._fmt(p / m) if np.isfinite(m) and m > 0 else "–"  # noqa: E731
        within = (f"{r['within_name']}: {r['within_target']} → {power._fmt(r['within_needed'])}"
                  if r["within_target"] is not None else "—")
        stat_b = float(study["statistic"].sel(claim=c))
        print(f"| {c} | {power._fmt(r['statistic'])} → {power._fmt(stat_b)} | {r['source_units']} → "
              f"{r['target_units']} | {power._fmt(p)}{' (scaled)' if r['method'] == 'claims.nc scaling' else ''}"
              f"{power.flag(r)} | "
              f"{power._fmt(a)} | {ratio(a)} | {power._fmt(b)} | {ratio(b)} | {power._fmt(r['seeds_needed'])} | "
              f"{within} |")
    print("\nComponents (default run): " + json.dumps(
        {r["claim"]: {"tau2": r["tau2"], "omega2": r["omega2"]} for r in rows}, default=float))


if __name__ == "__main__":
    sys.exit(main())
