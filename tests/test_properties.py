"""Property-based tests (hypothesis): shapes, dtypes, invariances, inputs left alone."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from skvae import AutoencoderTransformer, VAETransformer
from skvae.exceptions import PosteriorCollapseWarning

ESTIMATORS = [AutoencoderTransformer, VAETransformer]
FAST = dict(hidden_layer_sizes=(8,), max_iter=2, batch_size=16, random_state=0)
SETTINGS = settings(max_examples=8, deadline=None)

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False, width=32)
tables = st.tuples(st.integers(2, 30), st.integers(1, 5)).flatmap(
    lambda shape: arrays(np.float64, shape, elements=finite)
)


@pytest.fixture(scope="module", params=ESTIMATORS, ids=lambda E: E.__name__)
def fitted(request):
    X = np.random.RandomState(0).normal(size=(60, 4))
    return request.param(n_components=2, **FAST).fit(X)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@SETTINGS
@given(X=tables, dtype=st.sampled_from([np.float32, np.float64]))
def test_any_finite_table_fits_with_the_right_shapes(Estimator, X, dtype):
    X = X.astype(dtype)
    original = X.copy()
    est = Estimator(n_components=2, **FAST).fit(X)
    Z = est.transform(X)
    assert Z.shape == (X.shape[0], 2) and Z.dtype == dtype and np.isfinite(Z).all()
    X_back = est.inverse_transform(Z)
    assert X_back.shape == X.shape and X_back.dtype == dtype
    scores = est.score_samples(X)
    assert scores.shape == (X.shape[0],) and np.isfinite(scores).all()
    np.testing.assert_array_equal(X, original)  # never modified in place


@SETTINGS
@given(
    rows=arrays(np.float64, st.tuples(st.integers(1, 40), st.just(4)), elements=finite),
    seed=st.integers(0, 2**16),
)
def test_results_do_not_depend_on_row_order_or_batching(fitted, rows, seed):
    order = np.random.RandomState(seed).permutation(rows.shape[0])
    for method in ("transform", "score_samples"):
        full = getattr(fitted, method)(rows)
        # to rounding: a code of -5.45e-6 moved by 1.4e-17 with its batch
        close = dict(rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            getattr(fitted, method)(rows[order]), full[order], **close
        )
        n = min(3, rows.shape[0])
        single = [getattr(fitted, method)(rows[i : i + 1]) for i in range(n)]
        np.testing.assert_allclose(np.concatenate(single), full[:n], **close)


@SETTINGS
@given(
    Z=arrays(np.float64, st.tuples(st.integers(1, 20), st.just(2)), elements=finite),
)
def test_inverse_transform_leaves_codes_alone(fitted, Z):
    original = Z.copy()
    out = fitted.inverse_transform(Z)
    assert out.shape == (Z.shape[0], 4) and np.isfinite(out).all()
    np.testing.assert_array_equal(Z, original)


@SETTINGS
@given(n=st.integers(1, 50), seed=st.integers(0, 2**16))
def test_sample_shape_and_reproducibility(fitted, n, seed):
    a = fitted.sample(n, random_state=seed)
    assert a.shape == (n, 4) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, fitted.sample(n, random_state=seed))


@pytest.mark.parametrize(
    ("Estimator", "units"),
    [
        (AutoencoderTransformer, "small"),
        (AutoencoderTransformer, "large"),
        (VAETransformer, "small"),
        (VAETransformer, "large"),
        (VAETransformer, "mixed"),  # the squared error weighs features by their units
        (VAETransformer, "tiny"),  # absolute variance floors of 1e-30 held it
        (AutoencoderTransformer, "tiny"),
        # from scratch (no PCA start to stay at): Adam's float32 averages of
        # squared gradients underflowed (1e-11) or overflowed (1e12), and the
        # fit stayed at the mean
        (AutoencoderTransformer, "tiny from scratch"),
        (AutoencoderTransformer, "huge from scratch"),
    ],
)
def test_a_fit_does_not_depend_on_the_datas_units(Estimator, units, monkeypatch):
    # As PCA and factor analysis: the same rows in other units give the same
    # model, in those units. Before the networks read their inputs in each
    # feature's unit, rows times 1e3 scored 8 nats/row below factor analysis,
    # a column times 1e3 beside one times 1e-3 13 nats/row, and the
    # autoencoder's reconstructions of rows times 1e-6 were the column means.
    # With one unit for all, a constant column too (factor analysis' floor,
    # the units); a constant column has no unit of its own to change.
    rng = np.random.RandomState(0)
    X = np.tanh(rng.normal(size=(120, 2)) @ rng.normal(size=(2, 5)))
    X = np.column_stack([X + 0.1 * rng.normal(size=X.shape), np.full(120, 0.5)])
    scale = {
        "small": np.full(6, 1e-6),
        "large": np.full(6, 1e3),
        "mixed": np.array([1e3, 1e-3, 1.0, 50.0, 0.02]),
        "tiny": np.full(6, 1e-11),  # its constant feature: a floor of 1e-12 of 1e-23
        "tiny from scratch": np.full(6, 1e-11),
        "huge from scratch": np.full(6, 1e12),
    }[units]
    X = X[:, : scale.size]
    params = dict(n_components=2, hidden_layer_sizes=(16,), max_iter=30, random_state=0)
    if units.endswith("from scratch"):  # as beyond 20,000 rows, where no trial runs
        params["early_stopping"] = False
        monkeypatch.setattr(Estimator, "_linear_start", lambda *args, **kwargs: None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est, rescaled = Estimator(**params).fit(X), Estimator(**params).fit(X * scale)
    assert rescaled.n_iter_ == est.n_iter_
    if Estimator is VAETransformer:
        # the density of X * scale is in its units; the scores' importance
        # draws depend on the rows' values, so single rows differ by their noise
        jacobian = np.log(scale).sum()
        got = rescaled.score(X * scale) + jacobian
        assert got == pytest.approx(est.score(X), abs=0.02)
    else:  # sample(given=) weighs codes in the features' units too
        given = {0: X[0, 0]}
        drawn = est.sample(50, given=given, random_state=0)
        given = {0: X[0, 0] * scale[0]}
        again = rescaled.sample(50, given=given, random_state=0) / scale
        np.testing.assert_allclose(again, drawn, atol=1e-3)
    error = np.mean((est.inverse_transform(est.transform(X)) - X) ** 2)
    back = rescaled.inverse_transform(rescaled.transform(X * scale)) / scale
    assert np.mean((back - X) ** 2) == pytest.approx(error, rel=0.02)


def test_data_too_narrow_for_the_vaes_variances_warns_and_float32s_is_refused():
    # Data of standard deviation 1e-18 and less fitted a VAE whose samples were a
    # thousand times wider than the data, warning only of posterior collapse.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3)) * 1e-19
    with pytest.warns(UserWarning, match="spread too narrow.*StandardScaler"):
        VAETransformer(max_iter=2).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", PosteriorCollapseWarning)
        ae = AutoencoderTransformer(max_iter=2).fit(X)  # its error needs no variance
        assert np.isfinite(ae.transform(X * 1e-28)).all()  # rows of zeros, to float32
        # constant data, or constant to float64's rounding (0.1 + 0.2 beside
        # 0.3), also as StandardScaler leaves them (centred: 6e-17 wide), fit
        VAETransformer(max_iter=2).fit(np.zeros((60, 3)))
        rounded = np.where(np.arange(60)[:, None] % 2, 0.3, 0.1 + 0.2) * np.ones(3)
        VAETransformer(max_iter=2).fit(rounded)
        VAETransformer(max_iter=2).fit(StandardScaler().fit_transform(rounded))
        # the check is a stream's first batch's: a later one only continues it
        stream = VAETransformer(max_iter=2).partial_fit(rng.normal(size=(60, 3)))
        stream.partial_fit(np.ones((2, 3)) + [[2.2e-16], [0.0]])
    # values float32 rounds to 0: reconstructed as 8e-17 (1e-50) or 7e-3 (1e-300)
    with pytest.raises(ValueError, match="too small for the float32 network"):
        AutoencoderTransformer(max_iter=2).fit(X * 1e-31)


@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer])
def test_a_feature_far_from_zero_for_its_spread_warns(Estimator):
    # float32 rounded rows of spread 10 around 1e8 to steps of 8, silently: a VAE
    # scored -12.08 nats per row where factor analysis scored -5.16.
    X = np.random.RandomState(0).normal(size=(60, 3))
    params = dict(max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        Estimator(**params).fit(X + [2000.0, 0.0, 1e5])  # years, or 1e5 from zero
    with pytest.warns(UserWarning, match=r"Feature 1 .* around 1e\+08.*steps of 8"):
        est = Estimator(**params).fit(X + [0.0, 1e8, 0.0])
    with warnings.catch_warnings():  # a partial_fit stream warns at its first batch
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.partial_fit(X + [0.0, 1e8, 0.0])


def test_a_constant_features_variance_floor_is_relative_to_the_mean_variance():
    # Per-feature floors make a fit independent of each feature's unit; a
    # constant feature keeps the floor relative to the mean variance: one
    # relative to its floored unit added 7 nats per constant feature to every
    # row's score (load_digits' standardized halves scored -7.95 instead of -19.7).
    rng = np.random.RandomState(0)
    X = np.column_stack([rng.normal(size=(100, 3)) * [1.0, 10.0, 0.1], np.zeros(100)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = VAETransformer(n_components=2, **FAST).fit(X)
    floor = est.module_.likelihood.floor.numpy()
    variance = X.var(axis=0)
    np.testing.assert_allclose(floor[:3], 1e-12 * variance[:3], rtol=1e-5)
    assert floor[3] == pytest.approx(1e-12 * variance.mean(), rel=1e-5)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_a_value_of_a_feature_constant_in_fit_is_read_in_the_usual_unit(Estimator):
    # A feature constant in training has the median feature's unit: at the
    # unit floor (1e-3 of it) a new row's value there was read a thousand
    # times enlarged by weights no training row moved.
    rng = np.random.RandomState(0)
    X = np.column_stack([rng.normal(size=(100, 3)), np.zeros(100)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = Estimator(n_components=2, **FAST).fit(X)
    unit = est.module_.encoder.unit.numpy()
    assert unit[3] in unit[:3]  # the median feature's (torch's: the lower middle)
    odd = X[:5].copy()
    odd[:, 3] = 1.0
    shift = np.abs(est.transform(odd) - est.transform(X[:5])).max()
    assert shift < 0.5 * est.transform(X).std(axis=0).max()
