"""``pgprobe power``: the CI half-width each claim is expected to get at a config's sizes, and
the smallest sizes that make it conclusive, from the variance components of a study made.

Usage::

  pgprobe power --datasets gradients=A/gradients.nc baselines=A/baselines.nc ... \\
      [--claims A/claims.nc] --config config.yaml [--config study.yaml ...] \\
      [--settings CLAIMS_JSON] [--table power.md] [--out power.tsv]

(``--config`` files are merged in order, as Snakemake merges ``--configfile`` over the default.)

Model.  A claim's statistic is a mean over U units (``pgprobe.claims``; C4 a pooled ratio, read
through its jackknife pseudo-values).  From the source study, per claim:

* σ²_u = U_s · V_J, V_J the delete-one-unit jackknife variance of the statistic: the variance
  one unit adds, its own estimates' noise included;
* ω² = U_s · V_W, V_W the variance of the statistic over replicates that redraw only *within*
  units (estimates, streams, episodes; units fixed): the within-unit part at the source's size;
* τ² = max(σ²_u − ω², 0): the between-unit part (seeds, checkpoints, tasks).

At U units and a within-unit size k times the source's (k = M/M_s for gradient estimates;
M(M−1)/(M_s(M_s−1)) for C4, whose noise is its pairwise signal U-statistic's; K/K_s for
episodes per landscape point), the two-level bootstrap of ``pgprobe.claims`` has variance

  V(U, k) = [(τ² + ω²/k)(U − 1)/U + ω²/k] / U

(the unit draw sees τ² + ω²/k, and the within draw adds ω²/k again), so the expected 95% CI
half-width is 1.96 √V.  A claim is expected to be conclusive when the half-width is below
|statistic − threshold| (the statistic taken as the source's).  The smallest seed count (at
the config's within sizes) and the smallest within size (at the config's seeds) that achieve
it are reported; "—" where no size up to the search limit does (the between part alone is too
large, or the statistic sits on the threshold).  For a pooled ratio (C4) the share of the
source's replicates that unbound the CI's deciding end (NaN, or ±∞ towards the threshold) is
flagged: above 2.5% that end of the source's own CI is unbounded, which the variance model
cannot show.  A claim whose dataset is not given but whose
source CI is in ``--claims`` is scaled by units alone: half-width_s √(U_s/U).  Units of a
claim at the config: runs (envs × algos × seeds, less ``exclude_runs``) × probed checkpoints
(C1a, C1b, C2a, C3, C4, C5), runs (C2b, C6a, C6b), sample-regime seeds × tasks (C7).  When
a probe runs at no iteration-0 checkpoint in the config, the source's iteration-0 units of that
probe are left out (the untrained policy's statistics differ from trained ones': they are not
units like the config's).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .errors import PgprobeError

Z95 = 1.959963984540054
SEARCH_SEEDS = 1000
SEARCH_WITHIN = 4096

# claim -> (dataset, within-size key, unit kind)
CLAIM_SIZES = {
    "C1a": ("gradients", "estimates", "checkpoints"), "C1b": ("gradients", "estimates", "checkpoints"),
    "C2a": ("gradients", "estimates", "checkpoints"), "C2b": ("gradients", "estimates", "runs"),
    "C3a": ("values", None, "checkpoints"), "C3b": ("values", None, "checkpoints"),
    "C3c": ("values", None, "checkpoints"),
    "C4a": ("baselines", "estimates", "checkpoints"), "C4b": ("baselines", "estimates", "checkpoints"),
    "C5": ("landscapes", None, "checkpoints"),
    "C6a": ("landscapes", "episodes", "runs"), "C6b": ("landscapes", "episodes", "runs"),
    "C7": ("sample_regime", None, "regime_seeds"),
}


# ---------------------------------------------------------------------------- components
def unbounded_share(replicates: np.ndarray, statistic: float, threshold: float | None) -> float:
    """Share of bootstrap replicates that leave the CI's end on the threshold's side unbounded:
    NaN (undefined), and ±∞ pointing from the statistic towards the threshold (−∞ when the
    statistic lies above it).  An infinity on the far side (C4's +∞ when the worse arm's signal
    vanishes and the statistic is above 0) only unbounds the far end, which cannot decide the
    verdict the statistic points to.  Without a threshold every non-finite replicate counts."""
    replicates = np.asarray(replicates, np.float64)
    if threshold is None or not np.isfinite(statistic) or statistic == threshold:
        return float(np.mean(~np.isfinite(replicates)))
    towards = -np.inf if statistic > threshold else np.inf
    return float(np.mean(np.isnan(replicates) | (replicates == towards)))


def variance_components(units: list, pool=None, replicates: int = 300, seed: int = 0,
                        threshold: float | None = None) -> dict:
    """{statistic, units, sigma2_unit, omega2, tau2, undefined_share} of one claim's units
    (``undefined_share``: ``unbounded_share`` of the source's replicates at ``threshold``;
    ω² is read from the finite replicates)."""
    from .claims import _statistic

    count = len(units)
    statistic = _statistic(units, range(count), None, pool)
    rng = np.random.default_rng(seed)
    within = np.array([_statistic(units, range(count), rng, pool) for _ in range(replicates)])
    undefined = unbounded_share(within, statistic, threshold)
    finite = within[np.isfinite(within)]
    omega2 = (0.0 if finite.size > 1 and np.ptp(finite) <= 1e-12 * max(1.0, abs(float(finite[0])))
              else count * float(np.var(finite, ddof=1)) if finite.size > 1 else math.nan)
    if count >= 2:
        leave = np.array([_statistic([u for j, u in enumerate(units) if j != i], range(count - 1), None, pool)
                          for i in range(count)])
        leave = leave[np.isfinite(leave)]
        jackknife = (count - 1) / count * float(np.sum((leave - leave.mean()) ** 2)) if leave.size >= 2 else math.nan
        sigma2 = count * jackknife
    else:
        sigma2 = math.nan
    tau2 = max(sigma2 - omega2, 0.0) if np.isfinite(sigma2) and np.isfinite(omega2) else math.nan
    if pool is not None:   # a pooled ratio can be undefined in whole replicates: the share, two-level
        both = np.array([_statistic(units, rng.integers(0, count, count), rng, pool) for _ in range(replicates)])
        undefined = max(undefined, unbounded_share(both, statistic, threshold))
    return {"statistic": statistic, "units": count, "sigma2_unit": sigma2, "omega2": omega2, "tau2": tau2,
            "undefined_share": undefined}


def predicted_variance(tau2: float, omega2: float, units: int, within_factor: float) -> float:
    """V(U, k) of the module docstring."""
    if units < 1 or not np.isfinite(tau2) or not np.isfinite(omega2):
        return math.nan
    within = omega2 / within_factor
    return ((tau2 + within) * (units - 1) / units + within) / units


def half_width(tau2, omega2, units, within_factor) -> float:
    return Z95 * math.sqrt(predicted_variance(tau2, omega2, units, within_factor))


# ---------------------------------------------------------------------------- config sizes
def merge_configs(paths: list) -> dict:
    from .config import load_config

    def merge(base, over):
        out = dict(base)
        for key, value in over.items():
            out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out
    config: dict = {}
    for path in paths:
        config = merge(config, load_config(path))
    return config


def config_sizes(config: dict) -> dict:
    """Per claim kind: units per seed and seeds; within sizes (gradient and baseline estimates,
    episodes per landscape point) as the config sets them (probe defaults otherwise)."""
    from .probes.common import defaults

    envs, algos, seeds = config.get("envs") or [], config.get("algos") or [], config.get("seeds") or []
    excluded = [(x.get("env"), x.get("algo")) for x in config.get("exclude_runs") or []]
    tasks = [(e, a) for e in envs for a in algos if (e, a) not in excluded and (e, None) not in excluded
             and (None, a) not in excluded]
    iterations = config.get("probe_iterations") or {}
    probes = config.get("probes") or {}

    def probe(name):
        return {**defaults(name), **(probes.get(name) or {})}

    def checkpoints(name):
        return len(iterations.get(name) or iterations.get("default") or [])

    regime = config.get("sample_regime") or {}
    sizes = {
        "probes_untrained": {name: 0 in (iterations.get(name) or iterations.get("default") or [])
                             for name in ("gradients", "steps", "values", "baselines", "landscapes")},
        "seeds": len(seeds),
        "tasks": len(tasks),
        "checkpoints": {name: checkpoints(name) for name in ("gradients", "values", "baselines", "landscapes")},
        "regime_tasks": len(regime.get("envs") or []) * len(regime.get("algos") or []),
        "regime_seeds": len(regime.get("seeds") or []),
        "within": {"gradients": probe("gradients")["estimates"], "baselines": probe("baselines")["estimates"],
                   "landscapes": max(probe("landscapes")["trajectory_counts"])},
    }
    return sizes


def units_per_seed(claim: str, sizes: dict) -> tuple[int, int]:
    """(units per seed, seeds) of a claim at the config."""
    dataset, _, kind = CLAIM_SIZES[claim]
    if kind == "regime_seeds":
        return sizes["regime_tasks"], sizes["regime_seeds"]
    if kind == "runs":
        return sizes["tasks"], sizes["seeds"]
    return sizes["tasks"] * sizes["checkpoints"].get(dataset, 0), sizes["seeds"]


def within_factor(claim: str, target: int, source: int) -> float:
    if claim.startswith("C4"):
        return target * (target - 1) / (source * (source - 1))
    return target / source


# ---------------------------------------------------------------------------- plan
def source_within(datasets: dict) -> dict:
    out = {}
    for name, dim in (("gradients", "estimate"), ("baselines", "estimate"), ("landscapes", "trajectory")):
        if name in datasets and dim in datasets[name].dims:
            out[name] = int(datasets[name].sizes[dim])
    return out


def plan(datasets: dict, config: dict, settings=None, source_claims=None, replicates: int = 300) -> list[dict]:
    """One row per claim: source components, predicted half-width at the config, and the
    smallest seeds / within size that make it conclusive."""
    from .claims import CLAIMS, check_settings

    settings = check_settings(settings)
    sizes = config_sizes(config)
    within_s = source_within(datasets)
    # units like the config's: no untrained checkpoints of a probe the config does not run at 0
    datasets = {name: ds.sel(iteration=[i for i in ds["iteration"].values if i > 0])
                if "iteration" in ds.dims and name != "sample_regime" and not sizes["probes_untrained"].get(name)
                else ds for name, ds in datasets.items()}
    rows = []
    for i, claim in enumerate(CLAIMS):
        dataset, within_key, _ = CLAIM_SIZES[claim.name]
        per_seed, seeds = units_per_seed(claim.name, sizes)
        target_units = per_seed * seeds
        threshold = float(claim.threshold(settings))
        row = {"claim": claim.name, "target_units": target_units, "threshold": threshold,
               "direction": claim.direction, "method": "", "statistic": math.nan, "source_units": 0,
               "tau2": math.nan, "omega2": math.nan, "predicted_half_width": math.nan,
               "source_half_width": math.nan, "seeds_needed": None, "within_needed": None,
               "within_name": "", "within_target": None}
        ds = datasets.get(dataset)
        units = []
        if ds is not None:
            try:
                units = claim.units(ds, settings)
            except KeyError:
                units = []
        if source_claims is not None and claim.name in list(source_claims["claim"].values):
            src = source_claims.sel(claim=claim.name)
            row["source_half_width"] = (float(src["ci_high"]) - float(src["ci_low"])) / 2
        if units:
            parts = variance_components(units, claim.pool, replicates, settings["seed"] + i, threshold)
            row.update(statistic=parts["statistic"], source_units=parts["units"], tau2=parts["tau2"],
                       omega2=parts["omega2"], method="components", undefined_share=parts["undefined_share"])
            factor, name, target_within = 1.0, "", None
            if within_key and dataset in within_s and parts["omega2"] > 0:
                name = "baseline estimates" if dataset == "baselines" else \
                    "gradient estimates" if dataset == "gradients" else "episodes per point"
                target_within = sizes["within"][dataset]
                factor = within_factor(claim.name, target_within, within_s[dataset])
            elif within_key:
                name = "(no within-unit draws in the source: its noise is counted in τ²)"
            row.update(within_name=name, within_target=target_within)
            row["predicted_half_width"] = half_width(parts["tau2"], parts["omega2"], target_units, factor)
            gap = abs(parts["statistic"] - threshold)
            if np.isfinite(row["predicted_half_width"]) and per_seed > 0:
                row["seeds_needed"] = next((s for s in range(1, SEARCH_SEEDS + 1)
                                            if half_width(parts["tau2"], parts["omega2"], per_seed * s, factor) < gap),
                                           None)
                if target_within is not None:
                    row["within_needed"] = next(
                        (m for m in range(2, SEARCH_WITHIN + 1)
                         if half_width(parts["tau2"], parts["omega2"], target_units,
                                       within_factor(claim.name, m, within_s[dataset])) < gap), None)
        elif np.isfinite(row["source_half_width"]) and source_claims is not None:
            src = source_claims.sel(claim=claim.name)
            source_units = int(src["unit_count"])
            row.update(statistic=float(src["statistic"]), source_units=source_units, method="claims.nc scaling")
            if source_units > 0 and target_units > 0:
                row["predicted_half_width"] = row["source_half_width"] * math.sqrt(source_units / target_units)
                gap = abs(row["statistic"] - threshold)
                per_unit = row["source_half_width"] ** 2 * source_units
                row["seeds_needed"] = next((s for s in range(1, SEARCH_SEEDS + 1)
                                            if math.sqrt(per_unit / (per_seed * s)) < gap), None) if per_seed else None
        rows.append(row)
    return rows


def _fmt(value, digits=3) -> str:
    if value is None:
        return "—"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return "–" if not np.isfinite(value) else f"{value:.{digits}g}"


def flag(row: dict) -> str:
    """A note where the source's own bootstrap left the CI's deciding end unbounded in more than
    2.5% of its replicates (``unbounded_share``: a pooled signal ≤ 0 on the wrong side)."""
    share = row.get("undefined_share", 0.0) or 0.0
    if share > 0.025:
        return f" (source: {share:.0%} of replicates unbound the CI end that decides)"
    return ""


def markdown(rows: list, measured: dict | None = None, title: str = "Power plan") -> str:
    """The plan as a markdown table; ``measured``: {claim: half-width} adds measured and ratio."""
    head = ("| claim | statistic (source) | threshold | units (source → config) | τ² | ω² | "
            "predicted CI half-width | " + ("measured | predicted / measured | " if measured else "") +
            "seeds needed | within size (config → needed) |")
    lines = [f"# {title}", "", head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = [r["claim"], _fmt(r["statistic"]), f"{r['direction']} {r['threshold']:g}",
                 f"{r['source_units']} → {r['target_units']}", _fmt(r["tau2"]), _fmt(r["omega2"]),
                 _fmt(r["predicted_half_width"]) + ("" if r["method"] != "claims.nc scaling" else " (scaled)")
                 + flag(r)]
        if measured:
            m = measured.get(r["claim"], math.nan)
            cells += [_fmt(m), _fmt(r["predicted_half_width"] / m if m and np.isfinite(m) else math.nan)]
        within = (f"{r['within_name']}: {r['within_target']} → {_fmt(r['within_needed'])}"
                  if r["within_target"] is not None else r["within_name"] or "—")
        cells += [_fmt(r["seeds_needed"]), within]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cmd(args) -> None:
    from .atomic import atomic_output
    from .datasets import open_dataset

    from .claims import open_named_datasets

    datasets = open_named_datasets(args.datasets)
    source_claims = open_dataset(args.claims, kind="claims") if args.claims else None
    config = merge_configs(args.config)
    # the planned study's own claims section (e.g. c6_early_iteration), --settings on top
    settings = {**(config.get("claims") or {}), **(json.loads(args.settings) if args.settings else {})}
    rows = plan(datasets, config, settings, source_claims, args.replicates)
    text = markdown(rows)
    if args.table:
        with atomic_output(args.table) as tmp:
            Path(tmp).write_text(text)
    if args.out:
        keys = list(rows[0])
        with atomic_output(args.out) as tmp:
            Path(tmp).write_text("\t".join(keys) + "\n" + "".join(
                "\t".join(_fmt(r[k], 6) if not isinstance(r[k], str) else r[k] for k in keys) + "\n" for r in rows))
    print(text, end="")


def add_parser(subparsers) -> None:
    from .cli import positive_int

    parser = subparsers.add_parser("power", help="expected CI half-width per claim at a config's sizes, "
                                   "and the sizes that make each claim conclusive",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=[], metavar="NAME=PATH",
                        help="a study's collected datasets (the variance components' source)")
    parser.add_argument("--claims", help="that study's claims.nc (claims whose dataset is not given are "
                        "scaled from its CI)")
    parser.add_argument("--config", nargs="+", required=True, metavar="FILE",
                        help="the config(s) to plan for, merged in order")
    parser.add_argument("--settings", help="JSON object over the config's section claims (default: that section)")
    parser.add_argument("--replicates", type=positive_int, default=300, help="within-unit replicates (default 300)")
    parser.add_argument("--table", help="write the markdown table here")
    parser.add_argument("--out", help="write a TSV here")
    parser.set_defaults(func=_cmd)
