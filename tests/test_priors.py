"""Fit-free tests of the priors p(z): KL, log-density, draws, description round trip."""

import json
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from scipy.special import logsumexp, softmax

from skvae._priors import PRIORS, MixturePrior, Prior, StandardNormal, build_prior


def _posterior(rng, n=5, d=3):
    """A random diagonal Gaussian q(z|x): mean and log-variance, float64 arrays."""
    return rng.normal(size=(n, d)), rng.uniform(-2.0, 1.0, size=(n, d))


def _mixture(rng, d=3, n_mixture=4):
    """A float64 mixture prior with random, non-uniform parameters."""
    torch.manual_seed(0)
    prior = MixturePrior(d, n_mixture).double()
    with torch.no_grad():
        prior.means.copy_(torch.from_numpy(rng.normal(scale=1.5, size=(n_mixture, d))))
        prior.log_vars.copy_(torch.from_numpy(rng.uniform(-1.5, 0.5, (n_mixture, d))))
        prior.logits.copy_(torch.from_numpy(rng.normal(size=n_mixture)))
    return prior


def _params(prior):
    """The mixture's weights, means and standard deviations as numpy arrays."""
    weights = softmax(prior.logits.detach().numpy())
    means = prior.means.detach().numpy()
    stds = np.exp(0.5 * prior.log_vars.detach().numpy())
    return weights, means, stds


def _mixture_log_pdf(z, prior):
    """log p(z) of the mixture by scipy, for z of shape (..., d)."""
    weights, means, stds = _params(prior)
    per_component = np.stack(
        [stats.norm.logpdf(z, m, s).sum(-1) for m, s in zip(means, stds)], axis=-1
    )
    return logsumexp(per_component + np.log(weights), axis=-1)


def _priors():
    torch.manual_seed(0)
    return [StandardNormal(3), MixturePrior(3, 4)]


def _t(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def test_standard_normal_kl_against_hand_computation(seed):
    mean, log_var = _posterior(np.random.default_rng(seed))
    expected = 0.5 * (mean**2 + np.exp(log_var) - 1.0 - log_var).sum(1)
    kl = StandardNormal(3).double().kl(_t(mean), _t(log_var), None)
    np.testing.assert_allclose(kl.numpy(), expected, rtol=1e-12)


def test_standard_normal_kl_against_monte_carlo(seed):
    rng = np.random.default_rng(seed)
    mean, log_var = _posterior(rng)
    std = np.exp(0.5 * log_var)
    z = mean + std * rng.normal(size=(20_000, *mean.shape))
    log_ratio = (stats.norm.logpdf(z, mean, std) - stats.norm.logpdf(z)).sum(-1)
    error = 5 * log_ratio.std(0) / math.sqrt(len(z))
    kl = StandardNormal(3).double().kl(_t(mean), _t(log_var), _t(z[0]))
    assert np.all(np.abs(kl.numpy() - log_ratio.mean(0)) < error)


def test_standard_normal_log_prob_against_scipy(seed):
    z = np.random.default_rng(seed).normal(scale=2.0, size=(6, 3))
    expected = stats.multivariate_normal(np.zeros(3), np.eye(3)).logpdf(z)
    log_prob = StandardNormal(3).double().log_prob(_t(z))
    np.testing.assert_allclose(log_prob.numpy(), expected, rtol=1e-12)
    assert log_prob.dtype == torch.float64


def test_mixture_log_prob_against_scipy(seed):
    rng = np.random.default_rng(seed)
    prior = _mixture(rng)
    z = rng.normal(scale=2.0, size=(7, 3))
    weights, means, stds = _params(prior)
    density = sum(
        w * stats.multivariate_normal(m, np.diag(s**2)).pdf(z)
        for w, m, s in zip(weights, means, stds)
    )
    log_prob = prior.log_prob(_t(z)).detach().numpy()
    np.testing.assert_allclose(log_prob, np.log(density), rtol=1e-10)


def test_mixture_log_prob_is_finite_far_from_every_component():
    torch.manual_seed(0)
    prior = MixturePrior(2, 3).double()
    with torch.no_grad():
        prior.log_vars.fill_(-200.0)  # clamped, so exp(-log_var) cannot overflow
    log_prob = prior.log_prob(torch.full((4, 2), 1e3, dtype=torch.float64))
    assert torch.isfinite(log_prob).all()


def test_mixture_kl_is_log_q_minus_log_p_at_z(seed):
    rng = np.random.default_rng(seed)
    prior = _mixture(rng)
    mean, log_var = _posterior(rng)
    z = rng.normal(size=mean.shape)
    log_q = stats.norm.logpdf(z, mean, np.exp(0.5 * log_var)).sum(1)
    kl = prior.kl(_t(mean), _t(log_var), _t(z)).detach().numpy()
    np.testing.assert_allclose(kl, log_q - _mixture_log_pdf(z, prior), rtol=1e-10)


def test_mixture_kl_average_approaches_true_kl(seed):
    rng = np.random.default_rng(seed)
    prior = _mixture(rng, d=1, n_mixture=3)
    mean, log_var = _posterior(rng, n=4, d=1)
    std = np.exp(0.5 * log_var)
    # The true KL by quadrature of q log(q / p) over z, independent of sampling.
    true_kl = [
        integrate.quad(
            lambda t, m=m, s=s: (
                stats.norm.pdf(t, m, s)
                * (stats.norm.logpdf(t, m, s) - _mixture_log_pdf(np.array([t]), prior))
            ),
            m - 12 * s,
            m + 12 * s,
        )[0]
        for m, s in zip(mean[:, 0], std[:, 0])
    ]
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(20_000, *mean.shape, generator=g, dtype=torch.float64)
    z = _t(mean) + eps * _t(std)
    kl = prior.kl(_t(mean), _t(log_var), z).detach()
    error = 5 * kl.std(0) / math.sqrt(len(z))
    assert torch.all((kl.mean(0) - _t(true_kl)).abs() < error)


def test_mixture_kl_gradient_reaches_every_parameter(seed):
    rng = np.random.default_rng(seed)
    prior = _mixture(rng)
    mean, log_var = (_t(a).requires_grad_() for a in _posterior(rng))
    z = mean + _t(rng.normal(size=mean.shape)) * (0.5 * log_var).exp()
    prior.kl(mean, log_var, z).sum().backward()
    for tensor in [prior.means, prior.log_vars, prior.logits, mean, log_var]:
        assert torch.isfinite(tensor.grad).all() and tensor.grad.abs().sum() > 0


def test_single_component_mixture_is_standard_normal(seed):
    torch.manual_seed(seed)
    prior = MixturePrior(3, n_mixture=1)
    assert not prior.means.any() and not prior.log_vars.any()
    z = torch.randn(5, 3)
    torch.testing.assert_close(prior.log_prob(z), StandardNormal(3).log_prob(z))


@pytest.mark.parametrize("n_mixture", [1, 2, 10])
def test_mixture_starts_moment_matched_to_standard_normal(seed, n_mixture):
    torch.manual_seed(seed)
    prior = MixturePrior(4, n_mixture)
    weights, means, _ = _params(prior)
    np.testing.assert_allclose(weights @ means, 0.0, atol=1e-6)
    torch.testing.assert_close(prior.marginal_variance(), torch.ones(4))
    if n_mixture > 1:  # the symmetry between components is broken
        assert len(np.unique(means.round(6), axis=0)) == n_mixture


def test_mixture_init_uses_the_seeded_default_rng():
    torch.manual_seed(3)
    first = MixturePrior(2, 5).means
    torch.manual_seed(3)
    torch.testing.assert_close(MixturePrior(2, 5).means, first)


def test_mixture_marginal_variance_against_numpy(seed):
    prior = _mixture(np.random.default_rng(seed))
    weights, means, stds = _params(prior)
    mean = weights @ means
    expected = weights @ (stds**2 + means**2) - mean**2
    np.testing.assert_allclose(prior.marginal_variance().detach().numpy(), expected)


@pytest.mark.parametrize("index", [0, 1])
def test_sample_shape_dtype_and_reproducibility(index):
    prior = _priors()[index]
    z = prior.sample(7, torch.Generator().manual_seed(0))
    assert z.shape == (7, 3) and z.dtype == torch.float32
    torch.testing.assert_close(prior.sample(7, torch.Generator().manual_seed(0)), z)
    assert not torch.equal(prior.sample(7, torch.Generator().manual_seed(1)), z)
    assert prior.sample(0, torch.Generator()).shape == (0, 3)
    assert prior.double().sample(7, torch.Generator()).dtype == torch.float64


@pytest.mark.parametrize("index", [0, 1])
def test_sample_leaves_global_rng_alone(index):
    prior = _priors()[index]
    state = torch.get_rng_state()
    prior.sample(100, torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("prior", ["normal", "mixture"])
def test_sample_moments_match_the_prior(seed, prior):
    rng = np.random.default_rng(seed)
    prior = _mixture(rng) if prior == "mixture" else StandardNormal(3).double()
    z = prior.sample(200_000, torch.Generator().manual_seed(seed)).detach().numpy()
    if isinstance(prior, MixturePrior):
        weights, means, _ = _params(prior)
        mean = weights @ means
    else:
        mean = np.zeros(3)
    variance = prior.marginal_variance().detach().numpy()
    assert np.all(np.abs(z.mean(0) - mean) < 5 * np.sqrt(variance / len(z)))
    np.testing.assert_allclose(z.var(0), variance, rtol=0.03)


def test_sample_on_device(device):
    torch.manual_seed(0)
    for prior in [StandardNormal(2), MixturePrior(2, 3)]:
        prior = prior.to(device)
        z = prior.sample(5, torch.Generator(device=device).manual_seed(0))
        assert z.device.type == device and z.shape == (5, 2)
        # A CPU generator serves a prior on any device: same draws, moved.
        z_cpu = prior.sample(5, torch.Generator().manual_seed(0))
        assert z_cpu.device.type == device
        torch.testing.assert_close(
            z_cpu.cpu(), prior.cpu().sample(5, torch.Generator().manual_seed(0))
        )


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_describe_round_trip(name):
    torch.manual_seed(0)
    prior = PRIORS[name](3)
    description = prior.describe()
    assert description["name"] == name and description["n_components"] == 3
    assert json.loads(json.dumps(description)) == description  # plain values only
    rebuilt = build_prior(description)
    assert type(rebuilt) is type(prior) and rebuilt.describe() == description
    rebuilt.load_state_dict(prior.state_dict(), strict=True)
    z = torch.randn(4, 3)
    torch.testing.assert_close(rebuilt.log_prob(z), prior.log_prob(z))


def test_mixture_description_keeps_its_options():
    description = MixturePrior(2, n_mixture=6).describe()
    assert description == {"name": "mixture", "n_components": 2, "n_mixture": 6}
    assert build_prior(description).means.shape == (6, 2)


def test_standard_normal_has_no_state():
    assert StandardNormal(3).state_dict() == {}


@pytest.mark.parametrize("description", [{"name": "laplace", "n_components": 2}, {}])
def test_build_prior_rejects_an_unknown_name(description):
    with pytest.raises(ValueError, match="Unknown prior .*expected one of"):
        build_prior(description)


@pytest.mark.parametrize("index", [0, 1])
def test_leading_sample_axis_and_float64(index):
    prior = _priors()[index].double()
    rng = np.random.default_rng(0)
    mean, log_var = (_t(a) for a in _posterior(rng, n=5, d=3))
    z = _t(rng.normal(size=(4, 5, 3)))
    log_prob = prior.log_prob(z)
    assert log_prob.shape == (4, 5) and log_prob.dtype == torch.float64
    for k in range(4):
        torch.testing.assert_close(log_prob[k], prior.log_prob(z[k]))
    # One posterior shared by K draws, and K posteriors, give the same per-draw KL.
    shared = prior.kl(mean, log_var, z)
    stacked = prior.kl(mean.expand(4, 5, 3), log_var.expand(4, 5, 3), z)
    assert stacked.shape == (4, 5) and stacked.dtype == torch.float64
    torch.testing.assert_close(shared.expand(4, 5), stacked)
    assert prior.marginal_variance().dtype == torch.float64


def test_prior_base_class_is_abstract():
    prior = Prior(2)
    for call in [
        lambda: prior.log_prob(torch.zeros(1, 2)),
        lambda: prior.sample(1, torch.Generator()),
        prior.marginal_variance,
    ]:
        with pytest.raises(NotImplementedError):
            call()
