"""Gradient-estimate quality probe (paper §2.1, Figures 1, 2, 9 and 10).

Usage::

  pgprobe probe gradients --checkpoint runs/.../iter0150.pt --out gradients/iter0150.nc \\
      [--settings '{"max_sample_count": 32768, "reference_samples": 1048576}'] \\
      [--workers N] [--seed S] [--shards iter0150.shard0.nc iter0150.shard1.nc ...]
  pgprobe probe gradients-shard --checkpoint runs/.../iter0150.pt \\
      --out gradients/iter0150.shard3.nc --shard 3 [--settings ...] [--workers N] [--seed S]

What it measures.  The gradient of the surrogate at θ0 (eq. 1) with the advantages
normalized as the algorithms normalize them (eq. 15),

  ĝ = (1/n) Σ_i ∇θ log π_θ(a_i|s_i) · (A_i − μ_A) / σ_A,

A_i the GAE advantages (γ, λ of the checkpoint) computed from the checkpoint's value net,
θ every policy parameter (mean MLP and the state-independent log-std), flattened.  An
estimate from n samples is one stream of n steps from the frozen policy (whole trajectories
from a reset, the last cut and bootstrapped), exactly the way the algorithms collect their
2048-step batches.  For every sample count n of the grid, ``estimates`` (M) independent
estimates are drawn; the dataset keeps

* the cosine similarity of all M(M−1)/2 pairs (variance, Figures 1 and 9), and
* the cosine similarity of each estimate with a reference ("true") gradient from
  ``reference_samples`` samples (convergence, Figures 2 and 10).

The reference is made of ⌈reference_samples / reference_stream_steps⌉ streams of
``reference_stream_steps`` steps.  Its eq. (15) normalization uses the mean and standard
deviation of the advantages over the whole reference sample, so it is computed from
sufficient statistics that add across streams and shards (``GradientSums``):
ĝ = (S_gA − μ_A S_g) / (n σ_A) with S_gA = Σ∇logπ·A, S_g = Σ∇logπ, μ_A = ΣA/n,
σ_A² = ΣA²/n − μ_A².  ``gradients-shard`` computes those sums for shard K of
``reference_shards`` (whole sampler chunks, so each stream's samples are bitwise those of an
unsharded run) into a NetCDF file; ``gradients --shards FILES`` gathers them instead of
sampling the reference itself, and the result equals the unsharded one up to float64
summation order.

How good is the reference?  The sums are also kept for the two halves of the reference's
streams (even and odd stream index, so sharded and unsharded runs agree).  With ĝ_N = g + ε_N,
E‖ε_N‖² = σ²/N, the halves' cosine c_half ≈ 1/√((1 + ρ/N_A)(1 + ρ/N_B)), ρ = σ²/‖g‖², gives ρ,
and the reference's cosine with the true gradient ≈ 1/√(1 + ρ/N) (``reference_true_cosine``).
An estimate's cosine with the reference is ≈ its cosine with g times that number, so Figure
2's curves level off there rather than at 1 when the reference is noisy.

How noisy is one estimate?  ``relative_variance_unbiased`` = T̂/Ŝ estimates R = tr Σ / ‖E ĝ‖²
from the M estimates' Gram matrix (``gram``, kept): T̂ = tr Ĉov and Ŝ = mean over pairs i ≠ j
of ĝ_i·ĝ_j, both unbiased — McCandlish et al. (2018, Appendix A)'s estimators of tr Σ and
‖G‖² from two batch sizes, with N (one estimate) and M·N (their mean); with a jackknife SE.
The old ``relative_variance`` = tr Ĉov/‖ḡ‖² is kept and labelled: E‖ḡ‖² = ‖G‖² + tr Σ/M, so it
tends to M when the signal is small (a ceiling, not a measurement).  Why not the reference as
the mean: the reference normalizes its advantages over its whole sample (eq. 15) and the
N-sample estimates over their own batch, so E ĝ_N differs from it by an O(1/N) scale that
‖ĝ_i − g_ref‖² would count as variance; and the baselines probe has no reference per arm.

Gradients are computed by exact float64 back-propagation in numpy inside the sampler's
worker processes (``pgprobe.probes.gradient_model.PolicyGradientModel``), so no sample crosses a
process boundary and M estimates cost M vectorized passes, not M·n Python steps.

Dataset (kind "gradients"): dims sample_count × estimate, sample_count × pair (coords
estimate_a, estimate_b), plus env, algo, seed, iteration (length 1; per-checkpoint files
merge with ``xarray.combine_by_coords``).  See docs/reference/datasets.md.

Scale.  The paper uses ten estimates per sample count, sample counts up to ~10⁵ and a
reference of 10⁶ (Hopper, Walker2d) to 10⁷ (Humanoid) state-action pairs.  The defaults
here (1K…16K, reference 128K) are sized for the default config on a 2-core machine; the
paper preset sets ``max_sample_count`` ≈ 131072 and ``reference_samples`` = 10⁶–10⁷ with
``reference_shards`` jobs.
"""
from __future__ import annotations

import math
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import PgprobeError
from . import common, sharding
from .. import gradient_model

PURPOSE_ESTIMATE = 101
PURPOSE_REFERENCE = 102

DEFAULTS = common.defaults("gradients")   # settings.schema.yaml: the one source
# Settings that define the reference sample: shards must agree on them to be gathered.
REFERENCE_KEYS = ("reference_samples", "reference_stream_steps", "reference_shards", "chunk_size", "seed")


def resolve_settings(text_or_dict, seed: int | None = None) -> dict:
    settings = common.parse_settings(text_or_dict, "gradients")
    if seed is not None:
        settings["seed"] = int(seed)
    common.sample_count_grid(settings)  # validates min ≤ max
    return settings


# ---------------------------------------------------------------------------- streams
def _model_and_reduce(ckpt):
    agent = ckpt.frozen_agent()
    model = gradient_model.PolicyGradientModel.from_agent(agent)
    reduce = partial(gradient_model.stream_gradient_sums, model=model, gamma=agent.gamma, lam=agent.gae_lambda)
    return agent, model, reduce


def _zero_sums(parameter_count: int):
    from ..estimators import GradientSums
    return GradientSums(np.zeros(parameter_count), np.zeros(parameter_count), 0.0, 0.0, 0)


class ReferenceSums:
    """Gathered reference: gradient sums plus the trajectories behind them, and the sums of
    its two halves — the streams of even and of odd index — whose agreement says how close
    the reference is to the true gradient (``stats.split_half_true_cosine``).  ``halves`` is
    None for shards written before the halves were kept."""

    def __init__(self, parameter_count: int):
        self.sums = _zero_sums(parameter_count)
        self.halves: list | None = [_zero_sums(parameter_count), _zero_sums(parameter_count)]
        self.trajectory_count = 0
        self.episode_count = 0
        self.episode_length_sum = 0.0

    def add_stream(self, summary: gradient_model.StreamSummary, stream_index: int) -> None:
        self.sums = self.sums + summary.sums
        self.halves[stream_index % 2] = self.halves[stream_index % 2] + summary.sums
        self.trajectory_count += summary.trajectory_count
        self.episode_count += len(summary.episode_lengths)
        self.episode_length_sum += float(sum(summary.episode_lengths))

    def add(self, other: "ReferenceSums") -> None:
        self.sums = self.sums + other.sums
        self.halves = (None if self.halves is None or other.halves is None else
                       [mine + theirs for mine, theirs in zip(self.halves, other.halves)])
        self.trajectory_count += other.trajectory_count
        self.episode_count += other.episode_count
        self.episode_length_sum += other.episode_length_sum

    def true_cosine(self) -> tuple[float, float]:
        """(cosine of the halves' gradients, estimated cosine of the reference with the
        true gradient); NaN without halves or with an empty half."""
        from ..stats import split_half_true_cosine
        if self.halves is None or min(half.count for half in self.halves) == 0:
            return math.nan, math.nan
        first, second = self.halves
        return split_half_true_cosine(first.gradient(), second.gradient(), first.count, second.count)

    @property
    def mean_episode_length(self) -> float:
        return self.episode_length_sum / self.episode_count if self.episode_count else math.nan


def sample_reference(ckpt, settings: dict, workers: int | None, shard: int | None = None,
                     label: str = "reference") -> ReferenceSums:
    """Sample the reference streams (all, or shard ``shard`` of ``reference_shards``)."""
    from ..sampling import sample_streams
    agent, model, reduce = _model_and_reduce(ckpt)
    streams = common.reference_streams(settings, ckpt, PURPOSE_REFERENCE)
    if shard is not None:
        streams = sharding.shard_items(streams, shard, settings["reference_shards"], settings["chunk_size"],
                                       blocks=True)
    out = ReferenceSums(model.parameter_count)
    start = time.perf_counter()
    summaries = sample_streams(agent, streams, workers=workers, chunk_size=settings["chunk_size"],
                               reduce=reduce, progress=label) if streams else []
    for spec, summary in zip(streams, summaries):
        out.add_stream(summary, spec.seed_key[-1])
    wall = time.perf_counter() - start
    grad_cpu = sum(s.gradient_seconds for s in summaries)
    print(f"pgprobe: {label}: {out.sums.count} samples, {out.trajectory_count} trajectories in "
          f"{wall:.1f} s wall ({grad_cpu:.1f} CPU-s of it GAE + gradients)", file=sys.stderr)
    return out


# ---------------------------------------------------------------------------- shards
def shard_dataset(ref: ReferenceSums, ckpt, settings: dict, shard: int) -> xr.Dataset:
    from ..datasets import provenance, variable
    s = ref.sums
    unit = "parameter units"
    ds = xr.Dataset({
        "sum_grad_adv": variable(("parameter",), s.sum_grad_adv, "sum over samples of grad log pi times GAE advantage", unit),
        "sum_grad": variable(("parameter",), s.sum_grad, "sum over samples of grad log pi", unit),
        "sum_adv": variable((), float(s.sum_adv), "sum of GAE advantages", "reward units"),
        "sum_adv_sq": variable((), float(s.sum_adv_sq), "sum of squared GAE advantages", "reward units squared"),
        "count": variable((), int(s.count), "state-action pairs in this shard", "state-action pairs"),
        "trajectory_count": variable((), int(ref.trajectory_count), "trajectories in this shard", "trajectories"),
        "episode_count": variable((), int(ref.episode_count), "completed episodes in this shard", "episodes"),
        "episode_length_sum": variable((), float(ref.episode_length_sum), "summed length of completed episodes",
                                       "steps"),
        **{f"half_{name}": variable(("half",) + dims, np.stack([getattr(h, name) for h in ref.halves]),
                                    f"{text}, per half of the streams (even, odd stream index)", half_unit)
           for name, dims, text, half_unit in (
               ("sum_grad_adv", ("parameter",), "sum over samples of grad log pi times GAE advantage", unit),
               ("sum_grad", ("parameter",), "sum over samples of grad log pi", unit),
               ("sum_adv", (), "sum of GAE advantages", "reward units"),
               ("sum_adv_sq", (), "sum of squared GAE advantages", "reward units squared"),
               ("count", (), "state-action pairs", "state-action pairs"))},
    }, coords={"parameter": variable(("parameter",), np.arange(s.sum_grad.size),
                                     "index into the flattened policy parameters", "1"),
               "half": variable(("half",), np.arange(2), "stream index modulo 2", "1")})
    ds.attrs = provenance("gradients-shard", config_section=settings, checkpoint_sha256=ckpt.sha256,
                          **sharding.shard_attrs(_reference_key(settings, ckpt), shard,
                                                 settings["reference_shards"]))
    return ds


def _reference_key(settings: dict, ckpt) -> str:
    return sharding.shard_key(checkpoint_sha256=ckpt.sha256, **{k: settings[k] for k in REFERENCE_KEYS})


def gather_shards(paths: list, ckpt, settings: dict, kind: str = "gradients-shard") -> ReferenceSums:
    """Sum shard files (``sharding.gather`` checks they are this reference's shards, each once)."""
    from ..estimators import GradientSums
    shards = sharding.gather(paths, kind, _reference_key(settings, ckpt), settings["reference_shards"])
    parameter_count = ckpt.policy.log_std.numel() + sum(
        p.numel() for p in ckpt.policy.mean_net.parameters())
    out = ReferenceSums(parameter_count)
    for index, ds in enumerate(shards):
        if ds.sizes.get("parameter") != parameter_count:
            raise PgprobeError(f"shard {index} has {ds.sizes.get('parameter')} parameters, "
                               f"the checkpoint's policy has {parameter_count}")
        part = ReferenceSums(parameter_count)
        part.sums = GradientSums(ds["sum_grad_adv"].values.astype(np.float64),
                                 ds["sum_grad"].values.astype(np.float64), float(ds["sum_adv"]),
                                 float(ds["sum_adv_sq"]), int(ds["count"]))
        part.halves = ([GradientSums(ds["half_sum_grad_adv"].values[h].astype(np.float64),
                                     ds["half_sum_grad"].values[h].astype(np.float64),
                                     float(ds["half_sum_adv"][h]), float(ds["half_sum_adv_sq"][h]),
                                     int(ds["half_count"][h])) for h in range(2)]
                       if "half_count" in ds else None)
        part.trajectory_count = int(ds["trajectory_count"])
        part.episode_count = int(ds["episode_count"])
        part.episode_length_sum = float(ds["episode_length_sum"])
        out.add(part)
    if out.sums.count == 0:
        raise PgprobeError("the gathered reference shards hold no samples")
    return out


# ---------------------------------------------------------------------------- estimates
def sample_estimates(ckpt, settings: dict, workers: int | None):
    """(grid, gradients (S, M, P), trajectory counts (S, M), mean episode lengths (S, M))."""
    from ..sampling import sample_streams
    agent, model, reduce = _model_and_reduce(ckpt)
    grid = common.sample_count_grid(settings)
    streams = common.estimate_streams(settings, ckpt, PURPOSE_ESTIMATE)
    summaries = sample_streams(agent, streams, workers=workers, chunk_size=settings["chunk_size"],
                               reduce=reduce, progress="gradient estimates")
    count_m = settings["estimates"]
    gradients = np.zeros((len(grid), count_m, model.parameter_count))
    trajectories = np.zeros((len(grid), count_m), np.int64)
    lengths = np.zeros((len(grid), count_m))
    row = {n: i for i, n in enumerate(grid)}
    for spec, summary in zip(streams, summaries):
        i, e = row[spec.step_count], spec.seed_key[-1]
        gradients[i, e] = summary.sums.gradient()
        trajectories[i, e] = summary.trajectory_count
        lengths[i, e] = common.mean_or_nan(summary.episode_lengths)
    return grid, gradients, trajectories, lengths


def run(checkpoint: str, settings: dict, workers: int | None, shard_paths: list | None = None) -> xr.Dataset:
    """The gradients dataset of one checkpoint (reference sampled here or gathered)."""
    from ..checkpoint import load_checkpoint
    from ..datasets import add_run_coords, provenance, variable

    ckpt = load_checkpoint(checkpoint)
    ckpt.require_finite()
    if shard_paths:
        reference = gather_shards(shard_paths, ckpt, settings)
    else:
        reference = sample_reference(ckpt, settings, workers)
    grid, gradients, trajectories, lengths = sample_estimates(ckpt, settings, workers)
    ref_gradient = reference.sums.gradient()
    half_cosine, true_cosine = reference.true_cosine()
    ds = common.similarity_dataset(
        quantity="gradient", sample_counts=grid, estimates=gradients, reference=ref_gradient,
        trajectory_counts=trajectories, mean_episode_lengths=lengths,
        reference_sample_count=reference.sums.count, reference_trajectory_count=reference.trajectory_count,
        reference_mean_episode_length=reference.mean_episode_length,
        extra={"reference_advantage_std": variable(
            (), math.sqrt(max(reference.sums.sum_adv_sq / reference.sums.count
                              - (reference.sums.sum_adv / reference.sums.count) ** 2, 0.0)),
            "standard deviation of the reference's GAE advantages (eq. 15 divisor)", "reward units"),
            "reference_half_cosine": variable(
                (), half_cosine, "cosine similarity of the reference gradients of the reference's two halves "
                "(streams of even and of odd index); NaN for shards without halves", "1"),
            "reference_true_cosine": variable(
                (), true_cosine, "estimated cosine similarity of the reference with the true gradient, "
                "1/sqrt(1 + rho/N) with rho from the halves' agreement (stats.split_half_true_cosine); "
                "Figure 2's cosines are against a reference this close to the truth", "1")})
    ds = common.add_variance_summary(ds, gradients, "gradient")
    ds = add_run_coords(ds, ckpt.env_id, ckpt.label, ckpt.seed, ckpt.iteration,
                        source=ckpt.source, env_steps=ckpt.env_steps)
    ds.attrs = provenance("gradients", config_section=settings, checkpoint_sha256=ckpt.sha256,
                          reference_shard_files=len(shard_paths or []),
                          estimator="eq. 1 surrogate gradient at theta0, GAE advantages normalized by eq. 15")
    return ds


# ---------------------------------------------------------------------------- CLI
def _common_arguments(parser) -> None:
    from ..cli import nonnegative_int, positive_int
    parser.add_argument("--checkpoint", required=True, help="checkpoint file (.pt)")
    parser.add_argument("--out", required=True, help="output NetCDF file")
    parser.add_argument("--settings", help="JSON object: the config section probes.gradients")
    parser.add_argument("--workers", type=positive_int, help="sampler worker processes (default: all cores)")
    parser.add_argument("--seed", type=nonnegative_int, help="probe seed (overrides settings.seed)")


def _cmd_gradients(args) -> None:
    from ..datasets import write_netcdf
    settings = resolve_settings(args.settings, args.seed)
    ds = run(args.checkpoint, settings, args.workers, args.shards)
    write_netcdf(ds, args.out)
    print(f"wrote {args.out}")


def _cmd_shard(args) -> None:
    from ..checkpoint import load_checkpoint
    from ..datasets import write_netcdf
    settings = resolve_settings(args.settings, args.seed)
    sharding.check_shard(args.shard, settings["reference_shards"], "probes.gradients setting reference_shards")
    ckpt = load_checkpoint(args.checkpoint)
    ckpt.require_finite()
    ref = sample_reference(ckpt, settings, args.workers, shard=args.shard, label=f"reference shard {args.shard}")
    write_netcdf(shard_dataset(ref, ckpt, settings, args.shard), args.out)
    print(f"wrote {args.out}")


def shard_path(out: str | Path, shard: int) -> Path:
    """The conventional shard file name: FILE.nc → FILE.shardK.nc."""
    out = Path(out)
    return out.with_name(f"{out.stem}.shard{int(shard)}{out.suffix or '.nc'}")


def add_parser(subparsers) -> None:
    from ..cli import nonnegative_int
    parser = subparsers.add_parser(
        "gradients", help="gradient-estimate variance and convergence vs sample count (§2.1, Figs 1, 2, 9, 10)",
        description=__doc__.split("\n\n")[0])
    _common_arguments(parser)
    parser.add_argument("--shards", nargs="+", metavar="FILE",
                        help="gather the reference from these gradients-shard files instead of sampling it")
    parser.set_defaults(func=_cmd_gradients)

    shard = subparsers.add_parser(
        "gradients-shard", help="one shard of the reference gradient's sufficient statistics")
    _common_arguments(shard)
    shard.add_argument("--shard", required=True, type=nonnegative_int,
                       help="shard index K, 0 ≤ K < settings.reference_shards")
    shard.set_defaults(func=_cmd_shard)


check_settings = resolve_settings
