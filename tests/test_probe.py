"""Hostile and edge-case input: each test is one finding of a probe of the public surface.

The contract: bad input raises scikit-learn's kind of exception with a message that names
the parameter or argument and says what to do; never a torch traceback, a crash, a hang,
or silent inf/NaN output.
"""

import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils._param_validation import InvalidParameterError

from skvae import AutoencoderTransformer, VAETransformer

ESTIMATORS = [AutoencoderTransformer, VAETransformer]
TINY = dict(hidden_layer_sizes=(8,), max_iter=2, batch_size=64, random_state=0)
UNIT = {
    AutoencoderTransformer: {"loss": "bce"},
    VAETransformer: {"likelihood": "bernoulli"},
}


def make(Estimator, **params):
    return Estimator(**{**TINY, **params})


@pytest.fixture(scope="module")
def X():
    return np.random.RandomState(0).normal(size=(200, 5))


@pytest.fixture(scope="module")
def fitted(X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return {Estimator: make(Estimator).fit(X) for Estimator in ESTIMATORS}


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("device", ["cpu:0", "cpu:1", torch.device("cpu", 0)])
def test_indexed_cpu_device(Estimator, device, X):
    # torch.Generator refused an indexed CPU device with a torch RuntimeError.
    est = make(Estimator, device=device).fit(X)
    assert est.device_ == torch.device("cpu")
    assert est.transform(X).shape == (X.shape[0], 2)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_n_jobs_beyond_the_cpu_count(Estimator, X, monkeypatch):
    # torch.set_num_threads(10**6) segfaults the interpreter on the first matmul.
    requested = []
    set_num_threads = torch.set_num_threads

    def spy(n):
        requested.append(n)
        set_num_threads(min(n, joblib.cpu_count()))

    monkeypatch.setattr(torch, "set_num_threads", spy)
    est = make(Estimator, n_jobs=10**6).fit(X)
    est.transform(X)
    assert all(n <= joblib.cpu_count() for n in requested)  # torch_threads' requests


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_n_jobs_checked_at_inference(Estimator, X):
    # n_jobs is read at every call; a bad value set after fit failed inside joblib.
    est = make(Estimator).fit(X).set_params(n_jobs="4")
    with pytest.raises(InvalidParameterError, match="'n_jobs' parameter of"):
        est.transform(X)


BOOLS = [
    ({"n_components": True}, "'n_components' parameter"),
    ({"hidden_layer_sizes": True}, "'hidden_layer_sizes' parameter"),
    ({"batch_size": True}, "'batch_size' parameter"),
    ({"max_iter": True}, "'max_iter' parameter"),
    ({"learning_rate": True}, "'learning_rate' parameter"),
    ({"density_components": True}, "'density_components' parameter"),
]


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("params, match", BOOLS)
def test_bool_for_a_number(Estimator, params, match, X):
    # bools are ints to Python: n_components=True crashed the VAE in numpy, and the
    # others silently meant 1 (a one-unit network, a one-row batch, one epoch).
    with pytest.raises(InvalidParameterError, match=f"{match}.*Got True instead"):
        make(Estimator, **params).fit(X)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_bool_in_hidden_layer_sizes(Estimator, X):
    with pytest.raises(ValueError, match="hidden_layer_sizes must contain only positive"):
        make(Estimator, hidden_layer_sizes=[8, True]).fit(X)


@pytest.mark.parametrize("params", [{"n_importance_samples": True}, {"kl_warmup": False}])
def test_bool_for_a_vae_count(params, X):
    # n_importance_samples=True reached torch.randn and raised its TypeError.
    with pytest.raises(InvalidParameterError, match=f"'{next(iter(params))}' parameter"):
        make(VAETransformer, **params).fit(X)


@pytest.mark.parametrize("value", [0, 1.5, True])
def test_n_importance_samples_checked_when_scoring(value, X, fitted):
    # score_samples reads n_importance_samples at call time: set_params(...=0) after
    # fit gave "math domain error", 1.5 a torch TypeError.
    est = fitted[VAETransformer]
    old = est.n_importance_samples
    est.set_params(n_importance_samples=value)
    try:
        with pytest.raises(InvalidParameterError, match="'n_importance_samples' param"):
            est.score_samples(X[:5])
    finally:
        est.set_params(n_importance_samples=old)


@pytest.mark.parametrize("value", ["bogus", None])
@pytest.mark.parametrize("method", ["sample", "score_samples"])
def test_sample_from_checked_when_sampling_or_scoring(value, method, X, fitted):
    # sample and score_samples read sample_from at call time; an unknown value
    # silently used the prior.
    est = fitted[VAETransformer]
    est.set_params(sample_from=value)
    try:
        with pytest.raises(InvalidParameterError, match="'sample_from' parameter"):
            est.sample(3) if method == "sample" else est.score_samples(X[:3])
    finally:
        est.set_params(sample_from="prior")


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize(
    "random_state",
    [-1, 2**32, 1.5, "0", np.random.default_rng(0)],
    ids=["-1", "2**32", "1.5", "'0'", "Generator"],
)
def test_sample_random_state_named(Estimator, random_state, fitted):
    # numpy's "Seed must be between 0 and 2**32 - 1" named no parameter; a Generator
    # got "cannot be used to seed a RandomState". Now worded as for random_state=.
    with pytest.raises(
        InvalidParameterError, match=rf"'random_state' parameter of {Estimator.__name__}"
    ):
        fitted[Estimator].sample(2, random_state=random_state)
    for valid in (None, 0, np.int64(3), 2**32 - 1, np.random.RandomState(0)):
        assert fitted[Estimator].sample(2, random_state=valid).shape == (2, 5)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("value", [1e20, 1e30])
def test_float32_scores_never_overflow_silently(Estimator, value, X):
    # Squared residuals of float32 rows far from the data overflowed to -inf scores.
    est = make(Estimator).fit(X.astype(np.float32))
    with pytest.raises(ValueError, match="score_samples overflowed.*float64"):
        est.score_samples(np.full((2, 5), value, dtype=np.float32))
    with pytest.raises(ValueError, match="score_samples overflowed"):
        est.score(np.full((2, 5), value, dtype=np.float32))
    assert np.isfinite(est.score_samples(np.full((2, 5), value))).all()  # float64


@pytest.mark.parametrize("likelihood", ["poisson", "negative_binomial"])
def test_inverse_transform_never_overflows_silently(likelihood):
    # Decoding huge codes through exp() returned inf rows. The count models'
    # means are now the mean training total times a softmax, which saturates
    # at one feature instead of overflowing.
    counts = np.random.RandomState(0).poisson(3, size=(200, 5)).astype(float)
    est = make(VAETransformer, likelihood=likelihood).fit(counts)
    means = est.inverse_transform(np.full((2, 2), 1e30))
    assert np.isfinite(means).all()
    np.testing.assert_allclose(means.sum(1), counts.sum(1).mean(), rtol=1e-5)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inverse_transform_rejects_codes_beyond_float32(Estimator, dtype, fitted):
    # transform rejects X beyond the float32 network's range; codes are its input too.
    with pytest.raises(ValueError, match="X has values too large for the float32"):
        fitted[Estimator].inverse_transform(np.full((2, 2), 3e38, dtype=dtype))


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fit_with_a_huge_outlier(Estimator, dtype, X):
    # One 1e30 among normal rows: the VAE's variance overflowed float32 in torch
    # ("value cannot be converted to type float without overflow").
    X = X.astype(dtype)
    X[0, 0] = 1e30
    with pytest.raises(ValueError, match="X has values spread too wide.*StandardScaler"):
        make(Estimator).fit(X)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_unit_interval_allows_rounding(Estimator):
    # MinMaxScaler's output can exceed 1 by an ulp (X * scale_ + min_), which the
    # [0, 1] check rejected while telling the user to use MinMaxScaler.
    data = np.random.RandomState(1).normal(size=(100_000, 20)) * 3.7 + 1.3
    scaled = MinMaxScaler().fit_transform(data)
    assert scaled.max() > 1  # the premise: this data does round past 1
    rows = np.unique(np.nonzero(scaled > 1)[0])
    X = np.vstack([scaled[rows], scaled[:200]])
    X_copy = X.copy()
    est = make(Estimator, **UNIT[Estimator]).fit(X)
    assert np.isfinite(est.score_samples(X)).all()
    assert np.isfinite(est.score_samples(np.clip(X, 0, 1) - 1e-12)).all()
    np.testing.assert_array_equal(X, X_copy)  # accepted as is, not clipped in place


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("bad, shown", [(1 + 1e-5, "1.00001"), (1 + 3e-4, "1.0003")])
def test_unit_interval_message_shows_the_offending_value(Estimator, bad, shown):
    # The message printed "[0.09674, 1]" for a maximum of 1 + 1e-5.
    X = np.random.RandomState(0).uniform(0.1, 0.9, size=(50, 3))
    X[0, 0] = bad
    with pytest.raises(ValueError, match=rf"requires X in \[0, 1\].*{shown}"):
        make(Estimator, **UNIT[Estimator]).fit(X)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize(
    "Z, match",
    [
        (np.empty((0, 2)), "0 sample"),
        (np.empty((3, 0)), "0 feature"),
        (np.ones((2, 2, 2)), "dim 3"),
    ],
)
def test_inverse_transform_errors_name_the_estimator(Estimator, Z, match, fitted):
    # transform's messages end "required by VAETransformer"; inverse_transform's did not.
    with pytest.raises(ValueError, match=f"{match}.*by {Estimator.__name__}"):
        fitted[Estimator].inverse_transform(Z)
