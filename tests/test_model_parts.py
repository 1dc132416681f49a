"""Estimator-level tests of the model parts: likelihood and prior options, legacy files."""

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.preprocessing import StandardScaler

from skvae import AutoencoderTransformer, VAETransformer

DATA = Path(__file__).parent / "data"


def _truth(name, rng, n):
    """Rows drawn from independent features of a known law, and their log-density."""
    if name == "gaussian":
        loc, scale = np.array([0.0, 2.0, -1.0]), np.array([1.0, 0.5, 2.0])
        law = stats.norm(loc, scale)
    elif name == "student_t":
        loc, scale = np.array([0.0, 1.0, -1.0]), np.array([1.0, 0.5, 2.0])
        law = stats.t(4.0, loc, scale)
    elif name == "bernoulli":
        law = stats.bernoulli(np.array([0.1, 0.5, 0.8, 0.3]))
    elif name == "poisson":
        law = stats.poisson(np.array([0.5, 3.0, 10.0]))
    else:  # negative binomial with means (1, 5, 20) and inverse dispersions (2, 5, 1)
        mu, theta = np.array([1.0, 5.0, 20.0]), np.array([2.0, 5.0, 1.0])
        law = stats.nbinom(theta, theta / (theta + mu))
    X = law.rvs(size=(n, len(law.mean())), random_state=rng).astype(float)
    log_p = (law.logpmf(X) if hasattr(law, "logpmf") else law.logpdf(X)).sum(1)
    if name == "poisson":  # log p(x | l), l = x's own total: multinomial
        share = law.mean() / law.mean().sum()
        log_p = stats.multinomial.logpmf(X, n=X.sum(1), p=share)
    elif name == "negative_binomial":
        mu = X.sum(1, keepdims=True) * law.mean() / law.mean().sum()
        log_p = stats.nbinom.logpmf(X, theta, theta / (theta + mu)).sum(1)
    return X, log_p


@pytest.mark.parametrize(
    "likelihood", ["gaussian", "student_t", "bernoulli", "poisson", "negative_binomial"]
)
def test_held_out_score_matches_the_true_density(likelihood):
    rng = np.random.RandomState(0)
    X, _ = _truth(likelihood, rng, 3000)
    X_test, log_p = _truth(likelihood, rng, 2000)
    vae = VAETransformer(
        n_components=1,
        hidden_layer_sizes=(16,),
        likelihood=likelihood,
        max_iter=60,
        batch_size=128,
        learning_rate=3e-3,
        random_state=0,
    ).fit(X)
    gap = vae.score(X_test) - log_p.mean()  # nats per row
    if likelihood == "negative_binomial":
        # log p(x | l) at the row's own total is not the truth's conditional for
        # independent NB features (their total is not an observed scale), so the
        # truth at l is no ceiling: a composition that follows the total scores
        # above it (0.9 nats/row here). The bar is one-sided.
        assert gap > -0.2
    else:  # Poisson: at its own total, p(x | l) is the multinomial, exact
        assert abs(gap) < 0.2


@pytest.mark.parametrize("likelihood", ["poisson", "negative_binomial"])
@pytest.mark.parametrize(
    "X, match",
    [
        (np.array([[1.0, 2.0], [-1.0, 0.0], [3.0, 1.0]]), "non-negative integers"),
        (np.array([[1.0, 2.5], [1.0, 0.0], [3.0, 1.0]]), "not all integers"),
    ],
)
def test_count_likelihoods_need_counts(likelihood, X, match):
    with pytest.raises(ValueError, match=match):
        VAETransformer(likelihood=likelihood, max_iter=1).fit(X)


def test_count_samples_are_counts():
    X = np.random.RandomState(0).poisson(3.0, size=(200, 4)).astype(float)
    vae = VAETransformer(likelihood="poisson", max_iter=3, random_state=0).fit(X)
    S = vae.sample(50, random_state=0)
    assert (S >= 0).all() and (S == np.round(S)).all()


def test_mixture_prior_samples_and_scores(digits01):
    vae = VAETransformer(
        n_components=3, prior="mixture", likelihood="bernoulli", max_iter=5, random_state=0
    ).fit(digits01)
    assert np.isfinite(vae.score_samples(digits01)).all()
    S = vae.sample(20, random_state=0)
    np.testing.assert_array_equal(S, vae.sample(20, random_state=0))
    assert set(np.unique(S)) <= {0.0, 1.0}
    loaded = pickle.loads(pickle.dumps(vae))
    np.testing.assert_array_equal(
        loaded.score_samples(digits01), vae.score_samples(digits01)
    )


@pytest.mark.parametrize("early_stopping", [False, "auto"])
def test_a_rare_feature_cannot_wreck_the_held_out_score(early_stopping):
    # A feature that is 0 in every training row but one: its variance shrinks to
    # almost nothing, and a new row that uses it would cost millions of nats
    # without the background density; with it, the row scores about log(1e-3)
    # below the background (PCA's density) at worst.
    from sklearn.decomposition import PCA

    rng = np.random.RandomState(0)
    X = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))
    X[:, 5] = 0.0
    X[0, 5] = 1.0
    X_test = rng.normal(size=(50, 6)) @ rng.normal(size=(6, 6))
    X_test[:, 5] = 0.0
    X_test[:3, 5] = 5.0
    vae = VAETransformer(
        n_components=2, max_iter=30, early_stopping=early_stopping, random_state=0
    )
    vae.fit(X)  # the background is fitted on all of X (validation rows too), as PCA is
    gap = vae.score_samples(X_test) - PCA(2).fit(X).score_samples(X_test)
    # half the background is PCA's density, half a t with its scale
    assert gap.min() > np.log(1e-3) + np.log(0.5) - 1e-6


def test_a_value_far_out_costs_the_log_of_its_distance_not_its_square():
    # Standardized, a feature lit in 3 of 400 training rows puts a lit test row
    # 93 deviations out: PCA's Gaussian tail (the background before) charged it
    # 8,400 nats, the heavy tail about 67; other rows lose at most log 2 of it.
    from sklearn.decomposition import PCA

    rng = np.random.RandomState(0)
    W = rng.normal(size=(6, 6))
    X, X_test = rng.normal(size=(400, 6)) @ W, rng.normal(size=(50, 6)) @ W
    X[:, 5], X_test[:, 5] = 0.0, 0.0
    X[:3, 5], X_test[:3, 5] = 1.0, 8.0
    scaler = StandardScaler().fit(X)
    X, X_test = scaler.transform(X), scaler.transform(X_test)
    vae = VAETransformer(n_components=2, max_iter=30, random_state=0).fit(X)
    scores, pca = vae.score_samples(X_test), PCA(2).fit(X).score_samples(X_test)
    assert scores[:3].max() < -20 and (scores[:3] > pca[:3] + 5000).all()
    assert np.median(scores[3:] - pca[3:]) > -0.1
    background = vae.module_.background
    assert background.kind == "ppca_t" and 1 < float(background.tail_dof) < 100


def test_files_of_the_previous_format_fail_with_a_versioned_error():
    with pytest.raises(ValueError, match="file format version 1"):
        VAETransformer.load(DATA / "vae_format1.skvae")
    with (
        open(DATA / "vae_skvae01.pkl", "rb") as f,
        pytest.raises(ValueError, match="pickle format version 1"),
    ):
        pickle.load(f)


def test_a_table_file_written_before_pooled_levels_loads_and_continues():
    # Written by skvae at edee726 (format 2, before rare levels could be pooled):
    # a table's signature then had no pools, and a load must still match it.
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(
        {
            "size": rng.lognormal(1, 0.5, 60),
            "color": pd.Series(rng.choice(["red", "green", "blue"], 60)),
            "flag": rng.rand(60) < 0.3,
        }
    )
    frame.loc[frame["flag"], "size"] = np.nan
    est = VAETransformer.load(DATA / "vae_table_format2.skvae")
    assert all(c.rare is None for c in est._table.columns)
    # Each row's own draws (since stop 35; with the draws shared by all rows of
    # edee726 the file scored -3.8417138652, -1.4811782348, -2.8397877323,
    # -4.8328787059 and -3.3705869554)
    expected = [-3.9384294488, -1.3690290799, -3.0312232417, -4.9676611646, -3.5180221237]
    np.testing.assert_allclose(est.score_samples(frame.head(5)), expected, rtol=1e-5)
    est.partial_fit(frame)  # the same architecture: training goes on
    assert est.n_iter_ == 4


@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer])
def test_network_is_rebuilt_from_its_description(Estimator, digits01):
    est = Estimator(n_components=2, max_iter=2, random_state=0).fit(digits01)
    state = est.__getstate__()
    assert set(state["module_"]) == {"description", "weights"}
    assert state["module_"]["description"] == est.module_.description
    assert est.module_ is not state["module_"]  # the estimator itself is untouched
