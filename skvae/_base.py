"""_BaseAutoencoder: parameters, fit/partial_fit, inference, scores, tags, pickling."""

import copy
import dataclasses
import functools
import math
import re
import sys
import warnings
from abc import ABCMeta, abstractmethod
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from joblib import cpu_count, effective_n_jobs
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval as _Interval
from sklearn.utils._param_validation import (
    Options,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.validation import (
    check_array,
    check_is_fitted,
    check_scalar,
    validate_data,
)
from threadpoolctl import threadpool_limits

from ._conditional import (
    CONDITIONAL_DRAWS,
    GaussianMixtureDensity,
    as_column,
    check_range,
    conditional_rows,
    conditions,
    model_moments,
)
from ._likelihoods import TINY_VARIANCE
from ._networks import (
    ACTIVATIONS,
    BACKGROUND_WEIGHT,
    IMPORTANCE_ELEMENTS,
    as_fitted,
    build,
    identical_rows,
    shell,
)
from ._onnx import PARTS, export_module
from ._persistence import load_estimator, save_estimator
from ._torch import (
    DENSE_ELEMENTS,
    INFERENCE_CHUNK,
    SparseRows,
    available,
    batched,
    check_memory,
    dense_row_count,
    dense_rows,
    generator,
    inference_dtype,
    inference_module,
    resolve_device,
    row_keys,
    row_normals,
    torch_device_type,
    torch_threads,
    training_tensor,
)
from ._training import (
    ANNEAL_FLOOR,
    AUTO_EARLY_STOPPING_ROWS,
    AUTO_PATIENCE,
    SETTLED_TOL,
    Schedule,
    TrainConfig,
    budget,
    dequantizer,
    make_optimizer,
    train,
)
from .exceptions import NonFiniteLossError, _warn

__all__ = [
    "Interval",
    "StrOptions",
    "_BaseAutoencoder",
    "check_n_samples",
    "check_sample_random_state",
    "fit_code_density",
    "sample_code_density",
]

_MAX_SEED = np.iinfo(np.int32).max
#: Codes used to fit the density that ``sample`` draws from, at most, and rows
#: used to fit the factor analysis a network starts at.
_DENSITY_MAX_ROWS = 10_000
#: In ``partial_fit``, the density of the rows seen before a batch makes up
#: their share of the rows, but at most this share, of the codes the updated
#: density is fitted on: a memory of about ten batches, so that the codes of an
#: encoder long since trained on fade out. Measured on a stream of 4,000 rows
#: sorted by a feature (8 batches, 5 passes): that feature's mean in the
#: samples, 0 in the data, was 1.5 (VAE, sample_from="posterior") and 1.8
#: (autoencoder) with the last batch's density, 0.5 and 0.2 with this memory;
#: without the cap the autoencoder's samples of the same rows shuffled had a
#: standard deviation of 0.91 where the data's is 0.99 (1.00 with the last
#: batch's density, 1.02 with the cap).
_DENSITY_MEMORY = 0.9
#: Version of the state that ``__getstate__`` writes (2: the network as its
#: plain description and numpy weights; skvae 0.1 pickled the torch module;
#: 3: the description may hold an "input_unit", which readers of 2 cannot build;
#: 4: a VAE's background may be "ppca_t", which readers of 3 cannot build, and a
#: table's string dtype may name its storage, "str[python]").
_PICKLE_VERSION = 4
#: The versions ``__setstate__`` reads: a version 2 network has no input unit.
_READABLE_PICKLES = (2, 3, 4)
#: Largest absolute input value: float32 networks overflow beyond it.
_MAX_ABS = np.finfo(np.float32).max / 1e3
#: Fewest training rows a fit accepts (the code density needs two).
_MIN_ROWS = 2
#: Widest spread of a training feature: squared differences of values further
#: apart overflow float32 (the losses and the variances).
_MAX_SPREAD = float(np.sqrt(np.finfo(np.float32).max))
#: Narrowest spread of the widest varying training feature of a model whose
#: variances are in X's units (the VAE's Gaussian and Student-t on arrays):
#: their float32 floor, TINY_VARIANCE, is then at most a hundredth of its
#: squared spread. Data of standard deviation 1e-16 fit as at unit scale, 1e-18
#: (spread 6e-18: warned of) scored 0.2 nats per row below it, 1e-20 7 nats; a
#: constant column that StandardScaler centred spans 6e-17 (no warning: the
#: advice to scale X must not lead to one).
_MIN_SPREAD = math.sqrt(100 * TINY_VARIANCE)
#: A feature whose range is at most this share of its values' size is constant
#: (:func:`_varying_spread`): float64 rounding.
_CONSTANT_SPREAD = 1e-12
#: A training feature that float32 rounds to steps of more than this share of
#: its range warns (:func:`_warn_offset`): its values lie more than about 1e5
#: of its range from zero (a year, 2000 plus or minus 10, is 200 from it).
_OFFSET_STEP = 1e-2
#: How far outside [0, 1] values of a unit-interval likelihood may lie, as
#: rounding leaves them (MinMaxScaler can return 1 + 2e-16).
_UNIT_TOLERANCE = 1e-6


class Interval(_Interval):
    """scikit-learn's ``Interval``, which also rejects bools (``n_components=True``).

    Python counts ``True`` as the int 1 (and the real 1.0); a bool given for a
    number is a mistake, so it is refused with scikit-learn's message.
    """

    def is_satisfied_by(self, val):
        if isinstance(val, (bool, np.bool_)):
            return False
        return super().is_satisfied_by(val)


#: The values of ``numeric_transform`` (also those of its dict).
_NUMERIC_TRANSFORMS = ("auto", "quantile", "mixture", "standard")


class _TransformDict(Options):
    """A ``numeric_transform`` dict: each value one of ``_NUMERIC_TRANSFORMS``.

    Checked with the other parameters, at every fit, whatever X is (an
    array without missing values has no numeric columns to map, and a dict
    naming a transform that does not exist was accepted there silently).
    """

    def __init__(self):  # an Options, which scikit-learn's checks take as they are
        super().__init__(dict, set())

    def is_satisfied_by(self, val):
        return isinstance(val, dict) and all(
            isinstance(v, str) and v in _NUMERIC_TRANSFORMS for v in val.values()
        )

    def __str__(self):
        options = ", ".join(repr(t) for t in _NUMERIC_TRANSFORMS)
        return f"a dict whose values are among {{{options}}}"


#: Parameter descriptions both estimators share, spliced into their class
#: docstrings where a line reads ``    %(name)s`` (see :func:`shared_parameter_docs`).
_PARAMETER_DOCS = {
    "activation": """\
    activation : {"relu", "tanh", "elu", "gelu", "silu", "leaky_relu", "sigmoid"}, \
            default="relu"
        Activation after each hidden layer.""",
    "dropout": """\
    dropout : float, default=0.0
        Dropout probability after each hidden activation during training.""",
    "batch_size": """\
    batch_size : int or "auto", default="auto"
        Rows per minibatch; larger than the data means full-batch training.
        "auto" grows with the number of training rows n: ``2.5 * sqrt(n)``
        rounded to a power of 2, within [32, 2048] (32 below about 330 rows,
        64 up to 1,300, 256 for 10,000, 1024 for 100,000, 2048 from about
        336,000), then at least 64 and at most 512: where the rule gives 32,
        batches of 64 train for the epochs of batches of 32 at twice their
        rate (``learning_rate="auto"``), the same training in half the steps;
        where it gives 1024 or 2048 (from about 84,000 rows), batches of 512
        train for the epochs of the larger batch on a CPU, more steps in
        about the same time (a GPU, where a step costs about the same at any
        of these sizes, keeps the larger batch).""",
    "max_iter": """\
    max_iter : int or "auto", default="auto"
        Maximum number of epochs (passes over the data). "auto" gives a fit
        about 5,000 optimizer steps, 6.25 per row below 800 rows (counted
        in batches of 32 below about 330 rows; see ``batch_size``) and
        growing as ``(n / 100,000) ** 0.25`` beyond 100,000 rows: the epochs
        that make them, within [5, 1000] (about 190 epochs for 300 rows, 330
        for 1,000, 140 for 10,000, 57 for 100,000, 20 for a million); a
        ``VAETransformer`` of a table with validation rows (early stopping)
        makes at least 1,000 steps (500 epochs for 100 training rows), and
        an ``AutoencoderTransformer`` at least one step per training row up
        to 10,000 steps (twice the rule's from 10,000 to 50,000 training
        rows, fading to the rule's by about 71,000; 250 epochs for 10,000
        rows),
        instead of a fixed number of passes that is too few
        steps for small data and too slow for large. Either way
        the learning rate follows a cosine from ``learning_rate`` down to 5%
        of it over the budget's steps (from the multiple of it that
        ``learning_rate="auto"`` may choose, after a rise, down to 5% of the
        rate itself), and training may stop earlier (``tol``).""",
    "learning_rate": """\
    learning_rate : float or "auto", default="auto"
        Step size of the optimizer (at the start of its cosine schedule).
        "auto" is 1e-3 up to batches of 64 rows and grows in proportion to
        the batch size beyond, up to 4e-3 (from 256 rows); a batch of 64 that
        ``batch_size="auto"`` raised from 32 takes up to 2e-3, in proportion
        to the rows a step sees. Larger batches
        average out more noise, so they can take larger steps, which is what
        lets larger data converge in few epochs. A ``VAETransformer`` with
        validation rows and more than 5,000 training rows (up to 20,000, of
        a real-valued array) also tries 8 times that rate: a network trains
        for a quarter of the fit's epochs at each (a tenth beyond 20,000
        rows), from the start the fit proceeds from (up to 20,000 rows, that
        at the rate only where 8 times it beat the better start trial), and
        the fit takes 8 times the rate where its validation score
        beats the rate's by more than 1% of the rate's progress, rising to it
        over the first 5% of the steps; the cosine ends where the rate's
        would. No trial runs where it would end within ``kl_warmup``. Some
        data need far larger steps than their batch suggests (100,000 rows
        of a 64-feature manifold scored 8.5 nats/row held out at 8 times the
        rate against 6.1), others stall at them. A fit that diverges at 8
        times the rate trains again at the rate, with a warning. A continued
        fit (``warm_start``, ``partial_fit``) trains at the rate
        itself.""",
    "optimizer": """\
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
        Optimizer; "sgd" is SGD with momentum 0.9 (no Nesterov).""",
    "weight_decay": """\
    weight_decay : float, default=0.0
        L2 penalty (decoupled for "adamw"). An autoencoder's squared error
        is weighed against it in units of the features' median deviation,
        so that the penalty means the same in any units of the data.""",
    "early_stopping": """\
    early_stopping : bool or "auto", default="auto"
        Hold out ``validation_fraction`` of the rows, stop when the validation
        loss (a VAE's negative ELBO) stops improving, and restore the best
        weights (the starting weights are a candidate too). "auto" does so
        when there are at least 50 rows: the default budget (6.25 optimizer
        steps per row below 800 rows, about 5,000 steps from there; see
        ``max_iter``) overfits small data without it.""",
    "validation_fraction": """\
    validation_fraction : float, default=0.1
        Fraction of rows held out when early stopping.""",
    "n_iter_no_change": """\
    n_iter_no_change : int, default=10
        Epochs without enough improvement (``tol``) before stopping; with
        ``early_stopping="auto"``, at least a fifth of ``max_iter``.""",
    "tol": """\
    tol : float, default=1e-3
        Relative tolerance of the stopping rule. Training stops when the
        validation loss has not improved by ``tol`` times the progress made so
        far (its first value minus its best) for more than
        ``n_iter_no_change`` epochs (with ``early_stopping="auto"``, a fifth
        of ``max_iter`` at least), or, without
        validation rows, when the mean training loss of the last
        ``n_iter_no_change`` epochs is not that much below the mean of the
        ``n_iter_no_change`` before. A fit that runs all ``max_iter`` epochs
        warns (``ConvergenceWarning``) only if its loss was still falling at
        the end: its last fifth of epochs more than 1% of the progress, and
        more than twice the standard error of the difference (the loss's
        noise), below the fifth before; except on fewer than 50 rows with
        ``max_iter`` and ``early_stopping`` at "auto", where the budget is the
        stopping rule (more epochs there overfit).""",
    "device": """\
    device : str or torch.device, default="auto"
        "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:N", "mps".
        These networks are small: up to about 10,000 rows a fit is usually
        faster on the CPU than on a GPU (see the performance page).""",
    "warm_start": """\
    warm_start : bool, default=False
        Continue training the previous model on the next ``fit``. A change of
        a parameter that shapes the network (its widths, activation, dropout,
        likelihood or loss and noise) or of the number of features refits
        from scratch. A table (a DataFrame, or an array with missing values)
        keeps its encoding where the new data encode alike (the same columns,
        kinds, levels, missing values, kinds of map, missing-value rules and
        columns that another decides, numbers within the fitted range by half
        its width). Otherwise the encoding is fitted to the new data, and the
        network continues on it where that has the same structure (the same
        columns, kinds, levels and missing values, and for a VAE the same
        cells of discrete values, which its network holds), or refits from
        scratch.""",
    "n_jobs": """\
    n_jobs : int or None, default=None
        Number of CPU threads torch uses, during fits and inference on the
        CPU. None means 1, also inside a joblib context (a grid search's
        workers, a dask cluster), which parallelises over fits instead; -1
        all processors, as in scikit-learn; more than the processors counts
        as all of them. One thread is the default because these small
        networks gain little from more, and lose much when another process
        competes for the cores (see :ref:`performance`); torch's own setting
        is restored afterwards.""",
    "verbose": """\
    verbose : int, default=0
        0 prints nothing, 1 shows a progress bar, 2 prints a line per epoch;
        1 and 2 also say which multiple of ``learning_rate="auto"`` the
        trials chose, where they chose one.""",
    "categorical_features": """\
    categorical_features : "from_dtype", array-like of str or bool, or None, \
            default="from_dtype"
        For a pandas DataFrame: which columns are categorical. "from_dtype"
        takes ``category``, object and string columns (and booleans, modelled
        as Bernoulli); a list of column names or a boolean mask adds numeric
        columns to those. A DataFrame is modelled column by column (see
        Notes); numeric arrays are not affected.""",
    "numeric_transform": """\
    numeric_transform : {"auto", "quantile", "mixture", "standard"} or dict, \
            default="auto"
        How each numeric column of a table (a DataFrame, or an array with
        missing values) is mapped to the normal scores the network models.
        "quantile" maps it through its empirical CDF (piecewise linear
        between quantiles) and ``Phi^-1``, so any marginal, skewed, bounded,
        multimodal or with repeated values, comes out right; "mixture" uses the
        CDF of a Bayesian Gaussian mixture (TVAE's modes) instead, smoother
        between the data; "standard" only standardizes. Columns with at most
        50 distinct values, and integer columns, are discrete: sampled among
        the values fitted. A value that holds more than half of a column
        ("quantile" or "mixture"), such as the zeros of an amount, gets a 0/1
        flag of its own and the map models the other values, so samples hold
        it as often as the data does, with the same ties to other columns.
        With "quantile" or "mixture", a VAE with the Gaussian likelihood
        scores a discrete value (and a repeated one) by the probability of
        the interval of scores that decodes to it. A dict maps column names
        to these (others "auto"). "auto" is "quantile".
        Samples always lie in each column's fitted range, with its dtype
        (values given to ``sample(given=...)`` come back as given).
        Scores include each map's log-Jacobian, so they stay densities in the
        original units.""",
}


def shared_parameter_docs(cls):
    """Class decorator: put the shared descriptions into ``cls``'s docstrings.

    Each line of the class docstring that reads ``    %(name)s`` becomes the
    description of parameter ``name`` in ``_PARAMETER_DOCS``, and each line of
    a method's docstring (defined in ``cls``) that reads ``        %(name)s``
    the section ``name`` of ``_METHOD_DOCS``, so the two estimators document
    what they share with one text.
    """
    cls.__doc__ = re.sub(
        r"^    %\((\w+)\)s$",
        lambda match: _PARAMETER_DOCS[match.group(1)],
        cls.__doc__,
        flags=re.MULTILINE,
    )
    for method in vars(cls).values():
        if callable(method) and method.__doc__:
            method.__doc__ = re.sub(
                r"^        %\((\w+)\)s$",
                lambda match: _METHOD_DOCS[match.group(1)],
                method.__doc__,
                flags=re.MULTILINE,
            )
    return cls


#: Sections of method docstrings that both estimators share.
_METHOD_DOCS = {
    "sample_raises": """\
        TypeError
            If ``given`` is not a dict or a DataFrame, or gives a numeric
            column something other than numbers.
        ValueError
            If ``given`` names an unknown column or level, holds missing
            values, has a number of rows other than ``n_samples``, or a
            number outside the range the model was fitted on: for a table,
            beyond the column's fitted range by more than 10% of its width;
            for an array, more than 10 standard deviations from the model's
            mean of the feature; or if given columns of a table break a
            missing-value rule of the fitted data (an income given where the
            data had it missing for every unemployed row, say; also down a
            chain of such rules) or a column that another decided in every
            row (a treatment flag given False with an arm that always had it
            True).
        MemoryError
            If the ``n_samples`` rows, which are generated at once, would not
            fit in this machine's memory.""",
}


#: Folds of the cross-validation that picks how many factors a network's
#: factor-analysis start uses, and rows a fold's factor analysis is fitted on
#: at most (the start itself is fitted on up to ``_DENSITY_MAX_ROWS``).
_START_FOLDS = 5
_START_FOLD_ROWS = 2_000
#: Where it picks some but not all of the factors asked for, fewer than
#: ``_START_REPEAT_ROWS`` rows repeat that cross-validation on new folds, up
#: to ``_START_REPEATS`` times in all, until about that many held-out scores
#: are averaged (or all the factors are picked). One split of a few dozen
#: rows decides by chance: on ``load_wine``'s halves (89 rows, 5 factors asked
#: for), ten fold seeds picked 3, 4 or 5 factors for the same rows.
_START_REPEATS = 10
_START_REPEAT_ROWS = 1_000
#: Share of a fit's epochs each start trains for when the start is chosen on
#: validation rows (:meth:`_BaseAutoencoder._start`). Measured on
#: bench_density's 3-dimensional manifold (seed 0): the best validation scores
#: of the two starts ranked as their final held-out scores did from a quarter
#: of the epochs on, but not at a tenth (n_components=6: -8.0 against -8.3 for
#: the factor-analysis start, which ended 1.7 nats/row below).
_START_TRIAL = 0.25
#: Most training rows at which the start is chosen: the two trials cost half a
#: fit, seconds up to here (issue 11's 100,000-row fits would pass their 30 s
#: budget); larger data keeps the factor-analysis start.
_START_TRIAL_ROWS = 20_000
#: ``learning_rate="auto"`` of a VAE beyond ``_RATE_TRIAL_ROWS`` training rows
#: (:meth:`_BaseAutoencoder._start`; up to ``_START_TRIAL_ROWS``, only where the start
#: trials ran): a network from the start the fit proceeds from trains for ``_RATE_TRIAL`` of
#: the fit's epochs (``_START_TRIAL`` up to ``_START_TRIAL_ROWS``) at a multiple of the rate
#: (``_RATE_MULTIPLE``; rising to it over ``_RATE_WARMUP`` of the steps) and, unless it does
#: not beat the better start trial, one at the rate, both on a cosine down to the rate's
#: floor, and the fit takes the multiple where its best validation score beats the rate's by
#: more than ``SETTLED_TOL`` of that trial's progress; no trial runs where it would end
#: within ``kl_warmup``. Measured (held-out nats/row of full fits at 1x / 4x / 8x, and the
#: trials' choice): 100,000 manifold rows 6.07 / 7.15 / 8.34 (8x), 50,000 blobs 3.89 / 4.26
#: / 4.27 (8x), 50,000 make_classification rows -52.83 / -52.85 / -53.25 (1x; a trial at the
#: constant rate made a weaker bar and chose 8x). At 10,000 rows trials of a tenth of the
#: epochs (14) chose 8x for make_classification (-51.67 to -51.97) and a low-rank tanh array
#: (-65.25 to -68.28, the fit at 8x stopped early at epoch 43), trials of a quarter kept the
#: rate there and chose 8x for the manifold (2.51 to 6.63; 6,000 rows 0.96 to 5.06, 20,000
#: 3.35 to 7.88) and blobs (4.41 to 4.58); confirmed on an s-curve (8x, 11.54 to 11.79),
#: Hastie's and Friedman's arrays and 9,000 shifted load_digits rows (the rate, same fits;
#: each multiple's trial fell below the better start trial). Tables and counts, with no
#: start trials, keep the rate up to _START_TRIAL_ROWS: trials doubled bench_sparse's
#: 10,000-row count fits (26 to 51 s), which kept it, and moved randhie's tables by seed
#: noise. Below ``_RATE_TRIAL_ROWS`` the rate is kept: from 1,000 training rows up, trials
#: at 4 and 8 times it raised held-out scores (lifelines' dd -18.45 to -17.89), but not
#: where it counts: the README's load_digits pipeline (1,212 training rows) classified 0.882
#: of the test digits where it classified 0.911 (its score rose on the pixels' lattice), its
#: fit and two of five gallery fits of load_digits ended still improving and warned, and
#: fits took 1.1-3.4 times as long.
_RATE_TRIAL_ROWS = 5_000
#: The multiple of the rate tried. Multiples growing with the batch beyond 256 rows,
#: where the "auto" rate stops growing, were measured and not kept: the performance page's
#: "Tried and not kept".
_RATE_MULTIPLE = 8.0
_RATE_TRIAL = 0.1
_RATE_WARMUP = 0.05


def _rate_comes_down(factor):
    """The share of a fit's steps after which ``factor`` times the rate is down to the rate.

    The rate rises over ``_RATE_WARMUP`` of the steps, then follows a cosine
    from ``factor`` times the rate down to ``ANNEAL_FLOOR`` times it (see
    :func:`_rate_schedule`); 0 for a factor of 1 or less.
    """
    if factor <= 1:
        return 0.0
    level = (1 - ANNEAL_FLOOR) / (factor - ANNEAL_FLOOR)  # of the cosine's span
    return _RATE_WARMUP + (1 - _RATE_WARMUP) * math.acos(2 * level - 1) / math.pi


def _rate_schedule(rate, factor):
    """The ``TrainConfig`` fields of training at ``factor`` times ``rate``.

    Above 1, a rise over ``_RATE_WARMUP`` of the steps; the cosine ends
    where the rate's own would, at ``ANNEAL_FLOOR`` times it.
    """
    return {
        "rate_warmup": _RATE_WARMUP if factor != 1 else 0.0,
        "rate_floor": ANNEAL_FLOOR * rate,
    }


def _start_trials_run(n_rows, X_val):
    """Whether a fit on ``n_rows`` training rows runs start trials on X_val."""
    return X_val is not None and n_rows <= _START_TRIAL_ROWS


def _start_rows(X, seed):
    """At most ``_DENSITY_MAX_ROWS`` of X's rows for a start to be fitted on.

    Dense (a sparse X's densified by :func:`~._torch.dense_rows`: at most
    4,194,304 values), float64 at the float32 values the network trains on,
    so that a sparse fit, whose rows are float32, starts where the dense fit
    does. The rows read are :func:`~._torch.dense_row_count`'s.
    """
    rows = dense_rows(X, _DENSITY_MAX_ROWS, seed)
    return np.asarray(rows, dtype=np.float32).astype(np.float64)


class LinearStart(tuple):
    """A linear start ``(components, noise_variance)`` and its number of factors.

    Unpacks and indexes as the 2-tuple; ``factors`` is the m it was fitted
    with (None where not chosen), which its zero rows need not tell:
    factor analysis zeroes a weak factor's loadings.
    """

    factors = None


def linear_start(X, n_components, seed, factors=None):
    """The factor-analysis solution for a network to start at, fitted on X's rows.

    The number of factors m <= ``n_components`` is ``factors`` or, where
    that is None, the one with the best
    cross-validated log-likelihood (:func:`n_factors`); the other latent
    dimensions start unused (zero loadings). Returns ``(components,
    noise_variance)`` as a :class:`LinearStart` whose ``factors`` is m: the
    loadings, of shape (n_components, n_features), with
    rows m and beyond zero, and the per-feature noise variances. None when X
    has fewer than 2 rows, the rows are all the same, or the fit is not
    finite; when no factor is
    supported, all ``n_components`` are used (their loadings are weak). A
    scipy.sparse X is fitted on a random subset of its rows, densified
    (:func:`~._torch.dense_rows`: at most 4,194,304 values).
    """
    if X.shape[0] < 2:
        return None
    X = _start_rows(X, seed)
    if identical_rows(X):
        # Identical rows have no spread for a decoder's noise: factor analysis
        # floors it at 1e-12 (in their median unit, 1.0), and a partial_fit
        # stream that began with them was then a million deviations off on
        # varying rows and diverged. The network starts in unit deviations.
        return None
    k = min(n_components, *X.shape)
    # With no factor supported (uncorrelated features, say, as on a closed curve),
    # every latent dimension would start at the prior with no path to the
    # decoder, where training cannot find the structure a linear model misses:
    # the k weak factors of the full model seed it instead.
    m = min(n_factors(X, k, seed) if factors is None else factors, k) or k
    model = _factor_analysis(X, m, seed)
    components = np.zeros((n_components, X.shape[1]))
    components[:m] = model.components_
    if not (np.isfinite(components).all() and np.isfinite(model.noise_variance_).all()):
        return None
    start = LinearStart((components, model.noise_variance_))
    start.factors = m
    return start


def pca_start(X, n_components, seed):
    """PCA's solution for an autoencoder to start at, fitted on X's rows.

    Fitted on at most ``_DENSITY_MAX_ROWS`` rows (a scipy.sparse X's densified
    by :func:`~._torch.dense_rows`). Returns ``(loadings, None)`` in the form of
    :func:`linear_start`'s: the principal axes times the standard deviations
    of the scores along them, of shape (n_components, n_features), so that the
    network's codes start as PCA's whitened scores (unit variance, as a VAE's
    codes start) and its reconstructions as PCA's; rows beyond the axes the
    rows support are zero (those codes start unused). None when X has fewer
    than 2 rows, the rows are all the same, or the fit is not finite.
    """
    if X.shape[0] < 2:
        return None
    X = _start_rows(X, seed)
    # Centred first: PCA's covariance solver (chosen for many more rows than
    # features) subtracts the mean after the product, which loses the axes of
    # data far from the origin (loadings off by 7e-3 at an offset of 1e6).
    X = X - X.mean(axis=0)
    if identical_rows(X):  # no axis to start along
        return None
    k = min(n_components, X.shape[0] - 1, X.shape[1])
    pca = PCA(k, random_state=seed).fit(X)
    variance = pca.explained_variance_
    # Axes of rounding noise (rank-deficient rows) stay unused, not tiny.
    noise = variance[0] * max(X.shape) * np.finfo(np.float64).eps
    variance = np.where(variance > noise, variance, 0.0)
    loadings = np.zeros((n_components, X.shape[1]))
    loadings[:k] = np.sqrt(variance)[:, None] * pca.components_
    if not np.isfinite(loadings).all():
        return None
    return loadings, None


#: Features beyond which factor analysis uses a randomized SVD (as PCA's "auto"
#: does from 500 columns, for fewer than 80% of them as factors). Measured on
#: 8,000 x 784 rows of rank 20 with 10 factors, one BLAS thread: 67 s with
#: LAPACK's full SVD, 8.7 s randomized, the same held-out score (-637.034) and
#: iterations (63); the whole start (:func:`linear_start`, with its
#: cross-validation) of 10,000 such rows took 211 s and 31 s, with the same
#: loadings. Narrower data keep the exact SVD.
_RANDOMIZED_SVD_FEATURES = 500
#: Most iterations of factor analysis (scikit-learn's default is 1,000). Its
#: ``tol`` bounds the gain of the total log-likelihood (1e-6 nats/row on
#: 10,000 rows), which noise-heavy data never reach: 10,000 rows of
#: make_classification (40 features, 28 of them noise; 5 factors) ran all
#: 1,000 iterations, 15.1 s of a 28 s VAE fit, where 200 take a fifth of the
#: time for a held-out score 0.011 nats/row lower (150: the same factors
#: chosen, 0.016 lower). Data that converge within the
#: cap keep their start exactly: 8 of 10 arrays measured (load_digits 23
#: iterations, a manifold 9, diabetes 142; blobs took 225, within 0.007 nats
#: at 150). A looser tolerance (1e-4 nats/row) changed every start a little,
#: and load_digits' VAE scored 0.13-0.17 nats/row lower over four seeds.
_FACTOR_MAX_ITER = 200


def _factor_analysis(X, n_components, seed):
    """scikit-learn's ``FactorAnalysis`` with ``n_components`` factors, fitted on X.

    At most ``_FACTOR_MAX_ITER`` iterations. The fit runs on X divided by its
    columns' standard deviations (the median one for a constant column) and the fitted
    model is expressed in X's units: factor analysis is equivariant under a
    rescaling of the features, but scikit-learn floors the noise variances at
    an absolute 1e-12, which for data in small units (standard deviations of
    1e-6) is most of the variance itself.
    """
    from sklearn.decomposition import FactorAnalysis

    scale = X.std(axis=0, dtype=np.float64)
    # A constant column (to rounding, or subnormal) in the median column's
    # unit: its noise variance floors at 1e-12 of that, in any units.
    tiny = math.sqrt(TINY_VARIANCE)
    varying = scale[scale > tiny]
    typical = float(np.median(varying)) if varying.size else 1.0
    scale[~(scale > 1e-10 * typical) | ~(scale > tiny)] = typical
    wide = X.shape[1] > _RANDOMIZED_SVD_FEATURES and n_components < 0.8 * min(X.shape)
    method = "randomized" if wide else "lapack"
    with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):
        # Constant data divide by a zero variance in the explained ratios.
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        model = FactorAnalysis(
            n_components,
            max_iter=_FACTOR_MAX_ITER,
            svd_method=method,
            random_state=seed,
        ).fit(X / scale)
    model.components_ = model.components_ * scale
    model.noise_variance_ = model.noise_variance_ * scale**2
    model.mean_ = model.mean_ * scale
    return model


def n_factors(X, n_components, seed):
    """How many factors, at most ``n_components``, X supports: 0 to n_components.

    Each of ``_START_FOLDS`` folds (repeated on new folds for small X where
    the choice is some but not all factors, see ``_START_REPEATS``, and the
    scores averaged) fits factor analysis with ``n_components`` factors on
    the other rows (at most ``_START_FOLD_ROWS`` of them) and scores its fold
    under the model's nested sub-models: the m strongest factors (largest
    :math:`w_j^\\top \\Psi^{-1} w_j`), the variance of the others added to
    the noise. As a VAE's own score mixes in a broad background
    (:class:`~._networks.Background`), a row's score mixes in the sub-model
    with no factors (independent features) at weight ``BACKGROUND_WEIGHT``, so
    that a few held-out rows far outside a fold's range (a pixel constant in
    the fold) cannot decide. The m with the highest summed held-out score is
    the best; the largest m at or above it whose sum falls short of the best's
    by at most one standard error (:func:`_chosen_factors`) wins, so fewer
    factors than asked for are used only where the data clearly support
    fewer. Data with fewer than ``2 * _START_FOLDS`` rows keep
    ``n_components``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    n_components : int
    seed : int
        Seeds the folds and the factor analyses.

    Returns
    -------
    m : int
    """
    n = X.shape[0]
    if n_components == 0 or n < 2 * _START_FOLDS:
        return n_components
    rng = np.random.RandomState(seed)
    repeats = min(_START_REPEATS, max(1, math.ceil(_START_REPEAT_ROWS / n)))
    scores = np.zeros((n, n_components + 1))
    for repeat in range(repeats):
        order = rng.permutation(n)
        for held in np.array_split(order, _START_FOLDS):
            rest = np.setdiff1d(order, held, assume_unique=True)
            subset = np.random.RandomState(seed).permutation(rest.size)
            rest = rest[subset[:_START_FOLD_ROWS]]
            model = _factor_analysis(X[rest], min(n_components, rest.size), seed)
            fold = _nested_log_likelihoods(
                X[held], model.mean_, model.components_, model.noise_variance_
            )
            with np.errstate(all="ignore"):
                fold = np.logaddexp(
                    fold + np.log1p(-BACKGROUND_WEIGHT),
                    fold[:, :1] + np.log(BACKGROUND_WEIGHT),
                )
            scores[held, : fold.shape[1]] += fold
            scores[held, fold.shape[1] :] = -np.inf
        m = _chosen_factors(scores / (repeat + 1))
        if m is None:
            return n_components
        if m in (0, n_components):  # repeats check a choice of some, not all
            return m
    return m


def _chosen_factors(scores):
    """The sub-model chosen from per-row held-out scores of shape (n, k + 1).

    The best sub-model has the highest summed score; the largest m at or above
    it whose sum is within one standard error of the best's (of the summed
    per-row differences) is chosen. None when no sum is finite.
    """
    totals = scores.sum(axis=0)
    finite = np.isfinite(totals)
    if not finite.any():
        return None
    best = int(np.argmax(np.where(finite, totals, -np.inf)))
    with np.errstate(all="ignore"):
        error = np.sqrt(len(scores)) * (scores[:, [best]] - scores).std(axis=0)
    # Ties (and differences below rounding) go to more factors too.
    tolerance = np.nan_to_num(error, nan=0.0) + 1e-9 * abs(totals[best]) + 1e-9
    close = finite & (totals >= totals[best] - tolerance)
    close[:best] = False
    return int(np.flatnonzero(close)[-1])


def _nested_log_likelihoods(X, mean, components, noise_variance):
    """Log-likelihoods of X's rows under a factor model's nested sub-models.

    Returns an array of shape (n_samples, k + 1): column m is for the m
    strongest of the k factors in ``components`` (shape (k, n_features)), the
    variance the other factors explain added to ``noise_variance``. Computed
    with the matrix inversion lemma: O(n_samples * n_features * k) per column.
    """
    psi = np.maximum(noise_variance, np.finfo(np.float64).tiny)
    strength = (components**2 / psi).sum(axis=1)
    W = components[np.argsort(-strength, kind="stable")]
    R = X - mean
    d = R.shape[1]
    scores = np.empty((R.shape[0], W.shape[0] + 1))
    with np.errstate(all="ignore"):
        for m in range(W.shape[0] + 1):
            noise = psi + (W[m:] ** 2).sum(axis=0)
            scaled = W[:m] / noise  # (m, d)
            chol = np.linalg.cholesky(np.eye(m) + scaled @ W[:m].T)
            projected = np.linalg.solve(chol, scaled @ R.T)  # (m, n)
            mahalanobis = (R**2 / noise).sum(axis=1) - (projected**2).sum(axis=0)
            log_det = np.log(noise).sum() + 2 * np.log(np.diag(chol)).sum()
            scores[:, m] = -0.5 * (mahalanobis + log_det + d * np.log(2 * np.pi))
    return scores


def _numpy(obj):
    """``obj`` (nested dicts and lists) with every tensor as a numpy array."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().numpy().copy()
    if isinstance(obj, dict):
        return {key: _numpy(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_numpy(value) for value in obj)
    return obj


def _tensors(obj):
    """The inverse of :func:`_numpy`: numpy arrays back to tensors."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj)
    if isinstance(obj, dict):
        return {key: _tensors(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_tensors(value) for value in obj)
    return obj


def _max_abs(X):
    """The largest absolute value of a dense or scipy.sparse X (0 when empty)."""
    values = X.data if sp.issparse(X) else X
    return np.abs(values).max() if values.size else 0.0


def _check_magnitude(X, largest=None):
    """Raise a ValueError when X holds values the float32 network cannot take.

    ``largest`` is X's largest absolute value where the caller has it.
    """
    if (_max_abs(X) if largest is None else largest) > _MAX_ABS:
        raise ValueError(
            "X has values too large for the float32 network (above 3e35); scale X "
            "first, e.g. with StandardScaler."
        )


def _value_range(X):
    """The smallest and largest value of a dense or scipy.sparse X.

    A sparse X's implicit zeros count (when it has any).
    """
    if not sp.issparse(X):
        return X.min(), X.max()
    values = X.data
    low, high = (values.min(), values.max()) if values.size else (0.0, 0.0)
    if X.nnz < X.shape[0] * X.shape[1]:
        low, high = min(low, 0.0), max(high, 0.0)
    return low, high


def _all_integers(X, chunk=2**22):
    """Whether every value of a dense or scipy.sparse X is a whole number.

    Read in chunks, so that the check needs no copy of X.
    """
    values = (X.data if sp.issparse(X) else X).reshape(-1)
    return all(
        np.array_equal(part, np.round(part))
        for part in (values[i : i + chunk] for i in range(0, values.size, chunk))
    )


def _column_bounds(X):
    """Per-feature smallest and largest value (float64), of a dense or sparse X.

    A sparse X's implicit zeros count: a column's range includes 0 unless
    every row stores a value in it.
    """
    if not sp.issparse(X):
        return X.min(axis=0).astype(np.float64), X.max(axis=0).astype(np.float64)
    X = X.tocsr()
    d = X.shape[1]
    high, low = np.full(d, -np.inf), np.full(d, np.inf)
    np.maximum.at(high, X.indices, X.data)
    np.minimum.at(low, X.indices, X.data)
    stored = np.bincount(X.indices, minlength=d)
    implicit = stored < X.shape[0]
    high = np.where(implicit, np.maximum(high, 0.0), high)
    low = np.where(implicit, np.minimum(low, 0.0), low)
    return low, high


def _varying_spread(low, high):
    """Per-feature range, 0 where it is rounding of the values' size (a constant).

    0.1 + 0.2 beside 0.3 spans 5.6e-17: a constant to float64, as the
    networks' units and factor analysis read it.
    """
    spread = high - low
    size = np.maximum(np.abs(low), np.abs(high))
    return np.where(spread > _CONSTANT_SPREAD * size, spread, 0.0)


def _warn_offset(low, high):
    """Warn where float32 rounds a feature to steps above ``_OFFSET_STEP`` of its range.

    The network reads float32: rows of 6 features of spread 10 around 1e8 were
    rounded to steps of 8, and a VAE scored -12.08 nats per row where factor
    analysis scored -5.16 (the autoencoder's error 61.9 against 0.346).
    """
    spread = _varying_spread(low, high)
    step = np.spacing(np.maximum(np.abs(low), np.abs(high)).astype(np.float32))
    coarse = (spread > 0) & (step > _OFFSET_STEP * spread)
    if coarse.any():
        j = int(np.argmax(np.where(coarse, step / np.where(spread > 0, spread, 1), 0)))
        _warn(
            f"Feature {j} of X spans {spread[j]:.4g} around {high[j]:.4g}: float32, in "
            f"which the network computes, rounds it to steps of {step[j]:.3g}, "
            f"{step[j] / spread[j]:.2g} of its range. Subtract an offset first "
            "(StandardScaler, or X - X.mean(axis=0)).",
            UserWarning,
        )


def check_sample_random_state(estimator, random_state):
    """``sample``'s ``random_state`` as a RandomState, rejected as ``fit`` words it."""
    validate_parameter_constraints(
        {"random_state": ["random_state"]},
        {"random_state": random_state},
        caller_name=f"{type(estimator).__name__}.sample",
    )
    return check_random_state(random_state)


def _check_network_memory(description, hidden, n_components):
    """Refuse a network whose training state cannot fit in memory (a MemoryError).

    Its parameters are counted on a shell built on the meta device (which
    allocates nothing); each takes 16 bytes in training: the float32 weight,
    its gradient and the optimizer's two moments. Without this, a typo such as
    ``hidden_layer_sizes=(10**6, 10**6)`` failed in torch's allocator.
    """
    n_parameters = sum(p.numel() for p in shell(description).parameters())
    check_memory(
        16 * n_parameters,
        f"Training a network of {n_parameters:,} parameters ({description['n_features']}"
        f" input features, hidden_layer_sizes={hidden}, n_components={n_components})",
        "Use fewer or narrower hidden layers or fewer components, or reduce the "
        "features first (with a feature selector or TruncatedSVD, say).",
    )


def check_n_samples(estimator, n_samples, given=None):
    """Validate ``sample``'s ``n_samples`` for a fitted ``estimator``.

    A positive int (not a bool, not a float), of rows that fit in memory:
    ``sample`` holds them all at once, as codes, encoded rows and the result
    (a conditional draw also holds the conditions' encoding and masks), so
    more rows than the machine's memory can hold raise a MemoryError at once
    rather than fail inside torch or thrash the machine.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, Integral):
        raise TypeError(
            f"n_samples must be a positive int, got {n_samples!r} of type "
            f"{type(n_samples).__name__}."
        )
    check_scalar(n_samples, "n_samples", Integral, min_val=1)
    width = estimator.module_.description["n_features"]
    table = estimator._table
    columns = 0 if table is None else len(table.columns)
    per_row = estimator.n_components_ + width if given is None else 4 * width
    check_memory(
        8 * n_samples * (per_row + columns),  # float64 throughout
        f"{type(estimator).__name__}.sample(n_samples={n_samples})",
        "Draw the rows in parts: call sample several times with fewer rows "
        "(and a different random_state each time), and write each part out.",
    )


def fit_code_density(Z, n_components, seed, previous=None, weight=0.0):
    """A full-covariance GaussianMixture fitted on (at most 10,000 of) the codes ``Z``.

    With a ``previous`` mixture, the codes drawn from it make up the share
    ``weight`` of those fitted on (and ``Z`` the rest): ``partial_fit``'s
    density of all the rows seen, where ``Z`` codes only the last batch.
    """
    rng = np.random.RandomState(seed)
    if previous is not None and weight > 0:
        total = min(_DENSITY_MAX_ROWS, math.ceil(Z.shape[0] / (1 - weight)))
        n_new = min(Z.shape[0], max(1, round(total * (1 - weight))))
        Z = Z[rng.choice(Z.shape[0], n_new, replace=False)]
        Z = np.concatenate([Z, sample_code_density(previous, total - n_new, rng)])
    if Z.shape[0] > _DENSITY_MAX_ROWS:
        Z = Z[rng.choice(Z.shape[0], _DENSITY_MAX_ROWS, replace=False)]
    gmm = GaussianMixture(
        n_components=min(n_components, Z.shape[0]),
        covariance_type="full",
        random_state=seed,
    )
    # BLAS threads only slow EM on these small matrices, badly so on a busy machine.
    with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            return gmm.fit(Z)
        except ValueError:  # "ill-defined empirical covariance": codes of a large scale
            # the default reg_covar (1e-6) is absolute; scaled to the codes' own
            # variance, the regularization means as much as it does at unit scale
            scale = float(np.mean(np.var(Z, axis=0)))
            return gmm.set_params(reg_covar=1e-6 * max(scale, 1.0)).fit(Z)


def sample_code_density(gmm, n_samples, rng):
    """Draw ``n_samples`` codes from a fitted GaussianMixture with the RandomState ``rng``.

    ``GaussianMixture.sample`` always uses the mixture's own ``random_state``, so it
    would return the same rows at every call; this draws from ``rng`` instead.
    """
    component = rng.choice(len(gmm.weights_), size=n_samples, p=gmm.weights_)
    eps = rng.standard_normal((n_samples, gmm.means_.shape[1]))
    cholesky = np.linalg.cholesky(gmm.covariances_)
    return gmm.means_[component] + np.einsum("nij,nj->ni", cholesky[component], eps)


def _shown(value):
    """``value`` to 4 significant digits, or to all of them where those read as 0 or 1.

    A bound check on [0, 1] must not print 1.00001 as "1".
    """
    value = value + 0.0  # -0.0 reads as 0
    short = f"{value:.4g}"
    if float(short) in (0.0, 1.0) and float(short) != value:
        return str(value)  # a numpy scalar: its shortest exact digits
    return short


#: What to do when inference overflows, by the method that overflowed.
_OVERFLOW_HINTS = {
    "transform": "Scale X as the training data was scaled",
    "score_samples": "Scale X as the training data was scaled",
    "inverse_transform": "Pass codes in the range that transform returns",
    "sample": "Refit the model on scaled data",
}


def _overflow(method, X, network_dtype):
    """The message for inference results of ``method`` that overflowed to inf or NaN."""
    precision = str(network_dtype).removeprefix("torch.")
    hint = _OVERFLOW_HINTS[method]
    if precision != "float64" and method != "sample":
        hint += ", or pass X as float64"
    return (
        f"{method} overflowed to inf or NaN: X has values up to {_max_abs(X):.3g}, "
        f"too far from the training data for the {precision} network. {hint}."
    )


def _check_no_nan(estimator, X, missing):
    """Refuse missing values in X for a model fitted without them (they have no model)."""
    if missing:
        raise ValueError(
            f"Input X contains NaN, but {type(estimator).__name__} was fitted without "
            "missing values, so it has no model of them; refit on data with missing "
            "values (each column that may miss values needs some in fit), or impute X "
            "first, e.g. with SimpleImputer."
        )


def _check_option_nan(X, support, option):
    """Refuse NaN in a dense X for an option that does not model missing values.

    scikit-learn's own message advised estimators that accept NaN natively,
    which this one does with its default options.
    """
    if support is not None and not sp.issparse(X) and np.isnan(X).any():
        default = "loss='mse'" if option.startswith("loss") else "likelihood='gaussian'"
        raise ValueError(
            f"Input X contains NaN, and {option} has no model of missing values: "
            f"impute X first (e.g. with SimpleImputer), or use {default} (the "
            "default), which models them."
        )


def _summed(X):
    """X, or a copy of a scipy.sparse X with its duplicate entries summed.

    scipy reads an entry stored twice (one 1 per word of a bag of words) as
    their sum; the checks and statistics that read ``X.data`` need that too.
    """
    if sp.issparse(X) and not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    return X


def _check_sparse_nan(X):
    """Refuse NaN in a scipy.sparse X: missing values are modelled for dense X only."""
    if not sp.issparse(X) or X.dtype.kind not in "fc":
        return
    # dok and lil matrices keep their values elsewhere (lil: lists per row).
    values = X.data if X.format in ("csr", "csc", "coo", "bsr") else X.tocsr().data
    if np.isnan(values).any():
        raise ValueError(
            "Input X contains NaN in a sparse matrix. Missing values are modelled for "
            "dense arrays and DataFrames only: pass X.toarray(), or impute X first, "
            "e.g. with SimpleImputer."
        )


#: What input validation sets in ``fit``, restored when the fit fails.
#: ``_batch_warned`` too: what a partial_fit stream's batches have warned about
#: (Table.check_batch), so that a failed batch's warnings are given again.
_INPUT_ATTRIBUTES = ("n_features_in_", "feature_names_in_", "_batch_warned")


@contextmanager
def inputs_kept_on_failure(estimator):
    """Restore what input validation set on ``estimator`` if the block raises.

    ``validate_data(reset=True)`` records the new input's width and names
    before training starts; a fit that then fails (diverges, is refused)
    must leave a fitted estimator as it was, its model still matching them.
    """
    before = {k: vars(estimator)[k] for k in _INPUT_ATTRIBUTES if k in vars(estimator)}
    try:
        yield
    except BaseException:
        for key in _INPUT_ATTRIBUTES:
            vars(estimator).pop(key, None)
        vars(estimator).update(before)
        raise


def _is_dataframe(X):
    """Whether X is a pandas DataFrame (pandas is imported already where it is)."""
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(X, pd.DataFrame)


def check_frame_kind(X, name="X"):
    """Refuse a DataFrame of another library that has pandas' API (dask's, say).

    Also refuses a polars DataFrame with columns that are not numbers or booleans.

    Read as a pandas one, a dask DataFrame failed deep inside with dask's own
    errors (a lazy size converted to a boolean); read as an array it would be
    modelled as numbers where the pandas frame is a table.
    """
    if hasattr(X, "columns") and hasattr(X, "iloc") and not _is_dataframe(X):
        kind = f"{type(X).__module__.split('.')[0]}.{type(X).__name__}"
        raise TypeError(
            f"{name} is a {kind}, which skvae does not read: pass a pandas DataFrame "
            "(a dask DataFrame's .compute()) or an array. For data larger than "
            "memory, see the scaling guide's dask-ml wrappers, which pass pandas "
            "partitions."
        )
    if type(X).__module__.split(".")[0] == "polars" and hasattr(X, "dtypes"):
        # scikit-learn reads a polars frame as an array of numbers, as skvae does;
        # one with text, categories or dates failed converting a string to float.
        columns = [
            c
            for c, dtype in zip(X.columns, X.dtypes)
            if not (dtype.is_numeric() or str(dtype) == "Boolean")
        ]
        if columns:
            raise TypeError(
                f"{name} is a polars DataFrame with non-numeric columns {columns[:5]}: "
                "skvae reads a polars frame as an array of numbers, and models mixed "
                f"types from pandas DataFrames. Pass {name}.to_pandas()."
            )


def validate_table(estimator, X, reset):
    """Check a DataFrame's shape and column names (set them when ``reset``)."""
    if not _is_dataframe(X):
        raise ValueError(
            f"{type(estimator).__name__} was fitted on a DataFrame; pass a "
            "DataFrame with the same columns."
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(
            f"Found array with {X.shape[0]} sample(s) and {X.shape[1]} feature(s) "
            f"(shape={X.shape}) while at least 1 of each is required."
        )
    validate_data(estimator, X, reset=reset, skip_check_array=True)
    return X


class _BaseAutoencoder(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator, metaclass=ABCMeta
):
    """Shared machinery of AutoencoderTransformer and VAETransformer."""

    _parameter_constraints = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "max_iter": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "optimizer": [StrOptions({"adam", "adamw", "sgd"})],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "device": [str, torch_device_type],
        "n_jobs": [
            Interval(Integral, None, -1, closed="right"),
            Interval(Integral, 1, None, closed="left"),
            None,
        ],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "categorical_features": [StrOptions({"from_dtype"}), "array-like", None],
        "numeric_transform": [StrOptions(set(_NUMERIC_TRANSFORMS)), _TransformDict()],
    }

    @abstractmethod
    def __init__(
        self,
        n_components=2,
        *,
        hidden_layer_sizes=(128, 64),
        activation="relu",
        dropout=0.0,
        batch_size="auto",
        max_iter="auto",
        learning_rate="auto",
        optimizer="adam",
        weight_decay=0.0,
        early_stopping="auto",
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-3,
        device="auto",
        n_jobs=None,
        random_state=None,
        verbose=0,
        warm_start=False,
        categorical_features="from_dtype",
        numeric_transform="auto",
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.categorical_features = categorical_features
        self.numeric_transform = numeric_transform

    #: Whether ``score_samples`` is a density of the rows (log p(x)), which for a
    #: table includes the log-Jacobian of its numeric columns' maps.
    _density_scores = False
    #: The fewest optimizer steps of ``max_iter="auto"`` on a table with
    #: validation rows (``_training.budget``).
    _table_min_steps = 0
    #: Whether ``learning_rate="auto"`` chooses among multiples of the rate by
    #: trials (:meth:`_start`).
    _rate_trials = False
    #: Whether a linear start is used beyond ``_START_TRIAL_ROWS`` training
    #: rows, where no trials choose it (up to there, it is used untried where
    #: no validation rows let trials choose).
    _linear_start_beyond_trial_rows = True
    #: Whether a linear start used untried may leave codes unused (the axes
    #: its rows do not support). A VAE's start there at the prior; an
    #: autoencoder's unused codes sit at a saddle (their encoder rows and
    #: decoder columns zero) that no later batch leaves, so it starts from
    #: scratch instead: a partial_fit stream of load_digits whose first batch
    #: held 3 rows kept 6 of 8 codes at exactly 0 for good.
    _untried_start_may_leave_codes_unused = True
    #: By how much of the other trial's loss the linear start's trial must end
    #: lower to be chosen (0: on ties; a VAE's loss in nats can be near 0).
    _start_margin = 0.0

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _describe(self, n_features, hidden, table):
        """The plain description of the network (see ``_networks.build``)."""

    def _network(self, kind, n_features, hidden, likelihood):
        """The description entries every network shares (see ``_networks.build``)."""
        return {
            "kind": kind,
            "n_features": n_features,
            "n_components": self.n_components,
            "hidden": list(hidden),
            "activation": self.activation,
            "dropout": self.dropout,
            "likelihood": likelihood,
        }

    def _linear_start(self, X, table, seed, like=None):
        """The linear solution the network starts at (see ``Model.initialize``), or None.

        ``like`` is a solution of the same kind, fitted on other rows, whose
        choices (such as its number of factors) are kept.
        """
        return None

    def _min_steps(self, n_rows, table, X_val):
        """The fewest optimizer steps "auto" epochs make (see :func:`budget`)."""
        return 0 if table is None or X_val is None else self._table_min_steps

    def _refit_start(self, start, X_all, X_train, X_val, table, seed):
        """``start`` fitted again on every row, where trials chose it on X_train.

        A linear start that :meth:`_start`'s trials chose, fitted on the
        training rows ``X_train``, is fitted again on ``X_all``, as a search
        refits its choice on all the data, keeping what the trials judged (the
        number of factors, see ``_linear_start``); not where a start reads no
        more of ``X_all``'s rows than of ``X_train``'s (:func:`_start_rows`:
        ``_DENSITY_MAX_ROWS``, fewer of wide sparse rows). Otherwise
        ``start`` itself.
        """
        if start is None or not _start_trials_run(X_train.shape[0], X_val):
            return start
        cap = _DENSITY_MAX_ROWS
        if dense_row_count(X_all, cap) <= dense_row_count(X_train, cap):
            return start
        return self._linear_start(X_all, table, seed, like=start) or start

    def _start(
        self,
        description,
        X_all,
        X,
        X_val,
        table,
        seed,
        device,
        plan,
        dequantize=None,
        X_train=None,
    ):
        """The start of a fresh fit and its learning rate, chosen on X_val.

        A linear solution (or None) explains the data with as many factors as
        a linear model supports, and a network started there may keep them
        all where fewer curved dimensions explain the data better (a
        nonlinear manifold). With validation rows, a network from each start
        trains for ``_START_TRIAL`` of the fit's epochs (at least one;
        ``plan`` is the fit's batch size, learning rate and epochs) and the
        start whose network reaches the better validation score is chosen
        (the linear one on ties, or by ``_start_margin``, or when the other's
        trial fails); without, the linear solution, as for more than
        ``_START_TRIAL_ROWS`` training rows (there none where
        ``_linear_start_beyond_trial_rows`` is False: the linear solution is
        then not even computed). A linear solution that trials judge is fitted on the
        training rows ``X_train`` alone (and returned as the trials saw it:
        see :meth:`_refit_start`), an untried one on ``X_all``. Beyond
        ``_RATE_TRIAL_ROWS`` training rows, where
        ``_rate_trials`` and ``learning_rate="auto"`` (and, up to
        ``_START_TRIAL_ROWS``, where the start trials ran), a network from
        the chosen start trains for ``_RATE_TRIAL`` of the epochs
        (``_START_TRIAL`` up to ``_START_TRIAL_ROWS`` rows) at
        ``_RATE_MULTIPLE`` times the rate and, where it beats the better
        start trial (the rate held constant), one at the rate, on the
        schedule the fit would have at each (the rate annealed too); the
        multiple is taken where its trial's best validation score beats the
        rate's by more than ``SETTLED_TOL`` of the progress that trial made;
        not where a trial would end within
        ``kl_warmup`` (its score would be of a model the fit does not end
        at). All trials are seeded by
        ``seed``, so the choice is too; a Ctrl-C during a trial stops the
        fit, which has learned nothing yet. The trials train on
        the batches the fit would: ``X`` and ``X_val`` are the fit's own
        training and validation tensors (:func:`~._torch.training_tensor`'s,
        not a second copy of them), and ``dequantize`` (the fit's
        ``TrainConfig.dequantize``) spreads their heavy atoms too.

        Returns
        -------
        start : tuple or None
            The linear solution, or None (see ``Model.initialize``).
        factor : float
            The multiple of ``plan``'s learning rate the fit trains at: above
            1, the rate rises to its value over ``_RATE_WARMUP`` of the steps
            and the cosine ends where it would have for the factor 1.
        """
        small = X.shape[0] <= _START_TRIAL_ROWS
        tried = _start_trials_run(X.shape[0], X_val)
        # A start that trials judge is fitted on the training rows
        # (``X_train``): fitted on the validation rows too, it would be judged
        # on rows it has seen (PCA's error on 300 of load_digits' rows, 16
        # axes, reads 16% lower on rows it was fitted on). An untried one
        # takes every row.
        untried = not tried or X_train is None
        linear = (
            self._linear_start(X_all if untried else X_train, table, seed)
            if small or self._linear_start_beyond_trial_rows
            else None
        )
        if X_val is None:
            unused = linear is not None and not np.any(linear[0], axis=1).all()
            if unused and not self._untried_start_may_leave_codes_unused:
                return None, 1.0  # fewer axes than codes
            return linear, 1.0
        trial = functools.partial(
            self._trial,
            description,
            X_all,
            X,
            X_val,
            seed,
            device,
            plan,
            dequantize=dequantize,
        )
        start, held = linear, -np.inf
        if small:
            if linear is None:  # no start to choose, and the rate is kept
                return None, 1.0
            best = [
                -np.inf if h is None else h.best_validation_score
                for h in (trial(s) for s in (linear, None))
            ]
            margin = self._start_margin * abs(best[1]) if best[1] > -np.inf else 0.0
            start = linear if best[0] >= best[1] + margin else None
            held = max(best)  # the rate's, held constant, from that start
            if held == -np.inf:  # the rate diverged from both starts
                return start, 1.0
        # Trials of a tenth of a small fit's epochs (14 of 10,000 rows') chose
        # the multiple where the fit at it ended lower; a quarter's did not.
        share = _START_TRIAL if small else _RATE_TRIAL
        if not (
            X.shape[0] > _RATE_TRIAL_ROWS
            and self._rate_trials
            and self.learning_rate == "auto"
            and self._schedule().warmup < max(1, math.ceil(share * plan[2]))
        ):
            return start, 1.0
        multiple = _RATE_MULTIPLE
        history = trial(start, multiple, share)
        # A multiple that does not beat the rate held constant (the start's
        # trial) is not worth a trial of the rate on the fit's schedule.
        if history is None or history.best_validation_score <= held:
            return start, 1.0
        base = trial(start, 1, share)
        if base is None:  # the rate's trial diverged
            return start, 1.0
        best = base.best_validation_score
        bar = best + SETTLED_TOL * abs(best - base.validation_scores[0])
        if history.best_validation_score > max(bar, best):
            return start, multiple
        return start, 1.0

    def _trial(
        self,
        description,
        X_all,
        X,
        X_val,
        seed,
        device,
        plan,
        start,
        factor=None,
        share=_START_TRIAL,
        dequantize=None,
    ):
        """The History of a short fit from ``start`` (see :meth:`_start`).

        At ``plan``'s learning rate throughout (``factor=None``), or at
        ``factor`` times it (rising to it where above 1) on the schedule the
        fit would have at that factor, for ``share`` of the fit's epochs,
        on the fit's training and validation tensors ``X`` and ``X_val``.
        None where training diverges. ``dequantize`` spreads heavy atoms in
        the batches, as in the fit (see :func:`~._training.dequantizer`).
        """
        batch_size, rate, epochs = plan
        config = TrainConfig(
            batch_size=batch_size,
            max_epochs=max(1, math.ceil(share * epochs)),
            tol=self.tol,
            n_iter_no_change=epochs,  # the trial runs all its epochs
            stop_early=True,  # and keeps its best validation score
            anneal=factor is not None,
            **_rate_schedule(rate, factor or 1),
            seed=seed,
            dequantize=dequantize,
        )
        module = build(description, generator(seed))
        module.initialize(X_all, start, seed)
        module = module.to(device)
        optimizer = make_optimizer(
            module, self.optimizer, rate * (factor or 1), self.weight_decay
        )
        try:
            with warnings.catch_warnings():  # "interrupted": handled below
                warnings.simplefilter("ignore", UserWarning)
                history = train(
                    module,
                    X,
                    optimizer,
                    config,
                    self._schedule(),
                    X_val=X_val,
                    device=device,
                )
        except NonFiniteLossError:
            return None
        if history.interrupted:
            raise KeyboardInterrupt
        return history

    def _schedule(self):
        """The training objective over epochs (no KL term for an autoencoder)."""
        return Schedule()

    def _support(self, fitted=False):
        """What X must hold for the likelihood, and the parameter that asks for it.

        ``(None, None)`` for any real values, ``("unit_interval", "loss='bce'")``
        for values in [0, 1], ``("counts", "likelihood='poisson'")`` for
        non-negative integers. ``fitted``: the fitted network's, as PCA's
        transform follows the fitted model whatever ``set_params`` changed
        since (the parameters' otherwise).
        """
        return None, None

    def _score_draws(self):
        """The importance draws K per row of ``score_samples``, or None (no draws)."""
        return None

    def _score_prior(self, module):
        """The p(z) that ``score_samples`` scores ``module`` with; None: its own."""
        return None

    def _fitted_extras(self, module, X, device, seed, incremental):
        """Further fitted attributes computed from the trained module and X."""
        return {}

    def _changed_network(self, description):
        """The error message of a ``partial_fit`` whose parameters ask for a new network."""
        fitted = self._architecture[0]
        names = {"hidden": "hidden_layer_sizes", "likelihood": "likelihood or loss"}

        def own(value):  # a part's own settings, not the sizes it takes from others
            if not isinstance(value, dict):
                return value
            return {
                k: v for k, v in value.items() if k not in ("n_components", "n_features")
            }

        changed = [
            names.get(k, k)
            for k in description
            if own(description[k]) != own(fitted.get(k))
        ]
        return self._changed_parameters(changed or ["the table encoding"])

    def _changed_parameters(self, changed):
        """The error message of a ``partial_fit`` after the parameters ``changed``."""
        return (
            f"{type(self).__name__}.partial_fit continues training the fitted network, "
            f"but the parameters changed since it was fitted ({', '.join(changed)}) "
            "describe another one. Set them back to continue, or call fit to train a "
            "new network."
        )

    def _code_density_of(self, Z, n_rows, seed, incremental):
        """``code_density_`` and ``_density_rows`` from the codes Z of ``n_rows`` rows.

        A ``partial_fit`` batch updates the density of the rows seen before it
        (their number is ``_density_rows``; a file saved before it was kept
        counts as one batch), so that it stands for all of them, not the
        last batch alone.
        """
        previous = getattr(self, "code_density_", None) if incremental else None
        before, weight = self._earlier_share(n_rows, incremental)
        density = fit_code_density(Z, self.density_components, seed, previous, weight)
        return {"code_density_": density, "_density_rows": int(before + n_rows)}

    def _earlier_share(self, n_rows, incremental):
        """The rows a ``partial_fit`` stream saw before a batch, and their share.

        Their number is ``_density_rows`` (a file saved before it was kept
        counts as one batch); their share of the rows, at most
        ``_DENSITY_MEMORY``, is what the code density and a count model's
        totals give them. ``(0, 0.0)`` outside a stream.
        """
        if not (incremental and hasattr(self, "code_density_")):
            return 0, 0.0
        before = getattr(self, "_density_rows", n_rows)
        return before, min(before / (before + n_rows), _DENSITY_MEMORY)

    # --------------------------------------------------------------- fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the model to X.

        A fit that fails, or that is interrupted (Ctrl-C) before its first
        epoch ends, leaves the estimator as it was.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data. A scipy.sparse matrix is densified one minibatch
            of rows at a time, never whole.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted estimator.

        Raises
        ------
        NonFiniteLossError
            If training diverges (a subclass of ValueError); at a multiple of
            the rate that ``learning_rate="auto"`` chose, only where training
            again at the rate itself diverges too.
        MemoryError
            If the network's weights, gradients and optimizer state would not
            fit in this machine's memory.
        """
        with inputs_kept_on_failure(self):
            X, table = self._validate_training_data(X, reset=True)
            return self._fit(X, incremental=False, table=table)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Train for one epoch over X, keeping the weights and optimizer state.

        The first call initialises the model as ``fit`` does. Early stopping
        does not apply.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data. A scipy.sparse matrix is densified one minibatch
            of rows at a time, never whole.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The updated estimator.

        Raises
        ------
        ValueError
            If parameters that shape the network (such as ``n_components``,
            ``hidden_layer_sizes`` or ``dropout``, or for a table
            ``categorical_features`` and ``numeric_transform``) changed since
            the network was fitted: ``partial_fit`` continues that network,
            and ``fit`` trains a new one.
        """
        if hasattr(self, "module_"):
            # scikit-learn's _fit_context checks parameters only on the first
            # call; a set_params between calls would otherwise reach torch
            # (batch_size=0: a ZeroDivisionError) or train silently (beta=-1).
            self._validate_params()
        with inputs_kept_on_failure(self):
            X, table = self._validate_training_data(
                X, reset=not hasattr(self, "module_"), incremental=True
            )
            return self._fit(X, incremental=True, table=table)

    def _validate_training_data(self, X, reset, incremental=False):
        """X encoded as a float array, and its Table (None for an array without NaN).

        A DataFrame is a table (unless a likelihood with a support, such as
        ``loss="bce"``, asks for the numbers as they are); so is an array with
        missing values. The first batch of ``partial_fit`` keeps every level a
        category dtype declares; later batches warn about what it lacks, once
        per column and kind in a stream (``Table.check_batch``).
        """
        check_frame_kind(X)
        table = self._table if not reset else None
        # What earlier batches of this stream warned about (fit starts afresh).
        warned = () if reset else getattr(self, "_batch_warned", ())
        self._batch_warned = warned
        if reset and _is_dataframe(X):
            from ._tabular import Table, is_table  # pandas is there: X is a DataFrame

            if is_table(X, self.categorical_features) or self._support()[0] is None:
                table = Table(
                    validate_table(self, X, reset=True),
                    self.categorical_features,
                    self.numeric_transform,
                    declared=incremental,
                )
                table = self._warm_table(table, incremental)
        elif reset and not (
            self.categorical_features is None
            or (isinstance(self.categorical_features, str))  # "from_dtype"
        ):
            raise ValueError(
                "categorical_features can only name columns of a pandas DataFrame; X "
                "is not one. Pass a DataFrame, or leave categorical_features='from_dtype'."
            )
        frame_table = table is not None and not table.array
        if frame_table and table.numeric_only and not _is_dataframe(X):
            # A numeric table's rows as an array (by position), as transform
            # takes them: a later batch checked and encoded as the frame.
            import pandas as pd  # the table came from a DataFrame: pandas is there

            X = validate_data(
                self,
                X,
                reset=False,
                dtype=(np.float64, np.float32),
                ensure_all_finite="allow-nan",
            )
            X = pd.DataFrame(X, columns=[c.name for c in table.columns])
        if table is not None and not table.array:
            X = validate_table(self, X, reset=reset)
            if not reset:
                changed = table.changed_parameters(
                    X, self.categorical_features, self.numeric_transform
                )
                if changed:
                    raise ValueError(self._changed_parameters(changed))
                table, self._batch_warned = table.check_batch(X, warned)
            return table.encode(X), table
        _check_sparse_nan(X)
        support, option = self._support(fitted=not reset)
        nan = "allow-nan" if not sp.issparse(X) else True
        X = validate_data(
            self,
            X,
            reset=reset,
            accept_sparse="csr" if table is None else False,  # a table's rows are dense
            dtype=(np.float64, np.float32),
            force_writeable=True,
            ensure_all_finite=nan,
        )
        X = _summed(X)
        _check_option_nan(X, support, option)
        missing = not sp.issparse(X) and bool(np.isnan(X).any())
        if reset and missing:
            from ._tabular import Table  # an array with missing values: a table

            table = Table.from_array(X, self.numeric_transform)
            table = self._warm_table(table, incremental)
        if table is not None:
            if not reset:
                table, self._batch_warned = table.check_batch(X, warned)
            return table.encode(X), table
        _check_no_nan(self, X, missing)
        return X, None

    def _warm_table(self, table, incremental):
        """The previous fit's encoding, where ``warm_start`` continues on data it fits.

        The encoding is part of the model that a warm start continues: the new
        data keep it (its maps and statistics, fitted to the first data) where
        they encode alike: the same columns, kinds, levels, missing values,
        dtypes, kinds of map, missing-value rules and columns that another
        decides (:func:`~._tabular.find_functions`), numbers within the fitted
        range by ``BATCH_RANGE_MARGIN`` of its width. Otherwise ``table``,
        fitted to the new data: :meth:`_fit` continues the network on it where
        the architecture (the network's description, with a VAE's interval
        cells, which come from data, and the table's ``signature``) is the
        same, and trains a new one otherwise (as a changed parameter does).
        """
        from ._tabular import BATCH_RANGE_MARGIN

        previous = getattr(self, "_table", None)
        if incremental or not self.warm_start or previous is None or table is None:
            return table
        if not hasattr(self, "module_") or previous.array != table.array:
            return table
        if previous.signature != table.signature:
            return table
        flags = ("censored", "likelihood_gates")  # a model from before them: anew
        if any(getattr(previous, f) != getattr(table, f) for f in flags):
            return table
        if previous.gates != table.gates:  # rules the new data break, or new ones
            return table
        if list(previous.functions) != list(table.functions):
            return table
        for old, new in zip(previous.columns, table.columns):
            if (old.transform, str(old.dtype)) != (new.transform, str(new.dtype)):
                return table
            if old.kind == "numeric" and new.low <= new.high:
                margin = BATCH_RANGE_MARGIN * (old.high - old.low)
                if new.low < old.low - margin or new.high > old.high + margin:
                    return table
        return previous

    def _hidden(self):
        hidden = self.hidden_layer_sizes
        hidden = [hidden] if isinstance(hidden, Integral) else list(hidden)
        if any(not isinstance(h, Integral) or isinstance(h, bool) or h < 1 for h in hidden):
            raise ValueError(
                "hidden_layer_sizes must contain only positive integers, got "
                f"{self.hidden_layer_sizes!r}."
            )
        return tuple(int(h) for h in hidden)

    def _check_values(self, X, training, first=False):
        """Reject X values the model cannot represent (outside the support, overflow).

        ``first``: training data that set the model's input (a fit, a first
        ``partial_fit`` batch), where a feature far from zero for its spread
        warns (:func:`_warn_offset`), and so do features all too narrow for a
        VAE's float32 variances (``_min_spread``).
        """
        support, param = self._support(fitted=not training)
        low, high = _value_range(X)
        outside = low < -_UNIT_TOLERANCE or high > 1 + _UNIT_TOLERANCE
        # scikit-learn's words for negative values, which its positive_only
        # tag's check looks for
        negative = f"Negative values in data passed to {type(self).__name__}: "
        if support == "unit_interval" and outside:
            raise ValueError(
                (negative if low < 0 else "")
                + f"{param} requires X in [0, 1], but X has values in "
                f"[{_shown(low)}, {_shown(high)}]. Scale X with MinMaxScaler, "
                "or use the Gaussian/MSE option."
            )
        if support == "counts" and (low < 0 or not _all_integers(X)):
            raise ValueError(
                (negative if low < 0 else "")
                + f"{param} models counts and requires X to hold non-negative integers, "
                f"but X has values in [{low + 0.0:.4g}, {high + 0.0:.4g}]"  # no -0
                + ("" if low < 0 else " that are not all integers")
                + ". Use likelihood='gaussian' for real-valued data."
            )
        if training:
            low, high = _column_bounds(X)
            largest = max(np.abs(low).max(), np.abs(high).max())
            _check_magnitude(X, largest)
            # all rounded to 0 by float32 (its subnormal numbers are kept: any
            # finite float32 table fits)
            if 0 < largest < np.finfo(np.float32).smallest_subnormal:
                raise ValueError(
                    "X has values too small for the float32 network (all below "
                    "1.4e-45 in absolute value, which float32 rounds to 0); scale X "
                    "first, e.g. with StandardScaler."
                )
            spread = high - low
            if first:
                _warn_offset(low, high)
                narrowest = self._min_spread()
                varying = _varying_spread(low, high).max()
                if 0 < varying < narrowest:  # a warning: the fit is finite, if poor
                    _warn(
                        "X has values spread too narrow for the float32 network's "
                        f"variances: no feature spans more than {varying:.3g} (a "
                        f"spread of {narrowest:.3g}, whose square float32 holds with "
                        "room, fits as at unit scale), so the model's scores and "
                        "samples are poor. Scale X first, e.g. with StandardScaler.",
                        UserWarning,
                    )
            if spread.max() > _MAX_SPREAD:
                j = int(np.argmax(spread))
                raise ValueError(
                    f"X has values spread too wide for the float32 network: feature {j} "
                    f"spans {spread[j]:.3g} (at most {_MAX_SPREAD:.3g}, whose square "
                    "float32 can hold). Scale X first, e.g. with StandardScaler or "
                    "RobustScaler."
                )

    def _min_spread(self):
        """The narrowest spread of X's widest feature a fit accepts (``_MIN_SPREAD``)."""
        return 0.0

    def _budget_is_the_rule(self, X_val):
        """Whether the fit's step budget, not its loss, decides when it ends.

        With ``max_iter`` and ``early_stopping`` left at "auto" on data too
        small to hold out validation rows, the budget of :func:`budget` is the
        stopping rule: the training loss keeps falling as the network learns
        the few rows by heart, and training longer lowers held-out scores.
        Measured on eight tables of 16-44 rows (4-fold splits, the
        autoencoder on six, the VAE on five): 400 epochs scored worse held
        out than the default budget in 8 of 11 fits and 1,600 epochs in 10
        of 11, by up to 7.5 nats/row. Such a fit does not warn that its
        training loss was still falling.
        """
        return X_val is None and self.max_iter == "auto" and self.early_stopping == "auto"

    def _split(self, X, rng, early_stopping, min_rows=_MIN_ROWS):
        """Training and validation rows (None without early stopping).

        A sparse X's are :class:`~._torch.SparseRows` over X itself, not copies.
        """
        n = X.shape[0]
        if not early_stopping:
            if n < min_rows:
                raise ValueError(
                    f"Found {n} sample(s), but {type(self).__name__} needs at least "
                    f"{_MIN_ROWS} to fit."
                )
            return (SparseRows(X) if sp.issparse(X) else X), None
        n_val = int(np.ceil(self.validation_fraction * n))
        if n - n_val < _MIN_ROWS:
            raise ValueError(
                f"early_stopping=True with validation_fraction={self.validation_fraction} "
                f"leaves {n - n_val} training row(s) out of {n} samples; "
                f"{type(self).__name__} needs at least {_MIN_ROWS}. Provide more "
                "samples or set early_stopping=False."
            )
        order = rng.permutation(n)
        if sp.issparse(X):  # row subsets of the one CSR: the matrix is not copied
            rows = SparseRows(X)
            return rows.subset(order[n_val:]), rows.subset(order[:n_val])
        return X[order[n_val:]], X[order[:n_val]]

    def _n_threads(self):
        """The torch thread count for this estimator's work (``n_jobs``).

        At most the number of CPUs: more threads only compete for them, and
        torch crashes when it cannot start as many as it was asked for.
        """
        self._check_params("n_jobs")  # read at every call, so set_params can change it
        if self.n_jobs is None:  # not the n_jobs of an enclosing joblib context
            return 1
        return min(max(1, effective_n_jobs(self.n_jobs)), cpu_count())

    def _check_params(self, *names):
        """Validate parameters read after fit (``set_params`` may have changed them)."""
        validate_parameter_constraints(
            {name: self._parameter_constraints[name] for name in names},
            {name: getattr(self, name) for name in names},
            caller_name=type(self).__name__,
        )

    def _fit(self, X, incremental, table):
        hidden = self._hidden()
        support, param = self._support()
        if table is not None and support is not None:
            raise ValueError(
                f"{param} applies to numeric arrays; the numeric columns of a "
                "table (a DataFrame, or an array with missing values) are mapped to "
                "normal scores and modelled with a Gaussian (squared error). Use the "
                "default option, or fill the missing values first."
            )
        first = table is None and not (incremental and hasattr(self, "module_"))
        self._check_values(X, training=True, first=first)
        device = resolve_device(self.device)
        description = self._describe(X.shape[1], hidden, table)
        signature = None if table is None else table.signature
        if hasattr(self, "module_") and (incremental or self.warm_start):
            # A model saved before input units goes on without them where it
            # goes on; a new network (warm_start after a change) has them.
            kept = as_fitted(description, self.module_.description)
            if self._architecture == (kept, signature):
                description = kept
        # warm_start refits from scratch when the network or the table changes;
        # partial_fit refuses to (as IncrementalPCA refuses a new n_components).
        architecture = (description, signature)
        if incremental and hasattr(self, "module_") and self._architecture != architecture:
            raise ValueError(self._changed_network(description))
        warm = hasattr(self, "module_") and (
            incremental or (self.warm_start and self._architecture == architecture)
        )
        if not warm:
            _check_network_memory(description, hidden, self.n_components)
        if warm:
            seed = int(
                np.random.SeedSequence([self._seed, self.n_iter_]).generate_state(1)[0]
            )
            seed %= _MAX_SEED
            start_epoch = self.n_iter_
        else:
            seed = check_random_state(self.random_state).randint(_MAX_SEED)
            start_epoch = 0
        rng = np.random.RandomState(seed)
        early_stopping = self.early_stopping
        if early_stopping == "auto":
            early_stopping = X.shape[0] >= AUTO_EARLY_STOPPING_ROWS
        X_all = X  # the start and the background density see every row of fit
        # A later partial_fit batch may hold one row (a stream's last, say).
        min_rows = 1 if warm and incremental else _MIN_ROWS
        X, X_val = self._split(X, rng, early_stopping and not incremental, min_rows)
        batch_size, max_epochs, learning_rate = budget(
            X.shape[0],
            self.batch_size,
            self.max_iter,
            self.learning_rate,
            min_steps=self._min_steps(X.shape[0], table, X_val),
            device=device,
        )
        patience = self.n_iter_no_change
        if self.early_stopping == "auto":
            patience = max(patience, math.ceil(AUTO_PATIENCE * max_epochs))

        with torch_threads(self._n_threads()):
            # Made once: the trials of _start train on the fit's tensors, so
            # that a second copy of the rows never sits beside the first.
            rows = training_tensor(X, device)
            val_rows = None if X_val is None else training_tensor(X_val, device)
            dequantize = (
                None
                if table is None
                or not self._density_scores
                or table.scores_cells(self.likelihood)
                else dequantizer(table.heavy_atoms(X), rows.device, device)
            )
            # A continued fit trains copies: whatever fails, the previous model,
            # its optimizer state and every fitted attribute stay as they were.
            if warm:
                module = copy.deepcopy(self.module_).to(device)
                state = copy.deepcopy(self._optimizer_state)
                factor = 1.0
                if hasattr(module.likelihood, "update_totals"):
                    # the rows' totals that sample draws: a stream's batches as
                    # its code density weighs them, a warm start's new rows alone
                    share = self._earlier_share(X_all.shape[0], incremental)[1]
                    rows_all = X_all if sp.issparse(X_all) else torch.as_tensor(X_all)
                    module.likelihood.update_totals(rows_all, share)
            else:
                module = build(description, generator(seed))
                plan = batch_size, learning_rate, max_epochs
                start, factor = self._start(
                    description,
                    X_all,
                    rows,
                    val_rows,
                    table,
                    seed,
                    device,
                    plan,
                    dequantize,
                    X_train=X,
                )
                start = self._refit_start(start, X_all, X, X_val, table, seed)
                if factor != 1 and self.verbose:
                    print(
                        f"learning_rate='auto': its trials chose {factor:.4g} times "
                        f"{learning_rate:.3g}, {factor * learning_rate:.3g}."
                    )
                module.initialize(X_all, start, seed)
                if incremental and table is not None:  # levels the batch lacks
                    module.start_outputs(*table.unseen_starts())
                module = module.to(device)
                state = None
            optimizer = make_optimizer(
                module, self.optimizer, learning_rate * factor, self.weight_decay, state
            )
            schedule = self._schedule()
            epochs = start_epoch + max_epochs
            if not incremental and epochs < schedule.warmup:
                _warn(
                    f"kl_warmup={schedule.warmup} is longer than the {epochs} epochs "
                    f"the model will have trained in all (max_iter={self.max_iter!r}):"
                    f" the KL weight ends at {epochs / schedule.warmup:.3f} times "
                    "beta, so the model is not the one beta asks for. Lower kl_warmup "
                    "or raise max_iter.",
                    UserWarning,
                )
            config = TrainConfig(
                batch_size=batch_size,
                max_epochs=1 if incremental else max_epochs,
                tol=self.tol,
                n_iter_no_change=patience,
                stop_early=not incremental,
                anneal=not incremental,
                **_rate_schedule(learning_rate, factor),
                # At a multiple of the rate the validation score can swing far
                # below its best until the cosine brings the rate down (100,000
                # blobs rows at 11.3 times: between 2.0 and -19 nats/row in
                # epochs 5-22 of 57), and a patience of a fifth of the epochs
                # stopped such fits on an early epoch's weights: 3.14 nats/row
                # held out against 5.02 for the fit that ran on (the best
                # weights are restored at the end either way).
                min_epochs=max(
                    schedule.warmup,
                    start_epoch + math.ceil(_rate_comes_down(factor) * max_epochs),
                ),
                start_epoch=start_epoch,
                seed=seed,
                verbose=self.verbose,
                dequantize=dequantize,
            )

            def run(module, optimizer, config):
                return train(
                    module,
                    rows,
                    optimizer,
                    config,
                    schedule,
                    X_val=val_rows,
                    device=device,
                )

            try:
                history = run(module, optimizer, config)
            except NonFiniteLossError:
                if factor == 1:
                    raise
                diverged = True
            else:
                diverged = False
            if diverged:
                # The trials' multiple is this fit's own choice: the fit trains
                # again from its start at the rate rather than fail where the
                # user asked for nothing unusual. Only a fresh fit trains at a
                # multiple (partial_fit has no validation rows, warm_start
                # trains at the rate), so no levels need starting here. The
                # diverged network and its optimizer go first: not beside the
                # new ones.
                _warn(
                    f"learning_rate='auto' trained at {factor:.4g} times its rate "
                    f"({factor * learning_rate:.3g}), which its trials chose, and "
                    "diverged; the model was trained again at the rate itself "
                    f"({learning_rate:.3g}). Set learning_rate to choose the rate "
                    "yourself.",
                    UserWarning,
                )
                del module, optimizer
                factor = 1.0
                module = build(description, generator(seed))
                module.initialize(X_all, start, seed)
                module = module.to(device)
                optimizer = make_optimizer(
                    module, self.optimizer, learning_rate, self.weight_decay
                )
                config = dataclasses.replace(
                    config,
                    **_rate_schedule(learning_rate, 1),
                    min_epochs=schedule.warmup,
                )
                history = run(module, optimizer, config)
            extras = self._fitted_extras(module, X, device, seed, incremental)

        if history.n_epochs < 5 and not (incremental or history.converged):
            if not history.interrupted:
                _warn(
                    f"{type(self).__name__} ran only {history.n_epochs} epoch(s) "
                    f"(max_iter={self.max_iter!r}): too few to tell whether the loss "
                    "had levelled off. Increase max_iter to train longer.",
                    ConvergenceWarning,
                )
        elif not (
            incremental
            or history.converged
            or history.interrupted
            or self._budget_is_the_rule(X_val)
        ):
            advice = "Increase max_iter to train longer."
            if X_val is None:  # more epochs lower a training loss by overfitting too
                why = (
                    f"early_stopping='auto' holds them out from "
                    f"{AUTO_EARLY_STOPPING_ROWS} rows, and there were {X_all.shape[0]}"
                    if self.early_stopping == "auto"
                    else "early_stopping=False"
                )
                advice = (
                    f"That is the training loss (no validation rows: {why}), which "
                    "more epochs also lower by overfitting: compare scores on "
                    "held-out rows before you increase max_iter."
                )
            _warn(
                f"{type(self).__name__} used all {history.n_epochs} epochs "
                f"(max_iter={self.max_iter!r}) and the loss was still improving: "
                "its last fifth of epochs gained more than 1% of the progress, beyond "
                f"the loss's noise. {advice}",
                ConvergenceWarning,
            )
        previous = self.loss_curve_ if warm else []
        # Fitted attributes are set last, together.
        self.module_ = module
        self.device_ = device
        self.n_components_ = self.n_components
        self.n_iter_ = start_epoch + history.n_epochs
        self.loss_curve_ = previous + history.losses
        self.best_loss_ = min(self.loss_curve_, default=np.inf)
        scores = history.validation_scores if X_val is not None else None
        before = getattr(self, "validation_scores_", None) if warm else None
        if scores is not None and before is not None:  # as loss_curve_ and n_iter_
            scores = before + scores
        self.validation_scores_ = scores
        self.best_validation_score_ = (
            history.best_validation_score if X_val is not None else None
        )
        for name, value in extras.items():
            setattr(self, name, value)
        self._table = table
        self._architecture = architecture
        self._optimizer_state = optimizer.state_dict()
        self._seed = seed
        return self

    # ------------------------------------------------------------- inference
    def _infer(self, function, arrays, dtype, method, chunk=INFERENCE_CHUNK):
        """Run ``function(module, *tensors)`` over chunks of rows at X's precision.

        Results that overflow (rows far from the training data) raise a
        ValueError that names ``method``, rather than come back as inf or NaN.
        """
        torch_dtype = inference_dtype(dtype, self.device_)
        module = inference_module(self.module_, torch_dtype)
        with torch_threads(self._n_threads()):
            out = batched(
                lambda *t: function(module, *t), arrays, self.device_, torch_dtype, chunk
            )
        out = out.astype(dtype, copy=False)
        if not np.isfinite(out).all():
            raise ValueError(_overflow(method, arrays[0], torch_dtype))
        return out

    def _validate_X(self, X):
        return self._validated(X)[1]

    def _validated(self, X):
        """X checked against fit, and its encoding (X itself for an array)."""
        check_is_fitted(self)
        check_frame_kind(X)
        table = self._table
        frame = table is not None and not table.array
        if frame and (not table.numeric_only or _is_dataframe(X)):
            X = validate_table(self, X, reset=False)
            # As check_array reads a DataFrame: float32 where every column is.
            float32 = len(X.dtypes) and all(dtype == np.float32 for dtype in X.dtypes)
            return X, table.encode(X).astype(np.float32 if float32 else np.float64)
        _check_sparse_nan(X)
        nan = table is not None or not sp.issparse(X)
        X = validate_data(
            self,
            X,
            reset=False,
            accept_sparse="csr" if table is None else False,  # a table's rows are dense
            dtype=(np.float64, np.float32),
            ensure_all_finite="allow-nan" if nan else True,
        )
        X = _summed(X)
        if table is None:
            _check_option_nan(X, *self._support(fitted=True))
        if table is not None:  # an array with missing values, or the table's columns
            return X, table.encode(X).astype(X.dtype, copy=False)
        _check_no_nan(self, X, not sp.issparse(X) and bool(np.isnan(X).any()))
        _check_magnitude(X)
        return X, X

    def _decode_means(self, Z, method="inverse_transform"):
        """Decoder means of codes Z: rows, or a table's encoded-space means."""
        return self._infer(lambda m, z: m.decode(z), [Z], Z.dtype, method)

    def _code_density(self, module):
        """The density p(z) that ``sample`` draws codes from, for ``module``'s copy."""
        gmm = self.code_density_
        density = GaussianMixtureDensity(gmm.weights_, gmm.means_, gmm.covariances_)
        parameter = next(module.parameters())
        return density.to(parameter.device, parameter.dtype)

    def _conditional(
        self,
        x,
        observed,
        fill,
        rng,
        mode,
        n_draws=CONDITIONAL_DRAWS,
        constraints=(),
        shared=False,
    ):
        """Encoded rows given some entries: see ``_conditional.conditional_rows``."""
        module = inference_module(self.module_, inference_dtype(np.float64, self.device_))
        density = self._code_density(module)
        g = generator(rng.randint(_MAX_SEED), self.device_)
        with torch_threads(self._n_threads()):
            result = conditional_rows(
                module, density, x, observed, fill, n_draws, g, mode, constraints, shared
            )
        if not all(np.isfinite(part).all() for part in result):
            raise ValueError(_overflow("sample", x, torch.float64))
        return result

    def _sample_given(self, given, n_samples, rng, mode, decode_rng=None):
        """``sample(n_samples, given=given)``: rows drawn given some of their entries.

        Returns the decoded rows (a table's with ``decode_rng``), the given
        entries set to the given values exactly.
        """
        check_frame_kind(given, "given")
        names = getattr(self, "feature_names_in_", None)
        x, observed, fill, chosen = conditions(
            given, n_samples, self._table, self.n_features_in_, names
        )
        support, _ = self._support(fitted=True)
        given_values = x[observed > 0]
        if self._table is None and support == "unit_interval":
            if given_values.min() < 0 or given_values.max() > 1:
                raise ValueError("given values must lie in [0, 1], as X did in fit.")
        if self._table is None and support == "counts":
            if given_values.min() < 0 or np.any(given_values != np.round(given_values)):
                raise ValueError("given values must be non-negative integers (counts).")
        if self._table is None:
            dtype = inference_dtype(np.float64, self.device_)
            module = inference_module(self.module_, dtype)
            density = self._code_density(module)
            g = generator(self._seed, self.device_)
            with torch_threads(self._n_threads()):
                check_range(x, chosen, model_moments(module, density, g))
        given = None
        constraints = ()
        if self._table is not None:
            given = np.array([c.name in chosen for c in self._table.columns])
            self._table.check_given_rules(x, given, chosen)
            self._table.check_given_functions(x, given, chosen)
            constraints = self._table.gate_constraints(x, given)
        out, _, *means = self._conditional(
            x, observed, fill, rng, mode, constraints=constraints
        )
        if self._table is None:
            return out
        # Drawn rows draw their pooled rare levels too.
        rare_rng = decode_rng if decode_rng is not None or mode != "draw" else rng
        out = np.where(observed > 0, x, out)  # the given entries, as encoded
        out = self._table.decode(out, decode_rng, rare_rng, given, *means)
        for j, c in enumerate(self._table.columns):  # exactly, past any rounding
            if c.name not in chosen:
                continue
            if self._table.array:
                out[:, j] = chosen[c.name]
            else:
                out[c.name] = as_column(chosen[c.name], out[c.name])
        return out

    def transform(self, X):
        """Encode X into the latent space.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
            The codes, with X's float dtype.

        Raises
        ------
        ValueError
            If X does not hold what the model does: values outside [0, 1]
            for a Bernoulli likelihood (``loss="bce"``), or, for a VAE,
            negative or non-integer counts for ``likelihood="poisson"`` or
            ``"negative_binomial"``.
        """
        X = self._validate_X(X)
        # counts, or values in [0, 1], as in fit
        if self._support(fitted=True)[0] is not None:
            self._check_values(X, training=False)
        return self._infer(lambda m, x: m.encode(x), [X], X.dtype, "transform")

    def inverse_transform(self, X):
        """Decode latent codes back to the input space (the decoder's mean).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Latent codes, as returned by ``transform``.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features) or DataFrame
            The reconstructions, with the codes' float dtype (a dense array,
            also for a model fitted on sparse data); a DataFrame with
            the fitted columns and dtypes for a model of a mixed-type table
            (each category its most likely level), with the index of ``X``
            when ``X`` is a DataFrame (``set_output(transform="pandas")``
            codes).
        """
        check_is_fitted(self)
        Z = check_array(X, dtype=(np.float64, np.float32), estimator=self, input_name="X")
        if Z.shape[1] != self.n_components_:
            raise ValueError(
                f"X has {Z.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_components_} latent components as input to inverse_transform."
            )
        _check_magnitude(Z)  # the decoder's input, as X is the encoder's
        means = self._decode_means(Z)
        decoded = means if self._table is None else self._table.decode(means)
        if _is_dataframe(decoded) and _is_dataframe(X):  # set_output's codes' labels
            decoded.index = X.index
        elif not _is_dataframe(decoded):  # an array's decoding is float64
            decoded = decoded.astype(Z.dtype, copy=False)
        return decoded

    def score_samples(self, X):
        """Per-sample score of X: higher means more typical of the training data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            See the estimator's documentation for what the score is.
        """
        X, encoded = self._validated(X)
        self._check_values(encoded, training=False)
        K = self._score_draws()

        def score(module, x, eps=None):
            if eps is not None:  # the rows' own draws, as (K, rows, n_components)
                eps = eps.reshape(x.shape[0], K, -1).transpose(0, 1)
            prior = self._score_prior(module)
            return module.score(x, eps) if prior is None else module.score(x, eps, prior)

        # A chunk's log-weights, K per row, and its draws, K * n_components per
        # row, stay about IMPORTANCE_ELEMENTS numbers.
        per_row = 1 if K is None else K * self.n_components_
        chunk = max(1, min(INFERENCE_CHUNK, IMPORTANCE_ELEMENTS // per_row))
        if K is None:
            scores = self._infer(score, [encoded], encoded.dtype, "score_samples", chunk)
        else:
            # Each row's draws come from its own values and the fit's seed: a
            # row scores the same whatever rows come with it, and a mean over
            # rows averages the draws' noise out. Draws shared by all rows
            # moved every row's bound together: one model's mean held-out
            # score spread by 0.12-0.65 nats/row over the draws' seeds.
            # An array's rows are keyed by their own values (rounded to float32,
            # missing ones included), not by their encoding: an array with
            # missing values is encoded in its dtype, and a row's float32 and
            # float64 encodings differ by more than float32's rounding. A
            # DataFrame's rows, which may come as an array, by their encoding.
            array = self._table is None or self._table.array
            keys = row_keys(X if array else encoded, self._seed)
            count = K * self.n_components_
            block = max(chunk, DENSE_ELEMENTS // count)  # rows whose draws are made at once
            scores = np.concatenate(
                [
                    self._infer(
                        score,
                        [
                            encoded[s : s + block],
                            row_normals(keys[s : s + block], count, self._seed),
                        ],
                        encoded.dtype,
                        "score_samples",
                        chunk,
                    )
                    for s in range(0, encoded.shape[0], block)
                ]
            )
        if self._table is None:
            return scores
        # The probability of a categorical level that fit did not see (whose
        # encoding, all zeros, leaves the column out of the model's terms), and
        # a rare level's share of its pool.
        extra = self._table.log_novel(X, encoded) + self._table.log_pooled(X)
        if self._density_scores:
            # The change of variables of each numeric column's map to normal
            # scores: log p(x) = log p(z) + sum_j log |dz_j / dx_j|.
            extra = extra + self._table.log_jacobian(X)
        return scores + extra.astype(scores.dtype)

    def score(self, X, y=None):
        """Mean of ``score_samples(X)``, so that model selection needs no scorer.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to score.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        score : float
        """
        return float(np.mean(self.score_samples(X)))

    def __sklearn_is_fitted__(self):
        return hasattr(self, "module_")

    @property
    def _n_features_out(self):
        return self.n_components_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.sparse = True
        # Missing values are modelled (a table of the array's columns), unless a
        # likelihood with a support asks for the numbers as they are.
        try:
            support = self._support()[0]
        except KeyError:  # an unknown likelihood: fit reports it
            support = "unknown"
        tags.input_tags.allow_nan = support is None
        # [0, 1] and counts refuse negative values (as scikit-learn's tag says)
        tags.input_tags.positive_only = support in ("unit_interval", "counts")
        return tags

    # ----------------------------------------------------------- persistence
    def save(self, path):
        """Save the fitted estimator to a file, without pickle.

        Parameters
        ----------
        path : str, path-like or binary file object
            The file to write (conventionally ``*.skvae``). An existing file is
            replaced only once the new one is completely written (through a
            temporary file in the same folder), so a save that fails half-way
            leaves the previous file intact.

        Returns
        -------
        path : str or path-like
            ``path``, unchanged.

        See Also
        --------
        load : Read an estimator written by ``save``.

        Notes
        -----
        The file is a zip archive holding ``skvae.json`` (format version, class
        name, versions, ``get_params()`` and the fitted attributes, in JSON)
        and ``weights.safetensors`` (the network's and the optimizer's tensors
        and the numeric fitted arrays). ``load`` reads only JSON and
        safetensors and rebuilds the network from the parameters, so loading
        an untrusted file cannot run code, unlike ``pickle``/``joblib``, which
        execute whatever the file asks for (use those only for files you
        trust). Before building anything, ``load`` checks the file against a
        schema: member sizes (no zip bombs), the network size its parameters
        imply against the stored tensors, the parameter constraints and every
        fitted attribute; any problem raises ``ValueError``. The loaded
        estimator transforms, scores and samples exactly like the saved one,
        and ``partial_fit`` continues from the saved optimizer state.

        Pickles (and ``skops.io``, whose ``load`` needs the skvae types passed
        as ``trusted``) hold plain Python and numpy values only: the network's
        description and weights as arrays, rebuilt on unpickling.

        Examples
        --------
        >>> import os, tempfile
        >>> from sklearn.datasets import load_digits
        >>> from skvae import VAETransformer
        >>> X, _ = load_digits(return_X_y=True)
        >>> X = X[:100] / 16
        >>> vae = VAETransformer(n_components=4, random_state=0).fit(X)
        >>> path = vae.save(os.path.join(tempfile.mkdtemp(), "vae.skvae"))
        >>> loaded = VAETransformer.load(path)
        >>> loaded.transform(X).shape
        (100, 4)
        """
        check_is_fitted(self)
        save_estimator(self, path)
        return path

    @classmethod
    def load(cls, path):
        """Load an estimator written by :meth:`save`, without unpickling anything.

        The network goes to the device it was fitted on when that is
        available here, and to the CPU with a warning otherwise.

        Parameters
        ----------
        path : str, path-like or binary file object
            A file written by ``save``.

        Returns
        -------
        estimator : object
            The fitted estimator, an instance of ``cls`` (or of a subclass).

        Raises
        ------
        ValueError
            If the file is not an skvae file, is corrupted, has an unknown
            format version, or holds an estimator of another class.
        TypeError
            If ``path`` is neither a file name nor a binary file object.
        """
        return load_estimator(cls, path)

    def export_onnx(self, path, *, part="encoder"):
        """Export the encoder or the decoder as an ONNX graph (float32).

        Needs the ``onnx`` and ``onnxscript`` packages.

        Parameters
        ----------
        path : str, path-like or binary file object
            The ``.onnx`` file to write (weights included). As with ``save``,
            an existing file is replaced only once the new one is completely
            written.
        part : {"encoder", "decoder"}, default="encoder"
            ``"encoder"`` maps an input ``"X"`` of shape (batch, n_features)
            to its codes ``"Z"``, as ``transform`` does (the posterior mean for
            the VAE). ``"decoder"`` maps ``"Z"`` of shape (batch, n_components)
            to ``"X"``, the decoder mean, as ``inverse_transform`` does.

        Returns
        -------
        path : str or path-like
            ``path``, unchanged.

        Raises
        ------
        ValueError
            If ``part`` is not "encoder" or "decoder", or the estimator was
            a model of a table (fitted on a DataFrame, or on an array with
            missing values): its network reads and writes an internal
            encoding of the table that no public method exposes.
            Encode the table yourself (e.g. with a ``ColumnTransformer``) and
            fit on the numeric result to export.
        TypeError
            If ``path`` is neither a file name nor a binary file object.

        Notes
        -----
        The batch dimension is dynamic; inputs must be float32. The graph
        matches ``transform`` / ``inverse_transform`` on float32 input to
        float32 rounding. Exporting prints nothing (torch's exporter logs are
        silenced).
        """
        check_is_fitted(self)
        if part not in PARTS:
            raise ValueError(f"part must be one of {sorted(PARTS)}, got {part!r}.")
        n_inputs = self.n_features_in_ if part == "encoder" else self.n_components_
        export_module(self.module_, path, part, n_inputs)
        return path

    # -------------------------------------------------------------- pickling
    def __getstate__(self):
        # Plain Python and numpy only (no torch or pandas objects), so a pickle
        # survives torch upgrades and skops.io can store the estimator.
        state = dict(super().__getstate__())  # object's is __dict__ itself: copy it
        if "module_" in state:
            state["module_"] = {
                "description": self.module_.description,
                "weights": _numpy(self.module_.state_dict()),
            }
            state["_optimizer_state"] = _numpy(self._optimizer_state)
            state["device_"] = str(self.device_)
            if self._table is not None:
                state["_table"] = {"table": self._table.to_state()}
            # The oldest version that holds the network: 2 without an input unit,
            # 3 with one and a Gaussian background.
            description = self.module_.description
            units = "input_unit" in description
            tails = description.get("background") == "ppca_t"
            strings = self._table is not None and self._table.names_string_storage()
            newer = tails or strings  # what readers of 3 cannot read
            state["_pickle_version"] = _PICKLE_VERSION if newer else 3 if units else 2
        return state

    def __setstate__(self, state):
        if "module_" in state:
            version = state.pop("_pickle_version", 1)
            if version not in _READABLE_PICKLES:
                readable = " and ".join(map(str, _READABLE_PICKLES))
                raise ValueError(
                    f"This {type(self).__name__} was pickled by an skvae of pickle format "
                    f"version {version} (skvae 0.1 is version 1); this skvae reads "
                    f"versions {readable} only. Unpickle it with the skvae that "
                    "wrote it, or refit."
                )
            stored = state["module_"]
            module = build(stored["description"])
            module.load_state_dict(_tensors(stored["weights"]))
            state["module_"] = module.eval()
            state["_optimizer_state"] = _tensors(state["_optimizer_state"])
            state["device_"] = torch.device(state["device_"])
            if isinstance(state.get("_table"), dict):
                from ._tabular import Table

                state["_table"] = Table.from_state(state["_table"]["table"])
        super().__setstate__(state)
        if "module_" in state:
            if not available(self.device_):
                warnings.warn(
                    f"{type(self).__name__} was fitted on {self.device_}, which is not "
                    "available here; it has been loaded on the CPU.",
                    UserWarning,
                    stacklevel=2,
                )
                self.device_ = resolve_device("cpu")
            self.module_.to(self.device_)
