"""Fit-free tests of the observation models: NLLs against scipy, means, draws, starts."""

import json
import math

import numpy as np
import pytest
import torch
from scipy import special, stats

from skvae._likelihoods import (
    LIKELIHOODS,
    Bernoulli,
    Blocks,
    Categorical,
    Gaussian,
    IntervalGaussian,
    NegativeBinomial,
    SquaredError,
    StudentT,
    build_likelihood,
)

NAMES = sorted(LIKELIHOODS)
D = 3
#: The interval Gaussian keeps its cells' standard masses in float32 (buffers that
#: must move to mps, which has no float64), so float64 terms agree to about 1e-8.
RTOL = {"interval_gaussian": 1e-7}


def _generator(seed=0, device="cpu"):
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


#: Cells of an interval Gaussian's features, as probabilities (in data units
#: -0.5, 0.5 and 0.2, 1.5): the first feature's tile the line, the second has
#: one bounded cell, the third none.
P = [float(p) for p in stats.norm.cdf([-0.5, 0.5, 0.2, 1.5])]
CELLS = [[[None, P[0], P[1]], [P[0], P[1], None]], [[P[2]], [P[3]]], None]


def _new(name, **options):
    """``LIKELIHOODS[name]`` over D features; the interval Gaussian with ``CELLS``."""
    if name == "interval_gaussian":
        options["cells"] = CELLS
    return LIKELIHOODS[name](D, **options)


def _make(name):
    """A float64 likelihood over D features in eval mode, with unequal per-feature state."""
    likelihood = _new(name).double().eval()
    with torch.no_grad():
        if name in ("gaussian", "interval_gaussian"):
            likelihood.log_var.copy_(torch.tensor([0.5, 1.0, 2.0]).log())
        elif name == "student_t":
            likelihood.log_scale2.copy_(torch.tensor([0.5, 1.0, 2.0]).log())
            likelihood.log_df.copy_(torch.tensor([6.0, 8.0, 12.0]).log())
        elif name == "negative_binomial":
            likelihood.log_theta.copy_(torch.tensor([0.5, 2.0, 10.0]).log())
        if likelihood.support == "counts":  # every total 7: draws have textbook moments
            likelihood.total_quantiles.fill_(7.0)
            likelihood.mean_total.fill_(7.0)
    return likelihood


def _data(name, n=7, seed=0):
    """Decoder outputs and data in the likelihood's support, float64, shape (n, D)."""
    g = _generator(seed)
    out = torch.randn(n, D, generator=g, dtype=torch.float64)
    if name in ("gaussian", "interval_gaussian", "squared_error", "student_t"):
        x = 2 * torch.randn(n, D, generator=g, dtype=torch.float64)
    elif name == "bernoulli":
        x = torch.bernoulli(torch.full((n, D), 0.5, dtype=torch.float64), generator=g)
    elif name == "categorical":
        levels = torch.randint(0, D, (n,), generator=g)
        x = torch.nn.functional.one_hot(levels, D).double()
        x[0] = 0.0  # an unknown level
    else:
        out = 0.5 * out + 1.0
        x = torch.poisson(torch.full((n, D), 3.0, dtype=torch.float64), generator=g)
    return out, x


def _count_means(out, x, observed=None):
    """Count means: each row's observed total times the softmax over observed features."""
    seen = np.ones_like(x) if observed is None else np.broadcast_to(observed, x.shape)
    total = (x * seen).sum(-1, keepdims=True)
    share = np.exp(out) * seen
    norm = np.broadcast_to(share.sum(-1, keepdims=True), share.shape)
    share = np.divide(share, norm, out=np.zeros_like(share), where=norm > 0)
    return total * share  # 0 for a row with no observed feature


def _reference_terms(likelihood, out, x, observed=None):
    """Per-entry negative log-likelihoods from scipy (or numpy), shape (..., n, d).

    Count likelihoods take each row's total over its ``observed`` features
    (a numpy 0/1 array) as its library size.
    """
    out, x = out.detach().numpy(), x.detach().numpy()
    name = likelihood.name
    if likelihood.support == "counts":
        if observed is not None:
            x = x * observed
        mu = _count_means(out, x, observed)
    if name == "gaussian":
        sd = np.sqrt(likelihood.variance().detach().numpy())
        return -stats.norm.logpdf(x, loc=out, scale=sd)
    if name == "interval_gaussian":
        sd = np.sqrt(likelihood.variance().detach().numpy())
        terms = -stats.norm.logpdf(x, loc=out, scale=sd)
        for j, cell in enumerate(likelihood.cells):
            for a, b in zip(*(cell or [[], []])):
                a, b = special.ndtri(0.0 if a is None else a), special.ndtri(b or 1.0)
                inside = np.broadcast_to(
                    (x[..., j] >= a) & (x[..., j] <= b), out[..., j].shape
                )
                model = stats.norm.cdf(b, out[..., j], sd[j]) - stats.norm.cdf(
                    a, out[..., j], sd[j]
                )
                ratio = np.log(model) - np.log(stats.norm.cdf(b) - stats.norm.cdf(a))
                cell_term = -(ratio + stats.norm.logpdf(x[..., j]))
                terms[..., j] = np.where(inside, cell_term, terms[..., j])
        return terms
    if name == "squared_error":
        return (out - x) ** 2
    if name == "bernoulli":
        return -stats.bernoulli.logpmf(x, special.expit(out))
    if name == "categorical":
        return -x * special.log_softmax(out, axis=-1)
    if name == "student_t":
        df = likelihood.degrees_of_freedom().detach().numpy()
        scale = np.sqrt(likelihood.scale2().detach().numpy())
        return -stats.t.logpdf(x, df, loc=out, scale=scale)
    if name == "poisson":
        return -stats.poisson.logpmf(x, mu)
    theta = likelihood.log_theta.detach().exp().detach().numpy()
    return -stats.nbinom.logpmf(x, theta, theta / (theta + mu))


def _reference_rows(likelihood, x, observed=None):
    """Per-row terms beside the entries': a Poisson's -log Poisson(l; l), shape (..., n).

    Conditioned on its total l, a row of Poisson counts is multinomial.
    """
    x = x.detach().numpy()
    if likelihood.name != "poisson":
        return np.zeros(x.shape[:-1])
    total = (x if observed is None else x * observed).sum(-1)
    return stats.poisson.logpmf(total, total)


def _reference_mean(name, out, mean_total=7.0):
    out = out.detach().numpy()
    if name == "bernoulli":
        return special.expit(out)
    if name == "categorical":
        return special.softmax(out, axis=-1)
    if name in ("poisson", "negative_binomial"):  # at the mean training total
        return mean_total * special.softmax(out, axis=-1)
    return out


def _variance(likelihood, out):
    """The variance of x given out, per entry, from the textbook formulas."""
    name = likelihood.name
    mean = likelihood.mean(out)
    if name in ("gaussian", "interval_gaussian"):
        return likelihood.variance().expand_as(out)
    if name == "squared_error":
        return torch.full_like(out, 0.5)
    if name in ("bernoulli", "categorical"):
        return mean * (1 - mean)
    if name == "student_t":
        nu = likelihood.degrees_of_freedom().detach()
        return (likelihood.scale2() * nu / (nu - 2)).expand_as(out)
    if name == "poisson":  # multinomial: the total, 7, is fixed
        return mean * (1 - mean / 7.0)
    theta = likelihood.log_theta.detach().exp()
    return mean + mean.pow(2) / theta


# NLL against scipy ------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_nll_matches_scipy(name):
    likelihood = _make(name)
    out, x = _data(name)
    expected = _reference_terms(likelihood, out, x).sum(-1) + _reference_rows(likelihood, x)
    np.testing.assert_allclose(
        likelihood.nll(out, x).detach().numpy(), expected, rtol=RTOL.get(name, 1e-10)
    )


def test_poisson_counts_of_a_total_are_multinomial():
    # the Poisson terms alone summed to Poisson(l; l) over the vectors of total l
    likelihood = _make("poisson")
    out, x = _data("poisson")
    rho = special.softmax(out.numpy(), axis=-1)
    total = x.numpy().sum(-1)
    expected = [
        -stats.multinomial.logpmf(row, n=t, p=p) for row, t, p in zip(x.numpy(), total, rho)
    ]
    np.testing.assert_allclose(likelihood.nll(out, x).numpy(), expected, rtol=1e-10)
    draws = likelihood.sample(out[:1].expand(500, D), _generator(3))
    assert torch.equal(draws.sum(-1), torch.full((500,), 7.0, dtype=draws.dtype))


@pytest.mark.parametrize("name", NAMES)
def test_nll_with_leading_draw_axis(name):
    likelihood = _make(name)
    _, x = _data(name)
    out = torch.stack([_data(name, seed=k)[0] for k in range(4)])  # (K, n, d)
    nll = likelihood.nll(out, x)
    assert nll.shape == (4, x.shape[0])
    expected = _reference_terms(likelihood, out, x).sum(-1) + _reference_rows(likelihood, x)
    np.testing.assert_allclose(nll.detach().numpy(), expected, rtol=RTOL.get(name, 1e-10))
    for k in range(4):
        np.testing.assert_allclose(
            nll[k].detach().numpy(), likelihood.nll(out[k], x).detach().numpy()
        )


@pytest.mark.parametrize("name", NAMES)
def test_unobserved_entries_drop_out(name):
    likelihood = _make(name)
    out, x = _data(name)
    observed = torch.bernoulli(
        torch.full(x.shape, 0.6, dtype=torch.float64), generator=_generator(1)
    )
    mask = observed.detach().numpy()
    expected = (_reference_terms(likelihood, out, x, mask) * mask).sum(-1)
    expected += _reference_rows(likelihood, x, mask)
    nll = likelihood.nll(out, x, observed)
    np.testing.assert_allclose(
        nll.detach().numpy(), expected, rtol=RTOL.get(name, 1e-10), atol=1e-12
    )
    # Whatever an unobserved entry holds, it changes nothing.
    changed = torch.where(observed > 0, x, x + 1.0)
    np.testing.assert_allclose(
        likelihood.nll(out, changed, observed).detach().numpy(), nll.detach().numpy()
    )
    # A row mask of shape (n, 1) drops whole rows.
    rows = observed[:, :1]
    mask = rows.detach().numpy()
    expected = (_reference_terms(likelihood, out, x, mask) * mask).sum(-1)
    expected += _reference_rows(likelihood, x, mask)
    np.testing.assert_allclose(
        likelihood.nll(out, x, rows).detach().numpy(), expected, rtol=RTOL.get(name, 1e-10)
    )


@pytest.mark.parametrize("name", NAMES)
def test_mean_matches_formula(name):
    likelihood = _make(name)
    out = torch.randn(2, 5, D, dtype=torch.float64, generator=_generator())
    mean = likelihood.mean(out)
    assert mean.shape == out.shape
    np.testing.assert_allclose(
        mean.detach().numpy(), _reference_mean(name, out), rtol=1e-12
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_dtypes(name, dtype):
    likelihood = _new(name).to(dtype)
    assert all(t.dtype == dtype for t in likelihood.state_dict().values())
    out, x = (t.to(dtype) for t in _data(name))
    out = out.expand(2, *out.shape)
    for mode in (likelihood.train, likelihood.eval):
        mode()
        nll = likelihood.nll(out, x)
        assert nll.shape == (2, x.shape[0]) and nll.dtype == dtype
        assert torch.isfinite(nll).all()
    draws = likelihood.sample(out, _generator())
    assert likelihood.mean(out).dtype == draws.dtype == dtype
    assert draws.shape == out.shape


def test_categorical_unknown_level_adds_nothing():
    out, _ = _data("categorical")
    assert Categorical(D).double().nll(out, torch.zeros_like(out)).abs().max() == 0


def test_squared_error_is_half_variance_gaussian_without_constant():
    out, x = _data("squared_error")
    gaussian = Gaussian(D, floor_fraction=0.0).double().eval()  # floor 1e-30
    gaussian.log_var.fill_(math.log(0.5))
    constant = 0.5 * D * math.log(2 * math.pi * 0.5)
    np.testing.assert_allclose(
        SquaredError(D).nll(out, x).detach().numpy(),
        (gaussian.nll(out, x) - constant).detach().numpy(),
    )
    assert not SquaredError(D).state_dict()


def test_negative_binomial_is_stable_at_extremes():
    likelihood = NegativeBinomial(2)
    with torch.no_grad():
        likelihood.log_theta.copy_(torch.tensor([math.log(1e4), math.log(1e-2)]))
    out = torch.tensor([[30.0, -30.0], [-30.0, 30.0]], requires_grad=True)
    x = torch.tensor([[1e6, 0.0], [0.0, 5.0]])
    nll = likelihood.nll(out, x)
    nll.sum().backward()
    assert torch.isfinite(nll).all() and torch.isfinite(out.grad).all()
    assert torch.isfinite(likelihood.log_theta.grad).all()


# Draws ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_sample_is_reproducible_and_leaves_global_rng_alone(name):
    likelihood = _make(name)
    out, _ = _data(name, n=50)
    state = torch.random.get_rng_state()
    first = likelihood.sample(out, _generator(3))
    second = likelihood.sample(out, _generator(3))
    other = likelihood.sample(out, _generator(4))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(first, second) and not torch.equal(first, other)


@pytest.mark.parametrize("name", NAMES)
def test_sample_moments_match_mean_and_variance(name):
    likelihood = _make(name)
    n = 20000
    out = _data(name, n=1)[0].expand(n, D)
    draws = likelihood.sample(out, _generator(5))
    mean, var = likelihood.mean(out[0]), _variance(likelihood, out[:1])[0]
    standard_error = (var / n).sqrt()
    assert ((draws.mean(0) - mean).abs() <= 5 * standard_error).all()
    np.testing.assert_allclose(
        draws.var(0).detach().numpy(), var.detach().numpy(), rtol=0.1
    )
    if likelihood.support == "counts":
        assert (draws >= 0).all() and torch.equal(draws, draws.round())


def test_categorical_draws_are_one_hot():
    out = torch.randn(3000, D, generator=_generator())
    draws = Categorical(D).sample(out, _generator(1))
    assert set(draws.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(draws.sum(-1), torch.ones(3000))
    draws = Categorical(D).sample(out.expand(2, *out.shape), _generator(1))
    assert draws.shape == (2, 3000, D) and torch.equal(draws.sum(-1), torch.ones(2, 3000))


# Data-dependent starts --------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_init_output_bias_gives_the_data_mean(name):
    likelihood = _new(name).double()
    out, _ = _data(name, n=1)
    X = likelihood.sample(out.expand(2000, D), _generator(2))
    bias = likelihood.init_output(X)
    assert bias.shape == (D,)
    np.testing.assert_allclose(
        likelihood.mean(bias).detach().numpy(), X.mean(0).detach().numpy(), rtol=1e-6
    )


@pytest.mark.parametrize("name", NAMES)
def test_init_output_ignores_unobserved_entries(name):
    _, X = _data(name, n=200)
    observed = torch.bernoulli(
        torch.full(X.shape, 0.7, dtype=torch.float64), generator=_generator(1)
    )
    observed[:, 0] = 1.0
    garbage = torch.where(observed > 0, X, torch.full_like(X, 1e6))
    first, second = _new(name).double(), _new(name).double()
    bias = first.init_output(garbage, observed)
    kept = [X[observed[:, j] > 0, j] for j in range(D)]
    if name == "categorical":  # the levels' frequencies among observed entries
        kept_mean = torch.stack([column.mean() for column in kept])
        np.testing.assert_allclose(
            first.mean(bias).detach().numpy(),
            (kept_mean / kept_mean.sum()).detach().numpy(),
        )
        np.testing.assert_allclose(
            bias.exp().detach().numpy(), kept_mean.clamp_min(1e-4).detach().numpy()
        )
    elif first.support == "counts":  # shares proportional to those means
        kept_mean = torch.stack([column.mean() for column in kept])
        share = (kept_mean / kept_mean.sum()).detach().numpy()
        np.testing.assert_allclose(bias.exp().detach().numpy(), share, rtol=1e-12)
        # the mean total is that of the observed entries
        total = (X * observed).sum(1).mean().item()
        assert math.isclose(first.mean_total.item(), total, rel_tol=1e-12)
    else:
        kept_mean = torch.stack([column.mean() for column in kept])
        np.testing.assert_allclose(
            first.mean(bias).detach().numpy(), kept_mean.detach().numpy(), rtol=1e-6
        )
    if first.support != "counts":  # a count's share depends on the other columns
        # Column 0 is fully observed: its start matches an unmasked init on it.
        second_bias = second.init_output(X)[0].item()
        np.testing.assert_allclose(bias[0].item(), second_bias, rtol=1e-12)
    for key, value in first.state_dict().items():
        assert torch.isfinite(value).all(), key


@pytest.mark.parametrize("name", ["gaussian", "student_t"])
def test_init_output_sets_scale_and_floor_from_the_variance(name):
    X = torch.randn(5000, D, generator=_generator(), dtype=torch.float64)
    X = X * torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64) + 3.0
    likelihood = _new(name, floor_fraction=1e-3, init_fraction=0.01).double()
    likelihood.init_output(X)
    var = X.var(0, unbiased=False)
    floor = 1e-3 * var.mean()
    torch.testing.assert_close(likelihood.floor, floor.expand(D))
    scale = likelihood.variance() if name == "gaussian" else likelihood.scale2()
    # Where 1% of a variance is below the floor, the start sits just above the floor.
    expected = torch.maximum(0.01 * var, 1.001 * floor)
    torch.testing.assert_close(scale, expected)


def test_gaussian_init_output_on_constant_data_uses_a_unit_floor():
    likelihood = Gaussian(2, floor_fraction=1e-3).double()
    bias = likelihood.init_output(torch.full((10, 2), 4.0, dtype=torch.float64))
    torch.testing.assert_close(bias, torch.full((2,), 4.0, dtype=torch.float64))
    torch.testing.assert_close(
        likelihood.floor, torch.full((2,), 1e-3, dtype=torch.float64)
    )
    assert torch.isfinite(likelihood.log_var).all()


def test_negative_binomial_init_estimates_theta_by_moments():
    theta = torch.tensor([0.5, 2.0, 10.0], dtype=torch.float64)
    mu = torch.tensor([5.0, 20.0, 3.0], dtype=torch.float64)
    law = stats.nbinom(theta.numpy(), (theta / (theta + mu)).numpy())
    X = torch.from_numpy(law.rvs(size=(20000, D), random_state=7).astype(float))
    fresh = NegativeBinomial(D).double()
    bias = fresh.init_output(X)
    np.testing.assert_allclose(
        fresh.log_theta.exp().detach().numpy(), theta.detach().numpy(), rtol=0.15
    )
    # the composition: the means' shares, at the mean total (their sum)
    np.testing.assert_allclose(bias.exp().numpy(), (mu / mu.sum()).numpy(), rtol=0.05)
    np.testing.assert_allclose(fresh.mean(bias).numpy(), mu.numpy(), rtol=0.05)
    # Without overdispersion theta goes to its upper clip.
    poisson = torch.poisson(
        torch.full((20000, 1), 4.0, dtype=torch.float64), generator=_generator()
    )
    under = NegativeBinomial(1).double()
    under.init_output(poisson[poisson[:, 0] <= 8])  # trimmed: variance below the mean
    assert math.isclose(under.log_theta.exp().item(), 1e4, rel_tol=1e-6)


def test_bernoulli_init_clamps_constant_columns():
    X = torch.tensor([[0.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
    bias = Bernoulli(D).init_output(X)
    assert torch.isfinite(bias).all()
    torch.testing.assert_close(torch.sigmoid(bias), torch.tensor([1e-4, 1 - 1e-4, 0.5]))


# Closed-form dispersion updates -----------------------------------------------------


def test_gaussian_variance_tracks_mean_squared_residual_in_training():
    likelihood = Gaussian(D, momentum=0.1).double()
    out, x = _data("gaussian", n=200)
    out = torch.stack([out, out + 0.5])  # the mean runs over the draw axis too
    observed = torch.bernoulli(
        torch.full(x.shape, 0.7, dtype=torch.float64), generator=_generator(1)
    )
    squared = (x - out).pow(2) * observed
    target = squared.sum((0, 1)) / observed.sum(0) / 2
    for _ in range(300):
        likelihood.nll(out, x, observed)
    torch.testing.assert_close(likelihood.variance(), target, rtol=1e-6, atol=0)

    likelihood.eval()
    before = likelihood.log_var.clone()
    likelihood.nll(out + 3.0, x, observed)
    assert torch.equal(likelihood.log_var, before)


def test_gaussian_update_moves_by_momentum_and_skips_unseen_features():
    likelihood = Gaussian(2, momentum=0.25).double()
    start = likelihood.variance().clone()
    squared = torch.tensor([[4.0, 9.0], [2.0, 9.0]], dtype=torch.float64)
    observed = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    likelihood.update(squared, observed)
    expected = torch.stack([0.75 * start[0] + 0.25 * 3.0, start[1]])
    torch.testing.assert_close(likelihood.variance(), expected)


def test_gaussian_variance_is_a_buffer_not_trained_by_gradients():
    likelihood = Gaussian(D)
    names = dict(likelihood.named_buffers())
    assert {"log_var", "floor"} <= set(names) and not list(likelihood.parameters())
    out, x = _data("gaussian")
    out = out.float().requires_grad_()
    likelihood.nll(out, x.float()).sum().backward()
    assert out.grad is not None and torch.isfinite(out.grad).all()


def test_interval_gaussian_scores_cells_as_probabilities():
    three = [[None, 1 / 3, 2 / 3], [1 / 3, 2 / 3, None]]  # thirds of N(0, 1)
    likelihood = IntervalGaussian(2, cells=[three, None], init_fraction=1.0)
    likelihood.floor.fill_(1e-6)
    likelihood.start_at(torch.ones(2))
    likelihood.eval()
    # An independent feature (out 0, variance 1) scores the standard normal
    # density, inside cells or not: a table's change of variables stays exact.
    x = torch.tensor([[-0.97, 0.3], [0.0, -2.0], [0.97, 5.0], [3.0, 0.0]])
    expected = -stats.norm.logpdf(x.numpy()).sum(-1)
    np.testing.assert_allclose(likelihood.nll(torch.zeros(2), x), expected, rtol=1e-5)
    # Training at the three cells' middle scores, the variance of their feature
    # goes to the censored Gaussian's maximum-likelihood 1; a Gaussian's to
    # their spread, 0.63 (whose middle cell then takes 41% of the draws).
    likelihood.train()
    points = Gaussian(2, init_fraction=1.0).train()
    points.floor.fill_(1e-6)
    rows = torch.tensor([[-0.97, 0.0], [0.0, 0.0], [0.97, 0.0]]).repeat(50, 1)
    for _ in range(200):
        likelihood.nll(torch.zeros(2), rows)
        points.nll(torch.zeros(2), rows)
    assert abs(likelihood.variance()[0].item() - 1) < 0.02
    assert abs(points.variance()[0].item() - 0.627) < 0.01
    # Far from the cells, in narrow ones and in open ones, the gradients are finite.
    narrow = stats.norm.cdf([[-1.0, 2.0], [-1.0 + 1e-6, 2.0 + 1e-7]]).tolist()
    likelihood = IntervalGaussian(2, cells=[three, narrow]).train()
    out = torch.tensor([[-60.0, 0.0], [60.0, -1.0], [0.0, 2.0], [1e4, -1e4]])
    out.requires_grad_()
    x = torch.tensor([[0.0, -1.0], [-0.97, 2.0], [0.97, -0.9999995], [0.0, 2.00000005]])
    nll = likelihood.nll(out, x)
    nll.sum().backward()
    assert torch.isfinite(nll).all() and torch.isfinite(out.grad).all()
    assert torch.isfinite(likelihood.variance()).all()


@pytest.mark.parametrize(
    "cells, match",
    [
        ([None], "one entry per feature"),
        ([[[0.0, 1.0], [1.0]], None], "as many lows as highs"),
        ([[[], []], None], "as many lows as highs"),
        ([[[0.5], [0.5]], None], "low below its high"),
        ([[[0.1, 0.3], [0.4, 0.6]], None], "below the next cell's low"),
        ([[[-0.1], [0.5]], None], "in \\[0, 1\\]"),
        ([[[0.1, None], [0.4, 0.6]], None], "only the first low"),
    ],
)
def test_interval_gaussian_rejects_bad_cells(cells, match):
    with pytest.raises(ValueError, match=match):
        IntervalGaussian(2, cells=cells)


def test_interval_gaussian_gradient_near_its_cells():
    likelihood = _make("interval_gaussian")
    out, x = _data("interval_gaussian", n=12)
    x[:, 1] = torch.linspace(-0.5, 2.0, 12, dtype=torch.float64)  # in and out of (0.2, 1.5)
    out = (0.3 * out).requires_grad_()
    assert torch.autograd.gradcheck(lambda o: likelihood.nll(o, x), (out,))


def test_interval_gaussian_is_exact_far_from_a_cell():
    # Bounds clipped at 30 sd fell onto each other: the term stopped growing,
    # its gradient was 0, and the E step pulled the variance to the floor.
    middle = [
        [None, 0.5, float(stats.norm.cdf(1.0))],
        [0.5, float(stats.norm.cdf(1.0)), None],
    ]
    likelihood = IntervalGaussian(1, cells=[middle]).double().eval()
    likelihood.floor.fill_(1e-12)
    likelihood.start_at(torch.tensor([0.01]))
    sd = likelihood.variance().sqrt().item()
    offset = np.log(stats.norm.cdf(1.0) - 0.5) + 0.5 * (0.25 + np.log(2 * np.pi))
    for out in (-1.0, -3.0, -5.0):  # 10, 30 and 50 sd below the cell (0, 1)
        o = torch.tensor([[out]], dtype=torch.float64, requires_grad=True)
        nll = likelihood.nll(o, torch.tensor([[0.5]], dtype=torch.float64)).sum()
        nll.backward()
        alpha, beta = -out / sd, (1 - out) / sd
        log_p = special.log_ndtr(-alpha) + np.log(
            -np.expm1(special.log_ndtr(-beta) - special.log_ndtr(-alpha))
        )
        ratios = np.exp(-0.5 * np.array([alpha, beta]) ** 2 - log_p) / np.sqrt(2 * np.pi)
        np.testing.assert_allclose(nll.item(), offset - log_p, rtol=1e-9)
        np.testing.assert_allclose(o.grad.item(), -(ratios[0] - ratios[1]) / sd, rtol=1e-6)
    # Five equally likely values, each row predicted at its own cell but 35 of
    # the 2,000 at the other end: the censored maximum-likelihood variance is
    # 0.1353 (scipy's minimize_scalar), which EM reaches from a start near the
    # floor; it stuck at 0.002.
    fifths = [[None, 0.2, 0.4, 0.6, 0.8], [0.2, 0.4, 0.6, 0.8, None]]
    middles = special.ndtri((np.arange(5) + 0.5) / 5)
    rng = np.random.RandomState(0)
    true = rng.randint(0, 5, 2000)
    seen = true.copy()
    swap = (rng.rand(2000) < 0.05) & ((true == 0) | (true == 4))
    seen[swap] = 4 - true[swap]
    out = torch.tensor(middles[true][:, None], dtype=torch.float32)
    x = torch.tensor(middles[seen][:, None], dtype=torch.float32)
    for start in (0.01, 0.003):
        likelihood = IntervalGaussian(1, cells=[fifths]).train()
        likelihood.floor.fill_(1e-3)
        likelihood.start_at(torch.tensor([start]))
        for _ in range(300):
            likelihood.nll(out, x)
        assert abs(likelihood.variance().item() - 0.1353) < 0.002


def test_student_t_scale_converges_to_the_ml_scale():
    n, df, scale = 20000, 5.0, 2.0
    x = torch.from_numpy(stats.t.rvs(df, scale=scale, size=(n, 1), random_state=0))
    likelihood = StudentT(1, df=df, momentum=0.2).double()
    out = torch.zeros_like(x)
    for _ in range(200):
        likelihood.nll(out, x)
    _, _, ml_scale = stats.t.fit(x[:, 0].detach().numpy(), f0=df, floc=0.0)
    assert math.isclose(likelihood.scale2().sqrt().item(), ml_scale, rel_tol=0.01)
    assert math.isclose(ml_scale, scale, rel_tol=0.05)


def test_student_t_degrees_of_freedom_are_learned_by_gradient():
    likelihood = StudentT(D, df=4.0).double().eval()
    assert [name for name, _ in likelihood.named_parameters()] == ["log_df"]
    assert "log_scale2" in dict(likelihood.named_buffers())
    torch.testing.assert_close(
        likelihood.degrees_of_freedom().detach(), torch.full((D,), 4.0, dtype=torch.float64)
    )
    out, x = _data("student_t")
    likelihood.nll(out, x).sum().backward()
    grad = likelihood.log_df.grad
    assert torch.isfinite(grad).all() and (grad != 0).all()


# Blocks of a mixed table ------------------------------------------------------------


def _table(n=40, seed=0):
    """An encoded mixed table: numeric columns 0 and 3 (column 2 is 0's missing
    indicator, 3 has none), booleans 1 and 6, one categorical's levels 4, 5, 7."""
    g = _generator(seed)
    X = torch.zeros(n, 8, dtype=torch.float64)
    X[:, [0, 3]] = torch.randn(n, 2, generator=g, dtype=torch.float64)
    X[:, [1, 6]] = torch.bernoulli(
        torch.full((n, 2), 0.3, dtype=torch.float64), generator=g
    )
    X[:, 2] = torch.bernoulli(torch.full((n,), 0.25, dtype=torch.float64), generator=g)
    X[X[:, 2] > 0, 0] = 0.0  # a missing value is encoded as 0
    levels = torch.randint(0, 3, (n,), generator=g)
    X[:, [4, 5, 7]] = torch.nn.functional.one_hot(levels, 3).double()
    return X


#: Column 0 is always missing at level 0 of the categorical (entry 4) and never
#: at level 1 (entry 5); level 2 (entry 7) leaves it open.
GATE = {
    "entries": [2],
    "missing": 2,
    "forced": [0.0, [[4, 1.0]]],
    "kept": [0.0, [[5, 1.0]]],
}


def _blocks(gates=None):
    return Blocks(
        [
            ([0, 3], Gaussian(2), [2, -1]),
            ([1, 2, 6], Bernoulli(3), None),
            ([4, 5, 7], Categorical(3), None),
        ],
        gates,
    ).double()


def test_blocks_nll_is_the_sum_of_the_blocks():
    blocks = _blocks().eval()
    gaussian, bernoulli, categorical = blocks.likelihoods
    X = _table()
    out = torch.randn(2, *X.shape, generator=_generator(3), dtype=torch.float64)
    numeric = torch.stack([1 - X[:, 2], torch.ones(len(X), dtype=X.dtype)], 1)
    expected = (
        gaussian.nll(out[..., [0, 3]], X[:, [0, 3]], numeric)
        + bernoulli.nll(out[..., [1, 2, 6]], X[:, [1, 2, 6]])
        + categorical.nll(out[..., [4, 5, 7]], X[:, [4, 5, 7]])
    )
    torch.testing.assert_close(blocks.nll(out, X), expected)
    # By hand from scipy: missing values of column 0 add nothing.
    sd = gaussian.variance().sqrt().detach().numpy()
    o, x = out.detach().numpy(), X.detach().numpy()
    hand = -stats.norm.logpdf(x[:, 0], o[..., 0], sd[0]) * (1 - x[:, 2])
    hand = hand - stats.norm.logpdf(x[:, 3], o[..., 3], sd[1])
    hand = hand - stats.bernoulli.logpmf(
        x[:, [1, 2, 6]], special.expit(o[..., [1, 2, 6]])
    ).sum(-1)
    hand = hand - (x[:, [4, 5, 7]] * special.log_softmax(o[..., [4, 5, 7]], -1)).sum(-1)
    np.testing.assert_allclose(blocks.nll(out, X).detach().numpy(), hand, rtol=1e-10)


def test_blocks_missing_indicator_drops_the_numeric_term():
    blocks = _blocks().eval()
    X = _table()
    out = torch.randn(*X.shape, generator=_generator(3), dtype=torch.float64)
    missing = X[:, 2] > 0
    assert missing.any()
    changed = X.clone()
    changed[missing, 0] = 100.0
    torch.testing.assert_close(blocks.nll(out, changed), blocks.nll(out, X))
    changed[~missing, 0] = 100.0
    assert (blocks.nll(out, changed)[~missing] > blocks.nll(out, X)[~missing]).all()
    # An explicit mask combines with the indicators.
    observed = torch.ones_like(X)
    observed[:, 3] = 0.0
    sd = blocks.likelihoods[0].variance()[1].sqrt().item()
    term = -stats.norm.logpdf(X[:, 3].detach().numpy(), out[:, 3].detach().numpy(), sd)
    expected = blocks.nll(out, X).detach().numpy() - term
    np.testing.assert_allclose(
        blocks.nll(out, X, observed).detach().numpy(), expected, rtol=1e-10
    )


def test_blocks_mean_sample_and_init_fill_each_blocks_columns():
    blocks = _blocks()
    X = _table(n=500)
    out = torch.randn(2, 5, 8, generator=_generator(3), dtype=torch.float64)
    mean = blocks.mean(out)
    torch.testing.assert_close(mean[..., [0, 3]], out[..., [0, 3]])
    torch.testing.assert_close(mean[..., [1, 2, 6]], torch.sigmoid(out[..., [1, 2, 6]]))
    torch.testing.assert_close(mean[..., [4, 5, 7]], torch.softmax(out[..., [4, 5, 7]], -1))
    draws = blocks.sample(out, _generator(1))
    assert draws.shape == out.shape
    assert torch.equal(draws, blocks.sample(out, _generator(1)))
    assert torch.equal(draws[..., [4, 5, 7]].sum(-1), torch.ones(2, 5, dtype=torch.float64))
    assert set(draws[..., [1, 2, 6]].unique().tolist()) <= {0.0, 1.0}

    bias = blocks.init_output(X)
    present = X[:, 2] == 0
    expected = torch.stack([X[present, 0].mean(), X[:, 3].mean()])
    torch.testing.assert_close(blocks.mean(bias)[[0, 3]], expected)
    torch.testing.assert_close(blocks.mean(bias)[[1, 2, 6]], X[:, [1, 2, 6]].mean(0))
    torch.testing.assert_close(blocks.mean(bias)[[4, 5, 7]], X[:, [4, 5, 7]].mean(0))
    var = X[present, 0].var(unbiased=False)
    assert math.isclose(
        blocks.likelihoods[0].variance()[0].item(), 0.01 * var.item(), rel_tol=0.2
    )


def test_blocks_gates_drop_the_terms_a_rule_decides():
    plain, gated = _blocks().eval(), _blocks([GATE]).eval()
    X = _table(n=60)
    level0, level1 = X[:, 4] > 0, X[:, 5] > 0
    missing = X[:, 2] > 0
    follows = (level0 & missing) | (level1 & ~missing)
    breaks = (level0 & ~missing) | (level1 & missing)
    assert follows.any() and breaks.any() and X[:, 7].any()
    out = torch.randn(2, *X.shape, generator=_generator(3), dtype=torch.float64)
    # The missing indicator's Bernoulli term, by hand: it drops out where the
    # rule decides and the row follows it, and stays where the rule is open or broken.
    o, x = out.detach().numpy(), X.detach().numpy()
    term = -stats.bernoulli.logpmf(x[:, 2], special.expit(o[..., 2]))
    expected = plain.nll(out, X).detach().numpy() - term * follows.numpy()
    np.testing.assert_allclose(gated.nll(out, X).detach().numpy(), expected, rtol=1e-10)
    # An explicit mask still combines with the gates.
    observed = torch.ones_like(X)
    observed[:, 2] = 0.0
    torch.testing.assert_close(gated.nll(out, X, observed), plain.nll(out, X, observed))
    # The start reads the indicator where the rule leaves it open or is broken.
    bias = gated.init_output(X)
    share = X[~follows, 2].mean()
    torch.testing.assert_close(bias[2], torch.logit(share))


def test_blocks_take_indicators_as_any_sequence():
    X = _table()
    out = torch.randn(*X.shape, generator=_generator(3), dtype=torch.float64)
    as_array = Blocks(
        [
            ([0, 3], Gaussian(2), np.array([2, -1])),
            ([1, 2, 6], Bernoulli(3), None),
            ([4, 5, 7], Categorical(3), None),
        ]
    ).double()
    torch.testing.assert_close(as_array.eval().nll(out, X), _blocks().eval().nll(out, X))


@pytest.mark.parametrize(
    "gates, error, match",
    [
        ([{**GATE, "entries": [9]}], ValueError, "outside"),
        ([{**GATE, "missing": 1.5}], TypeError, "integers"),
        ([GATE, {**GATE, "missing": 1}], ValueError, "own entries"),
        ([{**GATE, "entries": []}], ValueError, "own entries"),
        ([{**GATE, "forced": [0.0, [[True, 1.0]]]}], TypeError, "integers"),
        ({"entries": [2]}, TypeError, "list of dicts"),
    ],
)
def test_blocks_reject_bad_gates(gates, error, match):
    with pytest.raises(error, match=match):
        _blocks(gates)


@pytest.mark.parametrize(
    "blocks, match",
    [
        ([([0, 2], Gaussian(2), None)], "cover range"),
        ([([0, 1], Gaussian(2), None), ([1, 2], Bernoulli(2), None)], "cover range"),
        ([([0, 1], Gaussian(3), None)], "n_features=3"),
        ([([0, 1], Gaussian(2), [5, -1])], "indicator"),
        ([([0, 1], Gaussian(2), [1])], "indicator"),
        ([], "at least one"),
    ],
)
def test_blocks_reject_bad_layouts(blocks, match):
    with pytest.raises(ValueError, match=match):
        Blocks(blocks)


# Descriptions and the registry ------------------------------------------------------


def _described():
    cases = [_new(name) for name in NAMES]
    cases += [Gaussian(D, floor_fraction=0.01, init_fraction=0.5, momentum=0.3)]
    cases += [StudentT(D, df=2.5, momentum=0.05), _blocks().float()]
    cases += [_blocks([GATE]).float()]
    return cases


@pytest.mark.parametrize("likelihood", _described(), ids=lambda lik: lik.name)
def test_describe_round_trip_rebuilds_the_structure(likelihood):
    X = _table(n=60)[:, : likelihood.n_features].abs().round().float()
    likelihood.init_output(X)
    with torch.no_grad():
        for parameter in likelihood.parameters():
            parameter.add_(0.1)
    description = json.loads(json.dumps(likelihood.describe()))  # plain values only
    assert description == likelihood.describe()
    rebuilt = build_likelihood(description)
    assert type(rebuilt) is type(likelihood) and rebuilt.describe() == description
    rebuilt.load_state_dict(likelihood.state_dict(), strict=True)
    out = torch.randn(4, likelihood.n_features, generator=_generator())
    likelihood.eval(), rebuilt.eval()
    torch.testing.assert_close(rebuilt.nll(out, X[:4]), likelihood.nll(out, X[:4]))
    torch.testing.assert_close(rebuilt.mean(out), likelihood.mean(out))


def test_registry_names_match_classes():
    for name, cls in LIKELIHOODS.items():
        assert cls.name == name and cls(2).describe()["name"] == name
    assert {cls.support for cls in LIKELIHOODS.values()} == {
        None,
        "unit_interval",
        "counts",
    }


def test_build_likelihood_rejects_an_unknown_name():
    with pytest.raises(ValueError, match="Unknown likelihood 'gamma'.*'gaussian'"):
        build_likelihood({"name": "gamma", "n_features": 2})


# Devices ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*NAMES, "blocks"])
def test_likelihoods_run_on_the_device(name, device):
    likelihood = _blocks([GATE]).float() if name == "blocks" else _new(name)
    likelihood = likelihood.to(device)
    X = _table(n=30)[:, : likelihood.n_features] if name == "blocks" else _data(name, 30)[1]
    X = X.float().to(device)
    bias = likelihood.init_output(X)
    assert bias.device == X.device
    out = bias.expand(2, *X.shape).contiguous()
    likelihood.train()
    nll = likelihood.nll(out, X, torch.ones_like(X))
    assert nll.device == X.device and torch.isfinite(nll).all()
    draws = likelihood.sample(out, _generator(0, device))
    assert draws.device == X.device and draws.shape == out.shape
    assert likelihood.mean(out).device == X.device
