"""Fit-free tests of the torch modules and their per-sample loss terms."""

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.decomposition import PCA, FactorAnalysis
from torch import nn

from skvae._networks import (
    ACTIVATIONS,
    BACKGROUND_WEIGHT,
    VAE,
    Autoencoder,
    Background,
    Dropout,
    Terms,
    build,
    mix_background,
    mlp,
)


def _likelihood(name, n_features=3, **options):
    return {"name": name, "n_features": n_features, **options}


def _vae(likelihood="gaussian", floor=1e-3, background=None):
    """A float64 VAE over 3 features with 2 latent dimensions, in eval mode.

    Its linear paths get random weights, so that the hand computations see them.
    """
    options = {"floor_fraction": floor} if likelihood == "gaussian" else {}
    torch.manual_seed(0)
    vae = VAE(
        3, 2, (4,), "relu", 0.0, _likelihood(likelihood, **options), background=background
    )
    with torch.no_grad():
        for path in (vae.encoder.linear, vae.decoder.linear):
            path.weight.normal_(0, 0.5)
            path.bias.normal_(0, 0.5)
    return vae.double().eval()


def _ae(likelihood, noise=0.0):
    torch.manual_seed(0)
    return Autoencoder(3, 2, (4,), "relu", 0.0, _likelihood(likelihood), noise)


def _linear_data(n=200, d=5, k=2, seed=0):
    """Rows of a linear-Gaussian model with unequal noise and a non-zero mean."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, k)) @ rng.normal(size=(k, d))
    return X + rng.normal(size=(n, d)) * rng.uniform(0.3, 1.0, d) + rng.normal(size=d)


def _numpy(t):
    return t.detach().numpy()


def test_mlp_structure():
    net = mlp([5, 8, 4, 2], "tanh", dropout=0.2)
    kinds = [type(layer) for layer in net]
    assert kinds == [
        nn.Linear,
        nn.Tanh,
        Dropout,
        nn.Linear,
        nn.Tanh,
        Dropout,
        nn.Linear,
    ]
    assert net(torch.zeros(3, 5)).shape == (3, 2)
    assert [type(layer) for layer in mlp([5, 2])] == [nn.Linear]


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_each_activation_is_its_own_instance(name):
    net = mlp([3, 4, 4, 1], name)
    activations = [layer for layer in net if isinstance(layer, ACTIVATIONS[name])]
    assert len(activations) == 2 and activations[0] is not activations[1]


def test_encoder_and_decoder_are_an_mlp_plus_a_linear_path_in_output_units():
    vae = _vae()
    x = torch.randn(5, 3, dtype=torch.float64)
    for part in (vae.encoder, vae.decoder):
        x_in = x[:, : part.linear.in_features]
        with torch.no_grad():
            part.scale.uniform_(0.5, 2.0)
        linear = x_in @ part.linear.weight.T + part.linear.bias
        expected = (part.mlp(x_in) + linear) * part.scale
        torch.testing.assert_close(part(x_in), expected)
        # a start is exact in any units: the scale divides the linear path's weights
        weight = torch.randn(part.linear.out_features, x_in.shape[1], dtype=torch.float64)
        bias = torch.randn(part.linear.out_features, dtype=torch.float64)
        part.start_at(weight, bias, scale=torch.full_like(bias, 0.1))
        torch.testing.assert_close(part(x_in), x_in @ weight.T + bias)
        assert (part.scale == 0.1).all() and "scale" in dict(part.named_buffers())
    # a fresh model's linear paths are zero and its units 1: it starts as its MLPs
    fresh = Autoencoder(3, 2, (4,), "relu", 0.0, _likelihood("squared_error"))
    assert not fresh.encoder.linear.weight.any() and not fresh.decoder.linear.bias.any()
    assert (fresh.decoder.scale == 1).all() and (fresh.encoder.scale == 1).all()


def test_autoencoder_losses_against_hand_computation():
    torch.manual_seed(0)
    x = torch.rand(5, 3, dtype=torch.float64)
    for loss in ["squared_error", "bernoulli"]:
        ae = _ae(loss).double().eval()
        out = _numpy(ae.decoder(ae.encoder(x)))
        xn = x.numpy()
        if loss == "squared_error":
            expected = ((xn - out) ** 2).sum(1)
            np.testing.assert_allclose(_numpy(ae.decode(ae.encode(x))), out)
        else:
            p = 1 / (1 + np.exp(-out))
            expected = -(xn * np.log(p) + (1 - xn) * np.log(1 - p)).sum(1)
            np.testing.assert_allclose(_numpy(ae.decode(ae.encode(x))), p)
        terms = ae.loss(x)
        np.testing.assert_allclose(_numpy(terms.reconstruction), expected)
        assert not terms.kl.any() and terms.background is None
        np.testing.assert_allclose(_numpy(ae.score(x)), -expected)


def test_denoising_noise_only_in_training():
    ae = _ae("squared_error", noise=0.5)
    x = torch.rand(5, 3)
    ae.eval()
    torch.testing.assert_close(ae.loss(x).reconstruction, ae.loss(x).reconstruction)
    ae.train()
    assert not torch.equal(ae.loss(x).reconstruction, ae.loss(x).reconstruction)


def test_vae_gaussian_terms_against_hand_computation():
    vae = _vae()
    x = torch.randn(4, 3, dtype=torch.float64)
    eps = torch.randn(2, dtype=torch.float64)
    mean, log_var = (_numpy(t) for t in vae.posterior(x))
    z = mean + eps.numpy() * np.exp(0.5 * log_var)
    out = _numpy(vae.decoder(torch.from_numpy(z)))
    var = _numpy(vae.likelihood.variance())
    nll = 0.5 * ((x.numpy() - out) ** 2 / var + np.log(2 * math.pi * var)).sum(1)
    kl = 0.5 * (mean**2 + np.exp(log_var) - 1 - log_var).sum(1)
    terms = vae.loss(x, eps)
    np.testing.assert_allclose(_numpy(terms.reconstruction), nll)
    np.testing.assert_allclose(_numpy(terms.kl), kl)
    assert terms.background is None
    # K = 1: the score is exactly the ELBO with the KL in closed form
    np.testing.assert_allclose(_numpy(vae.score(x, eps[None])), -(nll + kl))


def test_iwae_against_hand_computation():
    vae = _vae()
    x = torch.randn(4, 3, dtype=torch.float64)
    eps = torch.randn(6, 2, dtype=torch.float64)
    mean, log_var = (_numpy(t) for t in vae.posterior(x))
    std = np.exp(0.5 * log_var)
    var = _numpy(vae.likelihood.variance())
    log_w = []
    for e in eps.numpy():
        z = mean + e * std
        out = _numpy(vae.decoder(torch.from_numpy(z)))
        log_px = -0.5 * ((x.numpy() - out) ** 2 / var + np.log(2 * math.pi * var)).sum(1)
        log_pz = -0.5 * (z**2 + np.log(2 * math.pi)).sum(1)
        log_qz = -0.5 * (e**2 + log_var + np.log(2 * math.pi)).sum(1)
        log_w.append(log_px + log_pz - log_qz)
    log_w = np.array(log_w)
    expected = np.log(np.exp(log_w - log_w.max(0)).mean(0)) + log_w.max(0)
    np.testing.assert_allclose(_numpy(vae.score(x, eps)), expected)


@pytest.mark.parametrize("n_draws", [1, 6])
def test_vae_score_mixes_in_the_background_by_hand(n_draws):
    X = _linear_data(50, 3, 1)
    vae, plain = _vae(background="ppca").initialize(X), _vae().initialize(X)
    x = torch.from_numpy(X[:4])
    eps = torch.randn(n_draws, 2, dtype=torch.float64)
    background = _numpy(vae.background.log_prob(x))
    log_p = _numpy(plain.score(x, eps))  # the same VAE without the background
    w = BACKGROUND_WEIGHT
    expected = np.log((1 - w) * np.exp(log_p) + w * np.exp(background))
    np.testing.assert_allclose(_numpy(vae.score(x, eps)), expected, rtol=1e-12)
    terms = vae.loss(x, eps[0])
    np.testing.assert_allclose(_numpy(terms.background), math.log(w) + background)


def test_mix_background_against_hand_computation():
    log_p = torch.tensor([-1.0, -50.0, -2000.0], dtype=torch.float64)
    background = torch.tensor([-8.0, -9.0, -10.0], dtype=torch.float64)
    w = BACKGROUND_WEIGHT
    expected = np.logaddexp(np.log1p(-w) + log_p.numpy(), background.numpy())
    np.testing.assert_allclose(_numpy(mix_background(log_p, background)), expected)
    assert mix_background(log_p, background)[-1] == background[-1]  # no underflow
    assert mix_background(log_p, None) is log_p


def test_vae_bernoulli_is_stable_at_extreme_logits():
    vae = _vae("bernoulli")
    with torch.no_grad():
        vae.decoder.last.bias.fill_(200.0)
        vae.decoder.linear.bias.zero_()
    x = torch.tensor([[0.0, 1.0, 0.5]], dtype=torch.float64)
    terms = vae.loss(x, torch.zeros(2, dtype=torch.float64))
    assert torch.isfinite(terms.reconstruction).all()
    assert terms.reconstruction.item() > 100  # the 0 costs about 200 nats


def test_initialize_starts_at_the_data_moments():
    # columns with means (1, -2, 0.5) and biased variances (4, 0, 1)
    X = np.array([[-1.0, -2.0, -0.5], [3.0, -2.0, 1.5]] * 3)
    torch.manual_seed(0)
    likelihood = _likelihood("gaussian", floor_fraction=1e-3, init_fraction=1.0)
    vae = VAE(3, 2, (4,), "relu", 0.0, likelihood).initialize(X)
    torch.testing.assert_close(vae.decoder.last.bias, torch.tensor([1.0, -2.0, 0.5]))
    var = vae.likelihood.variance().detach()
    torch.testing.assert_close(var[[0, 2]], torch.tensor([4.0, 1.0]))
    floor = 1e-3 * 5 / 3  # a fraction of the mean feature variance
    assert floor <= var[1] < 1.01 * floor  # the floor holds
    # without a linear start the encoder starts narrow, its linear path at zero
    assert (vae.encoder.last.bias[2:] == -4.0).all()
    assert not vae.encoder.linear.weight.any()
    ae = _ae("bernoulli").initialize(np.array([[0.5, 0.0, 1.0]] * 4))
    bias = ae.decoder.last.bias
    assert bias[0] == 0 and bias[1] < -9 < 9 < bias[2]


def test_gaussian_variance_tracks_the_residuals_in_training_only():
    torch.manual_seed(0)
    vae = VAE(3, 2, (4,), "relu", 0.0, _likelihood("gaussian", floor_fraction=1e-6))
    x = torch.randn(64, 3)
    eps = torch.zeros(2)
    vae.eval()
    before = vae.likelihood.variance().clone()
    vae.loss(x, eps)
    torch.testing.assert_close(vae.likelihood.variance(), before)  # eval: unchanged
    vae.train()
    for _ in range(200):
        vae.loss(x, eps)
    with torch.no_grad():
        out = vae.decoder(vae.posterior(x)[0])
    residual = (out - x).pow(2).mean(0)
    # the variance is the residuals' (above its floor of 1e-6)
    torch.testing.assert_close(vae.likelihood.variance(), residual, rtol=1e-4, atol=0)
    assert "likelihood.log_var" in dict(vae.named_buffers())
    assert "likelihood.log_var" not in dict(vae.named_parameters())


# ------------------------------------------------- description and linear starts
def _models():
    """Models of each kind, with the parts that carry state of their own."""
    student = _likelihood("student_t", 5, df=4.0)
    counts = _likelihood("negative_binomial", 5)
    return [
        Autoencoder(5, 2, (6,), "tanh", 0.0, _likelihood("squared_error", 5), 0.1),
        Autoencoder(5, 2, (), "relu", 0.0, _likelihood("bernoulli", 5)),
        VAE(5, 2, (6, 4), "elu", 0.1, _likelihood("gaussian", 5), background="ppca"),
        VAE(5, 3, (6,), "tanh", 0.0, student, {"name": "mixture", "n_components": 3}),
        VAE(5, 2, (6,), "relu", 0.0, counts, background="independent"),
    ]


@pytest.mark.parametrize("index", range(5))
def test_build_from_the_description_rebuilds_the_model(index):
    torch.manual_seed(0)
    model = _models()[index].double()
    rng = np.random.RandomState(0)
    X = rng.poisson(3.0, size=(40, 5)).astype(float)
    if model.likelihood.name == "bernoulli":
        X = (X > 3).astype(float)
    linear = None
    if index == 0:
        linear = (PCA(2).fit(X).components_, None)
    elif index == 2:  # the decoder's units become the noise deviations
        fa = FactorAnalysis(2, random_state=0).fit(X)
        linear = (fa.components_, fa.noise_variance_)
    model.initialize(X, linear)
    description = json.loads(json.dumps(model.description))  # plain values only
    assert description == model.description
    torch.manual_seed(1)  # the rebuilt model's random start differs...
    rebuilt = build(description).double()
    assert type(rebuilt) is type(model)
    rebuilt.load_state_dict(model.state_dict(), strict=True)  # ...until loaded
    model.eval()
    rebuilt.eval()
    x = torch.from_numpy(X[:7])
    eps = torch.randn(4, model.n_components, dtype=torch.float64)
    with torch.no_grad():
        for method, args in [
            ("encode", (x,)),
            ("decode", (eps,)),
            ("loss", (x, eps[0])),
            ("score", (x, eps)),
        ]:
            expected, got = getattr(model, method)(*args), getattr(rebuilt, method)(*args)
            for a, b in zip(
                expected if isinstance(expected, Terms) else [expected],
                got if isinstance(got, Terms) else [got],
            ):
                assert (a is None and b is None) or torch.equal(a, b), method


def test_build_rejects_an_unknown_kind():
    description = dict(_models()[0].description, kind="gan")
    with pytest.raises(ValueError, match="Unknown model kind 'gan'"):
        build(description)


def test_vae_description_fills_in_the_default_prior():
    vae = VAE(4, 3, (5,), "relu", 0.0, _likelihood("gaussian", 4))
    assert vae.description["prior"] == {"name": "normal", "n_components": 3}
    assert vae.description["background"] is None and vae.background is None
    assert vae.description["kind"] == "vae"


@pytest.mark.parametrize("hidden", [(), (8, 4)])
def test_autoencoder_started_at_pca_reconstructs_as_pca(hidden):
    X = _linear_data()
    pca = PCA(2).fit(X)
    torch.manual_seed(0)
    ae = Autoencoder(5, 2, hidden, "tanh", 0.0, _likelihood("squared_error", 5)).double()
    ae.initialize(X, (pca.components_, None)).eval()
    x = torch.from_numpy(X)
    with torch.no_grad():
        Z, reconstruction = ae.encode(x).numpy(), ae.decode(ae.encode(x)).numpy()
    np.testing.assert_allclose(Z, pca.transform(X), atol=1e-10)
    expected = pca.inverse_transform(pca.transform(X))
    np.testing.assert_allclose(reconstruction, expected, atol=1e-10)
    np.testing.assert_allclose(
        ae.score(x).detach().numpy(), -((X - expected) ** 2).sum(1), rtol=1e-10
    )


def test_vae_started_at_factor_analysis_scores_as_factor_analysis():
    X = _linear_data()
    fa = FactorAnalysis(2, random_state=0).fit(X)
    torch.manual_seed(0)
    likelihood = _likelihood("gaussian", 5, floor_fraction=1e-6)
    vae = VAE(5, 2, (8,), "tanh", 0.0, likelihood, background=None).double()
    vae.initialize(X, (fa.components_, fa.noise_variance_)).eval()
    noise = torch.from_numpy(fa.noise_variance_)
    torch.testing.assert_close(vae.likelihood.variance(), noise)
    torch.testing.assert_close(vae.decoder.scale, noise.sqrt())  # its output units
    g = torch.Generator().manual_seed(0)
    eps = torch.randn(64, 2, generator=g, dtype=torch.float64)
    with torch.no_grad():
        score = vae.score(torch.from_numpy(X), eps).numpy()
        mean = vae.encode(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(score, fa.score_samples(X), rtol=0, atol=1e-6)
    np.testing.assert_allclose(mean, fa.transform(X), atol=1e-10)  # the posterior mean


def test_a_latent_dimension_the_start_leaves_out_starts_unused():
    X = _linear_data()
    fa = FactorAnalysis(2, random_state=0).fit(X)
    components = np.vstack([fa.components_, np.zeros((1, 5))])  # a third, unused dim
    torch.manual_seed(0)
    likelihood = _likelihood("gaussian", 5, floor_fraction=1e-6)
    vae = VAE(5, 3, (8,), "tanh", 0.0, likelihood, background=None).double()
    vae.initialize(X, (components, fa.noise_variance_)).eval()
    x = torch.from_numpy(X)
    with torch.no_grad():
        mean, log_var = vae.posterior(x)
        # its posterior is the prior: it costs no KL
        assert not mean[:, 2].any() and not log_var[:, 2].any()
        eps = torch.randn(64, 3, generator=torch.Generator().manual_seed(0)).double()
        score = vae.score(x, eps).numpy()
        np.testing.assert_allclose(score, fa.score_samples(X), rtol=0, atol=1e-6)
        # and its code enters no hidden unit, even once the decoder's MLP is trained
        vae.decoder.last.weight.normal_()
        z = torch.randn(10, 3, dtype=torch.float64)
        moved = z.clone()
        moved[:, 2] += 5.0
        torch.testing.assert_close(vae.decoder(z), vae.decoder(moved))
        assert not torch.allclose(vae.decoder(z), vae.decoder(z + 5.0))


@pytest.mark.parametrize("k", [1, 2, 4])
def test_ppca_background_is_the_density_of_pca_score_samples(k):
    X = _linear_data()
    torch.manual_seed(0)
    vae = VAE(5, k, (4,), "tanh", 0.0, _likelihood("gaussian", 5), background="ppca")
    vae.double().initialize(X)
    with torch.no_grad():
        log_prob = vae.background.log_prob(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(log_prob, PCA(k).fit(X).score_samples(X), rtol=1e-6)
    # buffers, not parameters: the background is fitted in closed form, not trained
    assert not [name for name, _ in vae.named_parameters() if "background" in name]


def test_independent_background_is_the_likelihood_at_the_data_mean():
    X = np.random.RandomState(0).poisson(2.0, size=(30, 3)).astype(float)
    torch.manual_seed(0)
    vae = VAE(3, 2, (4,), "tanh", 0.0, _likelihood("poisson"), background="independent")
    vae.double().initialize(X).eval()
    # the composition of all counts at each row's own total (the library size):
    # the multinomial of the row's total
    expected = stats.multinomial.logpmf(X, n=X.sum(1), p=X.sum(0) / X.sum())
    with torch.no_grad():
        log_prob = vae.background.log_prob(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(log_prob, expected, rtol=1e-10)


def test_the_heavy_tailed_background_fits_its_tail_to_the_rows():
    rng = np.random.RandomState(0)
    W = rng.normal(size=(2, 5))
    gaussian = rng.normal(size=(4000, 2)) @ W + 0.3 * rng.normal(size=(4000, 5))
    scale = np.sqrt(rng.chisquare(3, size=(4000, 1)) / 3)  # multivariate t, 3 dof
    heavy = gaussian / scale
    dofs = {}
    for name, X in (("gaussian", gaussian), ("t3", heavy)):
        background = Background("ppca_t", 5, 2)
        background.initialize(torch.as_tensor(X))
        dofs[name] = float(background.tail_dof)
        # half PPCA's density (PCA.score_samples), half the t with its scale
        background.double()
        rows = X[:200]
        log_p = background.log_prob(torch.as_tensor(rows)).numpy()
        pca = PCA(2).fit(X)
        mean = background.mean.numpy()
        factors = background.factors.numpy()
        shape = factors @ factors.T + float(background.noise_variance) * np.eye(5)
        np.testing.assert_allclose(shape, pca.get_covariance(), rtol=1e-6, atol=1e-9)
        t = stats.multivariate_t(mean, shape, df=dofs[name]).logpdf(rows)
        expected = np.logaddexp(pca.score_samples(rows), t) - math.log(2)
        np.testing.assert_allclose(log_p, expected, rtol=1e-6)
    assert dofs["gaussian"] > 50 and 2 < dofs["t3"] < 5, dofs
