"""sample(n, given=...): conditional draws of both estimators, and their errors."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.mixture import GaussianMixture

from skvae import AutoencoderTransformer, VAETransformer
from skvae._conditional import GaussianMixtureDensity

#: A 3-d Gaussian: x2 | x1 = a ~ N(0.8 a, 0.36), x3 | x1 = a ~ N(0.5 a, 0.75).
COVARIANCE = np.array([[1.0, 0.8, 0.5], [0.8, 1.0, 0.3], [0.5, 0.3, 1.0]])
LEVEL_MEANS = {"a": -2.0, "b": 0.0, "c": 3.0}


@pytest.fixture(scope="module")
def gaussian():
    rng = np.random.RandomState(0)
    return rng.multivariate_normal(np.zeros(3), COVARIANCE, size=1500)


@pytest.fixture(scope="module")
def gaussian_vae(gaussian):
    return VAETransformer(n_components=2, max_iter=60, random_state=0).fit(gaussian)


@pytest.fixture(scope="module")
def gaussian_ae(gaussian):
    return AutoencoderTransformer(n_components=2, max_iter=60, random_state=0).fit(gaussian)


def make_table(n=1500, seed=0):
    """A table where the level of ``g`` sets the mean of ``y``; ``w`` has NaN."""
    rng = np.random.RandomState(seed)
    g = rng.choice(list(LEVEL_MEANS), n, p=[0.5, 0.3, 0.2])
    y = np.array([LEVEL_MEANS[v] for v in g]) + 0.5 * rng.normal(size=n)
    w = 2 * y + rng.normal(size=n)
    w[rng.rand(n) < 0.1] = np.nan
    flag = y + rng.normal(size=n) > 0
    return pd.DataFrame({"g": g, "y": y, "w": w, "flag": flag})


@pytest.fixture(scope="module")
def table():
    return make_table()


@pytest.fixture(scope="module", params=[VAETransformer, AutoencoderTransformer])
def table_model(request, table):
    return request.param(n_components=2, max_iter=60, random_state=0).fit(table)


def test_vae_reproduces_a_gaussian_conditional_law(gaussian_vae):
    X = gaussian_vae.sample(2000, random_state=0, given={0: 1.0})
    assert np.all(X[:, 0] == 1.0)
    # Exact conditional: means 0.8 and 0.5, variances 0.36 and 0.75.
    np.testing.assert_allclose(X[:, 1:].mean(0), [0.8, 0.5], atol=0.1)
    np.testing.assert_allclose(X[:, 1:].var(0), [0.36, 0.75], rtol=0.25)


def test_vae_conditions_on_a_value_per_sample(gaussian_vae):
    values = np.repeat([-1.5, 1.5], 500)
    X = gaussian_vae.sample(1000, random_state=0, given={0: values})
    np.testing.assert_array_equal(X[:, 0], values)
    low, high = X[:500, 1].mean(), X[500:, 1].mean()
    np.testing.assert_allclose([low, high], [-1.2, 1.2], atol=0.2)


def test_autoencoder_conditional_is_closer_than_unconditional(gaussian_ae):
    given = gaussian_ae.sample(600, random_state=0, given={0: 1.5})
    free = gaussian_ae.sample(600, random_state=0)
    assert np.all(given[:, 0] == 1.5)
    # The conditional mean of x2 is 1.2; the marginal's is 0.
    assert abs(given[:, 1].mean() - 1.2) < 0.4
    assert abs(given[:, 1].mean() - 1.2) < abs(free[:, 1].mean() - 1.2) - 0.5


@pytest.fixture(scope="module")
def joint(table_model):
    """Unconditional draws of the model: its own joint law, to condition by filtering."""
    return table_model.sample(4000, random_state=1)


def test_a_category_sets_a_numeric_mean(table_model, joint):
    for level, mean in LEVEL_MEANS.items():
        X = table_model.sample(400, random_state=0, given={"g": level})
        assert (X["g"] == level).all()
        # The model's own conditional law (its joint, filtered), and the truth's.
        assert abs(X["y"].mean() - joint["y"][joint["g"] == level].mean()) < 0.2, level
        assert abs(X["y"].mean() - mean) < 0.75, level


def test_a_numeric_value_sets_the_category(table_model):
    # Near y = 3 every row is c (20% unconditionally), near y = -2 nearly every
    # row is a (50%). The autoencoder's code density conditions more loosely
    # (0.48-0.56 and 0.77-0.80 over seeds 0-2) than the VAE's posterior
    # (0.84-0.98 and 0.99).
    vae = isinstance(table_model, VAETransformer)
    X = table_model.sample(400, random_state=0, given={"y": 3.0})
    assert (X["y"] == 3.0).all()
    assert (X["g"] == "c").mean() > (0.75 if vae else 0.4)
    X = table_model.sample(400, random_state=0, given={"y": -2.0})
    assert (X["g"] == "a").mean() > (0.95 if vae else 0.65)


def test_table_conditional_keeps_columns_and_dtypes(table_model, table):
    X = table_model.sample(50, random_state=0, given={"g": "b", "flag": True})
    assert list(X.columns) == list(table.columns)
    assert X.dtypes.tolist() == table.dtypes.tolist()
    assert (X["g"] == "b").all() and X["flag"].all()


def test_a_dataframe_of_conditions_one_row_per_sample(table_model):
    given = pd.DataFrame({"g": ["a", "c", "b"], "y": [-2.1, 2.9, 0.3]})
    before = given.copy()
    X = table_model.sample(3, random_state=0, given=given)
    assert X["g"].tolist() == ["a", "c", "b"]
    np.testing.assert_allclose(X["y"], [-2.1, 2.9, 0.3])
    pd.testing.assert_frame_equal(given, before)  # the conditions are not modified


def test_conditional_draws_are_reproducible(table_model):
    first = table_model.sample(20, random_state=3, given={"g": "a"})
    second = table_model.sample(20, random_state=3, given={"g": "a"})
    pd.testing.assert_frame_equal(first, second)


def test_vae_options_and_pickle(gaussian_vae):
    means = gaussian_vae.sample(200, random_state=0, given={0: 1.0}, add_noise=False)
    assert (
        means[:, 1].std()
        < gaussian_vae.sample(200, random_state=0, given={0: 1.0})[:, 1].std()
    )
    restored = pickle.loads(pickle.dumps(gaussian_vae))
    np.testing.assert_array_equal(
        restored.sample(5, random_state=1, given={2: 0.5}),
        gaussian_vae.sample(5, random_state=1, given={2: 0.5}),
    )


def test_code_density_as_prior(gaussian):
    vae = VAETransformer(
        n_components=2, max_iter=40, sample_from="posterior", random_state=0
    ).fit(gaussian)
    X = vae.sample(1000, random_state=0, given={0: 1.0})
    np.testing.assert_allclose(X[:, 1:].mean(0), [0.8, 0.5], atol=0.15)


def test_feature_names_key_an_array_model(gaussian):
    frame = pd.DataFrame(gaussian, columns=["a", "b", "c"])
    vae = VAETransformer(n_components=2, max_iter=5, random_state=0).fit(frame)
    X = vae.sample(5, random_state=0, given={"a": 0.5})
    assert np.all(np.asarray(X)[:, 0] == 0.5)


TABLE_ERRORS = [
    ([("g", "a")], TypeError, "given must be a dict"),
    ({"nope": 1.0}, ValueError, "unknown column 'nope'"),
    ({"g": "z"}, ValueError, "'z' is not a level seen in fit"),
    ({"y": np.nan}, ValueError, "holds missing values"),
    ({"g": None}, ValueError, "holds missing values"),
    ({"y": 1e3}, ValueError, "outside the range the model was fitted on"),
    ({"y": "big"}, TypeError, "must hold numbers"),
    ({"flag": "yes"}, ValueError, "True or False"),
    ({"y": [1.0, 2.0]}, ValueError, "one value per sample"),
    (pd.DataFrame({"g": ["a", "b"]}), ValueError, "given has 2 rows, but n_samples=4"),
    ({}, ValueError, "no conditions"),
]


@pytest.mark.parametrize("given, error, match", TABLE_ERRORS)
def test_bad_conditions_on_a_table(table_model, given, error, match):
    with pytest.raises(error, match=match):
        table_model.sample(4, random_state=0, given=given)


ARRAY_ERRORS = [
    ("x", TypeError, "given must be a dict"),
    ({3: 1.0}, ValueError, "fitted on 3 features"),
    ({"a": 1.0}, ValueError, "unknown feature 'a'"),
    ({0: np.nan}, ValueError, "holds missing values"),
    ({0: np.inf}, ValueError, "infinity"),
    ({0: 50.0}, ValueError, "outside the range the model was fitted on"),
]


@pytest.mark.parametrize("given, error, match", ARRAY_ERRORS)
def test_bad_conditions_on_an_array(gaussian_vae, given, error, match):
    with pytest.raises(error, match=match):
        gaussian_vae.sample(4, random_state=0, given=given)


def test_bernoulli_conditions_must_lie_in_the_unit_interval(digits01):
    vae = VAETransformer(likelihood="bernoulli", max_iter=3, random_state=0).fit(digits01)
    assert vae.sample(2, random_state=0, given={10: 1.0}).shape == (2, 64)
    # fit reads a boolean X as 0/1, and so do conditions on it (True was refused)
    drawn = vae.sample(2, random_state=0, given={10: True, 11: np.array([False, True])})
    np.testing.assert_array_equal(drawn[:, 10:12], [[1.0, 0.0], [1.0, 1.0]])
    with pytest.raises(TypeError, match="must hold numbers"):
        vae.sample(2, random_state=0, given={10: "1"})
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        vae.sample(2, random_state=0, given={10: 2.0})


def test_gaussian_mixture_density_matches_scikit_learn():
    rng = np.random.RandomState(0)
    correlated = rng.multivariate_normal([3, 3], [[0.5, 0.4], [0.4, 0.5]], size=200)
    Z = np.vstack([rng.normal(size=(200, 2)), correlated])
    gmm = GaussianMixture(2, random_state=0).fit(Z)
    density = GaussianMixtureDensity(gmm.weights_, gmm.means_, gmm.covariances_)
    log_p = density.log_prob(torch.as_tensor(Z)).numpy()
    np.testing.assert_allclose(log_p, gmm.score_samples(Z), rtol=1e-10)
    # Candidates come as (K, n, k); a float32 copy gives the same densities.
    batched = density.log_prob(torch.as_tensor(Z).reshape(4, 100, 2)).numpy()
    np.testing.assert_allclose(batched.ravel(), log_p, rtol=1e-10)
    single = density.to("cpu", torch.float32).log_prob(torch.as_tensor(Z).float())
    np.testing.assert_allclose(single.numpy(), log_p, rtol=1e-4)
    draws = density.sample(20000, torch.Generator().manual_seed(0)).numpy()
    np.testing.assert_allclose(draws.mean(0), Z.mean(0), atol=0.1)
    np.testing.assert_allclose(density.marginal_variance().numpy(), draws.var(0), rtol=0.05)


def test_an_array_with_missing_values_is_conditioned_by_index(gaussian):
    X = gaussian.copy()
    X[::7, 2] = np.nan
    vae = VAETransformer(n_components=2, max_iter=30, random_state=0).fit(X)
    out = vae.sample(400, random_state=0, given={0: 1.0})
    assert isinstance(out, np.ndarray) and out.shape == (400, 3)
    assert np.all(out[:, 0] == 1.0)
    assert abs(out[:, 1].mean() - 0.8) < 0.3


def test_integer_columns_take_whole_numbers():
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"n": rng.randint(0, 10, 200), "g": rng.choice(["a", "b"], 200)})
    vae = VAETransformer(n_components=2, max_iter=5, random_state=0).fit(frame)
    out = vae.sample(10, random_state=0, given={"n": 4})
    assert (out["n"] == 4).all() and out["n"].dtype == frame["n"].dtype
    with pytest.raises(ValueError, match="whole numbers"):
        vae.sample(10, random_state=0, given={"n": 4.5})


@pytest.mark.parametrize("Estimator", [VAETransformer, AutoencoderTransformer])
def test_conditional_draws_on_each_device(Estimator, device, table):
    model = Estimator(n_components=2, max_iter=3, device=device, random_state=0)
    model.fit(table.head(200))
    first = model.sample(30, random_state=0, given={"g": "a", "y": -2.0})
    second = model.sample(30, random_state=0, given={"g": "a", "y": -2.0})
    assert (first["g"] == "a").all() and (first["y"] == -2.0).all()
    pd.testing.assert_frame_equal(first, second)


def test_a_given_value_must_fit_the_column_dtype():
    # within the range margin but outside the dtype: int8 wrapped around to -116,
    # and uint8 came back as a float64 column holding -10.0
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(
        {
            "x": rng.randn(40),
            "u": np.r_[0, 254, rng.randint(0, 255, 38)].astype(np.uint8),
            "i8": np.r_[-128, 127, rng.randint(-128, 128, 38)].astype(np.int8),
        }
    )
    vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(frame)
    with pytest.raises(ValueError, match=r"does not fit the column's dtype int8"):
        vae.sample(3, random_state=0, given={"i8": 140})
    with pytest.raises(ValueError, match=r"does not fit the column's dtype uint8"):
        vae.sample(3, random_state=0, given={"u": -10})
    # int64's bound rounds up to 2**63 as a float: 2**63 itself wrapped
    big = pd.DataFrame({"x": rng.randn(40), "h": np.linspace(2**62, 2**63 - 2**12, 40)})
    big["h"] = big["h"].astype(np.int64)
    wide = VAETransformer(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(big)
    with pytest.raises(ValueError, match=r"does not fit the column's dtype int64"):
        wide.sample(3, random_state=0, given={"h": 2**63})
    kept = vae.sample(3, random_state=0, given={"i8": 127, "u": 0})
    assert kept["i8"].dtype == np.int8 and (kept["i8"] == 127).all()
    assert kept["u"].dtype == np.uint8 and (kept["u"] == 0).all()


def test_a_given_level_comes_back_as_the_fitted_level_it_equals():
    # True == 1 and 1.0 == 1: they matched the level 1 but came back as given,
    # True and 1.0, values the column never held
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(
        {"x": rng.randn(60), "m": pd.Series([0, 1, "a"] * 20, dtype=object)}
    )
    vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(frame)
    for value in (True, 1.0, np.int64(1)):
        samples = vae.sample(3, random_state=0, given={"m": value})
        assert [type(v) for v in samples["m"]] == [int] * 3
        assert samples["m"].tolist() == [1, 1, 1]
