"""The VAE as a probabilistic model, and the quality floors of both estimators."""

import copy
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.decomposition import PCA

from skvae import AutoencoderTransformer, VAETransformer
from skvae._networks import BACKGROUND_WEIGHT

from .conftest import make_manifold


@pytest.fixture(scope="module")
def curve():
    X = make_manifold(800, seed=0)
    return X[:500], X[500:]


@pytest.fixture(scope="module")
def curve_vae(curve):
    X_train, _ = curve
    return VAETransformer(
        n_components=2,
        hidden_layer_sizes=(64, 32),
        max_iter=100,
        batch_size=32,
        early_stopping=False,
        random_state=0,
    ).fit(X_train)


def test_beats_pca_on_a_curved_manifold(curve, curve_vae):
    X_train, X_test = curve
    pca = PCA(n_components=2).fit(X_train)
    assert curve_vae.score(X_test) > pca.score(X_test) + 3  # measured: about 0.5 vs -8.5
    assert curve_vae.n_active_components_ >= 1


@pytest.fixture(scope="module")
def curve_ae(curve):
    X_train, _ = curve
    return AutoencoderTransformer(
        n_components=2,
        hidden_layer_sizes=(32,),
        max_iter=100,
        batch_size=32,
        early_stopping=False,
        random_state=0,
    ).fit(X_train)


def test_autoencoder_beats_pca_reconstruction(curve, curve_ae):
    X_train, X_test = curve
    ae = curve_ae
    pca = PCA(n_components=2).fit(X_train)
    pca_error = ((pca.inverse_transform(pca.transform(X_test)) - X_test) ** 2).sum(1).mean()
    assert -ae.score(X_test) < 0.25 * pca_error  # measured: 0.06 vs 4.0


def test_matches_probabilistic_pca_on_linear_gaussian_data(seed):
    rng = np.random.RandomState(seed)
    W = rng.normal(size=(3, 8))
    X = rng.normal(size=(1200, 3)) @ W + 0.3 * rng.normal(size=(1200, 8))
    X_train, X_test = X[:800], X[800:]
    vae = VAETransformer(
        n_components=3,
        hidden_layer_sizes=(),
        max_iter=300,
        batch_size=64,
        learning_rate=3e-3,
        n_importance_samples=50,
        random_state=seed,
    ).fit(X_train)
    pca_score = PCA(n_components=3).fit(X_train).score(X_test)
    assert abs(vae.score(X_test) - pca_score) < 0.25  # nats per row, of about -8


def test_iwae_rises_with_k_and_is_the_elbo_at_one(curve, curve_vae):
    _, X_test = curve
    vae = clone(curve_vae)
    vae.__dict__.update(
        {k: v for k, v in curve_vae.__dict__.items() if k.endswith("_") or k[0] == "_"}
    )
    # Each row has its own draws, so the mean over 300 rows averages them
    means = {}
    for k in [1, 5, 50]:
        vae.set_params(n_importance_samples=k)
        means[k] = vae.score(X_test)
    assert means[1] <= means[5] + 0.05 <= means[50] + 0.1
    # K = 1 is exactly the ELBO: reconstruction log-likelihood minus the closed-form KL
    elbo_vae = VAETransformer(**{**vae.get_params(), "n_importance_samples": 1})
    elbo_vae.fit(curve[0])
    module = elbo_vae.module_
    import torch

    from skvae._torch import row_keys, row_normals

    X32 = X_test.astype(np.float32)
    x = torch.as_tensor(X32, device=elbo_vae.device_)
    # each row's one draw, from its own values
    eps = row_normals(row_keys(X32, elbo_vae._seed), 2, elbo_vae._seed)
    eps = torch.as_tensor(eps, dtype=torch.float32, device=elbo_vae.device_)
    with torch.no_grad():
        terms = module.loss(x, eps)
        # the ELBO, mixed with the background density: log((1-w) e^ELBO + w p_b)
        elbo = -(terms.reconstruction + terms.kl)
        w = BACKGROUND_WEIGHT
        expected = torch.logaddexp(elbo + np.log1p(-w), terms.background).cpu().numpy()
    np.testing.assert_allclose(elbo_vae.score_samples(X32), expected, rtol=1e-5)


def test_scores_do_not_depend_on_the_other_rows(curve, curve_vae):
    _, X_test = curve
    full = curve_vae.score_samples(X_test)
    np.testing.assert_allclose(
        curve_vae.score_samples(X_test[::-1])[::-1], full, rtol=1e-12
    )
    np.testing.assert_allclose(curve_vae.score_samples(X_test[:7]), full[:7], rtol=1e-12)
    np.testing.assert_array_equal(curve_vae.score_samples(X_test), full)  # no fresh noise


def test_the_mean_score_averages_each_rows_own_draws(curve, curve_vae):
    # Draws shared by all rows moved every row's bound together: this model's
    # mean held-out score spread by 0.26 nats/row (sd) over ten draw seeds,
    # more than most differences a held-out score is read for.
    _, X_test = curve
    vae = clone(curve_vae)
    vae.__dict__.update(
        {k: v for k, v in curve_vae.__dict__.items() if k.endswith("_") or k[0] == "_"}
    )
    means = []
    for seed in range(10):
        vae._seed = seed
        means.append(vae.score(X_test))
    assert np.std(means, ddof=1) < 0.06
    # a row's draws are its own: copies of a row score alike, other rows not
    twice = vae.score_samples(np.vstack([X_test[:1], X_test[:1], X_test[1:2]]))
    assert twice[0] == twice[1] != twice[2]
    # and the same in float32 (the draws read the values rounded to float32)
    narrow = vae.score_samples(X_test[:5].astype(np.float32)).astype(np.float64)
    np.testing.assert_allclose(narrow, vae.score_samples(X_test[:5]), rtol=1e-4)


def test_row_draws_depend_on_the_row_alone():
    import scipy.sparse as sp

    from skvae._torch import row_keys, row_normals

    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 6))
    X[3, :4] = 0.0
    X[4, 2] = -0.0
    keys = row_keys(X, 7)
    assert len(np.unique(keys)) == 40
    np.testing.assert_array_equal(row_keys(X[10:15], 7), keys[10:15])  # where it sits
    np.testing.assert_array_equal(row_keys(sp.csr_matrix(X), 7), keys)  # dense or CSR
    np.testing.assert_array_equal(row_keys(X.astype(np.float32), 7), keys)
    zero = X.copy()
    zero[4, 2] = 0.0  # -0.0 and 0.0 are the same value
    np.testing.assert_array_equal(row_keys(zero, 7), keys)
    assert not np.isin(row_keys(-X, 7), keys).any()  # signs, and the seed, count
    assert not np.isin(row_keys(X, 8), keys).any()
    draws = row_normals(row_keys(rng.normal(size=(20_000, 3)), 0), 10, 0)
    assert draws.shape == (20_000, 10)
    assert abs(draws.mean()) < 0.01 and abs(draws.std() - 1) < 0.01
    assert abs(np.corrcoef(draws[:, 0], draws[:, 1])[0, 1]) < 0.03  # within a row
    assert abs(np.corrcoef(draws[:-1, 0], draws[1:, 0])[0, 1]) < 0.03  # across rows
    # a row's draws are distinct entries of the pool, also beyond its 2**20
    assert all(len(np.unique(row)) == 10 for row in draws[:100])
    many = row_normals(row_keys(X[:1], 7), 2**20 + 4, 7)[0]
    assert not np.array_equal(many[:4], many[2**20 :])  # a pool of 2**20 repeated


def test_scores_are_the_same_across_chunks_and_blocks(curve, curve_vae, monkeypatch):
    # the rows' draws travel beside them through chunks (7 rows) and blocks of
    # draws made at once (20 rows): every row keeps its own
    import skvae._base

    _, X_test = curve
    full = curve_vae.score_samples(X_test)
    monkeypatch.setattr(skvae._base, "INFERENCE_CHUNK", 7)
    count = curve_vae.n_importance_samples * curve_vae.n_components_
    monkeypatch.setattr(skvae._base, "DENSE_ELEMENTS", 20 * count)
    np.testing.assert_allclose(curve_vae.score_samples(X_test), full, rtol=1e-5)


def test_bernoulli_likelihood(digits01):
    vae = VAETransformer(
        n_components=4, likelihood="bernoulli", max_iter=20, batch_size=32, random_state=0
    ).fit(digits01)
    assert vae.noise_variance_ is None
    X_mean = vae.sample(50, random_state=0, add_noise=False)
    assert X_mean.min() >= 0 and X_mean.max() <= 1 and len(np.unique(X_mean)) > 2
    X_draw = vae.sample(50, random_state=0)
    assert set(np.unique(X_draw)) <= {0.0, 1.0}
    scores = vae.score_samples(digits01)
    assert (
        np.isfinite(scores).all() and (scores < 0).all()
    )  # log-probabilities of [0,1] data
    flipped = 1 - digits01  # unlike the training digits
    assert vae.score(flipped) < vae.score(digits01) - 10


def test_gaussian_sampling_options(curve, curve_vae):
    X_train, _ = curve
    a = curve_vae.sample(300, random_state=1)
    np.testing.assert_array_equal(a, curve_vae.sample(300, random_state=1))
    assert not np.allclose(a, curve_vae.sample(300, random_state=2))
    mean = curve_vae.sample(300, random_state=1, add_noise=False)
    residual_var = (a - mean).var(0)
    np.testing.assert_allclose(residual_var, curve_vae.noise_variance_, rtol=0.3)
    assert curve_vae.code_density_.n_components == 10
    posterior = VAETransformer(**{**curve_vae.get_params(), "sample_from": "posterior"})
    posterior.fit(X_train)
    np.testing.assert_array_equal(
        posterior.transform(X_train),
        curve_vae.transform(X_train),  # same training
    )
    from_posterior = posterior.sample(5, random_state=0)
    assert not np.allclose(from_posterior, curve_vae.sample(5, random_state=0))
    curve_vae.set_params(sample_from="posterior")  # read at sampling time
    try:
        np.testing.assert_array_equal(curve_vae.sample(5, random_state=0), from_posterior)
    finally:
        curve_vae.set_params(sample_from="prior")


def test_posterior_scores_are_those_of_the_code_density(curve, curve_vae):
    # sample_from="posterior" draws codes from the fitted code density, and
    # score_samples scored rows under the prior: the scores were not those of the
    # density the samples come from.
    _, X_test = curve
    prior_scores = curve_vae.score_samples(X_test)
    model = copy.deepcopy(curve_vae).set_params(sample_from="posterior")
    posterior_scores = model.score_samples(X_test)
    assert np.isfinite(posterior_scores).all()
    # The aggregate posterior is the best prior for the decoder (measured on this
    # curve: -4.50 against -5.20 nats/row held out).
    assert posterior_scores.mean() > prior_scores.mean() + 0.2
    # A code density that is the standard normal prior gives the prior's scores.
    density = model.code_density_
    density.weights_ = np.ones(1)
    density.means_ = np.zeros((1, 2))
    density.covariances_ = np.eye(2)[None]
    np.testing.assert_allclose(model.score_samples(X_test), prior_scores, rtol=1e-10)
    # With one draw the score is the ELBO, its KL term estimated at that draw.
    model.set_params(n_importance_samples=1)
    elbo = model.score_samples(X_test)
    assert np.isfinite(elbo).all() and elbo.mean() < prior_scores.mean()
    model.set_params(sample_from="prior")  # read at call time
    prior_elbo = copy.deepcopy(curve_vae).set_params(n_importance_samples=1)
    np.testing.assert_array_equal(
        model.score_samples(X_test), prior_elbo.score_samples(X_test)
    )


def test_code_density_follows_the_aggregate_posterior_on_few_rows():
    # Fitted to one code per row, the 10-component code density of 89 rows in 10
    # dimensions followed those codes: held-out rows scored 4.9 nats/row below
    # the prior's scores with sample_from="posterior". Ten draws per row fix it.
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X_train, X_test = train_test_split(load_wine().data, test_size=0.5, random_state=0)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    vae = VAETransformer(n_components=10, random_state=0).fit(X_train)
    prior_score = vae.score(X_test)
    vae.set_params(sample_from="posterior")
    assert vae.score(X_test) > prior_score


@pytest.mark.parametrize(
    "sample_from, tolerance",
    # The prior has "holes" the data never use, so its samples miss more (measured:
    # mean gap 0.40 vs 0.05 for the aggregate posterior on this curve).
    [("prior", 0.6), ("posterior", 0.2)],
)
def test_samples_match_the_data_moments(curve, curve_vae, sample_from, tolerance):
    X_train, _ = curve
    vae = curve_vae
    vae = clone(vae).set_params(sample_from=sample_from).fit(X_train)
    S = vae.sample(3000, random_state=0)
    assert np.abs(S.mean(0) - X_train.mean(0)).max() < tolerance  # data are standardized
    assert np.abs(np.cov(S.T) - np.cov(X_train.T)).max() < 1.5 * tolerance


def test_autoencoder_samples_match_the_data_moments(curve, curve_ae):
    X_train, _ = curve
    ae = curve_ae
    S = ae.sample(3000, random_state=0)
    assert np.abs(S.mean(0) - X_train.mean(0)).max() < 0.2
    assert np.abs(np.cov(S.T) - np.cov(X_train.T)).max() < 0.3
    np.testing.assert_array_equal(S, ae.sample(3000, random_state=0))


def test_posterior_collapse_is_reported(curve):
    X_train, _ = curve
    with pytest.warns(UserWarning, match=r"Only \d of 4 latent dimensions are active"):
        collapsed = VAETransformer(
            n_components=4,
            beta=50.0,
            max_iter=200,
            batch_size=32,
            hidden_layer_sizes=(16,),
            random_state=0,
        ).fit(X_train)
    assert collapsed.n_active_components_ < 2
    assert collapsed.active_components_.shape == (4,)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*latent dimensions are active")
        healthy = VAETransformer(
            n_components=2,
            max_iter=60,
            batch_size=32,
            hidden_layer_sizes=(32,),
            random_state=0,
        ).fit(X_train)
    assert healthy.n_active_components_ == healthy.active_components_.sum() >= 1


def test_kl_warmup_defers_early_stopping(curve):
    X_train, _ = curve
    params = dict(
        n_components=2,
        max_iter=40,
        batch_size=64,
        early_stopping=True,
        tol=1e3,
        n_iter_no_change=1,
        hidden_layer_sizes=(16,),
        random_state=0,
    )
    assert VAETransformer(**params).fit(X_train).n_iter_ == 3
    # not before the warm-up ends, and the patience (1) counts from there
    assert VAETransformer(**params, kl_warmup=12).fit(X_train).n_iter_ == 12 + 1


def test_a_warmup_longer_than_the_fit_warns(curve):
    # the KL weight never reached beta, and nothing said so
    X_train, _ = curve
    params = dict(n_components=2, max_iter=4, hidden_layer_sizes=(8,), random_state=0)
    with pytest.warns(UserWarning, match=r"kl_warmup=10 is longer than the 4 epochs"):
        est = VAETransformer(**params, kl_warmup=10, warm_start=True).fit(X_train)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="kl_warmup")
        VAETransformer(**params, kl_warmup=4).fit(X_train)
        est.set_params(max_iter=6).fit(X_train)  # a continuation: epochs 5 to 10
        fresh = VAETransformer(**params, kl_warmup=10)
        fresh.partial_fit(X_train)  # a stream's warm-up counts its calls
