"""The training math against hand-computed cases: GAE, returns, PPO loss, TRPO's CG and KL."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pgprobe.advantages import discounted_returns, gae, normalize
from pgprobe.algos.common import UpdateBatch
from pgprobe.algos.ppo import clipped_surrogate
from pgprobe.algos.trpo import (conjugate_gradient, fisher_vector_product_fn, mean_kl,
                                trpo_policy_update)
from pgprobe.config import resolve_hyperparameters
from pgprobe.policies import GaussianPolicy, gaussian_kl, gaussian_log_prob
from pgprobe.stats import cosine_similarity, mean_relative_error, pairwise_cosine


def test_gae_by_hand_with_termination_truncation_and_rollout_end():
    gamma, lam = 0.9, 0.5
    # t0 -> t1 terminated; t2 truncated (time limit, bootstrap V(final)=4); t3 rollout end (V(s4)=5)
    rewards = np.array([1.0, 2.0, 3.0, 4.0])
    values = np.array([0.5, 1.0, 1.5, 2.0])
    next_values = np.array([1.0, 99.0, 4.0, 5.0])  # 99 must be ignored: terminated
    terminated = np.array([0, 1, 0, 0], bool)
    segment_end = np.array([0, 1, 1, 1], bool)
    d0 = 1 + 0.9 * 1.0 - 0.5
    d1 = 2 - 1.0
    d2 = 3 + 0.9 * 4.0 - 1.5
    d3 = 4 + 0.9 * 5.0 - 2.0
    expected = np.array([d0 + 0.45 * d1, d1, d2, d3])
    np.testing.assert_allclose(gae(rewards, values, next_values, terminated, segment_end, gamma, lam), expected)
    r1 = 2.0
    expected_returns = np.array([1 + 0.9 * r1, r1, 3 + 0.9 * 4.0, 4 + 0.9 * 5.0])
    np.testing.assert_allclose(discounted_returns(rewards, next_values, terminated, segment_end, gamma),
                               expected_returns)


def test_gae_lambda_one_equals_returns_minus_values():
    rng = np.random.default_rng(0)
    rewards, values, next_values = rng.normal(size=(3, 20))
    terminated = rng.random(20) < 0.1
    ends = terminated | (rng.random(20) < 0.1)
    ends[-1] = True
    next_values = np.where(ends & ~terminated, next_values, np.append(values[1:], next_values[-1]))
    adv = gae(rewards, values, next_values, terminated, ends, 0.97, 1.0)
    ret = discounted_returns(rewards, next_values, terminated, ends, 0.97)
    np.testing.assert_allclose(adv, ret - values, atol=1e-12)


def test_normalize_is_eq15():
    a = np.array([1.0, 2.0, 3.0, 6.0])
    np.testing.assert_allclose(normalize(a), (a - a.mean()) / a.std(), rtol=1e-6)


def test_ppo_clipped_surrogate_direct():
    log_old = torch.log(torch.tensor([0.5, 0.5, 0.5, 0.5]))
    ratios = torch.tensor([1.5, 0.5, 1.1, 0.7])
    adv = torch.tensor([1.0, 1.0, -2.0, -1.0])
    value = clipped_surrogate(log_old + torch.log(ratios), log_old, adv, 0.2)
    # min(ρA, clip(ρ)A): 1.5*1 vs 1.2*1 -> 1.2; 0.5 vs 0.8 -> 0.5; -2.2 vs -2.2; -0.7 vs -0.8 -> -0.8
    assert value.item() == pytest.approx((1.2 + 0.5 - 2.2 - 0.8) / 4, abs=1e-6)


def test_gaussian_log_prob_and_kl_match_torch_distributions():
    mean = torch.tensor([[0.3, -1.0]])
    log_std = torch.tensor([0.2, -0.5])
    act = torch.tensor([[0.1, 0.4]])
    ref = torch.distributions.Normal(mean, log_std.exp())
    assert gaussian_log_prob(mean, log_std, act).item() == pytest.approx(ref.log_prob(act).sum().item(), rel=1e-6)
    other = torch.distributions.Normal(mean + 0.3, (log_std - 0.1).exp())
    kl = torch.distributions.kl_divergence(ref, other).sum()
    assert gaussian_kl(mean, log_std, mean + 0.3, log_std - 0.1).item() == pytest.approx(kl.item(), rel=1e-6)


def test_conjugate_gradient_solves_spd_system():
    rng = np.random.default_rng(1)
    m = rng.normal(size=(6, 6))
    a = torch.tensor(m @ m.T + 6 * np.eye(6))
    b = torch.tensor(rng.normal(size=6))
    x = conjugate_gradient(lambda v: a @ v, b, steps=10)
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(a.numpy(), b.numpy()), rtol=1e-8)


def test_fisher_vector_product_equals_explicit_kl_hessian():
    torch.manual_seed(0)
    policy = GaussianPolicy(3, 2, [4], "orthogonal")
    obs = torch.randn(16, 3)
    fvp = fisher_vector_product_fn(policy, obs, damping=0.1)
    params = list(policy.parameters())
    with torch.no_grad():
        old_mean, old_log_std = policy(obs), policy.log_std.clone()
    from pgprobe.policies import flat_params
    theta0 = flat_params(policy)
    names = [n for n, _ in policy.named_parameters()]

    def kl_of(theta):
        tensors, offset = {}, 0
        for name, p in zip(names, params):
            tensors[name] = theta[offset:offset + p.numel()].view_as(p)
            offset += p.numel()
        mean = torch.func.functional_call(policy, tensors, (obs,))
        return gaussian_kl(old_mean, old_log_std, mean, tensors["log_std"]).mean()
    hessian = torch.autograd.functional.hessian(kl_of, theta0)
    v = torch.randn_like(theta0)
    np.testing.assert_allclose(fvp(v).numpy(), (hessian @ v + 0.1 * v).numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("max_kl", [0.001, 0.01, 0.13])
def test_trpo_step_respects_kl_constraint(max_kl):
    torch.manual_seed(2)
    policy = GaussianPolicy(4, 2, [16, 16], "xavier")
    obs = torch.randn(256, 4)
    with torch.no_grad():
        actions = policy(obs) + torch.randn(256, 2)
        log_probs = policy.log_prob(obs, actions)
        old_mean, old_log_std = policy(obs), policy.log_std.clone()
    advantages = (actions[:, 0] - 0.5 * obs[:, 1]).numpy()
    batch = UpdateBatch.from_arrays(obs.numpy(), actions.numpy(), log_probs.numpy(), np.zeros(256),
                                    advantages, advantages)
    hp = {**resolve_hyperparameters("Hopper-v5", "trpo"), "max_kl": max_kl}
    info = trpo_policy_update(policy, batch, hp, torch.Generator().manual_seed(0))
    with torch.no_grad():
        kl = mean_kl(policy, obs, old_mean, old_log_std).item()
    assert info["backtracks"] >= 0, "a step must be accepted on this easy problem"
    assert kl <= max_kl + 1e-7
    assert info["improvement"] > 0


def test_cosine_and_pairwise_exact():
    assert cosine_similarity([1, 0], [1, 1]) == pytest.approx(1 / np.sqrt(2))
    values, a, b = pairwise_cosine(np.array([[1, 0], [0, 1], [1, 1]]))
    np.testing.assert_allclose(values, [0, 1 / np.sqrt(2), 1 / np.sqrt(2)])
    assert list(a) == [0, 0, 1] and list(b) == [1, 2, 2]
    # A zero vector (a rejected TRPO step) has no angle: NaN in both functions, one convention.
    assert np.isnan(cosine_similarity([0, 0], [1, 1]))
    values, _, _ = pairwise_cosine(np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]))
    assert np.isnan(values[:2]).all() and values[2] == pytest.approx(1 / np.sqrt(2))


def test_mean_relative_error_with_guard():
    assert mean_relative_error([1.1, 1.8], [1.0, 2.0]) == pytest.approx(0.1)
    # a zero target cannot produce inf: floor = 1e-3 * mean|y|
    assert np.isfinite(mean_relative_error([0.5, 1.0], [0.0, 1.0]))
