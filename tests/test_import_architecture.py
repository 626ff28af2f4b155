"""Architecture from the checkpoint: ReLU networks in the numpy sampler and the hand
back-propagated gradients of the probes (imported agents), tanh unchanged by default."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pgprobe.estimators import gradient_sums
from pgprobe.policies import GaussianPolicy, NumpyMLP, ValueNet, mlp
from pgprobe import gradient_model


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_numpy_networks_and_gradients_follow_the_activation(activation):
    torch.manual_seed(0)
    policy = GaussianPolicy(5, 2, [16, 8], activation=activation)
    value = ValueNet(5, [12], activation=activation)
    with torch.no_grad():
        for p in [*policy.parameters(), *value.parameters()]:
            p.add_(0.3 * torch.randn_like(p))
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(400, 5)).astype(np.float32)
    actions = rng.normal(size=(400, 2)).astype(np.float32)
    advantages = rng.normal(size=400)
    with torch.no_grad():
        np.testing.assert_allclose(NumpyMLP(policy.mean_net)(obs), policy(torch.as_tensor(obs)).numpy(), atol=1e-5)
        np.testing.assert_allclose(NumpyMLP(value.net)(obs), value.net(torch.as_tensor(obs)).numpy(), atol=1e-5)
    model = gradient_model.PolicyGradientModel.from_policy(policy)
    assert model.activation == activation
    ours = model.gradient_sums(obs, actions, advantages)
    autograd = gradient_sums(policy, obs, actions, advantages)
    for a, b in ((autograd.sum_grad_adv, ours.sum_grad_adv), (autograd.sum_grad, ours.sum_grad)):
        assert np.abs(a - b).max() <= 1e-4 * np.abs(a).max()


def test_default_activation_is_tanh_and_unknown_is_refused():
    assert NumpyMLP(mlp(3, [4], 1, "orthogonal", 1.0)).activation == "tanh"
    with pytest.raises(ValueError, match="unknown activation 'elu'"):
        mlp(3, [4], 1, "orthogonal", 1.0, activation="elu")
