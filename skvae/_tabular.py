"""Tables: DataFrame columns (or an array's, with NaN) <-> the blocks networks model."""

import copy
import numbers
import warnings
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
from scipy.special import ndtr, ndtri

from .exceptions import _warn

try:  # pandas is optional: arrays with missing values are tables without it
    import pandas as pd
    from pandas.api import types
except ImportError:  # pragma: no cover - the test environment has pandas
    pd = types = None


def is_table(X, categorical_features):
    """Whether the DataFrame X is to be modelled column by column (not only numbers)."""
    _check_unique(X)
    if categorical_features is not None and not _is_from_dtype(categorical_features):
        return bool(np.any(_categorical_mask(X, categorical_features)))
    return any(_kind(X[c], False) != "numeric" for c in X.columns)


def _check_unique(X):
    """Reject a DataFrame whose column names repeat: a name must pick one column."""
    duplicated = X.columns[X.columns.duplicated()].unique().tolist()
    if duplicated:
        raise ValueError(
            f"Column names must be unique, but X has duplicated columns: {duplicated}. "
            "Rename or drop the repeated columns."
        )


def _dtype_name(dtype):
    """A dtype's name that ``pandas_dtype`` reads back as the same dtype.

    ``str`` of a pandas string dtype leaves out its storage ("string" for
    "string[python]", which would come back as pyarrow's where it is the
    default; "str", pandas 3's default string dtype, reads back as the
    machine's default storage: "str[python]" where that is pyarrow's).
    """
    if pd is not None and isinstance(dtype, pd.StringDtype):
        if dtype.na_value is pd.NA or dtype.storage == "pyarrow_numpy":  # pandas < 3's
            return f"string[{dtype.storage}]"
        try:  # pandas 3's default "str"
            if types.pandas_dtype(str(dtype)) == dtype:
                return str(dtype)
        except TypeError:
            pass
        return f"str[{dtype.storage}]"
    return str(dtype)


def _dtype_of(name):
    """The pandas dtype named ``name`` (as :func:`_dtype_name` gives).

    A string dtype whose storage this machine lacks ("string[pyarrow]" without
    pyarrow) is the default string dtype, so that the model still loads.
    """
    if isinstance(name, str) and name.startswith("str["):
        # the NaN-valued string dtype with its storage (pandas 3)
        try:
            return pd.StringDtype(name[4:-1], na_value=np.nan)
        except ImportError:  # this storage is missing here: the default one
            return types.pandas_dtype("str")
        except TypeError:  # pandas before 2.3 has no such dtype: its own strings
            return types.pandas_dtype("string")
    try:
        return types.pandas_dtype(name)
    except ImportError:
        return types.pandas_dtype(name.split("[")[0])


def _index(values, name):
    """``values`` as a pandas Index of the dtype ``name`` (as :func:`_dtype_name` gives).

    An Index of inferred dtype where this pandas cannot build that one (a file
    written by another version of pandas, say).
    """
    try:
        return pd.Index(values, dtype=_dtype_of(name))
    except (TypeError, ValueError, ImportError):
        return pd.Index(values)


def _is_from_dtype(value):
    return isinstance(value, str) and value == "from_dtype"


def _categorical_mask(X, categorical_features):
    """Boolean mask of the columns the user declared categorical.

    ``categorical_features`` is a boolean mask, or column names in any
    collection (a list, an array, a set; tuple names, as a MultiIndex has,
    stay names).
    """
    values = list(categorical_features)
    if values and all(isinstance(v, (bool, np.bool_)) for v in values):
        if len(values) != X.shape[1]:
            raise ValueError(
                f"categorical_features as a boolean mask must have {X.shape[1]} entries "
                f"(one per column), got {len(values)}."
            )
        return np.array(values, dtype=bool)
    try:
        names = set(values)
    except TypeError:
        raise ValueError(
            "categorical_features must be column names or a boolean mask, got "
            f"{categorical_features!r}."
        ) from None
    unknown = sorted(names - set(X.columns), key=str)
    if unknown:
        raise ValueError(f"categorical_features names columns not in X: {unknown}.")
    return np.array([c in names for c in X.columns], dtype=bool)


def _kind(series, declared_categorical):
    if declared_categorical:
        return "categorical"
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):  # its categories are its levels, bools too
        return "categorical"
    if types.is_bool_dtype(dtype):
        return "boolean"
    if types.is_numeric_dtype(dtype) and not types.is_complex_dtype(dtype):
        return "numeric"
    if (
        isinstance(dtype, pd.CategoricalDtype)
        or types.is_object_dtype(dtype)
        or (types.is_string_dtype(dtype))
    ):
        return "categorical"
    when = types.is_datetime64_any_dtype(dtype) or types.is_timedelta64_dtype(dtype)
    example = (
        f" (days since its start, say: (X[{series.name!r}] - X[{series.name!r}].min())"
        " / pd.Timedelta(days=1))"
        if when
        else ""
    )
    raise TypeError(
        f"Column {series.name!r} has dtype {dtype}, which skvae cannot model; convert "
        f"it to numbers{example}, a category or strings first."
    )


#: The numeric column models ``numeric_transform`` can name.
NUMERIC_TRANSFORMS = ("quantile", "mixture", "standard")
#: At most this many distinct values: a discrete column, drawn among its values.
DISCRETE_VALUES = 50
#: A categorical column with more levels than this and than half its observed
#: values is reported as an identifier: one row per level cannot teach the model
#: anything, and each level is a column of the one-hot encoding (lifelines'
#: ``load_dd``, whose leader and spell names have 1,580 and 1,807 levels in 1,808
#: rows, fitted in 100 s with 2 of 12 columns taking 3,400 encoded ones, before
#: such columns pooled their rare levels).
IDENTIFIER_LEVELS = 20
#: In such a column, and in any categorical column with more than
#: IDENTIFIER_LEVELS levels of which most are seen fewer than this many times in
#: fit, those levels share one encoded level, "rare": the model learns how often
#: a rare level comes and with what, and decoding draws one of them by its count
#: in fit (the most frequent where it decodes the most likely value). The levels
#: seen this often keep their own, and so does every level of a column that
#: gates the missing values of columns whose missing values nest (see
#: :class:`Table`). On lifelines' ``canadian_senators`` (933 rows; a name, a
#: term and two dates as text) the encoding went from 3,095 columns to 113, and
#: the default VAE's samples that break a missing-value rule of the data from
#: 24-31% to 1.2-2.6% over seeds 0-3 (a rule ties the missing ``reason`` to the
#: end date being the censoring date, a level of 99 rows, which keeps its own).
#: Pooling only the identifier-like columns left 489 columns, and the VAE fits
#: of ``canadian_senators`` at seed 1 and of lifelines' ``lupus`` (dates as
#: text, 46 and 36 levels in 99 rows) at seeds 0-1 stopped after their first
#: epochs with no active latent dimension.
RARE_LEVEL_COUNT = 5
#: Encoded entries (rows times columns) up to which a table with such columns
#: looks for missing-value gates before pooling (32 million: 256 MB).
_POOL_FIRST_ENTRIES = 2**25
#: Most knots of a continuous column's CDF, and rows per knot below that.
_MAX_KNOTS, _ROWS_PER_KNOT = 1000, 10
#: Weight of a uniform density mixed into each CDF, so it is strictly increasing.
_UNIFORM = 1e-3
#: A value that holds more than this share of a numeric column ("quantile" or
#: "mixture") without missing values gets a 0/1 flag of its own beside the
#: column's score, and the column's marginal models the other values (see
#: :class:`Column`). With one score for it, the Gaussian of a column that is
#: 95% zeros sampled 0-0.1% non-zero values against 4-5% in the data (it did at
#: 70% and 90% zeros). In a column with missing values (whose flag says
#: missing), such a value stays an atom, which a VAE scores by the probability
#: of its cell (:func:`score_cells`): its share comes back, with looser ties to
#: other columns than a flag keeps.
POINT_MASS = 0.5
#: Most mixture components of ``numeric_transform="mixture"``, and rows fitted.
_MIXTURE_COMPONENTS, _MIXTURE_ROWS = 10, 5000


@dataclass
class Column:
    """How one column is encoded: its kind, statistics and where it sits.

    A numeric column is standardized (``mean``, ``scale``) and then mapped
    to normal scores by ``transform``, except for a ``point``: with
    "quantile" or "mixture" and no missing values, a value that holds more
    than ``POINT_MASS`` of the rows gets a 0/1 flag beside the score (where
    a missing indicator would be), its density its share spread over
    ``point_width``, and the map models the other values. "standard" keeps
    the standardized value; "quantile" and "mixture" map it through a
    piecewise-linear CDF
    (``knots``, ``cdf``, in standardized units) to ``ndtri(cdf)``. Decoded
    values are snapped onto the ``atoms`` whose cell (``atom_low``,
    ``atom_high``, standardized) holds them, clipped to [``low``, ``high``]
    and rounded for integer dtypes.
    """

    name: object
    kind: str  # "numeric", "boolean" or "categorical"
    dtype: object
    start: int  # first encoded column
    missing: bool = False  # missing values seen in fit: modelled
    mean: float = 0.0  # numeric: the mean; boolean: the share of True
    scale: float = 1.0
    integer: bool = False
    levels: list = None
    transform: str = "standard"
    low: float = 0.0  # numeric: the fitted range
    high: float = 0.0
    knots: np.ndarray = None
    cdf: np.ndarray = None
    atoms: np.ndarray = None
    atom_low: np.ndarray = None
    atom_high: np.ndarray = None
    unseen: list = None  # categorical, partial_fit: declared levels no batch has held
    novel: float = None  # categorical: the probability of a level fit did not see
    rare: list = None  # categorical: the levels that share one encoded level
    rare_counts: list = None  # and how many rows of fit held each
    point: float = None  # numeric: the value of a point mass with its own flag
    point_width: float = None  # and the width its density is spread over

    @property
    def flagged(self):
        """Whether a numeric column has a 0/1 flag beside its score."""
        return self.missing or self.point is not None

    @property
    def width(self):
        if self.kind == "categorical":
            return len(self.levels) + bool(self.rare) + self.missing
        return 1 + self.flagged


#: The Column fields that hold arrays (lists in ``to_state``).
ARRAY_FIELDS = ("knots", "cdf", "atoms", "atom_low", "atom_high")


def resolve_transform(numeric_transform, name):
    """The transform of a numeric column: the user's choice, or "auto"'s.

    "auto" gives every numeric column the quantile transform: it matches any
    marginal (skewed, bounded, multimodal, with atoms) by construction.
    """
    choice = numeric_transform
    if isinstance(numeric_transform, dict):
        choice = numeric_transform.get(name, "auto")
    if choice == "auto":
        return "quantile"
    return choice


def _check_transform_names(numeric_transform, names):
    """Reject a numeric_transform dict that names columns not in X.

    Its values are checked with the estimator's other parameters.
    """
    if not isinstance(numeric_transform, dict):
        return
    unknown = [key for key in numeric_transform if key not in set(names)]
    if unknown:
        raise ValueError(
            f"numeric_transform names columns not in X: {unknown}; use the names of "
            "X's numeric columns (column indices for an array)."
        )


def fit_numeric(column, values, transform, seed=0):
    """Fit a numeric column's statistics, range and marginal to its observed values."""
    if np.isinf(values).any():
        raise ValueError(f"Input X contains infinity in column {column.name!r}.")
    values = values[~np.isnan(values)]
    column.transform = transform
    if values.size == 0:
        column.mean, column.scale = _location_scale(values)
        column.low = column.high = 0.0
        column.transform = "standard"
        return column
    low, high = float(values.min()), float(values.max())
    if not column.missing and transform != "standard":
        values = _split_point(column, values)
    column.mean, column.scale = _location_scale(values)
    column.low, column.high = low, high
    s = _standardize(values, column.mean, column.scale)
    order = np.argsort(s, kind="stable")
    s, values = s[order], values[order]
    unique, first, counts = np.unique(s, return_index=True, return_counts=True)
    originals = values[first]
    integral = column.integer or bool(np.all(values == np.round(values)))
    unit = 0.5 / column.scale  # half of one unit of the original scale
    discrete = unique.size <= DISCRETE_VALUES or (integral and unique.size <= _MAX_KNOTS)
    if discrete:
        knots, cdf, low, high = _discrete(unique, counts, unit if integral else None)
        atoms = originals
        # values are in the order of their scores: where these merged distinct
        # values, more neighbours differ than there are scores
        distinct = 1 + np.count_nonzero(values[1:] != values[:-1])
        if unique.size < distinct or not (np.diff(knots) > 0).all():
            _too_wide(column, values)
    elif transform != "standard":
        knots, cdf, atoms, low, high = _continuous(
            s, unique, counts, originals, transform, seed
        )
    else:
        knots = atoms = low = high = np.zeros(0)
    column.atoms, column.atom_low, column.atom_high = atoms, low, high
    if transform == "standard":  # discrete columns still decode onto their values
        return column
    n = values.size
    cdf = (1 - _UNIFORM) * cdf + _UNIFORM * (knots - knots[0]) / (knots[-1] - knots[0])
    tail = 0.5 / (n + 1)  # the mass beyond each end, where the scores go on linearly
    cdf = tail + (1 - 2 * tail) * cdf
    # Steps that float64 rounds to nothing (a saturated mixture CDF) would be
    # zero densities: merge them into their neighbours.
    keep = np.r_[True, np.diff(cdf) > 1e-12 * cdf[1:]]
    column.knots, column.cdf = knots[keep], cdf[keep]
    return column


def _too_wide(column, values):
    """Refuse a column whose values standardized float64 cannot tell apart."""
    gaps = np.diff(np.unique(values))
    step = gaps[gaps > 0].min() if (gaps > 0).any() else 1.0
    raise ValueError(
        f"Column {column.name!r} spans too wide a range for the steps between its "
        f"values (from {column.low:.4g} to {column.high:.4g}, in steps as small as "
        f"{step:.4g}): standardized, float64 no longer tells its values, or their "
        "cells, apart. Transform the column first (its logarithm, say), or drop "
        "its extreme values."
    )


def _split_point(column, values):
    """Give a value that holds more than ``POINT_MASS`` of a column its own flag.

    Sets ``column.point`` and ``point_width`` (half-way to its neighbours on
    each side, mirrored at an end; 1 for integers) and returns the other
    values, which the column's marginal then models; returns ``values`` when
    no value holds that much, or none other is left.
    """
    unique, counts = np.unique(values, return_counts=True)
    top = counts.argmax()
    if counts[top] <= POINT_MASS * values.size or unique.size < 2:
        return values
    integral = column.integer or bool(np.all(values == np.round(values)))
    gaps = np.diff(unique)
    below = gaps[top - 1] if top > 0 else gaps[top]
    above = gaps[top] if top < gaps.size else gaps[top - 1]
    column.point = float(unique[top])
    column.point_width = 1.0 if integral else float(below / 2 + above / 2)
    return values[values != unique[top]]


def _discrete(unique, counts, unit):
    """Knots of a discrete column: one cell per value, half-way to its neighbours.

    Integer values (``unit`` is half of 1 in standardized units) reach half a
    unit beyond the ends, as the dequantized integers do.
    """
    if unique.size == 1:
        half = unit if unit is not None else 0.5
        edges = np.array([unique[0] - half, unique[0] + half])
    else:
        gaps = np.diff(unique)
        ends = (unit, unit) if unit is not None else (gaps[0] / 2, gaps[-1] / 2)
        edges = np.r_[
            unique[0] - ends[0], (unique[:-1] + unique[1:]) / 2, unique[-1] + ends[1]
        ]
    cdf = np.r_[0.0, np.cumsum(counts)] / counts.sum()
    return edges, cdf, edges[:-1], edges[1:]


def _continuous(s, unique, counts, originals, transform, seed):
    """Knots of a continuous column: its quantiles (or mixture CDF), and its atoms.

    A value holding at least one knot's share of the rows is an atom: its
    mass sits on a cell half-way to its nearest neighbouring value, which
    decoding snaps back onto the value.
    """
    n = s.size
    n_knots = int(np.clip(n // _ROWS_PER_KNOT, 10, _MAX_KNOTS))
    heavy = counts >= max(2, n / n_knots)
    gaps = np.diff(unique)
    left = np.r_[gaps[:1], gaps]
    right = np.r_[gaps, gaps[-1:]]
    radius = np.minimum(left, right)[heavy] / 2
    atoms, weights = unique[heavy], counts[heavy] / n
    rest = s[~np.isin(s, atoms)]
    if rest.size < 2:  # (nearly) every row on a repeated value: a discrete column
        knots, cdf, low, high = _discrete(unique, counts, None)
        return knots, cdf, originals, low, high
    levels = np.linspace(0.0, 1.0, n_knots + 1)
    points = np.quantile(rest, levels)
    if transform == "mixture":
        points = np.unique(np.r_[points, np.linspace(rest[0], rest[-1], n_knots + 1)])
        share = _mixture_cdf(rest, seed)(points)
        share = (share - share[0]) / (share[-1] - share[0])
    else:
        points, index = np.unique(points, return_index=True)
        share = levels[index]
    low, high = atoms - radius, atoms + radius
    inside = np.zeros(points.size, dtype=bool)
    for lo, hi in zip(low, high):
        inside |= (points >= lo) & (points <= hi)
    knots = np.r_[points[~inside], low, high]
    own = np.interp(knots, points, share, left=0.0, right=1.0)
    below = (atoms[None, :] < knots[:, None]) @ weights
    cdf = (1 - weights.sum()) * own + below
    order = np.argsort(knots, kind="stable")
    knots, cdf = knots[order], np.maximum.accumulate(cdf[order])
    keep = np.r_[np.diff(knots) > 0, True]
    knots, cdf = knots[keep], cdf[keep]
    cdf = (cdf - cdf[0]) / (cdf[-1] - cdf[0])
    return knots, cdf, originals[heavy], low, high


def _mixture_cdf(values, seed):
    """The CDF of a Bayesian Gaussian mixture (as TVAE's modes) fitted to ``values``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import BayesianGaussianMixture

    rng = np.random.RandomState(seed)
    fitted = values
    if fitted.size > _MIXTURE_ROWS:
        fitted = rng.choice(values, _MIXTURE_ROWS, replace=False)
    gmm = BayesianGaussianMixture(
        n_components=min(_MIXTURE_COMPONENTS, np.unique(fitted).size),
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=1e-3,
        max_iter=100,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(fitted[:, None])
    means = gmm.means_[:, 0]
    sd = np.sqrt(gmm.covariances_.reshape(-1))
    weights = gmm.weights_

    def cdf(x):
        return ndtr((x[:, None] - means) / sd) @ weights

    return cdf


#: Share of a column's fitted range within which a value beyond it is taken as
#: at its end (:func:`to_scores`): float32's rounding of values up to about ten
#: times the range from zero.
_END_ROUNDING = 1e-6


def to_scores(column, values):
    """Normal scores and log-Jacobians ``log |dz/dx|`` of a column's observed values."""
    s = _standardize(values, column.mean, column.scale)
    log_scale = -np.log(column.scale)
    if column.transform == "standard" or column.knots is None:
        return s, np.full(values.shape, log_scale)
    knots, cdf = column.knots, column.cdf
    # A value beyond an end by rounding (the largest training value, as
    # float32) is at the end: the linear tails' secant slopes are gentler than
    # the map's at its ends (a thicker tail for new rows beyond the range), and
    # such a row scored 1.7 nats lower in float32 than in float64. Relative to
    # the range, not to the values' size: 1e7 plus a range of 1 is no rounding.
    near = _END_ROUNDING * (knots[-1] - knots[0])
    s = np.where((s < knots[0]) & (s >= knots[0] - near), knots[0], s)
    s = np.where((s > knots[-1]) & (s <= knots[-1] + near), knots[-1], s)
    ends = ndtri(cdf[[0, 1, -2, -1]])
    slope_low = (ends[1] - ends[0]) / (knots[1] - knots[0])
    slope_high = (ends[3] - ends[2]) / (knots[-1] - knots[-2])
    k = np.clip(np.searchsorted(knots, s, side="right") - 1, 0, knots.size - 2)
    density = (cdf[k + 1] - cdf[k]) / (knots[k + 1] - knots[k])
    with np.errstate(invalid="ignore", over="ignore"):
        z = ndtri(np.clip(cdf[k] + density * (s - knots[k]), cdf[0], cdf[-1]))
        log_jacobian = np.log(density) + 0.5 * z**2 + 0.5 * np.log(2 * np.pi)
    below, above = s < knots[0], s > knots[-1]
    with np.errstate(over="ignore"):
        z[below] = ends[0] + slope_low * (s[below] - knots[0])
        z[above] = ends[3] + slope_high * (s[above] - knots[-1])
    log_jacobian[below] = np.log(slope_low)
    log_jacobian[above] = np.log(slope_high)
    return z, log_jacobian + log_scale


def from_scores(column, z):
    """A numeric column's values from normal scores, in its fitted range and dtype."""
    z = np.asarray(z, dtype=np.float64)
    if column.transform == "standard" or column.knots is None:
        s = z
    else:
        s = np.interp(ndtr(z), column.cdf, column.knots)
    with np.errstate(over="ignore", invalid="ignore"):  # the clip bounds overflows
        values = s * column.scale + column.mean
    values = np.clip(np.nan_to_num(values, nan=column.mean), column.low, column.high)
    if column.atoms is not None and column.atoms.size:
        k = np.clip(np.searchsorted(column.atom_low, s, side="right") - 1, 0, None)
        snap = (s >= column.atom_low[k]) & (s <= column.atom_high[k])
        values = np.where(snap, column.atoms[k], values)
    if column.integer:
        values = np.round(values)
    return _clip_to(values, column.dtype)


def _has_cells(column):
    """Whether a column has atoms mapped through a CDF ("standard" ones are not)."""
    return column.kind == "numeric" and column.knots is not None and column.atoms.size > 0


def _atom_cdf(column):
    """The CDF at the ends of a column's atoms' cells, ``(low, high)``, or None."""
    if not _has_cells(column):
        return None
    return tuple(
        np.interp(e, column.knots, column.cdf) for e in (column.atom_low, column.atom_high)
    )


def score_cells(column):
    """The cells of a numeric column's atoms, as the CDF at their ends, or None.

    A cell is the range of normal scores that decodes to its atom (every value
    of a discrete column; a heavy value of a continuous one): from
    ``ndtri(low)`` to ``ndtri(high)``. Returns ``[lows, highs]``, lists of
    floats read off the column's ``cdf`` (the cells' ends are knots), where a
    cell at an end of the fitted range is unbounded there (None): the scores
    beyond the range decode to that atom too. "standard" columns have none.
    """
    cdf = _atom_cdf(column)
    if cdf is None:
        return None
    ends = ((column.atom_low, column.knots[0]), (column.atom_high, column.knots[-1]))
    return [
        [None if e == end else float(p) for e, p in zip(edges, probabilities)]
        for (edges, end), probabilities in zip(ends, cdf)
    ]


#: What pandas' ``infer_dtype`` calls values that convert to floats but are not
#: the numbers a numeric column held (dates as epochs, complex numbers without
#: their imaginary part).
_NOT_NUMBERS = {
    "datetime64",
    "datetime",
    "date",
    "timedelta64",
    "timedelta",
    "time",
    "period",
    "interval",
    "complex",
}
#: A later partial_fit batch warns when a numeric column's values lie further
#: beyond the first batch's range than this fraction of its width: decoded values
#: keep to that range. Within it, iid batches of 64 rows of normal or exponential
#: columns did not warn; with a tenth of the width, 15-19 of 19 did.
BATCH_RANGE_MARGIN = 0.5
#: Rows read at a time when looking for the columns that gate missing values.
_GATE_CHUNK = 8192
#: A state of a gate supports its rule when, were the column's missing values
#: independent of the state, at least this many of its rows would break the
#: rule. Between gates that decide as many rows, the one whose rules have more
#: support wins: a column with one level per row decides every row by
#: chance, and sampling from it ties the missing values to nothing.
_GATE_SUPPORT = 5


def _state_codes(column, X):
    """Per-row codes of the state a column can gate missing values with, or None.

    A categorical column's level (its missing level last), a boolean's 0/1, a
    numeric column's missing indicator; None for columns that cannot gate.
    """
    start = column.start
    if column.kind == "categorical":
        block = X[:, start : start + column.width]
        return np.where(block.max(axis=1) > 0.5, block.argmax(axis=1), -1)
    if column.kind == "boolean" or (column.kind == "numeric" and column.flagged):
        return (X[:, _flag_entry(column)] > 0.5).astype(np.int64)
    return None


def _flag_entry(column):
    """The encoded 0/1 entry of a boolean's value or a numeric column's indicator."""
    return column.start if column.kind == "boolean" else column.start + 1


def _agrees(rule, at, gate):
    """Whether a gate's states ``gate`` agree with ``rule``, where its column is ``at``.

    ``at`` says the column is missing (or at its point); the rule's
    ``missing`` states say it must be, its ``observed`` states that it must
    not be. The arrays broadcast.
    """
    return np.where(at, ~np.isin(gate, rule["observed"]), ~np.isin(gate, rule["missing"]))


def _state_name(column, code):
    """A state of a column (as :func:`_state_codes` gives it) in words."""
    if column.kind == "boolean":
        return str(bool(code))
    if column.kind == "numeric":
        if column.point is not None and not column.missing:
            return f"{'' if code else 'not '}{column.point:g}"
        return "missing" if code else "present"
    if column.missing and code == column.width - 1:
        return "missing"
    return repr(column.levels[code]) if code < len(column.levels) else "a rare level"


def _missing_code(column):
    """The state code (as :func:`_state_codes` gives it) of a missing value."""
    return column.width - 1 if column.kind == "categorical" else 1


def find_gates(columns, X):
    """Rules that tie a column's missing values to another column's state.

    For each column with missing values (the numeric ones in order, then the
    categorical ones), the other column whose states decide it on the most
    rows: the states under which the column was always missing in fit, and
    those under which it never was. Decoding then sets the missing value (a
    numeric column's indicator, a categorical column's missing level) from the
    gate's decoded state where it decides, and keeps the drawn one elsewhere.
    A gate may itself be gated, never in a cycle: where missing values nest
    (a later measurement missing only when an earlier one is), the rules form
    a chain, and decoding applies each gate's own rule before the rules it
    gates (:func:`decoding_order`). On ties, the gate whose states decide
    more rows with support wins (``_GATE_SUPPORT``), then a gate that is not
    gated itself, then the one with more states. Returns a list of dicts
    ``{"column", "gate", "missing", "observed"}`` (table column positions;
    state codes as :func:`_state_codes` gives them).
    """
    codes = {i: _state_codes(c, X) for i, c in enumerate(columns)}
    candidates = [j for j, code in codes.items() if code is not None]
    targets = [i for i, c in enumerate(columns) if c.kind == "numeric" and c.flagged]
    targets += [i for i, c in enumerate(columns) if c.kind == "categorical" and c.missing]
    if not targets or not candidates:
        return []
    # Rows per state of every candidate gate, and missing rows of every target
    # per state, at once: one one-hot matrix of all candidates' states
    # (codes start at -1) times the targets' missing indicators, in row
    # chunks, so that wide tables stay fast and memory stays bounded.
    sizes = [int(codes[j].max()) + 2 for j in candidates]
    offsets = dict(zip(candidates, np.cumsum([0, *sizes[:-1]])))
    n, width = X.shape[0], int(sum(sizes))
    rows = np.zeros(width)
    missed = np.zeros((len(targets), width))
    for begin in range(0, n, _GATE_CHUNK):
        part = slice(begin, min(begin + _GATE_CHUNK, n))
        states = np.column_stack([codes[j][part] + 1 + offsets[j] for j in candidates])
        one_hot = sp.csr_matrix(
            (
                np.ones(states.size),
                states.ravel(),
                np.arange(0, states.size + 1, len(candidates)),
            ),
            shape=(states.shape[0], width),
        )
        rows += np.asarray(one_hot.sum(axis=0)).ravel()
        missing = np.column_stack(
            [codes[i][part] == _missing_code(columns[i]) for i in targets]
        )
        missed += (one_hot.T @ missing.astype(np.float64)).T
    parent, children, rules = {}, {}, []
    for t, i in enumerate(targets):
        best = None
        below = _gated_through(children, i)  # as gates of i, these close a cycle
        for j, size in zip(candidates, sizes):
            if j in below:
                continue
            cells = slice(offsets[j], offsets[j] + size)
            count, miss = rows[cells], missed[t, cells]
            present = count > 0
            always = np.flatnonzero(present & (miss == count))
            never = np.flatnonzero(present & (miss == 0))
            rate = miss.sum() / n
            if columns[i].point is not None:  # every state of a point's rule has support
                always = always[count[always] * (1 - rate) >= _GATE_SUPPORT]
                never = never[count[never] * rate >= _GATE_SUPPORT]
            decided = (count[always].sum() + count[never].sum()) / n
            # On ties, the gate whose rules have more support, then one that is
            # not gated itself (fewer links to decode), then the one with more
            # states (an arm, not the flag it decides: the flag can follow it,
            # see find_functions, where a gate is no column's child).
            supported = (
                count[always][count[always] * (1 - rate) >= _GATE_SUPPORT].sum()
                + count[never][count[never] * rate >= _GATE_SUPPORT].sum()
            ) / n
            score = (decided, supported, j not in parent, size)
            if decided > 0 and (best is None or score > best[0]):
                best = (score, j, (always - 1).tolist(), (never - 1).tolist())
        if best is not None:
            _, j, always, never = best
            parent[i] = j
            children.setdefault(j, []).append(i)
            rules.append(
                {
                    "column": i,
                    "gate": j,
                    "missing": [int(v) for v in always],
                    "observed": [int(v) for v in never],
                }
            )
    return rules


def _gated_through(children, i):
    """``i`` and the columns whose rules hang on it, directly or down a chain."""
    found, stack = {i}, [i]
    while stack:
        for k in children.get(stack.pop(), ()):
            if k not in found:
                found.add(k)
                stack.append(k)
    return found


def decoding_order(gates, parent="gate"):
    """The rules of :func:`find_gates`, each gate's own rule before those it gates.

    With ``parent="parent"``, the rules of :func:`find_functions`, each
    parent's own rule first. Raises ValueError when the rules form a cycle (a
    corrupted file's).
    """
    by_column = {rule["column"]: rule for rule in gates}
    order, done = [], set()
    for rule in gates:
        pending, path = [], set()  # the rule, its gate's rule, and so on up the chain
        while rule is not None and rule["column"] not in done:
            if rule["column"] in path:
                raise ValueError("the rules form a cycle.")
            path.add(rule["column"])
            pending.append(rule)
            rule = by_column.get(rule[parent])
        done |= path
        order.extend(reversed(pending))  # no recursion: chains can be long
    return order


#: A categorical or boolean column is a function of another (its parent) when
#: each of the parent's states held one of its states in fit, and, were the two
#: independent, at least this many rows would have broken that (the sum over
#: the parent's states of their rows but one times the share of the other
#: states of the column: a state of one row cannot break it). By chance, a
#: column of a few rows per level (an identifier: of one row each), or one that
#: is nearly constant, is a function of many others; tied to them, samples
#: would copy the training rows.
_FUNCTION_SUPPORT = 10
#: :func:`find_functions` first tries every pair on this many rows (a random
#: subset), then checks the pairs that pass on every row: wide tables stay fast.
_FUNCTION_ROWS = 4096


def _function_lookup(rule, parent):
    """A rule of :func:`find_functions` as an array: the state of each parent state.

    -1 for a parent state the rule does not map (one fit never saw).
    """
    lookup = np.full(_n_states(parent), -1, dtype=np.int64)
    source, target = np.asarray(rule["map"], dtype=np.int64).reshape(-1, 2).T
    lookup[source] = target
    return lookup


def _series_states(column, series):
    """A categorical or boolean column's state codes from its values; -1 where unknown.

    A level fit did not see, and a missing value where fit saw none (a later
    batch's), are -1.
    """
    if column.kind == "categorical":
        return _level_states(column, series)
    states = np.full(len(series), -1, dtype=np.int64)
    present = series.notna().to_numpy()
    states[present] = _flags(series[present], column.name).astype(np.int64)
    return states


def _n_states(column):
    """The number of states of a categorical or boolean column (:func:`_state_codes`)."""
    return column.width if column.kind == "categorical" else 2


def find_functions(columns, X, gates):
    """Rules that make a categorical or boolean column a function of another.

    A treatment arm and its treatment flag, a country and its region: where
    every state (level, pool of rare levels, missing level; a boolean's 0/1)
    of a parent held one state of the column in every row of ``X``, with
    support (``_FUNCTION_SUPPORT``), decoding sets the column from its
    parent's decoded state, as the data always did. Of the parents a column
    has, the one with the fewest states wins (a region, not the country that
    decides it too; then the first column), never one that closes a cycle
    (a column and its code: one is the parent). A column whose missing values
    a gate decides (see :func:`find_gates`) takes no part, and a gate is no
    column's child: their states follow those rules (a gate may be a
    parent, whose state decoding settles first). A column's pooled rare
    levels are one state, which decoding draws a level of by its count: a
    rule can say that a column's level is rare, not which. Returns a list of dicts
    ``{"column", "parent", "map"}``, ``map`` a sorted list of ``[parent
    state, state]`` pairs (codes as :func:`_state_codes` gives them).
    """
    gated = {rule["column"] for rule in gates}
    deciding = {rule["gate"] for rule in gates}
    eligible = [
        i
        for i, c in enumerate(columns)
        if c.kind in ("categorical", "boolean") and i not in gated
    ]
    if len(eligible) < 2:
        return []
    S = np.column_stack(
        [_series_states(columns[i], X[columns[i].name]) for i in eligible]
    ).astype(np.int32)
    n, m = S.shape
    varies = (S != S[:1]).any(axis=0)  # a constant column is a function of any other
    varies &= np.array([i not in deciding for i in eligible])  # a gate is no child
    passes = (S,)
    if n > _FUNCTION_ROWS:
        subset = np.random.RandomState(0).choice(n, _FUNCTION_ROWS, replace=False)
        passes = (S[np.sort(subset)], S)
    found = {}
    for p in range(m):
        candidates = varies.copy()
        candidates[p] = False
        for rows in passes:
            cols = np.flatnonzero(candidates)
            if not cols.size:
                break
            order = np.argsort(rows[:, p], kind="stable")
            parent, child = rows[order, p], rows[:, cols][order]
            same = parent[1:] == parent[:-1]
            candidates[cols] = ~((child[1:] != child[:-1]) & same[:, None]).any(axis=0)
        found[p] = candidates
    children, rules = {}, {}
    for q, i in enumerate(eligible):
        best = None
        for p, j in enumerate(eligible):
            if not found[p][q] or j in _gated_through(children, i):
                continue
            parent, child = S[:, p], S[:, q]
            share = np.bincount(child) / n
            count = np.bincount(parent, minlength=_n_states(columns[j]))
            target = np.zeros(count.size, dtype=np.int64)
            target[parent] = child
            present = np.flatnonzero(count)
            # a state of one row cannot break the rule: c rows give c - 1 chances
            support = ((count[present] - 1) * (1 - share[target[present]])).sum()
            size = present.size  # the parent's states in fit
            if support >= _FUNCTION_SUPPORT and (best is None or size < best[0]):
                mapping = [[int(v), int(target[v])] for v in present]
                best = (size, j, mapping)
        if best is not None:
            _, j, mapping = best
            children.setdefault(j, []).append(i)
            rules[i] = {"column": i, "parent": j, "map": mapping}
    return [rules[i] for i in sorted(rules)]


def _rules(columns, X, gates):
    """The gates and the functions of a table (:func:`find_functions`).

    A gate that is a function of the column it gates, through that column's
    missing level too (a flag that is False where an arm is missing and in
    arm "a", True in the others), says no more than the function does:
    decoding the column and then the flag from it keeps both. Such a gate
    gives way, so that the column, no longer gated, can decide the flag:
    else the flag decided only where the arm is missing, and samples drew it
    against the arm (38% of them, with 15 of 400 arms missing).
    """
    linked = {}  # how many gate rules each column takes part in
    for rule in gates:
        for j in (rule["column"], rule["gate"]):
            linked[j] = linked.get(j, 0) + 1
    # a gate is no column's child: the flag must gate nothing else, and both
    # must be categorical or boolean (the gated one categorical: its missing level)
    candidates = [
        rule
        for rule in gates
        if linked[rule["gate"]] == 1
        and columns[rule["column"]].kind == "categorical"
        and columns[rule["gate"]].kind in ("categorical", "boolean")
    ]
    if not candidates:
        return gates, find_functions(columns, X, gates)
    free = find_functions(columns, X, [])
    implied = {(rule["column"], rule["parent"]) for rule in free}
    dropped = [rule for rule in candidates if (rule["gate"], rule["column"]) in implied]
    if not dropped:
        return gates, find_functions(columns, X, gates)
    kept = [rule for rule in gates if rule not in dropped]
    functions = find_functions(columns, X, kept)
    decided = {(rule["column"], rule["parent"]) for rule in functions}
    if all((rule["gate"], rule["column"]) in decided for rule in dropped):
        return kept, functions
    return gates, find_functions(columns, X, gates)


class Table:
    """The encoding of a fitted table: each column's kind, levels and marginal.

    Numeric columns are mapped to normal scores by their marginal model (see
    :class:`Column`) and modelled with a Gaussian (squared error for the
    autoencoder); ``log_jacobian`` gives the change of variables that keeps
    scores densities in the original units. A numeric column with missing
    values in fit gets a 0/1 missing indicator beside it (Bernoulli) and its
    missing entries are left out of the Gaussian term; where the data tie its
    missing values to another column's state (``gates``), decoding follows
    that rule; a categorical or boolean column that another decides in every
    row of fit (``functions``, see :func:`find_functions`) is decoded from it.
    Booleans are Bernoulli. Categorical columns are one-hot blocks
    under a softmax over the levels seen in fit (all the levels a category
    dtype declares for ``partial_fit``, whose later batches may hold them), with
    one more level for "missing" when fit saw missing values; other levels
    encode as all zeros, as ``OneHotEncoder(handle_unknown="ignore")`` does,
    and are never sampled (a category dtype keeps its declared levels).

    A column that had no missing values in fit but has some later is imputed:
    a numeric entry with the column's median score (0), a boolean one with the
    share of True in fit, and a categorical one as all zeros (like an unknown
    level).

    An array with missing values is a table of numeric columns named by their
    positions (``array=True``): it encodes and decodes numpy arrays, without
    pandas.

    ``likelihood_gates`` says whether the likelihood leaves out what the gates
    decide, ``censored`` whether a Gaussian scores the discrete values of the
    numeric columns as cells (see :meth:`likelihood`): True for every fit,
    False for a table loaded from a file written before, whose model trained
    without.
    """

    #: Tables pickled before :func:`find_functions` existed have none.
    functions = ()

    def __init__(
        self, X, categorical_features, numeric_transform="auto", declared=False, seed=0
    ):
        _check_unique(X)
        mask = (
            np.zeros(X.shape[1], dtype=bool)
            if categorical_features is None or _is_from_dtype(categorical_features)
            else _categorical_mask(X, categorical_features)
        )
        _check_transform_names(numeric_transform, X.columns)
        self.array = False
        self.likelihood_gates = self.censored = True
        self.columns, start, identifiers, poolable, inexact = [], 0, [], {}, []
        for name, declared_categorical in zip(X.columns, mask):
            series = X[name]
            kind = _kind(series, declared_categorical)
            missing = bool(series.isna().any())
            column = Column(name, kind, series.dtype, start, missing)
            if kind == "boolean" and missing:  # a nullable boolean: three levels
                column.kind, column.levels = "categorical", [False, True]
                # a value no row holds is not sampled (nor imputed) until a
                # partial_fit batch holds it, but scores as a level never seen
                seen = set(_unique(series))
                column.unseen = [i for i in (0, 1) if column.levels[i] not in seen] or None
            elif kind == "boolean":  # the share of True imputes later missing values
                column.mean = float(series.to_numpy(dtype=np.float64).mean())
            elif kind == "categorical":
                seen = _sorted(_unique(series))
                if isinstance(series.dtype, pd.CategoricalDtype):
                    levels = series.cat.categories.tolist()
                    # fit gives levels that never occur no probability; partial_fit
                    # keeps every declared level, as later batches may hold them
                    column.levels = levels if declared else [v for v in levels if v in seen]
                    if declared:  # never sampled until a batch holds them
                        column.unseen = [i for i, v in enumerate(levels) if v not in seen]
                else:
                    column.levels = seen
                column.novel = _novel_level_probability(series)
                n_values = int(series.notna().sum())
                if len(seen) > max(IDENTIFIER_LEVELS, n_values / 2):
                    identifiers.append(
                        f"{name!r} ({len(seen):,} levels in {n_values:,} values)"
                    )
                if not declared and len(seen) > IDENTIFIER_LEVELS:
                    counts = series.value_counts(dropna=True)
                    counts = counts[counts > 0]  # a category dtype lists unused levels
                    rare = dict(counts[counts < RARE_LEVEL_COUNT].items())
                    if len(rare) > len(counts) / 2:  # mostly rare levels
                        poolable[len(self.columns)] = rare
            elif kind == "numeric":
                values = series.to_numpy(dtype=np.float64, na_value=np.nan)
                column.integer = types.is_integer_dtype(series.dtype)
                if column.integer and np.nanmax(np.abs(values), initial=0) >= 2.0**53:
                    inexact.append(repr(name))
                transform = resolve_transform(numeric_transform, name)
                fit_numeric(column, values, transform, seed)
            self.columns.append(column)
            start += column.width
        self.width = start
        if isinstance(numeric_transform, dict):
            other = [
                c.name
                for c in self.columns
                if c.kind != "numeric" and c.name in numeric_transform
            ]
            if other:
                raise ValueError(
                    f"numeric_transform names columns that are not numeric: {other} "
                    "(categorical or boolean, by dtype or categorical_features); name "
                    "only numeric columns."
                )
        missing = self._any_missing()
        # A column of mostly rare levels (an identifier, or such) that gates
        # columns whose missing values nest keeps its levels: each sample then
        # copies one real row's pattern of missing values across them
        # (statsmodels' fertility). Otherwise its rare levels decide each gated
        # column by chance, and it pools: their missing values go to other
        # gates or to the model. Tables too large to encode before pooling
        # pool first.
        gates, gating = [], set()
        first = missing and (not poolable or X.shape[0] * self.width <= _POOL_FIRST_ENTRIES)
        if first:
            encoded = self.encode(X)
            gates = find_gates(self.columns, encoded)
            gated = {}
            for rule in gates:
                gated.setdefault(rule["gate"], []).append(rule["column"])
            gating = {
                j
                for j, targets in gated.items()
                if _nested(
                    [
                        _state_codes(self.columns[i], encoded)
                        == _missing_code(self.columns[i])
                        for i in targets
                    ]
                )
            }
        pooled = [
            _pool_rare_levels(self.columns[i], rare)
            for i, rare in poolable.items()
            if i not in gating
        ]
        if any(pooled):
            start = 0
            for column in self.columns:
                column.start = start
                start += column.width
            self.width = start
        if missing and (any(pooled) or not first):
            gates = find_gates(self.columns, self.encode(X))
        self.gates, self.functions = _rules(self.columns, X, gates)
        if identifiers:
            _warn_identifiers(identifiers, self.width, len(self.columns), declared)
        if inexact:
            _warn(
                f"Integer column{'s' if len(inexact) > 1 else ''} {', '.join(inexact)} "
                f"hold{'' if len(inexact) > 1 else 's'} values beyond 2**53, which skvae "
                "models as float64: samples and "
                "reconstructions can differ from the fitted values by the float64 "
                "spacing there (256 at 1e18), and fall outside their range by as "
                "much. Subtract an offset or change the unit first (nanoseconds to "
                "seconds, say), or make identifiers strings.",
                UserWarning,
            )

    @classmethod
    def from_array(cls, X, numeric_transform="auto", seed=0):
        """The table of a float array with missing values: one numeric column each."""
        _check_transform_names(numeric_transform, range(X.shape[1]))
        table = cls.__new__(cls)
        table.array, table.columns, start = True, [], 0
        table.likelihood_gates = table.censored = True
        for j in range(X.shape[1]):
            values = X[:, j].astype(np.float64)
            column = Column(j, "numeric", X.dtype, start, bool(np.isnan(values).any()))
            fit_numeric(column, values, resolve_transform(numeric_transform, j), seed)
            table.columns.append(column)
            start += column.width
        table.width = start
        table.gates = find_gates(table.columns, table.encode(X))
        table.functions = []
        return table

    def heavy_atoms(self, X):
        """Where the encoded rows ``X`` hold a heavy atom, and its cell, or None.

        Used where the VAE's likelihood does not score cells (see
        :meth:`scores_cells`: the student-t, tables from files written
        before): it trains on such atoms spread over their cells instead
        (:func:`~._training.dequantizer`). A heavy atom's cell holds more than
        ``POINT_MASS`` of its column (so a column has at most one): in a
        column with missing values, whose flag cannot be a ``point``'s, or
        among the other values of a column with a point (its second value,
        where that holds most of the rest); "standard" columns have no cells.

        Returns
        -------
        atoms : tuple ``(columns, inside, p_low, p_high)`` or None
            The encoded columns with a heavy atom, shape (k,); ``inside`` of
            shape (n_samples, k), True where an observed entry lies in the
            atom's cell (decodes to the atom); the cell's bounds as
            probabilities, shape (k,) each.
        """
        columns, inside, p_low, p_high = [], [], [], []
        for c in self.columns:
            cdf = _atom_cdf(c)
            if cdf is None:
                continue
            low, high = cdf
            heavy = np.flatnonzero(high - low > POINT_MASS)
            if not heavy.size:
                continue
            low, high = low[heavy[0]], high[heavy[0]]
            z = X[:, c.start]
            at = (z >= ndtri(low)) & (z <= ndtri(high))
            if c.missing:  # a missing entry's score (0) stays as it is
                at &= X[:, _flag_entry(c)] < 0.5
            columns.append(c.start)
            inside.append(at)
            p_low.append(low)
            p_high.append(high)
        if not columns:
            return None
        return np.array(columns), np.column_stack(inside), np.array(p_low), np.array(p_high)

    def _any_missing(self):
        """Whether a column has missing values (or a point) that a gate could decide."""
        return any(c.kind != "boolean" and c.flagged for c in self.columns)

    def names_string_storage(self):
        """Whether :meth:`to_state` names a NaN-valued string dtype's storage ("str[...]").

        Readers before it (file format 5, pickle version 3) cannot read that name.
        """
        if pd is None:
            return False
        dtypes = [c.dtype for c in self.columns]
        dtypes += [d.categories.dtype for d in dtypes if isinstance(d, pd.CategoricalDtype)]
        return any(_dtype_name(d).startswith("str[") for d in dtypes if d is not None)

    def to_state(self):
        """The encoding as plain values (for files that must not hold code)."""
        columns = []
        for c in self.columns:
            state = dict(vars(c))
            if isinstance(c.dtype, np.dtype):  # pandas may be missing (an array)
                state["dtype"] = str(c.dtype)
            elif isinstance(c.dtype, pd.CategoricalDtype):
                state["dtype"] = {
                    "category": bool(c.dtype.ordered),
                    "categories": c.dtype.categories.tolist(),
                    "categories_dtype": _dtype_name(c.dtype.categories.dtype),
                }
            else:
                state["dtype"] = _dtype_name(c.dtype)
            for key in ARRAY_FIELDS:
                value = state[key]
                state[key] = None if value is None else [float(v) for v in value]
            columns.append(state)
        gates = [dict(rule) for rule in self.gates]
        functions = [
            {**rule, "map": [list(pair) for pair in rule["map"]]} for rule in self.functions
        ]
        return {
            "columns": columns,
            "width": self.width,
            "gates": gates,
            "array": self.array,
            "likelihood_gates": self.likelihood_gates,
            "censored": self.censored,
            **({"functions": functions} if functions else {}),
        }

    @classmethod
    def from_state(cls, state):
        """Rebuild a Table from :meth:`to_state`'s values."""
        table = cls.__new__(cls)
        table.columns = []
        table.array = bool(state.get("array", False))
        # Files written before the likelihood had gates: their models trained without.
        table.likelihood_gates = bool(state.get("likelihood_gates", False))
        # and before a Gaussian's discrete values were censored
        table.censored = bool(state.get("censored", False))
        for values in state["columns"]:
            values = dict(values)
            dtype = values["dtype"]
            if isinstance(dtype, dict):
                categories = dtype.get("categories", values["levels"])
                if "categories_dtype" in dtype:  # int8 levels stay int8, say
                    categories = _index(categories, dtype["categories_dtype"])
                values["dtype"] = pd.CategoricalDtype(categories, dtype["category"])
            elif table.array:
                values["dtype"] = np.dtype(dtype)
            else:
                values["dtype"] = _dtype_of(dtype)
            for key in ARRAY_FIELDS:
                if values.get(key) is not None:
                    values[key] = np.asarray(values[key], dtype=np.float64)
            table.columns.append(Column(**values))
        table.width = int(state["width"])
        table.gates = [dict(rule) for rule in state.get("gates", [])]
        table.functions = [
            {**rule, "map": [list(pair) for pair in rule["map"]]}
            for rule in state.get("functions", [])
        ]
        return table

    @property
    def signature(self):
        """What the encoding's structure depends on: names, kinds, levels, missingness.

        A column with pooled rare levels adds them at the end, so that the
        signatures of tables without (those saved before pools existed) stay
        as they were.
        """
        return tuple(
            (c.name, c.kind, tuple(c.levels or ()), c.missing)
            + ((tuple(c.rare),) if c.rare else ())
            + ((("point", c.point),) if c.point is not None else ())
            for c in self.columns
        )

    @property
    def numeric_only(self):
        """Whether every column is numeric (an array may stand for the DataFrame)."""
        return all(c.kind == "numeric" for c in self.columns)

    def likelihood(self, numeric, options):
        """The description of the table's likelihood: a sum of per-block likelihoods.

        Numeric columns form one block of the likelihood ``numeric`` (with
        ``options``) whose entries drop out where their missing indicator is
        1; booleans and missing indicators form one Bernoulli block; each
        categorical column is a categorical block over its levels. The rules of
        :func:`find_gates` become the likelihood's gates: where a rule decides
        a missing value and the row follows it, the missing indicator (a
        categorical column: its whole block, when forced missing) drops out,
        so the decoder learns the missing values of the rows the rule leaves
        open, and a held-out row's score counts the rule as certain. A
        "gaussian" numeric block whose columns have atoms becomes an
        "interval_gaussian" one, which scores an atom by the probability of
        its cell (:func:`score_cells`).
        """
        numeric_columns, indicators, binary, blocks, cells = [], [], [], [], []
        for c in self.columns:
            if c.kind == "numeric":
                numeric_columns.append(c.start)
                cells.append(score_cells(c))
                indicators.append(c.start + 1 if c.flagged else -1)
                binary += [c.start + 1] if c.flagged else []
            elif c.kind == "boolean":
                binary.append(c.start)
            else:
                blocks.append(
                    _block("categorical", list(range(c.start, c.start + c.width)))
                )
        if binary:
            blocks.insert(0, _block("bernoulli", sorted(binary)))
        if self.scores_cells(numeric):
            numeric, options = "interval_gaussian", {**options, "cells": cells}
        if numeric_columns:
            has_indicator = any(i >= 0 for i in indicators)
            blocks.insert(
                0,
                _block(
                    numeric, numeric_columns, options, indicators if has_indicator else None
                ),
            )
        gated = getattr(self, "likelihood_gates", False)  # pickles from before: False
        # a point's flag is its column's value: the decoder learns it everywhere
        rules = [rule for rule in self.gates if self.columns[rule["column"]].missing]
        gates = [self._gate(rule) for rule in rules] if gated else []
        return {"name": "blocks", "blocks": blocks, **({"gates": gates} if gates else {})}

    def scores_cells(self, numeric):
        """Whether the likelihood ``numeric`` of the numeric columns scores cells.

        A "gaussian" block does, where a column has atoms (:func:`score_cells`),
        except in tables from files written before (``censored`` False); the
        others ("student_t", the autoencoder's "squared_error") score points.
        """
        return (
            numeric == "gaussian"
            and getattr(self, "censored", False)  # pickles from before: False
            and any(_has_cells(c) for c in self.columns)
        )

    def _gate(self, rule):
        """A rule of :func:`find_gates` as a gate of the likelihood (see ``Blocks``)."""
        target, gate = self.columns[rule["column"]], self.columns[rule["gate"]]

        def expression(states):  # const + sum coef * x[column]: 1 in these states
            if gate.kind == "categorical":
                return [0.0, [[gate.start + s, 1.0] for s in states if s >= 0]]
            const = 1.0 if 0 in states else 0.0
            coef = (1.0 if 1 in states else 0.0) - const
            return [const, [[_flag_entry(gate), coef]] if coef else []]

        missing = target.start + _missing_code(target)
        if target.kind == "numeric":
            entries, kept = [missing], expression(rule["observed"])
        else:  # a level's term carries which level: only a forced missing one drops
            entries = list(range(target.start, target.start + target.width))
            kept = [0.0, []]
        return {
            "entries": entries,
            "missing": missing,
            "forced": expression(rule["missing"]),
            "kept": kept,
        }

    def changed_parameters(self, X, categorical_features, numeric_transform):
        """The encoding parameters whose values now would encode DataFrame X otherwise.

        ``partial_fit`` continues the fitted encoding: a column that
        ``categorical_features`` now declares categorical (or no longer
        does), or a numeric column that ``numeric_transform`` now maps
        otherwise, would need a new one.
        """
        changed = []
        if _is_from_dtype(categorical_features) or categorical_features is None:
            declared = set()
        else:
            mask = _categorical_mask(X, categorical_features)
            declared = {name for name, flag in zip(X.columns, mask) if flag}
        for c in self.columns:
            by_dtype = _kind(pd.Series([], dtype=c.dtype, name=c.name), False)
            now = "categorical" if c.name in declared else by_dtype
            if (now == "numeric") != (c.kind == "numeric"):
                changed.append("categorical_features")
                break
        _check_transform_names(numeric_transform, X.columns)
        for c in self.columns:
            fitted_empty = c.transform == "standard" and c.low == c.high == 0.0
            if (
                c.kind == "numeric"
                and not fitted_empty
                and resolve_transform(numeric_transform, c.name) != c.transform
            ):
                changed.append("numeric_transform")
                break
        return changed

    def check_batch(self, X, warned=()):
        """Warn about what a later ``partial_fit`` batch holds that the encoding lacks.

        Levels the first batch neither showed nor declared encode as unknown
        (all zeros), and missing values in a column that had none are imputed:
        neither is learned. Numeric values well beyond the first batch's range
        (by more than ``BATCH_RANGE_MARGIN`` of its width) are learned, but
        decoded values stay within that range; so are values that are not whole
        numbers in a column fitted as integers, decoded as whole numbers. A
        column that followed another
        in every row of the first batch (:func:`find_functions`) but does not in
        this one keeps the first batch's rule. Each kind of finding warns once
        per column in a stream of batches: not again for a column in
        ``warned``.

        Parameters
        ----------
        X : DataFrame or ndarray
            The batch, validated.
        warned : tuple of (str, object)
            ``(kind, column name)`` pairs earlier batches warned about.

        Returns
        -------
        table : Table
            This table, or (when the batch holds declared levels that no batch
            held before) a copy that no longer keeps them from being sampled;
            the caller keeps it once the batch is learned.
        warned : tuple of (str, object)
            ``warned`` and the pairs this batch warned about (a tuple, which
            skops and pickle store as plain data).
        """
        table = self._with_levels_of(X)
        found = {"level": {}, "missing": [], "range": [], "rule": [], "integer": []}
        for rule in [] if self.array else self.functions:
            child, parent = self.columns[rule["column"]], self.columns[rule["parent"]]
            if ("rule", child.name) in warned:
                continue
            a, b = (_series_states(c, X[c.name]) for c in (child, parent))
            mapped = _function_lookup(rule, parent)[np.maximum(b, 0)]
            if np.any((a >= 0) & (b >= 0) & (mapped >= 0) & (mapped != a)):
                found["rule"].append((child.name, parent.name))
        for c in self.columns:
            if self.array:
                isna = np.isnan(X[:, c.name]).any()
            else:
                isna = X[c.name].isna().any()
            if not c.missing and isna and ("missing", c.name) not in warned:
                found["missing"].append(c.name)
            categorical = c.kind == "categorical" and not self.array
            if categorical and ("level", c.name) not in warned:
                known = set(c.levels) | set(c.rare or [])
                unknown = sorted(set(_unique(X[c.name])) - known, key=str)
                if unknown:
                    found["level"][c.name] = unknown
            if c.kind != "numeric":
                continue
            values = self._numbers(X, c)
            if c.integer and ("integer", c.name) not in warned:
                whole = values[np.isfinite(values)]
                if np.any(whole != np.round(whole)):
                    found["integer"].append(c.name)
            if c.low <= c.high and ("range", c.name) not in warned:
                margin = BATCH_RANGE_MARGIN * (c.high - c.low)
                if np.any(values < c.low - margin) or np.any(values > c.high + margin):
                    seen = c.atoms is not None  # fit_numeric sets them when it saw values
                    span = f"[{c.low:.4g}, {c.high:.4g}]" if seen else "no value"
                    found["range"].append((c.name, span))
        once = " (This warning is given once per column in a stream of batches.)"
        for name, unknown in found["level"].items():
            _warn(
                f"Column {name!r} holds levels that the encoding, fixed by fit or by "
                f"the first partial_fit batch, lacks: {unknown[:10]}; they are "
                "encoded as unknown and never learned. Declare every level with a "
                f"category dtype, e.g. X[{name!r}] = X[{name!r}].astype(pd."
                "CategoricalDtype(all_levels)), in the first batch of a stream that "
                "starts with partial_fit (fit keeps only the levels its rows hold), "
                f"or use fit on all the data.{once}",
                UserWarning,
            )
        if found["missing"]:
            _warn(
                f"Columns {found['missing']} hold missing values but had none in the "
                "data that fixed the encoding (fit's, or the first partial_fit "
                "batch): they are imputed, not modelled. Pass a first "
                "batch with missing values in these columns (for a categorical column, "
                f"its missing values are a level of its own), or use fit on all the "
                f"data.{once}",
                UserWarning,
            )
        if found["integer"]:
            _warn(
                f"Columns {found['integer']} hold values that are not whole numbers, "
                "but were integers in the data that fixed the encoding: they are "
                "learned as numbers, while samples and reconstructions stay whole "
                "numbers of the fitted dtype. Round them first, or use fit on all "
                f"the data with a float dtype.{once}",
                UserWarning,
            )
        wider = [f"{name!r} (first batch: {span})" for name, span in found["range"]]
        if wider:
            _warn(
                f"Column{'s' if len(wider) > 1 else ''} {', '.join(wider)} "
                f"hold{'' if len(wider) > 1 else 's'} values well beyond the range of "
                "the first partial_fit batch, which samples and reconstructions keep "
                "to. Pass a first batch that spans each column's range, or use fit on "
                f"all the data.{once}",
                UserWarning,
            )
        for name, parent in found["rule"]:
            _warn(
                f"Column {name!r} follows {parent!r} in every row of the first "
                "partial_fit batch, and samples and reconstructions keep to that "
                f"rule, but not in this batch. Pass a first batch with rows that "
                f"break it, or use fit on all the data.{once}",
                UserWarning,
            )
        new = {("level", name) for name in found["level"]}
        new |= {("rule", name) for name, _ in found["rule"]}
        new |= {("missing", name) for name in found["missing"]}
        new |= {("range", name) for name, _ in found["range"]}
        new |= {("integer", name) for name in found["integer"]}
        return table, tuple(warned) + tuple(sorted(new, key=str))

    def unseen_starts(self):
        """Output biases to start the declared levels no batch has held at.

        Their share in the batch, 0, would start them at the floor of the
        categorical's start (about -9.2, log 1e-4), from which one epoch per
        ``partial_fit`` call at a constant learning rate barely moves them: a
        level a third of every later batch held was still never sampled after
        30 calls. They start at an even share of their column instead; until a
        batch holds them they are not sampled anyway.

        Returns
        -------
        index, value : ndarray
            Encoded columns, and their log-shares ``-log(width)``.
        """
        index, value = [], []
        for c in self.columns:
            if c.kind == "categorical" and c.unseen:
                index += [c.start + k for k in c.unseen]
                value += [-np.log(c.width)] * len(c.unseen)
        return np.array(index, dtype=np.int64), np.array(value, dtype=np.float64)

    def _with_levels_of(self, X):
        """This table, or a copy whose ``unseen`` levels exclude those X holds."""
        if self.array or not any(c.unseen for c in self.columns):
            return self
        columns, changed = list(self.columns), False
        for i, c in enumerate(columns):
            if c.unseen:
                held = set(_unique(X[c.name]))
                unseen = [k for k in c.unseen if c.levels[k] not in held]
                if len(unseen) < len(c.unseen):
                    columns[i], changed = replace(c, unseen=unseen), True
        if not changed:
            return self
        table = copy.copy(self)
        table.columns = columns
        return table

    def log_novel(self, X, encoded):
        """Per-row log-probability of each categorical column's level being new or not.

        A categorical column's softmax covers the levels seen in fit, so a
        level it did not see would have probability 0. Each column instead
        keeps a probability ``novel`` for "a level not seen in fit" (see
        :func:`_novel_level_probability`): a row holding such a level gets
        ``log(novel)`` (the column's own term is 0, as it encodes as all
        zeros), a row holding a level seen in fit, or a missing value fit
        modelled, ``log(1 - novel)``, so that the column's probabilities sum
        to one. A missing value that fit did not see is left out, as it is
        from the model's terms. Tables fitted before ``novel`` existed give 0.
        ``encoded`` is :meth:`encode`'s matrix of X, whose all-zero blocks
        are the new levels and the missing values fit did not see.
        """
        total = np.zeros(X.shape[0])
        for c in self.columns:
            if c.kind != "categorical" or c.novel is None:
                continue
            missing = X[c.name].isna().to_numpy()
            new = (_state_codes(c, encoded) < 0) & ~missing
            total += np.where(new, np.log(c.novel), np.log1p(-c.novel))
            if not c.missing:
                total[missing] -= np.log1p(-c.novel)
        return total

    def log_pooled(self, X):
        """Per-row log-share of each rare level within its column's pool.

        The model gives the pooled rare levels one probability; a rare level
        takes its share of it, its count in fit over the pool's, so that the
        column's probabilities over its levels sum to one.
        """
        total = np.zeros(X.shape[0])
        for c in self.columns:
            if c.kind != "categorical" or not c.rare:
                continue
            share = np.log(np.asarray(c.rare_counts, dtype=np.float64))
            share -= np.log(np.sum(c.rare_counts))
            k = pd.Index(c.rare).get_indexer(X[c.name].astype(object))
            total[k >= 0] += share[k[k >= 0]]
        return total

    def log_jacobian(self, X):
        """Per-row ``sum_j log |dz_j / dx_j|`` of the observed numeric entries of X.

        Added to a density of the encoded rows, it gives the density of the rows
        in their original units (the change of variables of each column's map).
        """
        total = np.zeros(X.shape[0])
        for c in self.columns:
            if c.kind != "numeric":
                continue
            values = self._numbers(X, c)
            observed = ~np.isnan(values)
            if c.point is not None:  # the flag's probability, spread over the width
                at = values == c.point
                total[at] -= np.log(c.point_width)
                observed &= ~at
            total[observed] += to_scores(c, values[observed])[1]
        return total

    def _numbers(self, X, c):
        """A numeric column of X as float64, with NaN where missing."""
        if self.array or not _is_frame(X):  # an array table's names are positions
            j = c.name if self.array else self.columns.index(c)
            return np.asarray(X[:, j], dtype=np.float64)
        series = X[c.name]
        held = (
            series.cat.categories
            if isinstance(series.dtype, pd.CategoricalDtype)
            else series
        )
        inferred = types.infer_dtype(held, skipna=True)
        if inferred in _NOT_NUMBERS:  # as floats: epochs, or no imaginary part
            raise ValueError(
                f"Column {c.name!r} was numeric in fit but holds {inferred} values "
                f"now (dtype {series.dtype}); pass the numbers it held in fit."
            )
        try:
            return series.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"Column {c.name!r} was numeric in fit but holds values that "
                "are not numbers now."
            ) from exc

    def encode(self, X):
        """The encoded float64 matrix of a DataFrame with the fitted columns.

        The input is only read. Numeric values whose normal score float32
        cannot hold, infinite values and booleans that are not True or False
        raise a ValueError that names the column. An all-numeric table also
        encodes a 2-d array, column by column.
        """
        if _is_frame(X):
            _check_unique(X)
            absent = [c.name for c in self.columns if c.name not in X.columns]
            if absent:  # names sklearn does not check (not all strings)
                raise ValueError(
                    f"X lacks columns seen in fit: {absent}; pass a DataFrame with the "
                    "fitted columns."
                )
        out = np.zeros((X.shape[0], self.width))
        for c in self.columns:
            if c.kind == "numeric":
                values = self._numbers(X, c)
                if np.isinf(values).any():
                    raise ValueError(f"Input X contains infinity in column {c.name!r}.")
                missing = np.isnan(values)
                at = (
                    np.zeros(values.shape, dtype=bool)
                    if c.point is None
                    else (values == c.point)
                )
                z = np.zeros(values.shape)
                z[~missing & ~at] = to_scores(c, values[~missing & ~at])[0]
                if not (np.abs(z) <= _LARGEST).all():
                    raise ValueError(
                        f"Column {c.name!r} holds values too far from those seen in fit "
                        f"(mean {c.mean:.4g}, standard deviation {c.scale:.4g}) for "
                        "float32: standardized, they exceed 3e35. Check the column's "
                        "units, or refit on data that covers these values."
                    )
                out[:, c.start] = z
                if c.missing:
                    out[:, c.start + 1] = missing
                elif c.point is not None:  # missing where fit saw none: the point
                    out[:, c.start + 1] = at | missing
                continue
            series = X[c.name]
            if c.kind == "boolean":
                missing = series.isna().to_numpy()
                out[:, c.start] = c.mean  # missing where fit saw none: the share of True
                out[~missing, c.start] = _flags(series[~missing], c.name)
            else:
                codes = _level_states(c, series)
                rows = np.flatnonzero(codes >= 0)
                out[rows, c.start + codes[rows]] = 1.0  # unknown levels: all zeros
        return out

    def decode(self, M, rng=None, rare_rng=None, given=None, means=None):
        """A DataFrame with the fitted columns and dtypes from encoded rows.

        Parameters
        ----------
        M : ndarray of shape (n_samples, width)
            Encoded rows (draws from the likelihood) or decoder means:
            normal scores, probabilities of the binary columns,
            probabilities of each categorical level.
        rng : RandomState or None
            None decodes the most likely value (argmax, p > 0.5), which for
            draws is the drawn value; a RandomState draws the binary and
            categorical columns from the probabilities in ``M`` instead.
        rare_rng : RandomState or None
            Draws each pooled rare level by its count in fit (default: with
            ``rng``; with neither, the pool decodes to its most frequent level).
        given : ndarray of bool of shape (n_columns,) or None
            The columns whose values in ``M`` were given (``sample(given=)``):
            the columns of the gates' rules and of :func:`find_functions`
            are decided together, from the roots of their rules down, each
            in a state that agrees with its gate's or parent's and with
            every given column below it (:meth:`_decide_given`).
        means : ndarray of shape (n_samples, width) or None
            The probabilities ``M`` was drawn from, where it holds draws: a
            categorical gate redraws its level from them (default: ``M``).

        Returns
        -------
        X : DataFrame of shape (n_samples, n_columns), or ndarray for an array
            The rows, numeric values inside each column's fitted range; the
            missing values of gated columns follow their gate's state, and
            columns that another decides follow it (given columns decide
            their parents instead, up the chain).
        """
        values, states = {}, {}
        for i, c in enumerate(self.columns):
            if c.kind == "numeric":
                missing = self._binary(M[:, c.start + 1], rng) if c.flagged else None
                values[i] = [from_scores(c, M[:, c.start]), missing]
                states[i] = None if missing is None else missing.astype(np.int64)
            elif c.kind == "boolean":
                values[i] = self._binary(M[:, c.start], rng)
                states[i] = values[i].astype(np.int64)
            else:
                block = M[:, c.start : c.start + c.width]
                # declared levels that no partial_fit batch has held: never
                # drawn, but a given one is what it is
                if c.unseen and (given is None or not given[i]):
                    block = block.copy()
                    block[:, c.unseen] = 0.0
                values[i] = states[i] = self._choose(block, rng)
        probabilities = M if means is None else means
        gate_rng = rng if rng is not None else rare_rng
        if given is not None and given.any():
            self._decide_given(given, values, states, probabilities, gate_rng)
        else:
            # Columns that a parent decides: no gate decides their missing
            # values, and a parent is not gated, so they come before the
            # missing values' rules.
            self._decide_functions(values, states)
        # Missing values where the data tie them to a state: a gate's own rule
        # first, and each gated column's state as the rule leaves it.
        for rule in decoding_order(self.gates):
            state, i = states[rule["gate"]], rule["column"]
            forced = np.isin(state, rule["missing"])
            kept = np.isin(state, rule["observed"])
            if self.columns[i].kind == "numeric":
                missing = np.where(forced, True, values[i][1])
                values[i][1] = np.where(kept, False, missing)
                states[i] = values[i][1].astype(np.int64)
                continue
            c = self.columns[i]  # a categorical column: its missing level is last
            codes = np.where(forced, c.width - 1, values[i])
            redraw = kept & (codes == c.width - 1)
            if redraw.any():  # a level, drawn as the block's observed levels say
                block = M[redraw, c.start : c.start + c.width - 1]
                codes[redraw] = self._choose(np.maximum(block, 1e-12), rng)
            values[i] = states[i] = codes
        for i, c in enumerate(self.columns):  # a point's flag: the point itself
            if c.kind == "numeric" and c.point is not None:
                number, at = values[i]
                values[i] = [_clip_to(np.where(at, c.point, number), c.dtype), None]
        if self.array:
            out = np.empty((M.shape[0], len(self.columns)), dtype=self.columns[0].dtype)
            for i in range(len(self.columns)):
                number, missing = values[i]
                out[:, i] = number if missing is None else np.where(missing, np.nan, number)
            return out
        data = {}
        for i, c in enumerate(self.columns):
            if c.kind == "numeric":
                data[c.name] = _numeric_series(*values[i], c)
            elif c.kind == "boolean":
                data[c.name] = pd.Series(values[i], dtype=c.dtype)
            else:
                codes = _level_codes(values[i], c, rng if rare_rng is None else rare_rng)
                data[c.name] = _categorical_series(codes, c)
        return pd.DataFrame(data, columns=[c.name for c in self.columns])

    def _decide_given(self, given, values, states, probabilities, rng):
        """Decide the columns of the rules given some of them (see :meth:`decode`).

        The gates (:func:`find_gates`) and the rules of :func:`find_functions`
        form one forest: a column has one gate or one parent. Each column
        first allows the states under which every given column below it can
        hold its value (:meth:`_rule_states`, from the deepest up); then,
        from the roots down, a column that is not given takes its parent's
        state's image (:meth:`_follow`) and keeps its own state where that is
        allowed and agrees with its gate's rule, else takes one that is
        (:meth:`_take_allowed`): a categorical column a level drawn from
        ``probabilities`` (the most likely with ``rng=None``). Decided from
        the given columns up, a gate kept a state that the gates below it
        allowed and a given child of its own (a flag) did not. Where no state
        agrees (given columns that contradict each other), a column keeps its
        state, and the rules in :meth:`decode` then settle the gated ones.
        """
        held = set(np.flatnonzero(given).tolist())
        allowed = self._rule_states(states, held, len(probabilities))
        rules = [{**rule, "parent": rule["gate"]} for rule in self.gates]
        rules += list(self.functions)
        children = {rule["column"] for rule in rules}
        for j in allowed:
            if j not in children and j not in held:  # a root
                self._take_allowed(j, allowed[j], values, states, probabilities, rng)
        for rule in decoding_order(rules, "parent"):  # a parent's own state first
            i = rule["column"]
            if i in held:
                continue
            codes = np.arange(_n_states(self.columns[i]))
            parent = states[rule["parent"]][:, None]
            if "gate" in rule:  # the states the gate's rule leaves i
                follows = _agrees(rule, codes == _missing_code(self.columns[i]), parent)
            else:  # its parent's state's image, or any where the rule maps none
                mapped = self._follow(rule, values, states)[:, None]
                follows = (codes == mapped) | (mapped < 0)
            self._take_allowed(i, allowed[i] & follows, values, states, probabilities, rng)

    def _take_allowed(self, j, allowed, values, states, probabilities, rng):
        """Give column ``j`` an ``allowed`` state in the rows where it has none.

        ``allowed`` (n, n_states) is per row; a row where no state is allowed
        keeps its own. A categorical column draws a level from
        ``probabilities`` among the allowed ones (the most likely with
        ``rng=None``), a boolean or flagged column takes its other state.
        """
        column = self.columns[j]
        rows = np.arange(len(states[j]))
        redo = ~allowed[rows, states[j]] & allowed.any(axis=1)
        if not redo.any():
            return
        if column.kind == "categorical":
            block = probabilities[redo, column.start : column.start + column.width]
            block = np.where(allowed[redo], np.maximum(block, 1e-12), 0.0)
            state = states[j].copy()
            state[redo] = self._choose(block, rng)
            values[j] = state
        else:
            state = np.where(redo, 1 - states[j], states[j])
            if column.kind == "boolean":
                values[j] = state.astype(bool)
            else:
                values[j][1] = state.astype(bool)
        states[j] = state

    def _decide_functions(self, values, states):
        """Set the columns that a parent decides (:func:`find_functions`).

        As the data always had them, each parent's own rule first, from the
        roots of the rules' trees down; given columns are decided with the
        gates instead (:meth:`_decide_given`).
        """
        for rule in decoding_order(self.functions, "parent"):
            self._follow(rule, values, states)

    def _follow(self, rule, values, states):
        """Set a rule's column to the image of its parent's state, where the rule maps it.

        Returns the image per row (-1 where the rule maps no state, and the
        column keeps its own).
        """
        i, j = rule["column"], rule["parent"]
        mapped = _function_lookup(rule, self.columns[j])[states[j]]
        state = np.where(mapped >= 0, mapped, states[i])
        values[i] = state.astype(bool) if self.columns[i].kind == "boolean" else state
        states[i] = state
        return mapped

    def _function_states(self, states, held, gated):
        """Per column of the rules' trees, the states that agree with the ``held`` ones.

        ``states`` holds the columns' states (codes, as :func:`_state_codes`
        gives them) of shape (n,); a held (given) column allows its own state,
        a gate (a root) the states that agree with the held columns whose
        missing values it decides, directly or down a chain of gates, as
        ``gated`` (what :meth:`_gate_states` allows) says. Every column
        allows only states that its rules map to states its children allow,
        from the deepest up; a rule says nothing of a column's state that no
        parent state led to in fit (a declared level never seen, given).
        Returns ``{column: bool array of shape (n, n_states)}``; a row with
        no allowed state has conditions that contradict each other (see
        :meth:`check_given_functions`).
        """
        order = decoding_order(self.functions, "parent")
        allowed = {}
        for rule in order:
            for j in (rule["parent"], rule["column"]):
                if j not in allowed:
                    allowed[j] = self._own_states(j, states, held, len(states[j]))
                    if j in gated:
                        allowed[j] &= gated[j]
        for rule in reversed(order):  # a column's children before its own rule
            lookup = _function_lookup(rule, self.columns[rule["parent"]])
            child = allowed[rule["column"]]
            # a parent state the rule does not map (one fit never saw) leaves the
            # column free, and a row whose column allows no state the rule maps
            # to (a given level fit never saw) is free of the rule
            image = np.unique(lookup[lookup >= 0])
            bound = child[:, image].any(axis=1, keepdims=True)
            agree = np.where(lookup >= 0, child[:, np.maximum(lookup, 0)], True)
            allowed[rule["parent"]] &= agree | ~bound
        return allowed

    def _rule_states(self, states, held, n):
        """Per column of the gates' and the functions' rules, the states that agree.

        With the ``held`` ones, over one forest: a gated column is no
        column's parent or child in the rules of :func:`find_functions`, and
        a gate no column's child there, so a column's chains of gates
        (:meth:`_gate_states`) all lie below it, and its functions' rules
        (:meth:`_function_states`) start from what they allow. ``states`` and
        the result are as theirs; ``n`` is the number of rows.
        """
        gated = self._gate_states(states, held, n)
        return {**gated, **self._function_states(states, held, gated)}

    def _allowed(self, j, rules, states):
        """The states of gate ``j`` that agree with the columns of ``rules``, row by row.

        ``states`` holds those columns' states (codes, as :func:`_state_codes`
        gives them); the result is a bool array of shape (n, n_states): a
        categorical gate's levels (never one no row held), or a 0/1 state.
        """
        gate = self.columns[j]
        codes = np.arange(_n_states(gate))
        allowed = None
        for rule in rules:
            at = states[rule["column"]] == _missing_code(self.columns[rule["column"]])
            agree = _agrees(rule, at[:, None], codes)
            allowed = agree if allowed is None else allowed & agree
        if gate.kind == "categorical" and gate.unseen:
            allowed[:, gate.unseen] = False  # never sampled: not chosen either
        return allowed

    def check_given_rules(self, X, given, values=None):
        """Refuse conditions that break a missing-value rule of the fitted data.

        A rule ties a column's missing values (or its point) to a gate's
        states; given both, a row whose values break it has no probability
        under the model, which decodes the rule as certain. Raises a
        ValueError that names the two columns; or, where given columns
        contradict each other down a chain of rules (a later measurement
        observed and a gate state that makes the earlier one missing), one
        that names them (with their ``values``, ``{column name: values}``)
        and the rules between them.
        """
        for rule in self.gates:
            i, j = rule["column"], rule["gate"]
            if not (given[i] and given[j]):
                continue
            at = _state_codes(self.columns[i], X) == _missing_code(self.columns[i])
            gate = _state_codes(self.columns[j], X)
            broken = ~_agrees(rule, at, gate)
            if broken.any():
                row = int(np.flatnonzero(broken)[0])
                c, g = self.columns[i], self.columns[j]
                state = f"at {c.point:g}" if c.point is not None else "missing"
                always = "never" if at[row] else "always"
                raise ValueError(
                    f"given[{c.name!r}] and given[{g.name!r}] break a rule the fitted "
                    f"data always followed: {c.name!r} is {always} {state} where "
                    f"{g.name!r} is {_state_name(g, gate[row])}. Leave one of them "
                    "out of given."
                )
        held = set(np.flatnonzero(given).tolist())
        columns = {j for rule in self.gates for j in (rule["column"], rule["gate"])}
        states = {j: _state_codes(self.columns[j], X) for j in columns & held}
        for j, allowed in self._gate_states(states, held, len(X)).items():
            empty = ~allowed.any(axis=1)
            if empty.any():
                row = int(np.flatnonzero(empty)[0])
                self._contradiction(j, held, row, values, functions=False)

    def _gate_states(self, states, held, n):
        """Per column of the missing-value rules, the states that agree with the held ones.

        A held (given) column allows its own state (``states``, codes as
        :func:`_state_codes` gives them); a gate allows the states under
        which each column it gates can take a state that column allows, from
        the deepest column up. Returns ``{column: bool array of shape (n,
        n_states)}`` for ``n`` rows: a gated column's states are its own (a
        flagged column's 0/1 flag, a categorical one's levels and missing
        level).
        """
        allowed = {}
        for rule in reversed(decoding_order(self.gates)):  # what a column gates first
            for j in (rule["column"], rule["gate"]):
                if j not in allowed:
                    allowed[j] = self._own_states(j, states, held, n)
            column = allowed[rule["column"]]
            code = _missing_code(self.columns[rule["column"]])
            missing = column[:, code, None]
            observed = np.delete(column, code, axis=1).any(axis=1, keepdims=True)
            gate = np.arange(_n_states(self.columns[rule["gate"]]))
            allowed[rule["gate"]] &= (missing & _agrees(rule, True, gate)) | (
                observed & _agrees(rule, False, gate)
            )
        return allowed

    def _own_states(self, j, states, held, n):
        """Column ``j``'s states before the rules narrow them, row by row.

        A held (given) column's own state (``states[j]``), else every state
        but the declared levels no batch has held (never sampled); a bool
        array of shape (n, n_states).
        """
        column = self.columns[j]
        codes = np.arange(_n_states(column))
        if j in held:
            return codes[None, :] == states[j][:, None]
        own = np.ones((n, codes.size), dtype=bool)
        if column.kind == "categorical" and column.unseen:
            own[:, column.unseen] = False
        return own

    def _contradiction(self, j, held, row, values, functions=True):
        """Raise the ValueError of given columns that no state of ``j`` agrees with.

        It names the given columns below ``j`` (down the gates' rules, and
        with ``functions`` those of :func:`find_functions` too) and the rules
        on their way up to ``j``.
        """
        links = {}  # the columns each decides: by a rule, or as a gate
        for r in self.functions if functions else ():
            links.setdefault(r["parent"], []).append(r["column"])
        for r in self.gates:
            links.setdefault(r["gate"], []).append(r["column"])
        below = _gated_through(links, j)
        parents = {r["column"]: r["parent"] for r in self.functions if functions}
        parents.update({r["column"]: r["gate"] for r in self.gates})
        between = set()  # the given columns below j and the way up to j
        for k in below & held:
            while k not in between and k in below:
                between.add(k)
                k = parents.get(k, j)
        below = between | {j}
        named = []
        for k in sorted(below & held):
            name = self.columns[k].name
            value = None if values is None else values.get(name)
            if value is not None:
                value = np.asarray(value, dtype=object).reshape(-1)
                value = value[min(row, value.size - 1)]
                if isinstance(value, np.generic):  # a repr without np.
                    value = value.item()
                name = f"{name!r} ({value!r})"
            named.append(str(name) if value is not None else repr(name))
        rules = [
            f"{self.columns[r['column']].name!r} follows {self.columns[r['parent']].name!r}"
            for r in self.functions
            if r["column"] in below and r["parent"] in below
        ]
        rules += [
            f"{self.columns[r['gate']].name!r} decides where "
            f"{self.columns[r['column']].name!r} is "
            + (f"at {c.point:g}" if c.point is not None else "missing")
            for r in self.gates
            if r["column"] in below and r["gate"] in below
            for c in [self.columns[r["column"]]]
        ]
        raise ValueError(
            f"The given columns {', '.join(named)} break rules the fitted "
            f"data always followed: {'; '.join(rules)}, in every row of fit. "
            "Leave one of them out of given."
        )

    def check_given_functions(self, X, given, values=None):
        """Refuse conditions that break the rules of :func:`find_functions`.

        Given columns whose values no state of the columns between them
        agrees with (a column and its parent, a country and a continent it is
        not in, two children of one parent that no state of it decides both
        ways) have no probability under the model, which decodes the rules as
        certain. Raises a ValueError that names the given columns (with their
        ``values``, ``{column name: values}``, where given) and the rules
        between them.
        """
        held = set(np.flatnonzero(given).tolist())
        if not self.functions or not held:
            return
        columns = {j for rule in self.functions for j in (rule["column"], rule["parent"])}
        columns |= {j for rule in self.gates for j in (rule["column"], rule["gate"])}
        states = {j: _state_codes(self.columns[j], X) for j in columns}
        allowed = self._rule_states(states, held, len(X))
        for rule in decoding_order(self.functions, "parent"):
            for j in (rule["parent"], rule["column"]):
                empty = ~allowed[j].any(axis=1)
                if not empty.any():
                    continue
                self._contradiction(j, held, int(np.flatnonzero(empty)[0]), values)

    def gate_constraints(self, X, given):
        """What the given columns of a conditional draw say of their gates' states.

        Parameters
        ----------
        X : ndarray of shape (n_samples, width)
            Encoded rows whose ``given`` columns hold the given values.
        given : ndarray of bool of shape (n_columns,)

        Returns
        -------
        constraints : list of (probability, allowed)
            Per gate that is not given but gates a given column: ``allowed``,
            per row, the gate's states that agree with every given column it
            gates (all of them where none does), and ``probability(means,
            allowed)``, the probability a candidate code gives them (a tensor
            of shape (K, n) from decoder means of shape (K, n, width)). A
            draw's code is weighted by it. A gate that is itself gated gets its
            states' probabilities through its own rule, up the chain of gates
            (:meth:`_state_probabilities`): where the rule decides the gate's
            state, the decoder's own probability of it is not trained.
        """
        held = frozenset(np.flatnonzero(given).tolist())
        constraints = []
        for j, allowed in self.gate_states(X, given).items():

            def probability(means, ok, j=j):
                return (self._state_probabilities(j, means, held) * ok).sum(-1)

            constraints.append((probability, allowed))
        return constraints

    def gate_states(self, X, given, chain=False):
        """The states the given columns allow each gate that is not given.

        Parameters
        ----------
        X : ndarray of shape (n_samples, width)
            Encoded rows whose ``given`` columns hold the given values.
        given : ndarray of bool of shape (n_columns,)
        chain : bool
            Also the gates of those gates, up the chain of rules, that are
            not given: a gate allowed only to be missing (or only not to be)
            allows its own gate only the states its rule ties to that.

        Returns
        -------
        states : dict of int to ndarray of bool of shape (n_samples, n_states)
            Per gate (its column index) that is not given but gates a given
            column, the gate's states (:func:`_state_codes`) that agree with
            every given column it gates, row by row (all of them in a row
            where they contradict each other).
        """
        out = self._direct_gate_states(X, given)
        pending = list(out) if chain else []
        while pending:
            j = pending.pop()
            rule = next((r for r in self.gates if r["column"] == j), None)
            if rule is None or given[rule["gate"]]:
                continue
            code = _missing_code(self.columns[j])
            allowed = out[j]
            missing = allowed[:, code]
            present = np.delete(allowed, code, axis=1).any(axis=1)
            g = rule["gate"]
            codes = np.arange(_n_states(self.columns[g]))
            up = np.ones((allowed.shape[0], codes.size), dtype=bool)
            up[missing & ~present] = _agrees(rule, True, codes)
            up[present & ~missing] = _agrees(rule, False, codes)
            gate = self.columns[g]
            if gate.kind == "categorical" and gate.unseen:
                up[:, gate.unseen] = False  # never sampled: not chosen either
            if g in out:
                up &= out[g]
            up[~up.any(axis=1)] = True  # contradictory: no constraint
            out[g] = up
            pending.append(g)
        return out

    def _direct_gate_states(self, X, given):
        """:meth:`gate_states` of the gates of given columns alone."""
        held = set(np.flatnonzero(given).tolist())
        children = {}
        for rule in self.gates:
            if rule["column"] in held and rule["gate"] not in held:
                children.setdefault(rule["gate"], []).append(rule)
        out = {}
        for j, rules in children.items():
            gated = [rule["column"] for rule in rules]
            states = {i: _state_codes(self.columns[i], X) for i in gated}
            allowed = self._allowed(j, rules, states)
            allowed[~allowed.any(axis=1)] = True  # contradictory conditions: no weight
            out[j] = allowed
        return out

    def _state_probabilities(self, j, means, held):
        """Probabilities of column ``j``'s states under decoder ``means`` (K, n, width).

        A categorical column's levels (its missing level last), or a flagged
        or boolean column's 0/1 state; where ``j`` has a gate that is not
        ``held`` (given), mixed over the gate's states: those its rule says
        force ``j`` missing, those that force it observed (its levels then in
        the decoder's proportions), and those that leave it to the decoder.
        The arithmetic is a tensor's (torch's, where this is called).
        """
        c = self.columns[j]
        if c.kind == "categorical":
            p = means[..., c.start : c.start + c.width]
        else:
            q = means[..., [_flag_entry(c)] * 2]
            p = q * q.new_tensor([-1.0, 1.0]) + q.new_tensor([1.0, 0.0])
        rule = next((r for r in self.gates if r["column"] == j), None)
        if rule is None or rule["gate"] in held:
            return p
        gate = self._state_probabilities(rule["gate"], means, held)
        missing = gate[..., rule["missing"]].sum(-1, keepdim=True)
        observed = gate[..., rule["observed"]].sum(-1, keepdim=True)
        code = _missing_code(c)
        at = p.new_zeros(p.shape[-1])
        at[code] = 1.0
        present = p * (1.0 - at)
        present = present / present.sum(-1, keepdim=True).clamp_min(1e-30)
        return missing * at + observed * present + (1.0 - missing - observed) * p

    @staticmethod
    def _binary(p, rng):
        return rng.random_sample(p.shape) < p if rng is not None else p > 0.5

    @staticmethod
    def _choose(block, rng):
        if rng is None:
            return block.argmax(axis=1)
        cumulative = np.cumsum(block / block.sum(axis=1, keepdims=True), axis=1)
        u = rng.random_sample((block.shape[0], 1))
        return np.minimum((cumulative < u).sum(axis=1), block.shape[1] - 1)


def _level_states(column, series):
    """A categorical column's state codes (as :func:`_state_codes` gives them).

    Read from its values: a fitted level's index, the pool of rare levels after
    them, the missing level last; -1 for a level fit did not see.
    """
    try:
        codes = pd.Index(column.levels).get_indexer(series.astype(object))
    except TypeError as exc:  # unhashable cells: lists, dicts, sets
        raise TypeError(
            f"Column {column.name!r} holds values that cannot be categories "
            f"({exc}); use strings or numbers."
        ) from exc
    if column.rare:
        rare = pd.Index(column.rare).get_indexer(series.astype(object))
        codes[(codes < 0) & (rare >= 0)] = len(column.levels)
    if column.missing:
        codes[series.isna().to_numpy()] = column.width - 1
    return codes


def _is_frame(X):
    return hasattr(X, "columns") and hasattr(X, "iloc")


#: What a boolean column may hold: True/False, or the numbers 0 and 1.
_REAL = (numbers.Real, np.bool_)

#: The largest standardized value the float32 network takes (as for arrays in fit).
_LARGEST = np.finfo(np.float32).max / 1e3


def _location_scale(values):
    """Mean and standard deviation (1 when 0) of finite values, without overflow.

    The values are scaled by a power of two near their largest magnitude first,
    which is exact, so values near the float64 limit give finite statistics.
    """
    if values.size == 0:
        return 0.0, 1.0
    exponent = np.frexp(np.abs(values).max())[1]
    unit = np.ldexp(values, -exponent)
    std = float(np.ldexp(unit.std(), exponent))
    return float(np.ldexp(unit.mean(), exponent)), std if std > 0 else 1.0


def _standardize(values, mean, scale):
    """``(values - mean) / scale`` computed after an exact power-of-two scaling.

    The difference of two values near the float64 limit overflows; scaled by
    the larger of ``|mean|`` and ``scale`` first, it does not.
    """
    exponent = np.frexp(max(abs(mean), scale))[1]
    shift, unit = np.ldexp(mean, -exponent), np.ldexp(scale, -exponent)
    with np.errstate(over="ignore"):  # values far beyond fit's: checked by the caller
        return (np.ldexp(values, -exponent) - shift) / unit


def dtype_range(dtype):
    """The floats a column's numeric dtype holds, (low, high); None for another dtype."""
    dtype = getattr(dtype, "numpy_dtype", dtype)  # nullable Int64, Float32, ...
    if not isinstance(dtype, np.dtype) or dtype.kind not in "iuf":
        return None
    info = np.iinfo(dtype) if dtype.kind in "iu" else np.finfo(dtype)
    low, high = float(info.min), float(info.max)
    if dtype.kind in "iu" and int(high) > info.max:  # 2**63 - 1 rounds up: step below
        high = np.nextafter(high, 0.0)
    return low, high


def _clip_to(values, dtype):
    """Clip decoded values into the range of a column's dtype, so the cast keeps it."""
    bounds = dtype_range(dtype)
    return values if bounds is None else np.clip(values, *bounds)


def _nested(missing):
    """Whether the missing values of two of the columns nest, with support.

    ``missing`` holds a 0/1 row mask per column. Column p's missing values
    nest in q's when q is missing wherever p is, and were the two
    independent, at least ``_GATE_SUPPORT`` of p's missing rows would have had
    q present (the support :func:`find_gates` asks of a gate's states).
    """
    M = np.column_stack(missing).astype(np.float64)
    both = M.T @ M  # rows where p and q are missing
    count = np.diag(both)
    present = 1 - count / M.shape[0]  # each column's share of rows present
    nests = both == count[:, None]
    supported = count[:, None] * present[None, :] >= _GATE_SUPPORT
    np.fill_diagonal(nests, False)
    return bool((nests & supported).any())


def _pool_rare_levels(column, rare):
    """Pool the levels of ``column`` that ``rare`` maps to their rows in fit.

    At least two levels make a pool; the others keep their order. Returns
    whether it pooled any.
    """
    if len(rare) < 2:
        return False
    column.rare = [v for v in column.levels if v in rare]
    column.levels = [v for v in column.levels if v not in rare]
    column.rare_counts = [int(rare[v]) for v in column.rare]
    return True


def _novel_level_probability(series):
    """The probability that a new row holds a level the column's rows do not.

    Good and Turing's estimate of the unseen mass, the share of rows whose
    level occurs once, with one more row and one more such level added (a
    rule of succession), so that a column of few, frequent levels still
    leaves new levels a small probability: ``(n_1 + 1) / (n + 1)`` for n
    rows of which n_1 hold a level seen once (missing values count as rows,
    not levels). At most one half.
    """
    counts = series.value_counts(dropna=True)
    singletons = int((counts == 1).sum())
    return min((singletons + 1) / (len(series) + 1), 0.5)


def _warn_identifiers(named, width, n_columns, declared=False):
    """Warn about the categorical columns ``named`` (with their counts) as identifiers.

    ``declared``: the encoding of a first ``partial_fit`` batch, which keeps
    every level (later batches may hold more of each), pooling none.
    """
    if declared:
        pooling = (
            "levels, and partial_fit keeps each one's encoded column (it pools rare "
            "levels only in fit, where every row is seen at once)"
        )
    else:
        pooling = (
            f"levels, so those seen fewer than {RARE_LEVEL_COUNT} times share one "
            "encoded level, from which samples draw them by their count in fit, "
            "unless the column decides missing values that nest across columns"
        )
    _warn(
        f"Categorical column(s) {', '.join(named)} look like identifiers or free "
        f"text (fewer than two values per level): the model cannot learn such {pooling} "
        f"({width:,} encoded columns for {n_columns}). Drop such columns, map "
        "them to fewer groups, or pass numbers (e.g. dates as numbers) before "
        "fitting.",
        UserWarning,
    )


def _unique(series):
    """The distinct non-missing values of a categorical column."""
    try:
        return series.dropna().unique().tolist()
    except TypeError as exc:  # unhashable cells: lists, dicts, sets
        raise TypeError(
            f"Column {series.name!r} holds values that cannot be categories ({exc}); "
            "use strings or numbers."
        ) from exc


def _flags(series, name):
    """The 0/1 floats of a boolean column's observed entries, or a ValueError."""
    dtype = series.dtype
    if types.is_bool_dtype(dtype) or (
        types.is_numeric_dtype(dtype) and not types.is_complex_dtype(dtype)
    ):
        flags = series.to_numpy(dtype=np.float64)
    else:  # objects, strings, categories: only real numbers can be flags
        flags = np.array(
            [float(v) if isinstance(v, _REAL) else np.nan for v in series], dtype=float
        )
    wrong = ~np.isin(flags, (0.0, 1.0))
    if wrong.any():
        example = series.to_numpy(dtype=object)[wrong][0]
        raise ValueError(
            f"Column {name!r} was boolean in fit but holds values that are not True "
            f"or False now (e.g. {example!r})."
        )
    return flags


def _block(name, columns, options=None, indicator=None):
    """One block of a table's likelihood description."""
    likelihood = {"name": name, "n_features": len(columns), **(options or {})}
    return {"columns": columns, "likelihood": likelihood, "indicator": indicator}


def _sorted(levels):
    try:
        return sorted(levels)
    except TypeError:  # mixed types: a stable order all the same
        return sorted(levels, key=str)


def _numeric_series(values, missing, column):
    """A numeric column's decoded values (NaN where ``missing``) in its fitted dtype.

    A nullable or Arrow dtype (``Int8``, ``int64[pyarrow]``) holds the missing
    values as it is; where the cast fails, the values stay floats.
    """
    if missing is not None and missing.any():
        values = np.where(missing, np.nan, values)
    series = pd.Series(values)
    try:
        return series.astype(column.dtype)
    except (TypeError, ValueError):
        return series


def _level_codes(codes, column, rng):
    """Codes of a categorical column's encoded levels as codes of its values.

    The values are ``levels + rare + [None]``: the pooled rare level becomes
    one of the rare levels, drawn by its count in fit (the most frequent with
    ``rng=None``), and the missing level None.
    """
    if not column.rare:
        return codes
    n_levels, n_rare = len(column.levels), len(column.rare)
    codes = np.where(codes > n_levels, n_levels + n_rare, codes)  # missing: last
    pooled = np.flatnonzero(codes == n_levels)
    counts = np.asarray(column.rare_counts, dtype=np.float64)
    if rng is None:
        codes[pooled] = n_levels + int(np.argmax(counts))
    elif pooled.size:
        codes[pooled] = n_levels + rng.choice(n_rare, pooled.size, p=counts / counts.sum())
    return codes


def _categorical_series(codes, column):
    levels = np.asarray(column.levels + (column.rare or []) + [None], dtype=object)
    values = levels[codes]
    if isinstance(column.dtype, pd.CategoricalDtype):
        return pd.Series(pd.Categorical(values, dtype=column.dtype))
    if types.is_bool_dtype(column.dtype) or str(column.dtype) == "boolean":
        series = pd.Series(values, dtype="boolean")
        if isinstance(column.dtype, np.dtype):  # NumPy's bool cannot hold NA
            return series if series.isna().any() else series.astype(bool)
        return series.astype(column.dtype)  # bool[pyarrow] stays itself
    series = pd.Series(values, dtype=object)
    try:
        return series.astype(column.dtype)
    except (TypeError, ValueError):
        return series
