"""Mixed-type DataFrames: per-column likelihoods, dtypes, unknown and missing values."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from skvae import AutoencoderTransformer, VAETransformer
from skvae._networks import VAE

ESTIMATORS = [AutoencoderTransformer, VAETransformer]
FAST = dict(n_components=3, max_iter=60, batch_size=64, random_state=0)


def make_frame(n=400, seed=0):
    """Species drive mass, length and a flag; mass and island have missing values."""
    rng = np.random.RandomState(seed)
    species = rng.choice(["adelie", "gentoo", "chinstrap"], n, p=[0.5, 0.3, 0.2])
    centre = pd.Series(species).map({"adelie": 3.0, "gentoo": 5.0, "chinstrap": 7.0})
    mass = centre.to_numpy() + rng.normal(0, 0.3, n)
    frame = pd.DataFrame(
        {
            "species": pd.Categorical(species),
            "mass": mass,
            "length": np.round(mass * 10 + rng.normal(0, 1, n)).astype(np.int64),
            "flag": rng.rand(n) < np.where(species == "chinstrap", 0.9, 0.1),
            "island": pd.Series(rng.choice(["x", "y"], n), dtype=object),
        }
    )
    frame.loc[rng.rand(n) < 0.2, "mass"] = np.nan
    frame.loc[rng.rand(n) < 0.1, "island"] = None
    return frame


@pytest.fixture(scope="module")
def frame():
    return make_frame()


@pytest.fixture(scope="module", params=ESTIMATORS, ids=lambda E: E.__name__)
def fitted(request, frame):
    return request.param(**FAST).fit(frame)


def test_dtypes_round_trip(fitted, frame):
    Z = fitted.transform(frame)
    assert Z.shape == (len(frame), 3) and np.isfinite(Z).all()
    for out in (fitted.inverse_transform(Z), fitted.sample(50, random_state=0)):
        assert isinstance(out, pd.DataFrame)
        assert list(out.columns) == list(frame.columns)
        assert out["species"].dtype == frame["species"].dtype  # same categories
        assert out["length"].dtype == np.int64 and out["flag"].dtype == bool
        assert out["mass"].dtype == np.float64
        assert set(out["species"].dropna()) <= set(frame["species"].cat.categories)
        assert set(out["island"].dropna()) <= {"x", "y"}
    assert list(fitted.feature_names_in_) == list(frame.columns)
    assert fitted.n_features_in_ == 5


def test_reconstructs_the_categories(fitted, frame):
    back = fitted.inverse_transform(fitted.transform(frame))
    assert (back["species"] == frame["species"]).mean() > 0.95
    observed = frame["mass"].notna()
    error = (back["mass"][observed] - frame["mass"][observed]).abs().mean()
    assert error < 0.5  # the species means are 2 apart


def test_samples_keep_the_rates_and_relations(fitted, frame):
    if isinstance(fitted, VAETransformer):  # the prior's holes skew the shares by ~0.1
        fitted = clone(fitted).set_params(sample_from="posterior").fit(frame)
    samples = fitted.sample(4000, random_state=0)
    share = samples["species"].value_counts(normalize=True)
    expected = frame["species"].value_counts(normalize=True)
    assert (share - expected).abs().max() < 0.06
    assert abs(samples["mass"].isna().mean() - frame["mass"].isna().mean()) < 0.08
    by_species = samples.groupby("species", observed=True)["mass"].mean()
    assert by_species["adelie"] < by_species["gentoo"] < by_species["chinstrap"]
    np.testing.assert_array_equal(
        samples["length"], fitted.sample(4000, random_state=0)["length"]
    )


def test_vae_draws_categories_and_missing_values():
    frame = make_frame()
    vae = VAETransformer(**FAST).fit(frame)
    drawn = vae.sample(3000, random_state=1)
    assert 0.05 < drawn["island"].isna().mean() < 0.16  # data: about 0.1
    mean_only = vae.sample(300, random_state=1, add_noise=False)
    assert mean_only["mass"].isna().mean() < 0.05  # most likely: observed
    assert vae.noise_variance_.shape == (2,)  # mass and length


def test_unknown_levels_are_ignored_like_one_hot_encoder(fitted, frame):
    new = frame.head(5).copy()
    new["island"] = pd.Series(["atlantis"] * 5, dtype=object)
    assert np.isfinite(fitted.transform(new)).all()
    scores = fitted.score_samples(new)
    assert np.isfinite(scores).all()


def test_missing_values_where_fit_saw_none(fitted, frame):
    new = frame.head(4).copy()
    new["length"] = np.nan  # no missing lengths in fit: imputed with the mean
    new["species"] = np.nan  # no missing species in fit: all-zero one-hot
    assert np.isfinite(fitted.transform(new)).all()
    assert np.isfinite(fitted.score_samples(new)).all()


def test_score_samples_rank_odd_rows_low():
    frame = make_frame()
    vae = VAETransformer(**{**FAST, "max_iter": 100}).fit(frame)
    odd = frame.head(50).copy()
    odd["mass"] = odd["mass"] + 4.0  # far from every species' centre
    assert vae.score(odd) < vae.score(frame.head(50)) - 5


def test_explicit_categorical_features():
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(
        {"code": rng.choice([10, 20, 30], 200), "value": rng.normal(size=200)}
    )
    for spec in (["code"], [True, False]):
        est = AutoencoderTransformer(**{**FAST, "categorical_features": spec}).fit(frame)
        out = est.sample(100, random_state=0)
        assert set(out["code"]) <= {10, 20, 30} and out["code"].dtype == np.int64
    numeric = AutoencoderTransformer(**FAST).fit(frame)  # from_dtype: all numeric
    assert isinstance(numeric.sample(3, random_state=0), np.ndarray)


def test_numpy_input_is_unchanged(frame):
    X = np.random.RandomState(0).normal(size=(50, 3))
    est = VAETransformer(**FAST).fit(X)
    assert isinstance(est.inverse_transform(est.transform(X)), np.ndarray)


@pytest.mark.parametrize(
    "Estimator, params, X, match",
    [
        (VAETransformer, {"categorical_features": ["a"]}, np.ones((5, 2)), "DataFrame"),
        (
            VAETransformer,
            {"categorical_features": np.array([True, False])},
            np.ones((5, 2)),
            "DataFrame",
        ),
        (VAETransformer, {"categorical_features": ["zzz"]}, "frame", "not in X"),
        (VAETransformer, {"categorical_features": [True]}, "frame", "5 entries"),
        (VAETransformer, {"likelihood": "bernoulli"}, "frame", "applies to numeric arrays"),
        (AutoencoderTransformer, {"loss": "bce"}, "frame", "applies to numeric arrays"),
    ],
)
def test_bad_table_input(Estimator, params, X, match, frame):
    X = frame if isinstance(X, str) else X
    with pytest.raises(ValueError, match=match):
        Estimator(**{**FAST, **params}).fit(X)


def test_bad_input_after_fit(fitted, frame):
    with pytest.raises(ValueError, match="pass a DataFrame"):
        fitted.transform(frame.to_numpy())
    with pytest.raises(ValueError, match="feature names"):
        fitted.transform(frame.rename(columns={"mass": "weight"}))
    with pytest.raises(ValueError, match="not numbers"):
        fitted.transform(frame.assign(mass="heavy"))
    with pytest.raises(TypeError, match="cannot model"):
        AutoencoderTransformer(**FAST).fit(frame.assign(when=pd.Timestamp("2020-01-01")))


def test_categorical_likelihood_against_hand_computation():
    likelihood = {
        "name": "blocks",
        "blocks": [
            {"columns": [0], "likelihood": {"name": "gaussian", "n_features": 1}},
            {"columns": [1], "likelihood": {"name": "bernoulli", "n_features": 1}},
            {"columns": [2, 3, 4], "likelihood": {"name": "categorical", "n_features": 3}},
        ],
    }
    torch.manual_seed(0)
    vae = VAE(5, 2, (4,), "relu", 0.0, likelihood).double().eval()
    x = torch.tensor(
        [[0.5, 1.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0, 1.0]], dtype=torch.float64
    )
    eps = torch.zeros(2, dtype=torch.float64)
    mean, _ = vae.posterior(x)
    out = vae.decoder(mean).detach().numpy()
    var = vae.likelihood.likelihoods[0].variance().numpy()
    xn = x.numpy()
    gauss = 0.5 * ((xn[:, 0] - out[:, 0]) ** 2 / var[0] + np.log(2 * np.pi * var[0]))
    p = 1 / (1 + np.exp(-out[:, 1]))
    bern = -(xn[:, 1] * np.log(p) + (1 - xn[:, 1]) * np.log(1 - p))
    logits = out[:, 2:5]
    log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    cat = -(log_softmax * xn[:, 2:5]).sum(1)
    terms = vae.loss(x, eps)
    np.testing.assert_allclose(terms.reconstruction.detach().numpy(), gauss + bern + cat)


def test_pipeline_and_grid_search_with_a_frame(frame):
    pipe = Pipeline([("vae", VAETransformer(max_iter=20, batch_size=64, random_state=0))])
    search = GridSearchCV(pipe, {"vae__n_components": [1, 3]}, cv=2).fit(frame)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    out = search.best_estimator_.set_output(transform="pandas").transform(frame)
    assert list(out.columns)[0] == "vaetransformer0"


def test_save_load_and_pickle_keep_the_table(fitted, frame, tmp_path):
    import pickle

    for loaded in (
        type(fitted).load(fitted.save(tmp_path / "model.skvae")),
        pickle.loads(pickle.dumps(fitted)),
    ):
        np.testing.assert_array_equal(loaded.transform(frame), fitted.transform(frame))
        pd.testing.assert_frame_equal(
            loaded.sample(20, random_state=0), fitted.sample(20, random_state=0)
        )
