"""Observation models p(x | decoder output), one class each, and a registry of them.

Every likelihood takes the decoder's output ``out`` of shape ``(..., n, d)``, one
value per feature (leading dimensions hold importance draws), and data ``x`` of
shape ``(n, d)`` that broadcasts against it. Per-feature dispersions (variances,
scales, degrees of freedom) belong to the likelihood, as buffers or parameters,
never to the decoder. ``observed``, where given, is a 0/1 float tensor
broadcastable to ``x``: entries with 0 add nothing to the negative log-likelihood
and are left out of every closed-form statistic. Unobserved entries of ``x`` must
still hold finite values (0, say), since they are multiplied by 0.

A likelihood is rebuilt from its plain description alone
(``build_likelihood(likelihood.describe())``); ``init_output`` then sets its
data-dependent starting values and returns the decoder's output bias.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

_LOG_2PI = math.log(2 * math.pi)
_LOG_PI = math.log(math.pi)
# Smallest mean or probability a starting bias represents: log(1e-4) and
# logit(1e-4) are about -9.2, a start the decoder's gradients can still move.
_MIN_MEAN = 1e-4


def _floating(X):
    """``X`` as a floating-point tensor (float64 for integer input such as counts)."""
    X = torch.as_tensor(X)
    return X if X.is_floating_point() else X.to(torch.float64)


def _masked_sum(terms, observed):
    """Sum per-entry terms over the last axis, dropping entries where ``observed`` is 0.

    Parameters
    ----------
    terms : tensor of shape (..., n, d)
    observed : tensor broadcastable to (n, d), or None

    Returns
    -------
    total : tensor of shape (..., n)
    """
    if observed is not None:
        terms = terms * observed
    return terms.sum(-1)


def _moments(X, observed=None):
    """Per-feature mean and (biased) variance of ``X`` over its observed entries.

    Parameters
    ----------
    X : tensor of shape (n, d)
    observed : tensor broadcastable to (n, d), or None

    Returns
    -------
    mean, var : tensors of shape (d,)
        Zero for a feature with no observed entry.
    """
    if observed is None:
        weight = torch.ones_like(X)
    else:
        weight = torch.as_tensor(observed, device=X.device).to(X.dtype).expand_as(X)
    count = weight.sum(0).clamp_min(1)
    X = torch.where(weight > 0, X, torch.zeros_like(X))
    mean = (weight * X).sum(0) / count
    var = (weight * (X - mean).pow(2)).sum(0) / count
    return mean, var


def _batch_mean(values, observed):
    """Per-feature mean of ``values`` (..., n, d) over observed entries and leading axes.

    Returns
    -------
    mean : tensor of shape (d,)
    seen : tensor of shape (d,)
        How many entries each mean ran over.
    """
    d = values.shape[-1]
    flat = values.reshape(-1, d)
    if observed is None:
        seen = torch.full((d,), flat.shape[0], dtype=values.dtype, device=values.device)
        return flat.mean(0), seen
    weight = observed.to(values.dtype).expand_as(values).reshape(-1, d)
    seen = weight.sum(0)
    return (flat * weight).sum(0) / seen.clamp_min(1), seen


def _normal(out, generator):
    """Standard normal draws shaped like ``out``."""
    return torch.randn(out.shape, generator=generator, dtype=out.dtype, device=out.device)


def _gamma(shape, generator):
    """Gamma(shape, rate=1) draws, one per entry of ``shape``."""
    return torch._standard_gamma(shape.contiguous(), generator=generator)


class Likelihood(nn.Module):
    """An observation model p(x | out) with one decoder output per feature.

    Subclasses set ``name`` (their key in ``LIKELIHOODS``), ``support`` and
    ``_options`` (the constructor's keyword arguments, which ``describe``
    returns), and implement ``nll``, ``mean``, ``sample`` and, where the output
    is not the mean itself, ``init_output``.

    Parameters
    ----------
    n_features : int
        Number of features (decoder outputs) this likelihood covers.

    Attributes
    ----------
    name : str
        Key in ``LIKELIHOODS``.
    support : {None, "unit_interval", "counts"}
        The values x may take: any real (None), [0, 1], or non-negative integers.
    """

    name = ""
    support = None
    _options = ()

    def __init__(self, n_features):
        super().__init__()
        self.n_features = int(n_features)

    def nll(self, out, x, observed=None):
        """Per-sample negative log-likelihood in nats, summed over features.

        Parameters
        ----------
        out : tensor of shape (..., n, d)
            Decoder output.
        x : tensor of shape (n, d)
            Data; broadcasts against ``out``.
        observed : tensor broadcastable to (n, d), or None
            0/1 mask; entries with 0 add nothing.

        Returns
        -------
        nll : tensor of shape (..., n)
        """
        raise NotImplementedError

    def mean(self, out):
        """The expected value E[x | out], shaped like ``out``."""
        raise NotImplementedError

    def sample(self, out, generator):
        """A draw x ~ p(x | out), shaped like ``out``.

        Parameters
        ----------
        out : tensor of shape (..., n, d)
        generator : torch.Generator
            The only source of randomness (on ``out``'s device); torch's global
            RNG is left alone.
        """
        raise NotImplementedError

    @torch.no_grad()
    def init_output(self, X, observed=None):
        """Set data-dependent starting values; return the decoder's output bias.

        Parameters
        ----------
        X : tensor of shape (n, d)
        observed : tensor broadcastable to (n, d), or None
            Entries with 0 are left out of the statistics.

        Returns
        -------
        bias : tensor of shape (d,)
            The output whose ``mean`` is (about) the data's per-feature mean.
        """
        return _moments(_floating(X), observed)[0]

    def describe(self):
        """The plain description from which ``build_likelihood`` rebuilds this structure.

        Returns
        -------
        description : dict
            ``{"name": ..., "n_features": ..., **options}``, with plain values.
        """
        options = {key: getattr(self, key) for key in self._options}
        return {"name": self.name, "n_features": self.n_features, **options}

    def extra_repr(self):
        items = list(self.describe().items())[1:]
        return ", ".join(f"{key}={value}" for key, value in items)


class _TrackedScale(Likelihood):
    """A per-feature squared scale ``exp(log) + floor``, set in closed form.

    The log of the excess over the floor is the buffer named by ``_buffer``.
    Gradient steps move a log-scale by about one learning rate per step and so
    take thousands of steps to shrink it; instead each training batch moves it
    by a moving average (``momentum``) towards its maximum-likelihood value
    given the decoder, computed by the subclass's ``update``.
    """

    _buffer = ""
    _options = ("floor_fraction", "init_fraction", "momentum")

    def __init__(self, n_features, floor_fraction, init_fraction, momentum):
        super().__init__(n_features)
        self.floor_fraction = float(floor_fraction)
        self.init_fraction = float(init_fraction)
        self.momentum = float(momentum)
        d = self.n_features
        # Before init_output: the values init_output gives unit-variance data.
        self.register_buffer("floor", torch.full((d,), max(self.floor_fraction, 1e-30)))
        self.register_buffer(self._buffer, torch.zeros(d))
        self._set(torch.full((d,), self.init_fraction))

    def _scale(self):
        return getattr(self, self._buffer).exp() + self.floor

    def _set(self, value):
        """Make the squared scale ``value`` (at least 1.001 times the floor)."""
        floor = self.floor
        excess = (value.to(floor) - floor).clamp_min(1e-3 * floor)
        getattr(self, self._buffer).copy_(excess.log())

    @torch.no_grad()
    def start_at(self, value):
        """Start the squared scale at ``value`` (per feature; at least 1.001 x floor)."""
        self._set(torch.as_tensor(value))

    def _track(self, target, seen):
        """Move the squared scale towards ``target`` where a feature was ``seen``."""
        with torch.no_grad():
            current = self._scale()
            target = torch.where(seen.to(current.device) > 0, target.to(current), current)
            self._set(torch.lerp(current, target, self.momentum))

    @torch.no_grad()
    def init_output(self, X, observed=None):
        """Set the floor and the squared scale from X's variance; return X's mean.

        The floor is ``floor_fraction`` times the mean of the per-feature
        variances (1.0 in place of a zero mean, at least 1e-30), and the squared
        scale starts at ``init_fraction`` times each feature's variance.
        """
        mean, var = _moments(_floating(X), observed)
        typical = var.mean().item()
        floor = max(self.floor_fraction * (typical if typical > 0 else 1.0), 1e-30)
        self.floor.fill_(floor)
        self._set(self.init_fraction * var)
        return mean


class Gaussian(_TrackedScale):
    """Gaussian observations with the decoder output as mean and a per-feature variance.

    Parameters
    ----------
    n_features : int
    floor_fraction : float, default=1e-3
        The variance floor, as a fraction of the data's mean feature variance.
    init_fraction : float, default=0.01
        The starting variance, as a fraction of each feature's variance.
    momentum : float, default=0.1
        Weight of each training batch in the moving average of the variance.

    Attributes
    ----------
    log_var : buffer of shape (n_features,)
        Log of the variance's excess over the floor.
    floor : buffer of shape (n_features,)

    Notes
    -----
    ``-log p(x | out) = sum_j [(x_j - out_j)^2 / v_j + log(2 pi v_j)] / 2`` with
    ``v = exp(log_var) + floor``. The variance is not trained by gradient
    steps: in training mode each ``nll`` call first moves it towards the batch's
    mean squared residual per feature (its maximum-likelihood value given the
    decoder), so the decoder's gradient is that of the profile likelihood.
    """

    name = "gaussian"
    _buffer = "log_var"

    def __init__(self, n_features, floor_fraction=1e-3, init_fraction=0.01, momentum=0.1):
        super().__init__(n_features, floor_fraction, init_fraction, momentum)

    def variance(self):
        """Per-feature variance ``exp(log_var) + floor``, of shape (n_features,)."""
        return self._scale()

    def update(self, squared, observed=None):
        """Move the variance towards the mean of ``squared`` residuals per feature.

        Parameters
        ----------
        squared : tensor of shape (..., n, d)
            Squared residuals; the mean runs over observed entries and all
            leading axes. A feature with no observed entry keeps its variance.
        observed : tensor broadcastable to (n, d), or None
        """
        with torch.no_grad():
            self._track(*_batch_mean(squared.detach(), observed))

    def nll(self, out, x, observed=None):
        squared = (x - out).pow(2)
        if self.training:
            self.update(squared, observed)
        var = self.variance()
        return _masked_sum(0.5 * (squared / var + (var.log() + _LOG_2PI)), observed)

    def mean(self, out):
        return out

    def sample(self, out, generator):
        return out + self.variance().sqrt() * _normal(out, generator)


class SquaredError(Likelihood):
    """Squared error: the Gaussian with variance 1/2 and no normalising constant.

    Parameters
    ----------
    n_features : int

    Notes
    -----
    ``nll(out, x) = sum_j (out_j - x_j)^2``, the autoencoder's reconstruction
    loss; its draws are ``out + N(0, 1/2)``.
    """

    name = "squared_error"

    def nll(self, out, x, observed=None):
        return _masked_sum((out - x).pow(2), observed)

    def mean(self, out):
        return out

    def sample(self, out, generator):
        return out + math.sqrt(0.5) * _normal(out, generator)


class Bernoulli(Likelihood):
    """Independent Bernoulli observations (or values in [0, 1]) with logits as output.

    Parameters
    ----------
    n_features : int

    Notes
    -----
    ``nll = -sum_j [x_j log p_j + (1 - x_j) log(1 - p_j)]`` with
    ``p = sigmoid(out)``: binary cross-entropy, defined for any x in [0, 1].
    """

    name = "bernoulli"
    support = "unit_interval"

    def nll(self, out, x, observed=None):
        out, x = torch.broadcast_tensors(out, x.to(out.dtype))
        terms = F.binary_cross_entropy_with_logits(out, x, reduction="none")
        return _masked_sum(terms, observed)

    def mean(self, out):
        return torch.sigmoid(out)

    def sample(self, out, generator):
        return torch.bernoulli(torch.sigmoid(out), generator=generator)

    @torch.no_grad()
    def init_output(self, X, observed=None):
        """Logits of the features' means, clamped to [1e-4, 1 - 1e-4]."""
        mean = _moments(_floating(X), observed)[0]
        return torch.logit(mean.clamp(_MIN_MEAN, 1 - _MIN_MEAN))


class Categorical(Likelihood):
    """One categorical variable whose ``n_features`` levels are one-hot columns.

    Parameters
    ----------
    n_features : int
        Number of levels.

    Notes
    -----
    ``nll = -sum_j observed_j x_j log softmax(out)_j``. An all-zero row (an
    unknown level) contributes 0. ``observed`` multiplies each entry's term,
    like every other likelihood's, so a row mask of shape (n, 1) drops the whole
    row, and with one-hot rows an (n, d) mask drops a row exactly where the
    entry of its level is 0.
    """

    name = "categorical"
    support = "unit_interval"

    def nll(self, out, x, observed=None):
        return -_masked_sum(x * torch.log_softmax(out, dim=-1), observed)

    def mean(self, out):
        return torch.softmax(out, dim=-1)

    def sample(self, out, generator):
        probs = torch.softmax(out, dim=-1).reshape(-1, out.shape[-1])
        levels = torch.multinomial(probs, 1, generator=generator)
        one_hot = torch.zeros_like(probs).scatter_(1, levels, 1.0)
        return one_hot.reshape(out.shape)

    @torch.no_grad()
    def init_output(self, X, observed=None):
        """Log-frequencies of the levels (at least log 1e-4)."""
        frequency = _moments(_floating(X), observed)[0]
        return frequency.clamp_min(_MIN_MEAN).log()


class StudentT(_TrackedScale):
    """Student-t observations: location from the decoder, per-feature scale and df.

    Heavy tails make the likelihood, and scores computed from it, robust to
    outlying entries.

    Parameters
    ----------
    n_features : int
    df : float, default=5.0
        Starting degrees of freedom of every feature.
    floor_fraction : float, default=1e-3
        The floor of the squared scale, as a fraction of the data's mean
        feature variance.
    init_fraction : float, default=0.01
        The starting squared scale, as a fraction of each feature's variance.
    momentum : float, default=0.1
        Weight of each training batch in the moving average of the scale.

    Attributes
    ----------
    log_scale2 : buffer of shape (n_features,)
        Log of the squared scale's excess over the floor.
    floor : buffer of shape (n_features,)
    log_df : parameter of shape (n_features,)
        Log degrees of freedom, learned by gradient steps.

    Notes
    -----
    With ``nu = exp(log_df)``, ``s2 = exp(log_scale2) + floor`` and ``r = x - out``,
    ``-log p = -lgamma((nu + 1) / 2) + lgamma(nu / 2) + log(nu pi s2) / 2
    + (nu + 1) / 2 log(1 + r^2 / (nu s2))``. In training mode each ``nll`` call
    first moves ``s2`` towards the EM fixed point of the t-distribution, the
    mean of ``w r^2`` with weights ``w = (nu + 1) / (nu + r^2 / s2)``. The mean
    of x is ``out`` where it exists, for ``nu > 1``.
    """

    name = "student_t"
    _buffer = "log_scale2"
    _options = ("df", *_TrackedScale._options)

    def __init__(
        self, n_features, df=5.0, floor_fraction=1e-3, init_fraction=0.01, momentum=0.1
    ):
        super().__init__(n_features, floor_fraction, init_fraction, momentum)
        self.df = float(df)
        self.log_df = nn.Parameter(torch.full((self.n_features,), math.log(self.df)))

    def scale2(self):
        """Per-feature squared scale ``exp(log_scale2) + floor``."""
        return self._scale()

    def degrees_of_freedom(self):
        """Per-feature degrees of freedom ``exp(log_df)``."""
        return self.log_df.exp()

    def update(self, squared, observed=None):
        """Move the squared scale one damped EM step towards its ML value.

        Parameters
        ----------
        squared : tensor of shape (..., n, d)
            Squared residuals.
        observed : tensor broadcastable to (n, d), or None
        """
        with torch.no_grad():
            squared = squared.detach()
            nu = self.degrees_of_freedom().to(squared)
            weight = (nu + 1) / (nu + squared / self.scale2().to(squared))
            self._track(*_batch_mean(weight * squared, observed))

    def nll(self, out, x, observed=None):
        squared = (x - out).pow(2)
        if self.training:
            self.update(squared, observed)
        nu, s2 = self.degrees_of_freedom(), self.scale2()
        half = 0.5 * (nu + 1)
        log_norm = 0.5 * (_LOG_PI + (nu * s2).log())
        const = torch.lgamma(0.5 * nu) - torch.lgamma(half) + log_norm
        terms = const + half * torch.log1p(squared / (nu * s2))
        return _masked_sum(terms, observed)

    def mean(self, out):
        return out

    def sample(self, out, generator):
        nu = self.degrees_of_freedom().detach().to(out).expand(out.shape)
        # chi2(nu) / nu is Gamma(nu / 2, rate nu / 2).
        precision = _gamma(0.5 * nu, generator) / (0.5 * nu)
        precision = precision.clamp_min(torch.finfo(out.dtype).tiny)
        t = _normal(out, generator) / precision.sqrt()
        return out + self.scale2().to(out).sqrt() * t


class Poisson(Likelihood):
    """Poisson counts with the log rate as output.

    Parameters
    ----------
    n_features : int

    Notes
    -----
    ``nll = sum_j [exp(out_j) - x_j out_j + lgamma(x_j + 1)]``. The starting
    bias is the log of each feature's mean, at least log 1e-4, so that an
    all-zero feature starts at a small rate its gradients can still move.
    """

    name = "poisson"
    support = "counts"

    def nll(self, out, x, observed=None):
        x = x.to(out.dtype)
        return _masked_sum(out.exp() - x * out + torch.lgamma(x + 1), observed)

    def mean(self, out):
        return out.exp()

    def sample(self, out, generator):
        return torch.poisson(out.exp(), generator=generator)

    @torch.no_grad()
    def init_output(self, X, observed=None):
        """Log of the features' means (at least log 1e-4)."""
        return _moments(_floating(X), observed)[0].clamp_min(_MIN_MEAN).log()


class NegativeBinomial(Likelihood):
    """Negative binomial counts: log mean as output, per-feature inverse dispersion.

    Parameters
    ----------
    n_features : int

    Attributes
    ----------
    log_theta : parameter of shape (n_features,)
        Log inverse dispersion, learned by gradient steps; the variance is
        ``mu + mu^2 / theta``.

    Notes
    -----
    With ``mu = exp(out)`` and ``theta = exp(log_theta)``, ``-log p = -lgamma(x +
    theta) + lgamma(theta) + lgamma(x + 1) - theta log(theta / (theta + mu))
    - x log(mu / (theta + mu))``, with ``log(theta + mu)`` computed as
    ``logaddexp(log_theta, out)``. ``init_output`` sets theta by the method of
    moments, ``mean^2 / (var - mean)`` clipped to [1e-2, 1e4] (1e4 for data
    without overdispersion), and the bias to the log of the mean (at least
    log 1e-4).
    """

    name = "negative_binomial"
    support = "counts"

    def __init__(self, n_features):
        super().__init__(n_features)
        self.log_theta = nn.Parameter(torch.zeros(self.n_features))

    def nll(self, out, x, observed=None):
        x = x.to(out.dtype)
        log_theta = self.log_theta.to(out.dtype)
        theta = log_theta.exp()
        log_total = torch.logaddexp(log_theta, out)  # log(theta + mu)
        log_p = (
            torch.lgamma(x + theta)
            - torch.lgamma(theta)
            - torch.lgamma(x + 1)
            + theta * (log_theta - log_total)
            + x * (out - log_total)
        )
        return -_masked_sum(log_p, observed)

    def mean(self, out):
        return out.exp()

    def sample(self, out, generator):
        theta = self.log_theta.detach().exp().to(out).expand(out.shape)
        rate = _gamma(theta, generator) * (out.exp() / theta)
        return torch.poisson(rate, generator=generator)

    @torch.no_grad()
    def init_output(self, X, observed=None):
        mean, var = _moments(_floating(X), observed)
        excess = (var - mean).clamp_min(1e-8)
        theta = (mean.pow(2) / excess).clamp(1e-2, 1e4)
        self.log_theta.copy_(theta.log())
        return mean.clamp_min(_MIN_MEAN).log()


class Blocks(Likelihood):
    """The likelihood of a mixed-type table: a sum of likelihoods over column blocks.

    Parameters
    ----------
    blocks : list of (columns, likelihood, indicator)
        ``columns`` lists the encoded column indices of a block (together the
        blocks' columns are each index of ``range(n_features)`` once);
        ``likelihood`` is a :class:`Likelihood` over ``len(columns)`` features;
        ``indicator`` is None or, for each column, the index of the column
        holding its 0/1 missing indicator (-1 for none). Where the indicator is
        1 the value is missing and its term drops out.

    Attributes
    ----------
    likelihoods : nn.ModuleList
        The blocks' likelihoods.
    n_features : int
        The table's encoded width.

    Notes
    -----
    ``nll(out, x) = sum_b nll_b(out[..., columns_b], x[..., columns_b], observed_b)``
    with ``observed_b = observed[..., columns_b] * (1 - x[..., indicator_b])``.
    ``mean``, ``sample`` and ``init_output`` put each block's result in its
    columns; draws of a value and of its missing indicator are independent.
    The column indices are non-persistent buffers: they come from the
    description, not the state dict.
    """

    name = "blocks"

    def __init__(self, blocks):
        blocks = [(list(map(int, c)), lik, ind) for c, lik, ind in blocks]
        widths = [len(columns) for columns, _, _ in blocks]
        super().__init__(sum(widths))
        if not blocks:
            raise ValueError("Blocks needs at least one (columns, likelihood, indicator).")
        all_columns = [i for columns, _, _ in blocks for i in columns]
        if sorted(all_columns) != list(range(self.n_features)):
            raise ValueError(
                "The blocks' columns must cover range(n_features) with each index once; "
                f"got {all_columns}."
            )
        self.likelihoods = nn.ModuleList()
        self._has_indicator = []
        for i, (columns, likelihood, indicator) in enumerate(blocks):
            if not isinstance(likelihood, Likelihood):
                raise TypeError(f"Block {i}: expected a Likelihood, got {likelihood!r}.")
            if likelihood.n_features != len(columns):
                raise ValueError(
                    f"Block {i} has {len(columns)} columns but its {likelihood.name} "
                    f"likelihood has n_features={likelihood.n_features}."
                )
            self._has_indicator.append(indicator is not None)
            if indicator is None:
                indicator = [-1] * len(columns)
            indicator = [int(j) for j in indicator]
            if len(indicator) != len(columns) or not all(
                -1 <= j < self.n_features for j in indicator
            ):
                raise ValueError(
                    f"Block {i}: indicator must hold one index in [-1, {self.n_features}) "
                    f"per column; got {indicator}."
                )
            self.likelihoods.append(likelihood)
            for key, value in (("columns", columns), ("indicator", indicator)):
                buffer = torch.tensor(value, dtype=torch.long)
                self.register_buffer(f"{key}_{i}", buffer, persistent=False)
        order = torch.argsort(torch.tensor(all_columns))
        self.register_buffer("order", order, persistent=False)

    def _parts(self):
        """(columns, likelihood, indicator or None) per block, indices as tensors."""
        for i, likelihood in enumerate(self.likelihoods):
            indicator = getattr(self, f"indicator_{i}") if self._has_indicator[i] else None
            yield getattr(self, f"columns_{i}"), likelihood, indicator

    def _assemble(self, parts):
        """Put the blocks' results, concatenated in block order, into column order."""
        joined = torch.cat(parts, dim=-1)
        return joined.index_select(-1, self.order.to(joined.device))

    @staticmethod
    def _observed(x, observed, columns, indicator):
        """The block's mask: ``observed`` on its columns times 1 - its indicators."""
        mask = None
        if observed is not None:
            observed = torch.as_tensor(observed, device=x.device)
            shape = torch.broadcast_shapes(observed.shape, x.shape)
            mask = observed.expand(shape)[..., columns]
        if indicator is not None:
            missing = x[..., indicator.clamp_min(0)]
            seen = torch.where(indicator >= 0, 1 - missing, torch.ones_like(missing))
            mask = seen if mask is None else mask * seen
        return mask

    def nll(self, out, x, observed=None):
        total = 0
        for columns, likelihood, indicator in self._parts():
            mask = self._observed(x, observed, columns, indicator)
            total = total + likelihood.nll(out[..., columns], x[..., columns], mask)
        return total

    def mean(self, out):
        return self._assemble(
            [likelihood.mean(out[..., columns]) for columns, likelihood, _ in self._parts()]
        )

    def sample(self, out, generator):
        return self._assemble(
            [
                likelihood.sample(out[..., columns], generator)
                for columns, likelihood, _ in self._parts()
            ]
        )

    @torch.no_grad()
    def init_output(self, X, observed=None):
        X = _floating(X)
        biases = []
        for columns, likelihood, indicator in self._parts():
            columns = columns.to(X.device)
            indicator = None if indicator is None else indicator.to(X.device)
            mask = self._observed(X, observed, columns, indicator)
            biases.append(likelihood.init_output(X[..., columns], mask).to(X))
        return self._assemble(biases)

    def describe(self):
        return {
            "name": self.name,
            "blocks": [
                {
                    "columns": columns.tolist(),
                    "likelihood": likelihood.describe(),
                    "indicator": None if indicator is None else indicator.tolist(),
                }
                for columns, likelihood, indicator in self._parts()
            ],
        }

    def extra_repr(self):
        return f"n_features={self.n_features}"


LIKELIHOODS = {
    "gaussian": Gaussian,
    "squared_error": SquaredError,
    "bernoulli": Bernoulli,
    "categorical": Categorical,
    "student_t": StudentT,
    "poisson": Poisson,
    "negative_binomial": NegativeBinomial,
}


def build_likelihood(description):
    """Rebuild a likelihood (or a :class:`Blocks` of them) from its ``describe()``.

    Parameters
    ----------
    description : dict
        ``{"name": ..., **constructor arguments}``, or ``{"name": "blocks",
        "blocks": [{"columns", "likelihood", "indicator"}, ...]}``.

    Returns
    -------
    likelihood : Likelihood
        The same structure, at its default starting values.
    """
    options = dict(description)
    name = options.pop("name", None)
    if name == Blocks.name:
        return Blocks(
            [
                (b["columns"], build_likelihood(b["likelihood"]), b.get("indicator"))
                for b in options["blocks"]
            ]
        )
    if name not in LIKELIHOODS:
        known = ", ".join(repr(key) for key in [*LIKELIHOODS, Blocks.name])
        raise ValueError(f"Unknown likelihood {name!r}; use one of {known}.")
    return LIKELIHOODS[name](**options)
