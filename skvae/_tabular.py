"""Mixed-type tables: DataFrame columns <-> the numeric blocks the networks model."""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api import types


def is_table(X, categorical_features):
    """Whether the DataFrame X is to be modelled column by column (not only numbers)."""
    if categorical_features is not None and not _is_from_dtype(categorical_features):
        return bool(np.any(_categorical_mask(X, categorical_features)))
    return any(_kind(X[c], False) != "numeric" for c in X.columns)


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
    if types.is_numeric_dtype(dtype):
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
    mean: float = 0.0
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
    """

    def __init__(self, X, categorical_features):
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
            elif kind == "categorical":
                if isinstance(series.dtype, pd.CategoricalDtype):
                    column.levels = series.cat.categories.tolist()
                else:
                    column.levels = _sorted(series.dropna().unique().tolist())
            elif kind == "numeric":
                values = series.to_numpy(dtype=np.float64, na_value=np.nan)
                column.mean = (
                    float(np.nanmean(values)) if not np.isnan(values).all() else 0.0
                )
                std = float(np.nanstd(values)) if not np.isnan(values).all() else 0.0
                column.scale = std if std > 0 else 1.0
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
        """The encoded float64 matrix of a DataFrame with the fitted columns."""
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
                out[:, c.start] = np.where(missing, 0.0, (values - c.mean) / c.scale)
                if c.missing:
                    out[:, c.start + 1] = missing
            elif c.kind == "boolean":
                out[:, c.start] = series.to_numpy(dtype=np.float64)
            else:
                codes = pd.Index(c.levels).get_indexer(series.astype(object))
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
                values = M[:, c.start] * c.scale + c.mean
                if c.integer:
                    values = np.round(values)
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
