"""Torch modules: the MLP builder, the autoencoder and VAE models, per-sample loss terms."""

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
}

_LOG_2PI = math.log(2 * math.pi)


class Terms(NamedTuple):
    """Per-sample loss terms, each of shape (n_samples,), summed over features."""

    reconstruction: torch.Tensor
    kl: torch.Tensor


def mlp(sizes, activation="relu", dropout=0.0):
    """A stack of Linear layers with an activation (and dropout) between them.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first: ``[64, 128, 8]`` makes two Linear layers.
    activation : str
        A key of ``ACTIVATIONS``; instantiated once per hidden layer.
    dropout : float
        Dropout probability after each hidden activation.

    Returns
    -------
    net : nn.Sequential
        The last layer is linear, with no activation.
    """
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def _track_variance(likelihood, squared, observed=None):
    """Move a Gaussian's per-feature variance towards the batch's mean squared residual.

    ``squared`` holds squared residuals (already zero where not ``observed``);
    ``observed`` (0/1, broadcastable) makes the mean run over observed entries.
    """
    with torch.no_grad():
        flat = squared.reshape(-1, squared.shape[-1])
        if observed is None:
            batch = flat.mean(0)
        else:
            seen = observed.expand_as(squared).reshape(-1, squared.shape[-1])
            batch = flat.sum(0) / seen.sum(0).clamp_min(1)
        ema = torch.lerp(likelihood.log_var.exp(), batch, likelihood.momentum)
        likelihood.log_var.copy_(ema.clamp_min(1e-30).log())


class _Likelihood(nn.Module):
    """The decoder's observation model p(x | z): Gaussian, or Bernoulli on logits.

    The Gaussian has a per-feature variance ``exp(log_var) + floor``, so its
    negative log-likelihood is a density in nats with its normalising constant.
    The variance is not trained by gradient steps, which move a log-variance by
    about one learning rate per step and so take thousands of steps to shrink
    it. Each training batch sets it in closed form instead: its maximum-
    likelihood value given the decoder is the mean squared residual per feature,
    tracked as a moving average over batches (``momentum``). The decoder's
    gradient at that variance is the gradient of the profile likelihood.
    Mean squared error is the Gaussian with its variance fixed at 1/2 and no
    constant (``kind="mse"``).
    """

    def __init__(self, kind, n_features, floor=1e-6, momentum=0.1):
        super().__init__()
        self.kind = kind
        self.momentum = momentum
        if kind == "gaussian":
            floor = torch.as_tensor(floor, dtype=torch.float32).expand(n_features)
            self.register_buffer("floor", floor.clone())
            self.register_buffer("log_var", torch.zeros(n_features))

    def variance(self):
        return self.log_var.exp() + self.floor

    def mean(self, out):
        """The expected value of x given the decoder's output."""
        return torch.sigmoid(out) if self.kind == "bernoulli" else out

    def nll(self, out, x):
        """Per-sample negative log-likelihood (or squared error), summed over features."""
        if self.kind == "mse":
            return (out - x).pow(2).sum(-1)
        if self.kind == "bernoulli":
            return F.binary_cross_entropy_with_logits(
                out, x.expand_as(out), reduction="none"
            ).sum(-1)
        squared = (out - x).pow(2)
        if self.training:
            _track_variance(self, squared)
        var = self.variance()
        return 0.5 * (squared / var + var.log() + _LOG_2PI).sum(-1)


class _MixedLikelihood(nn.Module):
    """The observation model of a mixed-type table, summed over its columns.

    ``layout`` gives encoded column indices: ``numeric`` (standardized values,
    Gaussian with the closed-form variance of :class:`_Likelihood`, or squared
    error for ``numeric_kind="mse"``), ``indicator`` (for each numeric column the
    index of its missing indicator, or -1; missing entries drop out of the
    numeric term), ``binary`` (Bernoulli on logits: booleans and indicators) and
    ``categorical`` (``(start, stop)`` one-hot blocks under a softmax; an
    all-zero block, an unknown level, contributes nothing).
    """

    kind = "mixed"

    def __init__(self, layout, numeric_kind, floor=1e-3, momentum=0.1):
        super().__init__()
        self.numeric_kind = numeric_kind
        self.momentum = momentum
        self.blocks = [tuple(block) for block in layout["categorical"]]
        for name in ("numeric", "indicator", "binary"):
            self.register_buffer(name, torch.as_tensor(layout[name], dtype=torch.long))
        n_numeric = len(layout["numeric"])
        self.register_buffer("floor", torch.full((n_numeric,), float(floor)))
        self.register_buffer("log_var", torch.zeros(n_numeric))

    def variance(self):
        return self.log_var.exp() + self.floor

    def mean(self, out):
        """Standardized values, and probabilities of the binary and categorical columns."""
        mean = out.clone()
        mean[..., self.binary] = torch.sigmoid(out[..., self.binary])
        for start, stop in self.blocks:
            mean[..., start:stop] = torch.softmax(out[..., start:stop], dim=-1)
        return mean

    def nll(self, out, x):
        """Per-sample negative log-likelihood, summed over the columns."""
        total = torch.zeros(out.shape[:-1], dtype=out.dtype, device=out.device)
        if len(self.numeric):
            observed = torch.where(
                self.indicator >= 0, 1 - x[..., self.indicator.clamp_min(0)], 1.0
            )
            squared = (out[..., self.numeric] - x[..., self.numeric]).pow(2) * observed
            if self.numeric_kind == "mse":
                total = total + squared.sum(-1)
            else:
                if self.training:
                    _track_variance(self, squared, observed)
                var = self.variance()
                terms = 0.5 * (squared / var + (var.log() + _LOG_2PI) * observed)
                total = total + terms.sum(-1)
        if len(self.binary):
            total = total + F.binary_cross_entropy_with_logits(
                out[..., self.binary],
                x[..., self.binary].expand_as(out[..., self.binary]),
                reduction="none",
            ).sum(-1)
        for start, stop in self.blocks:
            log_p = torch.log_softmax(out[..., start:stop], dim=-1)
            total = total - (log_p * x[..., start:stop]).sum(-1)
        return total


def _likelihood(kind, n_features, floor, layout):
    if layout is None:
        return _Likelihood(kind, n_features, floor)
    return _MixedLikelihood(layout, "gaussian" if kind == "gaussian" else "mse", floor)


def init_output(module, mean, variance):
    """Start the decoder at the data's mean and the likelihood at its variance.

    The last decoder layer's bias becomes the feature means (their logits for a
    Bernoulli likelihood) and a Gaussian's variance the feature variances, so
    training starts from the independent-features model whatever X's scale.
    """
    mean = torch.as_tensor(mean, dtype=torch.float32)
    likelihood = module.likelihood
    if likelihood.kind == "bernoulli":
        mean = torch.logit(mean.clamp(1e-4, 1 - 1e-4))
    elif likelihood.kind == "mixed":  # logits of binary columns, log-frequencies of levels
        bias = mean.clone()
        bias[likelihood.binary] = torch.logit(mean[likelihood.binary].clamp(1e-4, 1 - 1e-4))
        for start, stop in likelihood.blocks:
            bias[start:stop] = mean[start:stop].clamp_min(1e-4).log()
        mean = bias
        if variance is not None:
            variance = torch.as_tensor(variance, dtype=torch.float32)[likelihood.numeric]
    last = module.decoder[-1]
    with torch.no_grad():
        last.bias.copy_(mean.to(last.bias.device))
        if variance is not None and hasattr(likelihood, "log_var"):
            variance = torch.as_tensor(variance, dtype=torch.float32).to(last.bias.device)
            excess = (variance - likelihood.floor).clamp_min(1e-3 * likelihood.floor)
            likelihood.log_var.copy_(excess.log())


class Autoencoder(nn.Module):
    """A deterministic autoencoder: x -> z = encoder(x) -> decoder(z).

    Parameters
    ----------
    n_features, n_components : int
    hidden : sequence of int
        Encoder widths; the decoder mirrors them.
    activation : str
    dropout : float
    loss : {"mse", "bce"}
        ``"bce"`` makes the decoder output logits of Bernoulli means.
    noise : float
        Standard deviation of the Gaussian corruption added to x in training.
    layout : dict or None
        Encoded column indices of a mixed-type table (see ``_MixedLikelihood``);
        its numeric columns then use squared error.
    """

    def __init__(
        self,
        n_features,
        n_components,
        hidden,
        activation,
        dropout,
        loss,
        noise,
        layout=None,
    ):
        super().__init__()
        sizes = [n_features, *hidden, n_components]
        self.encoder = mlp(sizes, activation, dropout)
        self.decoder = mlp(sizes[::-1], activation, dropout)
        kind = "bernoulli" if loss == "bce" else "mse"
        self.likelihood = _likelihood(kind, n_features, 1e-6, layout)
        self.noise = noise

    def encode(self, x):
        """Codes z of shape (n_samples, n_components)."""
        return self.encoder(x)

    def decode(self, z):
        """Reconstructions (the decoder mean) of shape (n_samples, n_features)."""
        return self.likelihood.mean(self.decoder(z))

    def loss(self, x):
        """Per-sample reconstruction loss; ``kl`` is zero."""
        x_in = x
        if self.training and self.noise > 0:
            x_in = x + self.noise * torch.randn_like(x)
        reconstruction = self.likelihood.nll(self.decoder(self.encoder(x_in)), x)
        return Terms(reconstruction, torch.zeros_like(reconstruction))

    def score(self, x, eps=None):
        """Per-sample score: minus the reconstruction loss."""
        return -self.likelihood.nll(self.decoder(self.encoder(x)), x)


class VAE(nn.Module):
    """A variational autoencoder with a Gaussian posterior q(z|x) and N(0, I) prior.

    The encoder outputs the mean and log-variance of q(z|x); z is drawn with the
    reparameterisation trick; the decoder parameterises p(x|z) (``likelihood``).

    Parameters
    ----------
    n_features, n_components : int
    hidden : sequence of int
    activation : str
    dropout : float
    likelihood : {"gaussian", "bernoulli"}
    variance_floor : float or tensor of shape (n_features,)
        Lower bound of the Gaussian observation variance.
    layout : dict or None
        Encoded column indices of a mixed-type table (see ``_MixedLikelihood``);
        its numeric columns then use the Gaussian likelihood.
    """

    def __init__(
        self,
        n_features,
        n_components,
        hidden,
        activation,
        dropout,
        likelihood,
        variance_floor=1e-6,
        layout=None,
    ):
        super().__init__()
        sizes = [n_features, *hidden, 2 * n_components]
        self.encoder = mlp(sizes, activation, dropout)
        self.decoder = mlp([n_components, *hidden[::-1], n_features], activation, dropout)
        self.likelihood = _likelihood(likelihood, n_features, variance_floor, layout)
        self.n_components = n_components
        # Start q(z|x) narrow (std exp(-2), about 0.14) rather than prior-wide: z
        # then carries the encoder's signal from the first step, and training
        # skips the long plateau where KL pushes q onto the prior before the
        # decoder has learned to use z (measured: 0 active dimensions at the
        # stop on small curved data sets with a zero start, all with this one).
        with torch.no_grad():
            self.encoder[-1].bias[n_components:] = -4.0

    def posterior(self, x):
        """Mean and log-variance of q(z|x), each of shape (n_samples, n_components)."""
        mean, log_var = self.encoder(x).chunk(2, dim=-1)
        return mean, log_var.clamp(-30.0, 20.0)

    def encode(self, x):
        """The posterior mean, the code of x."""
        return self.posterior(x)[0]

    def decode(self, z):
        """The decoder mean E[x | z]."""
        return self.likelihood.mean(self.decoder(z))

    def loss(self, x, eps=None):
        """Per-sample negative ELBO terms: reconstruction NLL and KL(q(z|x) || N(0, I)).

        ``eps`` (broadcastable to the posterior's shape) fixes the
        reparameterisation draw; by default it is drawn from torch's RNG.
        """
        mean, log_var = self.posterior(x)
        if eps is None:
            eps = torch.randn_like(mean)
        z = mean + eps * (0.5 * log_var).exp()
        reconstruction = self.likelihood.nll(self.decoder(z), x)
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(-1)
        return Terms(reconstruction, kl)

    def score(self, x, eps):
        """Importance-weighted estimate of log p(x) (the IWAE bound) per sample.

        Parameters
        ----------
        x : tensor of shape (n_samples, n_features)
        eps : tensor of shape (K, n_components)
            Standard normal draws shared by all rows, so a row's score does not
            depend on the other rows. With ``K == 1`` the result is the ELBO
            with its KL term in closed form, exactly minus :meth:`loss`.

        Returns
        -------
        score : tensor of shape (n_samples,)
        """
        if eps.shape[0] == 1:
            terms = self.loss(x, eps[0])
            return -(terms.reconstruction + terms.kl)
        mean, log_var = self.posterior(x)
        std = (0.5 * log_var).exp()
        z = mean + eps[:, None, :] * std  # (K, n, d)
        log_px = -self.likelihood.nll(self.decoder(z), x)
        log_pz = -0.5 * (z.pow(2) + _LOG_2PI).sum(-1)
        log_qz = -0.5 * (eps.pow(2).sum(-1)[:, None] + (log_var + _LOG_2PI).sum(-1))
        log_w = log_px + log_pz - log_qz
        return torch.logsumexp(log_w, dim=0) - math.log(eps.shape[0])
