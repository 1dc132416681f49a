"""Conditional draws: encoded conditions, and codes drawn given some of a row's entries.

Two layers, one job: :func:`conditions` turns a user's ``given`` (a dict, or a
DataFrame of conditions) into encoded rows and a 0/1 mask of the entries they
fix; the torch functions then draw codes from the posterior p(z | x_given) of
a trained model by self-normalised importance resampling and return rows drawn
from (or expected under) p(x | z). Nothing here sees an estimator: the callers
pass the module, the code density p(z) and arrays.

For a row with given entries x_g the target is ``p(z | x_g) ∝ p(x_g | z) p(z)``.
Candidates come from a defensive mixture [1]_ of the encoder's proposal,
``q(z | x~)`` where ``x~`` is the partial row with its free entries filled in,
and of p(z) itself, so that a poor encoder proposal (a model never trained on
partial rows) cannot leave a row without good candidates. Their weights are
``p(x_g | z) p(z) / q_mix(z)``, with p(x_g | z) the likelihood with the free
entries masked out, as the missing-data VAEs do [2]_.

References
----------
.. [1] T. Hesterberg, "Weighted average importance sampling and defensive
   mixture distributions", Technometrics 37(2), 1995.
.. [2] P.-A. Mattei and J. Frellsen, "MIWAE: Deep generative modelling and
   imputation of incomplete data sets", ICML 2019.
"""

import math
import numbers

import numpy as np
import torch

from ._networks import IMPORTANCE_ELEMENTS, widest_layer
from ._torch import batched

_LOG_2PI = math.log(2 * math.pi)
#: Share of the candidates drawn from p(z) rather than from the encoder.
DEFENSIVE_WEIGHT = 0.2
#: Rounds of filling a partial row's free entries with the model's
#: reconstruction before the encoder proposes codes for it.
FILL_STEPS = 2
#: An autoencoder's deterministic code gets a Gaussian proposal around it with
#: this fraction of the code density's marginal standard deviation.
CODE_PROPOSAL_SCALE = 0.5
#: A given numeric value further than this many of the model's marginal
#: standard deviations from its marginal mean is refused.
MAX_DEVIATIONS = 10.0
#: How far beyond a table column's fitted range a numeric condition may lie, as
#: a fraction of the range's width.
RANGE_MARGIN = 0.1
#: Importance candidates per row of `sample(..., given=...)`.
CONDITIONAL_DRAWS = 200


class GaussianMixtureDensity:
    """A full-covariance Gaussian mixture p(z) in torch: ``log_prob`` and ``sample``.

    The interface of a :class:`~._priors.Prior`, for the mixture an estimator
    fitted on its codes (``code_density_``), so that a conditional draw takes
    either as the code density.

    Parameters
    ----------
    weights : ndarray of shape (n_mixture,)
    means : ndarray of shape (n_mixture, n_components)
    covariances : ndarray of shape (n_mixture, n_components, n_components)
    """

    def __init__(self, weights, means, covariances):
        self.log_weights = torch.as_tensor(np.log(weights), dtype=torch.float64)
        self.means = torch.as_tensor(means, dtype=torch.float64)
        self.cholesky = torch.linalg.cholesky(
            torch.as_tensor(covariances, dtype=torch.float64)
        )
        # L^-1, once: a product with it is much faster than a triangular solve
        # broadcast over every candidate code.
        eye = torch.eye(self.cholesky.shape[-1], dtype=torch.float64)
        self.inverse_cholesky = torch.linalg.solve_triangular(
            self.cholesky, eye.expand_as(self.cholesky), upper=False
        )

    def to(self, device, dtype):
        """This mixture on ``device`` at ``dtype`` (a copy)."""
        other = GaussianMixtureDensity.__new__(GaussianMixtureDensity)
        for name in ("log_weights", "means", "cholesky", "inverse_cholesky"):
            setattr(other, name, getattr(self, name).to(device, dtype))
        return other

    def log_prob(self, z):
        """log p(z) of codes of shape (..., n_components), shape (...)."""
        diff = z.unsqueeze(-2) - self.means  # (..., M, k)
        solved = torch.einsum("mij,...mj->...mi", self.inverse_cholesky, diff)
        log_det = self.cholesky.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        k = z.shape[-1]
        per_component = -0.5 * (solved.pow(2).sum(-1) + k * _LOG_2PI) - log_det
        return torch.logsumexp(per_component + self.log_weights, dim=-1)

    def sample(self, n_samples, generator):
        """``n_samples`` codes drawn with the torch ``generator`` (on its device)."""
        weights = self.log_weights.exp().to(generator.device)
        index = torch.multinomial(weights, n_samples, replacement=True, generator=generator)
        eps = torch.randn(
            n_samples,
            self.means.shape[1],
            generator=generator,
            device=generator.device,
            dtype=self.means.dtype,
        ).to(self.means.device)
        index = index.to(self.means.device)
        return self.means[index] + (self.cholesky[index] @ eps.unsqueeze(-1)).squeeze(-1)

    def marginal_variance(self):
        """Variance of each code dimension under the mixture."""
        weights = self.log_weights.exp()[:, None]
        mean = (weights * self.means).sum(0)
        covariances = self.cholesky @ self.cholesky.transpose(-1, -2)
        second = weights * (covariances.diagonal(dim1=-2, dim2=-1) + self.means.pow(2))
        return second.sum(0) - mean.pow(2)

    def mean(self):
        """The mixture's mean code."""
        return (self.log_weights.exp()[:, None] * self.means).sum(0)


def _prior_mean(density):
    """The mean code of a density with ``mean()``, or of a prior (by its draws' mean)."""
    if isinstance(density, GaussianMixtureDensity):
        return density.mean()
    means = getattr(density, "means", None)
    if means is not None:  # a mixture prior: its weighted mean
        return (torch.softmax(density.logits, dim=-1)[:, None] * means).sum(0)
    return torch.zeros(density.n_components, dtype=density._anchor.dtype)


def _fill(module, x, observed, fill, density):
    """The partial rows with their free entries filled in, for the encoder to read.

    Free entries marked in ``fill`` (the missing encoding of a table column
    that had missing values in fit, which the encoder has learned) keep their
    value in ``x``; the others start at the decoder mean of p(z)'s mean code
    and are then refilled ``FILL_STEPS`` times with the reconstruction of the
    filled row (as in pseudo-Gibbs imputation, Rezende et al. 2014).
    """
    keep = observed + fill
    start = module.decode(_prior_mean(density).to(x)[None, :]).expand_as(x)
    x_fill = torch.where(keep > 0, x, start)
    for _ in range(FILL_STEPS):
        x_fill = torch.where(keep > 0, x_fill, module.decode(module.encode(x_fill)))
    return x_fill


def _proposal(module, x_fill, density):
    """Mean and standard deviation of the encoder's Gaussian proposal for each row."""
    if hasattr(module, "posterior"):  # a VAE: q(z | x~)
        mean, log_var = module.posterior(x_fill)
        return mean, (0.5 * log_var).exp()
    mean = module.encode(x_fill)  # an autoencoder: a Gaussian around its code
    scale = CODE_PROPOSAL_SCALE * density.marginal_variance().to(mean).sqrt()
    return mean, scale.expand_as(mean)


def posterior_codes(module, x, observed, fill, density, n_draws, generator, shared=None):
    """Weighted candidate codes of p(z | x_given) for each row.

    Parameters
    ----------
    module : Model
        A trained model in eval mode, at the dtype of ``x``.
    x : tensor of shape (n, n_features)
        Encoded rows; the entries where ``observed`` is 0 are ignored.
    observed : tensor of shape (n, n_features)
        1 where an entry is given, 0 where it is free.
    fill : tensor of shape (n, n_features)
        1 where a free entry's value in ``x`` is for the encoder to read as it
        is (a table's missing encoding), 0 where it is filled in.
    density : Prior or GaussianMixtureDensity
        The code density p(z), on ``x``'s device and dtype.
    n_draws : int
        Candidates K per row.
    generator : torch.Generator
    shared : tuple of tensors or None
        Draws every row uses (:func:`candidate_draws` for one row), so that a
        row's candidates depend on the row alone; None draws each row's own.

    Returns
    -------
    z : tensor of shape (K, n, n_components)
    log_weights : tensor of shape (K, n)
        Unnormalised log importance weights ``log p(x_g|z) + log p(z) - log q(z)``.
    out : tensor of shape (K, n, n_outputs)
        The decoder's output at each candidate (for ``likelihood.mean``).
    """
    n, k = x.shape[0], module.n_components
    mean, std = _proposal(module, _fill(module, x, observed, fill, density), density)
    draws = shared or candidate_draws(density, n_draws, n, k, generator, x.dtype)
    eps, from_density, pick = (t.to(x.device) for t in draws)  # (K, n or 1, ...)
    from_encoder = mean + std * eps
    z = torch.where(pick[..., None], from_density, from_encoder)
    log_q_encoder = -0.5 * (((z - mean) / std).pow(2) + _LOG_2PI).sum(-1)
    log_q_encoder = log_q_encoder - std.log().sum(-1)
    log_p = density.log_prob(z)
    log_q = torch.logaddexp(
        log_q_encoder + math.log1p(-DEFENSIVE_WEIGHT), log_p + math.log(DEFENSIVE_WEIGHT)
    )
    out = module.decoder(z)
    log_lik = -module.given_nll(out, x, observed)
    return z, log_lik + log_p - log_q, out


def candidate_draws(density, n_draws, n, k, generator, dtype):
    """The draws of :func:`posterior_codes`' candidates for ``n`` rows.

    Standard normal draws of shape (K, n, k) for the encoder's proposal,
    codes of the same shape from ``density``, and the (K, n) choices of the
    density (probability ``DEFENSIVE_WEIGHT``), on the generator's device.
    Drawn for one row, they are common random numbers that every row can
    share: a row's candidates then depend on the row alone, not on the rows
    drawn with it or on its chunk (``score_samples`` draws each row's own
    from its values instead, see :func:`~._torch.row_keys`).
    """
    device = generator.device
    eps = torch.randn((n_draws, n, k), generator=generator, device=device, dtype=dtype)
    codes = density.sample(n_draws * n, generator).to(dtype).reshape(n_draws, n, k)
    pick = torch.rand((n_draws, n), generator=generator, device=device) < DEFENSIVE_WEIGHT
    return eps, codes, pick


def _chunk(n_draws, module):
    """Rows per inference chunk, so that K draws per row fit in bounded memory."""
    return max(1, IMPORTANCE_ELEMENTS // (n_draws * widest_layer(module.description)))


def conditional_rows(
    module,
    density,
    x,
    observed,
    fill,
    n_draws,
    generator,
    mode,
    constraints=(),
    shared=False,
):
    """Rows drawn from, or expected under, p(x | x_given); given entries kept exactly.

    Parameters
    ----------
    module : Model
        A trained model in eval mode, at the inference dtype.
    density : Prior or GaussianMixtureDensity
        The code density p(z), on the module's device and dtype.
    x, observed, fill : ndarray of shape (n, n_features)
        Encoded rows, the 0/1 mask of their given entries, and the 0/1 mask of
        the free entries whose value in ``x`` the encoder reads as it is (the
        missing encoding of a table column); see :func:`posterior_codes`.
    n_draws : int
        Importance candidates per row.
    generator : torch.Generator
        On the module's device; the only source of randomness.
    mode : {"draw", "mean", "decoder_mean", "candidates"}
        "draw": one code per row resampled by weight, then a draw from p(x | z);
        "decoder_mean": that code's decoder mean; "mean": the weighted mean of
        the candidates' decoder means, E[x | x_given] (MIWAE's single
        imputation); "candidates": every candidate's decoder mean, with the
        weights, for expectations the caller computes.
    constraints : list of (probability, allowed)
        States that the rows' free entries must take (a table's gates of given
        columns, :meth:`~._tabular.Table.gate_constraints`): each candidate's
        weight is multiplied by ``probability(means, allowed)``, the
        probability its decoder means give them.
    shared : bool
        Whether every row uses the same draws (:func:`candidate_draws`), so that
        a row's result does not depend on the rows beside it (imputation);
        else each row draws its own (conditional samples, which then differ
        from row to row).

    Returns
    -------
    X : ndarray of shape (n, n_features)
        In the encoded space.
    ess : ndarray of shape (n,)
        Effective sample size of each row's weights (1 to ``n_draws``).
    means : ndarray of shape (n, n_features)
        With ``mode="draw"`` and ``constraints`` only: the decoder means of
        the codes drawn, whose probabilities a table's decoding needs to
        redraw a gate's level (there are constraints where there are gates
        to decide).

    With ``mode="candidates"``, instead ``means`` of shape (n, K, n_features)
    and the normalised ``weights`` of shape (n, K).
    """
    parameter = next(module.parameters())
    device, dtype = parameter.device, parameter.dtype

    probabilities = [probability for probability, _ in constraints]
    common = None
    if shared:
        common = candidate_draws(density, n_draws, 1, module.n_components, generator, dtype)

    def run(x, observed, fill_values, *allowed):
        z, log_w, out = posterior_codes(
            module, x, observed, fill_values, density, n_draws, generator, common
        )
        if allowed:
            means = module.likelihood.mean(out)  # (K, n, d)
            for probability, ok in zip(probabilities, allowed):
                log_w = log_w + probability(means, ok).clamp_min(1e-30).log()
        weights = torch.softmax(log_w, dim=0)  # (K, n)
        ess = 1.0 / weights.pow(2).sum(0)
        if mode == "candidates":
            return module.likelihood.mean(out).transpose(0, 1), weights.T
        if mode == "mean":
            means = module.likelihood.mean(out)  # (K, n, d)
            out = (weights[..., None] * means).sum(0)
        else:
            pick = torch.multinomial(weights.T.to(generator.device), 1, generator=generator)
            chosen = z[pick[:, 0].to(z.device), torch.arange(z.shape[1], device=z.device)]
            out = module.decode(chosen) if mode == "decoder_mean" else None
            if out is None:
                out = module.draw(chosen, generator)
                if constraints:  # and the probabilities it was drawn from
                    return torch.where(observed > 0, x, out), ess, module.decode(chosen)
        return torch.where(observed > 0, x, out), ess

    arrays = [x, observed, fill, *[allowed for _, allowed in constraints]]
    return batched(run, arrays, device, dtype, chunk=_chunk(n_draws, module))


def model_moments(module, density, generator, n_draws=2000):
    """Mean and standard deviation of each encoded feature under the model's marginal.

    Draws ``n_draws`` codes from ``density`` and one row from p(x | z) for each.
    """
    with torch.inference_mode():
        z = density.sample(n_draws, generator)
        parameter = next(module.parameters())
        X = module.draw(z.to(parameter), generator).double()
    return X.mean(0).cpu().numpy(), X.std(0).cpu().numpy()


# ----------------------------------------------------------------- conditions
def _is_dataframe(X):
    return hasattr(X, "columns") and hasattr(X, "dtypes") and hasattr(X, "iloc")


def _items(given, n_samples):
    """``given`` as a list of (column key, 1-D object array of n_samples values)."""
    if isinstance(given, dict):
        items = list(given.items())
    elif _is_dataframe(given):
        items = [(name, given[name]) for name in given.columns]
        if given.shape[0] != n_samples:
            raise ValueError(
                f"given has {given.shape[0]} rows, but n_samples={n_samples}; pass one "
                "row of conditions per sample (or a dict of single values)."
            )
    else:
        raise TypeError(
            "given must be a dict {column: value} or a pandas DataFrame of conditions "
            f"with one row per sample, got {type(given).__name__}."
        )
    if not items:
        raise ValueError("given has no conditions; pass given=None to sample freely.")
    out = []
    for key, values in items:
        if np.ndim(values) == 0:
            values = np.full(n_samples, values, dtype=object)
        else:
            values = np.asarray(values, dtype=object)
            if values.ndim != 1 or values.shape[0] != n_samples:
                raise ValueError(
                    f"given[{key!r}] has shape {values.shape}, but n_samples="
                    f"{n_samples}; pass one value, or one value per sample."
                )
        out.append((key, values))
    return out


def _missing(values):
    import pandas as pd

    return np.array([v is None or bool(pd.isna(v)) for v in values], dtype=bool)


def _numbers(key, values, bools=False):
    """The float64 values of a numeric condition, or a clear error.

    Booleans are refused unless ``bools`` (an array's feature: fit read a
    boolean X as 0/1, as scikit-learn does).
    """
    refused = (str, bytes) if bools else (str, bytes, bool, np.bool_)
    try:
        if any(isinstance(v, refused) for v in values):
            raise TypeError
        numbers_ = values.astype(np.float64)
    except (TypeError, ValueError):
        example = next(
            (
                v
                for v in values
                if isinstance(v, refused)
                or not isinstance(v, (numbers.Real, bool, np.bool_))
            ),
            values[0],
        )
        raise TypeError(
            f"given[{key!r}] must hold numbers for a numeric column, got {example!r}."
        ) from None
    if not np.isfinite(numbers_).all():
        raise ValueError(f"given[{key!r}] holds infinity; conditions must be finite.")
    return numbers_


def block_masks(table, given):
    """Encoded-space masks of a table's rows from which of their columns are given.

    Parameters
    ----------
    table : Table
    given : ndarray of bool of shape (n, n_columns)
        True where a row's column is given (observed).

    Returns
    -------
    observed : ndarray of shape (n, width)
        1 on the encoded columns of given columns.
    fill : ndarray of shape (n, width)
        1 on the encoded columns of free columns that had missing values in
        fit: their missing encoding is what the encoder reads for them.
    """
    observed = np.zeros((given.shape[0], table.width))
    fill = np.zeros_like(observed)
    for j, c in enumerate(table.columns):
        block = slice(c.start, c.start + c.width)
        observed[:, block] = given[:, j, None]
        if c.missing:
            fill[:, block] = ~given[:, j, None]
    return observed, fill


def conditions(given, n_samples, table, n_features, feature_names=None):
    """Encoded condition rows and masks from a user's ``given``.

    Parameters
    ----------
    given : dict or DataFrame
        ``{column: value}`` (one value for every sample, or an array-like of
        ``n_samples`` values), or a DataFrame whose columns are conditions and
        whose rows are the samples. For a model of an array, columns are integer
        indices (or names in ``feature_names``).
    n_samples : int
    table : Table or None
        The fitted table's encoding; None for an array.
    n_features : int
        The number of features of an array (ignored for a table).
    feature_names : ndarray of str or None
        Names of an array's features seen in fit.

    Returns
    -------
    x : ndarray of shape (n_samples, width)
        Encoded rows; a table's free columns hold their missing encoding.
    observed : ndarray of shape (n_samples, width)
        1 where an entry is given.
    fill : ndarray of shape (n_samples, width)
        1 where a free entry's value in ``x`` is the table's missing encoding.
    chosen : dict
        For an array, ``{key: column index}`` of the given features, for
        :func:`check_range`; for a table, ``{column name: values}``, the given
        values to set in the decoded rows (its numeric conditions are checked
        against their columns' fitted range here).
    """
    items = _items(given, n_samples)
    for key, values in items:
        if _missing(values).any():
            raise ValueError(
                f"given[{key!r}] holds missing values (NaN or None); every condition "
                "needs a value. Leave the column out of given to let it vary."
            )
    if table is None:
        x = np.zeros((n_samples, n_features))
        observed = np.zeros_like(x)
        numeric = []
        for key, values in items:
            j = _feature_index(key, n_features, feature_names)
            if observed[0, j]:
                raise ValueError(f"given names feature {j} twice.")
            x[:, j] = _numbers(key, values, bools=True)
            observed[:, j] = 1.0
            numeric.append((key, j))
        return x, observed, np.zeros_like(x), dict(numeric)

    chosen = {}
    for key, values in items:
        column = _table_column(key, table)
        if column.name in chosen:
            raise ValueError(f"given names column {column.name!r} twice.")
        if column.kind == "numeric":
            values = _numbers(key, values)
            _check_fitted_range(key, values, column)
            if column.integer and np.any(values != np.round(values)):
                raise ValueError(
                    f"given[{key!r}] must hold whole numbers for the integer column "
                    f"{column.name!r}."
                )
        elif column.kind == "boolean":
            bad = [v for v in values if not isinstance(v, (bool, np.bool_))]
            if bad:
                raise ValueError(
                    f"given[{key!r}] must be True or False for a boolean column, got "
                    f"{bad[0]!r}."
                )
        else:  # each value as the fitted level it equals (1.0 or True as a level 1)
            rare = column.rare or []
            levels = {level: level for level in column.levels + rare}
            matched = np.empty(len(values), dtype=object)
            for i, v in enumerate(values):
                try:
                    matched[i] = levels[v]
                except (KeyError, TypeError):
                    pooled = f" and {len(rare)} rare ones, e.g. {rare[:3]}" if rare else ""
                    raise ValueError(
                        f"given[{key!r}] = {v!r} is not a level seen in fit; known "
                        f"levels: {column.levels}{pooled}."
                    ) from None
            values = matched
        chosen[column.name] = values
    if getattr(table, "array", False):  # an array's table: NaN where free
        frame = np.full((n_samples, len(table.columns)), np.nan)
        for j, c in enumerate(table.columns):
            if c.name in chosen:
                frame[:, j] = chosen[c.name]
    else:
        import pandas as pd  # a model of a DataFrame: pandas is there

        frame = pd.DataFrame(
            {
                c.name: pd.Series(chosen.get(c.name, [None] * n_samples), dtype=object)
                for c in table.columns
            },
            columns=[c.name for c in table.columns],
        )
    x = table.encode(frame)
    mask = np.array([c.name in chosen for c in table.columns])
    observed, fill = block_masks(table, np.tile(mask, (n_samples, 1)))
    return x, observed, fill, chosen


def as_column(values, like):
    """Given values as a column shaped like the decoded Series ``like`` (its dtype)."""
    import pandas as pd

    series = pd.Series(values, index=like.index)
    try:
        return series.astype(like.dtype)
    except (TypeError, ValueError):
        return series


def _check_fitted_range(key, values, column):
    """Refuse numeric conditions outside the range a table's column had in fit.

    Values up to ``RANGE_MARGIN`` of the range's width beyond either end pass:
    held-out data often go slightly beyond the training rows.
    """
    from ._tabular import dtype_range  # a table's column: its module is loaded

    bounds = dtype_range(column.dtype)
    if bounds is not None:
        wrong = (values < bounds[0]) | (values > bounds[1])
        if wrong.any():  # it would wrap around, or become another dtype
            raise ValueError(
                f"given[{key!r}] = {float(values[wrong][0]):.6g} does not fit the "
                f"column's dtype {column.dtype}, which holds [{bounds[0]:.6g}, "
                f"{bounds[1]:.6g}]."
            )
    low, high = getattr(column, "low", None), getattr(column, "high", None)
    if low is None or high is None or low > high:
        return
    margin = RANGE_MARGIN * (high - low)
    outside = (values < low - margin) | (values > high + margin)
    if outside.any():
        raise ValueError(
            f"given[{key!r}] = {float(values[outside][0]):.6g} is outside the range the "
            f"model was fitted on, [{low:.6g}, {high:.6g}] for this column (give or take "
            f"{RANGE_MARGIN:.0%} of its width); condition on a value within it."
        )


def _feature_index(key, n_features, feature_names):
    if feature_names is not None and isinstance(key, str):
        matches = np.flatnonzero(np.asarray(feature_names) == key)
        if matches.size:
            return int(matches[0])
    if isinstance(key, (bool, np.bool_)) or not isinstance(key, numbers.Integral):
        names = "" if feature_names is None else " or feature names seen in fit"
        raise ValueError(
            f"given names an unknown feature {key!r}; use integer column indices in "
            f"[0, {n_features}){names}."
        )
    if not 0 <= key < n_features:
        raise ValueError(
            f"given names feature {key}, but the model was fitted on {n_features} "
            f"features; use indices in [0, {n_features})."
        )
    return int(key)


def _table_column(key, table):
    for column in table.columns:
        try:
            if column.name == key:
                return column
        except (TypeError, ValueError):  # an array-valued key
            break
    raise ValueError(
        f"given names an unknown column {key!r}; the model was fitted on columns "
        f"{[c.name for c in table.columns]}."
    )


def check_range(x, numeric, moments):
    """Refuse given values of an array far outside the model's marginal of their feature.

    The model's marginal ``moments`` (mean and standard deviation per feature,
    :func:`model_moments`) stand for the fitted range, which a model of an
    array does not keep.
    """
    mean, std = moments
    for key, j in numeric.items():
        deviations = np.abs(x[:, j] - mean[j]) / max(std[j], 1e-12)
        if (deviations > MAX_DEVIATIONS).any():
            raise ValueError(
                f"given[{key!r}] is outside the range the model was fitted on: more than "
                f"{MAX_DEVIATIONS:g} standard deviations from the column's mean under "
                "the model, where it cannot say what goes with it. Condition on a value "
                "within the data's range."
            )
