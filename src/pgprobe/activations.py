"""Hidden-layer activations of pgprobe's MLPs in numpy, shared by the sampler's float32
network copy (``pgprobe.policies.NumpyMLP``) and the hand back-propagated float64
gradients (``pgprobe.gradient_model``).  numpy only: importing it imports no torch (the
workflow's parse-time checks import the probes, and with them this module)."""
from __future__ import annotations

import numpy as np


def activate(h: np.ndarray, activation: str) -> np.ndarray:
    """A hidden layer's activation in place: tanh, or ReLU max(h, 0)."""
    if activation == "tanh":
        return np.tanh(h, out=h)
    return np.maximum(h, 0.0, out=h)
