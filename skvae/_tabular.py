"""Mixed-type tables: DataFrame columns <-> the numeric blocks the networks model."""

import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api import types


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


def _is_from_dtype(value):
    return isinstance(value, str) and value == "from_dtype"


def _categorical_mask(X, categorical_features):
    """Boolean mask of the columns the user declared categorical."""
    values = np.asarray(categorical_features)
    if values.dtype == bool:
        if values.shape != (X.shape[1],):
            raise ValueError(
                f"categorical_features as a boolean mask must have {X.shape[1]} entries "
                f"(one per column), got {values.shape[0]}."
            )
        return values
    unknown = sorted(set(values.tolist()) - set(X.columns), key=str)
    if unknown:
        raise ValueError(f"categorical_features names columns not in X: {unknown}.")
    return np.isin(np.asarray(X.columns, dtype=object), values)


def _kind(series, declared_categorical):
    if declared_categorical:
        return "categorical"
    dtype = series.dtype
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
    raise TypeError(
        f"Column {series.name!r} has dtype {dtype}, which skvae cannot model; convert "
        "it to numbers, a category or strings first."
    )


@dataclass
class Column:
    """How one column is encoded: its kind, statistics and where it sits."""

    name: object
    kind: str  # "numeric", "boolean" or "categorical"
    dtype: object
    start: int  # first encoded column
    missing: bool = False  # missing values seen in fit: modelled
    mean: float = 0.0  # numeric: the mean; boolean: the share of True
    scale: float = 1.0
    integer: bool = False
    levels: list = None

    @property
    def width(self):
        if self.kind == "categorical":
            return len(self.levels) + self.missing
        return 1 + self.missing


class Table:
    """The encoding of a fitted DataFrame: each column's kind, levels and scale.

    Numeric columns are standardized and modelled with a Gaussian (squared error
    for the autoencoder); a numeric column with missing values in fit gets a
    0/1 missing indicator beside it (Bernoulli) and its missing entries are left
    out of the Gaussian term. Booleans are Bernoulli. Categorical columns are
    one-hot blocks under a softmax, with one more level for "missing" when fit
    saw missing values; unknown levels encode as all zeros, as
    ``OneHotEncoder(handle_unknown="ignore")`` does.

    A column that had no missing values in fit but has some later is imputed:
    a numeric entry with the column's mean (0 once standardized), a boolean
    one with the share of True in fit, and a categorical one as all zeros
    (like an unknown level).
    """

    def __init__(self, X, categorical_features):
        _check_unique(X)
        mask = (
            np.zeros(X.shape[1], dtype=bool)
            if categorical_features is None or _is_from_dtype(categorical_features)
            else _categorical_mask(X, categorical_features)
        )
        self.columns, start = [], 0
        for name, declared in zip(X.columns, mask):
            series = X[name]
            kind = _kind(series, declared)
            missing = bool(series.isna().any())
            column = Column(name, kind, series.dtype, start, missing)
            if kind == "boolean" and missing:  # a nullable boolean: three levels
                column.kind, column.levels = "categorical", [False, True]
            elif kind == "boolean":  # the share of True imputes later missing values
                column.mean = float(series.to_numpy(dtype=np.float64).mean())
            elif kind == "categorical":
                if isinstance(series.dtype, pd.CategoricalDtype):
                    column.levels = series.cat.categories.tolist()
                else:
                    column.levels = _sorted(_unique(series))
            elif kind == "numeric":
                values = series.to_numpy(dtype=np.float64, na_value=np.nan)
                if np.isinf(values).any():
                    raise ValueError(f"Input X contains infinity in column {name!r}.")
                column.mean, column.scale = _location_scale(values[~np.isnan(values)])
                column.integer = types.is_integer_dtype(series.dtype)
            self.columns.append(column)
            start += column.width
        self.width = start

    def to_state(self):
        """The encoding as plain values (for files that must not hold code)."""
        columns = []
        for c in self.columns:
            state = dict(vars(c))
            if isinstance(c.dtype, pd.CategoricalDtype):
                state["dtype"] = {"category": bool(c.dtype.ordered)}
            else:
                state["dtype"] = str(c.dtype)
            columns.append(state)
        return {"columns": columns, "width": self.width}

    @classmethod
    def from_state(cls, state):
        """Rebuild a Table from :meth:`to_state`'s values."""
        table = cls.__new__(cls)
        table.columns = []
        for values in state["columns"]:
            values = dict(values)
            dtype = values["dtype"]
            if isinstance(dtype, dict):
                values["dtype"] = pd.CategoricalDtype(values["levels"], dtype["category"])
            else:
                values["dtype"] = pd.api.types.pandas_dtype(dtype)
            table.columns.append(Column(**values))
        table.width = int(state["width"])
        return table

    @property
    def signature(self):
        """What the encoding's structure depends on: names, kinds, levels, missingness."""
        return tuple(
            (c.name, c.kind, tuple(c.levels or ()), c.missing) for c in self.columns
        )

    def likelihood(self, numeric, options):
        """The description of the table's likelihood: a sum of per-block likelihoods.

        Numeric columns form one block of the likelihood ``numeric`` (with
        ``options``) whose entries drop out where their missing indicator is
        1; booleans and missing indicators form one Bernoulli block; each
        categorical column is a categorical block over its levels.
        """
        numeric_columns, indicators, binary, blocks = [], [], [], []
        for c in self.columns:
            if c.kind == "numeric":
                numeric_columns.append(c.start)
                indicators.append(c.start + 1 if c.missing else -1)
                binary += [c.start + 1] if c.missing else []
            elif c.kind == "boolean":
                binary.append(c.start)
            else:
                blocks.append(
                    _block("categorical", list(range(c.start, c.start + c.width)))
                )
        if binary:
            blocks.insert(0, _block("bernoulli", sorted(binary)))
        if numeric_columns:
            has_indicator = any(i >= 0 for i in indicators)
            blocks.insert(
                0,
                _block(
                    numeric, numeric_columns, options, indicators if has_indicator else None
                ),
            )
        return {"name": "blocks", "blocks": blocks}

    def encode(self, X):
        """The encoded float64 matrix of a DataFrame with the fitted columns.

        The input is only read. Numeric values whose standardized value float32
        cannot hold, infinite values and booleans that are not True or False
        raise a ValueError that names the column.
        """
        _check_unique(X)
        absent = [c.name for c in self.columns if c.name not in X.columns]
        if absent:  # names sklearn does not check (not all strings)
            raise ValueError(
                f"X lacks columns seen in fit: {absent}; pass a DataFrame with the "
                "fitted columns."
            )
        out = np.zeros((X.shape[0], self.width))
        for c in self.columns:
            series = X[c.name]
            if c.kind == "numeric":
                try:
                    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
                except (TypeError, ValueError) as exc:
                    raise ValueError(
                        f"Column {c.name!r} was numeric in fit but holds values that "
                        "are not numbers now."
                    ) from exc
                if np.isinf(values).any():
                    raise ValueError(f"Input X contains infinity in column {c.name!r}.")
                missing = np.isnan(values)
                z = np.where(missing, 0.0, _standardize(values, c.mean, c.scale))
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
            elif c.kind == "boolean":
                missing = series.isna().to_numpy()
                out[:, c.start] = c.mean  # missing where fit saw none: the share of True
                out[~missing, c.start] = _flags(series[~missing], c.name)
            else:
                try:
                    codes = pd.Index(c.levels).get_indexer(series.astype(object))
                except TypeError as exc:  # unhashable cells: lists, dicts, sets
                    raise TypeError(
                        f"Column {c.name!r} holds values that cannot be categories "
                        f"({exc}); use strings or numbers."
                    ) from exc
                if c.missing:
                    codes[series.isna().to_numpy()] = len(c.levels)
                rows = np.flatnonzero(codes >= 0)
                out[rows, c.start + codes[rows]] = 1.0  # unknown levels: all zeros
        return out

    def decode(self, M, rng=None):
        """A DataFrame with the fitted columns and dtypes from encoded rows.

        Parameters
        ----------
        M : ndarray of shape (n_samples, width)
            Encoded rows (draws from the likelihood) or decoder means:
            standardized values, probabilities of the binary columns,
            probabilities of each categorical level.
        rng : RandomState or None
            None decodes the most likely value (argmax, p > 0.5), which for
            draws is the drawn value; a RandomState draws the binary and
            categorical columns from the probabilities in ``M`` instead.
        """
        data = {}
        for c in self.columns:
            if c.kind == "numeric":
                with np.errstate(over="ignore"):  # the clip below bounds overflows
                    values = M[:, c.start].astype(np.float64) * c.scale + c.mean
                if c.integer:
                    values = np.round(values)
                values = _clip_to(values, c.dtype)
                missing = self._binary(M[:, c.start + 1], rng) if c.missing else None
                data[c.name] = _numeric_series(values, missing, c)
            elif c.kind == "boolean":
                data[c.name] = pd.Series(self._binary(M[:, c.start], rng), dtype=c.dtype)
            else:
                block = M[:, c.start : c.start + c.width]
                data[c.name] = _categorical_series(self._choose(block, rng), c)
        return pd.DataFrame(data, columns=[c.name for c in self.columns])

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


def _clip_to(values, dtype):
    """Clip decoded values into the range of a column's dtype, so the cast keeps it."""
    dtype = getattr(dtype, "numpy_dtype", dtype)  # nullable Int64, Float32, ...
    if not isinstance(dtype, np.dtype) or dtype.kind not in "iuf":
        return values
    info = np.iinfo(dtype) if dtype.kind in "iu" else np.finfo(dtype)
    low, high = float(info.min), float(info.max)
    if dtype.kind in "iu" and int(high) > info.max:  # 2**63 - 1 rounds up: step below
        high = np.nextafter(high, 0.0)
    return np.clip(values, low, high)


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
    if missing is not None and missing.any():
        values = np.where(missing, np.nan, values)
        if column.integer:
            return pd.Series(values).astype("Int64")
    try:
        return pd.Series(values).astype(column.dtype)
    except (TypeError, ValueError):  # e.g. NaN into a plain int column
        return pd.Series(values)


def _categorical_series(codes, column):
    levels = np.asarray(column.levels + [None], dtype=object)
    values = levels[codes]
    if isinstance(column.dtype, pd.CategoricalDtype):
        return pd.Series(pd.Categorical(values, dtype=column.dtype))
    if types.is_bool_dtype(column.dtype) or str(column.dtype) == "boolean":
        return pd.Series(values, dtype="boolean")
    series = pd.Series(values, dtype=object)
    try:
        return series.astype(column.dtype)
    except (TypeError, ValueError):
        return series
