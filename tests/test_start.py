"""The factor-analysis start: how many factors it uses, and the choice of start on
validation rows."""

import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy import stats
from sklearn.decomposition import FactorAnalysis

import skvae._networks
from skvae import AutoencoderTransformer, VAETransformer
from skvae._base import _RATE_TRIAL_ROWS, _nested_log_likelihoods, linear_start, n_factors
from skvae.exceptions import PosteriorCollapseWarning


def _rank_data(n=400, d=10, rank=3, seed=0):
    """Rows of a factor model with ``rank`` strong factors and unequal noise."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, rank)) @ (2 * rng.normal(size=(rank, d)))
    return X + rng.normal(size=(n, d)) * rng.uniform(0.3, 1.0, d)


@pytest.fixture(scope="module")
def rank3():
    return _rank_data()


def test_nested_log_likelihoods_are_factor_analysis_log_likelihoods(rank3):
    X_fit, X_held = rank3[:300], rank3[300:]
    fa = FactorAnalysis(3, random_state=0).fit(X_fit)
    scores = _nested_log_likelihoods(X_held, fa.mean_, fa.components_, fa.noise_variance_)
    assert scores.shape == (100, 4)
    # all factors: factor analysis' own density; none: independent features
    np.testing.assert_allclose(scores[:, -1], fa.score_samples(X_held), rtol=1e-10)
    variance = fa.noise_variance_ + (fa.components_**2).sum(0)
    independent = stats.norm(fa.mean_, np.sqrt(variance)).logpdf(X_held).sum(1)
    np.testing.assert_allclose(scores[:, 0], independent, rtol=1e-10)
    # one factor: the strongest, the others' variance added to the noise
    strength = (fa.components_**2 / fa.noise_variance_).sum(1)
    w = fa.components_[np.argmax(strength)]
    covariance = np.outer(w, w) + np.diag(variance - w**2)
    one = stats.multivariate_normal(fa.mean_, covariance).logpdf(X_held)
    np.testing.assert_allclose(scores[:, 1], one, rtol=1e-10)


@pytest.mark.parametrize("n_components, expected", [(6, 3), (3, 3), (2, 2)])
def test_n_factors_finds_the_rank_of_linear_data(rank3, n_components, expected):
    assert n_factors(rank3, n_components, seed=0) == expected


def test_n_factors_keeps_all_factors_of_too_few_rows(rank3):
    assert n_factors(rank3[:9], 6, seed=0) == 6


def _scripted_nested_scores(X_all, gains, seed=0):
    """A stand-in for ``_nested_log_likelihoods`` on X_all's rows: sub-model m
    scores a row ``gains[m]`` plus the row's noise, shared by the sub-models
    (sd 1) and their own (sd 0.1, summing to 0 over the rows), so that the
    summed scores are exactly ``len(X_all) * gains``."""
    rng = np.random.RandomState(seed)
    own = 0.1 * rng.normal(size=(len(X_all), len(gains)))
    noise = rng.normal(size=(len(X_all), 1)) + own - own.mean(0)
    index = {row.tobytes(): i for i, row in enumerate(X_all)}

    def nested(X, mean, components, noise_variance):
        return np.asarray(gains) + noise[[index[row.tobytes()] for row in X]]

    return nested


@pytest.mark.parametrize(
    "gains, expected",
    [
        # sub-model 3 is best by 0.002 nats/row: 0.4 nats in all, inside one
        # standard error of 200 rows' differences (sqrt(200 * 0.02), about 2)
        ([-5.0, -2.0, -1.0, 0.0, -0.001, -0.002], 5),
        # by 0.1 nats/row, 20 in all, far beyond it: 3
        ([-5.0, -2.0, -1.0, 0.0, -0.1, -0.1], 3),
        # 4 within the error of 3 and 5 clearly worse: the largest close one
        ([-5.0, -2.0, -1.0, 0.0, -0.002, -0.1], 4),
    ],
)
def test_n_factors_uses_fewer_factors_only_where_the_data_clearly_want_fewer(
    monkeypatch, gains, expected
):
    import skvae._base

    X = np.random.RandomState(1).normal(size=(200, 8))
    scripted = _scripted_nested_scores(X, gains)
    monkeypatch.setattr(skvae._base, "_nested_log_likelihoods", scripted)
    assert n_factors(X, 5, seed=0) == expected


@pytest.fixture
def counted_fits(monkeypatch):
    """The number of rows of each factor analysis fitted from now on."""
    import skvae._base

    fits = []
    fit = skvae._base._factor_analysis

    def counted(X, n_components, seed):
        fits.append(len(X))
        return fit(X, n_components, seed)

    monkeypatch.setattr(skvae._base, "_factor_analysis", counted)
    return fits


def test_n_factors_keeps_the_factors_asked_for_unless_clearly_too_many(counted_fits):
    # load_wine's 89-row half (seed 0), where held-out rows prefer 5 factors
    # to 3 by 0.33 nats/row and to 4 by 0.1, and one 5-fold split picked 3 or
    # 4 of 5 by chance.
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, _ = train_test_split(load_wine().data, test_size=0.5, random_state=0)
    X = StandardScaler().fit_transform(X)
    # Seed 0's folds favour 3 factors, by less than one standard error: 5
    assert n_factors(X, 5, seed=0) == 5
    assert len(counted_fits) == 5
    # seed 1's favour 3 by more, and new folds (at most 10 x 5) average it away
    counted_fits.clear()
    assert n_factors(X, 5, seed=1) == 5
    assert 5 < len(counted_fits) <= 50 and set(counted_fits) <= {71, 72}


def test_n_factors_keeps_a_first_choice_of_all_or_no_factors(rank3, counted_fits):
    assert n_factors(rank3[:200], 3, seed=0) == 3
    assert counted_fits == [160] * 5
    counted_fits.clear()
    noise = np.random.RandomState(0).normal(size=(100, 6))  # no factor to find
    assert n_factors(noise, 2, seed=0) == 0
    assert counted_fits == [80] * 5


def test_linear_start_leaves_the_dimensions_the_data_do_not_support_unused(rank3):
    components, noise_variance = linear_start(rank3, 6, seed=0)
    assert components.shape == (6, 10) and noise_variance.shape == (10,)
    assert (np.abs(components[:3]).sum(1) > 1).all()
    assert not components[3:].any()
    # the start is a function of the seed
    again = linear_start(rank3, 6, seed=0)
    np.testing.assert_array_equal(components, again[0])
    np.testing.assert_array_equal(noise_variance, again[1])


def test_linear_start_reads_sparse_rows(rank3):
    components, _ = linear_start(sp.csr_matrix(rank3), 6, seed=0)
    assert (np.abs(components).sum(1) > 0).sum() == 3


def test_linear_start_fits_the_float32_values_the_network_trains_on(rank3):
    # so that a sparse fit, whose training rows are float32, starts where the
    # dense fit does
    rounded = rank3.astype(np.float32)
    assert not np.array_equal(rounded, rank3)
    for got, expected in zip(linear_start(rank3, 6, 0), linear_start(rounded, 6, 0)):
        np.testing.assert_array_equal(got, expected)


def test_a_linear_start_knows_its_factors_though_weak_ones_load_zero():
    # Factor analysis zeroes the loadings of a factor that explains less than
    # the noise: its rows cannot tell how many factors were fitted.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(400, 1)) @ rng.normal(size=(1, 3))
    X += rng.normal(size=(400, 3)) * rng.uniform(0.3, 1.0, 3)
    start = linear_start(X, 6, 0, factors=3)
    components, noise = start  # unpacks as the 2-tuple
    assert start.factors == 3 and np.any(components != 0, axis=1).sum() == 1
    assert linear_start(X, 6, 0).factors == n_factors(X, 3, 0)


def test_linear_start_with_factors_given_skips_the_choice(rank3, monkeypatch):
    import skvae._base

    monkeypatch.setattr(skvae._base, "n_factors", lambda *args: pytest.fail("chose"))
    components, _ = linear_start(rank3, 6, 0, factors=2)
    assert np.abs(components).sum(1).nonzero()[0].tolist() == [0, 1]
    assert linear_start(rank3, 2, 0, factors=5)[0].shape == (2, 10)  # at most k


@pytest.fixture(scope="module")
def starts(rank3):
    """The ``linear`` argument of every ``Model.initialize`` call a fit makes."""

    def record(estimator, X, bad_start=False):
        calls = []
        initialize = skvae._networks.Model.initialize

        def spy(module, X, linear=None, seed=0):
            calls.append(linear)
            return initialize(module, X, linear, seed)

        mp = pytest.MonkeyPatch()
        mp.setattr(skvae._networks.Model, "initialize", spy)
        if bad_start:  # loadings far too large, noise far too small
            wrong = (20 * np.ones((estimator.n_components, X.shape[1])), 1e-3 * np.ones(10))
            mp.setattr(type(estimator), "_linear_start", lambda *args, **kwargs: wrong)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PosteriorCollapseWarning)
                estimator.fit(X)
        finally:
            mp.undo()
        return calls

    return record


def test_fit_leaves_the_dimensions_linear_data_do_not_need_at_the_prior(rank3, starts):
    # Factor analysis finds the 3 factors on 28 of 30 random 90% slices of
    # rank3; random_state=0's training rows are one of the two where all 6
    # score within a standard error of 3, and it keeps all 6.
    vae = VAETransformer(n_components=6, max_iter=20, random_state=1)
    calls = starts(vae, rank3)
    # a trial from each start, then the fit from the linear one, fitted again
    # on every row with the factors judged
    assert len(calls) == 3 and calls[1] is None and calls[0] is not calls[2]
    assert not calls[0][0][3:].any() and not calls[2][0][3:].any()
    assert vae.n_active_components_ == 3
    assert not vae.active_components_[3:].any()
    Z = vae.transform(rank3)
    assert np.abs(Z[:, 3:]).max() < 0.2 < Z[:, :3].std(0).min()


def test_a_start_worse_than_none_on_validation_rows_is_dropped(rank3, starts):
    vae = VAETransformer(n_components=2, max_iter=20, random_state=0)
    calls = starts(vae, rank3, bad_start=True)
    assert len(calls) == 3 and calls[2] is None


def test_without_validation_rows_the_linear_start_is_kept(rank3, starts):
    vae = VAETransformer(n_components=2, max_iter=5, early_stopping=False, random_state=0)
    calls = starts(vae, rank3, bad_start=True)
    assert len(calls) == 1 and calls[0] is not None


def test_beyond_the_trial_rows_the_linear_start_is_kept(rank3, starts, monkeypatch):
    import skvae._base

    monkeypatch.setattr(skvae._base, "_START_TRIAL_ROWS", 50)  # fewer than rank3's
    monkeypatch.setattr(skvae._base, "_RATE_TRIAL_ROWS", 50)
    vae = VAETransformer(n_components=2, max_iter=5, random_state=0)
    calls = starts(vae, rank3, bad_start=True)
    # the rate's trials (at 1 and 8 times it) and the fit, all from it
    assert len(calls) == 3 and all(call is not None for call in calls)


def test_an_autoencoder_started_at_pca_reconstructs_as_pca(rank3):
    from sklearn.decomposition import PCA

    from skvae._base import pca_start
    from skvae._networks import build

    rows = rank3.astype(np.float32).astype(np.float64)  # values the network sees
    ae = AutoencoderTransformer(n_components=4, max_iter=1, random_state=0).fit(rows)
    module = build(ae.module_.description).double()
    module.initialize(rows, pca_start(rows, 4, seed=0))
    with torch.no_grad():
        codes = module.encode(torch.as_tensor(rows))
        reconstruction = module.decode(codes).numpy()
    pca = PCA(4).fit(rows)
    expected = pca.inverse_transform(pca.transform(rows))
    np.testing.assert_allclose(reconstruction, expected, atol=1e-8)
    # the codes start as PCA's whitened scores: unit variance, uncorrelated
    np.testing.assert_allclose(np.cov(codes.numpy().T, ddof=1), np.eye(4), atol=1e-8)
    # float64 rows start where their float32 values do
    np.testing.assert_array_equal(pca_start(rank3, 4, 0)[0], pca_start(rows, 4, 0)[0])
    # three rows support two centred axes; the others start at zero, unused
    loadings, noise = pca_start(rank3[:3], 4, seed=0)
    assert noise is None and loadings[:2].any(axis=1).all() and not loadings[2:].any()
    # so do the axes of rounding noise of rank-deficient rows
    exact = rank3[:, :3] @ np.random.RandomState(0).normal(size=(3, 10))
    loadings, _ = pca_start(exact, 5, seed=0)
    assert loadings[:3].any(axis=1).all() and not loadings[3:].any()
    # rows far from the origin keep their axes
    far = (rank3 + 1e6).astype(np.float32).astype(np.float64)
    exact = PCA(4, svd_solver="full").fit(far)
    expected = np.sqrt(exact.explained_variance_)[:, None] * exact.components_
    np.testing.assert_allclose(np.abs(pca_start(far, 4, 0)[0]), np.abs(expected), atol=1e-6)
    assert pca_start(rank3[:1], 4, seed=0) is None
    assert pca_start(np.ones((5, 3)), 2, seed=0) is None  # no axis to start along
    # sparse rows give the same start
    np.testing.assert_allclose(
        pca_start(sp.csr_matrix(rank3), 4, seed=0)[0],
        pca_start(rank3, 4, seed=0)[0],
        atol=1e-10,
    )


@pytest.mark.parametrize(
    "scores, chosen",
    [
        ((-5.0, -10.0), "pca"),
        ((-10.0, -5.0), "none"),
        # PCA's trial must end more than 1% of the error lower: 9,000 rows of
        # load_digits and their shifts, whose PCA trial won by 0.7%, ended
        # 3.4% worse from PCA
        ((-9.95, -10.0), "none"),
        ((-9.8, -10.0), "pca"),
    ],
)
def test_an_autoencoder_starts_at_pca_where_its_trial_wins_by_one_percent(
    rank3, starts, monkeypatch, scores, chosen
):
    trials = []
    _script_trials(monkeypatch, lambda factor, start: scores[start is None], trials)
    ae = AutoencoderTransformer(n_components=2, max_iter=10, random_state=0)
    calls = starts(ae, rank3)
    assert [start is None for _, start in trials] == [False, True]  # PCA's, then none's
    assert len(calls) == 1  # the fit's, from the chosen start
    assert (calls[0] is None) == (chosen == "none")
    if chosen == "pca":  # PCA's loadings, no noise variances
        assert calls[0][0].shape == (2, 10) and calls[0][1] is None


def test_an_autoencoders_pca_start_is_fitted_on_its_training_rows_alone(rank3, monkeypatch):
    # Its trial is judged on the validation rows: fitted on them too, PCA's
    # error reads lower there (16% on 300 of load_digits' rows, 16 axes).
    import skvae._autoencoder

    fitted = []
    pca_start = skvae._autoencoder.pca_start

    def spy(X, n_components, seed):
        fitted.append(X.shape[0])
        return pca_start(X, n_components, seed)

    monkeypatch.setattr(skvae._autoencoder, "pca_start", spy)
    AutoencoderTransformer(n_components=2, max_iter=4, random_state=0).fit(rank3)
    # 400 rows less the 10% held out for the trial; chosen, it is fitted
    # again on every row for the fit
    assert fitted == [360, 400]


@pytest.mark.parametrize(
    "params, trial_rows, bad, rows",
    [
        # judged by trials on 400 rows less the 10% held out, then, chosen,
        # fitted again on every row; not chosen, not
        ({}, None, False, [(360, None), (400, 2)]),  # with the factors judged
        ({}, None, True, [(360, None)]),
        ({"early_stopping": False}, None, False, [(400, None)]),  # untried: no validation
        ({}, 50, False, [(400, None)]),  # untried: beyond the trial rows
    ],
)
def test_a_vaes_factor_analysis_is_fitted_on_the_training_rows_where_trials_judge_it(
    rank3, monkeypatch, params, trial_rows, bad, rows
):
    import skvae._base
    import skvae._vae

    fitted = []
    linear_start = skvae._vae.linear_start

    def spy(X, n_components, seed, factors=None):
        fitted.append((X.shape[0], factors))
        if bad:  # loadings far too large, noise far too small: the trial loses
            return 20 * np.ones((n_components, X.shape[1])), 1e-3 * np.ones(X.shape[1])
        return linear_start(X, n_components, seed, factors)

    monkeypatch.setattr(skvae._vae, "linear_start", spy)
    if trial_rows is not None:
        monkeypatch.setattr(skvae._base, "_START_TRIAL_ROWS", trial_rows)
        monkeypatch.setattr(skvae._base, "_RATE_TRIAL_ROWS", trial_rows)
    vae = VAETransformer(n_components=2, max_iter=4, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PosteriorCollapseWarning)
        vae.fit(rank3)
    assert fitted == rows


@pytest.mark.parametrize(
    "case", ["refit", "refit fails", "enough rows already", "wide sparse rows"]
)
def test_a_chosen_start_is_fitted_again_on_every_row_as_judged(
    rank3, starts, monkeypatch, case
):
    import skvae._base
    import skvae._torch
    import skvae._vae

    judged = linear_start(rank3[:360], 3, 0, factors=1)  # one factor of three
    monkeypatch.setattr(VAETransformer, "_start", lambda *args, **kwargs: (judged, 1.0))
    refits = []

    def spy(X, n_components, seed, factors=None):
        refits.append((X.shape[0], factors))
        return (
            None if case == "refit fails" else linear_start(X, n_components, seed, factors)
        )

    monkeypatch.setattr(skvae._vae, "linear_start", spy)
    X = rank3
    if case == "enough rows already":
        monkeypatch.setattr(skvae._base, "_DENSITY_MAX_ROWS", 360)
    if case == "wide sparse rows":  # a start reads 100 of their rows
        monkeypatch.setattr(skvae._torch, "DENSE_ELEMENTS", 100 * X.shape[1])
        X = sp.csr_matrix(X)
    vae = VAETransformer(n_components=3, max_iter=2, random_state=0)
    (start,) = starts(vae, X)  # no trials: the fit's start alone
    if case in ("enough rows already", "wide sparse rows"):
        assert refits == [] and start is judged  # the refit would read as many rows
        return
    assert refits == [(400, 1)]  # every row, the judged number of factors
    if case == "refit fails":
        assert start is judged
    else:
        assert start is not judged and not start[0][1:].any() and not judged[0][1:].any()


def test_an_autoencoder_starts_from_scratch_beyond_the_trial_rows(
    rank3, starts, monkeypatch
):
    # Kept untried, PCA's start held 50,000 rows of Hastie's independent
    # features at an error of 0.685 (0.403 from scratch), and a million
    # manifold rows ended 1.1% worse from it.
    import skvae._autoencoder
    import skvae._base

    computed = []
    monkeypatch.setattr(
        skvae._autoencoder, "pca_start", lambda *args: computed.append(1) or None
    )
    monkeypatch.setattr(skvae._base, "_START_TRIAL_ROWS", 50)
    ae = AutoencoderTransformer(n_components=2, max_iter=5, random_state=0)
    assert starts(ae, rank3) == [None]
    assert not computed  # not even computed


@pytest.mark.parametrize("how", ["few rows", "early_stopping=False", "partial_fit"])
def test_without_validation_rows_an_autoencoder_starts_at_pca(how):
    # From scratch, arrays in their own units ended far above PCA's error
    # (here 91, 28 and 2,700 times PCA's held-out error).
    from sklearn.datasets import load_breast_cancer
    from sklearn.decomposition import PCA

    X = load_breast_cancer().data  # in its own units
    X = X[np.random.RandomState(0).permutation(len(X))][: 80 if how == "few rows" else 300]
    train, test = X[::2], X[1::2]
    ae = AutoencoderTransformer(n_components=3, random_state=0)
    if how == "partial_fit":
        for _ in range(2):
            for batch in np.array_split(train, 5):
                ae.partial_fit(batch)
    elif how == "early_stopping=False":
        ae.set_params(early_stopping=False).fit(train)
    else:  # 40 rows: none held out
        ae.fit(train)

    def error(model):
        return np.mean((model.inverse_transform(model.transform(test)) - test) ** 2)

    assert error(ae) < 2 * error(PCA(3).fit(train))


def test_an_untried_pca_start_of_fewer_axes_than_codes_is_not_taken(starts):
    # A stream whose first batch held 3 rows started 6 of 8 codes unused, at
    # a saddle (zero encoder rows, zero decoder columns) no later batch left:
    # those codes stayed exactly 0 for good, 2.5 times PCA's error.
    from sklearn.datasets import load_digits

    X = load_digits().data[np.random.RandomState(0).permutation(1797)][:400]
    ae = AutoencoderTransformer(n_components=8, random_state=0)
    assert starts(ae.set_params(early_stopping=False), X[:3]) == [None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ae = AutoencoderTransformer(n_components=8, random_state=0).partial_fit(X[:3])
        for batch in np.array_split(X, 4):
            ae.partial_fit(batch)
    assert ae.transform(X).std(0).min() > 0.1
    (start,) = starts(ae.set_params(early_stopping=False), X[:9])  # 8 axes: PCA's
    assert start is not None and np.any(start[0], axis=1).all()


@pytest.mark.parametrize(
    "estimator, X",
    [
        (AutoencoderTransformer(n_components=2, max_iter=3, loss="bce"), "unit"),
        (AutoencoderTransformer(n_components=2, max_iter=3), "table"),
    ],
    ids=["bce", "table"],
)
def test_an_autoencoder_with_a_sigmoid_output_or_a_table_starts_from_scratch(
    rank3, starts, estimator, X
):
    import pandas as pd

    if X == "unit":
        X = (rank3 - rank3.min(0)) / (rank3.max(0) - rank3.min(0))
    else:
        X = pd.DataFrame(rank3[:, :4], columns=list("abcd"))
        X["level"] = pd.Categorical(np.where(rank3[:, 0] > 0, "up", "down"))
    calls = starts(estimator, X)
    assert calls == [None]


def test_wide_data_get_a_randomized_factor_analysis():
    # Exact SVDs of every iteration made the start of 784-pixel data take a
    # minute; beyond 500 features a randomized one gives the same solution.
    from skvae._base import _factor_analysis

    rng = np.random.RandomState(0)
    W = rng.normal(size=(3, 600))
    X = rng.normal(size=(400, 3)) @ W + 0.5 * rng.normal(size=(400, 600))
    wide = _factor_analysis(X, 3, seed=0)
    narrow = _factor_analysis(X[:, :400], 3, seed=0)
    assert wide.svd_method == "randomized" and narrow.svd_method == "lapack"
    from sklearn.decomposition import FactorAnalysis

    reference = FactorAnalysis(3, svd_method="lapack", random_state=0).fit(X)
    assert abs(wide.score(X) - reference.score(X)) < 1e-3 * abs(reference.score(X))


#: The shipped threshold, before any test patches it.
_SHIPPED_RATE_TRIAL_ROWS = _RATE_TRIAL_ROWS


@pytest.fixture
def rate_trials(monkeypatch):
    """The factors of the rate trials a fit runs, and every rate it trains at.

    rank3's 360 training rows count as many (beyond ``_START_TRIAL_ROWS`` and
    ``_RATE_TRIAL_ROWS``).
    """
    import skvae._base

    monkeypatch.setattr(skvae._base, "_START_TRIAL_ROWS", 50)
    monkeypatch.setattr(skvae._base, "_RATE_TRIAL_ROWS", 50)
    record = {"factors": [], "rates": []}
    trial = skvae._base._BaseAutoencoder._trial

    def spy(self, *args, **kwargs):
        factor = args[8] if len(args) > 8 else kwargs.get("factor")
        if factor is not None:
            record["factors"].append(factor)
        return trial(self, *args, **kwargs)

    make = skvae._base.make_optimizer

    def rate(module, name, learning_rate, *args, **kwargs):
        record["rates"].append(learning_rate)
        return make(module, name, learning_rate, *args, **kwargs)

    monkeypatch.setattr(skvae._base._BaseAutoencoder, "_trial", spy)
    monkeypatch.setattr(skvae._base, "make_optimizer", rate)
    return record


def test_an_auto_learning_rate_is_chosen_by_trials_of_its_multiples(rank3, rate_trials):
    vae = VAETransformer(n_components=3, max_iter=8, random_state=0).fit(rank3)
    # no start trial: 8 times the rate, then the rate's own, from the linear start
    assert rate_trials["factors"] == [8, 1]
    rate = rate_trials["rates"][1]
    assert rate_trials["rates"][0] == pytest.approx(8 * rate)
    assert len(rate_trials["rates"]) == 3
    assert rate_trials["rates"][2] / rate == pytest.approx(1) or rate_trials["rates"][
        2
    ] / rate == pytest.approx(8)  # the fit's
    assert np.isfinite(vae.score(rank3))


@pytest.mark.parametrize(
    "estimator",
    [
        VAETransformer(n_components=3, max_iter=8, learning_rate=1e-3, random_state=0),
        VAETransformer(n_components=3, max_iter=8, early_stopping=False, random_state=0),
        AutoencoderTransformer(n_components=3, max_iter=8, random_state=0),
    ],
    ids=["rate set", "no validation rows", "autoencoder"],
)
def test_a_rate_set_by_hand_an_autoencoder_or_no_validation_rows_run_no_rate_trial(
    rank3, rate_trials, estimator
):
    estimator.fit(rank3)
    assert rate_trials["factors"] == []
    assert len(set(rate_trials["rates"])) == 1


def test_up_to_the_rate_trial_rows_the_rate_is_kept(rank3, rate_trials, monkeypatch):
    # From 1,000 rows trials of 4 and 8 times the rate scored higher held out,
    # but the README's digits pipeline classified worse and examples warned.
    import skvae._base

    monkeypatch.setattr(skvae._base, "_START_TRIAL_ROWS", 20_000)
    monkeypatch.setattr(skvae._base, "_RATE_TRIAL_ROWS", _SHIPPED_RATE_TRIAL_ROWS)
    VAETransformer(n_components=3, max_iter=8, random_state=0).fit(rank3)
    assert rate_trials["factors"] == []
    assert _SHIPPED_RATE_TRIAL_ROWS > 1_797  # all of load_digits


def test_the_kl_warmup_is_weighed_against_a_quarter_up_to_the_start_trial_rows(
    rank3, rate_trials, monkeypatch
):
    # Trials of a quarter of 20 epochs (5) end after a warm-up of 4, not of 5
    import skvae._base

    monkeypatch.setattr(skvae._base, "_START_TRIAL_ROWS", 20_000)
    VAETransformer(n_components=3, max_iter=20, kl_warmup=5, random_state=0).fit(rank3)
    assert rate_trials["factors"] == []
    VAETransformer(n_components=3, max_iter=20, kl_warmup=4, random_state=0).fit(rank3)
    assert rate_trials["factors"][0] == 8


def test_between_the_trial_rows_both_trials_run_a_quarter_from_the_chosen_start(
    rank3, rate_trials, monkeypatch
):
    # A tenth of 10,000 rows' epochs (14) chose 8 times the rate where the fit
    # at it ended 3 nats/row lower (make_low_rank_matrix); a quarter did not.
    import skvae._base

    monkeypatch.setattr(skvae._base, "_START_TRIAL_ROWS", 20_000)
    calls = []
    trial = skvae._base._BaseAutoencoder._trial

    def spy(self, *args, **kwargs):
        start = args[7] if len(args) > 7 else kwargs["start"]
        factor = args[8] if len(args) > 8 else kwargs.get("factor")
        share = args[9] if len(args) > 9 else kwargs.get("share")
        history = trial(self, *args, **kwargs)
        calls.append((start is None, factor, share))
        if factor is None:  # the start without the linear solution wins
            history.best_validation_score = -5.0 if start is None else -10.0
        elif factor == 8:  # and 8 times the rate beats the rate held constant
            history.best_validation_score = np.inf
        return history

    monkeypatch.setattr(skvae._base._BaseAutoencoder, "_trial", spy)
    VAETransformer(n_components=3, max_iter=20, random_state=0).fit(rank3)
    assert calls == [
        (False, None, None),  # the linear start's trial (the default share)
        (True, None, None),  # no start's
        (True, 8, 0.25),  # eight times the rate, from the winner
        (True, 1, 0.25),  # the rate on the fit's schedule
    ]
    assert skvae._base._START_TRIAL == 0.25


def _choose(vae, rank3):
    """``vae._start``'s start and factor for rank3's first 360 rows, 8 epochs of 64."""
    X, X_val = rank3[:360], rank3[360:]
    description = vae._describe(X.shape[1], (8,), None)
    plan = 64, 1e-3, 8
    return vae._start(description, rank3, X, X_val, None, 0, "cpu", plan)


class _Scripted:
    """A History-like trial result: a best validation score after a first one."""

    def __init__(self, best, first=-100.0):
        self.best_validation_score = best
        self.validation_scores = [first, best]


def _script_trials(monkeypatch, score, calls=None):
    """Replace every trial of ``_start`` by ``_Scripted(score(factor, start))``.

    ``factor`` is None for a start trial (the rate held constant), and a score
    of None is a trial that diverged. ``calls``, a list, records each trial's
    ``(factor, start)``.
    """
    import skvae._base

    def scripted(self, *args, **kwargs):
        start = args[7] if len(args) > 7 else kwargs["start"]
        factor = args[8] if len(args) > 8 else kwargs.get("factor")
        if calls is not None:
            calls.append((factor, start))
        best = score(factor, start)
        return None if best is None else _Scripted(best)

    monkeypatch.setattr(skvae._base._BaseAutoencoder, "_trial", scripted)


@pytest.mark.parametrize(
    "scores, expected",
    [
        ({1: -10.0, 8: -9.0}, 8.0),
        # within 1% of the rate's progress (90 nats): not worth the change
        ({1: -10.0, 8: -9.2}, 1.0),
        ({1: -10.0, 8: None}, 1.0),  # a trial that diverged
        ({1: None, 8: -8.0}, 1.0),  # the rate's trial diverged
    ],
)
def test_a_multiple_of_the_rate_must_beat_its_trial_by_one_percent_of_progress(
    rank3, monkeypatch, scores, expected
):
    import skvae._base

    monkeypatch.setattr(skvae._base, "_START_TRIAL_ROWS", 50)
    monkeypatch.setattr(skvae._base, "_RATE_TRIAL_ROWS", 50)

    _script_trials(monkeypatch, lambda factor, start: scores[factor])
    vae = VAETransformer(n_components=3, max_iter=8, random_state=0)
    _, factor = _choose(vae, rank3)
    assert factor == expected


def test_a_table_with_no_linear_start_trials_its_rate_then_the_multiple(rank3, rate_trials):
    import pandas as pd

    frame = pd.DataFrame(rank3[:, :4], columns=list("abcd"))
    frame["level"] = pd.Categorical(np.where(rank3[:, 0] > 0, "up", "down"))
    VAETransformer(max_iter=8, random_state=0).fit(frame)
    assert rate_trials["factors"] == [8, 1]
    rate = rate_trials["rates"][1]
    assert rate_trials["rates"][0] == pytest.approx(8 * rate)
    assert len(rate_trials["rates"]) == 3


def test_the_trials_of_a_table_spread_its_heavy_atoms_as_the_fit_does(
    rate_trials, monkeypatch
):
    # A student-t VAE trains on a heavy atom spread over its cell; trials on
    # the bare atom scored 0.8 to 2.2 nats/row higher than on the batches the
    # fit trains on (1,170 rows of zero-inflated amounts), rewarding a
    # collapse onto the atom that the fit does not make.
    import pandas as pd

    import skvae._base

    rng = np.random.RandomState(0)
    a = rng.normal(size=300)
    gain = np.where(rng.rand(300) < 0.1, rng.lognormal(8, 1, 300), 0.0)
    frame = pd.DataFrame({"a": a, "b": a + 0.5 * rng.normal(size=300), "gain": gain})
    frame.loc[::11, "gain"] = np.nan  # its zeros: a heavy atom
    spread = []
    train = skvae._base.train

    def spy(module, X, optimizer, config, *args, **kwargs):
        spread.append(config.dequantize is not None)
        return train(module, X, optimizer, config, *args, **kwargs)

    monkeypatch.setattr(skvae._base, "train", spy)
    VAETransformer(
        likelihood="student_t", hidden_layer_sizes=(8,), max_iter=4, random_state=0
    ).fit(frame)
    assert rate_trials["factors"] == [8, 1]
    assert spread == [True] * 3  # the multiple's trial, the rate's, the fit


def test_a_fit_that_diverges_at_a_chosen_multiple_of_the_rate_trains_at_the_rate(
    rank3, monkeypatch
):
    # The multiple is the fit's own choice: a default fit that raised
    # NonFiniteLossError for it failed where the user asked nothing unusual.
    import skvae._base

    monkeypatch.setattr(skvae._base, "_START_TRIAL_ROWS", 50)
    monkeypatch.setattr(skvae._base, "_RATE_TRIAL_ROWS", 50)
    monkeypatch.setattr(skvae._base, "_RATE_MULTIPLE", 3000.0)

    _script_trials(monkeypatch, lambda factor, start: 0.0 if factor == 3000 else -10.0)
    rates = []
    make = skvae._base.make_optimizer

    def rate(module, name, learning_rate, *args, **kwargs):
        rates.append(learning_rate)
        return make(module, name, learning_rate, *args, **kwargs)

    monkeypatch.setattr(skvae._base, "make_optimizer", rate)
    vae = VAETransformer(
        hidden_layer_sizes=(8,), max_iter=4, optimizer="sgd", random_state=0
    )
    with pytest.warns(
        UserWarning, match=r"3000 times its rate .* trained again at the rate itself"
    ):
        vae.fit(rank3)
    assert rates[0] == pytest.approx(3000 * rates[1])  # the fit, then its refit
    assert np.isfinite(vae.score(rank3))
    assert vae.n_iter_ == 4  # the refit's epochs


def test_a_refit_at_the_rate_that_diverges_too_raises(rank3, monkeypatch):
    import skvae._base
    from skvae.exceptions import NonFiniteLossError

    monkeypatch.setattr(skvae._base, "_START_TRIAL_ROWS", 50)
    monkeypatch.setattr(skvae._base, "_RATE_TRIAL_ROWS", 50)

    _script_trials(monkeypatch, lambda factor, start: 0.0 if factor == 8 else -10.0)
    calls = []

    def diverge(*args, **kwargs):
        calls.append(args[3].rate_warmup)
        raise NonFiniteLossError("Training diverged: loss became nan at epoch 1.")

    monkeypatch.setattr(skvae._base, "train", diverge)
    vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=4, random_state=0)
    with pytest.warns(UserWarning, match="trained again at the rate itself"):
        with pytest.raises(NonFiniteLossError, match="loss became nan"):
            vae.fit(rank3)
    assert calls == [skvae._base._RATE_WARMUP, 0.0]  # at 8 times the rate, then at it
    assert not hasattr(vae, "module_")


@pytest.mark.parametrize("multiple, trials", [(-6.0, 3), (-4.0, 4)])
def test_a_multiple_that_does_not_beat_the_rate_held_constant_ends_the_trials(
    rank3, monkeypatch, multiple, trials
):
    # Up to 20,000 rows the start trials ran at the rate held constant: a
    # multiple below that is not tried against the rate on the fit's
    # schedule (a quarter of the epochs saved where the rate is kept).
    import skvae._base

    monkeypatch.setattr(skvae._base, "_RATE_TRIAL_ROWS", 50)

    def score(factor, start):
        if factor is None:
            return -5.0 if start is None else -10.0
        return multiple if factor == 8 else -100.0

    calls = []
    _script_trials(monkeypatch, score, calls)
    vae = VAETransformer(n_components=3, max_iter=8, random_state=0)
    start, factor = _choose(vae, rank3)
    assert start is None  # the start trials' winner
    assert len(calls) == trials and calls[2][0] == 8
    assert factor == (8.0 if multiple > -5.0 else 1.0)


def test_up_to_the_start_trial_rows_data_with_no_linear_start_keep_the_rate(
    rank3, rate_trials, monkeypatch
):
    # Counts and tables have no start to choose: rate trials of a quarter
    # doubled bench_sparse's 10,000-row count fits (26 s to 51 s), which
    # kept the rate.
    import pandas as pd

    import skvae._base

    monkeypatch.setattr(skvae._base, "_START_TRIAL_ROWS", 20_000)
    frame = pd.DataFrame(rank3[:, :4], columns=list("abcd"))
    frame["level"] = pd.Categorical(np.where(rank3[:, 0] > 0, "up", "down"))
    VAETransformer(max_iter=8, random_state=0).fit(frame)
    counts = np.random.RandomState(0).poisson(3.0, size=(400, 6))
    VAETransformer(likelihood="poisson", max_iter=8, random_state=0).fit(counts)
    assert rate_trials["factors"] == []


def test_beyond_the_trial_rows_the_rate_and_eight_times_it_train_a_tenth(
    rank3, rate_trials, monkeypatch
):
    import skvae._base

    monkeypatch.setattr(skvae._base, "_START_TRIAL_ROWS", 50)  # fewer than rank3's
    monkeypatch.setattr(skvae._base, "_RATE_TRIAL_ROWS", 50)
    epochs = []
    trial = skvae._base._BaseAutoencoder._trial

    def spy(self, *args, **kwargs):
        epochs.append(kwargs.get("share", args[9] if len(args) > 9 else None))
        return trial(self, *args, **kwargs)

    monkeypatch.setattr(skvae._base._BaseAutoencoder, "_trial", spy)
    VAETransformer(n_components=3, max_iter=20, random_state=0).fit(rank3)
    # no start trial: from the linear start, 8 times the rate, then its own
    assert rate_trials["factors"] == [8, 1]
    assert epochs == [0.1, 0.1]
    rate = rate_trials["rates"][1]
    assert rate_trials["rates"][0] == pytest.approx(8 * rate)
    assert len(rate_trials["rates"]) == 3  # the fit's last


def test_factor_analysis_of_noise_heavy_rows_stops_at_its_cap(rank3):
    # scikit-learn's tol bounds the gain of the total log-likelihood: on
    # noise-heavy rows it ran 528 iterations for 0.01 nats/row (10,000 rows:
    # all 1,000, 15 s of a 28 s fit).
    from sklearn.datasets import make_classification
    from threadpoolctl import threadpool_limits

    from skvae._base import _factor_analysis

    X = make_classification(1000, n_features=40, n_informative=10, random_state=1)[0]
    fitted = _factor_analysis(X, 5, seed=0)
    with threadpool_limits(1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = FactorAnalysis(5, svd_method="lapack", random_state=0).fit(X)
    assert fitted.n_iter_ == 200 < reference.n_iter_
    assert reference.score(X) - 0.02 < fitted.score(X) <= reference.score(X)
    # data that converge within the cap keep their solution exactly (that of
    # the standardized rows, in the rows' units)
    fitted = _factor_analysis(rank3, 3, seed=0)
    scale = rank3.std(axis=0)
    with threadpool_limits(1, user_api="blas"):
        reference = FactorAnalysis(3, svd_method="lapack", random_state=0)
        reference.fit(rank3 / scale)
    assert fitted.n_iter_ < 200
    np.testing.assert_allclose(
        fitted.components_, reference.components_ * scale, rtol=1e-12
    )
    np.testing.assert_allclose(fitted.noise_variance_, reference.noise_variance_ * scale**2)
    np.testing.assert_allclose(fitted.mean_, rank3.mean(axis=0))


@pytest.mark.parametrize("scale", [1e-8, 1e6])
def test_factor_analysis_does_not_depend_on_the_units(rank3, scale):
    from skvae._base import _factor_analysis

    # scikit-learn floors noise variances at an absolute 1e-12: rows in units
    # of 1e-8 had every noise variance at that floor, most of their variance
    fitted = _factor_analysis(rank3, 3, seed=0)
    rescaled = _factor_analysis(rank3 * scale, 3, seed=0)
    np.testing.assert_allclose(rescaled.components_, fitted.components_ * scale, rtol=1e-6)
    np.testing.assert_allclose(
        rescaled.noise_variance_, fitted.noise_variance_ * scale**2, rtol=1e-6
    )


def test_the_trials_train_on_the_fits_own_tensors(rank3, rate_trials, monkeypatch):
    # A trial that converts X again holds a second copy of the rows beside the
    # fit's (made before the trials, for the heavy atoms' dequantizer): twice
    # the memory, and on a GPU the copy may not fit and be streamed instead.
    import skvae._base

    seen = []
    train = skvae._base.train

    def spy(module, X, optimizer, config, *args, **kwargs):
        seen.append((X, kwargs.get("X_val")))
        return train(module, X, optimizer, config, *args, **kwargs)

    monkeypatch.setattr(skvae._base, "train", spy)
    VAETransformer(n_components=3, max_iter=8, random_state=0).fit(rank3)
    assert rate_trials["factors"] == [8, 1]
    assert len(seen) == 3  # the multiple's trial, the rate's, the fit
    rows, val_rows = seen[-1]
    assert all(X is rows and X_val is val_rows for X, X_val in seen)


def test_a_start_trial_that_diverged_is_not_run_again_as_the_rates(rank3, monkeypatch):
    # Where both start trials diverged at the rate, no trial of a multiple or
    # of the rate follows, even beyond _RATE_TRIAL_ROWS (the rate's own trial
    # once repeated the linear start's, seeded alike; an 8x trial that
    # survived its rise could leave the fit at the rate that had diverged),
    # and the fit keeps the linear start and the rate.
    import skvae._base

    monkeypatch.setattr(skvae._base, "_RATE_TRIAL_ROWS", 50)
    calls = []

    def diverged_at_the_rate(factor, start):
        return None if factor is None else -8.0

    _script_trials(monkeypatch, diverged_at_the_rate, calls)
    vae = VAETransformer(n_components=3, max_iter=8, random_state=0)
    start, factor = _choose(vae, rank3)
    assert [trial for trial, _ in calls] == [None, None]  # the two start trials, no third
    assert start is not None and factor == 1.0


def test_a_fit_at_a_chosen_multiple_rises_to_it_and_ends_at_the_rates_floor(
    rank3, rate_trials, monkeypatch
):
    # The fit's own schedule (the trials' is tested through _annealing): a
    # fit at 8 times the rate whose cosine ended at 5% of that would end 8
    # times higher than the rate's, and one without the rise starts at 8x.
    import skvae._base
    from skvae._training import ANNEAL_FLOOR

    _script_trials(monkeypatch, lambda factor, start: -5.0 if factor == 8 else -10.0)
    steps = []
    train = skvae._base.train

    def spy(module, X, optimizer, config, *args, **kwargs):
        optimizer.register_step_pre_hook(
            lambda opt, *_: steps.append(opt.param_groups[0]["lr"])
        )
        history = train(module, X, optimizer, config, *args, **kwargs)
        steps.append(optimizer.param_groups[0]["lr"])  # after the last step
        return history

    monkeypatch.setattr(skvae._base, "train", spy)
    VAETransformer(n_components=3, max_iter=8, random_state=0).fit(rank3)
    rate = rate_trials["rates"][0] / 8  # the fit's optimizer starts at 8 times it
    assert rate_trials["rates"] == [pytest.approx(8 * rate)]
    assert steps[0] < 8 * rate and max(steps) == pytest.approx(8 * rate)
    assert steps[-1] == pytest.approx(ANNEAL_FLOOR * rate)  # all 8 epochs ran


@pytest.mark.parametrize("chosen", [8.0, 1.0])
def test_a_fit_at_a_multiple_of_the_rate_stops_early_only_once_the_rate_is_down(
    rank3, rate_trials, monkeypatch, chosen
):
    # At 11.3 times the rate, 100,000 blobs rows scored between 2.0 and -19
    # nats/row on validation rows in epochs 5-22 of 57, and the patience of a
    # fifth of the epochs stopped the fit at epoch 22 on epoch 9's weights
    # (3.14 nats/row held out, against 5.02 for the fit that ran on).
    import skvae._base
    import skvae._training
    from skvae._base import _rate_comes_down

    _script_trials(monkeypatch, lambda factor, start: -5.0 if factor == chosen else -10.0)
    calls = []

    def validation(*args, **kwargs):  # the start, a best first epoch, then worse
        calls.append(None)
        return [10.0, 1.0][len(calls) - 1] if len(calls) <= 2 else 5.0

    monkeypatch.setattr(skvae._training, "evaluate", validation)
    vae = VAETransformer(
        n_components=3, max_iter=20, early_stopping=True, n_iter_no_change=3, random_state=0
    )
    vae.fit(rank3)
    if chosen == 1:  # the patience of 3 epochs ran out after epoch 5
        assert vae.n_iter_ == 5
    else:  # the rate came down to the rate after 16 of the 20 epochs, and the
        # patience counts from there
        assert math.ceil(_rate_comes_down(chosen) * 20) == 16
        assert vae.n_iter_ == 16 + 3


def test_no_multiple_of_the_rate_is_tried_within_the_kl_warmup(rank3, rate_trials):
    # trials of 2 of the 20 epochs would end with the KL weight still rising
    VAETransformer(n_components=3, max_iter=20, kl_warmup=4, random_state=0).fit(rank3)
    assert rate_trials["factors"] == []
    VAETransformer(n_components=3, max_iter=20, kl_warmup=1, random_state=0).fit(rank3)
    assert rate_trials["factors"] == [8, 1]


def test_a_verbose_fit_says_which_multiple_of_the_rate_its_trials_chose(
    rank3, rate_trials, monkeypatch, capsys
):

    _script_trials(monkeypatch, lambda factor, start: -5.0 if factor == 8 else -10.0)
    VAETransformer(n_components=3, max_iter=4, verbose=2, random_state=0).fit(rank3)
    rate = rate_trials["rates"][0] / 8
    said = f"its trials chose 8 times {rate:.3g}, {8 * rate:.3g}."
    assert said in capsys.readouterr().out
    VAETransformer(n_components=3, max_iter=4, random_state=0).fit(rank3)
    assert capsys.readouterr().out == ""  # silent by default
