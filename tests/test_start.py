"""The factor-analysis start: how many factors it uses, and the choice of start on
validation rows."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats
from sklearn.decomposition import FactorAnalysis

import skvae._networks
from skvae import VAETransformer
from skvae._base import _nested_log_likelihoods, linear_start, n_factors
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
            mp.setattr(type(estimator), "_linear_start", lambda *args: wrong)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PosteriorCollapseWarning)
                estimator.fit(X)
        finally:
            mp.undo()
        return calls

    return record


def test_fit_leaves_the_dimensions_linear_data_do_not_need_at_the_prior(rank3, starts):
    vae = VAETransformer(n_components=6, max_iter=20, random_state=0)
    calls = starts(vae, rank3)
    # a trial from each start, then the fit from the linear one
    assert len(calls) == 3 and calls[1] is None
    assert calls[0] is calls[2] and not calls[2][0][3:].any()
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
    vae = VAETransformer(n_components=2, max_iter=5, random_state=0)
    calls = starts(vae, rank3, bad_start=True)
    assert len(calls) == 1 and calls[0] is not None


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
