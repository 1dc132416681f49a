"""Behaviour shared by both estimators: the contract beyond scikit-learn's checks."""

import pickle
import re
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

import skvae
from skvae import AutoencoderTransformer, VAETransformer

ESTIMATORS = [AutoencoderTransformer, VAETransformer]
FAST = dict(hidden_layer_sizes=(16,), max_iter=5, batch_size=64, random_state=0)


def make(Estimator, **params):
    return Estimator(**{**FAST, **params})


def test_public_names():
    assert sorted(skvae.__all__) == [
        "AutoencoderTransformer",
        "VAEImputer",
        "VAETransformer",
        "__version__",
        "exceptions",
    ]
    assert re.fullmatch(r"\d+\.\d+\.\d+", skvae.__version__)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shapes_and_dtypes(Estimator, dtype, manifold):
    X = manifold.astype(dtype)
    est = make(Estimator, n_components=3).fit(X)
    Z = est.transform(X)
    assert Z.shape == (X.shape[0], 3) and Z.dtype == dtype
    X_back = est.inverse_transform(Z)
    assert X_back.shape == X.shape and X_back.dtype == dtype
    scores = est.score_samples(X)
    assert scores.shape == (X.shape[0],) and np.isfinite(scores).all()
    assert isinstance(est.score(X), float)
    assert est.sample(7, random_state=0).shape == (7, X.shape[1])
    np.testing.assert_allclose(est.fit_transform(X), Z, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_fitted_attributes(Estimator, manifold):
    est = make(Estimator, max_iter=4, early_stopping=False).fit(manifold)
    assert est.n_features_in_ == manifold.shape[1]
    assert est.n_iter_ == 4 and len(est.loss_curve_) == 4
    assert est.best_loss_ == min(est.loss_curve_)
    assert est.validation_scores_ is None and est.best_validation_score_ is None
    auto = make(Estimator, max_iter=4).fit(manifold)  # early_stopping="auto": 400 rows
    assert len(auto.validation_scores_) == auto.n_iter_
    assert isinstance(est.module_, torch.nn.Module)
    expected = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    assert est.device_ == expected  # "auto": indexed CUDA where there is one
    assert est.device == "auto"  # the parameter keeps the user's value


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_early_stopping_attributes(Estimator, manifold):
    est = make(Estimator, early_stopping=True, max_iter=50, n_iter_no_change=2, tol=10.0)
    est.fit(manifold)
    assert est.n_iter_ < 50  # tol=10 means no epoch counts as progress
    assert len(est.validation_scores_) == est.n_iter_
    # the best of the epochs' scores and the starting weights' score
    assert est.best_validation_score_ >= max(est.validation_scores_)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_polars_frames_read_as_scikit_learn_reads_them(Estimator, manifold):
    pl = pytest.importorskip("polars")
    columns = [f"col{i}" for i in range(manifold.shape[1])]
    df = pl.DataFrame(manifold, schema=columns)
    est = make(Estimator, n_components=3).set_output(transform="polars").fit(df)
    assert list(est.feature_names_in_) == columns
    out = est.transform(df)
    assert isinstance(out, pl.DataFrame) and out.columns == list(
        est.get_feature_names_out()
    )
    np.testing.assert_allclose(
        out.to_numpy(),
        make(Estimator, n_components=3).fit(manifold).transform(manifold),
        rtol=1e-5,
        atol=1e-6,
    )
    # text columns failed converting a string to float, with no word of pandas
    mixed = df.with_columns(pl.Series("g", ["a", "b"] * (len(df) // 2)))
    with pytest.raises(TypeError, match=r"non-numeric columns \['g'\].*X.to_pandas\(\)"):
        make(Estimator, n_components=3).fit(mixed)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_feature_names_out_and_pandas_output(Estimator, manifold):
    columns = [f"col{i}" for i in range(manifold.shape[1])]
    df = pd.DataFrame(manifold, columns=columns)
    est = make(Estimator, n_components=3).set_output(transform="pandas").fit(df)
    prefix = Estimator.__name__.lower()
    expected = [f"{prefix}{i}" for i in range(3)]
    assert list(est.get_feature_names_out()) == expected
    assert list(est.feature_names_in_) == columns
    out = est.transform(df)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == expected
    assert list(out.index) == list(df.index)
    with pytest.raises(ValueError, match="feature names"):
        est.transform(df.rename(columns={"col0": "other"}))


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_clone_and_params(Estimator, manifold):
    est = make(Estimator, n_components=3)
    params = est.get_params()
    cloned = clone(est)
    assert cloned.get_params() == params
    cloned.set_params(n_components=4, max_iter=2)
    assert cloned.fit(manifold).transform(manifold).shape[1] == 4
    assert est.get_params() == params  # the original is untouched
    assert not hasattr(est, "module_")


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_pickle_round_trip(Estimator, dump, manifold, tmp_path):
    est = make(Estimator).fit(manifold)
    if dump == "pickle":
        loaded = pickle.loads(pickle.dumps(est))
    else:
        joblib.dump(est, tmp_path / "est.joblib")
        loaded = joblib.load(tmp_path / "est.joblib")
    np.testing.assert_array_equal(loaded.transform(manifold), est.transform(manifold))
    np.testing.assert_array_equal(
        loaded.score_samples(manifold), est.score_samples(manifold)
    )
    np.testing.assert_array_equal(
        loaded.sample(5, random_state=1), est.sample(5, random_state=1)
    )
    loaded.partial_fit(manifold)  # the optimizer state survives too
    assert loaded.n_iter_ == est.n_iter_ + 1


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_unpickling_without_the_fitting_device_falls_back_to_cpu(
    Estimator, manifold, monkeypatch
):
    est = make(Estimator, device="cpu").fit(manifold)
    est.device_ = torch.device("cuda", 3)  # as if fitted on a GPU machine
    blob = pickle.dumps(est)
    monkeypatch.setattr("skvae._base.available", lambda device: device.type == "cpu")
    with pytest.warns(UserWarning, match="loaded on the CPU"):
        loaded = pickle.loads(blob)
    assert loaded.device_ == torch.device("cpu")
    assert est.module_.decoder.scale.device.type == "cpu"  # pickling left est alone
    est.device_ = torch.device("cpu")
    np.testing.assert_array_equal(loaded.transform(manifold), est.transform(manifold))


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_random_state_reproducible(Estimator, manifold):
    a = make(Estimator, random_state=3).fit(manifold)
    b = make(Estimator, random_state=3).fit(manifold)
    c = make(Estimator, random_state=4).fit(manifold)
    assert a.loss_curve_ == b.loss_curve_
    np.testing.assert_array_equal(a.transform(manifold), b.transform(manifold))
    np.testing.assert_array_equal(a.sample(5, random_state=0), b.sample(5, random_state=0))
    np.testing.assert_array_equal(a.score_samples(manifold), b.score_samples(manifold))
    assert a.loss_curve_ != c.loss_curve_
    assert not np.allclose(a.transform(manifold), c.transform(manifold))
    assert not np.allclose(a.sample(5, random_state=0), a.sample(5, random_state=1))


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_global_rngs_left_alone(Estimator, manifold):
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002 (the global RNG is the subject)
    expected_torch, expected_np = torch.rand(3), np.random.rand(3)  # noqa: NPY002
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002
    make(Estimator, dropout=0.1, random_state=0).fit(manifold).sample(3, random_state=0)
    torch.testing.assert_close(torch.rand(3), expected_torch)
    np.testing.assert_array_equal(np.random.rand(3), expected_np)  # noqa: NPY002


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_partial_fit_follows_mlp_conventions(Estimator, manifold):
    est = make(Estimator)
    for i in range(1, 4):
        est.partial_fit(manifold)
        assert est.n_iter_ == i and len(est.loss_curve_) == i
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(manifold[:, :3])


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_partial_fit_code_density_stands_for_the_rows_seen(Estimator):
    # partial_fit fitted the code density to the last batch alone: after a stream
    # sorted by a feature, 6% (autoencoder) and 1% (the VAE's posterior sampling)
    # of the samples had that feature below its median (48% and 23% now; the VAE's
    # decoder itself leans to the last batches).
    rng = np.random.RandomState(0)
    z = rng.standard_normal((4000, 2))
    X = np.c_[z, np.tanh(z) @ rng.standard_normal((2, 4))]
    X += 0.1 * rng.standard_normal(X.shape)
    X = X[np.argsort(X[:, 0])]
    est = Estimator(n_components=2, random_state=0)
    if Estimator is VAETransformer:
        est.set_params(sample_from="posterior")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # posterior collapse on one batch
        for _ in range(3):
            for batch in np.array_split(X, 8):
                est.partial_fit(batch)
    assert est._density_rows == 3 * len(X)
    below = est.sample(4000, random_state=0)[:, 0] < np.median(X[:, 0])
    assert below.mean() > 0.15


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_partial_fit_refuses_a_changed_network(Estimator, manifold):
    # partial_fit after set_params(n_components=3) kept training the 2-dimensional
    # network and set n_components_ to 3 (transform returned 2 columns).
    est = make(Estimator, n_components=2).fit(manifold)
    est.set_params(n_components=3, dropout=0.1)
    with pytest.raises(ValueError, match=r"since it was fitted \(n_components, dropout\)"):
        est.partial_fit(manifold)
    assert est.n_iter_ == FAST["max_iter"] and est.n_components_ == 2
    est.set_params(n_components=2, dropout=0.0).partial_fit(manifold)
    assert est.n_iter_ == FAST["max_iter"] + 1
    est.set_params(n_components=3).fit(manifold)  # fit trains a new network
    assert est.transform(manifold).shape[1] == est.n_components_ == 3


@pytest.mark.parametrize(
    "param, value", [("batch_size", 0), ("optimizer", "zz"), ("learning_rate", -1.0)]
)
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_partial_fit_checks_parameters_set_after_the_first_call(
    Estimator, manifold, param, value
):
    # scikit-learn's _fit_context checks them on the first call only: batch_size=0
    # reached a ZeroDivisionError, optimizer="zz" a KeyError, a negative rate
    # torch's own ValueError, and beta=-1 trained silently.
    est = make(Estimator).partial_fit(manifold)
    state = {k: v.clone() for k, v in est.module_.state_dict().items()}
    with pytest.raises(InvalidParameterError, match=f"'{param}' parameter"):
        est.set_params(**{param: value}).partial_fit(manifold)
    assert est.n_iter_ == 1  # the model is as it was
    for key, value in est.module_.state_dict().items():
        torch.testing.assert_close(value, state[key])
    if Estimator is VAETransformer:
        with pytest.raises(InvalidParameterError, match="'beta' parameter"):
            restored = {param: make(Estimator).get_params()[param]}
            est.set_params(**restored, beta=-1.0).partial_fit(manifold)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_warm_start(Estimator, manifold):
    cold = make(Estimator).fit(manifold)
    first = cold.loss_curve_[:]
    cold.fit(manifold)  # warm_start=False refits from scratch, reproducing the first fit
    assert cold.loss_curve_ == first
    warm = make(Estimator, warm_start=True).fit(manifold)
    warm.fit(manifold)
    assert warm.n_iter_ == 2 * FAST["max_iter"]
    assert warm.loss_curve_[: FAST["max_iter"]] == first
    # validation scores add up as the losses do (the second fit's replaced them)
    assert len(warm.validation_scores_) == warm.n_iter_
    assert warm.validation_scores_[: FAST["max_iter"]] == cold.validation_scores_
    # the second fit continues the first's optimizer (its learning-rate schedule
    # starts again, so its loss need not end lower)
    steps = cold._optimizer_state["state"][0]["step"]
    assert warm._optimizer_state["state"][0]["step"] == 2 * steps


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_warm_start_refits_when_the_network_changes(Estimator, manifold):
    est = make(Estimator, warm_start=True).fit(manifold)
    est.set_params(dropout=0.2).fit(manifold)
    assert est.n_iter_ == FAST["max_iter"]  # from scratch
    assert any(type(m).__name__ == "Dropout" for m in est.module_.modules())


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_batch_size_larger_than_data(Estimator, manifold):
    est = make(Estimator, batch_size=10_000).fit(manifold[:20])
    assert np.isfinite(est.transform(manifold[:20])).all()


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_inputs_not_modified_and_readonly_memmap(Estimator, manifold, tmp_path):
    X = manifold.copy()
    est = make(Estimator).fit(X)
    Z = est.transform(X)
    est.score_samples(X)
    Z_copy = Z.copy()
    est.inverse_transform(Z)
    np.testing.assert_array_equal(X, manifold)
    np.testing.assert_array_equal(Z, Z_copy)
    path = tmp_path / "X.npy"
    np.save(path, X.astype(np.float32))
    X_mm = np.load(path, mmap_mode="r")
    est = make(Estimator).fit(X_mm)
    assert est.transform(X_mm).dtype == np.float32


# ---------------------------------------------------------------- bad input
def _fitted(Estimator, manifold):
    return make(Estimator, n_components=2).fit(manifold)


BAD_FIT = [
    ({}, np.array([[1.0, np.inf], [2.0, 3.0]]), ValueError, "infinity"),
    ({}, np.array([["a", "b"], ["c", "d"]], dtype=object), ValueError, "could not convert"),
    ({}, np.array([[1 + 1j, 2.0], [3.0, 4.0]]), ValueError, "Complex data"),
    ({}, np.arange(5.0), ValueError, "Expected 2D array, got 1D array"),
    ({}, np.ones((2, 2, 2)), ValueError, "Found array with dim 3"),
    ({}, np.empty((0, 3)), ValueError, "0 sample"),
    ({}, sp.csr_matrix(np.full((4, 2), 1e38)), ValueError, "too large for the float32"),
    ({}, np.full((4, 2), 1e38), ValueError, "too large for the float32 network"),
    ({"n_components": 0}, np.ones((4, 2)), InvalidParameterError, "n_components"),
    ({"activation": "swish"}, np.ones((4, 2)), InvalidParameterError, "activation"),
    ({"hidden_layer_sizes": (8, 0)}, np.ones((4, 2)), ValueError, "positive integers"),
    ({"learning_rate": -1.0}, np.ones((4, 2)), InvalidParameterError, "learning_rate"),
    ({"device": 3}, np.ones((4, 2)), InvalidParameterError, "device"),
    # joblib's "n_jobs == 0 in Parallel has no meaning", from no Parallel
    ({"n_jobs": 0}, np.ones((4, 2)), InvalidParameterError, r"'n_jobs'.*Got 0"),
    ({"device": "tpu"}, np.ones((4, 2)), ValueError, "device='tpu'"),
    ({"early_stopping": True}, np.ones((1, 2)), ValueError, "leaves 0 training row"),
    ({}, np.ones((1, 2)), ValueError, "Found 1 sample.*at least 2"),
]


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("params, X, error, match", BAD_FIT)
def test_bad_fit_input(Estimator, params, X, error, match):
    with pytest.raises(error, match=match):
        make(Estimator, **params).fit(X)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda(Estimator):
    with pytest.raises(ValueError, match="CUDA is not available; use device='cpu'"):
        make(Estimator, device="cuda").fit(np.ones((4, 2)))


@pytest.mark.parametrize(
    "Estimator, params, positive",
    [
        (AutoencoderTransformer, {}, False),
        (AutoencoderTransformer, {"loss": "bce"}, True),
        (VAETransformer, {}, False),
        (VAETransformer, {"likelihood": "student_t"}, False),
        (VAETransformer, {"likelihood": "bernoulli"}, True),
        (VAETransformer, {"likelihood": "poisson"}, True),
        (VAETransformer, {"likelihood": "negative_binomial"}, True),
    ],
)
def test_the_positive_only_tag_says_what_fit_refuses(Estimator, params, positive):
    # scikit-learn's check_positive_only_tag_during_fit failed for [0, 1] and counts
    from sklearn.utils.estimator_checks import check_positive_only_tag_during_fit

    est = make(Estimator, **params)
    assert est.__sklearn_tags__().input_tags.positive_only is positive
    if positive:
        check_positive_only_tag_during_fit(Estimator.__name__, est)


@pytest.mark.parametrize(
    "Estimator, params",
    [
        (AutoencoderTransformer, {"loss": "bce"}),
        (VAETransformer, {"likelihood": "bernoulli"}),
    ],
)
def test_unit_interval_likelihoods_reject_other_data(Estimator, params, digits01):
    with pytest.raises(ValueError, match=r"requires X in \[0, 1\].*MinMaxScaler"):
        make(Estimator, **params).fit(digits01 * 2)
    est = make(Estimator, **params).fit(digits01)
    with pytest.raises(ValueError, match=r"requires X in \[0, 1\]"):
        est.score_samples(digits01 - 0.5)
    with pytest.raises(ValueError, match=r"requires X in \[0, 1\]"):
        est.transform(digits01 * 2)  # encoded as it came, where score_samples refused
    # the fitted model's support holds until the next fit, whatever set_params did
    est.set_params(**{k: "mse" if k == "loss" else "gaussian" for k in params})
    with pytest.raises(ValueError, match=r"requires X in \[0, 1\]"):
        est.transform(digits01 * 2)
    with pytest.raises(ValueError, match=r"requires X in \[0, 1\]"):
        est.score_samples(digits01 - 0.5)
    with pytest.raises(ValueError, match=r"values in \[-2, 0\]\."):  # not "-0"
        est.transform(np.c_[-2 * np.ones(5), -np.zeros((5, digits01.shape[1] - 1))])


@pytest.mark.parametrize(
    "Estimator, params",
    [
        (AutoencoderTransformer, {"loss": "bce"}),
        (VAETransformer, {"likelihood": "bernoulli"}),
        (VAETransformer, {"likelihood": "poisson"}),
    ],
)
def test_set_params_after_fit_does_not_change_what_transform_accepts(
    Estimator, params, manifold
):
    # transform, score_samples and sample(given=...) check X against the
    # fitted likelihood, not against one set_params asked for since
    est = make(Estimator).fit(manifold)
    est.set_params(**params)
    assert est.transform(manifold[:3]).shape == (3, 2)
    assert np.isfinite(est.score_samples(manifold[:3])).all()
    assert est.sample(2, given={0: -0.5}, random_state=0).shape == (2, manifold.shape[1])


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_bad_input_after_fit(Estimator, manifold):
    est = _fitted(Estimator, manifold)
    with pytest.raises(ValueError, match="X has 3 features, but .* is expecting 6"):
        est.transform(manifold[:, :3])
    with pytest.raises(ValueError, match="X has 3 features, but .* is expecting 6"):
        est.score_samples(manifold[:, :3])
    with pytest.raises(ValueError, match="expecting 2 latent components"):
        est.inverse_transform(np.ones((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        est.transform(np.full((2, 6), np.nan))
    with pytest.raises(ValueError, match="n_samples == 0, must be >= 1"):
        est.sample(0)
    for bad in (2.5, True, np.float64(3.0), "3"):
        with pytest.raises(TypeError, match="n_samples must be a positive int, got "):
            est.sample(bad)
    assert est.sample(np.int64(2)).shape[0] == 2
    with pytest.raises(ValueError, match="too large"):  # beyond float32: no inf output
        est.score_samples(manifold * 1e300)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_sample_refuses_more_rows_than_memory_holds(Estimator, manifold, monkeypatch):
    # It raised torch's "DefaultCPUAllocator: can't allocate memory" (a
    # RuntimeError), or allocated lazily and thrashed until the OS killed it.
    est = _fitted(Estimator, manifold)
    if skvae._torch.physical_memory() is not None:  # reported: not on Windows
        with pytest.raises(MemoryError, match=r"sample\(n_samples=10+\) needs"):
            est.sample(10**15)  # 8 PB of float64 at least: more than any machine
    monkeypatch.setattr(skvae._torch, "physical_memory", lambda: 10**6)
    msg = r"needs at least .* MB of memory, more than this machine's 1 MB\. Draw"
    with pytest.raises(MemoryError, match=msg):
        est.sample(20_000)  # (2 codes + 6 features) x 8 bytes a row: 1.3 MB
    with pytest.raises(MemoryError, match=msg):
        est.sample(8_000, given={0: 0.0})  # four encoded copies: 1.5 MB
    assert est.sample(1_000).shape == (1_000, 6)
    monkeypatch.setattr(skvae._torch, "physical_memory", lambda: None)  # not reported
    assert est.sample(20_000).shape == (20_000, 6)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_fit_refuses_a_network_larger_than_memory_and_keeps_the_model(
    Estimator, manifold, monkeypatch
):
    # torch's allocator raised its RuntimeError ("can't allocate memory")
    est = _fitted(Estimator, manifold)
    Z = est.transform(manifold)
    match = r"Training a network of 2,000,0\d\d,\d{3},\d{3} parameters .* needs at least"
    monkeypatch.setattr(skvae._torch, "physical_memory", lambda: 2**40)  # also on Windows
    with pytest.raises(MemoryError, match=match):
        est.set_params(hidden_layer_sizes=(10**6, 10**6)).fit(manifold)
    np.testing.assert_array_equal(est.transform(manifold), Z)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_a_later_partial_fit_batch_may_hold_one_row(Estimator, manifold):
    # a stream whose last batch held one row could not finish ("needs at least 2")
    est = make(Estimator, n_components=2).partial_fit(manifold[:50])
    est.partial_fit(manifold[50:51])
    assert est.n_iter_ == 2 and np.isfinite(est.score_samples(manifold)).all()
    with pytest.raises(ValueError, match="Found 1 sample.* needs at least 2 to fit"):
        make(Estimator, n_components=2).partial_fit(manifold[:1])  # the first batch


@pytest.mark.filterwarnings("ignore::skvae.exceptions.PosteriorCollapseWarning")
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_a_stream_may_begin_with_identical_rows(Estimator, manifold):
    # The VAE's start (factor analysis, and the background density) fitted the
    # decoder's noise to the first batch's spread of 0, 1e-6 in its unit: the
    # next batch, of varying rows, raised NonFiniteLossError.
    first = np.repeat(manifold[:1], 40, axis=0)
    est = make(Estimator, n_components=2)
    est.partial_fit(first)
    for start in range(0, 200, 50):
        est.partial_fit(manifold[start : start + 50])
    Z = est.transform(manifold)
    assert np.isfinite(Z).all() and np.isfinite(est.inverse_transform(Z)).all()
    if Estimator is VAETransformer:
        scores = est.score_samples(manifold[200:300])
        # near the bundled fit's -28 nats/row for independent unit Gaussians
        assert np.isfinite(scores).all() and scores.mean() > -40
        assert np.isfinite(est.sample(20, random_state=0)).all()


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("value", [1e-6, 1.0, 1e6])
def test_identical_rows_reconstruct_and_sample_as_themselves(Estimator, value):
    # the decoder's random start (2e-4 in a unit of 1.0, which identical rows
    # get) put rows of 1e-6 two hundred times off
    X = np.full((60, 3), value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = make(Estimator, n_components=2).fit(X)
        sparse = make(Estimator, n_components=2).fit(sp.csr_matrix(X))
    np.testing.assert_allclose(est.inverse_transform(est.transform(X)), X, rtol=1e-6)
    codes = sparse.transform(sp.csr_matrix(X))  # sparse rows alike
    np.testing.assert_allclose(sparse.inverse_transform(codes), X, rtol=1e-6)
    if Estimator is AutoencoderTransformer:  # a VAE's draws add its noise (floored)
        np.testing.assert_allclose(est.sample(5, random_state=0), X[:5], rtol=1e-6)


def test_score_samples_bounds_the_memory_of_many_importance_draws(manifold):
    est = _fitted(VAETransformer, manifold)
    if skvae._torch.physical_memory() is not None:  # reported: not on Windows
        with pytest.raises(MemoryError, match="n_importance_samples=10000000000000"):
            est.set_params(n_importance_samples=10**13).score_samples(manifold[:2])
    # 2**22 // 20_000 = 209 rows a chunk: the same scores as row by row.
    est.set_params(n_importance_samples=20_000)
    X = manifold[:300]
    np.testing.assert_allclose(
        est.score_samples(X)[[0, 250]],
        np.r_[est.score_samples(X[:1]), est.score_samples(X[250:251])],
        rtol=1e-6,
    )


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize(
    "method, args",
    [
        ("transform", (np.ones((2, 6)),)),
        ("inverse_transform", (np.ones((2, 2)),)),
        ("score_samples", (np.ones((2, 6)),)),
        ("score", (np.ones((2, 6)),)),
        ("sample", (2,)),
    ],
)
def test_use_before_fit(Estimator, method, args):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        getattr(make(Estimator), method)(*args)


# ---------------------------------------------------------------- pipelines
@pytest.fixture(scope="module")
def digits_small():
    X, y = load_digits(return_X_y=True)
    return X[:400], y[:400]


def test_pipeline_with_classifier(digits_small):
    X, y = digits_small
    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "vae",
                VAETransformer(n_components=8, max_iter=60, batch_size=64, random_state=0),
            ),
            ("clf", LogisticRegression(max_iter=1000)),
        ]
    ).fit(X, y)
    assert pipe.score(X, y) > 0.8  # chance is 0.1


def test_grid_search_default_scoring():
    rng = np.random.RandomState(0)  # five latent factors: the held-out score must see them
    X = rng.normal(size=(400, 5)) @ rng.normal(size=(5, 12)) + 0.1 * rng.normal(
        size=(400, 12)
    )
    search = GridSearchCV(
        VAETransformer(
            max_iter=100, hidden_layer_sizes=(32,), batch_size=32, random_state=0
        ),
        {"n_components": [1, 5], "beta": [0.5, 1.0]},
        cv=2,
    ).fit(X)
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all() and len(scores) == 4
    assert search.best_params_["n_components"] == 5


def test_grid_search_with_classifier(digits_small):
    X, y = digits_small
    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "ae",
                AutoencoderTransformer(
                    max_iter=10, hidden_layer_sizes=(32,), random_state=0
                ),
            ),
            ("clf", LogisticRegression(max_iter=500)),
        ]
    )
    search = GridSearchCV(pipe, {"ae__n_components": [1, 8]}, cv=2).fit(X, y)
    assert search.best_params_["ae__n_components"] == 8


def test_cross_val_score_in_parallel(digits_small):
    X, _ = digits_small
    X = StandardScaler().fit_transform(X)
    est = AutoencoderTransformer(n_components=4, max_iter=5, hidden_layer_sizes=(16,))
    scores = cross_val_score(est.set_params(random_state=0), X, cv=2, n_jobs=2)
    assert scores.shape == (2,) and np.isfinite(scores).all()


def test_feature_union_with_pca(digits_small):
    X, _ = digits_small
    union = FeatureUnion(
        [("pca", PCA(n_components=3)), ("vae", VAETransformer(n_components=2, **FAST))]
    ).set_output(transform="pandas")
    out = union.fit_transform(StandardScaler().fit_transform(X))
    assert out.shape == (400, 5)
    assert list(out.columns) == [
        "pca__pca0",
        "pca__pca1",
        "pca__pca2",
        "vae__vaetransformer0",
        "vae__vaetransformer1",
    ]


def test_codes_of_a_large_scale_get_a_code_density():
    # columns of scales 1e-8 to 1e8: the autoencoder's codes were too wide for the
    # code density's absolute regularization, and fit failed in GaussianMixture
    rng = np.random.RandomState(0)
    X = np.c_[
        rng.randn(200) * 1e-8, rng.randn(200) * 1e8, rng.randn(200), rng.randn(200) * 1e4
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = AutoencoderTransformer(hidden_layer_sizes=(16,), max_iter=20, random_state=0)
        est.fit(X)
    assert np.isfinite(est.sample(50, random_state=0)).all()
