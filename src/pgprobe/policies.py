"""Gaussian MLP policy with state-independent log-std, and the value network.

π_θ(a|s) = N(a; μ_θ(s), diag(exp(2·log σ))), μ_θ an MLP (tanh, [64, 64] in Table 1;
imported agents may use other sizes and ReLU: ``ACTIVATIONS``).
Sampling code uses a numpy copy of the weights (``NumpyMLP``) to avoid per-step torch
overhead; both compute the same function in float32.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .activations import activate

LOG_2PI = math.log(2.0 * math.pi)

# Hidden-layer activations by name (checkpoint hyperparameter "activation", default "tanh").
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def activation_name(seq: nn.Sequential) -> str:
    """The activation ("tanh" or "relu") of an ``mlp``; "tanh" when it has no hidden layer."""
    kinds = {name for module in seq for name, cls in ACTIVATIONS.items() if type(module) is cls}
    others = [m for m in seq if not isinstance(m, nn.Linear) and type(m) not in ACTIVATIONS.values()]
    if len(kinds) > 1 or others:
        raise ValueError(f"not a pgprobe MLP: layers {[type(m).__name__ for m in seq]}")
    return kinds.pop() if kinds else "tanh"


def mlp(in_dim: int, hidden: list[int], out_dim: int, init: str, head_gain: float,
        activation: str = "tanh") -> nn.Sequential:
    """MLP with ``activation`` ("tanh" or "relu") after each hidden layer, linear head.
    ``init``: "orthogonal" (hidden gain √2, head ``head_gain``, zero biases) or
    "xavier" (Glorot-uniform weights, zero biases)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}: expected one of {', '.join(ACTIVATIONS)}")
    layers: list[nn.Module] = []
    sizes = [in_dim, *hidden]
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
    layers.append(nn.Linear(sizes[-1], out_dim))
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    for i, layer in enumerate(linears):
        if init == "orthogonal":
            nn.init.orthogonal_(layer.weight, gain=head_gain if i == len(linears) - 1 else math.sqrt(2))
        elif init == "xavier":
            nn.init.xavier_uniform_(layer.weight)
        else:
            raise ValueError(f"unknown init {init!r}")
        nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


class GaussianPolicy(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int], init: str = "orthogonal",
                 initial_log_std: float = 0.0, activation: str = "tanh"):
        super().__init__()
        self.mean_net = mlp(obs_dim, hidden, act_dim, init, head_gain=0.01, activation=activation)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(initial_log_std)))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mean_net(obs)

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log π_θ(a|s) = −½ Σ_j [((a_j − μ_j)/σ_j)² + 2 log σ_j + log 2π]."""
        return gaussian_log_prob(self.mean_net(obs), self.log_std, actions)

    def entropy(self) -> torch.Tensor:
        """H = Σ_j (log σ_j + ½ log 2πe); state-independent."""
        return (self.log_std + 0.5 * (LOG_2PI + 1.0)).sum()


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    z = (actions - mean) * torch.exp(-log_std)
    return -0.5 * (z * z).sum(-1) - log_std.sum() - 0.5 * LOG_2PI * mean.shape[-1]


def gaussian_kl(mean_p: torch.Tensor, log_std_p: torch.Tensor,
                mean_q: torch.Tensor, log_std_q: torch.Tensor) -> torch.Tensor:
    """KL(N_p ‖ N_q) per row, diagonal Gaussians."""
    var_p, var_q = torch.exp(2 * log_std_p), torch.exp(2 * log_std_q)
    return (log_std_q - log_std_p + (var_p + (mean_p - mean_q) ** 2) / (2 * var_q) - 0.5).sum(-1)


class ValueNet(nn.Module):
    def __init__(self, obs_dim: int, hidden: list[int], init: str = "orthogonal", activation: str = "tanh"):
        super().__init__()
        self.net = mlp(obs_dim, hidden, 1, init, head_gain=1.0, activation=activation)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)


class NumpyMLP:
    """Float32 numpy copy of an ``mlp`` (tanh or ReLU) for fast batched sampling."""

    def __init__(self, seq: nn.Sequential):
        self.activation = activation_name(seq)
        linears = [m for m in seq if isinstance(m, nn.Linear)]
        self.weights = [m.weight.detach().numpy().T.astype(np.float32).copy() for m in linears]
        self.biases = [m.bias.detach().numpy().astype(np.float32).copy() for m in linears]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h = np.asarray(x, np.float32)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w + b
            if i < last:
                activate(h, self.activation)
        return h



def flat_params(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def set_flat_params(module: nn.Module, flat: torch.Tensor) -> None:
    offset = 0
    with torch.no_grad():
        for p in module.parameters():
            n = p.numel()
            p.copy_(flat[offset:offset + n].view_as(p))
            offset += n


def flat_grad(output: torch.Tensor, params, **kwargs) -> torch.Tensor:
    grads = torch.autograd.grad(output, list(params), **kwargs)
    return torch.cat([g.reshape(-1) for g in grads])
