"""Fit-free tests of the torch modules and their per-sample loss terms."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from skvae._networks import ACTIVATIONS, VAE, Autoencoder, init_output, mlp


def test_mlp_structure():
    net = mlp([5, 8, 4, 2], "tanh", dropout=0.2)
    kinds = [type(layer) for layer in net]
    assert kinds == [
        nn.Linear,
        nn.Tanh,
        nn.Dropout,
        nn.Linear,
        nn.Tanh,
        nn.Dropout,
        nn.Linear,
    ]
    assert net(torch.zeros(3, 5)).shape == (3, 2)
    assert [type(layer) for layer in mlp([5, 2])] == [nn.Linear]


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_each_activation_is_its_own_instance(name):
    net = mlp([3, 4, 4, 1], name)
    activations = [layer for layer in net if isinstance(layer, ACTIVATIONS[name])]
    assert len(activations) == 2 and activations[0] is not activations[1]


def _vae(likelihood="gaussian", floor=1e-3):
    torch.manual_seed(0)
    return VAE(3, 2, (4,), "relu", 0.0, likelihood, floor).double().eval()


def test_autoencoder_losses_against_hand_computation():
    torch.manual_seed(0)
    x = torch.rand(5, 3, dtype=torch.float64)
    for loss in ["mse", "bce"]:
        ae = Autoencoder(3, 2, (4,), "relu", 0.0, loss, 0.0).double().eval()
        out = ae.decoder(ae.encoder(x)).detach().numpy()
        xn = x.numpy()
        if loss == "mse":
            expected = ((xn - out) ** 2).sum(1)
            np.testing.assert_allclose(ae.decode(ae.encode(x)).detach().numpy(), out)
        else:
            p = 1 / (1 + np.exp(-out))
            expected = -(xn * np.log(p) + (1 - xn) * np.log(1 - p)).sum(1)
            np.testing.assert_allclose(ae.decode(ae.encode(x)).detach().numpy(), p)
        terms = ae.loss(x)
        np.testing.assert_allclose(terms.reconstruction.detach().numpy(), expected)
        assert not terms.kl.any()
        np.testing.assert_allclose(ae.score(x).detach().numpy(), -expected)


def test_denoising_noise_only_in_training():
    torch.manual_seed(0)
    ae = Autoencoder(3, 2, (4,), "relu", 0.0, "mse", 0.5)
    x = torch.rand(5, 3)
    ae.eval()
    torch.testing.assert_close(ae.loss(x).reconstruction, ae.loss(x).reconstruction)
    ae.train()
    assert not torch.equal(ae.loss(x).reconstruction, ae.loss(x).reconstruction)


def test_vae_gaussian_terms_against_hand_computation():
    vae = _vae()
    x = torch.randn(4, 3, dtype=torch.float64)
    eps = torch.randn(2, dtype=torch.float64)
    mean, log_var = (t.detach().numpy() for t in vae.posterior(x))
    z = mean + eps.numpy() * np.exp(0.5 * log_var)
    out = vae.decoder(torch.from_numpy(z)).detach().numpy()
    var = vae.likelihood.variance().numpy()
    nll = 0.5 * ((x.numpy() - out) ** 2 / var + np.log(2 * math.pi * var)).sum(1)
    kl = 0.5 * (mean**2 + np.exp(log_var) - 1 - log_var).sum(1)
    terms = vae.loss(x, eps)
    np.testing.assert_allclose(terms.reconstruction.detach().numpy(), nll)
    np.testing.assert_allclose(terms.kl.detach().numpy(), kl)
    # K = 1: the score is exactly the ELBO with the KL in closed form
    np.testing.assert_allclose(vae.score(x, eps[None]).detach().numpy(), -(nll + kl))


def test_iwae_against_hand_computation():
    vae = _vae()
    x = torch.randn(4, 3, dtype=torch.float64)
    eps = torch.randn(6, 2, dtype=torch.float64)
    mean, log_var = (t.detach().numpy() for t in vae.posterior(x))
    std = np.exp(0.5 * log_var)
    var = vae.likelihood.variance().numpy()
    log_w = []
    for e in eps.numpy():
        z = mean + e * std
        out = vae.decoder(torch.from_numpy(z)).detach().numpy()
        log_px = -0.5 * ((x.numpy() - out) ** 2 / var + np.log(2 * math.pi * var)).sum(1)
        log_pz = -0.5 * (z**2 + np.log(2 * math.pi)).sum(1)
        log_qz = -0.5 * (e**2 + log_var + np.log(2 * math.pi)).sum(1)
        log_w.append(log_px + log_pz - log_qz)
    log_w = np.array(log_w)
    expected = np.log(np.exp(log_w - log_w.max(0)).mean(0)) + log_w.max(0)
    np.testing.assert_allclose(vae.score(x, eps).detach().numpy(), expected)


def test_vae_bernoulli_is_stable_at_extreme_logits():
    vae = _vae("bernoulli")
    with torch.no_grad():
        vae.decoder[-1].bias.fill_(200.0)
    x = torch.tensor([[0.0, 1.0, 0.5]], dtype=torch.float64)
    terms = vae.loss(x, torch.zeros(2, dtype=torch.float64))
    assert torch.isfinite(terms.reconstruction).all()
    assert terms.reconstruction.item() > 100  # the 0 costs about 200 nats


def test_init_output_starts_at_the_data_moments():
    torch.manual_seed(0)
    vae = VAE(3, 2, (4,), "relu", 0.0, "gaussian", 1e-3)
    init_output(vae, np.array([1.0, -2.0, 0.5]), np.array([4.0, 1e-6, 1.0]))
    torch.testing.assert_close(vae.decoder[-1].bias, torch.tensor([1.0, -2.0, 0.5]))
    var = vae.likelihood.variance().detach()
    torch.testing.assert_close(var[[0, 2]], torch.tensor([4.0, 1.0]))
    assert 1e-3 <= var[1] < 1.1e-3  # the floor holds
    ae = Autoencoder(3, 2, (4,), "relu", 0.0, "bce", 0.0)
    init_output(ae, np.array([0.5, 0.0, 1.0]), None)
    assert (
        ae.decoder[-1].bias[0] == 0
        and ae.decoder[-1].bias[1] < -9 < 9 < ae.decoder[-1].bias[2]
    )


def test_gaussian_variance_tracks_the_residuals_in_training_only():
    torch.manual_seed(0)
    vae = VAE(3, 2, (4,), "relu", 0.0, "gaussian", 1e-6)
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
    torch.testing.assert_close(
        vae.likelihood.variance(), residual + 1e-6, rtol=1e-4, atol=0
    )
    assert "likelihood.log_var" in dict(vae.named_buffers())
    assert "likelihood.log_var" not in dict(vae.named_parameters())
