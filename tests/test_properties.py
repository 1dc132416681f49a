"""Property-based tests (hypothesis): shapes, dtypes, invariances, inputs left alone."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from skvae import AutoencoderTransformer, VAETransformer

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
        np.testing.assert_allclose(
            getattr(fitted, method)(rows[order]), full[order], rtol=1e-12
        )
        n = min(3, rows.shape[0])
        single = [getattr(fitted, method)(rows[i : i + 1]) for i in range(n)]
        np.testing.assert_allclose(np.concatenate(single), full[:n], rtol=1e-12)


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
