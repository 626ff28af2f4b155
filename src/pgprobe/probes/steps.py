"""Update-step quality probe (paper Appendix A.4, footnote 1 of §2.1).

Usage::

  pgprobe probe steps --checkpoint runs/.../iter0150.pt --out steps/iter0150.nc \\
      [--settings '{"max_sample_count": 16384, "reference_samples": 262144}'] \\
      [--workers N] [--seed S]

What it measures.  Deep policy-gradient algorithms use gradients only indirectly; what moves
the policy is the algorithm's update step Δθ = θ′ − θ0 (``pgprobe.update.update_step``):

* PPO: the full multi-epoch minibatch Adam run on the clipped surrogate (eq. 17), starting
  from the checkpoint's optimizer state at the learning rate the next iteration would use,
  ``policy_epochs`` epochs over ``minibatches`` minibatches;
* TRPO: the natural-gradient step β F⁻¹ĝ (conjugate gradient on Fisher-vector products from a
  ``fisher_fraction`` subset) after the backtracking line search on eq. (14) under the KL
  constraint δ (a zero step where the line search finds none).

Advantages are GAE from the checkpoint's value net, normalized over the batch (eq. 15), as
in training.  For each sample count n of the grid, M independent n-sample streams of the
frozen policy each give a step; the dataset keeps the cosine similarity of all pairs of
steps (the step analogue of Figure 9) and of each step with a reference step (Figure 10's
analogue).

The reference step is the same algorithm with the same hyperparameters run on one batch of
``reference_samples`` samples (⌈reference_samples / reference_stream_steps⌉ streams): the
number of minibatches per epoch is the algorithm's (Table 1 code default 32), so the
minibatch size scales with the batch (n/32 samples), and the number of optimizer steps is
the same as in training.  With a large batch this is the step the algorithm would take with
an (almost) exact gradient in every minibatch, i.e. the limit the n-sample steps approach.
Unlike the gradient, a PPO run is not a sum over samples, so the reference step cannot be
assembled from shards: it is computed in one job (sampling parallel over ``--workers``;
10⁶ samples take seconds of optimizer time, memory ≈ samples × (obs_dim + act_dim + 4) × 4
bytes, e.g. 1.4 GB for Humanoid at 10⁶).  Seeds of the minibatch order / Fisher subset are
derived from (seed, checkpoint seed, iteration, purpose, n, estimate).

Dataset (kind "steps"): as the gradients probe (docs/reference/datasets.md), with "step" in
place of "gradient", plus ``reference_step_norm``-style scalars and per-estimate step norms
(a zero norm: TRPO rejected every line-search candidate).

Variance: as the gradients probe (``noise_trace``, ``signal_norm_sq``,
``relative_variance_unbiased`` with a jackknife SE, ``gram``; ``relative_variance`` is the
plug-in ratio with its ceiling at M).  Steps are not sample means, so Ŝ estimates ‖E Δθ_N‖²
of the N-sample step, which depends on N.

Scale: the defaults (1K…8K samples, 10 estimates, 64K-sample reference) fit the default
config on 2 cores; the paper's Appendix A.4 uses the same grid as its gradient figures.
"""
from __future__ import annotations

import sys
import time
from functools import partial

import numpy as np
import xarray as xr

from . import common

PURPOSE_ESTIMATE = 111
PURPOSE_REFERENCE = 112
PURPOSE_UPDATE_SEED = 113

DEFAULTS = common.defaults("steps")   # settings.schema.yaml: the one source


def resolve_settings(text_or_dict, seed: int | None = None) -> dict:
    settings = common.parse_settings(text_or_dict, "steps")
    if seed is not None:
        settings["seed"] = int(seed)
    common.sample_count_grid(settings)
    return settings


def run(checkpoint: str, settings: dict, workers: int | None) -> xr.Dataset:
    """The steps dataset of one checkpoint (update steps on one torch thread:
    ``pgprobe.estimators.single_torch_thread``)."""
    from ..estimators import single_torch_thread

    with single_torch_thread():
        return _run(checkpoint, settings, workers)


def _run(checkpoint: str, settings: dict, workers: int | None) -> xr.Dataset:
    from ..checkpoint import load_checkpoint
    from ..datasets import add_run_coords, provenance
    from ..update import concatenate, stream_batch, update_rule, update_step
    from ..sampling import sample_streams

    ckpt = load_checkpoint(checkpoint)
    ckpt.require_finite()
    update_rule(ckpt)   # an imported agent without a known update rule: one-line error before sampling
    agent = ckpt.frozen_agent()
    reduce = partial(stream_batch, gamma=agent.gamma, lam=agent.gae_lambda)
    seed = settings["seed"]

    start = time.perf_counter()
    ref_streams = common.reference_streams(settings, ckpt, PURPOSE_REFERENCE)
    ref_pieces = sample_streams(agent, ref_streams, workers=workers, chunk_size=settings["chunk_size"],
                                reduce=reduce, progress="reference step samples")
    sampled = time.perf_counter()
    reference = update_step(ckpt, concatenate(ref_pieces),
                            common.derived_seed(seed, ckpt.seed, ckpt.iteration, PURPOSE_UPDATE_SEED, 0, 0))
    ref_count = sum(p.obs.shape[0] for p in ref_pieces)
    ref_traj = sum(p.trajectory_count for p in ref_pieces)
    ref_len = common.mean_or_nan(x for p in ref_pieces for x in p.episode_lengths)
    del ref_pieces
    print(f"pgprobe: reference step: {ref_count} samples sampled in {sampled - start:.1f} s, "
          f"{ckpt.algo.upper()} update in {time.perf_counter() - sampled:.1f} s", file=sys.stderr)

    grid = common.sample_count_grid(settings)
    streams = common.estimate_streams(settings, ckpt, PURPOSE_ESTIMATE)
    start = time.perf_counter()
    pieces = sample_streams(agent, streams, workers=workers, chunk_size=settings["chunk_size"],
                            reduce=reduce, progress="step estimates")
    sampled = time.perf_counter()
    count_m = settings["estimates"]
    steps = np.zeros((len(grid), count_m, reference.size))
    trajectories = np.zeros((len(grid), count_m), np.int64)
    lengths = np.zeros((len(grid), count_m))
    row = {n: i for i, n in enumerate(grid)}
    from tqdm import tqdm
    for spec, piece in tqdm(list(zip(streams, pieces)), desc="update steps", mininterval=2.0,
                            disable=len(streams) < 4):
        n, e = spec.step_count, spec.seed_key[-1]
        i = row[n]
        steps[i, e] = update_step(ckpt, concatenate([piece]),
                                  common.derived_seed(seed, ckpt.seed, ckpt.iteration, PURPOSE_UPDATE_SEED, n, e + 1))
        trajectories[i, e] = piece.trajectory_count
        lengths[i, e] = common.mean_or_nan(piece.episode_lengths)
    print(f"pgprobe: step estimates: sampled in {sampled - start:.1f} s, updates in "
          f"{time.perf_counter() - sampled:.1f} s", file=sys.stderr)

    ds = common.similarity_dataset(
        quantity="update step", sample_counts=grid, estimates=steps, reference=reference,
        trajectory_counts=trajectories, mean_episode_lengths=lengths, reference_sample_count=ref_count,
        reference_trajectory_count=ref_traj, reference_mean_episode_length=ref_len,
        extra=_recorded_step_variables(ckpt, reference))
    ds = common.add_variance_summary(ds, steps, "update step")
    ds = add_run_coords(ds, ckpt.env_id, ckpt.label, ckpt.seed, ckpt.iteration,
                        source=ckpt.source, env_steps=ckpt.env_steps)
    ds.attrs = provenance("steps", config_section=settings, checkpoint_sha256=ckpt.sha256,
                          estimator=f"{ckpt.algo} update step theta' - theta0 (pgprobe.update.update_step)")
    return ds


def _recorded_step_variables(ckpt, reference: np.ndarray) -> dict:
    """The step the agent actually took next, where the checkpoint saved it (SB3 through
    ``pgprobe.integrations.sb3.ProbeCheckpointCallback``: its rollout buffer and minibatch
    order, replayed exactly): its cosine with the reference step and its norm, beside the
    sampled estimates at the same batch size.  NaN (sample count 0) for other checkpoints."""
    from ..datasets import variable
    from ..integrations.sb3 import recorded_next_step

    recorded = recorded_next_step(ckpt)
    cosine, norm, count = np.nan, np.nan, 0
    if recorded is not None:
        norm = float(np.linalg.norm(recorded))
        ref_norm = float(np.linalg.norm(reference))
        if norm > 0 and ref_norm > 0:
            cosine = float(recorded @ reference / (norm * ref_norm))
        count = int(len(ckpt.next_update["observations"]))
    where = "the update the agent actually made next (its own rollout buffer, saved by ProbeCheckpointCallback)"
    return {
        "recorded_step_reference_cosine": variable((), cosine, f"cosine similarity between {where} and the "
                                                   "reference update step (NaN: no saved next update)", "1"),
        "recorded_step_norm": variable((), norm, f"Euclidean norm of {where} (NaN: no saved next update)",
                                       "parameter units"),
        "recorded_step_sample_count": variable((), count, "state-action pairs behind the recorded step (0: none "
                                               "saved)", "state-action pairs"),
    }


def _cmd_steps(args) -> None:
    from ..datasets import write_netcdf
    settings = resolve_settings(args.settings, args.seed)
    ds = run(args.checkpoint, settings, args.workers)
    write_netcdf(ds, args.out)
    print(f"wrote {args.out}")


def add_parser(subparsers) -> None:
    from ..cli import nonnegative_int, positive_int
    parser = subparsers.add_parser(
        "steps", help="update-step variance and convergence vs sample count (Appendix A.4)",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint file (.pt)")
    parser.add_argument("--out", required=True, help="output NetCDF file")
    parser.add_argument("--settings", help="JSON object: the config section probes.steps")
    parser.add_argument("--workers", type=positive_int, help="sampler worker processes (default: all cores)")
    parser.add_argument("--seed", type=nonnegative_int, help="probe seed (overrides settings.seed)")
    parser.set_defaults(func=_cmd_steps)




check_settings = resolve_settings
