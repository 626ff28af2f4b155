"""Issue 27 §3, the experiment: is GAE's λ why the two PPOs' gradient estimates differ?

    python docs/measurements/agents_series/lambda_experiment.py CHECKPOINT [CHECKPOINT ...] \
        [--lambdas 0.95 0.99] [--sample-counts 2048 8192 32768] [--estimates 10] [--workers 2]

The RL Zoo's Hopper PPO uses λ = 0.99 (γ = 0.999), pgprobe's PPO λ = 0.95 (γ = 0.99).  GAE's
advantage Â_t = Σ_k (γλ)^k δ_{t+k} sums TD residuals over ~1/(1−γλ) steps: 91 for the Zoo's,
17 for pgprobe's, so the Zoo's advantages, and the eq. (1) gradient estimates built on them,
should be noisier at equal sample counts (the bias-variance trade-off of Schulman et al.,
2016).  The experiment changes λ alone: the same checkpoint (policy, value net, normalizers,
γ), the same seeds (hence the same states, actions and rewards: the sampler's numbers do not
depend on λ), and only the advantages' λ differs.  Per checkpoint, λ and sample count N it
prints Figure 1's mean pairwise cosine of M estimates and the unbiased variance components
of ``pgprobe.stats`` (T̂ = tr Ĉov, Ŝ = unbiased ‖E ĝ‖², their ratio; NaN where Ŝ ≤ 0).

If λ explains the difference, the Zoo checkpoint at λ = 0.95 agrees with itself as much as
pgprobe's PPO does at matched steps, and pgprobe's PPO at λ = 0.99 as little as the Zoo's.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def measure(checkpoint_path: str, lam: float, sample_counts: list[int], estimates: int, workers: int) -> list[dict]:
    from pgprobe.checkpoint import load_checkpoint
    from pgprobe.probes import gradients
    from pgprobe.stats import noise_to_signal, pairwise_cosine, variance_components

    ckpt = load_checkpoint(checkpoint_path)
    ckpt.require_finite()
    own = float(ckpt.hyperparameters["gae_lambda"])
    ckpt.hyperparameters["gae_lambda"] = lam           # frozen_agent() reads it: GAE's λ only
    settings = gradients.resolve_settings({"sample_counts": sample_counts, "estimates": estimates})
    grid, estimates_array, _, _ = gradients.sample_estimates(ckpt, settings, workers)
    rows = []
    for i, count in enumerate(grid):
        cosines, _, _ = pairwise_cosine(estimates_array[i])
        noise, signal = (float(x) for x in variance_components(estimates_array[i]))
        rows.append({"checkpoint": checkpoint_path, "label": ckpt.label, "iteration": ckpt.iteration,
                     "env_steps": ckpt.env_steps, "gamma": float(ckpt.hyperparameters["gamma"]),
                     "own_lambda": own, "lambda": lam, "sample_count": int(count),
                     "mean_pairwise_cosine": float(np.mean(cosines)), "noise_trace": noise,
                     "signal_norm_sq": signal, "relative_variance": float(noise_to_signal(noise, signal))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--lambdas", type=float, nargs="+", default=[0.95, 0.99])
    parser.add_argument("--sample-counts", type=int, nargs="+", default=[2048, 8192, 32768])
    parser.add_argument("--estimates", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print("| run | iteration | env_steps | γ | own λ | λ | N | mean pairwise cosine | T̂ | Ŝ | T̂/Ŝ | CPU-s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for path in args.checkpoints:
        for lam in args.lambdas:
            started = time.process_time()
            rows = measure(path, lam, args.sample_counts, args.estimates, args.workers)
            cpu = time.process_time() - started
            for r in rows:
                print(f"| {r['label']} | {r['iteration']} | {r['env_steps']} | {r['gamma']:g} | {r['own_lambda']:g} "
                      f"| {r['lambda']:g} | {r['sample_count']} | {r['mean_pairwise_cosine']:.3f} "
                      f"| {r['noise_trace']:.3g} | {r['signal_norm_sq']:.3g} | {r['relative_variance']:.3g} "
                      f"| {cpu:.0f} |", flush=True)


if __name__ == "__main__":
    main()
