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

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from scipy.special import ndtr as scipy_ndtr
from scipy.special import ndtri as scipy_ndtri
from torch import nn
from torch.autograd.function import once_differentiable

_LOG_2PI = math.log(2 * math.pi)
_LOG_PI = math.log(math.pi)
# Smallest mean or probability a starting bias represents: log(1e-4) and
# logit(1e-4) are about -9.2, a start the decoder's gradients can still move.
_MIN_MEAN = 1e-4
#: Quantiles of the training rows' totals that a count likelihood keeps.
_N_QUANTILES = 101
#: Stored values of a sparse X that the start of a likelihood reads at once.
_SPARSE_CHUNK = 2**22


def _floating(X):
    """``X`` as a floating-point tensor (float64 for integer input such as counts).

    A scipy.sparse matrix is returned as it is, for :func:`_moments` to read
    in blocks of rows.
    """
    if sp.issparse(X):
        return X
    X = torch.as_tensor(X)
    return X if X.is_floating_point() else X.to(torch.float64)


def _block_rows(X):
    """Rows of a CSR X per block that hold about ``_SPARSE_CHUNK`` stored values."""
    return max(1, _SPARSE_CHUNK // max(1, X.nnz // max(X.shape[0], 1)))


def _sparse_sums(X):
    """Row totals, column sums and column sums of squares of a scipy.sparse X.

    Read a few million stored values at a time (as float64): no dense copy of
    X, and no copy of its values.

    Returns
    -------
    totals : tensor of shape (n,)
    sums, squares : tensors of shape (d,)
    """
    X = X.tocsr()
    n, d = X.shape
    totals, sums, squares = np.zeros(n), np.zeros(d), np.zeros(d)
    step = _block_rows(X)
    for start in range(0, n, step):
        stop = min(start + step, n)
        lo, hi = X.indptr[start], X.indptr[stop]
        values = X.data[lo:hi].astype(np.float64)
        columns = X.indices[lo:hi]
        rows = np.repeat(np.arange(stop - start), np.diff(X.indptr[start : stop + 1]))
        totals[start:stop] = np.bincount(rows, values, minlength=stop - start)
        sums += np.bincount(columns, values, minlength=d)
        squares += np.bincount(columns, values * values, minlength=d)
    return tuple(torch.from_numpy(a) for a in (totals, sums, squares))


def _sparse_moments(X):
    """Per-feature means and (centred) variances of a scipy.sparse X, as tensors.

    Two passes over blocks of rows (:func:`_block_rows`, duplicates summed,
    in float64): no copy of X, and no ``E[x^2] - E[x]^2`` (as
    :func:`_sparse_sums` gives), which leaves a constant column a variance of
    rounding size and float32 sums of a column far from 0 a wrong one.
    """
    X = X.tocsr()
    n, d = X.shape
    step = _block_rows(X)

    def blocks():
        for start in range(0, n, step):
            block = X[start : start + step]
            if not block.has_canonical_format:
                block = block.copy()
                block.sum_duplicates()
            yield block.indices, block.data.astype(np.float64)

    sums, counts = np.zeros(d), np.zeros(d)
    for columns, values in blocks():
        sums += np.bincount(columns, values, minlength=d)
        counts += np.bincount(columns, minlength=d)
    mean = sums / max(n, 1)
    squares = (n - counts) * mean**2  # the implicit zeros
    for columns, values in blocks():
        squares += np.bincount(columns, (values - mean[columns]) ** 2, minlength=d)
    return torch.from_numpy(mean), torch.from_numpy(squares / max(n, 1))


def _refuse_masked_sparse(X, observed):
    """Raise a ValueError for a scipy.sparse X with an ``observed`` mask."""
    if observed is not None:
        raise ValueError("observed masks apply to dense X only; pass X as a tensor.")


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
        Zero for a feature with no observed entry. A scipy.sparse ``X`` (no
        ``observed``) is read as sums of its stored values and their squares,
        never densified.
    """
    if sp.issparse(X):  # from sums over the stored values: never densified
        _refuse_masked_sparse(X, observed)
        _, first, second = _sparse_sums(X)
        count = max(X.shape[0], 1)
        mean = first / count
        return mean, (second / count - mean.pow(2)).clamp_min(0)
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
    seen : tensor of shape (d,) or None
        How many entries each mean ran over; None without ``observed`` (every
        feature was seen).
    """
    d = values.shape[-1]
    flat = values.reshape(-1, d)
    if observed is None:
        return flat.mean(0), None
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

    def encoder_input(self, x):
        """What the encoder sees of data ``x`` (x itself; see :class:`_Counts`)."""
        return x

    def scored(self, x):
        """The 0/1 mask of the entries of ``x`` that ``nll`` scores, or None for all.

        Entries it leaves out (a table's missing values, see :class:`Blocks`)
        hold placeholders that training never fits.
        """
        return None

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


#: The smallest variance floor, in the data's units squared: near float32's
#: smallest normal number (1.2e-38), so that features of standard deviation
#: 1e-17 keep their own variance (a floor of 1e-30 held a VAE of data in units
#: of 1e-18 at a thousand times their spread).
TINY_VARIANCE = 1e-36


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
        floor = max(self.floor_fraction, TINY_VARIANCE)
        self.register_buffer("floor", torch.full((d,), floor))
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

    def _track(self, target, seen=None):
        """Move the squared scale towards ``target`` where a feature was ``seen``.

        ``seen`` (per feature, None for all) counts the entries behind each
        target. The moving average runs on the excess over the floor, as
        :meth:`_set` would store it: a few operations per training batch.
        """
        with torch.no_grad():
            log = getattr(self, self._buffer)
            floor = self.floor
            excess = torch.lerp(log.exp(), target.to(log) - floor, self.momentum)
            new = torch.maximum(excess, 1e-3 * floor).log_()
            if seen is not None:
                new = torch.where(seen.to(log.device) > 0, new, log)
            log.copy_(new)

    @torch.no_grad()
    def floor_features(self, basis, variance):
        """Floor each feature at ``floor_fraction`` times ``basis`` (per feature).

        The squared scale starts again at ``init_fraction`` times the
        features' ``variance`` (at least 1.001 times the new floor), as
        :meth:`init_output` starts it. For data in their own units (an
        array's features, whose units ``Model.initialize`` sets): a floor
        from the mean variance would hold a feature in units a million times
        smaller than the others' (std 1e-3 beside 1e3) far above its noise.
        """
        floor = self.floor_fraction * torch.as_tensor(basis).to(self.floor)
        self.floor.copy_(floor.clamp_min(TINY_VARIANCE))
        self._set(self.init_fraction * torch.as_tensor(variance))

    @torch.no_grad()
    def init_output(self, X, observed=None):
        """Set the floor and the squared scale from X's variance; return X's mean.

        The floor is ``floor_fraction`` times the mean of the per-feature
        variances (1.0 in place of a zero mean, at least ``TINY_VARIANCE``), and the squared
        scale starts at ``init_fraction`` times each feature's variance.
        """
        mean, var = _moments(_floating(X), observed)
        typical = var.mean().item()
        floor = max(self.floor_fraction * (typical if typical > 0 else 1.0), TINY_VARIANCE)
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
        half_log = 0.5 * (var.log() + _LOG_2PI)
        return _masked_sum(torch.addcmul(half_log, squared, 0.5 / var), observed)

    def mean(self, out):
        return out

    def sample(self, out, generator):
        return out + self.variance().sqrt() * _normal(out, generator)


#: Cells narrower than this (in normal scores) are scored as points: the normal
#: scores have unit variance, so the Gaussian's probability of such a cell is
#: its density times the width to within a few parts in a thousand, while the
#: difference of two close normal CDFs loses its precision in float32.
_NARROW_CELL = 1e-3
#: Standard deviations beyond which a cell's end counts as infinitely far: far
#: enough that no finite cell is clipped onto another bound (scores lie within
#: a few units and the variance floor is about 1e-3), near enough that the
#: squares stay finite in float32.
_FAR = 1e4


class IntervalGaussian(Gaussian):
    """A Gaussian whose entries inside a cell of their feature are interval-censored.

    Discrete values (an integer column's, a heavy value's) are encoded as one
    normal score each, at the middle of their cell: the range of scores that
    decodes back to the value. Scored as points, the per-feature variance
    shrinks to the spread of those few scores (a column of three equally
    likely integers, independent of the rest, sampled the middle one 38-42%
    of the time, not 33%). Here an entry inside a cell scores the probability
    the Gaussian gives its whole cell, so the Gaussian's draws, decoded, give
    each value the probability it was fitted with.

    Parameters
    ----------
    n_features : int
    floor_fraction, init_fraction, momentum : float
        As for :class:`Gaussian`.
    cells : list of (None or [lows, highs]) or None, default=None
        Per feature: None, or the cells' bounds as standard normal
        probabilities (a bound ``p`` is the score ``Phi^-1(p)``), two lists of
        the same length in [0, 1], increasing and disjoint; a first low or
        last high of None (or 0, 1) is unbounded (the end cells hold the
        scores beyond the range, which decode to the end values). None: no
        cells. Probabilities, not scores, so that a saved description
        compares exactly wherever the file is loaded (``Phi^-1`` may differ
        in its last bit between builds). Cells narrower than ``_NARROW_CELL``
        in scores are scored as points.

    Notes
    -----
    An entry ``x`` inside the cell ``(a, b)`` scores
    ``log P(a < x' < b | out) - log P(a < z < b) + log N(x; 0, 1)`` with
    ``x' ~ N(out, v)`` and ``z ~ N(0, 1)``: the likelihood ratio of its cell
    against the standard normal, times the standard normal density at ``x``.
    An independent feature (``out = 0``, ``v = 1``) scores exactly the
    standard normal density, so the change of variables of a table's columns
    (which spreads a cell's probability over the cell) keeps scores densities
    in the original units. In training mode the variance moves towards the
    expected squared residual given the cell (the EM step of a censored
    Gaussian), so its fixed point is the maximum-likelihood variance.
    """

    name = "interval_gaussian"
    _options = Gaussian._options + ("cells",)

    def __init__(
        self, n_features, floor_fraction=1e-3, init_fraction=0.01, momentum=0.1, cells=None
    ):
        super().__init__(n_features, floor_fraction, init_fraction, momentum)
        cells = [None] * self.n_features if cells is None else list(cells)
        if len(cells) != self.n_features:
            raise ValueError(
                f"cells must hold one entry per feature ({self.n_features}); "
                f"got {len(cells)}."
            )
        self.cells = [None if c is None else [list(c[0]), list(c[1])] for c in cells]
        # Checked and laid out in numpy: a shell of the network may be built on
        # the meta device, where a tensor's values cannot be read.
        bounds = []
        for j, cell in enumerate(self.cells):
            if cell is None:
                bounds.append((np.zeros(0), np.zeros(0)))
                continue
            lows, highs = (np.array(v, dtype=np.float64) for v in cell)
            if lows.shape != highs.shape or not lows.size:
                raise ValueError(f"cells of feature {j} need as many lows as highs.")
            if np.isnan(lows[1:]).any() or np.isnan(highs[:-1]).any():
                raise ValueError(
                    f"cells of feature {j}: only the first low and the last high "
                    "may be None (unbounded)."
                )
            lows, highs = np.nan_to_num(lows, nan=0.0), np.nan_to_num(highs, nan=1.0)
            if not (lows < highs).all() or (lows[1:] < highs[:-1]).any():
                raise ValueError(
                    f"each cell of feature {j} needs its low below its high, "
                    "below the next cell's low."
                )
            if lows[0] < 0 or highs[-1] > 1:
                raise ValueError(f"the cells of feature {j} must lie in [0, 1].")
            lows, highs = scipy_ndtri(lows), scipy_ndtri(highs)  # 0 and 1: -inf, inf
            wide = highs - lows >= _NARROW_CELL
            bounds.append((lows[wide], highs[wide]))
        width = max([low.size for low, _ in bounds] + [1])
        low = np.full((self.n_features, width), np.inf)
        high = low.copy()
        for j, (lows, highs) in enumerate(bounds):
            low[j, : lows.size], high[j, : highs.size] = lows, highs
        with np.errstate(divide="ignore", invalid="ignore"):
            log_mass = np.log(scipy_ndtr(high) - scipy_ndtr(low))
        log_mass = np.where(low < high, log_mass, 0.0)
        bounds = torch.tensor(np.stack([low, high]), dtype=torch.float32)
        self.register_buffer("cell_bounds", bounds, persistent=False)  # (2, d, m)
        log_mass = torch.tensor(log_mass, dtype=torch.float32)
        self.register_buffer("cell_log_mass", log_mass, persistent=False)

    def _cells_of(self, x):
        """Each entry's cell bounds (2, n, d), whether it is inside, and its offset.

        The offset holds the terms of a cell entry's negative log-likelihood
        that depend on ``x`` alone, ``log P(a < z < b) - log N(x; 0, 1)``. An
        entry outside every cell gets some cell's bounds, which only its
        (unused) cell term reads.
        """
        cells = self.cell_bounds.to(x)
        flat = x.T.contiguous()  # (d, n)
        k = (torch.searchsorted(cells[0], flat, right=True) - 1).clamp_min_(0)
        bounds = cells.gather(2, k.expand(2, -1, -1))
        inside = (flat >= bounds[0]) & (flat <= bounds[1])
        offset = self.cell_log_mass.to(x).gather(1, k) + 0.5 * (flat.square() + _LOG_2PI)
        return bounds.transpose(1, 2), inside.T, offset.T

    def nll(self, out, x, observed=None):
        bounds, inside, offset = self._cells_of(x)
        if self.training:  # the E step, then the loss at the variance it gives
            with torch.no_grad():
                var = self.variance()
                t, _, ratios = _cell_terms(out, bounds, var)
                moment = (1 + t[0] * ratios[0] - t[1] * ratios[1]).clamp_min_(0)
                moment = torch.where(t[0] == t[1], t[0].square(), moment)  # _FAR away
                squared = torch.where(inside, moment * var, (x - out).square())
            self.update(squared, observed)
        terms = _IntervalTerms.apply(out, x, bounds, inside, offset, self.variance())
        return _masked_sum(terms, observed)


def _cell_terms(out, bounds, var, ratios=True):
    """A cell's bounds ``t`` in standard deviations from ``out``, ``log P``, ``phi(t) / P``.

    ``t`` is clipped to +-``_FAR`` (an infinite bound is as far) and
    ``log P(a < x' < b)`` for ``x' ~ N(out, var)`` is computed stably in
    both tails; the ratios, in logs, are exact far out in either tail (None
    unless ``ratios``: a score without gradient needs none).
    """
    bounds = bounds.reshape(2, *[1] * (out.dim() - 2), *bounds.shape[1:])  # draws
    t = ((bounds - out) / var.sqrt()).clamp_(-_FAR, _FAR)
    flip = t[0] + t[1] > 0  # mostly above the mean: the same mass mirrored below
    logs = _log_ndtr(torch.where(flip, -t.flip(0), t))
    gap = (logs[0] - logs[1]).clamp_max_(-1e-30)
    log_p = logs[1].add_(torch.log(-torch.expm1(gap)))
    if not ratios:
        return t, log_p, None
    # phi / P is at most about |t| for a cell far out, 1 / (its width in sd) for
    # a narrow one; only bounds clipped onto each other, a cell _FAR away,
    # make more, kept finite here.
    phi_p = torch.exp((-0.5 * t.square() - (log_p + 0.5 * _LOG_2PI)).clamp_max_(30.0))
    return t, log_p, phi_p


def _log_ndtr(t):
    """``log Phi(t)``; on the CPU for mps, which has no kernel for it."""
    if t.device.type == "mps":
        return torch.special.log_ndtr(t.cpu()).to(t.device)
    return torch.special.log_ndtr(t)


class _IntervalTerms(torch.autograd.Function):
    """An interval Gaussian's per-entry negative log-likelihoods, differentiable in ``out``.

    Cell entries score ``offset - log P(a < x' < b)`` for ``x' ~ N(out,
    var)``, the others ``-log N(x; out, var)``. With ``alpha, beta`` the
    bounds in standard deviations from ``out`` and ``P`` the cell's
    probability, the gradient of a cell's term is ``-(phi(alpha) -
    phi(beta)) / (P sd)`` (and the E step's expected square ``var (1 + (alpha
    phi(alpha) - beta phi(beta)) / P)``). One function with its own gradient:
    the same expressions in autograd's operations made a table's likelihood
    two to three times as slow.
    """

    @staticmethod
    def forward(ctx, out, x, bounds, inside, offset, var):
        _, log_p, ratios = _cell_terms(out, bounds, var, ctx.needs_input_grad[0])
        residual = x - out
        point = 0.5 * residual.square() / var + 0.5 * (var.log() + _LOG_2PI)
        ctx.save_for_backward(ratios, residual, inside, var)
        return torch.where(inside, offset - log_p, point)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        ratios, residual, inside, var = ctx.saved_tensors
        slope = torch.where(inside, (ratios[0] - ratios[1]) / var.sqrt(), residual / var)
        return -grad * slope, None, None, None, None, None


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


def _widen(likelihood, out):
    """Whether a count likelihood scores in float64 rather than ``out``'s float32.

    A count's log-probability is a small difference of terms of the order of
    ``x log x``, which float32 rounds by tens of nats for counts of millions
    (3.3e7: 35-38 nats from float64's). In eval mode (scores) the terms are
    computed in float64; training keeps float32, whose gradients are exact
    enough. mps has no float64.
    """
    wide = out.dtype == torch.float32 and out.device.type != "mps"
    return wide and not likelihood.training


class _Counts(Likelihood):
    """Counts whose means are the row's total (library size) times a composition.

    The decoder's output ``out`` is a log-composition: with ``l`` the row's
    total count (over its observed features), the mean of feature j is
    ``l * softmax(out)_j``, as in scVI [1]_. The total is observed, not
    modelled: ``nll(out, x)`` is ``-log p(x | z, l)`` with ``l`` set to
    ``x``'s own total (for :class:`Poisson` the multinomial, a proper
    probability of the count vectors of that total; for
    :class:`NegativeBinomial` independent counts whose means add up to ``l``,
    a plug-in likelihood whose vectors of total ``l`` hold less than
    probability 1). The
    encoder sees ``log1p(x * C / l)`` (:meth:`encoder_input`, with ``C`` the
    mean training total), which does not depend on the row's scale, so
    scaled rows get the same code. Without an ``x`` (``mean`` and
    ``sample``), totals come from the training rows' totals: ``mean`` uses
    their mean and ``sample`` draws each row's total from their empirical
    distribution (kept as 101 quantiles, interpolated).

    Parameters
    ----------
    n_features : int

    Attributes
    ----------
    total_quantiles : buffer of shape (101,)
        The 0, 1, ..., 100th percentiles of the training rows' totals (of a
        ``partial_fit`` stream's batches, :meth:`update_totals`).
    mean_total : buffer of shape ()
        The first fit's (or batch's) mean total (1 until ``init_output``):
        the unit of the encoder's input, which training fixes.

    References
    ----------
    .. [1] R. Lopez, J. Regier, M. B. Cole, M. I. Jordan and N. Yosef, "Deep
       generative modeling for single-cell transcriptomics", Nature Methods
       15, 2018.
    """

    support = "counts"

    def __init__(self, n_features):
        super().__init__(n_features)
        self.register_buffer("total_quantiles", torch.ones(_N_QUANTILES))
        self.register_buffer("mean_total", torch.ones(()))

    @staticmethod
    def observed_counts(x, observed=None):
        """``x`` with its unobserved entries set to 0 (they count in no total)."""
        return x if observed is None else x * torch.as_tensor(observed, device=x.device)

    @staticmethod
    def totals(x, observed=None):
        """The rows' totals over their observed features, of shape (n,)."""
        return (x if observed is None else x * observed).sum(-1)

    @torch.no_grad()
    def update_totals(self, totals, weight=0.0):
        """Set ``total_quantiles`` to those of the row ``totals`` (any rows).

        ``totals`` is a tensor of shape (n,), or the rows themselves (a float
        tensor or a scipy.sparse matrix, summed here). With ``weight`` > 0 the
        current quantiles stand for that share of the rows (a ``partial_fit``
        stream's earlier batches: a stream sampled the totals of its first
        batch for good, all 0 after an empty one). ``mean_total``, the unit of
        the encoder's input, is the first fit's.
        """
        if sp.issparse(totals):
            totals = _sparse_sums(totals)[0]
        elif totals.dim() == 2:
            totals = _floating(totals).to(torch.float64).sum(1)
        values = totals.double().cpu().numpy()  # X may be on a GPU
        levels = np.linspace(0, 1, _N_QUANTILES)
        if weight > 0:
            # The mixture's distribution function, weight * F_old + (1 - weight)
            # * F_new, inverted at the levels: F_old runs through the old
            # quantiles at their levels, F_new through the new totals at the
            # middles of their shares, both linear in log(1 + total) between
            # the union of those points. (The old quantiles taken as rows of
            # equal share moved the tails outward at every batch: a stream's
            # 99th percentile reached its largest total. Linear in the totals
            # themselves, the top percent spread evenly up to the largest
            # total seen: after 150 batches of log-normal totals the 99th
            # percentile was 271 for 207, in log(1 + total) 248.)
            old = np.log1p(self.total_quantiles.double().cpu().numpy())
            new = np.log1p(np.sort(values))
            points = np.union1d(old, new)
            below = np.interp(points, old, levels, left=0.0, right=1.0)
            middles = (np.arange(new.size) + 0.5) / new.size
            within = np.interp(points, new, middles, left=0.0, right=1.0)
            mixed = np.maximum.accumulate(weight * below + (1 - weight) * within)
            # the first point at each level of a flat stretch
            mixed, first = np.unique(mixed, return_index=True)
            quantiles = np.expm1(np.interp(levels, mixed, points[first]))
        else:
            quantiles = np.quantile(values, levels)
        self.total_quantiles.copy_(torch.from_numpy(quantiles))

    def certain(self, x):
        """Rows whose probability is 1 whatever the code: those of total 0."""
        return self.totals(x) == 0

    def log_means(self, out, x, observed=None):
        """log(l * rho): the log-means given the rows' totals, shaped like ``out``.

        ``rho`` is the softmax of ``out`` over the observed features (the
        others get a log-mean of about -1e30); a row with total 0 has
        log-means of -inf.
        """
        if observed is not None:
            hidden = torch.as_tensor(observed, device=out.device) == 0
            out = out.masked_fill(hidden.expand(out.shape), -1e30)
        total = self.totals(x, observed).to(out.dtype)
        return torch.log_softmax(out, dim=-1) + total.log().unsqueeze(-1)

    @staticmethod
    def _xlog(x, log_mean):
        """``x * log_mean``, 0 where x is 0 (also where log_mean is -inf)."""
        return torch.where(x > 0, x * log_mean, torch.zeros_like(log_mean))

    def encoder_input(self, x):
        """``log1p(x * C / l)``: the composition, free of the row's scale."""
        total = self.totals(x).clamp_min(1.0).unsqueeze(-1)
        return torch.log1p(x * (self.mean_total.to(x.dtype) / total))

    def mean(self, out):
        """``mean_total * softmax(out)``: the expected counts at the mean total."""
        return self.mean_total.to(out.dtype) * torch.softmax(out, dim=-1)

    def draw_totals(self, shape, generator, dtype, device):
        """Totals drawn from the training totals' empirical distribution."""
        u = torch.rand(shape, generator=generator, dtype=dtype, device=device)
        quantiles = self.total_quantiles.to(device, dtype)
        position = u * (quantiles.shape[0] - 1)
        low = position.floor().long().clamp_max(quantiles.shape[0] - 2)
        fraction = position - low
        return torch.lerp(quantiles[low], quantiles[low + 1], fraction).round()

    def _sample_means(self, out, generator):
        totals = self.draw_totals(out.shape[:-1], generator, out.dtype, out.device)
        return totals.unsqueeze(-1) * torch.softmax(out, dim=-1)

    @torch.no_grad()
    def init_output(self, X, observed=None):
        """Keep the totals' quantiles and mean; return the pooled log-composition.

        The bias is ``log(sum_i x_ij / sum_ij x_ij)``, the features' shares of
        all counts (with ``observed``, of the features' means over their
        observed entries), at least ``log(1e-4 / mean_total)``: an all-zero
        feature starts at a mean of 1e-4 counts at the mean total. ``X`` may
        be a scipy.sparse matrix, read as sums of its stored values.
        """
        if sp.issparse(X):  # sums over the stored values: never densified
            _refuse_masked_sparse(X, observed)
            totals, column_sums, _ = _sparse_sums(X)
        else:
            X = _floating(X).to(torch.float64)
            if observed is not None:
                mask = torch.as_tensor(observed).to(X).expand_as(X)
                X = X * mask
                seen = mask.sum(0)
            totals, column_sums = X.sum(1), X.sum(0)
        if totals.numel() == 0:
            totals = torch.zeros(1, dtype=torch.float64)
        self.update_totals(totals)
        mean_total = totals.mean().item()
        self.mean_total.fill_(mean_total if mean_total > 0 else 1.0)
        if observed is not None:  # each feature's mean over its observed entries
            column_sums = column_sums / torch.as_tensor(seen).clamp_min(1)
        share = column_sums / column_sums.sum().clamp_min(1e-300)
        return share.clamp_min(_MIN_MEAN / max(mean_total, 1.0)).log()


def _float64(tensor):
    """``tensor`` in float64: on the CPU for mps, which has no float64."""
    if tensor.device.type == "mps":
        tensor = tensor.cpu()
    return tensor.double()


def _binomial(count, p, generator):
    """Binomial draws of ``count`` trials at ``p`` (float64 tensors), with ``generator``.

    torch draws them on the generator's device; counts beyond 2**24 and
    their probabilities are exact in float64 before and after.
    """
    device = generator.device
    draws = torch.binomial(count.to(device), p.to(device), generator=generator)
    return draws.to(count.device).clamp(max=count)


class Poisson(_Counts):
    """Poisson counts: the row's total times a composition from the decoder.

    Parameters
    ----------
    n_features : int

    Notes
    -----
    With ``l`` the row's total and ``mu = l * softmax(out)`` (see
    :class:`_Counts`), independent Poisson counts of means ``mu`` conditioned
    on their total ``l`` are multinomial: ``-log p(x | z, l) = sum_j [mu_j -
    x_j log mu_j + lgamma(x_j + 1)] + log Poisson(l; l)``, the Poisson terms
    less the probability of the total, which depends on ``l`` alone (so the
    gradients are the Poisson terms'). Over the count vectors of a total its
    probabilities add up to 1; the Poisson terms alone added up to Poisson(l;
    l), 0.37 at l = 1. ``sample`` draws the counts of each drawn total from
    the multinomial, so each row's counts add up to it. ``init_output``
    starts the composition at the pooled shares of the counts.
    """

    name = "poisson"

    def nll(self, out, x, observed=None):
        if _widen(self, out):
            return self.nll(out.double(), x, observed).to(out.dtype)
        x = self.observed_counts(x.to(out.dtype), observed)
        log_mean = self.log_means(out, x, observed)
        terms = log_mean.exp() - self._xlog(x, log_mean) + torch.lgamma(x + 1)
        # log Poisson(l; l) = l log l - l - lgamma(l + 1), in float64: a small
        # difference of terms of about l log l
        total = _float64(self.totals(x, observed))
        log_total = self._xlog(total, total.log()) - total - torch.lgamma(total + 1)
        return _masked_sum(terms, observed) + log_total.to(out.dtype)

    def sample(self, out, generator):
        """Counts of a drawn total (:meth:`draw_totals`), multinomial over the features.

        Drawn feature by feature, each a binomial of the counts left at its
        share of the probability left.
        """
        totals = self.draw_totals(out.shape[:-1], generator, out.dtype, out.device)
        shares = torch.softmax(_float64(out), dim=-1)
        if shares.device != out.device:  # mps: binomials on the CPU, seeded from it
            seed = torch.randint(2**62, (1,), generator=generator, device=out.device)
            generator = torch.Generator().manual_seed(int(seed.item()))
        counts = torch.empty_like(shares)
        left = _float64(totals)
        rest = torch.ones_like(left)
        for j in range(shares.shape[-1] - 1):
            share = shares[..., j]
            p = torch.where(rest > 0, share / rest.clamp_min(1e-300), 1.0).clamp(0.0, 1.0)
            counts[..., j] = _binomial(left, p, generator)
            left = left - counts[..., j]
            rest = rest - share
        counts[..., -1] = left
        return counts.to(out.device, out.dtype)


class NegativeBinomial(_Counts):
    """Negative binomial counts: total times composition, per-feature inverse dispersion.

    Parameters
    ----------
    n_features : int

    Attributes
    ----------
    log_theta : parameter of shape (n_features,)
        Log inverse dispersion, learned by gradient steps; the variance is
        ``mu + mu^2 / theta``.
    total_quantiles, mean_total : buffers
        As :class:`_Counts`.

    Notes
    -----
    With ``mu = l * softmax(out)`` (see :class:`_Counts`) and ``theta =
    exp(log_theta)``, ``-log p(x | z, l) = sum_j [-lgamma(x_j + theta_j) +
    lgamma(theta_j) + lgamma(x_j + 1) - theta_j log(theta_j / (theta_j +
    mu_j)) - x_j log(mu_j / (theta_j + mu_j))]``, with ``log(theta + mu)``
    computed as ``logaddexp(log_theta, log mu)``. ``init_output`` sets theta
    by the method of moments, ``mean^2 / (var - mean)`` of each feature's
    counts clipped to [1e-2, 1e4] (1e4 without overdispersion; the spread of
    the totals makes it a low start, which training raises; a feature with
    no counts takes the others' median, 1 where none has any), and the
    composition as :class:`_Counts` does.
    """

    name = "negative_binomial"

    def __init__(self, n_features):
        super().__init__(n_features)
        self.log_theta = nn.Parameter(torch.zeros(self.n_features))

    def nll(self, out, x, observed=None):
        if _widen(self, out):
            return self.nll(out.double(), x, observed).to(out.dtype)
        x = self.observed_counts(x.to(out.dtype), observed)
        log_mean = self.log_means(out, x, observed)
        log_theta = self.log_theta.to(out.dtype)
        theta = log_theta.exp()
        log_total = torch.logaddexp(log_theta, log_mean)  # log(theta + mu)
        log_p = (
            torch.lgamma(x + theta)
            - torch.lgamma(theta)
            - torch.lgamma(x + 1)
            + theta * (log_theta - log_total)
            + self._xlog(x, log_mean - log_total)
        )
        return -_masked_sum(log_p, observed)

    def sample(self, out, generator):
        theta = self.log_theta.detach().exp().to(out).expand(out.shape)
        rate = _gamma(theta, generator) * (self._sample_means(out, generator) / theta)
        return torch.poisson(rate, generator=generator)

    @torch.no_grad()
    def init_output(self, X, observed=None):
        bias = super().init_output(X, observed)
        mean, var = _moments(_floating(X), observed)
        excess = (var - mean).clamp_min(1e-8)
        theta = (mean.pow(2) / excess).clamp(1e-2, 1e4)
        # A feature with no counts says nothing of its dispersion: the others'
        # median (1, a geometric's, where no feature has counts). At the floor,
        # a stream whose first batch was empty drew totals of 0 or thousands.
        counted = mean > 0
        typical = theta[counted].median() if counted.any() else theta.new_tensor(1.0)
        theta = torch.where(counted, theta, typical)
        self.log_theta.copy_(theta.log())
        return bias


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
    gates : list of dict or None
        Missing values that another column's state decides (a table's
        structural missingness). Each dict has ``"entries"`` (the columns whose
        terms drop out where the rule decides), ``"missing"`` (the column that
        is 1 where the value is missing: a missing indicator or a missing
        level), and ``"forced"`` and ``"kept"``, each ``[const, [[column,
        coef], ...]]``: the 0/1 expression ``const + sum coef * x[column]`` of
        the gate's states under which the value is always missing (forced) or
        never missing (kept). A row that follows the rule (missing where
        forced, present where kept) has probability 1 for it: the terms of
        ``entries`` drop out, and training learns the missing values from the
        rows that the rule leaves open. A row that breaks the rule keeps its
        terms.

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
    With ``gates``, ``observed`` is further multiplied, on each gate's
    ``entries``, by ``1 - forced * x[missing] - kept * (1 - x[missing])``.
    The column indices are non-persistent buffers: they come from the
    description, not the state dict.
    """

    name = "blocks"

    def __init__(self, blocks, gates=None):
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
        # The blocks' columns side by side: one index_select and a split give
        # every block its columns (None where they already are in block order).
        self._widths = widths
        gathered = torch.tensor(all_columns)
        contiguous = all_columns == list(range(self.n_features))
        self.register_buffer("gather", None if contiguous else gathered, persistent=False)
        self.register_buffer("order", torch.argsort(gathered), persistent=False)
        # x @ indicator_matrix: each column's missing indicator (0 for none).
        pairs = [
            (int(j), i)
            for columns, _, indicator in blocks
            for i, j in zip(columns, [] if indicator is None else indicator)
            if int(j) >= 0
        ]
        matrix = None
        if pairs:
            matrix = torch.zeros(self.n_features, self.n_features)
            matrix[[j for j, _ in pairs], [i for _, i in pairs]] = 1.0
        self.register_buffer("indicator_matrix", matrix, persistent=False)
        self.gates = _checked_gates(gates, self.n_features)
        gated = {j for gate in self.gates for j in gate["entries"]}
        # The blocks that a mask can change without an explicit ``observed``.
        self._masked = [
            has or bool(gated & set(columns))
            for (columns, _, _), has in zip(blocks, self._has_indicator)
        ]
        for key, value in _gate_tensors(self.gates, self.n_features).items():
            self.register_buffer(f"gate_{key}", value, persistent=False)

    def _parts(self):
        """(columns, likelihood, indicator or None) per block, indices as tensors."""
        for i, likelihood in enumerate(self.likelihoods):
            indicator = getattr(self, f"indicator_{i}") if self._has_indicator[i] else None
            yield getattr(self, f"columns_{i}"), likelihood, indicator

    def _assemble(self, parts):
        """Put the blocks' results, concatenated in block order, into column order."""
        joined = torch.cat(parts, dim=-1)
        if self.gather is None:
            return joined
        return joined.index_select(-1, self.order.to(joined.device))

    def _mask(self, x, observed):
        """The full-width mask: ``observed``, the gates and ``1 - indicator``, or None.

        Computed once per call for all the blocks (each reads its columns), in
        a few matrix products: the gates' states and the missing indicators
        are linear in the 0/1 entries of ``x``.
        """
        mask = None
        if observed is not None:
            mask = torch.as_tensor(observed, device=x.device).to(x.dtype)
        if self.gates:
            G = len(self.gates)
            # Columns :G hold forced - kept, G: kept; decided = kept + missing * that.
            # .to(x): X may come on another device than the buffers (a start).
            states = x @ self.gate_states.to(x) + self.gate_states_const.to(x)
            missing = x[..., self.gate_missing.to(x.device)]
            decided = torch.addcmul(states[..., G:], missing, states[..., :G]).clamp_(0, 1)
            left_open = 1 - decided @ self.gate_entries.to(x)  # disjoint entries
            mask = left_open if mask is None else mask * left_open
        if self.indicator_matrix is not None:
            seen = 1 - x @ self.indicator_matrix.to(x)
            mask = seen if mask is None else mask * seen
        return mask

    def scored(self, x):
        return self._mask(x, None)

    def _split(self, t):
        """The blocks' columns of ``t`` (..., n_features), block by block.

        One ``index_select`` into block order, then views: a few operations
        whatever the number of blocks, in the forward pass and the backward.
        """
        if self.gather is not None:
            t = t.index_select(-1, self.gather.to(t.device))
        return t.split(self._widths, dim=-1)

    def _masked_parts(self, x, observed):
        """(x's columns, likelihood, mask or None) per block.

        A block reads its columns of the full-width mask (a mask of one column
        broadcasts) where the mask can change it: where it has missing
        indicators or gated entries, or ``observed`` is given; the others never
        read it.
        """
        mask = self._mask(x, observed)
        masks = [None] * len(self.likelihoods)
        if mask is not None:
            parts = [mask] * len(masks) if mask.shape[-1] == 1 else self._split(mask)
            masks = [
                part if masked or observed is not None else None
                for part, masked in zip(parts, self._masked)
            ]
        return zip(self._split(x), self.likelihoods, masks)

    def nll(self, out, x, observed=None):
        total = 0
        for out_part, (x_part, likelihood, part) in zip(
            self._split(out), self._masked_parts(x, observed)
        ):
            total = total + likelihood.nll(out_part, x_part, part)
        return total

    def mean(self, out):
        parts = zip(self._split(out), self.likelihoods)
        return self._assemble([likelihood.mean(part) for part, likelihood in parts])

    def sample(self, out, generator):
        parts = zip(self._split(out), self.likelihoods)
        return self._assemble(
            [likelihood.sample(part, generator) for part, likelihood in parts]
        )

    @torch.no_grad()
    def init_output(self, X, observed=None):
        X = _floating(X)
        biases = [
            likelihood.init_output(x_part, part).to(X)
            for x_part, likelihood, part in self._masked_parts(X, observed)
        ]
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
            **({"gates": [dict(gate) for gate in self.gates]} if self.gates else {}),
        }

    def extra_repr(self):
        return f"n_features={self.n_features}"


LIKELIHOODS = {
    "gaussian": Gaussian,
    "interval_gaussian": IntervalGaussian,
    "squared_error": SquaredError,
    "bernoulli": Bernoulli,
    "categorical": Categorical,
    "student_t": StudentT,
    "poisson": Poisson,
    "negative_binomial": NegativeBinomial,
}


def _checked_gates(gates, n_features):
    """The gates of :class:`Blocks` as plain lists, or a ValueError."""
    if gates is None:
        return []
    if not isinstance(gates, (list, tuple)):
        raise TypeError(f"gates must be a list of dicts; got {type(gates).__name__}.")

    def column(j):
        if isinstance(j, bool) or not isinstance(j, (int, np.integer)):
            raise TypeError(f"gate columns must be integers; got {j!r}.")
        if not 0 <= j < n_features:
            raise ValueError(f"gate column {j} is outside [0, {n_features}).")
        return int(j)

    def expression(value):
        const, terms = value
        return [
            float(const),
            [[column(j), float(coef)] for j, coef in terms],
        ]

    checked, used = [], set()
    for gate in gates:
        entries = [column(j) for j in gate["entries"]]
        if not entries or used & set(entries) or len(set(entries)) < len(entries):
            raise ValueError("each gate needs its own entries, none shared with another.")
        used.update(entries)
        checked.append(
            {
                "entries": entries,
                "missing": column(gate["missing"]),
                "forced": expression(gate["forced"]),
                "kept": expression(gate["kept"]),
            }
        )
    return checked


def _gate_tensors(gates, n_features):
    """The gates as matrices for :meth:`Blocks._mask`.

    ``states`` (d, 2G) and ``states_const`` (2G,): columns ``:G`` give
    ``forced - kept``, columns ``G:`` give ``kept``, each ``x @ states +
    states_const``; ``missing`` (G,) the columns that are 1 where the value is
    missing; ``entries`` (G, d) each gate's entries.
    """
    G = len(gates)
    expressions = {}
    for key in ("forced", "kept"):
        matrix, const = torch.zeros(n_features, G), torch.zeros(G)
        for k, gate in enumerate(gates):
            const[k] = gate[key][0]
            for j, coef in gate[key][1]:
                matrix[j, k] += coef
        expressions[key] = matrix, const
    (forced, forced_const), (kept, kept_const) = expressions["forced"], expressions["kept"]
    entries = torch.zeros(G, n_features)
    for k, gate in enumerate(gates):
        entries[k, gate["entries"]] = 1.0
    return {
        "states": torch.cat([forced - kept, kept], dim=1),
        "states_const": torch.cat([forced_const - kept_const, kept_const]),
        "missing": torch.tensor([g["missing"] for g in gates], dtype=torch.long),
        "entries": entries,
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
            ],
            options.get("gates"),
        )
    if name not in LIKELIHOODS:
        known = ", ".join(repr(key) for key in [*LIKELIHOODS, Blocks.name])
        raise ValueError(f"Unknown likelihood {name!r}; use one of {known}.")
    return LIKELIHOODS[name](**options)
