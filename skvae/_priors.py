"""Priors p(z) over the latent code: per-sample KL, log-density, draws, and a registry."""

import math

import torch
from torch import nn

_LOG_2PI = math.log(2 * math.pi)

#: Range of a mixture component's log-variance in every computation: components
#: narrower than std ~0.007 or wider than std ~150 make log p(z) overflow or lose
#: all its gradient long before they describe anything useful.
_LOG_VAR_RANGE = (-10.0, 10.0)

#: Standard deviation, per latent dimension, of a mixture's component means at
#: construction. With component variance 1 - 0.5**2 = 0.75 the means spread over
#: 0.58 of a component's standard deviation (0.5 / 0.87): the components overlap
#: into one bump with the standard normal's mean and variance (the marginal is
#: moment-matched exactly), yet each has its own position, so their gradients
#: differ from the first step and they do not move as one.
_INIT_SPREAD = 0.5


def _diagonal_normal_log_prob(z, mean, log_var):
    """log N(z; mean, diag exp(log_var)), summed over the last axis (broadcasting)."""
    return -0.5 * ((z - mean).pow(2) * (-log_var).exp() + log_var + _LOG_2PI).sum(-1)


class Prior(nn.Module):
    """A prior p(z) over ``n_components`` latent dimensions.

    Subclasses implement :meth:`log_prob`, :meth:`sample` and
    :meth:`marginal_variance`, and override :meth:`kl` when the KL divergence
    from a diagonal Gaussian posterior has a closed form. A prior is rebuilt from
    :meth:`describe` alone (:func:`build_prior`); its learned values, if any, are
    in its ``state_dict``.

    Parameters
    ----------
    n_components : int
        Dimension of the latent code z.

    Notes
    -----
    The prior holds an empty, non-persistent buffer that follows ``.to()`` and
    ``.double()``, so even a prior without parameters returns its draws and
    variances on its module's device and in its dtype.
    """

    name = ""

    def __init__(self, n_components):
        super().__init__()
        self.n_components = n_components
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)

    def kl(self, mean, log_var, z):
        """Per-sample KL(q(z|x) || p(z)) for a diagonal Gaussian posterior q.

        This default is the one-sample estimate log q(z|x) - log p(z) at the
        reparameterised draw ``z``, differentiable with respect to ``mean``,
        ``log_var``, ``z`` and the prior's parameters; its expectation over z
        drawn from q is the KL divergence. Priors with a closed form override it.

        Parameters
        ----------
        mean, log_var : tensor of shape (..., n_samples, n_components)
            Mean and log-variance of q(z|x).
        z : tensor of shape (..., n_samples, n_components)
            A draw from q(z|x), broadcastable against ``mean``; a closed form
            ignores it.

        Returns
        -------
        kl : tensor of shape (..., n_samples)
            In nats.
        """
        return _diagonal_normal_log_prob(z, mean, log_var) - self.log_prob(z)

    def log_prob(self, z):
        """log p(z) in nats.

        Parameters
        ----------
        z : tensor of shape (..., n_samples, n_components)

        Returns
        -------
        log_prob : tensor of shape (..., n_samples)
        """
        raise NotImplementedError

    def sample(self, n_samples, generator):
        """Draws from p(z), using only ``generator`` for randomness.

        Parameters
        ----------
        n_samples : int
        generator : torch.Generator
            Its device is where the random numbers are made; the draws are then
            moved to the prior's device. Torch's global RNG is not touched.

        Returns
        -------
        Z : tensor of shape (n_samples, n_components)
            On the prior's device, in its dtype.
        """
        raise NotImplementedError

    def marginal_variance(self):
        """Variance of each latent dimension under p(z), of shape (n_components,)."""
        raise NotImplementedError

    def describe(self):
        """The prior's structure as a plain dict, which :func:`build_prior` rebuilds."""
        return {"name": self.name, "n_components": self.n_components}

    def _randn(self, n_samples, generator):
        """Standard normal noise, (n_samples, n_components), on the prior's device."""
        eps = torch.randn(
            n_samples,
            self.n_components,
            generator=generator,
            device=generator.device,
            dtype=self._anchor.dtype,
        )
        return eps.to(self._anchor.device)


class StandardNormal(Prior):
    """The standard normal prior p(z) = N(0, I).

    Parameters
    ----------
    n_components : int
        Dimension of the latent code z.

    Notes
    -----
    For q = N(mean, diag exp(log_var)) the KL divergence is in closed form,

    .. math::

        KL(q || p) = \\frac{1}{2} \\sum_j (\\mu_j^2 + \\sigma_j^2 - 1 - \\log \\sigma_j^2),

    with :math:`\\mu` = mean and :math:`\\log \\sigma^2` = log_var.
    """

    name = "normal"

    def kl(self, mean, log_var, z=None):
        """Per-sample KL(q(z|x) || N(0, I)) in closed form; ``z`` is ignored.

        Parameters
        ----------
        mean, log_var : tensor of shape (..., n_samples, n_components)
        z : tensor or None
            Ignored.

        Returns
        -------
        kl : tensor of shape (..., n_samples)
        """
        return 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(-1)

    def log_prob(self, z):
        return -0.5 * (z.pow(2) + _LOG_2PI).sum(-1)

    def sample(self, n_samples, generator):
        return self._randn(n_samples, generator)

    def marginal_variance(self):
        return self._anchor.new_ones(self.n_components)


class MixturePrior(Prior):
    """A learned mixture of diagonal Gaussians, p(z) = sum_m w_m N(z; mu_m, diag s_m^2).

    Parameters
    ----------
    n_components : int
        Dimension of the latent code z.
    n_mixture : int, default=10
        Number of mixture components M.

    Attributes
    ----------
    means : nn.Parameter of shape (n_mixture, n_components)
        Component means mu_m.
    log_vars : nn.Parameter of shape (n_mixture, n_components)
        Component log-variances log s_m^2, clamped to ``[-10, 10]`` wherever used.
    logits : nn.Parameter of shape (n_mixture,)
        Mixture weights w = softmax(logits).

    Notes
    -----
    The KL divergence from q(z|x) has no closed form; :meth:`kl` is the one-sample
    estimate log q(z|x) - log p(z) at the reparameterised draw z, unbiased for
    the KL and differentiable in the mixture's parameters, so the prior is
    learned with the rest of the model.

    At construction the means are drawn (from the fit's generator, see
    :meth:`reset_random`) with standard deviation 0.5 per dimension,
    then centred and rescaled so that across components each dimension has mean
    0 and variance exactly 0.25; every component has variance 0.75 and equal
    weight. The marginal p(z) then has mean 0 and variance 1 like N(0, I), so
    training starts like the standard-normal VAE, while the components are apart
    and do not move as one. A single component starts as exactly N(0, I).

    There is no data-dependent start (such as means set to a subset of codes):
    the prior is built with the encoder, whose codes carry no structure before
    training, and the moment-matched start above already begins where the
    standard-normal VAE does.

    References
    ----------
    Dilokthanakul et al., "Deep Unsupervised Clustering with Gaussian Mixture
    Variational Autoencoders", arXiv:1611.02648, 2016.
    """

    name = "mixture"

    def __init__(self, n_components, n_mixture=10):
        super().__init__(n_components)
        self.n_mixture = n_mixture
        log_var = math.log1p(-(_INIT_SPREAD**2)) if n_mixture > 1 else 0.0
        self.means = nn.Parameter(torch.zeros(n_mixture, n_components))
        self.log_vars = nn.Parameter(torch.full((n_mixture, n_components), log_var))
        self.logits = nn.Parameter(torch.zeros(n_mixture))
        self.reset_random(None)

    def reset_random(self, generator):
        """Draw the starting means (see Notes) from ``generator`` (None: torch's RNG)."""
        means = torch.randn(self.means.shape, generator=generator)
        means -= means.mean(0)  # all zero for a single component
        if self.n_mixture > 1:
            means *= _INIT_SPREAD / means.std(0, correction=0)
        with torch.no_grad():
            self.means.copy_(means)

    def _log_vars(self):
        return self.log_vars.clamp(*_LOG_VAR_RANGE)

    def log_prob(self, z):
        per_component = _diagonal_normal_log_prob(
            z.unsqueeze(-2), self.means, self._log_vars()
        )  # (..., n_samples, n_mixture)
        log_weights = torch.log_softmax(self.logits, dim=-1)
        return torch.logsumexp(per_component + log_weights, dim=-1)

    def sample(self, n_samples, generator):
        eps = self._randn(n_samples, generator)
        if n_samples == 0:
            return eps
        weights = torch.softmax(self.logits.detach(), dim=-1).to(generator.device)
        index = torch.multinomial(weights, n_samples, replacement=True, generator=generator)
        index = index.to(self.means.device)
        std = (0.5 * self._log_vars()).exp()
        return self.means[index] + std[index] * eps

    def marginal_variance(self):
        weights = torch.softmax(self.logits, dim=-1)[:, None]
        mean = (weights * self.means).sum(0)
        second_moment = (weights * (self._log_vars().exp() + self.means.pow(2))).sum(0)
        return second_moment - mean.pow(2)

    def describe(self):
        return {**super().describe(), "n_mixture": self.n_mixture}


PRIORS = {"normal": StandardNormal, "mixture": MixturePrior}


def build_prior(description):
    """Build a prior from its plain description (the output of ``Prior.describe``).

    Parameters
    ----------
    description : dict
        ``"name"`` (a key of ``PRIORS``), ``"n_components"`` and the prior's
        options, such as ``"n_mixture"``.

    Returns
    -------
    prior : Prior
        With the described structure and freshly initialised parameters.
    """
    options = dict(description)
    name = options.pop("name", None)
    if name not in PRIORS:
        raise ValueError(f"Unknown prior {name!r}; expected one of {sorted(PRIORS)}.")
    return PRIORS[name](**options)
