"""Issue 27 §3, the experiment: is GAE's λ why the two PPOs' gradient estimates differ?

    python docs/measurements/agents_series/lambda_experiment.py CHECKPOINT [CHECKPOINT ...] \
        [--lambdas 0.95 0.99] [--sample-counts 2048 8192 32768] [--estimates 10] [--workers 2]

The RL Zoo's Hopper PPO uses λ = 0.99 (γ = 0.999), pgprobe's PPO λ = 0.95 (γ = 0.99).  GAE's
advantage Â_t = Σ_k (γλ)^k δ_{t+k} sums TD residuals over ~1/(1−γλ) steps: 91 for the Zoo's,
17 for pgprobe's, so the Zoo's advantages, and the eq. (1) gradient estimates built on them,
should be noisier at equal sample counts (the bias-variance trade-off of Schulman et al.,
2016).  The experiment changes λ alone: the same checkpoint (policy, value net, normalizers,
γ), the same seeds (hence the same states, actions and rewards: the sampler's numbers do not
depend on λ), and only the advantages' λ differs.  Per checkpoint and sample count N it
prints Figure 1's mean pairwise cosine of M estimates at each λ and their paired difference,
and the unbiased relative variance T̂/Ŝ of ``pgprobe.stats`` (T̂ = tr Ĉov, Ŝ = unbiased
‖E ĝ‖²; NaN where Ŝ ≤ 0), each ± a delete-one jackknife SE over the M streams.

If λ explains the difference, the Zoo checkpoint at λ = 0.95 agrees with itself as much as
pgprobe's PPO does at matched steps, and pgprobe's PPO at λ = 0.99 as little as the Zoo's.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def sample(checkpoint_path: str, lam: float, sample_counts: list[int], estimates: int, workers: int):
    """(checkpoint, grid, gradient estimates (S, M, P)) with GAE's λ set to ``lam``."""
    from pgprobe.checkpoint import load_checkpoint
    from pgprobe.probes import gradients

    ckpt = load_checkpoint(checkpoint_path)
    ckpt.require_finite()
    ckpt.hyperparameters["own_gae_lambda"] = float(ckpt.hyperparameters["gae_lambda"])
    ckpt.hyperparameters["gae_lambda"] = lam           # frozen_agent() reads it: GAE's λ only
    settings = gradients.resolve_settings({"sample_counts": sample_counts, "estimates": estimates})
    grid, estimates_array, _, _ = gradients.sample_estimates(ckpt, settings, workers)
    return ckpt, grid, estimates_array


def mean_cosine(vectors: np.ndarray) -> float:
    from pgprobe.stats import pairwise_cosine

    return float(np.nanmean(pairwise_cosine(vectors)[0]))


def jackknife(statistic, *arrays) -> float:
    """Delete-one jackknife standard error over the estimate (stream) index, taken jointly
    across ``arrays`` (the λ arms share their streams: a paired difference)."""
    count = arrays[0].shape[0]
    leave = np.array([statistic(*(np.delete(a, i, 0) for a in arrays)) for i in range(count)])
    return float(np.sqrt((count - 1) / count * np.sum((leave - leave.mean()) ** 2)))


def main() -> None:
    from pgprobe.stats import unbiased_relative_variance, variance_components, gram_matrix

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--lambdas", type=float, nargs=2, default=[0.95, 0.99])
    parser.add_argument("--sample-counts", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--estimates", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    low, high = args.lambdas
    print("Mean pairwise cosine of M gradient estimates (Figure 1) and T̂/Ŝ, ± jackknife SE over the "
          f"M = {args.estimates} streams; Δ = (λ = {low:g}) − (λ = {high:g}) on the same streams.\n")
    print(f"| run | iteration | env_steps | γ | own λ | N | cosine λ={low:g} | cosine λ={high:g} | Δ cosine "
          f"| T̂/Ŝ λ={low:g} | T̂/Ŝ λ={high:g} | T̂ λ={low:g} / λ={high:g} |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for path in args.checkpoints:
        started = time.time()
        arms = {lam: sample(path, lam, args.sample_counts, args.estimates, args.workers) for lam in (low, high)}
        ckpt, grid, _ = arms[low]
        for i, count in enumerate(grid):
            a, b = arms[low][2][i], arms[high][2][i]
            cos_a, cos_b = mean_cosine(a), mean_cosine(b)
            delta = cos_a - cos_b
            delta_se = jackknife(lambda x, y: mean_cosine(x) - mean_cosine(y), a, b)
            ratio = {lam: unbiased_relative_variance(gram_matrix(v)) for lam, v in ((low, a), (high, b))}
            noise = {lam: float(variance_components(v)[0]) for lam, v in ((low, a), (high, b))}
            hp = ckpt.hyperparameters
            print(f"| {ckpt.label} | {ckpt.iteration} | {ckpt.env_steps} | {float(hp['gamma']):g} "
                  f"| {hp['own_gae_lambda']:g} | {int(count)} "
                  f"| {cos_a:.3f} ± {jackknife(mean_cosine, a):.3f} | {cos_b:.3f} ± {jackknife(mean_cosine, b):.3f} "
                  f"| {delta:+.3f} ± {delta_se:.3f} "
                  f"| {float(ratio[low][0]):.3g} ± {float(ratio[low][1]):.2g} "
                  f"| {float(ratio[high][0]):.3g} ± {float(ratio[high][1]):.2g} "
                  f"| {noise[low]:.3g} / {noise[high]:.3g} |", flush=True)
        print(f"<!-- {path}: {time.time() - started:.0f} s wall -->", flush=True)


if __name__ == "__main__":
    main()
