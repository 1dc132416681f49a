"""Torch modules: the MLP builder, the model contract, the autoencoder and VAE models.

A model is rebuilt from its plain description alone (:func:`build`): sizes,
names of parts and their options, all JSON-able. Data only sets its starting
values (:meth:`Model.initialize`), never its structure.
"""

import math
import threading
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ._likelihoods import TINY_VARIANCE, _sparse_moments, build_likelihood
from ._priors import build_prior
from ._torch import dense_rows

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
#: Weight of the broad background density mixed into a VAE's p(x) (see
#: :class:`Background`): it bounds how badly one unusual row can score at
#: log(1e-3) = -6.9 nats below the background's own score, and costs every
#: other row at most -log(1 - 1e-3) = 0.001 nats.
BACKGROUND_WEIGHT = 1e-3
#: Degrees of freedom of the "ppca_t" background's t half (:class:`Background`),
#: fitted within these bounds on at most _TAIL_ROWS training rows: its start
#: (the bound above) is a near-Gaussian tail.
_MIN_TAIL_DOF = 0.5
_MAX_TAIL_DOF = 1000.0
_TAIL_ROWS = 10_000
#: Starting log-variance of q(z|x) when no linear solution is given: narrow
#: (std exp(-2), about 0.14), so z carries the encoder's signal from the first
#: step and training skips the plateau where the KL pushes q onto the prior
#: before the decoder has learned to use z.
_NARROW_LOG_VAR = -4.0


class Terms(NamedTuple):
    """Per-sample loss terms, each of shape (n_samples,).

    ``reconstruction`` is -log p(x|z) (summed over features), ``kl`` the
    KL(q(z|x) || p(z)) term, and ``background`` None or log(w * p_b(x)), the
    weighted log-density of the broad background component.
    """

    reconstruction: torch.Tensor
    kl: torch.Tensor
    background: torch.Tensor | None = None


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
                layers.append(Dropout(dropout))
    return nn.Sequential(*layers)


class Dropout(nn.Module):
    """``nn.Dropout`` with its masks drawn from ``generator`` (a fit's own RNG).

    ``generator`` is set for the length of a fit (:func:`use_generator`);
    torch's global RNG is used when it is None.
    """

    def __init__(self, p):
        super().__init__()
        self.p = float(p)
        self.generator = None

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = torch.empty_like(x).bernoulli_(1 - self.p, generator=self.generator)
        return x * keep / (1 - self.p)

    def extra_repr(self):
        return f"p={self.p}"


def use_generator(module, generator):
    """Make every random draw of ``module`` in training come from ``generator``.

    Sets the ``generator`` attribute of ``module`` and of its parts that have
    one (dropout, the reparameterisation and noise draws); None restores
    torch's global RNG.
    """
    for part in module.modules():
        if hasattr(part, "generator"):
            part.generator = generator


def reset_parameters(module, generator):
    """Draw ``module``'s initial weights from ``generator`` instead of the global RNG.

    Linear layers get torch's own default initialisation (Kaiming uniform
    weights, uniform biases); parts with a ``reset_random(generator)`` method
    (the mixture prior's means) redraw with it. Weights a start set to zero
    (the linear paths) are left as they are.
    """
    for part in module.modules():
        if isinstance(part, nn.Linear) and part.weight.abs().sum() > 0:
            nn.init.kaiming_uniform_(part.weight, a=math.sqrt(5), generator=generator)
            if part.bias is not None:
                bound = 1 / math.sqrt(part.in_features) if part.in_features else 0.0
                nn.init.uniform_(part.bias, -bound, bound, generator=generator)
        elif hasattr(part, "reset_random"):
            part.reset_random(generator)


class _Residual(nn.Module):
    """An MLP plus a linear path, in per-output units: ``(mlp(x) + A x + b) * scale``.

    The linear path lets a model start exactly at a linear solution (factor
    analysis) with the MLP's last layer at zero, so training only adds
    nonlinearity to it. ``scale`` (a buffer, 1 until a start sets it) is each
    output's natural unit, e.g. the noise standard deviation of a feature:
    Adam moves every weight by about one learning rate per step whatever its
    gradient, so without it a step would move a nearly noiseless feature's
    prediction by many of its noise deviations. With ``input_unit``, the map
    reads ``(x - shift) / unit`` (buffers, 0 and 1 until :meth:`set_input`
    sets them), for the same reason on the input side: inputs in any units
    give the first layers inputs of about unit size.
    """

    def __init__(self, sizes, activation, dropout, input_unit=False):
        super().__init__()
        self.mlp = mlp(sizes, activation, dropout)
        self.linear = nn.Linear(sizes[0], sizes[-1])
        self.register_buffer("scale", torch.ones(sizes[-1]))
        if input_unit:
            self.register_buffer("shift", torch.zeros(sizes[0]))
            self.register_buffer("unit", torch.ones(sizes[0]))
        else:
            self.shift = self.unit = None
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.zero_()

    @property
    def last(self):
        """The MLP's output layer."""
        return self.mlp[-1]

    def forward(self, x):
        if self.unit is not None:
            x = (x - self.shift) / self.unit
        return (self.mlp(x) + self.linear(x)) * self.scale

    def set_input(self, shift, unit):
        """Read inputs as ``(x - shift) / unit`` (per input; needs ``input_unit``)."""
        with torch.no_grad():
            self.shift.copy_(torch.as_tensor(shift))
            self.unit.copy_(torch.as_tensor(unit))

    def start_at(self, weight, bias, scale=None):
        """Make the map exactly ``x @ weight.T + bias`` (the MLP's output set to 0).

        ``scale`` (per output, default 1) becomes the outputs' unit. ``x`` is
        the input as given (before an input unit).
        """
        with torch.no_grad():
            if scale is not None:
                self.scale.copy_(torch.as_tensor(scale))
            scale = self.scale.to(torch.float64)
            weight = torch.as_tensor(weight, dtype=torch.float64)
            bias = torch.as_tensor(bias, dtype=torch.float64)
            if self.unit is not None:  # x = shift + unit * (the map's input)
                bias = bias + weight @ self.shift.to(torch.float64)
                weight = weight * self.unit.to(torch.float64)
            self.last.weight.zero_()
            self.last.bias.zero_()
            self.linear.weight.copy_(weight / scale[:, None])
            self.linear.bias.copy_(bias / scale)


def _broad(description):
    """A likelihood description whose scales start at the data's (``init_fraction=1``)."""
    if isinstance(description, dict):
        return {
            key: 1.0 if key == "init_fraction" else _broad(value)
            for key, value in description.items()
        }
    if isinstance(description, list):
        return [_broad(value) for value in description]
    return description


class Background(nn.Module):
    """A broad density p_b(x) mixed into a VAE's p(x) with a small weight.

    ``p(x) = (1 - w) p_vae(x) + w p_b(x)`` with w = ``BACKGROUND_WEIGHT``: a
    contamination model. A row the VAE finds impossible (a value far outside
    what training showed on a feature that was nearly constant) then scores
    about log w below p_b instead of thousands of nats below it. ``kind`` is
    ``"ppca"`` (probabilistic PCA with ``n_components`` factors and an
    isotropic noise, the density of ``PCA.score_samples``), ``"ppca_t"``
    (for real-valued data: half that, half the multivariate Student-t with
    the same scale matrix and ``tail_dof`` degrees of freedom fitted to the
    training rows), or ``"independent"``: the model's own likelihood at a
    constant output, the independent-features model, for any other data.

    A Gaussian's tail charges a squared distance: a test row with a value 72
    of its training deviations out on a pixel lit in 3 of 898 training rows
    (``load_digits``' standardized halves) scored -5,250 nats under PPCA, most
    of the test half's mean score. The t's tail charges its logarithm (the
    mixture -253 nats), and the Gaussian half keeps every row within log 2
    of PPCA.
    """

    def __init__(self, kind, n_features, n_components, likelihood=None):
        super().__init__()
        self.kind = kind
        if kind in ("ppca", "ppca_t"):
            self.register_buffer("mean", torch.zeros(n_features))
            self.register_buffer("factors", torch.zeros(n_features, n_components))
            self.register_buffer("noise_variance", torch.ones(()))
            if kind == "ppca_t":
                self.register_buffer("tail_dof", torch.full((), _MAX_TAIL_DOF))
        else:
            self.likelihood = build_likelihood(_broad(likelihood))
            self.likelihood.requires_grad_(False)
            self.register_buffer("output", torch.zeros(n_features))

    def train(self, mode=True):
        """Stay in eval mode: the background is fitted once, never trained."""
        return super().train(False)

    def initialize(self, X, seed=0):
        """Fit the density to the training rows ``X`` in closed form.

        ``X`` is a float64 tensor or a scipy.sparse matrix; PPCA is fitted on
        a random subset of a sparse X's rows (:func:`~._torch.dense_rows`,
        seeded by ``seed``), so that its dense copy stays small.
        """
        if self.kind not in ("ppca", "ppca_t"):
            self.output.copy_(self.likelihood.init_output(X))
            return
        if sp.issparse(X):
            X = torch.from_numpy(dense_rows(X, X.shape[0], seed))
        n, d = X.shape
        k = self.factors.shape[1]
        mean = X.mean(0)
        _, s, vt = torch.linalg.svd(X - mean, full_matrices=False)
        eigen = torch.zeros(d, dtype=X.dtype)
        eigen[: s.shape[0]] = s.pow(2) / max(n - 1, 1)
        # As PCA.score_samples: the mean of the min(n, d) - k discarded eigenvalues.
        rank = s.shape[0]
        noise = eigen[k:rank].mean() if k < rank else eigen.new_tensor(0.0)
        if identical_rows(X):  # unit variance, as _units reads them
            noise = eigen.new_tensor(1.0)
        noise = noise.clamp_min(1e-6 * eigen.mean().clamp_min(TINY_VARIANCE))
        loadings = vt[:k].T * (eigen[:k] - noise).clamp_min(0).sqrt()[: vt.shape[0]]
        self.mean.copy_(mean)
        self.factors[:, : loadings.shape[1]] = loadings
        self.noise_variance.copy_(noise)
        if self.kind == "ppca_t":
            self.tail_dof.fill_(self._fit_tail(X, seed))

    def _fit_tail(self, X, seed):
        """The t's degrees of freedom of most likelihood on (at most 10,000 of) X's rows.

        With the scale matrix held at PPCA's, the t's log-likelihood depends
        on the rows through their squared Mahalanobis distances alone: a
        one-dimensional search, within [_MIN_TAIL_DOF, _MAX_TAIL_DOF].
        """
        from scipy.optimize import minimize_scalar
        from scipy.special import gammaln

        n, d = X.shape
        if n > _TAIL_ROWS:
            rows = np.random.RandomState(seed).choice(n, _TAIL_ROWS, replace=False)
            X = X[torch.from_numpy(np.sort(rows))]
        distance = self._mahalanobis(X.to(self.mean.dtype))[0].double().cpu().numpy()
        distance = distance.clip(0.0)

        def loss(log_dof):
            dof = math.exp(log_dof)
            constant = gammaln((dof + d) / 2) - gammaln(dof / 2) - d / 2 * math.log(dof)
            return -(constant - (dof + d) / 2 * np.log1p(distance / dof).mean())

        bounds = (math.log(_MIN_TAIL_DOF), math.log(_MAX_TAIL_DOF))
        found = minimize_scalar(loss, bounds=bounds, method="bounded")
        return float(math.exp(found.x)) if np.isfinite(found.fun) else _MAX_TAIL_DOF

    def _mahalanobis(self, x):
        """Squared Mahalanobis distances of x's rows under PPCA's C, and log det C."""
        # C = W W^T + s2 I; its inverse and log-determinant by Woodbury.
        centered = x - self.mean
        s2 = self.noise_variance
        k = self.factors.shape[1]
        inner = torch.eye(k, dtype=x.dtype, device=x.device) + self.factors.T @ (
            self.factors / s2
        )
        chol = torch.linalg.cholesky(inner)
        projected = centered @ (self.factors / s2)
        solved = torch.cholesky_solve(projected.unsqueeze(-1), chol).squeeze(-1)
        mahalanobis = centered.pow(2).sum(-1) / s2 - (projected * solved).sum(-1)
        log_det = x.shape[-1] * s2.log() + 2 * chol.diagonal().log().sum()
        return mahalanobis, log_det

    def log_prob(self, x):
        """log p_b(x) per row, in nats."""
        if self.kind not in ("ppca", "ppca_t"):
            return -self.likelihood.nll(self.output, x)
        distance, log_det = self._mahalanobis(x)
        d = x.shape[-1]
        gaussian = -0.5 * (distance + log_det + d * _LOG_2PI)
        if self.kind == "ppca":
            return gaussian
        dof = self.tail_dof.to(x.dtype)
        half = 0.5 * (dof + d)
        student = (
            torch.lgamma(half)
            - torch.lgamma(0.5 * dof)
            - 0.5 * d * torch.log(dof * math.pi)
            - 0.5 * log_det
            - half * torch.log1p(distance.clamp_min(0.0) / dof)
        )
        return torch.logaddexp(gaussian, student) - math.log(2.0)


class Model(nn.Module):
    """The contract every model keeps: ``encode``, ``decode``, ``loss``, ``score``.

    A model has an ``encoder``, a ``decoder`` (each an MLP with a linear path
    beside it), a ``likelihood`` (:mod:`._likelihoods`) and, for a VAE, a
    ``prior`` (:mod:`._priors`). It is built by :func:`build` from
    ``description``, a plain dict, and started from data by
    :meth:`initialize`; training calls :meth:`loss`, ``score_samples``
    calls :meth:`score`.

    Parameters
    ----------
    n_features, n_components : int
    hidden : sequence of int
        Encoder widths; the decoder mirrors them.
    activation : str
    dropout : float
    likelihood : dict
        The description of the likelihood (:func:`~._likelihoods.build_likelihood`).
    input_unit : bool, default=False
        Whether the encoder reads each input feature in its own unit (centred
        and divided by its standard deviation, set by :meth:`initialize`):
        for data in their own units (an array modelled by a Gaussian or the
        squared error), so that training behaves the same whatever the units
        (as factor analysis and PCA do). A table's encoding, probabilities
        and counts are read as they are; models saved before it existed have
        none.
    """

    kind = ""
    #: Encoder outputs per latent dimension (2 for a mean and a log-variance).
    _encoder_outputs = 1

    def __init__(
        self,
        n_features,
        n_components,
        hidden,
        activation,
        dropout,
        likelihood,
        input_unit=False,
    ):
        super().__init__()
        hidden = [int(h) for h in hidden]
        self.description = {
            "kind": self.kind,
            "n_features": int(n_features),
            "n_components": int(n_components),
            "hidden": hidden,
            "activation": activation,
            "dropout": float(dropout),
            "likelihood": likelihood,
        }
        if input_unit:  # absent from the descriptions of older models
            self.description["input_unit"] = True
        self.n_components = int(n_components)
        self.generator = None  # the fit's RNG for training draws (use_generator)
        sizes = [n_features, *hidden, self._encoder_outputs * n_components]
        self.encoder = _Residual(sizes, activation, dropout, input_unit)
        self.decoder = _Residual(
            [n_components, *hidden[::-1], n_features], activation, dropout
        )
        self.likelihood = build_likelihood(likelihood)

    def initialize(self, X, linear=None, seed=0):
        """Start from data: output bias and likelihood from X, and a linear solution.

        Parameters
        ----------
        X : ndarray or scipy.sparse matrix of shape (n_samples, n_features)
            Training rows (encoded, for a table). A sparse X is never densified
            whole: the likelihood reads it a few rows at a time.
        linear : tuple (components, noise_variance) or None
            A linear-Gaussian solution to start at: ``components`` of shape
            (n_components, n_features) (factor analysis or PCA loadings) and
            per-feature ``noise_variance`` (or None). The encoder then starts
            at its posterior (projection) and the decoder at its loadings.
        seed : int
            Seeds the rows of a sparse X that a closed-form start (the
            background density) reads densely.
        """
        X = X if sp.issparse(X) else torch.as_tensor(X, dtype=torch.float64)
        with torch.no_grad():
            bias = self.likelihood.init_output(X).to(torch.float64)
            unit = None
            if self.encoder.unit is not None:
                shift, unit, var = _units(X)
                self.encoder.set_input(shift, unit)
                if hasattr(self.likelihood, "floor_features"):
                    # A constant feature's floor stays relative to the mean
                    # variance: one relative to its floored unit would add 7
                    # nats to every row's score per constant feature (the
                    # border pixels of load_digits).
                    typical = var.mean().item() or 1.0
                    basis = torch.where(var > 0, var, typical)
                    self.likelihood.floor_features(basis, var)
                # The decoder's outputs are in the data's units too: each
                # feature's deviation is their unit until a start sets another.
                self.decoder.scale.copy_(unit)
            if linear is None:
                self.decoder.last.bias.copy_(bias / self.decoder.scale)
                if identical_rows(X):
                    # Identical rows: the decoder starts at them exactly. Its
                    # MLP's random output (2e-4 in their unit, 1.0 when no row
                    # varies) reconstructed rows of 1e-6 two hundred times off.
                    self.decoder.last.weight.zero_()
            else:
                components = torch.as_tensor(linear[0], dtype=torch.float64)
                noise = linear[1]
                scale = unit if noise is None else torch.as_tensor(noise).sqrt()
                self.decoder.start_at(components.T, bias, scale)
                self._start_encoder(_column_means(X), components, noise)
                # A latent dimension the solution leaves out (a zero row) starts
                # unused: its code enters neither decoder path, so its draws add
                # no noise to the hidden units (and, in a VAE, it costs no KL).
                unused = (components == 0).all(dim=1)
                self.decoder.mlp[0].weight[:, unused] = 0.0
        return self

    def given_nll(self, out, x, observed=None):
        """-log p(x | out) that weighs the codes of ``sample(given=...)``.

        The likelihood's own, where it is a density (a VAE's).
        """
        return self.likelihood.nll(out, x, observed)

    def gradient_scale(self):
        """The size of the training loss's gradients for data of unit size: 1.0.

        A loss in nats is unit-free; a squared error in the data's units
        (:class:`Autoencoder`) has gradients of the squared size of the data.
        """
        return 1.0

    def start_outputs(self, index, value):
        """Make the decoder's output bias ``value`` at the outputs ``index`` (arrays)."""
        decoder = self.decoder
        with torch.no_grad():
            index = torch.as_tensor(index, dtype=torch.long)
            value = torch.as_tensor(value).to(decoder.last.bias)
            now = decoder.last.bias[index] + decoder.linear.bias[index]
            decoder.last.bias[index] += value / decoder.scale[index] - now

    def _start_encoder(self, mean, components, noise_variance):
        """The encoder as the linear model's projection of ``x - mean``."""
        projection = torch.linalg.pinv(components.T)  # PCA: components @ (x - mean)
        self.encoder.start_at(projection, -projection @ mean)

    def decode(self, z):
        """The decoder mean E[x | z] of shape (n_samples, n_features)."""
        return self.likelihood.mean(self.decoder(z))

    def draw(self, z, generator):
        """One draw from p(x | z) per code, with the torch ``generator``."""
        return self.likelihood.sample(self.decoder(z), generator)


class Autoencoder(Model):
    """A deterministic autoencoder: x -> z = encoder(x) -> decoder(z).

    ``noise`` is the standard deviation of the Gaussian corruption added to x
    in training (a denoising autoencoder). Its ``likelihood`` is usually the
    squared error, the Gaussian with a fixed variance.
    """

    kind = "autoencoder"

    def __init__(
        self,
        n_features,
        n_components,
        hidden,
        activation,
        dropout,
        likelihood,
        noise=0.0,
        input_unit=False,
    ):
        super().__init__(
            n_features, n_components, hidden, activation, dropout, likelihood, input_unit
        )
        self.description["noise"] = float(noise)
        self.noise = float(noise)

    def encode(self, x):
        """Codes z of shape (n_samples, n_components)."""
        return self.encoder(self.likelihood.encoder_input(x))

    def given_nll(self, out, x, observed=None):
        """The squared error in the input units (a Gaussian of variance 1/2 there).

        The autoencoder's squared error is no density: read as one, its
        variance of 1/2 in the data's own units made ``sample(given=...)``
        ignore the conditions of data in small units and follow those of data
        in large ones exactly.
        """
        unit = self._error_unit()
        if unit is None:
            return self.likelihood.nll(out, x, observed)
        unit = unit.to(out.dtype)
        return self.likelihood.nll(out / unit, x / unit, observed)

    def gradient_scale(self):
        """The median squared input unit for the squared error in data units; else 1.

        Training divides the loss by it for the gradients (:func:`~._training.train`),
        so that they are of about unit size in any units: Adam's float32 averages
        of their squares overflowed for data in units of 1e12 and underflowed
        in units of 1e-11.
        """
        unit = self._error_unit()
        return 1.0 if unit is None else max(float(unit.pow(2).median()), TINY_VARIANCE)

    def _error_unit(self):
        """The input unit where the loss is the squared error in data units, or None."""
        if self.likelihood.name != "squared_error":
            return None
        return self.encoder.unit

    def loss(self, x, eps=None):
        """Per-sample reconstruction loss; ``kl`` is zero."""
        x_in = self.likelihood.encoder_input(x)
        if self.training and self.noise > 0:
            x_in = x_in + self.noise * _randn_like(x_in, self.generator)
        reconstruction = self.likelihood.nll(self.decoder(self.encoder(x_in)), x)
        return Terms(reconstruction, torch.zeros_like(reconstruction))

    def score(self, x, eps=None):
        """Per-sample score: minus the reconstruction loss."""
        return -self.likelihood.nll(self.decoder(self.encode(x)), x)


class VAE(Model):
    """A variational autoencoder: Gaussian posterior q(z|x), a prior, a likelihood.

    The encoder outputs the mean and log-variance of q(z|x); z is drawn with the
    reparameterisation trick; the decoder parameterises p(x|z). With a
    ``background`` description, p(x) mixes in a broad density with weight
    ``BACKGROUND_WEIGHT`` (:class:`Background`).

    Parameters
    ----------
    n_features, n_components, hidden, activation, dropout, likelihood
        As :class:`Model`.
    prior : dict
        The description of the prior (:func:`~._priors.build_prior`).
    background : {"ppca", "ppca_t", "independent"} or None
    """

    kind = "vae"
    _encoder_outputs = 2

    def __init__(
        self,
        n_features,
        n_components,
        hidden,
        activation,
        dropout,
        likelihood,
        prior=None,
        background=None,
        input_unit=False,
    ):
        super().__init__(
            n_features, n_components, hidden, activation, dropout, likelihood, input_unit
        )
        prior = prior or {"name": "normal", "n_components": int(n_components)}
        self.description.update(prior=prior, background=background)
        self.prior = build_prior(prior)
        self.background = None
        if background is not None:
            self.background = Background(background, n_features, n_components, likelihood)
        with torch.no_grad():
            self.encoder.last.bias[n_components:] = _NARROW_LOG_VAR

    def initialize(self, X, linear=None, seed=0):
        super().initialize(X, linear, seed)
        if linear is not None and linear[1] is not None:
            self.likelihood.start_at(torch.as_tensor(linear[1], dtype=torch.float64))
        if self.background is not None:
            X = X if sp.issparse(X) else torch.as_tensor(X, dtype=torch.float64)
            with torch.no_grad():
                self.background.initialize(X, seed)
        return self

    def _start_encoder(self, mean, components, noise_variance):
        """The encoder as factor analysis' exact posterior q(z|x) = N(A(x - mean), S).

        With loadings W (n_features, k) and noise variances psi, S = (I + W^T
        psi^-1 W)^-1 and A = S W^T psi^-1. scikit-learn's factor analysis
        makes W^T psi^-1 W diagonal, so S is diagonal and the start is exact.
        """
        k = self.n_components
        if noise_variance is None:  # a projection for the means, a narrow posterior
            A = torch.linalg.pinv(components.T)
            weight = torch.cat([A, torch.zeros_like(A)])
            bias = torch.cat([-A @ mean, torch.full((k,), _NARROW_LOG_VAR, dtype=A.dtype)])
            self.encoder.start_at(weight, bias)
            return
        psi = torch.as_tensor(noise_variance, dtype=torch.float64)
        W = components.T
        precision = torch.eye(k, dtype=W.dtype) + W.T @ (W / psi[:, None])
        covariance = torch.linalg.inv(precision)
        A = covariance @ (W.T / psi)
        weight = torch.cat([A, torch.zeros_like(A)])
        bias = torch.cat([-A @ mean, covariance.diagonal().log()])
        self.encoder.start_at(weight, bias)

    def posterior(self, x):
        """Mean and log-variance of q(z|x), each of shape (n_samples, n_components).

        The encoder reads the likelihood's ``encoder_input(x)`` (x itself,
        or the scale-free composition of counts).
        """
        mean, log_var = self.encoder(self.likelihood.encoder_input(x)).chunk(2, dim=-1)
        return mean, log_var.clamp(-30.0, 20.0)

    def encode(self, x):
        """The posterior mean, the code of x."""
        return self.posterior(x)[0]

    def _background(self, x):
        # Training fits the VAE's own ELBO: with the background in the training
        # objective, rows the young model explains badly would stop pulling on
        # it (measured: 3 nats/row worse on a curved manifold in 100 epochs).
        if self.background is None or self.training:
            return None
        return math.log(BACKGROUND_WEIGHT) + self.background.log_prob(x)

    def loss(self, x, eps=None):
        """Per-sample negative ELBO terms: reconstruction, KL(q(z|x) || p(z)), background.

        The background term is given in eval mode only (validation and scores).

        ``eps`` (broadcastable to the posterior's shape) fixes the
        reparameterisation draw; by default it is drawn from torch's RNG.
        """
        mean, log_var = self.posterior(x)
        if eps is None:
            eps = _randn_like(mean, self.generator)
        z = mean + eps * (0.5 * log_var).exp()
        reconstruction = self.likelihood.nll(self.decoder(z), x)
        kl = self.prior.kl(mean, log_var, z)
        return Terms(reconstruction, kl, self._background(x))

    def score(self, x, eps, prior=None):
        """Estimate of log p(x) per sample: the IWAE bound, with the background mixed in.

        Parameters
        ----------
        x : tensor of shape (n_samples, n_features)
        eps : tensor of shape (K, n_samples, n_components) or (K, n_components)
            Standard normal draws, each row's own (an estimator's come from the
            row's values) or shared by all rows. With ``K == 1`` the VAE's
            part is the ELBO, exactly minus :meth:`loss`'s terms.
        prior : object with ``log_prob(z)``, optional
            The p(z) of the model scored, in place of the trained prior (an
            estimator's code density, with ``sample_from="posterior"``); with
            ``K == 1`` the ELBO's KL term is then estimated at the one draw.

        Returns
        -------
        score : tensor of shape (n_samples,)
            Exactly 0 for a row the likelihood gives
            probability 1 whatever the code (``likelihood.certain``: counts of
            total 0).
        """
        if eps.shape[0] == 1 and prior is None:
            terms = self.loss(x, eps[0])
            log_p = -(terms.reconstruction + terms.kl)
        else:
            mean, log_var = self.posterior(x)
            # The draws go through the decoder a few at a time, so memory is
            # bounded whatever K (about IMPORTANCE_ELEMENTS numbers per layer).
            width = widest_layer(self.description)
            per_chunk = max(1, IMPORTANCE_ELEMENTS // (x.shape[0] * width))
            log_w = torch.cat(
                [
                    self._log_weights(x, mean, log_var, e, prior)
                    for e in eps.split(per_chunk)
                ]
            )
            log_p = torch.logsumexp(log_w, dim=0) - math.log(eps.shape[0])
        log_p = mix_background(log_p, self._background(x))
        certain = getattr(self.likelihood, "certain", None)
        if certain is not None:
            # p(x | z) = 1 for every z (and p_b(x) = 1): log p(x) is exactly 0,
            # where the estimate of the integral of p(z) / q(z | x) came out a
            # little either side.
            log_p = torch.where(certain(x), torch.zeros_like(log_p), log_p)
        return log_p

    def _log_weights(self, x, mean, log_var, eps, prior=None):
        """log p(x, z) - log q(z | x) at the draws z = mean + eps * std, shape (K, n).

        p(z) is ``prior``, or the trained prior when it is None.
        """
        prior = self.prior if prior is None else prior
        if eps.dim() == 2:  # draws shared by all rows
            eps = eps[:, None, :]
        z = mean + eps * (0.5 * log_var).exp()  # (K, n, d)
        log_px = -self.likelihood.nll(self.decoder(z), x)
        log_qz = -0.5 * (eps.pow(2).sum(-1) + (log_var + _LOG_2PI).sum(-1))
        return log_px + prior.log_prob(z) - log_qz


#: A feature's unit (:func:`_units`) is at least this fraction of the features'
#: median deviation: a constant feature, or one nearly so, is not blown up to
#: many times the others' size. The median, not a mean, so that one column in
#: large units (a price among fractions) does not set the others' floor.
_UNIT_FLOOR = 1e-3


def _units(X):
    """Per-feature means, units and variances of X, as float64 tensors.

    ``X`` is a float64 tensor or a scipy.sparse matrix (:func:`_sparse_moments`:
    centred, never densified nor copied). The unit is the standard
    deviation, at least ``_UNIT_FLOOR`` times the features' median one
    (their mean variance's root where most features are constant, 1.0 where
    all are) and at least ``sqrt(TINY_VARIANCE)``. A constant feature
    (variance at most 1e-20 of the median one: rounding) has the median unit,
    and variance 0.
    """
    if sp.issparse(X):
        mean, var = _sparse_moments(X)
    else:
        mean, var = X.mean(0), X.var(0, correction=0)
    typical = var.median().item()
    if not typical > 0:
        typical = var.mean().item() or 1.0
    var = torch.where(var > 1e-20 * typical, var, 0.0)
    unit = var.clamp_min(max(_UNIT_FLOOR**2 * typical, TINY_VARIANCE))
    # A constant feature has no deviation to read it in: the median one. At
    # the floor, a value it takes in new rows alone would reach weights no
    # training row moved a thousand times enlarged.
    unit = torch.where(var > 0, unit, max(typical, TINY_VARIANCE))
    return mean, unit.sqrt(), var


def identical_rows(X):
    """Whether every row of X (an array, a tensor or a scipy.sparse matrix) is the same."""
    if X.shape[0] == 0:
        return False
    if sp.issparse(X):
        return (X.max(axis=0) != X.min(axis=0)).nnz == 0
    return bool((X == X[:1]).all())


def _column_means(X):
    """Per-feature means of a float64 tensor or a scipy.sparse matrix, as a tensor."""
    if sp.issparse(X):
        return torch.from_numpy(np.asarray(X.mean(axis=0), dtype=np.float64).ravel())
    return X.mean(0)


def mix_background(log_p, background):
    """log((1 - w) p(x) + w p_b(x)) from log p(x) and log(w p_b(x)) (None: log p)."""
    if background is None:
        return log_p
    return torch.logaddexp(log_p + math.log1p(-BACKGROUND_WEIGHT), background)


_MODELS = {"autoencoder": Autoencoder, "vae": VAE}
#: Numbers per layer activation that one chunk of importance draws may take.
IMPORTANCE_ELEMENTS = 2**22


#: Building a module draws torch's default initial weights from the global RNG;
#: builds run one at a time inside a forked RNG, so neither a caller's RNG
#: stream nor a fit in another thread sees them.
_BUILD_LOCK = threading.Lock()


def as_fitted(description, fitted):
    """``description`` as the ``fitted`` description's older kind of model had it.

    Without an input unit where ``fitted`` has none, and with a Gaussian
    background ("ppca") where ``fitted`` has one: models fitted before input
    units (:class:`Model`'s ``input_unit``) or heavy-tailed backgrounds
    existed load, and go on training, as they were.
    """
    if fitted.get("background") == "ppca" and description.get("background") == "ppca_t":
        description = {**description, "background": "ppca"}
    if "input_unit" in fitted:
        return description
    return {k: v for k, v in description.items() if k != "input_unit"}


def build(description, generator=None):
    """The (untrained) model that ``description``, a plain dict, describes.

    Parameters
    ----------
    description : dict
        ``kind`` and the model's constructor arguments.
    generator : torch.Generator or None
        Draws the initial weights; None leaves torch's default draws (for a
        module whose weights are loaded next).
    """
    options = dict(description)
    kind = options.pop("kind", None)
    if kind not in _MODELS:
        raise ValueError(f"Unknown model kind {kind!r}; expected one of {sorted(_MODELS)}.")
    with _BUILD_LOCK, torch.random.fork_rng(devices=[]):
        model = _MODELS[kind](**options)
    if generator is not None:
        with torch.no_grad():
            reset_parameters(model, generator)
    return model


def shell(description):
    """The network ``description`` describes, on the meta device: it allocates nothing.

    For counting or checking its parameters' shapes before (or instead of)
    building it.
    """
    with torch.device("meta"):
        return build(description)


def widest_layer(description):
    """The widest of a network's layers: its features or a hidden layer."""
    return max(description["n_features"], *description["hidden"], 1)


def _randn_like(tensor, generator):
    """Standard normal draws shaped like ``tensor``, from ``generator`` when given."""
    if generator is None:
        return torch.randn_like(tensor)
    return torch.randn(
        tensor.shape, generator=generator, dtype=tensor.dtype, device=tensor.device
    )


class _Legacy(nn.Module):
    """Stands in for skvae 0.1's likelihood classes while one of its pickles loads.

    The estimator's ``__setstate__`` then refuses the pickle with a versioned
    error, instead of unpickling failing on a class that no longer exists.
    """


def __getattr__(name):
    if name in ("_Likelihood", "_MixedLikelihood"):
        return _Legacy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
