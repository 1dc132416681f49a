"""scipy.sparse input, and the count likelihoods' library size (the row's total)."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy import stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

import skvae._likelihoods
import skvae._torch
from skvae import AutoencoderTransformer, VAETransformer
from skvae._likelihoods import NegativeBinomial, Poisson, _moments

ESTIMATORS = [AutoencoderTransformer, VAETransformer]
FAST = dict(hidden_layer_sizes=(16,), max_iter=5, batch_size=32, random_state=0)
COUNTS = ["poisson", "negative_binomial"]


def make(Estimator, **params):
    return Estimator(**{**FAST, **params})


def _counts(n=240, d=30, seed=0):
    """Overdispersed counts with two groups of rows, an empty row and an all-zero column."""
    rng = np.random.RandomState(seed)
    label = rng.randint(2, size=n)
    profile = rng.gamma(0.5, 1.0, size=(2, d))
    library = rng.lognormal(np.log(20), 0.5, size=(n, 1))
    X = rng.poisson(library * profile[label] / profile[label].sum(1, keepdims=True))
    X[:, 3] = 0  # a feature no row has
    X[5] = 0  # a row with no counts (total 0)
    return X.astype(float), label


@pytest.fixture(scope="module")
def counts():
    return _counts()


@pytest.fixture(scope="module")
def fitted_counts(counts):
    """Count models fitted on the CSR counts, by likelihood."""
    X = sp.csr_matrix(counts[0])
    with warnings.catch_warnings():  # few epochs: the ConvergenceWarning is noise
        warnings.simplefilter("ignore", ConvergenceWarning)
        return {name: make(VAETransformer, likelihood=name).fit(X) for name in COUNTS}


# ------------------------------------------------------------ formats and dtypes
FORMATS = [sp.csr_matrix, sp.csc_matrix, sp.coo_matrix, sp.csr_array, sp.coo_array]


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("early_stopping", [False, True])
def test_sparse_fit_equals_the_dense_fit(Estimator, early_stopping, counts):
    # Minibatches are densified exactly: a sparse fit is the dense fit. Bitwise
    # equality is a CPU property (CUDA kernels may sum in another order).
    X = counts[0] / 10
    params = {"early_stopping": early_stopping, "device": "cpu"}
    dense = make(Estimator, **params).fit(X)
    sparse = make(Estimator, **params).fit(sp.csr_matrix(X))
    np.testing.assert_array_equal(sparse.loss_curve_, dense.loss_curve_)
    np.testing.assert_allclose(sparse.transform(sp.csr_matrix(X)), dense.transform(X))
    np.testing.assert_allclose(
        sparse.score_samples(sp.csr_matrix(X)), dense.score_samples(X)
    )
    assert sparse.score(sp.csr_matrix(X)) == pytest.approx(dense.score(X))


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_gives_the_csr_results(Estimator, fmt, counts):
    X = counts[0] / 10
    reference = make(Estimator).fit(sp.csr_matrix(X))
    est = make(Estimator).fit(fmt(X))
    np.testing.assert_allclose(est.transform(fmt(X)), reference.transform(X))
    np.testing.assert_allclose(est.score_samples(fmt(X)), reference.score_samples(X))
    est.partial_fit(fmt(X))
    assert est.n_iter_ == reference.n_iter_ + 1


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_sparse_dtypes(Estimator, dtype, counts):
    X = sp.csr_matrix(counts[0].astype(dtype))
    est = make(Estimator).fit(X)
    expected = np.float32 if dtype == np.float32 else np.float64
    Z = est.transform(X)
    assert Z.dtype == expected and Z.shape == (X.shape[0], 2)
    assert est.score_samples(X).dtype == expected
    # decoded and generated rows are dense arrays
    assert isinstance(est.inverse_transform(Z), np.ndarray)
    assert isinstance(est.sample(3, random_state=0), np.ndarray)


@pytest.mark.parametrize("likelihood", COUNTS)
def test_csr_with_int64_indices(likelihood, counts):
    X = sp.csr_matrix(counts[0])
    wide = X.copy()  # as scikit-learn's checks make one: scipy keeps int32 otherwise
    wide.indices, wide.indptr = X.indices.astype(np.int64), X.indptr.astype(np.int64)
    assert wide.indices.dtype == np.int64
    est = make(VAETransformer, likelihood=likelihood).fit(wide)
    reference = make(VAETransformer, likelihood=likelihood).fit(X)
    np.testing.assert_allclose(est.transform(wide), reference.transform(X))


def test_input_is_not_modified(counts):
    X = sp.csr_matrix(counts[0].astype(np.float32))
    copy = X.copy()
    est = make(VAETransformer, likelihood="poisson").fit(X)
    est.score_samples(X)
    est.partial_fit(X)
    assert (X != copy).nnz == 0 and X.dtype == np.float32


# ------------------------------------------------------------------- bad values
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_nan_in_a_sparse_matrix_is_refused_with_what_to_do(Estimator, fitted_counts):
    X = sp.csr_matrix(np.eye(60, 4) + 1.0)
    X.data[0] = np.nan
    match = "NaN in a sparse matrix.*toarray"
    for fmt in ("csr", "coo", "dok", "lil"):  # dok and lil keep no .data array
        with pytest.raises(ValueError, match=match):
            make(Estimator).fit(X.asformat(fmt))
    with pytest.raises(ValueError, match=match):
        fitted_counts["poisson"].transform(sp.csr_matrix(np.full((2, 30), np.nan)))


@pytest.mark.parametrize("likelihood", COUNTS)
@pytest.mark.parametrize("to_input", [np.asarray, sp.csr_matrix, sp.csc_matrix])
@pytest.mark.parametrize(
    "value, match", [(-1.0, "non-negative integers"), (0.5, "not all integers")]
)
def test_count_likelihoods_refuse_non_counts(likelihood, to_input, value, match, counts):
    X = counts[0].copy()
    X[2, 4] = value
    with pytest.raises(ValueError, match=match):
        make(VAETransformer, likelihood=likelihood).fit(to_input(X))


@pytest.mark.parametrize(
    "Estimator, option",
    [
        (VAETransformer, "likelihood"),
        (VAETransformer, "bernoulli"),
        (AutoencoderTransformer, "loss"),
    ],
)
def test_nan_for_an_option_without_missing_values_says_what_to_do(
    Estimator, option, counts
):
    # scikit-learn's message said the estimator accepts no NaN and advised
    # HistGradientBoosting, where the default options model missing values
    X = counts[0] if option == "likelihood" else (counts[0] > 0).astype(float)
    params = {"loss": "bce"} if option == "loss" else {"likelihood": "poisson"}
    if option == "bernoulli":
        params = {"likelihood": "bernoulli"}
    default = "loss='mse'" if option == "loss" else "likelihood='gaussian'"
    holed = X.copy()
    holed[1, 2] = np.nan
    match = rf"contains NaN, and {list(params)[0]}=.* impute X .* or use {default}"
    with pytest.raises(ValueError, match=match):
        make(Estimator, **params).fit(holed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = make(Estimator, **params).fit(X)
    for method in ("transform", "score_samples"):
        with pytest.raises(ValueError, match=match):
            getattr(est, method)(holed)
    with pytest.raises(ValueError, match="contains infinity"):  # still scikit-learn's
        est.transform(np.where(np.isnan(holed), np.inf, holed))


@pytest.mark.parametrize("likelihood", COUNTS)
@pytest.mark.parametrize("method", ["score_samples", "transform"])
def test_scoring_or_encoding_non_counts_is_refused(
    likelihood, method, fitted_counts, counts
):
    # transform took logs of negative counts and blamed the values' scale
    X = counts[0][:4].copy()
    X[1, 2] = -3.0
    for rows in (X, sp.csr_matrix(X)):
        with pytest.raises(ValueError, match="non-negative integers"):
            getattr(fitted_counts[likelihood], method)(rows)


def test_sparse_unit_interval_check_counts_implicit_zeros():
    # The stored values are all in [0.2, 2]: the implicit zeros are in range,
    # the 2s are not.
    X = sp.random(40, 6, density=0.3, random_state=0, format="csr")
    X.data = 0.2 + 0.8 * X.data
    X.data[0] = 2.0
    with pytest.raises(ValueError, match=r"in \[0, 1\].*\[0, 2\]"):
        make(VAETransformer, likelihood="bernoulli").fit(X)


def test_sparse_values_too_large_are_refused():
    X = sp.csr_matrix(np.eye(4) * 1e37)
    with pytest.raises(ValueError, match="too large for the float32 network"):
        make(VAETransformer).fit(X)


# ------------------------------------------------------ never densified whole
def test_fit_and_inference_densify_only_blocks_of_rows(monkeypatch):
    # A small budget for the start's dense rows; every densified block of a
    # 2,000-row matrix is then a minibatch or an inference chunk (1,024 rows).
    monkeypatch.setattr(skvae._torch, "DENSE_ELEMENTS", 1000)
    rng = np.random.RandomState(0)
    X = sp.random(2000, 50, density=0.05, random_state=rng, format="csr")
    X.data = np.ceil(10 * X.data)
    shapes = []
    original = sp.csr_matrix.toarray

    def spy(self, *args, **kwargs):
        shapes.append(self.shape)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(sp.csr_matrix, "toarray", spy)
    monkeypatch.setattr(sp.csr_matrix, "todense", None)  # never called
    for likelihood in ["gaussian", "poisson"]:
        est = make(VAETransformer, likelihood=likelihood, max_iter=2, batch_size=64)
        est.fit(X).transform(X)
        est.score_samples(X)
    assert shapes and max(rows for rows, _ in shapes) <= 1024


def test_sparse_training_rows_share_the_matrix(counts):
    from skvae._torch import SparseRows

    X = sp.csr_matrix(counts[0].astype(np.float32))
    rows = SparseRows(X)
    subset = rows.subset([4, 1, 7])
    assert subset.matrix is rows.matrix and rows.matrix.data is X.data  # no copies
    torch.testing.assert_close(
        subset[torch.tensor([0, 2])], torch.from_numpy(X[[4, 7]].toarray())
    )
    torch.testing.assert_close(subset[1:], torch.from_numpy(X[[1, 7]].toarray()))
    assert subset.shape == (3, X.shape[1]) and len(subset) == 3


def test_sparse_moments_match_the_dense_ones(monkeypatch, counts):
    monkeypatch.setattr(skvae._likelihoods, "_SPARSE_CHUNK", 100)  # many chunks
    X = counts[0]
    monkeypatch.setattr(sp.csr_matrix, "toarray", None)  # sums, never densified
    mean, var = _moments(sp.csr_matrix(X))
    dense_mean, dense_var = _moments(torch.from_numpy(X))
    torch.testing.assert_close(mean, dense_mean)
    torch.testing.assert_close(var, dense_var)
    for Likelihood in (Poisson, NegativeBinomial):
        sparse, dense = Likelihood(X.shape[1]).double(), Likelihood(X.shape[1]).double()
        torch.testing.assert_close(
            sparse.init_output(sp.csr_matrix(X)), dense.init_output(torch.from_numpy(X))
        )
        for key, value in dense.state_dict().items():
            torch.testing.assert_close(sparse.state_dict()[key], value)


# ----------------------------------------------------------- the library size
@pytest.mark.parametrize("likelihood", COUNTS)
def test_codes_do_not_depend_on_the_rows_scale(likelihood, fitted_counts, counts):
    est = fitted_counts[likelihood]
    X = counts[0]
    Z = est.transform(X)
    np.testing.assert_allclose(est.transform(3 * X), Z, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        est.transform(sp.csr_matrix(7 * X)), Z, rtol=1e-10, atol=1e-12
    )
    # ...but the score does: it is a probability of these counts
    assert not np.allclose(est.score_samples(3 * X), est.score_samples(X))


@pytest.mark.parametrize("likelihood", COUNTS)
def test_a_row_scores_alike_dense_sparse_and_with_duplicate_entries(
    likelihood, fitted_counts, counts
):
    # Each row's importance draws come from its values: a CSR row, and one
    # whose entries are stored as duplicates that add up, get the dense row's
    X = counts[0][:6].astype(np.float64)
    model = fitted_counts[likelihood]
    dense = model.score_samples(X)
    np.testing.assert_allclose(model.score_samples(sp.csr_matrix(X)), dense, rtol=1e-6)
    rows, cols = np.nonzero(X)
    halves = sp.csr_matrix(
        (
            np.r_[X[rows, cols] / 2, X[rows, cols] / 2],
            (np.r_[rows, rows], np.r_[cols, cols]),
        ),
        shape=X.shape,
    )
    halves.has_canonical_format = False  # as built: duplicates not yet summed
    np.testing.assert_allclose(model.score_samples(halves), dense, rtol=1e-6)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_entries_stored_twice_are_read_as_their_sum(Estimator, counts):
    # one 1 per word of a bag of words: the value checks and the start's
    # statistics read the stored entries, not their sums
    rng = np.random.RandomState(0)
    docs = [rng.randint(0, 6, size=rng.randint(5, 40)) for _ in range(120)]
    indptr = np.r_[0, np.cumsum([len(d) for d in docs])]
    words = sp.csr_matrix(
        (np.ones(indptr[-1]), np.concatenate(docs), indptr), shape=(120, 6)
    )
    assert not words.has_canonical_format
    stored = words.data.copy()
    dense = words.toarray()
    params = {"likelihood": "negative_binomial"} if Estimator is VAETransformer else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = make(Estimator, **params).fit(words)
        b = make(Estimator, **params).fit(dense)
    np.testing.assert_allclose(a.score_samples(words), b.score_samples(dense), rtol=1e-5)
    np.testing.assert_array_equal(words.data, stored)  # X is not modified
    # stored halves of 0.7 add up to 1.4, outside [0, 1]; of 0.5, to the count 1
    pairs = dict(indices=np.tile([0, 0], 50), indptr=np.arange(0, 101, 2), shape=(50, 5))
    over = sp.csr_matrix((np.full(100, 0.7), pairs["indices"], pairs["indptr"]), (50, 5))
    option = {"likelihood": "bernoulli"} if Estimator is VAETransformer else {"loss": "bce"}
    with pytest.raises(ValueError, match=r"requires X in \[0, 1\].* \[0, 1.4\]"):
        make(Estimator, **option).fit(over)
    if Estimator is VAETransformer:
        halves = sp.csr_matrix(
            (np.full(100, 0.5), pairs["indices"], pairs["indptr"]), (50, 5)
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            make(Estimator, likelihood="poisson").fit(halves)


@pytest.mark.parametrize("likelihood", COUNTS)
def test_large_counts_score_alike_in_float32_and_float64(likelihood, fitted_counts, counts):
    # a count's log-probability is a small difference of terms of about x log x,
    # which float32 rounded by 35-38 nats for counts of 3.3e7 (2 at 3.3e6)
    X = counts[0][:5].astype(np.float64)
    X[:, 0] = 3_300_000
    model = fitted_counts[likelihood]
    wide, narrow = model.score_samples(X), model.score_samples(X.astype(np.float32))
    assert narrow.dtype == np.float32
    np.testing.assert_allclose(narrow, wide, rtol=1e-6, atol=0.05)


@pytest.mark.parametrize("likelihood", COUNTS)
def test_empty_rows_and_zero_columns(likelihood, fitted_counts, counts):
    est = fitted_counts[likelihood]
    X = counts[0]
    scores = est.score_samples(X)
    assert np.isfinite(scores).all()
    # total 0: the counts are certainly all 0, log p(0 | l=0) = 0 exactly; the
    # importance-sampling estimate of the integral of p(z) put it at +0.04
    assert scores[5] == 0.0
    draws = est.n_importance_samples
    try:  # the ELBO too
        assert est.set_params(n_importance_samples=1).score_samples(X[5:6])[0] == 0.0
    finally:
        est.set_params(n_importance_samples=draws)
    assert np.isfinite(est.transform(np.zeros((2, X.shape[1])))).all()
    # the feature no row had starts at a mean of 1e-4 counts and stays rare
    means = est.inverse_transform(est.transform(X))
    assert means[:, 3].max() < 0.05 * means.max()


@pytest.mark.parametrize("likelihood", COUNTS)
def test_decoded_means_sum_to_the_mean_training_total(likelihood, fitted_counts, counts):
    est = fitted_counts[likelihood]
    means = est.inverse_transform(est.transform(counts[0]))
    np.testing.assert_allclose(means.sum(1), counts[0].sum(1).mean(), rtol=1e-6)


@pytest.mark.parametrize("likelihood", COUNTS)
def test_samples_draw_totals_from_the_training_totals(likelihood, fitted_counts, counts):
    est = fitted_counts[likelihood]
    S = est.sample(3000, random_state=0)
    assert (S >= 0).all() and np.array_equal(S, np.round(S))
    totals = counts[0].sum(1)
    # the sampled totals spread like the training totals, not around one value
    assert np.mean(S.sum(1)) == pytest.approx(totals.mean(), rel=0.1)
    for q in (0.1, 0.5, 0.9):
        assert np.quantile(S.sum(1), q) == pytest.approx(np.quantile(totals, q), rel=0.25)
    np.testing.assert_array_equal(S, est.sample(3000, random_state=0))


@pytest.mark.parametrize("likelihood", COUNTS)
def test_a_stream_samples_the_totals_of_its_batches(likelihood):
    # sample drew the first batch's totals for good: 5 counts a row after a
    # first batch of short rows, and only zeros after an empty one
    rng = np.random.RandomState(0)
    p = rng.dirichlet(np.ones(6))
    short = sp.csr_matrix([rng.multinomial(5, p) for _ in range(60)])
    long = sp.csr_matrix([rng.multinomial(500, p) for _ in range(60)])
    for first in (short, sp.csr_matrix((30, 6))):
        est = make(VAETransformer, likelihood=likelihood, n_components=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.partial_fit(first)
            for _ in range(3):
                est.partial_fit(long)
        # the batches weigh as in the code density: after three more, the short
        # first batch is a quarter of the totals (the empty one, 30 rows, a seventh)
        quantiles = est.module_.likelihood.total_quantiles.numpy()
        assert quantiles[10] <= 5 and quantiles[50] == pytest.approx(500, rel=0.05)
        if likelihood == "poisson":  # counts that add up to about their total
            assert np.median(est.sample(400, random_state=0).sum(1)) > 400
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm = make(VAETransformer, likelihood=likelihood, n_components=2, warm_start=True)
        warm.fit(short).fit(long)  # a warm start models the new rows
    quantiles = warm.module_.likelihood.total_quantiles.numpy()
    assert quantiles[0] == pytest.approx(500, rel=0.1)  # the new rows' alone


def test_merged_totals_keep_the_quantiles_of_a_long_stream():
    # the old quantiles merged as rows of equal share drifted outward at every
    # batch: after 150 batches of 50 rows the 99th percentile was 541 for 206
    rng = np.random.RandomState(0)
    counts = Poisson(3)
    before = 0
    for _ in range(150):
        totals = torch.as_tensor(rng.lognormal(3, 1, size=50))
        counts.update_totals(totals, min(before / (before + 50), 0.9))
        before += 50
    quantiles = counts.total_quantiles.numpy()
    truth = np.exp(3 + stats.norm.ppf([0.5, 0.9, 0.95]))
    np.testing.assert_allclose(quantiles[[50, 90, 95]], truth, rtol=0.25)
    assert quantiles[99] < 2 * np.exp(3 + stats.norm.ppf(0.99))  # 2.6 times at first
    # a share of 0 is the new totals' own quantiles; merged with themselves, kept
    totals = torch.as_tensor(rng.lognormal(3, 1, size=500))
    counts.update_totals(totals)
    own = counts.total_quantiles.clone()
    np.testing.assert_allclose(
        own.numpy(), np.quantile(totals.numpy(), np.linspace(0, 1, 101))
    )
    counts.update_totals(totals, 0.5)
    np.testing.assert_allclose(
        counts.total_quantiles.numpy()[5:96], own.numpy()[5:96], rtol=0.1
    )


def test_empty_row_has_zero_loss_and_finite_gradients():
    for likelihood in (Poisson(4), NegativeBinomial(4)):
        out = torch.randn(3, 4, requires_grad=True)
        x = torch.tensor([[0.0, 0, 0, 0], [1, 0, 2, 0], [0, 0, 0, 5]])
        nll = likelihood.nll(out, x)
        assert nll[0].item() == 0.0
        nll.sum().backward()
        assert torch.isfinite(out.grad).all() and torch.isfinite(nll).all()


def test_encoder_input_is_the_scale_free_composition():
    likelihood = Poisson(3)
    likelihood.mean_total.fill_(10.0)
    x = torch.tensor([[1.0, 3.0, 0.0], [2.0, 6.0, 0.0], [0.0, 0.0, 0.0]])
    expected = torch.log1p(torch.tensor([[2.5, 7.5, 0.0], [2.5, 7.5, 0.0], [0, 0, 0]]))
    torch.testing.assert_close(likelihood.encoder_input(x), expected)


@pytest.mark.parametrize("likelihood", COUNTS)
def test_count_models_survive_pickle_and_save(likelihood, fitted_counts, counts, tmp_path):
    est = fitted_counts[likelihood]
    X = sp.csr_matrix(counts[0])
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.score_samples(X), est.score_samples(X))
    path = est.save(tmp_path / "counts.skvae")
    loaded = VAETransformer.load(path)
    np.testing.assert_array_equal(loaded.score_samples(X), est.score_samples(X))
    np.testing.assert_array_equal(
        loaded.sample(5, random_state=1), est.sample(5, random_state=1)
    )


# ------------------------------------------------------- text in a Pipeline
def _corpus(n=160, seed=0):
    """Documents of two topics over a small vocabulary, and their topic."""
    rng = np.random.RandomState(seed)
    vocabulary = np.array([f"w{i}" for i in range(40)])
    topics = rng.dirichlet(np.full(40, 0.2), size=2)
    label = rng.randint(2, size=n)
    docs = [
        " ".join(rng.choice(vocabulary, size=rng.randint(5, 40), p=topics[k]))
        for k in label
    ]
    return docs, label


@pytest.mark.parametrize("likelihood", COUNTS)
def test_pipeline_after_count_vectorizer(likelihood):
    docs, label = _corpus()
    pipe = make_pipeline(
        CountVectorizer(),
        # 60 epochs: at 30, one seed in eight of the negative binomial scored 0.725
        make(VAETransformer, likelihood=likelihood, max_iter=60),
        LogisticRegression(),
    )
    pipe.fit(docs[:120], label[:120])
    assert pipe.score(docs[120:], label[120:]) > 0.8  # the topics are well apart


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_pipeline_after_tfidf_vectorizer(likelihood):
    docs, _ = _corpus()
    pipe = make_pipeline(TfidfVectorizer(), make(VAETransformer, likelihood=likelihood))
    Z = pipe.fit_transform(docs)
    assert Z.shape == (len(docs), 2) and np.isfinite(pipe.score(docs))


def test_grid_search_over_a_count_pipeline():
    docs, _ = _corpus()
    pipe = make_pipeline(CountVectorizer(), make(VAETransformer, likelihood="poisson"))
    search = GridSearchCV(pipe, {"vaetransformer__n_components": [1, 3]}, cv=2)
    search.fit(docs)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.transform(docs[:3]).shape[0] == 3


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_a_model_of_an_array_with_missing_values_refuses_sparse_rows(Estimator):
    # its rows are a table's, encoded densely: a sparse matrix failed inside numpy
    # ("setting an array element with a sequence", or isnan on a sparse matrix)
    X = np.random.RandomState(0).rand(30, 4)
    with_holes = X.copy()
    with_holes[0, 0] = np.nan
    est = make(Estimator).fit(with_holes)
    for method in ("transform", "score_samples", "partial_fit"):
        with pytest.raises(TypeError, match="Sparse data was passed .* dense data"):
            getattr(est, method)(sp.csr_matrix(X))


@pytest.mark.parametrize("chunk", [2**22, 7])  # one block; blocks of 2 rows
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_sparse_array_has_the_dense_arrays_units(dtype, chunk, monkeypatch):
    # Read by stored values, centred, in float64: E[x^2] - E[x]^2 left a
    # constant column a variance of 1e-12 (read at the unit floor, a thousand
    # times enlarged), and scipy's float32 sums a column of 1e4 + 0.01 noise
    # a deviation of 0.98 instead of 0.01.
    from skvae._networks import _units

    monkeypatch.setattr(skvae._likelihoods, "_SPARSE_CHUNK", chunk)

    rng = np.random.RandomState(0)
    X = np.column_stack(
        [rng.normal(size=(1000, 2)), np.full(1000, 7.7), 1e4 + 0.01 * rng.normal(size=1000)]
    ).astype(dtype)
    X[rng.rand(1000) < 0.3, 0] = 0.0
    dense = _units(torch.as_tensor(X, dtype=torch.float64))
    S = sp.csr_matrix(X)
    # each stored value as two halves: duplicates, summed as densified
    halves = np.repeat(S.data / 2, 2).astype(dtype)
    doubled = sp.csr_matrix((halves, np.repeat(S.indices, 2), 2 * S.indptr), shape=S.shape)
    assert not doubled.has_canonical_format
    for sparse in (S, doubled):
        for got, expected in zip(_units(sparse), dense):
            np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-6)
    assert dense[2][2] == 0.0  # constant: its unit is the median one
    assert dense[1][3] < 0.02
