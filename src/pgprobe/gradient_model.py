"""Exact float64 numpy gradients of a Gaussian MLP policy's log-likelihood, for sampler workers.

``PolicyGradientModel`` gives ∇θ Σ_i w_ki log π_θ(a_i|s_i) for K weightings at once (one
forward and one backward pass, no torch, so it runs inside forked sampler workers), and
``stream_gradient_sums`` is the ``reduce`` that turns one sampled stream into the
sufficient statistics of eq. (1)'s gradient (``pgprobe.estimators.GradientSums``) inside
the worker, so that large samples never cross process boundaries.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .activations import activate


class PolicyGradientModel:
    """Float64 numpy copy of a Gaussian MLP policy (tanh or ReLU) with exact ∇θ log π.

    log π_θ(a|s) = −½ Σ_j z_j² − Σ_j log σ_j − (d/2) log 2π,  z = (a − μ_θ(s)) / σ,
    so ∂log π/∂μ = z/σ and ∂log π/∂log σ = z² − 1; the mean MLP is back-propagated by hand
    (h_l = f(h_{l−1} W_l + b_l), f = tanh or ReLU, last layer linear).  Parameters are flattened in
    ``GaussianPolicy.parameters()`` order: log_std (the module's own parameter comes first),
    then each Linear's weight (out × in, row-major) and bias — the order of
    ``pgprobe.policies.flat_params``.
    """

    def __init__(self, weights: list[np.ndarray], biases: list[np.ndarray], log_std: np.ndarray,
                 activation: str = "tanh"):
        if activation not in ("tanh", "relu"):
            raise ValueError(f"unknown activation {activation!r}: expected 'tanh' or 'relu'")
        self.activation = activation
        self.weights = [np.asarray(w, np.float64) for w in weights]   # (in, out) each
        self.biases = [np.asarray(b, np.float64) for b in biases]
        self.log_std = np.asarray(log_std, np.float64)
        self.std = np.exp(self.log_std)
        self.parameter_count = int(sum(w.size + b.size for w, b in zip(self.weights, self.biases))
                                   + self.log_std.size)

    @classmethod
    def from_agent(cls, agent) -> "PolicyGradientModel":
        """From a ``pgprobe.sampling.FrozenAgent`` (the float32 weights the sampler acts with)."""
        return cls(agent.policy_mean.weights, agent.policy_mean.biases, agent.log_std,
                   getattr(agent.policy_mean, "activation", "tanh"))

    @classmethod
    def from_policy(cls, policy) -> "PolicyGradientModel":
        """From a torch ``GaussianPolicy``."""
        from .policies import NumpyMLP   # torch: only for a torch policy
        mlp = NumpyMLP(policy.mean_net)
        return cls(mlp.weights, mlp.biases, policy.log_std.detach().numpy(), mlp.activation)

    def weighted_sums(self, obs: np.ndarray, actions: np.ndarray, weights: np.ndarray,
                      block: int = 8192) -> np.ndarray:
        """∇θ Σ_i w_ki log π_θ(a_i|s_i) for every weighting k.

        obs (..., n, obs_dim), actions (..., n, act_dim), weights (..., K, n) → (..., K, P);
        the leading dims ``...`` (e.g. independent estimates of equal size) are batched.
        Samples are processed in blocks of ``block`` along n (memory), sums in float64.
        """
        obs = np.asarray(obs, np.float64)
        actions = np.asarray(actions, np.float64)
        weights = np.asarray(weights, np.float64)
        lead = obs.shape[:-2]
        n = obs.shape[-2]
        count_k = weights.shape[-2]
        flat_obs = obs.reshape((-1, n, obs.shape[-1]))
        flat_act = actions.reshape((-1, n, actions.shape[-1]))
        flat_w = weights.reshape((-1, count_k, n))
        out = np.zeros((flat_obs.shape[0], count_k, self.parameter_count))
        for j in range(flat_obs.shape[0]):   # leading index (e.g. estimate): 2-D BLAS below
            for start in range(0, n, block):
                stop = min(start + block, n)
                out[j] += self._block(flat_obs[j, start:stop], flat_act[j, start:stop],
                                      flat_w[j, :, start:stop])
        return out.reshape(lead + (count_k, self.parameter_count))

    def _block(self, obs, actions, weights):
        """obs (n, d), actions (n, a), weights (K, n) → (K, P)."""
        hidden = [obs]
        h = obs
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w + b
            if i < last:
                activate(h, self.activation)
            hidden.append(h)
        z = (actions - hidden[-1]) / self.std
        delta = z / self.std                      # ∂log π/∂μ, (n, act)
        pieces = [weights @ (z * z - 1.0)]        # ∂/∂log σ: Σ_i w_ki (z_i² − 1), (K, act)
        layers = []
        for i in range(last, -1, -1):
            h_in = hidden[i]
            # Σ_i w_ki δ_i ⊗ h_i (torch weight layout out × in) and Σ_i w_ki δ_i.
            grad_w = np.stack([(delta * w_k[:, None]).T @ h_in for w_k in weights])
            layers.append((grad_w.reshape(len(weights), -1), weights @ delta))
            if i > 0:
                if self.activation == "tanh":
                    delta = (delta @ self.weights[i].T) * (1.0 - h_in * h_in)
                else:   # ReLU: h_in > 0 exactly where its pre-activation was
                    delta = (delta @ self.weights[i].T) * (h_in > 0.0)
        for grad_w, grad_b in reversed(layers):
            pieces += [grad_w, grad_b]
        return np.concatenate(pieces, axis=-1)

    def gradient_sums(self, obs, actions, advantages):
        """``pgprobe.estimators.GradientSums`` of these samples (Σ∇logπ·A, Σ∇logπ, ΣA, ΣA², n)."""
        from .estimators import GradientSums
        advantages = np.asarray(advantages, np.float64)
        weights = np.stack([advantages, np.ones_like(advantages)])
        sums = self.weighted_sums(obs, actions, weights)
        return GradientSums(sums[0], sums[1], float(advantages.sum()), float((advantages ** 2).sum()),
                            int(advantages.size))

    def normalized_gradients(self, obs, actions, advantages) -> np.ndarray:
        """Eq. (1) with eq. (15) normalization, per leading index: obs (..., n, d),
        advantages (..., n) → (..., P); ĝ = (1/n) Σ_i ∇log π_i (A_i − μ_A)/(σ_A + 10⁻⁸)
        with μ_A, σ_A over the n samples of each estimate (as ``GradientSums.gradient``)."""
        advantages = np.asarray(advantages, np.float64)
        n = advantages.shape[-1]
        mean = advantages.mean(-1, keepdims=True)
        std = np.sqrt(np.maximum((advantages ** 2).mean(-1, keepdims=True) - mean ** 2, 0.0)) + 1e-8
        normalized = (advantages - mean) / (n * std)
        return self.weighted_sums(obs, actions, normalized[..., None, :])[..., 0, :]


# ---------------------------------------------------------------------------- BLAS threads
def limit_blas_threads(count: int = 1) -> None:
    """Cap the BLAS library numpy uses at ``count`` threads in this process (threadpoolctl).

    Sampler workers (one per core) each do large matmuls in their ``reduce``; a
    multi-threaded BLAS in every worker oversubscribes the cores and, on a busy machine,
    runs an order of magnitude slower (measured 1.4 s vs 20 s for 200K samples).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=int(count), user_api="blas")


# ---------------------------------------------------------------------------- per-stream reduce
@dataclass
class StreamSummary:
    """What a worker returns for one stream: gradient sums and its independent units."""
    sums: object                  # GradientSums
    sample_count: int
    trajectory_count: int         # trajectories started, including the cut last one
    episode_lengths: list         # completed episodes' lengths
    gradient_seconds: float       # CPU time spent on GAE + gradient sums in the worker


def stream_gradient_sums(rollout, spec, model: PolicyGradientModel, gamma: float, lam: float) -> StreamSummary:
    """``reduce`` for ``sample_streams``: GAE (checkpoint's value net) then gradient sums."""
    from .estimators import rollout_advantages
    limit_blas_threads(1)
    start = time.process_time()
    advantages, _ = rollout_advantages(rollout, gamma, lam)
    sums = model.gradient_sums(rollout.obs, rollout.actions, advantages)
    return StreamSummary(sums, rollout.sample_count, rollout.trajectory_count,
                         list(rollout.episode_lengths), time.process_time() - start)
