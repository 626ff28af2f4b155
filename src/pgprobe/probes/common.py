"""What every probe shares: settings checks, seeds, stream plans, CLI arguments,
episode bookkeeping and the sample-count-grid dataset.

* ``parse_settings(text_or_dict, defaults, kinds, probe)``: a probe's ``--settings`` JSON
  merged over its DEFAULTS, with one-line PgprobeErrors naming the bad key and value.
* ``sample_count_grid``, ``estimate_streams``, ``reference_streams``: the streams of the
  sample-count-grid probes (gradients, steps); seed keys are (probe seed, checkpoint seed,
  checkpoint iteration, PURPOSE, ...) with per-probe PURPOSE codes, so no two probes (nor
  training) share samples; ``derived_seed`` for other generators.
* shards: ``pgprobe.probes.sharding`` (one split and one gather check for every probe).
* ``load_checked_checkpoint``, ``add_common_arguments``: the probes' CLI plumbing.
* ``segment_bookkeeping``, ``complete_episode_mask``: where a stream's trajectories end.
* ``similarity_dataset``: the (sample_count, estimate, pair) dataset of pairwise and
  reference cosine similarities and the relative variance (gradients and steps probes).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import PgprobeError

# ---------------------------------------------------------------------------- settings
SETTINGS_SCHEMA_PATH = Path(__file__).with_name("settings.schema.yaml")
_SCHEMAS: dict | None = None


def settings_schemas() -> dict:
    """{probe: JSON schema of its settings}: src/pgprobe/probes/settings.schema.yaml, the one
    source of every probe setting's type, range, default and meaning (the workflow's config
    schema inserts the same entries as probes.NAME)."""
    global _SCHEMAS
    if _SCHEMAS is None:
        import yaml

        with open(SETTINGS_SCHEMA_PATH) as fh:
            _SCHEMAS = yaml.safe_load(fh)
    return _SCHEMAS


def config_probe_schemas() -> dict:
    """The schemas as the workflow inserts them as config.probes.NAME: without the keys it
    sets from other config keys (``x-set-by``).  (workflow/rules/config.smk reads the same
    file without importing pgprobe, to keep parsing cheap.)"""
    return {name: {**spec, "properties": {k: v for k, v in spec["properties"].items() if "x-set-by" not in v}}
            for name, spec in settings_schemas().items()}


def defaults(probe: str) -> dict:
    """Every setting of ``probe`` at its default."""
    return {key: copy.deepcopy(spec.get("default")) for key, spec in settings_schemas()[probe]["properties"].items()}


def _expected(spec: dict) -> str:
    """What a setting's schema admits, in words (for the one-line error)."""
    kinds = spec.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    prefix = "null or " if "null" in kinds else ""
    kind = next(k for k in kinds if k != "null")
    if kind == "boolean":
        return prefix + "true or false"
    if kind == "array":
        item = spec.get("items", {})
        of = "positive integers" if item.get("type") == "integer" and item.get("minimum") == 1 else "values"
        return prefix + f"a non-empty list of {of}"
    low, high = spec.get("minimum"), spec.get("maximum")
    if kind == "integer":
        words = {1: "a positive integer", 0: "a non-negative integer"}.get(low, f"an integer >= {low}" if low is not None
                                                                          else "an integer")
        return prefix + words
    if spec.get("exclusiveMinimum") == 0:
        return prefix + "a positive number"
    if low is not None and high is not None:
        return prefix + f"a number in [{low:g}, {high:g}]"
    return prefix + "a finite number"


def parse_settings(text_or_dict, probe: str) -> dict:
    """A probe's settings: a JSON object (string or dict) over the defaults of its schema
    (``settings_schemas()[probe]``).  Unknown keys, wrong types and out-of-range values
    raise a one-line PgprobeError naming the key, the value and what was expected."""
    from jsonschema import Draft7Validator

    if text_or_dict is None:
        given = {}
    elif isinstance(text_or_dict, dict):
        given = dict(text_or_dict)
    else:
        try:
            given = json.loads(text_or_dict)
        except json.JSONDecodeError as exc:
            raise PgprobeError(f"--settings is not valid JSON: {exc.msg} (at char {exc.pos})") from None
        if not isinstance(given, dict):
            raise PgprobeError(f"--settings must be a JSON object of probes.{probe} keys, "
                               f"got {type(given).__name__}")
    schema = settings_schemas()[probe]
    properties = schema["properties"]
    unknown = sorted(set(given) - set(properties))
    if unknown:
        raise PgprobeError(f"unknown probes.{probe} setting {unknown[0]!r}: expected one of "
                           f"{', '.join(sorted(properties))}")
    settings = {**defaults(probe), **given}
    errors = sorted(Draft7Validator(schema).iter_errors(settings), key=lambda e: list(e.absolute_path))
    bad = [e.absolute_path[0] for e in errors if e.absolute_path]
    bad += [key for key, value in settings.items()                  # NaN / inf pass min/max checks
            if isinstance(value, float) and not math.isfinite(value)]
    if bad:
        key = sorted(bad)[0]
        raise PgprobeError(f"probes.{probe} setting {key!r} = {json.dumps(settings[key])}: "
                           f"expected {_expected(properties[key])}")
    return settings


def sample_count_grid(settings: dict) -> list[int]:
    """Explicit ``sample_counts`` (sorted, deduplicated) or min·2^k up to ``max_sample_count``."""
    if settings.get("sample_counts"):
        return sorted(set(int(n) for n in settings["sample_counts"]))
    low, high = settings["min_sample_count"], settings["max_sample_count"]
    if low > high:
        raise PgprobeError(f"min_sample_count = {low} exceeds max_sample_count = {high}")
    grid = []
    n = low
    while n <= high:
        grid.append(n)
        n *= 2
    return grid


def derived_seed(*key: int) -> int:
    """A 63-bit integer seed derived from a tuple of non-negative ints (SeedSequence)."""
    seq = np.random.SeedSequence([int(k) for k in key])
    return int(seq.generate_state(1, dtype=np.uint64)[0] % (2 ** 63))



def estimate_streams(settings: dict, ckpt, purpose: int) -> list:
    """One stream per (sample count, estimate), largest sample counts first (balances the
    worker pool); seed key (seed, ckpt seed, ckpt iteration, purpose, n, estimate)."""
    from ..sampling import StreamSpec
    grid = sample_count_grid(settings)
    return [StreamSpec((settings["seed"], ckpt.seed, ckpt.iteration, purpose, n, e), n)
            for n in sorted(grid, reverse=True) for e in range(settings["estimates"])]


def reference_streams(settings: dict, ckpt, purpose: int) -> list:
    """``reference_samples`` / ``reference_stream_steps`` streams of equal length; seed key
    (seed, ckpt seed, ckpt iteration, purpose, stream)."""
    from ..sampling import StreamSpec
    length = settings["reference_stream_steps"]
    count = math.ceil(settings["reference_samples"] / length)
    return [StreamSpec((settings["seed"], ckpt.seed, ckpt.iteration, purpose, j), length)
            for j in range(count)]



# ---------------------------------------------------------------------------- checkpoints and CLI
def load_checked_checkpoint(path):
    from ..checkpoint import load_checkpoint

    checkpoint = load_checkpoint(path)
    checkpoint.require_finite()
    return checkpoint



def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    from ..cli import nonnegative_int, positive_int

    parser.add_argument("--checkpoint", required=True, help="checkpoint file (iterNNNN.pt)")
    parser.add_argument("--out", required=True, help="output NetCDF file")
    parser.add_argument("--settings", help="JSON object of probe settings (config probes.<name>)")
    parser.add_argument("--workers", type=positive_int, help="sampler worker processes (default: all cores)")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="probe seed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")



# ---------------------------------------------------------------------------- trajectories
def complete_episode_mask(rollout) -> np.ndarray:
    """True for samples whose trajectory segment ends by termination or the time limit
    (not by the stream's cut)."""
    ends = np.asarray(rollout.segment_end, bool)
    finished = np.asarray(rollout.terminated, bool) | np.asarray(rollout.truncated, bool)
    mask = np.zeros(ends.size, bool)
    current = False
    for t in range(ends.size - 1, -1, -1):
        if ends[t]:
            current = bool(finished[t])
        mask[t] = current
    return mask


def segment_bookkeeping(rollout, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """(bootstrap_weight, episode_step) per sample of one stream.

    bootstrap_weight[t] = γ^(e−t+1) where e is the end of t's trajectory segment and the
    segment ends without termination (R_t then contains γ^(e−t+1) V(s_{e+1})); 0 where the
    segment terminates.  episode_step[t] = steps since the episode's reset.
    """
    ends = np.asarray(rollout.segment_end, bool)
    terminated = np.asarray(rollout.terminated, bool)
    count = ends.size
    weight = np.zeros(count)
    step = np.zeros(count, np.int64)
    running_weight = 0.0
    for t in range(count - 1, -1, -1):
        if ends[t]:
            running_weight = 0.0 if terminated[t] else gamma
        else:
            running_weight *= gamma
        weight[t] = running_weight
    episode_step = 0
    done_prev = np.asarray(rollout.terminated, bool) | np.asarray(rollout.truncated, bool)
    for t in range(count):
        step[t] = episode_step
        episode_step = 0 if done_prev[t] else episode_step + 1
    return weight, step



# ---------------------------------------------------------------------------- dataset
def similarity_dataset(*, quantity: str, sample_counts: list[int], estimates: np.ndarray,
                       reference: np.ndarray, trajectory_counts: np.ndarray,
                       mean_episode_lengths: np.ndarray, reference_sample_count: int,
                       reference_trajectory_count: int, reference_mean_episode_length: float,
                       extra: dict | None = None) -> xr.Dataset:
    """Dataset of pairwise and reference cosine similarities over the sample-count grid.

    estimates: (S, M, P) flattened vectors (gradient or step) per sample count and estimate;
    reference: (P,).  Keeps every pair's and every estimate's value (raw), plus means.
    """
    from ..datasets import variable
    from ..stats import pairwise_cosine, relative_variance

    estimates = np.asarray(estimates, np.float64)
    reference = np.asarray(reference, np.float64)
    count_s, count_m, _ = estimates.shape
    ref_norm = float(np.linalg.norm(reference))
    norms = np.linalg.norm(estimates, axis=-1)
    ref_unit = reference / ref_norm if ref_norm > 0 else reference
    with np.errstate(invalid="ignore", divide="ignore"):    # undefined (NaN) for a zero vector
        ref_cos = np.where((norms > 0) & (ref_norm > 0), estimates @ ref_unit / np.where(norms > 0, norms, 1.0),
                           np.nan)
    pairs = [pairwise_cosine(estimates[s]) for s in range(count_s)]
    pair_values = np.stack([p[0] for p in pairs]) if count_m > 1 else np.zeros((count_s, 0))
    index_a, index_b = np.triu_indices(count_m, k=1)
    q = quantity
    data = {
        "pairwise_cosine": variable(("sample_count", "pair"), pair_values,
                                    f"cosine similarity between two independent {q} estimates", "1"),
        "reference_cosine": variable(("sample_count", "estimate"), ref_cos,
                                     f"cosine similarity between a {q} estimate and the reference {q}", "1"),
        "mean_pairwise_cosine": variable(("sample_count",), _nanmean(pair_values) if pair_values.size else
                                         np.full(count_s, np.nan),
                                         f"mean pairwise cosine similarity of the {q} estimates (pairs "
                                         "with a zero vector, undefined, left out)", "1"),
        "mean_reference_cosine": variable(("sample_count",), _nanmean(ref_cos),
                                          f"mean cosine similarity of the {q} estimates with the reference "
                                          "(zero vectors left out)", "1"),
        "estimate_norm": variable(("sample_count", "estimate"), norms, f"Euclidean norm of the {q} estimate",
                                  "parameter units"),
        "relative_variance": variable(("sample_count",), relative_variance(estimates),
                                      f"empirical variance of the {q} estimates: trace of their covariance "
                                      "(ddof 1) over the squared norm of their mean", "1"),
        "trajectory_count": variable(("sample_count", "estimate"), np.asarray(trajectory_counts, np.int64),
                                     "trajectories behind the estimate (independent units; includes the cut last one)",
                                     "trajectories"),
        "mean_episode_length": variable(("sample_count", "estimate"), np.asarray(mean_episode_lengths, np.float64),
                                        "mean length of the completed episodes behind the estimate (NaN: none)",
                                        "steps"),
        "reference_norm": variable((), ref_norm, f"Euclidean norm of the reference {q}", "parameter units"),
        "reference_sample_count": variable((), int(reference_sample_count),
                                           f"state-action pairs behind the reference {q}", "state-action pairs"),
        "reference_trajectory_count": variable((), int(reference_trajectory_count),
                                               f"trajectories behind the reference {q}", "trajectories"),
        "reference_mean_episode_length": variable((), float(reference_mean_episode_length),
                                                  "mean length of the completed episodes behind the reference",
                                                  "steps"),
    }
    for name, var in (extra or {}).items():
        data[name] = var
    ds = xr.Dataset(data, coords={
        "sample_count": variable(("sample_count",), np.asarray(sample_counts, np.int64),
                                 f"state-action pairs per {q} estimate", "state-action pairs"),
        "estimate": variable(("estimate",), np.arange(count_m), "index of the independent estimate", "1"),
        "pair": variable(("pair",), np.arange(len(index_a)), "index of the pair of estimates", "1"),
        "estimate_a": variable(("pair",), index_a.astype(np.int64), "first estimate of the pair", "1"),
        "estimate_b": variable(("pair",), index_b.astype(np.int64), "second estimate of the pair", "1"),
    })
    return ds


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis of the finite entries (NaN where there is none)."""
    values = np.asarray(values, np.float64)
    finite = np.isfinite(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(finite.any(-1), np.where(finite, values, 0.0).sum(-1) / finite.sum(-1), np.nan)


def mean_or_nan(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else math.nan


def add_variance_summary(ds: xr.Dataset, estimates: np.ndarray, quantity: str) -> xr.Dataset:
    """``ds`` (dims sample_count, estimate) with the unbiased variance variables of
    ``stats.variance_summary`` over estimates (S, M, P), and ``relative_variance``'s attributes
    saying that it is the plug-in ratio with a ceiling at M."""
    from ..datasets import variable
    from ..stats import PLUG_IN_NOTE, variance_summary

    ds = ds.copy()
    for name, (dims, data, long_name, units, attrs) in variance_summary(
            estimates, quantity=quantity, units="parameter units").items():
        ds[name] = variable(("sample_count",) + dims, data, long_name, units, **attrs)
    ds["relative_variance"].attrs.update(long_name=f"{PLUG_IN_NOTE} ({quantity} estimates)",
                                         estimator="plug-in (biased)")
    return ds
