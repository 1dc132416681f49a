"""VAEImputer: missing values filled in by VAEs' importance-weighted posteriors."""

import copy
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from numpy.polynomial.hermite_e import hermegauss
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import MissingValues, validate_parameter_constraints
from sklearn.utils.validation import (
    FLOAT_DTYPES,
    _check_feature_names_in,
    check_is_fitted,
    validate_data,
)

from ._base import (
    _MAX_SEED,
    Interval,
    StrOptions,
    _is_dataframe,
    check_frame_kind,
    inputs_kept_on_failure,
)
from ._conditional import block_masks
from ._networks import ACTIVATIONS, widest_layer
from ._persistence import load_imputer, save_imputer
from ._torch import check_memory
from ._training import INTERRUPTED
from ._vae import VAETransformer
from .exceptions import PosteriorCollapseWarning, _warn

#: Rows imputed at a time: K candidates of each are held in memory, so fewer
#: rows when K candidates of the encoded width pass _CANDIDATE_ELEMENTS numbers.
_CHUNK = 256
_CANDIDATE_ELEMENTS = 2**27
#: ``n_components="auto"``: at least this many dimensions, and a third of the columns.
_AUTO_COMPONENTS = 4
#: Gauss-Hermite nodes of the expectation of a numeric column's value given a code.
_QUADRATURE_NODES = 20


def _is_nan(value):
    return isinstance(value, Real) and np.isnan(value)


def _is_pd_na(value):
    """Whether ``value`` is pandas' ``pd.NA`` (without importing pandas)."""
    return type(value).__name__ == "NAType" and type(value).__module__.startswith("pandas")


def _check_finite_frame(X):
    """Raise scikit-learn's ValueError where a DataFrame's numbers hold infinity."""
    for name in X.columns:
        column = X[name]
        if getattr(column.dtype, "kind", "O") in "iuf":  # numpy's and pandas' numbers
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isinf(values).any():
                raise ValueError(
                    f"Input X contains infinity or a value too large for "
                    f"dtype('float64') (column {name!r})."
                )


class VAEImputer(TransformerMixin, BaseEstimator):
    """Missing-value imputer built on variational autoencoders of the whole table.

    ``n_estimators`` :class:`VAETransformer` models are fitted on the data,
    each from its own seed, missing values included (they are modelled: each
    column with missing values gets a missing indicator, and the likelihood
    leaves its missing entries out). Each missing entry is then filled with
    its expected value given the row's observed entries, E[x_miss | x_obs],
    under the equal-weight mixture of the models (a deep ensemble [2]_): each
    model's expectation is estimated by self-normalised importance sampling
    of the posterior over its latent code (MIWAE's single imputation [1]_),
    and a numeric entry gets the mean of the models' expected values, a
    categorical one the level of highest mean probability.

    Works on numeric arrays and on pandas DataFrames with numeric, boolean and
    categorical (``category``, object, string) columns; a DataFrame comes back
    with its columns and dtypes, categorical cells filled with levels.

    Parameters
    ----------
    missing_values : int, float, str, np.nan, None or pd.NA, default=np.nan
        The placeholder for missing values in an array. All occurrences are
        imputed. A string, None or pd.NA marks the cells of an object array
        (the other cells numbers). For a DataFrame, missing cells must be NaN,
        None or pd.NA (the default, or None or pd.NA).
    n_components : int or "auto", default="auto"
        Dimension of the VAEs' latent space. "auto" is ``max(4, n_features //
        3)``, 4 up to 14 columns: the models' outputs are independent given
        the code, so the code must carry every dependence between columns,
        and wider data hold more. On 20% masked cells (measured with
        ``early_stopping="auto"``, then the default), 4 dimensions left the
        error of 30 collinear columns (``load_breast_cancer``, standardized;
        RMSE 0.464, ``IterativeImputer`` 0.360) and of the 61 varying pixels
        of ``load_digits`` (0.697 with one model) well above what wider codes
        gave ("auto"'s 10: 0.396, or 12: 0.380; 21: 0.635), while 2 or 8 instead
        of 4 changed little or hurt on ``load_wine`` and ``load_diabetes`` (13
        and 10 columns). In ``benchmarks/bench_impute.py``, 8 instead of 4
        dimensions took actg175's 26 columns from 0.817 / 0.833 (RMSE /
        accuracy) to 0.806 / 0.856. Dimensions the data do not need cost an
        imputation nothing, so the models' PosteriorCollapseWarnings are not
        passed on (their ConvergenceWarnings are, as one warning).
    hidden_layer_sizes : array-like of int, default=(128, 64)
        Widths of the encoder's hidden layers; the decoder uses them in reverse.
    activation : {"relu", "tanh", "elu", "gelu", "silu", "leaky_relu", "sigmoid"}, \
            default="relu"
        Activation after each hidden layer.
    batch_size : int or "auto", default="auto"
        Rows per minibatch (see :class:`VAETransformer`).
    max_iter : int or "auto", default="auto"
        Maximum number of epochs (see :class:`VAETransformer`).
    learning_rate : float or "auto", default="auto"
        Step size of the optimizer (see :class:`VAETransformer`).
    early_stopping : bool or "auto", default=False
        Hold out ``validation_fraction`` of the rows and stop when their
        score stops improving; "auto" does so from 50 rows (as
        :class:`VAETransformer`'s default does). False (the default) trains on
        every row until the training loss levels off or the epoch budget is
        spent. The held-out score is the whole rows' ELBO, which stops
        improving long before the imputations do: on 20% masked cells of
        ``load_breast_cancer`` (standardized) it peaked after about 75 of 400
        epochs and fell from then on, while the RMSE of the imputed cells was
        0.467 at the best validation score and 0.415 without early stopping
        (``IterativeImputer``: 0.418); ``load_wine`` 0.803 against 0.768,
        ``load_diabetes`` 0.713 against 0.710, ``load_iris`` 0.628 against
        0.622, ``load_digits`` 0.576 against 0.585 (``benchmarks/bench_impute.py
        --part arrays``). On its seven tables the mean RMSE and accuracy moved
        by -0.002 and +0.001, in a fifth less time.
    validation_fraction : float, default=0.1
        Fraction of rows held out when early stopping.
    n_importance_samples : int, default=300
        Importance draws of the latent code per row and model when imputing.
        Self-normalised importance sampling is biased by O(1/K); in
        ``benchmarks/bench_impute.py`` (three models, seven tables, with
        ``early_stopping="auto"``) 300 draws
        instead of 100 lowered the held-out RMSE on six tables (fair 0.677 to
        0.672, cars 0.423 to 0.417; penguins unchanged) and left accuracy
        within noise, for three times the ``transform`` time (fair's 6,366
        rows: 10 s to 32 s against 53 s of fit); 1,000 gained more on two
        tables only, for ten times the time.
    n_estimators : int, default=3
        Number of VAEs fitted, each from its own seed (and its own validation
        rows); the imputations average over them. Seeds alone make models
        that err differently on a table of a few hundred or thousand rows, and
        averaging them lowered the held-out RMSE of
        ``benchmarks/bench_impute.py`` on all seven of its tables (weather
        0.767 with one model, 0.752 with three), at a proportional cost in
        time (fit and transform).
    categorical_features : "from_dtype", array-like of str or bool, or None, \
            default="from_dtype"
        For a DataFrame: which columns are categorical (see
        :class:`VAETransformer`).
    numeric_transform : {"auto", "quantile", "mixture", "standard"} or dict, \
            default="auto"
        How each numeric column is mapped to the normal scores the network
        models (see :class:`VAETransformer`). "standard" (standardize only)
        traded categorical accuracy for squared error (one model) in
        ``benchmarks/bench_impute.py``: held-out RMSE fell on 4 of 5 tables
        (weather 0.789 to 0.775) while accuracy fell on 4 of 5 (cars 0.763 to
        0.732), so "auto" (the quantile map) stays the default.
    device : str or torch.device, default="auto"
        "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:N", "mps".
        These networks are small: up to about 10,000 rows a fit is usually
        faster on the CPU than on a GPU (see the performance page).
    n_jobs : int or None, default=None
        Number of CPU threads torch uses; None means 1.
    random_state : int, RandomState instance or None, default=None
        Seeds the VAE's fit and the importance draws of ``transform``, which
        is deterministic once fitted.
    verbose : int, default=0
        Verbosity of the VAE's fit.

    Attributes
    ----------
    estimators_ : list of VAETransformer
        The fitted models of the data, ``n_estimators`` of them.
    n_components_ : int
        The dimension of the models' latent space (``n_components``, with
        "auto" resolved).
    n_iter_ : int
        The most epochs any of the models trained.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    VAETransformer : The model the imputer fits; ``sample(given=...)`` draws
        rows given some of their values.
    sklearn.impute.IterativeImputer : Imputes each feature from the others
        with a regressor, round by round.
    sklearn.impute.KNNImputer : Imputes from the nearest complete neighbours.
    sklearn.impute.SimpleImputer : Imputes with a column statistic.

    Notes
    -----
    For a row with observed entries ``x_o`` the imputation of a missing
    numeric entry is::

        E[x_m | x_o] ~= sum_k w_k mean(x_m | z_k),
        w_k ∝ p(x_o | z_k) p(z_k) / q(z_k),

    with K = ``n_importance_samples`` codes ``z_k`` drawn from a mixture of
    the encoder's posterior q(z | x_o) (the row with its missing entries
    encoded as missing, as in training) and the prior p(z) (one fifth of the
    draws, so that a poor encoder proposal cannot ruin a row), and
    ``p(x_o | z)`` the likelihood of the observed entries alone. A table's
    numeric column is modelled through a monotone map g to normal scores
    (see ``numeric_transform`` in :class:`VAETransformer`), and its score
    given a code is Gaussian, N(mu(z), sigma^2), so that its expected value
    given ``z_k`` is ``E[g^-1(s)]`` over that Gaussian (computed by
    Gauss-Hermite quadrature), not ``g^-1(mu(z_k))``, which is the median:
    for a skewed column, or one with repeated values, the two differ, and
    the mean is what minimises the squared error. A missing categorical
    entry gets the level of highest weighted probability (never "missing").
    Columns that had no missing value in fit are imputed in the same way.
    With several models, a numeric entry gets the mean of their expected
    values (the expected value under their equal-weight mixture), and a
    categorical one the level of highest mean weighted probability.

    References
    ----------
    .. [1] P.-A. Mattei and J. Frellsen, "MIWAE: Deep generative modelling and
       imputation of incomplete data sets", ICML 2019.
    .. [2] B. Lakshminarayanan, A. Pritzel and C. Blundell, "Simple and scalable
       predictive uncertainty estimation using deep ensembles", NeurIPS 2017.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from skvae import VAEImputer
    >>> rng = np.random.RandomState(0)
    >>> kind = rng.choice(["small", "large"], 300)
    >>> size = np.where(kind == "large", 2.0, -2.0) + rng.normal(size=300)
    >>> X = pd.DataFrame({"kind": kind, "size": size, "weight": 2 * size})
    >>> X.loc[:29, "size"] = np.nan
    >>> X.loc[30:59, "kind"] = None
    >>> imputer = VAEImputer(n_components=2, n_estimators=1, random_state=0)
    >>> imputer = imputer.fit(X)
    >>> X_imputed = imputer.transform(X)
    >>> int(X_imputed.isna().sum().sum())
    0
    >>> X_imputed.dtypes.equals(X.dtypes)
    True
    """

    _parameter_constraints = {
        "missing_values": [MissingValues()],
        "n_components": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "max_iter": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_importance_samples": [Interval(Integral, 1, None, closed="left")],
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "categorical_features": [StrOptions({"from_dtype"}), "array-like", None],
        "numeric_transform": VAETransformer._parameter_constraints["numeric_transform"],
        "device": VAETransformer._parameter_constraints["device"],
        "n_jobs": VAETransformer._parameter_constraints["n_jobs"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        missing_values=np.nan,
        n_components="auto",
        hidden_layer_sizes=(128, 64),
        activation="relu",
        batch_size="auto",
        max_iter="auto",
        learning_rate="auto",
        early_stopping=False,
        validation_fraction=0.1,
        n_importance_samples=300,
        n_estimators=3,
        categorical_features="from_dtype",
        numeric_transform="auto",
        device="auto",
        n_jobs=None,
        random_state=None,
        verbose=0,
    ):
        self.missing_values = missing_values
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_importance_samples = n_importance_samples
        self.n_estimators = n_estimators
        self.categorical_features = categorical_features
        self.numeric_transform = numeric_transform
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    def _validate(self, X, reset):
        """X with its missing entries as NaN (a copy), validated as in fit."""
        placeholder = self.missing_values
        marker = _is_nan(placeholder) or placeholder is None or _is_pd_na(placeholder)
        table = None if reset else self.estimators_[0]._table
        check_frame_kind(X)
        if _is_dataframe(X):
            if not marker:
                raise ValueError(
                    f"missing_values={placeholder!r} applies to arrays; in a "
                    "DataFrame, mark missing cells as NaN, None or pd.NA."
                )
            validate_data(self, X, reset=reset, skip_check_array=True)
            if not reset and (table is None or table.array):
                # Models of an array read the frame's values as numbers, which
                # the table encoding of a frame's fit would have checked.
                _check_finite_frame(X)
            return X.copy()
        if table is not None and not (table.array or table.numeric_only):
            raise ValueError(
                f"{type(self).__name__} was fitted on a DataFrame; pass a DataFrame "
                "with the same columns."
            )
        holes = None
        dtype = FLOAT_DTYPES
        if not isinstance(placeholder, Real) and not sp.issparse(X):
            # None, pd.NA or a string: found in an object array, not a float one;
            # a float32 X stays float32, and complex numbers are refused as
            # scikit-learn refuses them (float() raised a TypeError).
            if np.iscomplexobj(X):
                raise ValueError(f"Complex data not supported\n{X}\n")
            if getattr(X, "dtype", None) == np.float32:
                dtype = np.float32
            X = np.array(X, dtype=object)  # a copy
            holes = np.reshape(
                [v is placeholder or (type(v) is str and v == placeholder) for v in X.flat],
                X.shape,
            ).astype(bool)
            X[holes] = 0.0  # a number, for validation; NaN again below
        X = validate_data(
            self,
            X,
            reset=reset,
            dtype=dtype,
            ensure_all_finite="allow-nan" if _is_nan(placeholder) else True,
            copy=True,
        )
        if holes is not None:
            X[holes] = np.nan
        elif not _is_nan(placeholder):
            X[X == placeholder] = np.nan
        return X

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the VAEs on X, missing values included.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Data with missing values.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted imputer.

        Raises
        ------
        KeyboardInterrupt
            On Ctrl-C: the fit stops and the imputer stays as it was (a
            single VAETransformer keeps what it learned after its first
            epoch; the imputer's models are one ensemble).
        """
        with inputs_kept_on_failure(self):  # a failed fit leaves it as it was
            return self._fit(self._validate(X, reset=True))

    def _fit(self, X):
        _warn_empty(X)
        rng = check_random_state(self.random_state)
        seeds = rng.randint(_MAX_SEED, size=self.n_estimators)
        n_components = self.n_components
        if n_components == "auto":
            n_components = max(_AUTO_COMPONENTS, self.n_features_in_ // 3)
        vae = VAETransformer(
            n_components=n_components,
            hidden_layer_sizes=self.hidden_layer_sizes,
            activation=self.activation,
            batch_size=self.batch_size,
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            early_stopping=self.early_stopping,
            validation_fraction=self.validation_fraction,
            categorical_features=self.categorical_features,
            numeric_transform=self.numeric_transform,
            device=self.device,
            n_jobs=self.n_jobs,
            verbose=self.verbose,
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                estimators = []
                for seed in seeds:
                    estimators.append(clone(vae).set_params(random_state=int(seed)).fit(X))
                    if any(str(w.message).startswith(INTERRUPTED) for w in caught):
                        # A model keeps what it learned before a Ctrl-C, and the
                        # next would start: one Ctrl-C stops the imputer's fit.
                        raise KeyboardInterrupt
            except ValueError as exc:  # "... but VAETransformer needs at least 2 ..."
                message = str(exc).replace(type(vae).__name__, type(self).__name__)
                if message == str(exc):
                    raise
                raise type(exc)(message) from exc
        _pass_on(caught, len(seeds))
        self.estimators_ = estimators  # fitted attributes last, together
        self.n_components_ = n_components
        self.n_iter_ = max(vae.n_iter_ for vae in estimators)
        return self

    def transform(self, X):
        """Impute all missing values in X.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            The data to complete.

        Returns
        -------
        X_imputed : ndarray or DataFrame of shape (n_samples, n_features)
            X with its missing values filled in: an array of X's float dtype,
            or a DataFrame with X's columns and dtypes (a category column whose
            categories lack an imputed level, one seen in fit, gets it added to
            them). X is not modified.
        """
        check_is_fitted(self)
        # Read here: set_params can have changed them since fit.
        names = ("missing_values", "n_importance_samples", "n_jobs")
        validate_parameter_constraints(
            {name: self._parameter_constraints[name] for name in names},
            {name: getattr(self, name) for name in names},
            caller_name=type(self).__name__,
        )
        X = self._validate(X, reset=False)
        vaes = [_with_jobs(vae, self.n_jobs) for vae in self.estimators_]
        # Every model encodes X alike: a table's maps are fitted on X alone,
        # with a fixed seed ("mixture"), whatever the model's random_state.
        table = vaes[0]._table
        if _is_dataframe(X):
            missing = X.isna().to_numpy()
        else:
            missing = np.isnan(X)
        if not missing.any():
            return X
        if table is None:  # an array fitted without missing values
            encoded = np.where(missing, 0.0, X).astype(np.float64)
            observed, fill = (~missing).astype(np.float64), np.zeros(X.shape)
        else:
            encoded = vaes[0]._validate_X(X)
            observed, fill = block_masks(table, ~missing)
        rows = np.flatnonzero(missing.any(axis=1))

        def conditional(vae, part, mode, constraints=()):  # the same draws for every row
            rng = np.random.RandomState(vae._seed)
            return vae._conditional(
                encoded[part],
                observed[part],
                fill[part],
                rng,
                mode,
                K,
                constraints=constraints,
                shared=True,
            )

        def expectations(vae, part):
            # A gate's state follows from an observed column it gates (an income
            # observed only for paid jobs): each group of rows that observe the
            # same gated columns weighs its candidates by those states, as
            # sample(given=) does, and imputes a gate only to a state allowed.
            table = vae._table
            expected = np.empty((part.size, encoded.shape[1]))
            numeric = np.empty((part.size, sum(c.kind == "numeric" for c in table.columns)))
            for rows_at, given in _gate_groups(table, missing[part]):
                at = part[rows_at]
                states = {}
                if given is not None:  # gates up the chain decode within their rules too
                    states = table.gate_states(encoded[at], given, chain=True)
                constraints = table.gate_constraints(encoded[at], given) if states else ()
                e, v = _expectations(
                    table,
                    *conditional(vae, at, "candidates", constraints),
                    vae.noise_variance_,
                    missing[at],
                )
                for j, allowed in states.items():
                    _keep_to_states(table.columns[j], e, allowed)
                expected[rows_at], numeric[rows_at] = e, v
            return expected, numeric

        K = self.n_importance_samples
        description = vaes[0].module_.description
        width = description["n_features"]
        check_memory(  # one row's candidates: codes, two layers' outputs, their means
            8 * K * (vaes[0].n_components_ + 2 * widest_layer(description) + width),
            f"transform with n_importance_samples={K}",
            "Lower n_importance_samples: one row's candidates are held at once.",
        )
        chunk = max(1, min(_CHUNK, _CANDIDATE_ELEMENTS // (K * width)))
        if table is None:
            values = np.mean([conditional(vae, rows, "mean")[0] for vae in vaes], axis=0)
        else:
            values = np.empty((rows.size, len(table.columns)), dtype=object)
            for start in range(0, rows.size, chunk):
                part = rows[start : start + chunk]
                parts = [expectations(vae, part) for vae in vaes]
                expected, numeric = (np.mean(p, axis=0) for p in zip(*parts))
                values[start : start + chunk] = _decode_expectations(
                    table, expected, numeric
                )
        if not _is_dataframe(X):
            if table is not None:
                values = values.astype(np.float64)
            X[rows] = np.where(missing[rows], values, X[rows]).astype(X.dtype, copy=False)
            return X
        for j, name in enumerate(X.columns):
            holes = missing[rows, j]
            if holes.any():
                column = X[name].copy()
                filled = _like(values[holes, j], column.dtype)
                if column.dtype == "category":  # levels of fit that X does not declare
                    declared = column.cat.categories
                    levels = (v for v in filled if v is not None and v == v)  # not missing
                    extra = list(dict.fromkeys(v for v in levels if v not in declared))
                    if extra:
                        column = column.cat.add_categories(extra)
                column.iloc[rows[holes]] = filled
                X[name] = column
        return X

    def __sklearn_is_fitted__(self):
        return hasattr(self, "estimators_")

    def save(self, path):
        """Save the fitted imputer to a file, without pickle.

        Parameters
        ----------
        path : str, path-like or binary file object
            The file to write (conventionally ``*.skvae``). An existing file is
            replaced only once the new one is completely written, so a save
            that fails half-way leaves the previous file intact.

        Returns
        -------
        path : str or path-like
            ``path``, unchanged.

        See Also
        --------
        load : Read an imputer written by ``save``.
        VAETransformer.save : The format of each model.

        Notes
        -----
        The file is a zip archive holding ``skvae.json`` (format version, class
        name, versions, ``get_params()`` and the fitted attributes, in JSON)
        and each model as ``estimators/<i>.skvae``, a file that
        :meth:`VAETransformer.save` would write. ``load`` checks every model
        as ``VAETransformer.load`` checks a file, and the models against the
        imputer (their number, input, latent size and table encoding); it
        reads only JSON and safetensors, so loading an untrusted file cannot
        run code. The loaded imputer imputes exactly like the saved one.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> from skvae import VAEImputer
        >>> rng = np.random.RandomState(0)
        >>> X = rng.normal(size=(200, 3)) @ [[1.0, 0.5, 0.2], [0.0, 1.0, 0.5], [0, 0, 1]]
        >>> X[rng.rand(*X.shape) < 0.2] = np.nan
        >>> imputer = VAEImputer(n_estimators=1, max_iter=20, random_state=0).fit(X)
        >>> path = imputer.save(os.path.join(tempfile.mkdtemp(), "imputer.skvae"))
        >>> loaded = VAEImputer.load(path)
        >>> bool(np.array_equal(loaded.transform(X), imputer.transform(X)))
        True
        """
        check_is_fitted(self)
        save_imputer(self, path)
        return path

    @classmethod
    def load(cls, path):
        """Load an imputer written by :meth:`save`, without unpickling anything.

        Each model goes to the device it was fitted on when that is available
        here, and to the CPU with a warning otherwise.

        Parameters
        ----------
        path : str, path-like or binary file object
            A file written by ``save``.

        Returns
        -------
        imputer : VAEImputer
            The fitted imputer, an instance of ``cls`` (or of a subclass).

        Raises
        ------
        ValueError
            If the file is not an skvae file, is corrupted, has an unknown
            format version, or holds another class.
        TypeError
            If ``path`` is neither a file name nor a binary file object.
        """
        return load_imputer(cls, path)

    def __setstate__(self, state):
        # An imputer pickled before ``n_estimators`` held its one model as ``vae_``.
        if "vae_" in state and "estimators_" not in state:
            state = dict(state)
            state["estimators_"] = [state.pop("vae_")]
            state.setdefault("n_estimators", 1)
        if "estimators_" in state and "n_components_" not in state:  # before "auto"
            state = {**state, "n_components_": state["estimators_"][0].n_components}
        super().__setstate__(state)

    def get_feature_names_out(self, input_features=None):
        """Names of the output features: the input's, as imputation keeps every column.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input feature names; by default ``feature_names_in_``, or
            ``["x0", "x1", ...]`` when fit saw none.

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        check_is_fitted(self)
        return _check_feature_names_in(self, input_features)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # NaN is a missing value only where it is the placeholder (as for
        # SimpleImputer): with missing_values=-1, NaN is refused.
        tags.input_tags.allow_nan = bool(_is_nan(self.missing_values))
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _warn_empty(X):
    """Warn of columns with no observed value: the models learn nothing of them."""
    if _is_dataframe(X):
        empty = [str(name) for name in X.columns[X.isna().all(axis=0).to_numpy()]]
    else:
        empty = [f"x{j}" for j in np.flatnonzero(np.isnan(X).all(axis=0))]
    if empty:
        _warn(
            f"Features {empty} have no observed values in X, so VAEImputer learns "
            "nothing of them: transform fills a numeric one with 0 (the center of "
            "its unknown scale) and leaves a categorical one missing. Drop them, or "
            "fit on data where they hold values.",
            UserWarning,
        )


def _with_jobs(vae, n_jobs):
    """``vae``, or a shallow copy of it that works with ``n_jobs`` (its models stay)."""
    if vae.n_jobs == n_jobs:
        return vae
    vae = copy.copy(vae)
    vae.n_jobs = n_jobs
    return vae


def _pass_on(caught, n_models):
    """Re-issue the models' warnings as the imputer's: convergence once, collapse never.

    Unused latent dimensions cost an imputation nothing, and the imputer chose
    their number, so a model's PosteriorCollapseWarning is dropped; the
    models' ConvergenceWarnings become one, that counts them; any other
    warning (about the data, which every model sees alike) is issued once.
    """
    unconverged = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    others = {
        (str(w.message), w.category): None
        for w in caught
        if not issubclass(w.category, (ConvergenceWarning, PosteriorCollapseWarning))
    }
    for message, category in others:
        _warn(message, category)
    if unconverged:
        message = str(unconverged[0].message)
        if n_models == 1:
            message = message.replace("VAETransformer", "VAEImputer's model", 1)
        else:
            models = f"{len(unconverged)} of VAEImputer's {n_models} models"
            message = message.replace("VAETransformer", models, 1)
            message = message.replace("the loss was", "their loss was", 1)
            message = message.replace(": its last", ": their last", 1)
        _warn(message, ConvergenceWarning)


def _like(values, dtype):
    """Imputed values (an object array) as numbers where the column holds numbers.

    Integers are rounded (a nullable ``Int64`` column); categories, strings
    and objects stay as they are.
    """
    numpy_dtype = getattr(dtype, "numpy_dtype", dtype)
    kind = getattr(numpy_dtype, "kind", "O")
    if kind in "iu":
        return np.round(values.astype(np.float64))
    if kind == "f":  # float32 and float16 columns take their own precision
        return values.astype(numpy_dtype)
    if kind == "b":
        try:  # None or NA: a column with no value in fit stays missing
            return values if any(v is None for v in values) else values.astype(bool)
        except TypeError:
            return values
    return values


def _expectations(table, means, weights, variance, holes):
    """One model's expectations of each cell, given weighted candidate codes.

    Parameters
    ----------
    table : Table
    means : ndarray of shape (n, K, width)
        Each candidate code's decoder mean (encoded).
    weights : ndarray of shape (n, K)
        Normalised importance weights.
    variance : ndarray of shape (n_numeric,)
        The Gaussian likelihood's variance of each numeric column's normal
        score, in the table's column order.
    holes : ndarray of bool of shape (n, n_columns)
        The missing cells: a numeric column's expected value is computed on
        its missing cells only (NaN elsewhere), as the quadrature is the
        costly part.

    Returns
    -------
    expected : ndarray of shape (n, width)
        The weighted mean of the decoder means: a boolean's or category's
        block holds its expected probabilities, the missing level's set to
        0 (an imputation is a value, never "missing").
    numeric : ndarray of shape (n, n_numeric)
        Each numeric column's expected value in its own units, E[x | x_obs] =
        sum_k w_k E[x | z_k]: the score given a code is Gaussian around the
        decoder mean, and E[x | z_k] is the mean of the column's inverse map
        over that Gaussian, by Gauss-Hermite quadrature (mapping the decoder
        mean alone gives the median of x given z_k, not its mean; the two
        differ for a skewed column, or one of a few values).
    """
    from ._tabular import from_scores  # a table's module (pandas for DataFrames)

    expected = np.einsum("nk,nkd->nd", weights, means)
    for c in table.columns:
        if c.missing and c.kind == "numeric":
            expected[:, c.start + 1] = 0.0
        elif c.missing:
            expected[:, c.start + c.width - 1] = 0.0
    nodes, node_weights = hermegauss(_QUADRATURE_NODES)
    node_weights = node_weights / node_weights.sum()
    numeric = [i for i, c in enumerate(table.columns) if c.kind == "numeric"]
    scales = np.sqrt(variance) if numeric else ()
    values = np.full((weights.shape[0], len(numeric)), np.nan)
    for j, (i, scale) in enumerate(zip(numeric, scales)):
        c, rows = table.columns[i], np.flatnonzero(holes[:, i])
        scores = means[rows, :, c.start, None] + scale * nodes  # (rows, K, nodes)
        units = from_scores(c, scores.reshape(-1)).reshape(scores.shape)
        values[rows, j] = np.einsum("nk,nkq,q->n", weights[rows], units, node_weights)
        if c.point is not None:  # the point with its flag's probability
            at = expected[rows, c.start + 1]
            values[rows, j] = at * c.point + (1 - at) * values[rows, j]
        # a mean of values in the range, rounded: a constant column of 7.0 got
        # 7.0000000000000115
        values[rows, j] = np.clip(values[rows, j], c.low, c.high)
    return expected, values


def _gate_groups(table, holes):
    """Rows that observe the same columns of a table's missing-value rules.

    Returns ``(rows, given)`` pairs: the indices of ``holes``'s rows in a
    group and, per column, whether the group observes it (None for rows that
    observe no gated column whose gate they lack: they need no constraint).
    """
    involved = sorted({rule[k] for rule in table.gates for k in ("column", "gate")})
    if not involved:
        return [(np.arange(holes.shape[0]), None)]
    keys, inverse = np.unique(~holes[:, involved], axis=0, return_inverse=True)
    groups = []
    for g, key in enumerate(keys):
        given = np.zeros(holes.shape[1], dtype=bool)
        given[involved] = key
        needed = any(given[r["column"]] and not given[r["gate"]] for r in table.gates)
        groups.append((np.flatnonzero(inverse.ravel() == g), given if needed else None))
    return groups


def _keep_to_states(column, expected, allowed):
    """Limit a gate's expected probabilities (in place) to its ``allowed`` states.

    A categorical gate's levels outside them get probability 0 unless none
    inside has any; a boolean gate allowed one state only gets it for sure.
    """
    if column.kind == "categorical":
        block = expected[:, column.start : column.start + column.width]
        kept = block * allowed
        some = kept.sum(axis=1) > 0
        block[some] = kept[some]
    elif column.kind == "boolean":
        only = allowed.sum(axis=1) == 1
        expected[only, column.start] = allowed[only, 1]


def _decode_expectations(table, expected, numeric):
    """Cells from expectations (see :func:`_expectations`), column by column.

    Returns an object array of shape (n, n_columns): a numeric column's
    expected value, a boolean's or category's most probable value.
    """
    decoding = copy.copy(table)
    decoding.gates = []  # missing values tied to other columns: not for imputations
    decoding.functions = []  # nor columns that another decides: each is its own
    decoded = decoding.decode(expected)
    values = np.empty((expected.shape[0], len(table.columns)), dtype=object)
    numbers = iter(numeric.T)
    for j, c in enumerate(table.columns):
        if c.kind == "numeric":
            values[:, j] = next(numbers)
        elif c.kind == "categorical" and not (
            len(c.levels) - len(c.unseen or ()) + len(c.rare or ())
        ):
            values[:, j] = None  # no level seen in fit (e.g. an all-missing column)
        elif table.array:
            values[:, j] = decoded[:, j]
        else:
            values[:, j] = decoded[c.name].to_numpy()
    return values
