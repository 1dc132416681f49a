"""Mixed-type DataFrames: per-column likelihoods, dtypes, unknown and missing values."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import ks_2samp, kstest, norm
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KernelDensity
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError

import skvae._base
import skvae._likelihoods
import skvae._tabular
from skvae import AutoencoderTransformer, VAETransformer
from skvae._networks import VAE
from skvae._tabular import (
    Column,
    Table,
    _novel_level_probability,
    decoding_order,
    find_functions,
    fit_numeric,
    from_scores,
    score_cells,
    to_scores,
)
from skvae._training import dequantizer
from skvae.exceptions import NonFiniteLossError, PosteriorCollapseWarning

# Tiny fits stop before they converge; this file tests the table, not the fit.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

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
    out = numeric.sample(3, random_state=0)  # an all-numeric frame is a table too
    assert isinstance(out, pd.DataFrame) and out["code"].dtype == np.int64


def test_categorical_features_names_in_any_collection():
    # a set was silently ignored (its mask came out all False), and tuple names,
    # as MultiIndex columns have, raised "unhashable type: 'list'"
    rng = np.random.RandomState(0)
    code, value = rng.choice([10, 20, 30], 60), rng.normal(size=60)
    frame = pd.DataFrame({"code": code, "value": value})
    tuples = pd.DataFrame({("a", 1): code, ("a", 2): value})
    for X, spec in [
        (frame, {"code"}),
        (frame, np.array(["code"], dtype=object)),
        (frame, np.array([True, False])),
        (tuples, [("a", 1)]),
        (tuples, {("a", 1)}),
    ]:
        table = Table(X, spec)
        assert [c.kind for c in table.columns] == ["categorical", "numeric"], spec
    with pytest.raises(ValueError, match=r"column names or a boolean mask, got \[\[1"):
        Table(frame, [[1, 2]])


def test_a_float32_frame_gives_float32_outputs():
    # codes and scores came back float64 ("outputs have the input's dtype"), as
    # check_array reads a DataFrame whose columns are all float32
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(rng.normal(size=(60, 3)).astype(np.float32), columns=list("abc"))
    mixed = frame.assign(k=rng.choice(["x", "y"], 60))
    for Estimator in (VAETransformer, AutoencoderTransformer):
        est = _quiet_fit(Estimator(**TINY), frame)
        assert est.transform(frame).dtype == np.float32
        assert est.score_samples(frame).dtype == np.float32
        assert est.transform(frame.astype(np.float64)).dtype == np.float64
        est = _quiet_fit(Estimator(**TINY), mixed)
        assert est.transform(mixed).dtype == np.float64


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


TINY = dict(n_components=2, hidden_layer_sizes=(8,), max_iter=3, random_state=0)


def small_frame(n=40, seed=0):
    rng = np.random.RandomState(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "flag": rng.rand(n) < 0.5,
            "text": pd.Series(rng.choice(["a", "b", "c"], n), dtype=object),
        }
    )


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("size", [1e200, 1.7e308])
def test_huge_numeric_column_is_scaled_without_overflow(Estimator, size):
    frame = small_frame()
    frame["x"] = frame["x"] / frame["x"].abs().max() * size  # largest |x| is size
    est = Estimator(**TINY).fit(frame)
    assert np.isfinite(est.transform(frame)).all()
    assert np.isfinite(est.score_samples(frame)).all()
    for out in (
        est.inverse_transform(est.transform(frame)),
        est.sample(500, random_state=0),
    ):
        relative = out["x"].to_numpy() / size
        assert np.isfinite(relative).all() and 1e-3 < np.abs(relative).mean() < 10


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("dtype", ["int64", "float64"])
def test_a_column_too_wide_for_its_steps_is_refused_by_name(Estimator, dtype):
    # One value of 2**62 among small integers: standardized, the integers were one
    # value, and the VAE failed on an internal check ("cells of feature 1: only
    # the first low and the last high may be None").
    frame = small_frame()
    wide = np.r_[2**62, np.arange(len(frame) - 1) % 100].astype(dtype)
    with pytest.raises(ValueError, match="Column 'x' spans too wide a range.*logarithm"):
        Estimator(**TINY).fit(frame.assign(x=wide))
    Estimator(**TINY).fit(frame.assign(x=np.where(wide > 100, 2**40, wide)))


def test_the_ends_of_the_range_score_alike_to_rounding():
    # The map's linear tails begin at the ends of the fitted range with gentler
    # slopes than the map's own there: the largest value plus 1e-12 (as float32
    # rounding may move it) scored 1.7 nats below the value itself.
    frame = small_frame(300)  # more than 50 values: a continuous map
    vae = VAETransformer(**TINY).fit(frame)
    for end, step in [(frame["x"].idxmax(), 1e-12), (frame["x"].idxmin(), -1e-12)]:
        row = frame.loc[[end]]
        beyond = row.assign(x=row["x"] + step)
        assert vae.score_samples(beyond) == pytest.approx(vae.score_samples(row), abs=1e-9)
    far = frame.loc[[frame["x"].idxmax()]]
    assert vae.score_samples(far.assign(x=far["x"] + 1.0)) < vae.score_samples(far)
    # the tolerance is the range's, not the values' size: 1e7 plus a range of 1
    shifted = frame.assign(x=1e7 + frame["x"] / (frame["x"].max() - frame["x"].min()))
    vae = VAETransformer(**TINY).fit(shifted)
    top = shifted.loc[[shifted["x"].idxmax()]]
    assert vae.score_samples(top.assign(x=top["x"] + 0.5)) < vae.score_samples(top) - 1


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_values_float32_cannot_hold_name_the_column(Estimator):
    est = Estimator(**TINY).fit(small_frame())
    with pytest.raises(ValueError, match="Column 'x' holds values too far .* float32"):
        est.transform(small_frame().assign(x=1e300))


@pytest.mark.parametrize(
    "column, value",
    [
        ("flag", pd.NA),
        ("flag", None),
        ("flag", np.nan),
        ("length", pd.NA),
        ("length", None),
        ("species", pd.NA),
        ("species", None),
    ],
)
def test_missing_values_where_fit_saw_none_are_imputed(fitted, frame, column, value):
    new = frame.head(4).astype({column: object})
    new.loc[new.index[0], column] = value  # no missing values in fit: imputed
    Z = fitted.transform(new)
    assert np.isfinite(Z).all()
    assert np.isfinite(fitted.score_samples(new)).all()
    assert not fitted.inverse_transform(Z)[["length", "flag"]].isna().any().any()


def test_nullable_boolean_missing_where_fit_saw_none(fitted, frame):
    new = frame.head(4).astype({"flag": "boolean"})
    new.loc[new.index[:2], "flag"] = pd.NA
    assert np.isfinite(fitted.transform(new)).all()
    assert np.isfinite(fitted.score_samples(new)).all()


@pytest.mark.parametrize("value", ["yes", "True", 2, 0.5, 1j])
def test_other_values_in_a_boolean_column_name_it(fitted, frame, value):
    new = frame.head(4).astype({"flag": object})
    new.loc[new.index[1], "flag"] = value
    with pytest.raises(ValueError, match=r"Column 'flag' was boolean in fit .* True or"):
        fitted.transform(new)


def test_numbers_zero_and_one_pass_for_a_boolean_column(fitted, frame):
    new = frame.head(4)
    as_int = new.assign(flag=new["flag"].astype(np.int64))
    np.testing.assert_array_equal(fitted.transform(as_int), fitted.transform(new))


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame([[1.0, "a", 2.0], [2.0, "b", 3.0]], columns=["x", "t", "x"]),
        pd.DataFrame([[1.0, "a", "b"], [2.0, "b", "c"]], columns=["x", "t", "t"]),
        pd.DataFrame([[1.0, 2.0], [2.0, 3.0]], columns=["x", "x"]),  # numbers only
    ],
)
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_duplicated_column_names_are_refused(Estimator, frame):
    with pytest.raises(ValueError, match=r"must be unique.*\['(x|t)'\]"):
        Estimator(**TINY).fit(frame)


def test_columns_missing_at_transform_with_non_string_names():
    frame = small_frame().set_axis([0, 1, 2], axis=1)  # no feature_names_in_
    est = AutoencoderTransformer(**TINY).fit(frame)
    with pytest.raises(ValueError, match=r"lacks columns seen in fit: \[2\]"):
        est.transform(frame.set_axis([0, 1, 3], axis=1))


@pytest.mark.parametrize("cells", [[[1], [2]], [{"a": 1}, {"b": 2}], [{1}, {2}]])
def test_unhashable_cells_name_the_column(cells):
    frame = small_frame()
    bad = frame.assign(text=pd.Series(cells * (len(frame) // 2), dtype=object))
    with pytest.raises(TypeError, match="Column 'text' holds values that cannot be"):
        AutoencoderTransformer(**TINY).fit(bad)
    est = AutoencoderTransformer(**TINY).fit(frame)
    with pytest.raises(TypeError, match="Column 'text' holds values that cannot be"):
        est.transform(bad)


def test_complex_column_cannot_be_modelled():
    frame = small_frame().assign(c=1 + 1j)
    with pytest.raises(TypeError, match="Column 'c' has dtype complex128"):
        VAETransformer(**TINY).fit(frame)


def test_small_integer_dtypes_keep_their_dtype_and_range():
    frame = small_frame(400).assign(u=np.uint8(0), i=np.int8(127))
    frame.loc[::2, "u"], frame.loc[::2, "i"] = 1, 126
    est = VAETransformer(**{**TINY, "max_iter": 20}).fit(frame)
    samples = est.sample(2000, random_state=0)
    assert samples["u"].dtype == np.uint8 and samples["i"].dtype == np.int8
    assert samples["u"].min() == 0 and samples["u"].max() < 10
    assert samples["i"].max() == 127 and samples["i"].min() > 110


ODD_COLUMNS = {
    "Int64 with NA": pd.array([1, None, 3, 4] * 10, dtype="Int64"),
    "Float64 with NA": pd.array([0.5, None, 1.5, 2.0] * 10, dtype="Float64"),
    "boolean with NA": pd.array([True, None, False, True] * 10, dtype="boolean"),
    "boolean": pd.array([True, False, False, True] * 10, dtype="boolean"),
    "string with NA": pd.array(["u", None, "v", "u"] * 10, dtype="string"),
    "category with NaN": pd.Categorical(["u", None, "v", "w"] * 10),
    "numbers and strings": pd.Series([1, "a", 2.5, None] * 10, dtype=object),
    "all NaN": np.full(40, np.nan),
    "all None": pd.Series([None] * 40, dtype=object),
}


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("name", list(ODD_COLUMNS))
def test_odd_columns_give_finite_outputs_and_leave_the_input(Estimator, name):
    frame = small_frame().assign(odd=ODD_COLUMNS[name])
    before = frame.copy(deep=True)
    est = Estimator(**TINY).fit(frame)
    Z = est.transform(frame)
    assert np.isfinite(Z).all() and np.isfinite(est.score_samples(frame)).all()
    for out in (est.inverse_transform(Z), est.sample(10, random_state=0)):
        assert out["odd"].dtype == frame["odd"].dtype
        assert np.isfinite(out["x"]).all()
    pd.testing.assert_frame_equal(frame, before)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_bad_transform_input_leaves_the_input(Estimator):
    frame = small_frame()
    est = Estimator(**TINY).fit(frame)
    new = frame.head(4).astype({"flag": object})
    new.loc[new.index[0], "flag"] = None
    new.loc[new.index[1], "x"] = np.nan
    before = new.copy(deep=True)
    est.transform(new)
    est.score_samples(new)
    pd.testing.assert_frame_equal(new, before)


@pytest.mark.parametrize(
    "column, match",
    [
        (pd.date_range("2020", periods=40), "datetime64"),
        (pd.date_range("2020", periods=40, tz="UTC"), "datetime64"),
        (pd.to_timedelta(range(40), unit="D"), "timedelta64"),
        (pd.period_range("2020", periods=40, freq="D"), "period"),
    ],
)
def test_time_columns_cannot_be_modelled(column, match):
    with pytest.raises(TypeError, match=f"Column 'when' has dtype {match}.*cannot model"):
        AutoencoderTransformer(**TINY).fit(small_frame().assign(when=column))
    if match != "period":  # the message shows how to make numbers of it, and it works
        frame = small_frame().assign(when=column)
        with pytest.raises(TypeError, match=r"days since its start, say: \(X\['when'\]"):
            AutoencoderTransformer(**TINY).fit(frame)
        days = (frame["when"] - frame["when"].min()) / pd.Timedelta(days=1)
        assert days.dtype == np.float64 and days.iloc[1] == 1.0


def test_integers_beyond_float64_precision_warn():
    # int64 timestamps in nanoseconds, 64-bit identifiers: float64 rounds them,
    # so samples left the fitted values and range by up to the float spacing
    rng = np.random.RandomState(0)
    frame = small_frame().assign(
        ns=np.int64(1_700_000_000_000_000_000) + rng.randint(0, 10**9, 40),
        big=pd.array([2**64 - 1] * 40, dtype="UInt64"),
    )
    with pytest.warns(UserWarning, match=r"columns 'ns', 'big' hold values beyond 2\*\*53"):
        Table(frame, None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Table(frame.assign(ns=frame["ns"] - frame["ns"].min(), big=1), None)


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_values_name_the_column(value):
    frame = small_frame()
    bad = frame.assign(x=np.r_[value, frame["x"].to_numpy()[1:]])
    with pytest.raises(ValueError, match="infinity in column 'x'"):
        AutoencoderTransformer(**TINY).fit(bad)
    est = AutoencoderTransformer(**TINY).fit(frame)
    with pytest.raises(ValueError, match="infinity in column 'x'"):
        est.transform(bad)


# --------------------------------------------------- per-column marginal models

TRANSFORMS = ["quantile", "mixture", "standard"]
MARGINAL = dict(n_components=2, hidden_layer_sizes=(16,), max_iter=30, random_state=0)


def skewed_frame(n=600, seed=0):
    """Columns a single Gaussian gets wrong: skewed, counts, bounded, bimodal, atoms."""
    rng = np.random.RandomState(seed)
    bimodal = np.where(rng.rand(n) < 0.5, rng.normal(-4, 0.5, n), rng.normal(4, 0.5, n))
    amount = np.where(rng.rand(n) < 0.6, 0.0, rng.lognormal(3, 1, n))
    return pd.DataFrame(
        {
            "price": rng.lognormal(0, 1.2, n),
            "count": rng.poisson(1.5, n).astype(np.int64),
            "share": rng.beta(0.5, 0.5, n),
            "bimodal": bimodal,
            "amount": amount,  # 60% exactly 0, the rest heavy-tailed
            "age": rng.choice([17.5, 22.0, 27.0, 32.0, 37.0, 42.0], n),
        }
    )


@pytest.fixture(scope="module")
def skewed():
    return skewed_frame()


@pytest.fixture(scope="module")
def skewed_models(skewed):
    # The columns are independent: the codes collapse, and in 30 epochs the
    # continuous columns' decoded means had not settled beside the discrete
    # ones scored as cells (KS up to 0.13 against 0.02-0.05 without cells);
    # early stopping ends these at about 90 epochs.
    params = {**MARGINAL, "max_iter": 120}
    return {
        t: VAETransformer(**params, numeric_transform=t).fit(skewed) for t in TRANSFORMS
    }


@pytest.fixture(scope="module")
def skewed_vae(skewed_models):
    return skewed_models["quantile"]


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_samples_keep_range_dtype_and_sign(transform, skewed_models, skewed):
    samples = skewed_models[transform].sample(3000, random_state=0)
    assert (samples.dtypes == skewed.dtypes).all()
    for name in skewed.columns:
        assert samples[name].min() >= skewed[name].min(), name
        assert samples[name].max() <= skewed[name].max(), name
    assert samples.notna().all().all()  # no missing value where fit saw none
    assert set(samples["age"]) <= set(skewed["age"])  # a discrete column's values
    assert set(samples["count"]) <= set(skewed["count"])


@pytest.mark.parametrize("transform", ["quantile", "mixture"])
def test_marginals_match_the_data_where_one_gaussian_cannot(
    transform, skewed_models, skewed
):
    ours = skewed_models[transform].sample(3000, random_state=0)
    theirs = skewed_models["standard"].sample(3000, random_state=0)
    for name in ("price", "bimodal", "share"):
        ks = ks_2samp(ours[name], skewed[name]).statistic
        assert ks < 0.1, (name, ks)
        assert ks < ks_2samp(theirs[name], skewed[name]).statistic, name
    zeros = (ours["amount"] == 0).mean()  # the atom at 0 is sampled as exactly 0
    assert abs(zeros - (skewed["amount"] == 0).mean()) < 0.06


def test_default_is_the_quantile_transform(skewed):
    vae = VAETransformer(**{**MARGINAL, "max_iter": 2}).fit(skewed)
    assert {c.transform for c in vae._table.columns} == {"quantile"}
    custom = VAETransformer(
        **{**MARGINAL, "max_iter": 2}, numeric_transform={"price": "standard"}
    ).fit(skewed)
    kinds = {c.name: c.transform for c in custom._table.columns}
    assert kinds["price"] == "standard" and kinds["share"] == "quantile"


@pytest.mark.parametrize(
    "value, error, match",
    [
        ({"nope": "quantile"}, ValueError, "names columns not in X"),
        ({"price": "log"}, InvalidParameterError, "dict whose values are among"),
        ("log", InvalidParameterError, "numeric_transform"),
    ],
)
def test_bad_numeric_transform(value, error, match, skewed):
    with pytest.raises(error, match=match):
        VAETransformer(**MARGINAL, numeric_transform=value).fit(skewed)
    if error is InvalidParameterError:  # whatever X is: it was accepted for an array
        numbers = skewed.select_dtypes("number").to_numpy(dtype=float)
        with pytest.raises(error, match=match):
            VAETransformer(**MARGINAL, numeric_transform=value).fit(numbers)


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("name", ["price", "bimodal", "amount", "count", "age"])
def test_column_maps_are_monotone_with_the_right_jacobian(transform, name, skewed):
    values = skewed[name].to_numpy(dtype=float)
    integer = skewed[name].dtype.kind == "i"
    column = Column(name, "numeric", skewed[name].dtype, 0, integer=integer)
    fit_numeric(column, values, transform)
    span = values.max() - values.min()
    x = np.linspace(values.min() - 0.2 * span, values.max() + 0.2 * span, 4001)
    z, log_jacobian = to_scores(column, x)
    assert np.isfinite(z).all() and np.isfinite(log_jacobian).all()
    assert (np.diff(z) > 0).all()  # strictly increasing: a bijection
    h = 1e-6 * span  # away from the knots the derivative is exp(log_jacobian)
    numeric = (to_scores(column, x + h)[0] - to_scores(column, x - h)[0]) / (2 * h)
    smooth = np.abs(np.log(numeric) - log_jacobian) < 1e-3
    assert smooth.mean() > 0.95
    if column.point is not None:  # a point mass has its own flag, not a score
        values = values[values != column.point]
    back = from_scores(column, to_scores(column, values)[0])
    if column.atoms is not None and column.atoms.size == np.unique(values).size:
        np.testing.assert_array_equal(back, values)  # discrete: exactly the values
    else:
        np.testing.assert_allclose(back, values, rtol=1e-6, atol=1e-9 * span)


@pytest.mark.parametrize("transform", ["quantile", "mixture"])
def test_one_column_score_is_a_density_in_original_units(transform):
    rng = np.random.RandomState(0)
    train = pd.DataFrame({"x": rng.gamma(2.0, 3.0, 800)})
    test = pd.DataFrame({"x": rng.gamma(2.0, 3.0, 400)})
    vae = VAETransformer(
        n_components=1,
        hidden_layer_sizes=(8,),
        max_iter=40,
        random_state=0,
        numeric_transform=transform,
    ).fit(train)
    grid = np.linspace(-5, 80, 6000)
    density = np.exp(vae.score_samples(pd.DataFrame({"x": grid})))
    mass = np.trapezoid(density, grid)
    assert 0.9 < mass < 1.02  # the IWAE bound is a little below log p(x)
    kde = KernelDensity(bandwidth=1.0).fit(train[["x"]])
    ours, reference = vae.score(test), kde.score_samples(test[["x"]]).mean()
    assert abs(ours - reference) < 0.3, (ours, reference)
    shifted = VAETransformer(**vae.get_params()).fit(train * 1000)  # units: - log 1000
    assert abs(shifted.score(test * 1000) - (ours - np.log(1000))) < 0.1


def test_autoencoder_scores_are_not_densities(skewed):
    ae = AutoencoderTransformer(**MARGINAL).fit(skewed)
    encoded = ae._table.encode(skewed)
    x = torch.as_tensor(encoded, dtype=torch.float32, device=ae.device_)
    expected = ae.module_.score(x, None).detach().cpu().numpy()
    np.testing.assert_allclose(ae.score_samples(skewed), expected, rtol=1e-4, atol=1e-4)


def test_values_beyond_the_fitted_range_score_low_but_finite(skewed_vae, skewed):
    far = skewed.head(3).assign(price=[1e3, 1e4, -5.0])
    scores = skewed_vae.score_samples(far)
    assert np.isfinite(scores).all()
    assert (scores < skewed_vae.score_samples(skewed.head(3))).all()


def zero_inflated_frame(n=800, share=0.05, seed=0):
    """Two related columns and an amount that is exactly 0 in all but ``share``."""
    rng = np.random.RandomState(seed)
    a = rng.normal(size=n)
    gain = np.where(rng.rand(n) < share, rng.lognormal(8, 1, n), 0.0)
    return pd.DataFrame({"a": a, "b": a + 0.5 * rng.normal(size=n), "gain": gain})


def test_heavy_atoms_of_columns_with_missing_values_are_spread_for_training():
    # (the training of VAEs loaded from files written before cells, which keep
    # training as they were fitted)
    frame = zero_inflated_frame(n=4000, share=0.1)
    frame["count"] = np.random.RandomState(1).poisson(0.3, 4000).astype(float)  # 74% 0
    frame["level"] = np.arange(4000) % 2  # two values of 50% each: not spread
    frame.loc[::7, "count"] = np.nan  # scored 0, inside the zeros' cell: not spread
    frame.loc[::11, "gain"] = np.nan  # (a column without: the zeros get a flag)
    table = Table(frame, None)
    idx = torch.as_tensor(np.random.RandomState(0).permutation(4000))  # a shuffled batch
    encoded = table.encode(frame)
    cpu = torch.device("cpu")
    spread = dequantizer(table.heavy_atoms(encoded), cpu, cpu)
    frame, encoded = frame.iloc[idx.numpy()].reset_index(drop=True), encoded[idx.numpy()]
    x = torch.as_tensor(encoded, dtype=torch.float32)
    out = spread(x, idx, torch.Generator().manual_seed(0)).numpy()
    # every entry stays in its value's cell: the rows decode as before
    pd.testing.assert_frame_equal(table.decode(out), table.decode(x.numpy()))
    zero = (frame[["gain", "count"]] == 0).to_numpy()
    for name, heavy in zip(("gain", "count"), zero.T):
        j = next(c.start for c in table.columns if c.name == name)
        np.testing.assert_array_equal(out[~heavy, j], encoded[~heavy, j].astype(np.float32))
        # the zeros' one score becomes a draw uniform in probability over their cell
        p = norm.cdf(out[heavy, j])
        assert np.unique(encoded[heavy, j]).size == 1 and np.unique(p).size == heavy.sum()
        assert kstest((p - p.min()) / (p.max() - p.min()), "uniform").statistic < 0.03
    missing = frame["count"].isna().to_numpy()
    j = next(c.start for c in table.columns if c.name == "count")
    assert missing.any() and (encoded[missing, j] == 0).all()
    assert (out[missing, j] == 0).all()
    unspread = [c.start for c in table.columns if c.name in ("a", "b", "level")]
    np.testing.assert_array_equal(out[:, unspread], encoded[:, unspread].astype(np.float32))
    again = spread(x, idx, torch.Generator().manual_seed(1)).numpy()
    assert not np.array_equal(out, again)  # fresh draws each time
    rest = frame[["a", "level"]]
    assert Table(rest, None).heavy_atoms(Table(rest, None).encode(rest)) is None


def test_discrete_values_are_scored_as_cells_of_their_scores():
    rng = np.random.RandomState(0)
    frame = zero_inflated_frame(n=1000, share=0.1)
    frame.loc[::11, "gain"] = np.nan  # missing values: the zeros are an atom, no point
    frame["year"] = rng.choice([2007, 2008, 2009], 1000)
    table = Table(frame, None)
    a, gain, year = table.columns[0], table.columns[2], table.columns[3]
    assert score_cells(a) is None  # a continuous column without atoms
    # the zeros' cell is open below (the scores beyond the range decode to 0)
    lows, highs = score_cells(gain)  # the CDF at the cells' ends
    assert len(lows) == 1 and lows[0] is None and 0.5 < highs[0] < 0.98
    lows, highs = score_cells(year)
    assert lows[0] is None and highs[-1] is None and lows[1:] == highs[:-1]
    assert set(highs[:-1]) <= set(year.cdf)  # read off the stored CDF: exact in files
    # each year's score lies inside its own cell, which holds its share
    encoded = table.encode(frame)
    cut = np.searchsorted(norm.ppf(highs[:-1]), encoded[:, year.start])
    np.testing.assert_array_equal(cut, frame["year"].to_numpy() - 2007)
    shares = np.diff([0.0, *highs[:-1], 1.0])
    expected = frame["year"].value_counts(normalize=True).sort_index().to_numpy()
    np.testing.assert_allclose(shares, expected, atol=2 / 1000)
    description = table.likelihood("gaussian", {})["blocks"][0]["likelihood"]
    assert description["name"] == "interval_gaussian"
    assert [c is not None for c in description["cells"]] == [False, False, True, True]
    # squared error (the autoencoder) and tables of files from before keep points
    assert table.likelihood("squared_error", {})["blocks"][0]["likelihood"]["name"] == (
        "squared_error"
    )
    old = Table.from_state({**table.to_state(), "censored": False})
    assert old.likelihood("gaussian", {})["blocks"][0]["likelihood"]["name"] == "gaussian"
    assert Table.from_state(table.to_state()).censored


def test_an_independent_discrete_column_keeps_its_shares_in_samples():
    # Scored at their three scores, a uniform year's Gaussian shrank to their
    # spread (variance 0.6) and the middle year took 41-46% of the samples.
    rng = np.random.RandomState(0)
    frame = zero_inflated_frame(n=600, share=0.1)
    frame["year"] = rng.choice([2007, 2008, 2009], 600)
    frame.loc[::11, "gain"] = np.nan  # the zeros' atom, in a column with missing values
    vae = VAETransformer(**{**MARGINAL, "max_iter": 200}).fit(frame)
    samples = vae.sample(4000, random_state=0)
    shares = samples["year"].value_counts(normalize=True).sort_index()
    expected = frame["year"].value_counts(normalize=True).sort_index()
    assert shares.index.tolist() == [2007, 2008, 2009]
    # the old scores gave the middle year 0.41 (data 0.33), the last 0.27 (0.31)
    assert abs(shares[2008] - expected[2008]) < 0.03, (shares, expected)
    assert (shares - expected).abs().max() < 0.045, (shares, expected)
    share = (frame["gain"] > 0).sum() / frame["gain"].notna().sum()
    sampled = (samples["gain"] > 0).sum() / samples["gain"].notna().sum()
    assert 0.6 * share < sampled < 1.4 * share, (share, sampled)


def test_a_value_holding_most_of_a_column_gets_its_own_flag():
    frame = zero_inflated_frame(n=1000, share=0.2)
    frame["n"] = np.where(np.arange(1000) % 10 < 7, 3, np.arange(1000) % 5).astype(np.int8)
    table = Table(frame, None)
    gain, n = table.columns[2], table.columns[3]
    assert (gain.point, n.point, n.point_width) == (0.0, 3.0, 1.0)
    assert gain.width == n.width == 2 and table.columns[0].point is None
    encoded = table.encode(frame)
    np.testing.assert_array_equal(encoded[:, gain.start + 1], frame["gain"] == 0)
    assert (encoded[frame["gain"] == 0, gain.start] == 0).all()
    pd.testing.assert_frame_equal(table.decode(encoded), frame)  # dtypes too
    # the point's density: its flag's probability spread over its width
    alone = Table(frame[["gain"]], None)
    (column,) = alone.columns
    assert column.point_width == frame.loc[frame["gain"] > 0, "gain"].min()
    at = (frame["gain"] == 0).to_numpy()
    jacobian = alone.log_jacobian(frame[["gain"]])
    np.testing.assert_allclose(jacobian[at], -np.log(column.point_width))
    np.testing.assert_allclose(jacobian[~at], to_scores(column, frame["gain"][~at])[1])
    assert table.signature != Table(frame.assign(gain=frame["gain"] + 1), None).signature


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_a_rare_non_zero_share_survives_sampling(Estimator):
    # 4% of non-zero amounts: a Gaussian fitted to the normal scores of the
    # zeros (one point) and of a far tail sampled next to none of them
    frame = zero_inflated_frame()
    share = (frame["gain"] > 0).mean()
    model = Estimator(**{**MARGINAL, "max_iter": 60}).fit(frame)
    sampled = (model.sample(4000, random_state=0)["gain"] > 0).mean()
    assert 0.6 * share < sampled < 1.4 * share, (share, sampled)


def test_points_at_the_edges_of_their_dtype_and_units(tmp_path):
    # a point at int64's max wrapped to its min; huge gaps made its width inf
    rng = np.random.RandomState(0)
    big = np.where(rng.rand(300) < 0.7, np.iinfo(np.int64).max, rng.randint(0, 99, 300))
    huge = np.where(rng.rand(300) < 0.6, 0.5, rng.choice([-1.6e308, 1.6e308], 300))
    frame = pd.DataFrame({"big": big.astype(np.int64), "huge": huge, "x": rng.randn(300)})
    vae = _quiet_fit(VAETransformer(**TINY), frame)
    samples = vae.sample(500, random_state=0)
    assert samples["big"].min() >= 0 and (samples["big"] > 2**62).mean() > 0.5
    assert np.isfinite(vae._table.columns[1].point_width)
    scores = vae.score_samples(frame)
    assert np.isfinite(scores).all()
    loaded = VAETransformer.load(vae.save(tmp_path / "edges.skvae"))
    np.testing.assert_array_equal(loaded.score_samples(frame), scores)


def test_a_point_is_gated_only_by_a_rule_with_support():
    rng = np.random.RandomState(0)
    has = (rng.rand(1000) < 0.3).astype(int)  # amt is 0 exactly when has is 0
    amt = np.where(has == 1, rng.uniform(50, 150, 1000).round(1), 0.0)
    sparse = np.where(rng.rand(1000, 6) < 0.1, rng.rand(1000, 6), 0.0)  # independent
    frame = pd.DataFrame(
        {"has": has, "amt": amt, **{f"s{k}": sparse[:, k] for k in range(6)}}
    )
    table = Table(frame, None)
    assert [(g["column"], g["gate"]) for g in table.gates] in ([(0, 1)], [(1, 0)])
    # the rule decides samples; the likelihood still learns the point's flag
    assert "gates" not in table.likelihood("gaussian", {})
    vae = _quiet_fit(VAETransformer(**TINY), frame)
    samples = vae.sample(1000, random_state=0)
    assert ((samples["amt"] > 0) == (samples["has"] == 1)).all()
    # given either column, the other follows the rule (it decided only its target)
    for value in (0, 1):
        for Estimator in (VAETransformer, AutoencoderTransformer):
            model = _quiet_fit(Estimator(**TINY), frame)
            drawn = model.sample(200, random_state=0, given={"has": value})
            assert ((drawn["amt"] > 0) == bool(value)).all(), (Estimator, value)
        drawn = vae.sample(200, random_state=0, given={"amt": 100.0 * value})
        assert (drawn["has"] == value).all()


def test_given_columns_set_their_gates_up_the_chain():
    # b is observed only where a and c are (both gated by c's missing values);
    # given b, 47% of the samples had a and c missing. And a categorical gate:
    # income is observed exactly when job is "paid"; given an income, job was
    # drawn freely.
    rng = np.random.RandomState(0)
    n = 400
    a_obs = rng.rand(n) < 0.6
    b_obs = a_obs & (rng.rand(n) < 0.6)
    job = rng.choice(["paid", "retired", "student"], n)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "a": np.where(a_obs, rng.normal(size=n), np.nan),
            "b": np.where(b_obs, rng.normal(size=n), np.nan),
            "c": pd.array(np.where(a_obs, rng.randint(0, 5, n), 0), dtype="Int64"),
            "job": job,
            "income": np.where(job == "paid", rng.gamma(3.0, 10.0, n), np.nan),
        }
    )
    frame["c"] = frame["c"].where(a_obs)
    for Estimator in (VAETransformer, AutoencoderTransformer):
        est = _quiet_fit(Estimator(**TINY), frame)
        drawn = est.sample(300, random_state=0, given={"b": 0.0})
        assert drawn[["a", "c"]].notna().all().all(), Estimator
        drawn = est.sample(300, random_state=0, given={"income": 30.0})
        assert (drawn["job"] == "paid").all(), Estimator
        drawn = est.sample(300, random_state=0, given={"job": "student"})
        assert drawn["income"].isna().all(), Estimator
        drawn = est.sample(300, random_state=0, given={"c": 2})  # c observed: free
        assert drawn["a"].notna().all() and drawn["b"].isna().any()


def test_a_gate_agrees_with_every_given_column_it_gates():
    # x is missing exactly when g is A, z is zero exactly when g is A or B: given
    # x and a zero z, only B agrees with both; the first given child decided the
    # gate alone (56% A). A VAE's draw redrew the level by the one-hot draw, so
    # always the first allowed one; and a nullable boolean's value no row held
    # could be chosen.
    rng = np.random.RandomState(0)
    n = 600
    g = rng.choice(list("ABC"), n, p=[0.4, 0.1, 0.5])
    frame = pd.DataFrame(
        {
            "g": g,
            "x": np.where(g == "A", np.nan, rng.normal(size=n)),
            "z": np.where(np.isin(g, ["A", "B"]), 0.0, rng.lognormal(size=n)),
            "w": rng.normal(size=n),
        }
    )
    vae = _quiet_fit(VAETransformer(**TINY), frame)
    drawn = vae.sample(500, random_state=0, given={"x": 0.5, "z": 0.0})
    assert (drawn["g"] == "B").all()
    drawn = vae.sample(1000, random_state=0, given={"x": 0.0})
    assert set(drawn["g"]) == {"B", "C"}  # drawn among those that agree
    # in their conditional shares, B one in six: codes are weighted by the
    # probability their decoder gives g's agreeing levels (without: 0.37)
    trained = _quiet_fit(VAETransformer(**FAST), frame)
    share = (trained.sample(1000, random_state=0, given={"x": 0.0})["g"] == "B").mean()
    assert 0.1 < share < 0.25, share
    held = pd.array(np.where(rng.rand(n) < 0.6, True, pd.NA), dtype="boolean")
    nullable = pd.DataFrame(
        {"nb": held, "x": np.where(pd.isna(held), np.nan, rng.normal(size=n))}
    )
    for Estimator in (VAETransformer, AutoencoderTransformer):
        est = _quiet_fit(Estimator(**TINY), nullable)
        drawn = est.sample(300, random_state=0, given={"x": 0.3})
        assert (drawn["nb"] == True).all(), Estimator  # noqa: E712 (never False)


def test_conditions_that_break_a_missing_value_rule_are_refused():
    # the given values won and every row broke the rule (an unemployed income)
    rng = np.random.RandomState(0)
    employed = rng.rand(300) > 0.4
    job = rng.choice(["paid", "retired", "student"], 300)
    frame = pd.DataFrame(
        {
            "employed": employed,
            "income": np.where(employed, rng.lognormal(3, 0.5, 300), np.nan),
            "job": job,
            "pay": np.where(job == "paid", rng.rand(300), np.nan),
        }
    )
    est = _quiet_fit(VAETransformer(**TINY), frame)
    match = "'income' is always missing where 'employed' is False. Leave one"
    with pytest.raises(ValueError, match=match):
        est.sample(3, random_state=0, given={"employed": False, "income": 20.0})
    match = "'pay' is always missing where 'job' is 'student'"  # the row that breaks it
    with pytest.raises(ValueError, match=match):
        est.sample(2, random_state=0, given={"job": ["paid", "student"], "pay": 0.5})
    drawn = est.sample(3, random_state=0, given={"employed": True, "income": 20.0})
    assert (drawn["income"] == 20.0).all()


def test_conditional_codes_follow_the_rules_up_a_chain_of_gates():
    # g is missing where h is A (and half of B), x where g is: given x, h is B
    # in a third of the rows and C in two; codes were weighted by the decoder's
    # probability of g's state, which the rule leaves untrained where h decides
    # it, so 38% of the samples had an A-like w with h relabelled to agree
    rng = np.random.RandomState(0)
    n = 2000
    h = rng.choice(list("ABC"), n, p=[0.5, 0.25, 0.25])
    g_missing = (h == "A") | ((h == "B") & (rng.rand(n) < 0.5))
    frame = pd.DataFrame(
        {
            "h": h,
            "g": np.where(g_missing, np.nan, rng.normal(size=n)),
            "x": np.where(g_missing | (rng.rand(n) < 0.3), np.nan, rng.normal(size=n)),
            "w": np.select([h == "A", h == "B"], [-4.0, 0.0], 4.0) + rng.normal(0, 0.3, n),
        }
    )
    est = _quiet_fit(VAETransformer(**{**FAST, "max_iter": 150}), frame)
    assert [(r["column"], r["gate"]) for r in est._table.gates] == [(1, 0), (2, 1)]
    drawn = est.sample(2000, random_state=0, given={"x": 0.0})
    assert drawn["g"].notna().all() and (drawn["h"] != "A").all()
    assert 0.2 < (drawn["h"] == "B").mean() < 0.45  # a third
    assert (drawn["w"] < -2).mean() < 0.05  # A's values: none in these rows


def test_a_point_mass_keeps_its_ties_to_other_columns(tmp_path):
    # z is zero whenever a < 4: a spread point gave 5-6% of the samples with
    # a < 4 a non-zero z, and one Gaussian (no flag) too few non-zeros elsewhere.
    # (a's values scored as cells: 3.6-4.8% over seeds 0-2, with one latent
    # dimension active; as points, whose density rewards an exact a without
    # bound, 0-0.2%.)
    rng = np.random.RandomState(0)
    a = rng.randint(0, 6, 2000)
    z = np.where((a >= 4) & (rng.rand(2000) < 0.5), rng.exponential(3, 2000), 0.0)
    frame = pd.DataFrame({"a": a, "z": z})
    vae = VAETransformer(random_state=0).fit(frame)
    samples = vae.sample(3000, random_state=0)
    nonzero = samples["z"] > 0  # in the data: never where a < 4, half the rows else
    assert nonzero[samples["a"] < 4].mean() < 0.05, nonzero[samples["a"] < 4].mean()
    assert nonzero[samples["a"] >= 4].mean() > 0.38, nonzero[samples["a"] >= 4].mean()
    given = vae.sample(200, random_state=0, given={"z": 0.0})
    assert (given["z"] == 0).all()
    loaded = VAETransformer.load(vae.save(tmp_path / "point.skvae"))
    assert loaded._table.columns[1].point == 0.0
    pd.testing.assert_frame_equal(
        loaded.sample(50, random_state=1), vae.sample(50, random_state=1)
    )


# ------------------------------------------------------------ dtypes and levels
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_narrow_integers_never_wrap(Estimator):
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(
        {
            "i8": rng.randint(120, 128, 300).astype(np.int8),
            "u8": rng.randint(0, 4, 300).astype(np.uint8),
            "x": rng.normal(size=300),
        }
    )
    samples = Estimator(**MARGINAL).fit(frame).sample(3000, random_state=0)
    assert samples["i8"].dtype == np.int8 and samples["u8"].dtype == np.uint8
    assert samples["i8"].min() >= 120 and samples["u8"].max() <= 3


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_declared_levels_that_never_occur_are_never_sampled(Estimator):
    rng = np.random.RandomState(0)
    declared = [f"level{i:04d}" for i in range(2000)]
    used = declared[::100]  # 20 of them occur
    dtype = pd.CategoricalDtype(declared)
    frame = pd.DataFrame(
        {"code": pd.Series(rng.choice(used, 400), dtype=dtype), "x": rng.normal(size=400)}
    )
    est = Estimator(**MARGINAL).fit(frame)
    assert est._table.columns[0].width == 20  # only the levels seen are modelled
    samples = est.sample(3000, random_state=0)
    assert samples["code"].dtype == dtype  # all 2,000 declared levels kept
    assert set(samples["code"]) <= set(used) and samples["code"].notna().all()
    new = frame.head(3).astype({"code": object}).assign(code=declared[1])
    assert np.isfinite(est.transform(new.astype({"code": dtype}))).all()


def structural_frame(n=600, seed=0):
    """``income`` is missing exactly when ``employed`` is False; ``bonus`` only then."""
    rng = np.random.RandomState(seed)
    employed = rng.rand(n) < 0.6
    income = np.where(employed, rng.lognormal(3, 0.5, n), np.nan)
    bonus = np.where(employed & (rng.rand(n) < 0.5), rng.normal(5, 1, n), np.nan)
    return pd.DataFrame(
        {"income": income, "bonus": bonus, "employed": employed, "x": rng.normal(size=n)}
    )


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_structural_missingness_is_preserved(Estimator):
    frame = structural_frame()
    est = Estimator(**MARGINAL).fit(frame)
    samples = est.sample(3000, random_state=0)
    np.testing.assert_array_equal(samples["income"].isna(), ~samples["employed"])
    assert not (samples["bonus"].notna() & ~samples["employed"]).any()
    share = samples["bonus"].isna()[samples["employed"]].mean()
    # Data: 0.52 of the employed. 0.65-0.74 (seeds 0-5) when the missing bonus
    # was learned from every row, the unemployed ones (always missing) included.
    assert 0.4 < share < 0.62
    assert 0.45 < samples["employed"].mean() < 0.75  # data: 0.6


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_structural_missingness_of_a_categorical_column_alone(Estimator):
    # No numeric column has missing values: the rule was not looked for at all
    # (63% of the sampled unemployed had a sector, where none may).
    rng = np.random.RandomState(0)
    employed = rng.rand(600) < 0.6
    sector = np.where(employed, rng.choice(["a", "b", "c"], 600), None)
    sector = np.where(employed & (rng.rand(600) < 0.4), None, sector)
    x = rng.normal(size=600)
    frame = pd.DataFrame({"sector": sector, "employed": employed, "x": x})
    est = Estimator(**MARGINAL).fit(frame)
    assert est._table.gates and est.module_.likelihood.gates
    samples = est.sample(3000, random_state=0)
    assert samples["sector"].isna()[~samples["employed"]].all()
    share = samples["sector"].isna()[samples["employed"]].mean()
    assert 0.25 < share < 0.55  # data: 0.40 of the employed


def test_gates_are_found_from_the_data():
    rules = VAETransformer(**{**MARGINAL, "max_iter": 2}).fit(structural_frame())
    rules = {r["column"]: r for r in rules._table.gates}
    # income: always missing when not employed (state 0), never when employed
    assert rules[0] == {"column": 0, "gate": 2, "missing": [0], "observed": [1]}
    # bonus: always missing when not employed, drawn when employed
    assert rules[1] == {"column": 1, "gate": 2, "missing": [0], "observed": []}


def test_gates_prefer_rules_with_support_between_gates_that_decide_as_many_rows():
    # Each of the 600 names decides its one row's income, as ``employed``
    # decides every row. The name came first and won the tie, so samples tied
    # income's missing values to a random name instead of to ``employed``
    # (lifelines' canadian_senators: 31% of sampled rows broke the data's rule).
    frame = structural_frame()
    frame.insert(0, "name", [f"person {i}" for i in range(len(frame))])
    with pytest.warns(UserWarning, match="identifiers"):
        est = VAETransformer(**{**MARGINAL, "max_iter": 2}).fit(frame)
    names = [c.name for c in est._table.columns]
    gates = {names[r["column"]]: names[r["gate"]] for r in est._table.gates}
    assert gates["income"] == "employed"


def test_a_gate_that_decides_more_rows_wins_over_support():
    # ``flag`` decides a's and b's missing values on its 1 rows only (always
    # present there); the names decide every row, one row each. Rows decided
    # come first, support only breaks ties: where missing values nest across
    # columns (b is missing wherever a is; statsmodels' fertility), an
    # identifier that gates them keeps each sample's pattern one that a real
    # row had, and keeps its levels.
    rng = np.random.RandomState(0)
    flag = rng.rand(200) < 0.5
    a = np.where(flag | (rng.rand(200) < 0.5), rng.normal(size=200), np.nan)
    b = np.where(np.isnan(a) | (~flag & (rng.rand(200) < 0.5)), np.nan, a + 1)
    names = [f"id {i}" for i in range(200)]
    frame = pd.DataFrame({"flag": flag, "a": a, "b": b, "name": names})
    with pytest.warns(UserWarning, match="identifiers"):
        est = VAETransformer(**{**MARGINAL, "max_iter": 2}).fit(frame)
    columns = est._table.columns
    assert [columns[r["gate"]].name for r in est._table.gates] == ["name", "name"]
    assert len(columns[3].levels) == 200 and columns[3].rare is None


def test_an_identifier_gating_columns_missing_at_random_pools():
    # Each name decides its one row of a and of b; their missing values are
    # independent, so copying one row's pattern ties them to nothing.
    rng = np.random.RandomState(0)
    a, b = (np.where(rng.rand(200) < 0.7, rng.normal(size=200), np.nan) for _ in range(2))
    frame = pd.DataFrame({"a": a, "b": b, "name": [f"id {i}" for i in range(200)]})
    with pytest.warns(UserWarning, match="share one encoded level"):
        est = VAETransformer(**{**MARGINAL, "max_iter": 2}).fit(frame)
    assert len(est._table.columns[2].rare) == 200
    assert all(est._table.columns[r["gate"]].name != "name" for r in est._table.gates)


def test_a_table_too_large_to_encode_unpooled_pools_first(monkeypatch):
    # The gate search before pooling encodes every level; beyond
    # _POOL_FIRST_ENTRIES entries the identifiers pool first, even one that
    # would have gated two columns.
    import skvae._tabular as tabular

    rng = np.random.RandomState(0)
    a = np.where(rng.rand(200) < 0.5, rng.normal(size=200), np.nan)
    b = np.where(np.isnan(a) | (rng.rand(200) < 0.3), np.nan, a)  # nests in a's
    frame = pd.DataFrame({"a": a, "b": b, "name": [f"id {i}" for i in range(200)]})
    with pytest.warns(UserWarning, match="identifiers"):
        kept = VAETransformer(**{**MARGINAL, "max_iter": 2}).fit(frame)
    assert kept._table.columns[2].rare is None  # it gates a and b
    monkeypatch.setattr(tabular, "_POOL_FIRST_ENTRIES", 200 * 100)
    with pytest.warns(UserWarning, match="identifiers"):
        pooled = VAETransformer(**{**MARGINAL, "max_iter": 2}).fit(frame)
    assert len(pooled._table.columns[2].rare) == 200
    assert pooled._table.width == 2 + 2 + 1


def test_an_identifier_that_gates_one_column_pools_its_levels():
    # Missing at random: each name decides its one row of x by chance. Kept as
    # x's gate, the 200 names stayed 200 encoded columns (lifelines' dd: 1,580
    # leaders gating one column, 3,628 encoded columns); pooled, x's missing
    # values are the model's.
    rng = np.random.RandomState(0)
    x = np.where(rng.rand(200) < 0.8, rng.normal(size=200), np.nan)
    frame = pd.DataFrame({"x": x, "name": [f"id {i}" for i in range(200)]})
    with pytest.warns(UserWarning, match="share one encoded level"):
        est = VAETransformer(**{**MARGINAL, "max_iter": 2}).fit(frame)
    assert est._table.gates == []
    assert est._table.width == 2 + 1  # x and its missing indicator, the pool
    samples = est.sample(1000, random_state=0)
    assert samples["name"].isin(frame["name"]).all()


def nested_frame(n=600, seed=0):
    """The first k of the columns a, b, c, d are missing, k from 0 to 4 (dropout)."""
    rng = np.random.RandomState(seed)
    k = rng.randint(0, 5, n)
    X = rng.normal(size=(n, 4)) + rng.normal(size=(n, 1))
    X[k[:, None] > np.arange(4)] = np.nan
    frame = pd.DataFrame(X, columns=list("abcd"))
    frame["x"] = rng.normal(size=n)
    return frame


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_nested_missingness_is_preserved(Estimator):
    # d is missing only where c is, c only where b is, b only where a is. With
    # one gate per column and gates never gated, a, c and d hung on b, and 3%
    # of the VAE's samples had d missing where c was not.
    est = Estimator(**MARGINAL).fit(nested_frame())
    names = [c.name for c in est._table.columns]
    gates = [(names[r["column"]], names[r["gate"]]) for r in est._table.gates]
    assert gates == [("a", "b"), ("b", "c"), ("c", "d")]  # a chain
    missing = est.sample(3000, random_state=0)[list("abcd")].isna().to_numpy()
    for later in range(1, 4):  # missing only where every earlier column is
        assert missing[missing[:, later], :later].all()
    assert 0.05 < missing[:, 3].mean() < 0.35  # data: 0.18, drawn where c is missing


def test_decoding_order_puts_a_gates_own_rule_first():
    chain = [{"column": 0, "gate": 1}, {"column": 1, "gate": 2}, {"column": 2, "gate": 3}]
    assert decoding_order(chain) == chain[::-1]
    star = [{"column": 0, "gate": 2}, {"column": 1, "gate": 2}]
    assert decoding_order(star) == star
    long = [{"column": i, "gate": i + 1} for i in range(5000)]  # deeper than recursion
    assert decoding_order(long) == long[::-1]
    with pytest.raises(ValueError, match="cycle"):
        decoding_order([*chain, {"column": 3, "gate": 1}])


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_structural_missingness_of_categorical_columns_is_preserved(Estimator):
    # ``sector`` (a category) and ``full_time`` (a nullable boolean) are missing
    # exactly when ``employed`` is False; ``union`` is missing only then.
    rng = np.random.RandomState(0)
    frame = structural_frame()
    employed = frame["employed"].to_numpy()
    sector = rng.choice(["public", "private", "self"], len(frame))
    frame["sector"] = pd.Categorical(np.where(employed, sector, None))
    frame["full_time"] = pd.array(
        np.where(employed, rng.rand(len(frame)) < 0.7, None), dtype="boolean"
    )
    union = np.where(rng.rand(len(frame)) < 0.5, "yes", "no")
    frame["union"] = np.where(employed & (rng.rand(len(frame)) < 0.5), union, None)
    est = Estimator(**MARGINAL).fit(frame)
    gated = {est._table.columns[r["column"]].name: r for r in est._table.gates}
    assert {"sector", "full_time", "union"} <= set(gated)
    for draw in (
        est.sample(3000, random_state=0),
        est.inverse_transform(est.transform(frame)),
    ):
        unemployed = ~draw["employed"].to_numpy(bool)
        for name in ("sector", "full_time"):
            np.testing.assert_array_equal(draw[name].isna().to_numpy(), unemployed)
        assert draw["union"].isna()[unemployed].all()
    samples = est.sample(3000, random_state=0)
    share = samples["union"].isna()[samples["employed"].to_numpy(bool)].mean()
    assert 0.2 < share < 0.8  # drawn, not forced, among the employed (data: 0.5)
    assert set(samples["sector"].dropna()) == {"public", "private", "self"}


# ------------------------------------------------ all-numeric frames and arrays
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_all_numeric_frame_is_a_table(Estimator):
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(
        {"a": rng.normal(size=200), "n": rng.poisson(3, 200).astype(np.int32)}
    )
    frame.loc[::4, "a"] = np.nan
    est = Estimator(**MARGINAL).fit(frame)
    for out in (
        est.sample(500, random_state=0),
        est.inverse_transform(est.transform(frame)),
    ):
        assert isinstance(out, pd.DataFrame) and list(out.columns) == ["a", "n"]
        assert out["n"].dtype == np.int32 and out["a"].dtype == np.float64
    assert 0.1 < est.sample(2000, random_state=0)["a"].isna().mean() < 0.4
    assert np.isfinite(est.score_samples(frame)).all()
    with pytest.warns(UserWarning, match="feature names"):  # an array stands for it
        np.testing.assert_allclose(est.transform(frame.to_numpy()), est.transform(frame))
    # so it does for a later partial_fit batch (it was refused: "fitted on a
    # DataFrame"), encoded as the frame
    streamed = Estimator(**MARGINAL).partial_fit(frame)
    by_array = Estimator(**MARGINAL).partial_fit(frame)
    with pytest.warns(UserWarning, match="feature names"):
        by_array.partial_fit(frame.to_numpy())
    streamed.partial_fit(frame)
    np.testing.assert_allclose(by_array.transform(frame), streamed.transform(frame))


def nan_array(n=300, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 3))
    X[:, 1] += X[:, 0]
    X[rng.rand(n) < 0.2, 1] = np.nan
    return X


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_arrays_with_missing_values_are_modelled(Estimator):
    X = nan_array()
    before = X.copy()
    est = Estimator(**MARGINAL).fit(X)
    assert est.__sklearn_tags__().input_tags.allow_nan
    Z = est.transform(X)
    assert Z.shape == (300, 2) and np.isfinite(Z).all()
    assert np.isfinite(est.score_samples(X)).all()
    for out in (est.inverse_transform(Z), est.sample(2000, random_state=0)):
        assert isinstance(out, np.ndarray) and out.shape[1] == 3
    samples = est.sample(2000, random_state=0)
    assert 0.1 < np.isnan(samples[:, 1]).mean() < 0.3
    assert not np.isnan(samples[:, [0, 2]]).any()
    np.testing.assert_array_equal(X, before, strict=True)
    est32 = Estimator(**MARGINAL).fit(X.astype(np.float32))
    assert est32.transform(X.astype(np.float32)).dtype == np.float32
    # reconstructions have the codes' dtype, as an array's without missing values
    for dtype in (np.float32, np.float64):
        assert est.inverse_transform(Z.astype(dtype)).dtype == dtype


def test_an_array_with_missing_values_scores_the_same_in_float32_and_float64():
    # A row's importance draws come from its values rounded to float32, not
    # from its encoding, which differs between the two precisions by more
    # than float32's rounding: held-out rows' scores differed by up to 2
    # nats/row (the draws'), now by float32's rounding.
    est = VAETransformer(**MARGINAL).fit(nan_array())
    X = nan_array(seed=1)
    np.testing.assert_allclose(
        est.score_samples(X.astype(np.float32)), est.score_samples(X), atol=1e-3
    )
    # a numeric DataFrame's model, given the same rows as an array, keys them
    # by their encoding as it does the frame's
    frame = pd.DataFrame(nan_array(), columns=["a", "b", "c"])
    est = VAETransformer(**MARGINAL).fit(frame)
    rows = frame.iloc[:20]
    np.testing.assert_array_equal(
        est.score_samples(rows.to_numpy()), est.score_samples(rows)
    )


def test_arrays_with_missing_values_need_no_pandas(monkeypatch, tmp_path):
    import pickle

    import skvae._tabular

    monkeypatch.setattr(skvae._tabular, "pd", None)
    monkeypatch.setattr(skvae._tabular, "types", None)
    X = nan_array()
    est = VAETransformer(**MARGINAL).fit(X)
    assert isinstance(est.sample(5, random_state=0), np.ndarray)
    for loaded in (
        pickle.loads(pickle.dumps(est)),
        VAETransformer.load(est.save(tmp_path / "m.skvae")),
    ):
        np.testing.assert_array_equal(loaded.score_samples(X), est.score_samples(X))


def test_nan_where_fit_saw_none_is_refused():
    X = np.random.RandomState(0).normal(size=(50, 3))
    est = VAETransformer(**MARGINAL).fit(X)
    bad = X.copy()
    bad[0, 0] = np.nan
    for method in (est.transform, est.score_samples, est.partial_fit):
        with pytest.raises(ValueError, match="fitted without missing.*SimpleImputer"):
            method(bad)
    bce = AutoencoderTransformer(**MARGINAL, loss="bce")
    assert not bce.__sklearn_tags__().input_tags.allow_nan
    with pytest.raises(ValueError, match="NaN"):
        bce.fit(np.where(np.isnan(bad), np.nan, 0.5))


# ------------------------------------------------------------------ partial_fit
def test_partial_fit_knows_the_declared_levels_from_the_first_batch():
    rng = np.random.RandomState(0)
    dtype = pd.CategoricalDtype(["a", "b", "c"])
    first = pd.DataFrame(
        {"k": pd.Series(["a"] * 50, dtype=dtype), "x": rng.normal(size=50)}
    )
    later = pd.DataFrame(
        {"k": pd.Series(["b"] * 50, dtype=dtype), "x": rng.normal(size=50)}
    )
    est = VAETransformer(**MARGINAL).partial_fit(first)
    assert est._table.columns[0].levels == ["a", "b", "c"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", PosteriorCollapseWarning)
        est.partial_fit(later)  # no warning: "b" was declared
    assert est._table.encode(later)[:, 1].sum() == 50  # encoded as its own level


def test_partial_fit_never_samples_a_declared_level_no_batch_held(tmp_path):
    rng = np.random.RandomState(0)
    dtype = pd.CategoricalDtype(["a", "b", "c", "d"])

    def batch(levels):
        k = pd.Series(rng.choice(levels, 60), dtype=dtype)
        return pd.DataFrame({"k": k, "x": rng.normal(size=60)})

    est = VAETransformer(**MARGINAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PosteriorCollapseWarning)
        est.partial_fit(batch(["a", "b"]))
        samples = est.sample(3000, random_state=0)
        assert set(samples["k"]) == {"a", "b"} and samples["k"].dtype == dtype
        first = est._table
        est.partial_fit(batch(["a", "b", "c"]))
    assert first.columns[0].unseen == [2, 3]  # the earlier table is left alone
    assert est._table.columns[0].unseen == [3]
    # Mass on a declared level is dropped while no batch has held it.
    probabilities = np.array([[0.1, 0.05, 0.6, 0.25, 0.5]])  # k's four levels, then x
    assert first.decode(probabilities, None)["k"].tolist() == ["a"]
    assert est._table.decode(probabilities, None)["k"].tolist() == ["c"]
    draws = est._table.decode(np.repeat(probabilities, 2000, 0), np.random.RandomState(0))
    assert set(draws["k"]) == {"a", "b", "c"}
    loaded = VAETransformer.load(est.save(tmp_path / "m.skvae"))
    assert loaded._table.columns[0].unseen == [3]
    pd.testing.assert_frame_equal(loaded.sample(500, random_state=1), est.sample(500, 1))
    est.set_params(learning_rate=1e30)
    with pytest.raises(NonFiniteLossError):  # a batch that fails changes nothing
        est.partial_fit(batch(["d"]))
    assert est._table.columns[0].unseen == [3]


def test_warm_start_continues_a_table_model_on_data_that_encode_alike():
    # new rows refitted the encoding, whose interval cells the VAE's network
    # description holds: every warm fit of a table with an integer column
    # silently trained a new network
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"x": rng.normal(size=240), "k": rng.poisson(3, 240)})
    est = VAETransformer(**{**TINY, "warm_start": True})
    _quiet_fit(est, frame.iloc[:120])
    table, module = est._table, est.module_
    _quiet_fit(est, frame.iloc[120:])
    assert est.n_iter_ == 6 and est._table is table  # continued, on the first encoding
    assert est.module_ is not module
    _quiet_fit(est, frame.assign(x=frame["x"] * 10))  # far beyond the range: anew
    assert est.n_iter_ == 3 and est._table is not table
    missing = frame.assign(x=frame["x"].where(rng.rand(240) > 0.2))  # new missing values
    _quiet_fit(est, missing)
    assert est.n_iter_ == 3
    # a missing-value rule that the new rows break is not kept (it held in every
    # sample); nor is one they start to follow
    ruled = frame.assign(g=np.where(frame["k"] > 3, "a", "b"))
    ruled["x"] = ruled["x"].where(ruled["g"] == "b")
    est = _quiet_fit(VAETransformer(**{**TINY, "warm_start": True}), ruled)
    assert est._table.gates
    broken = ruled.assign(x=frame["x"].where(rng.rand(240) > 0.4))
    _quiet_fit(est, broken)
    assert est.n_iter_ == 3 and not est._table.gates


def test_partial_fit_learns_a_declared_level_the_first_batch_lacked():
    # it started at the categorical's floor (log 1e-4) and, one epoch a call,
    # was still never sampled after 30 calls where a third of each batch held it
    rng = np.random.RandomState(0)
    levels = pd.CategoricalDtype(list("abc"))
    k = pd.Series(rng.choice(list("abc"), 200)).astype(levels)
    frame = pd.DataFrame({"x": rng.normal(size=200), "k": k})
    nb = pd.array(rng.rand(200) < 0.65, dtype="boolean")  # a nullable bool: False later
    nb[rng.rand(200) < 0.2] = pd.NA
    frame["nb"] = nb
    first = frame[(frame["k"] != "c") & frame["nb"].fillna(True)]
    est = VAETransformer(n_components=2, hidden_layer_sizes=(8,), random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.partial_fit(first)
        assert (est.sample(300, random_state=0)["k"] != "c").all()  # not sampled yet
        for _ in range(5):
            est.partial_fit(frame)
    samples = est.sample(1000, random_state=0)
    assert 0.15 < (samples["k"] == "c").mean() < 0.5  # the data: a third
    assert 0.15 < (samples["nb"] == False).mean() < 0.5  # noqa: E712 (data: 0.28)


def test_partial_fit_warns_about_what_the_first_batch_did_not_declare():
    rng = np.random.RandomState(0)
    first = pd.DataFrame({"k": ["a", "b"] * 25, "x": rng.normal(size=50)})
    est = AutoencoderTransformer(**MARGINAL).partial_fit(first)
    with pytest.warns(UserWarning, match=r"Column 'k' holds levels .*\['c'\].*category"):
        est.partial_fit(first.assign(k=["a", "c"] * 25))
    with pytest.warns(UserWarning, match=r"\['x'\] hold missing values .* first batch"):
        est.partial_fit(first.assign(x=np.r_[np.nan, first["x"].to_numpy()[1:]]))
    # after fit, the messages name fit (which keeps only the levels its rows
    # hold) as what fixed the encoding
    declared = first.assign(k=first["k"].astype(pd.CategoricalDtype(["a", "b", "c"])))
    fitted = AutoencoderTransformer(**MARGINAL).fit(declared)
    with pytest.warns(UserWarning, match=r"fixed by fit.*fit keeps only the levels"):
        fitted.partial_fit(declared.assign(k=pd.Categorical(["a", "c"] * 25)))


def test_partial_fit_warns_once_about_fractions_in_an_integer_column():
    # they were learned without a word, while samples stayed whole numbers
    rng = np.random.RandomState(0)
    first = pd.DataFrame({"k": rng.poisson(3, 60), "x": rng.normal(size=60)})
    est = AutoencoderTransformer(**MARGINAL).partial_fit(first)
    with pytest.warns(UserWarning, match=r"\['k'\] hold values that are not whole"):
        est.partial_fit(first.assign(k=first["k"] + 0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.partial_fit(first.assign(k=first["k"] + 0.5))  # once per stream
        est.partial_fit(first)
    samples = est.sample(200, random_state=0)["k"]
    assert samples.dtype == first["k"].dtype


def test_a_partial_fit_stream_warns_once_per_column_and_kind(tmp_path):
    # every batch warned again, with a new list of levels each time
    rng = np.random.RandomState(0)
    first = pd.DataFrame({"k": ["a", "b"] * 25, "x": rng.normal(size=50), "y": 1.0})
    est = AutoencoderTransformer(**MARGINAL).partial_fit(first)
    odd = first.assign(x=np.r_[np.nan, first["x"].to_numpy()[1:]] * 10)

    def messages(batch):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.partial_fit(batch)
        return sorted(str(w.message).split(" ")[1] for w in caught)

    assert messages(odd.assign(k=["a", "c"] * 25)) == ["'k'", "'x'", "['x']"]
    assert messages(odd.assign(k=["a", "d"] * 25)) == []  # the same kinds and columns
    assert messages(odd.assign(y=np.r_[np.nan, [1.0] * 49])) == ["['y']"]  # y: new
    est.save(tmp_path / "m.skvae")  # the file does not keep it: warned once again
    est = AutoencoderTransformer.load(tmp_path / "m.skvae")
    assert messages(odd) == ["'x'", "['x']"]
    est.fit(first)  # a new stream
    assert messages(odd) == ["'x'", "['x']"]


def test_identifier_columns_are_named_in_a_warning(frame):
    ids = frame.assign(
        name=[f"penguin {i}" for i in range(len(frame))],  # one row per level
        tag=pd.Categorical([f"t{i % 150}" for i in range(len(frame))]),  # 150 < 400/2
        code=np.where(
            np.arange(len(frame)) < 30, [f"c{i}" for i in range(len(frame))], None
        ),
    )
    with pytest.warns(UserWarning, match="identifiers") as record:
        est = AutoencoderTransformer(**{**FAST, "max_iter": 1}).fit(ids)
    (message,) = [str(w.message) for w in record if "identifiers" in str(w.message)]
    assert "'name' (400 levels in 400 values)" in message
    assert "'code' (30 levels in 30 values)" in message  # missing values not counted
    assert "'tag'" not in message  # repeated levels: a real categorical column
    # The frame's 10 encoded columns; name's 400 levels and code's 30, each
    # seen once, each share one encoded level (name decides the missing values
    # of code and of the frame's other columns only by chance: they do not
    # nest); so do tag's 150 levels of 2-3 rows, though tag is no identifier
    # (most of its levels are rare); code's missing level.
    assert est._table.width == 10 + 1 + 1 + 1 + 1
    assert "(14 encoded columns for 8)" in message
    tag = next(c for c in est._table.columns if c.name == "tag")
    assert tag.levels == [] and len(tag.rare) == 150
    assert "share one encoded level" in message


def identifier_frame(n=300, seed=0):
    """A name per row but for one name of 10 rows and ``n // 10`` of 2, and a value."""
    rng = np.random.RandomState(seed)
    names = [f"n{i}" for i in range(n)]
    names[:10] = ["common"] * 10
    names[10 : 10 + n // 5] = [f"pair{i // 2}" for i in range(n // 5)]
    return pd.DataFrame({"name": names, "x": rng.normal(size=n)})


def test_rare_levels_of_an_identifier_column_share_one_encoded_level():
    frame = identifier_frame()
    with pytest.warns(UserWarning, match="share one encoded level"):
        est = VAETransformer(**MARGINAL).fit(frame)
    (name, _) = est._table.columns
    assert name.levels == ["common"]  # seen 10 times: its own level
    counts = dict(zip(name.rare, name.rare_counts))  # levels seen fewer than 5 times
    assert len(counts) == 260 and counts["pair0"] == 2 and counts["n200"] == 1
    assert sum(counts.values()) == 290
    assert est._table.width == 1 + 1 + 1  # common, the rare levels, x
    samples = est.sample(3000, random_state=0)["name"]
    assert samples.isin(frame["name"]).all()  # every sample a name seen in fit
    # common: 10 of 300 rows; a pair's name 2 in 300 and a single's 1 in 300
    assert 0.015 < (samples == "common").mean() < 0.06
    pairs = samples.str.startswith("pair").mean()
    singles = samples.str.fullmatch(r"n\d+").mean()
    assert 0.8 < singles / pairs * 60 / 230 < 1.25  # drawn by their counts in fit
    # the most likely value of the pool is its most frequent level
    decoded = est.inverse_transform(est.transform(frame.iloc[50:60]))
    assert set(decoded["name"]) <= {"common", "pair0"}
    # partial_fit keeps every level of its first batch, and says so
    with pytest.warns(UserWarning, match="partial_fit keeps each one's encoded column"):
        streamed = VAETransformer(**MARGINAL).partial_fit(frame)
    assert streamed._table.columns[0].rare is None


def test_a_pooled_column_with_missing_values_samples_seen_levels_or_missing():
    frame = identifier_frame()
    frame.loc[frame.index % 4 == 0, "name"] = None  # a quarter missing, at random
    with pytest.warns(UserWarning, match="share one encoded level"):
        est = AutoencoderTransformer(**MARGINAL).fit(frame)
    (name, _) = est._table.columns
    assert est._table.width == len(name.levels) + 1 + 1 + 1  # levels, pool, missing, x
    samples = est.sample(2000, random_state=0)["name"]
    assert samples.dropna().isin(frame["name"].dropna()).all()
    assert 0.1 < samples.isna().mean() < 0.4  # data: 0.25
    assert samples.dropna().nunique() > 50  # the pool is drawn from, not one level


@pytest.mark.filterwarnings("ignore:Categorical column.*identifiers:UserWarning")
def test_partial_fit_after_fit_knows_the_pooled_levels(recwarn):
    frame = identifier_frame()
    est = VAETransformer(**MARGINAL).fit(frame)
    before = est.n_iter_
    recwarn.clear()
    est.partial_fit(frame)  # every level seen in fit: nothing to declare
    assert not [w for w in recwarn if "holds levels" in str(w.message)]
    assert est.n_iter_ == before + 1


@pytest.mark.filterwarnings("ignore:Categorical column.*identifiers:UserWarning")
def test_pickle_and_clone_keep_the_pools():
    import pickle

    from sklearn.base import clone

    frame = identifier_frame()
    est = VAETransformer(**MARGINAL).fit(frame)
    loaded = pickle.loads(pickle.dumps(est))
    assert loaded._table.columns[0].rare == est._table.columns[0].rare
    pd.testing.assert_frame_equal(
        loaded.sample(20, random_state=3), est.sample(20, random_state=3)
    )
    np.testing.assert_array_equal(loaded.score_samples(frame), est.score_samples(frame))
    refit = clone(est).fit(frame)  # the same data and seed: the same pools and model
    np.testing.assert_allclose(refit.score_samples(frame), est.score_samples(frame))


@pytest.mark.filterwarnings("ignore:Categorical column.*identifiers:UserWarning")
def test_a_rare_level_scores_its_share_of_the_pool():
    frame = identifier_frame()
    est = VAETransformer(**MARGINAL).fit(frame)
    rows = pd.DataFrame({"name": ["pair3", "n200", "n201"], "x": [0.5, 0.5, 0.5]})
    scores = est.score_samples(rows)
    # the same encoded row: the scores differ by the log of the counts' ratio
    np.testing.assert_allclose(scores[0] - scores[1], np.log(2), rtol=1e-6)
    np.testing.assert_allclose(scores[1], scores[2], rtol=1e-6)
    # the pool's levels' probabilities sum to the pool's: shares sum to one
    shares = est._table.log_pooled(pd.DataFrame({"name": est._table.columns[0].rare}))
    np.testing.assert_allclose(np.exp(shares).sum(), 1.0)


@pytest.mark.filterwarnings("ignore:Categorical column.*identifiers:UserWarning")
def test_given_rare_levels_are_kept_exactly():
    est = VAETransformer(**MARGINAL).fit(identifier_frame())
    samples = est.sample(5, random_state=0, given={"name": "n200"})
    assert (samples["name"] == "n200").all()
    # a level fit never saw: the message counts the pooled ones it would accept
    with pytest.raises(ValueError, match=r"not a level seen in fit.* rare ones, e\.g\."):
        est.sample(5, random_state=0, given={"name": "nobody"})


@pytest.mark.parametrize("n_levels", [20, 100])
def test_categorical_columns_with_repeated_levels_do_not_warn(frame, n_levels):
    # 20 levels in 20 rows (too few to call an identifier), 100 levels of 4 rows
    rows = frame.head(20) if n_levels == 20 else frame
    tagged = rows.assign(tag=[f"t{i % n_levels}" for i in range(len(rows))])
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*identifiers")
        AutoencoderTransformer(**{**FAST, "max_iter": 1}).fit(tagged)


def test_save_load_keep_the_marginals_and_gates(tmp_path):
    frame = structural_frame().assign(count=np.arange(600) % 7)
    est = VAETransformer(**MARGINAL).fit(frame)
    loaded = VAETransformer.load(est.save(tmp_path / "m.skvae"))
    pd.testing.assert_frame_equal(
        loaded.sample(200, random_state=0), est.sample(200, random_state=0)
    )
    np.testing.assert_array_equal(loaded.score_samples(frame), est.score_samples(frame))
    assert loaded._table.gates == est._table.gates


def test_new_level_probability_by_hand():
    # 8 rows (the missing one counts), levels b and c seen once: (2 + 1) / (8 + 1)
    series = pd.Series(["a"] * 5 + ["b", "c", None])
    assert _novel_level_probability(series) == pytest.approx(3 / 9)
    assert _novel_level_probability(pd.Series(["a"] * 99)) == pytest.approx(1 / 100)
    assert _novel_level_probability(pd.Series(["a", "b"])) == 0.5  # at most one half


@pytest.fixture(scope="module")
def vae_of_frame(frame):
    with warnings.catch_warnings():  # 1 of 3 dimensions active: not what is tested
        warnings.simplefilter("ignore", PosteriorCollapseWarning)
        return VAETransformer(**FAST).fit(frame)


def test_a_level_fit_did_not_see_lowers_the_score(vae_of_frame, frame):
    table = vae_of_frame._table
    species, island = table.columns[0], table.columns[4]
    assert island.name == "island" and 0 < island.novel < 0.01  # no level seen once
    rows = frame.dropna().head(50)
    new = rows.assign(island="z")
    # log(novel) where the level is new, log(1 - novel) where it is known
    known = np.log1p(-species.novel) + np.log1p(-island.novel)
    np.testing.assert_allclose(table.log_novel(rows, table.encode(rows)), known)
    np.testing.assert_allclose(
        table.log_novel(new, table.encode(new)),
        np.log(island.novel) + np.log1p(-species.novel),
    )
    # A missing value the fit saw is a level of its own; in species, which had
    # none, it is left out, as the model leaves it out.
    for column, expected in (("island", known), ("species", np.log1p(-island.novel))):
        holed = rows.assign(**{column: None})
        np.testing.assert_allclose(table.log_novel(holed, table.encode(holed)), expected)
    # Before, the column dropped out of the score, which then rose.
    assert (vae_of_frame.score_samples(new) < vae_of_frame.score_samples(rows)).all()


def test_a_level_fit_did_not_see_lowers_either_models_score(fitted, frame):
    # The autoencoder's score sums the categories' cross-entropies: a new
    # level costs -log of its probability there too.
    rows = frame.dropna().head(50)
    new = rows.assign(island="z")
    assert (fitted.score_samples(new) < fitted.score_samples(rows)).all()


def test_saved_new_level_probabilities(vae_of_frame, frame, tmp_path):
    path = vae_of_frame.save(tmp_path / "m.skvae")
    new = frame.assign(island="z")
    loaded = VAETransformer.load(path)
    np.testing.assert_array_equal(
        loaded.score_samples(new), vae_of_frame.score_samples(new)
    )

    def written_before(table):
        for column in table["columns"]:
            column["dict"].pop("novel")

    old = VAETransformer.load(corrupted(path, written_before, tmp_path))
    assert old._table.columns[0].novel is None  # scored as before: no such term
    np.testing.assert_allclose(
        old.score_samples(frame),
        vae_of_frame.score_samples(frame)
        - vae_of_frame._table.log_novel(frame, vae_of_frame._table.encode(frame)),
    )
    for change in (
        lambda t: _column(t, 0).update(novel=0.9),  # species: above one half
        lambda t: _column(t, 0).update(novel="0.1"),
        lambda t: _column(t, 1).update(novel=0.1),  # mass: numeric
    ):
        with pytest.raises(ValueError, match="corrupted"):
            VAETransformer.load(corrupted(path, change, tmp_path))


def corrupted(path, change, tmp_path, meta_change=None):
    """A copy of the file at ``path`` with ``change`` applied to its table's JSON
    (and ``meta_change`` to the whole of it)."""
    import json
    import zipfile

    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(members["skvae.json"])
    change(meta["attributes"]["dict"]["_table"]["table"]["dict"])
    if meta_change is not None:
        meta_change(meta)
    members["skvae.json"] = json.dumps(meta).encode()
    bad = tmp_path / "bad.skvae"
    with zipfile.ZipFile(bad, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return bad


def _column(table, i):
    return table["columns"][i]["dict"]


CORRUPTIONS = {
    "knots not increasing": lambda t: _column(t, 0)["knots"].reverse(),
    "cdf outside (0, 1)": lambda t: _column(t, 0)["cdf"].__setitem__(-1, 1.0),
    "knots and cdf lengths": lambda t: _column(t, 0)["cdf"].pop(),
    "unknown transform": lambda t: _column(t, 0).__setitem__("transform", "log"),
    "range reversed": lambda t: _column(t, 0).__setitem__("low", 1e9),
    "a gate on itself": lambda t: t["gates"][0]["dict"].__setitem__("gate", 0),
    "a gate state too large": lambda t: t["gates"][0]["dict"]["missing"].append(7),
    "a boolean column gated": lambda t: t["gates"][0]["dict"].update(column=2, gate=0),
    "a gated column outside the table": lambda t: t["gates"][0]["dict"].update(column=99),
    "a column gated twice": lambda t: t["gates"][1]["dict"].update(column=0),
    "gates in a cycle": lambda t: (
        t["gates"][0]["dict"].update(gate=1),
        t["gates"][1]["dict"].update(gate=0),
    ),
    "unseen levels of a numeric column": lambda t: _column(t, 0).update(unseen=[0]),
    "likelihood_gates not a bool": lambda t: t.__setitem__("likelihood_gates", 1),
}


@pytest.fixture(scope="module")
def saved_table(tmp_path_factory):
    est = VAETransformer(**{**MARGINAL, "max_iter": 2}).fit(structural_frame())
    path = est.save(tmp_path_factory.mktemp("table") / "m.skvae")
    VAETransformer.load(path)  # the file itself loads
    return path


@pytest.mark.parametrize("change", list(CORRUPTIONS))
def test_load_refuses_corrupted_marginals_and_gates(change, saved_table, tmp_path):
    with pytest.raises(ValueError, match="corrupted"):
        VAETransformer.load(corrupted(saved_table, CORRUPTIONS[change], tmp_path))


def test_files_from_before_the_likelihood_gates_load_without_them(saved_table, tmp_path):
    new = VAETransformer.load(saved_table)
    assert new._table.likelihood_gates and new.module_.likelihood.gates

    # A file written before: its table lacks the flag, its likelihood the gates
    # (in the network's description and in the one partial_fit compares with).
    def without_gates(meta):
        meta["module"]["likelihood"].pop("gates")
        described = meta["attributes"]["dict"]["_architecture"]["tuple"][0]["dict"]
        described["likelihood"]["dict"].pop("gates")

    def before_gates(table):  # and before cells
        table.pop("likelihood_gates")
        table.pop("censored")

    old = corrupted(saved_table, before_gates, tmp_path, without_gates)
    est = VAETransformer.load(old)
    assert not est._table.likelihood_gates and est.module_.likelihood.gates == []
    frame = structural_frame(n=50, seed=1)
    assert np.isfinite(est.score_samples(frame)).all()
    again = VAETransformer.load(est.save(tmp_path / "again.skvae"))
    np.testing.assert_array_equal(again.score_samples(frame), est.score_samples(frame))
    est.partial_fit(frame)  # training goes on, without gates: the same network
    assert est.module_.likelihood.gates == []
    # Gates in one place and not the other: refused.
    with pytest.raises(ValueError, match="corrupted"):
        VAETransformer.load(corrupted(saved_table, before_gates, tmp_path))


def test_a_student_t_vae_spreads_heavy_atoms_instead():
    # Cells are the Gaussian's: a student-t VAE with the spreading switched
    # off as well sampled 0.1% non-zero amounts where the data has 9.6%.
    frame = zero_inflated_frame(n=1000, share=0.1)
    frame.loc[::11, "gain"] = np.nan
    table = Table(frame, None)
    assert table.scores_cells("gaussian") and not table.scores_cells("student_t")
    vae = VAETransformer(**{**MARGINAL, "max_iter": 200}, likelihood="student_t")
    samples = vae.fit(frame).sample(4000, random_state=0)["gain"].dropna()
    share = (frame["gain"].dropna() > 0).mean()
    assert 0.6 * share < (samples > 0).mean() < 1.4 * share, (share, (samples > 0).mean())


def test_files_from_before_the_cells_load_with_points(tmp_path, monkeypatch):
    frame = zero_inflated_frame(n=300, share=0.2)
    frame.loc[::11, "gain"] = np.nan  # its zeros: a heavy atom
    frame["year"] = np.random.RandomState(0).choice([2007, 2008, 2009], 300)
    est = _quiet_fit(VAETransformer(**TINY), frame)
    path = est.save(tmp_path / "cells.skvae")
    assert type(VAETransformer.load(path).module_.likelihood.likelihoods[0]).__name__ == (
        "IntervalGaussian"
    )

    def as_points(description):
        block = description["blocks"][0]
        likelihood = block["likelihood"].get("dict", block["likelihood"])
        assert likelihood.pop("cells") and likelihood["name"] == "interval_gaussian"
        likelihood["name"] = "gaussian"

    def points(meta):  # the network's description, and the one partial_fit compares with
        as_points(meta["module"]["likelihood"])
        described = meta["attributes"]["dict"]["_architecture"]["tuple"][0]["dict"]
        blocks = described["likelihood"]["dict"]
        as_points({"blocks": [b["dict"] for b in blocks["blocks"]]})

    old = VAETransformer.load(
        corrupted(path, lambda t: t.pop("censored"), tmp_path, points)
    )
    assert not old._table.censored
    assert type(old.module_.likelihood.likelihoods[0]).__name__ == "Gaussian"
    scores = old.score_samples(frame)
    assert np.isfinite(scores).all()
    again = VAETransformer.load(old.save(tmp_path / "again.skvae"))
    np.testing.assert_array_equal(again.score_samples(frame), scores)
    spread = []
    monkeypatch.setattr(
        skvae._base, "dequantizer", lambda atoms, *args: spread.append(atoms)
    )
    old.partial_fit(frame)  # training goes on, with points and the atoms spread
    assert type(old.module_.likelihood.likelihoods[0]).__name__ == "Gaussian"
    assert len(spread) == 1 and spread[0] is not None  # gain's zeros
    VAETransformer.load(path).partial_fit(frame)  # cells: nothing spread
    assert len(spread) == 1
    _quiet_fit(old.set_params(warm_start=True), frame)  # a new table: a new network
    assert type(old.module_.likelihood.likelihoods[0]).__name__ == "IntervalGaussian"
    # The stored description holds the cells as probabilities, which compare
    # exactly where Phi^-1 differs in its last bit (another scipy build):
    # with their scores it was refused as corrupted.
    expected = VAETransformer.load(path).score_samples(frame)
    for module in (skvae._tabular, skvae._likelihoods):
        name = "ndtri" if module is skvae._tabular else "scipy_ndtri"
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda p, real=real: np.nextafter(real(p), 9.0))
    np.testing.assert_allclose(VAETransformer.load(path).score_samples(frame), expected)
    monkeypatch.undo()
    # cells in the likelihood but not in the table: refused
    with pytest.raises(ValueError, match="corrupted"):
        VAETransformer.load(corrupted(path, lambda t: t.pop("censored"), tmp_path))


def _quiet_fit(estimator, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # three epochs: ConvergenceWarning
        return estimator.fit(X)


@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer])
def test_a_model_of_an_array_with_missing_values_takes_a_frame_by_position(Estimator):
    # fitted on an array, a table whose columns are positions: a DataFrame was
    # refused for lacking columns 0 and 1, which fit never named
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"x": rng.randn(40), "y": rng.randn(40)})
    frame.iloc[0, 0] = np.nan
    est = _quiet_fit(Estimator(**TINY), frame.to_numpy())
    for method in ("transform", "score_samples"):
        with pytest.warns(UserWarning, match="fitted without feature names"):
            from_frame = getattr(est, method)(frame)
        np.testing.assert_array_equal(from_frame, getattr(est, method)(frame.to_numpy()))


@pytest.mark.parametrize(
    "replacement",
    [
        pd.date_range("2020-01-01", periods=40, freq="D"),
        pd.timedelta_range("1D", periods=40),
        np.arange(40) + 1j,
        pd.period_range("2020-01", periods=40, freq="M"),
        pd.Categorical(pd.date_range("2020-01-01", periods=40, freq="D")),
        pd.Series(pd.date_range("2020-01-01", periods=40).to_numpy(), dtype=object),
    ],
    ids=["datetime", "timedelta", "complex", "period", "category", "object"],
)
def test_a_numeric_column_of_another_kind_at_transform_is_refused(replacement):
    # converted to floats, dates became epochs (scores of -3.7e32) and complex
    # numbers lost their imaginary part with only numpy's ComplexWarning
    est = _quiet_fit(VAETransformer(**TINY), small_frame())
    changed = small_frame().assign(x=replacement)
    for method in (est.transform, est.score_samples):
        with pytest.raises(ValueError, match="'x' was numeric in fit but holds"):
            method(changed)


@pytest.mark.parametrize("dtype", ["Int8", "UInt16", "Float32"])
def test_samples_keep_a_nullable_numeric_dtype(dtype):
    # a nullable integer column that drew a missing value came back as Int64
    rng = np.random.RandomState(0)
    values = pd.array([1, None, 2, 100] * 25, dtype=dtype)
    frame = pd.DataFrame({"x": rng.randn(100), "z": values})
    est = _quiet_fit(VAETransformer(**TINY), frame)
    samples = est.sample(200, random_state=0)
    assert samples["z"].isna().any() and samples["z"].dtype == dtype
    assert est.inverse_transform(est.transform(frame))["z"].dtype == dtype


def test_samples_keep_arrow_dtypes():
    pytest.importorskip("pyarrow")
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(
        {
            "x": rng.randn(100),
            "n": pd.array([1, None, 2, 0] * 25, dtype="int64[pyarrow]"),
            "b": pd.array([True, None, False, True] * 25, dtype="bool[pyarrow]"),
        }
    )
    samples = _quiet_fit(VAETransformer(**TINY), frame).sample(200, random_state=0)
    assert samples["n"].isna().any() and samples["b"].isna().any()
    assert samples["n"].dtype == frame["n"].dtype and samples["b"].dtype == frame["b"].dtype


def test_inverse_transform_keeps_the_index_of_a_frame_of_codes():
    # set_output's codes carry the rows' labels; the reconstruction had a fresh
    # RangeIndex, so arithmetic with X aligned nothing and gave NaN
    frame = small_frame().set_axis(np.arange(200, 240))
    est = _quiet_fit(VAETransformer(**TINY).set_output(transform="pandas"), frame)
    codes = est.transform(frame)
    assert codes.index.equals(frame.index)
    assert est.inverse_transform(codes).index.equals(frame.index)
    assert est.inverse_transform(codes.to_numpy()).index.equals(pd.RangeIndex(40))


def test_a_nullable_boolean_value_no_row_held_is_not_sampled_but_scores_low():
    # it is a level all the same: a row holding it must score as unlikely
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(
        {
            "x": rng.randn(60),
            "only_true": pd.Series([True, None, True] * 20, dtype="boolean"),
            "both": pd.Series([True, None, False] * 20, dtype="boolean"),
        }
    )
    est = _quiet_fit(VAETransformer(**{**TINY, "max_iter": 30}), frame)
    columns = {c.name: c for c in est._table.columns}
    assert columns["only_true"].levels == [False, True]
    assert columns["only_true"].unseen == [0] and columns["both"].unseen is None
    samples = est.sample(300, random_state=0)
    assert not (samples["only_true"] == False).any()  # noqa: E712
    assert samples["only_true"].dtype == "boolean"
    rows = frame.iloc[[0, 0]].copy()
    rows["only_true"] = pd.array([True, False], dtype="boolean")
    seen, unseen = est.score_samples(rows)
    assert unseen < seen - 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.partial_fit(frame.assign(only_true=frame["both"]))  # a batch holds False
    assert {c.name: c for c in est._table.columns}["only_true"].unseen == []


def test_later_partial_fit_batches_beyond_the_first_range_warn():
    # samples stay in the first batch's range: a stream that widens it warned of nothing
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"x": rng.randn(200), "g": rng.choice(["a", "b"], 200)})
    first, later = frame.iloc[:100], frame.iloc[100:]
    est = VAETransformer(**TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.partial_fit(first)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # values inside: no warning
        est.partial_fit(later[later["x"].between(first["x"].min(), first["x"].max())])
    wide = later.assign(x=later["x"] * 5)
    match = r"Column 'x' \(first batch: .*\) holds values well beyond"
    with pytest.warns(UserWarning, match=match):
        est.partial_fit(wide)


def test_the_range_warning_says_when_the_first_batch_had_no_value():
    # it showed the placeholder range [0, 0] of a column with no value
    frame = pd.DataFrame({"x": np.arange(40.0) % 20, "y": [np.nan] * 20 + [5.0] * 20})
    est = VAETransformer(**TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.partial_fit(frame.iloc[:20])
    with pytest.warns(UserWarning, match=r"Column 'y' \(first batch: no value\)"):
        est.partial_fit(frame.iloc[20:])


def test_a_bool_column_declared_categorical_keeps_its_dtype():
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"x": rng.randn(40), "d": rng.rand(40) < 0.5})
    est = _quiet_fit(VAETransformer(**TINY, categorical_features=["d"]), frame)
    assert est.sample(20, random_state=0)["d"].dtype == bool
    assert est.inverse_transform(est.transform(frame))["d"].dtype == bool


def test_numeric_transform_may_name_numeric_columns_only():
    # a transform for a categorical or boolean column was silently ignored
    frame = small_frame()
    for transform, categorical in [
        ({"text": "mixture"}, "from_dtype"),
        ({"flag": "standard"}, "from_dtype"),
        ({"x": "standard"}, ["x"]),
    ]:
        est = VAETransformer(
            **TINY, numeric_transform=transform, categorical_features=categorical
        )
        with pytest.raises(ValueError, match="names columns that are not numeric"):
            est.fit(frame)


@pytest.mark.parametrize("how", ["fit", "partial_fit"])
def test_a_category_dtype_of_booleans_is_categorical(how, tmp_path):
    # is_bool_dtype called it boolean, with the levels [False, True] whatever its
    # categories: save then wrote a file that load refused as corrupted
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(
        {"x": rng.randn(60), "b": pd.Categorical([True, None] * 30, categories=[True])}
    )
    est = VAETransformer(**TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        getattr(est, how)(frame)
    column = {c.name: c for c in est._table.columns}["b"]
    assert (column.kind, column.levels) == ("categorical", [True])
    loaded = VAETransformer.load(est.save(tmp_path / "m.skvae"))
    samples = loaded.sample(50, random_state=0)
    assert samples["b"].dtype == frame["b"].dtype
    assert set(samples["b"].dropna()) <= {True}


@pytest.mark.parametrize(
    "change, name",
    [
        ({"categorical_features": ["x"]}, "categorical_features"),
        ({"numeric_transform": "standard"}, "numeric_transform"),
        ({"numeric_transform": {"x": "mixture"}}, "numeric_transform"),
    ],
)
def test_partial_fit_refuses_changed_encoding_parameters(change, name):
    # they were silently ignored: partial_fit kept the fitted encoding
    frame = small_frame()
    est = _quiet_fit(VAETransformer(**TINY), frame)
    with pytest.raises(ValueError, match=f"changed since it was fitted \\({name}\\)"):
        est.set_params(**change).partial_fit(frame)
    est.set_params(categorical_features="from_dtype", numeric_transform="auto")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        est.partial_fit(frame)  # set back: it continues
    assert est.n_iter_ == TINY["max_iter"] + 1


def functional_frame(n=400, seed=0):
    """``treat`` is False exactly in arm "a"; ``region`` follows ``country``, and
    ``continent`` follows ``region`` (and so ``country``); ``x`` depends on the arm."""
    rng = np.random.RandomState(seed)
    arm = rng.choice(list("abcd"), n)
    country = pd.Series(rng.choice(["fr", "de", "es", "jp", "cn", "br"], n))
    regions = {"fr": "west", "es": "west", "de": "central", "jp": "east", "cn": "east"}
    region = country.map({**regions, "br": "south"})
    continents = {"west": "europe", "central": "europe", "east": "asia"}
    continent = region.map({**continents, "south": "america"})
    return pd.DataFrame(
        {
            "arm": arm,
            "treat": arm != "a",
            "country": country,
            "region": region,
            "continent": continent,
            "x": rng.normal(size=n) + (arm == "a"),
        }
    )


def _named(table):
    names = [c.name for c in table.columns]
    return {names[rule["column"]]: names[rule["parent"]] for rule in table.functions}


def test_columns_that_another_decides_are_found_from_the_data():
    table = Table(functional_frame(), None)
    # continent follows region, the coarsest column that decides it (country does too)
    assert _named(table) == {"treat": "arm", "region": "country", "continent": "region"}
    treat = next(rule for rule in table.functions if rule["column"] == 1)
    levels = table.columns[0].levels
    assert treat["map"] == [[i, int(level != "a")] for i, level in enumerate(levels)]


def test_a_column_and_its_code_give_one_rule_not_a_cycle():
    rng = np.random.RandomState(0)
    label = rng.choice(["red", "green", "blue"], 300)
    code = pd.Series(label).map({"red": "R", "green": "G", "blue": "B"})
    table = Table(pd.DataFrame({"label": label, "code": code, "x": rng.rand(300)}), None)
    assert _named(table) == {"label": "code"}
    assert decoding_order(table.functions, "parent") == table.functions


def test_no_rule_without_support_or_with_one_exception():
    rng = np.random.RandomState(0)
    # Four rows of level "z", all flagged: were the two independent, only about
    # 8 rows would break the rule (fewer than _FUNCTION_SUPPORT), as chance would.
    level = np.where(np.arange(400) < 4, "z", rng.choice(list("abc"), 400))
    rare = pd.DataFrame({"level": level, "flag": np.arange(400) < 4})
    assert Table(rare, None).functions == []
    frame = functional_frame()
    frame.loc[7, "treat"] = not frame.loc[7, "treat"]  # one exception: no rule
    assert "treat" not in _named(Table(frame, None))
    # a gated column takes no part, and a gate is no column's child (it decides
    # its copy, which follows it)
    tied = structural_frame().assign(employed_copy=lambda f: f["employed"])
    table = Table(tied, None)
    assert {rule["gate"] for rule in table.gates} == {2}
    assert _named(table) == {"employed_copy": "employed"}


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("treat_first", [False, True])
def test_a_gate_decides_its_columns_and_their_missing_values(Estimator, treat_first):
    # dose is missing exactly in arm "a", so arm gates it, and decides treat too:
    # treat was drawn against the arm in 36% of the samples while gates took no
    # part, and in 39% with treat first, which then was the gate (the first of
    # two that decide as many rows; now the one with more states).
    frame = functional_frame().assign(
        dose=lambda f: np.where(f["arm"] == "a", np.nan, f["x"].abs() + 1)
    )
    if treat_first:
        frame = frame[["treat", *frame.columns.drop("treat")]]
    est = Estimator(**MARGINAL).fit(frame)
    assert [est._table.columns[r["gate"]].name for r in est._table.gates] == ["arm"]
    assert _named(est._table)["treat"] == "arm"
    out = est.sample(1000, random_state=0)
    np.testing.assert_array_equal(out["treat"], out["arm"] != "a")
    np.testing.assert_array_equal(out["dose"].isna(), out["arm"] == "a")
    untreated = est.sample(200, given={"treat": False}, random_state=0)
    assert set(untreated["arm"]) == {"a"} and untreated["dose"].isna().all()
    dosed = est.sample(200, given={"dose": 2.0}, random_state=0)
    assert "a" not in set(dosed["arm"]) and dosed["treat"].all()
    # untreated with a dose: no arm agrees with both
    match = r"'treat' \(False\), 'dose' \(2.0\) break rules .*'arm' decides where"
    with pytest.raises(ValueError, match=match):
        est.sample(5, given={"treat": False, "dose": 2.0})


def test_a_rule_says_that_a_level_is_rare_not_which():
    # 10 common levels of 30 rows and 30 rare ones of 2, pooled, with a code
    # each: the pools are one state each, whose level decoding draws by count.
    labels = [f"L{i}" for i in range(10) for _ in range(30)]
    labels += [f"R{i}" for i in range(30) for _ in range(2)]
    frame = pd.DataFrame({"label": labels, "code": ["c_" + v for v in labels]})
    table = Table(frame.assign(x=np.arange(len(frame)) % 7), None)
    (rule,) = table.functions
    child = table.columns[rule["column"]]
    pool = [len(table.columns[rule["parent"]].levels), len(child.levels)]
    assert child.rare and rule["map"][-1] == pool and len(rule["map"]) == 11
    # the column given a rare level is a condition like any other, not a
    # contradiction with every state of its parent
    est = VAETransformer(**{**MARGINAL, "max_iter": 2}).fit(frame)
    parent = est._table.columns[est._table.functions[0]["parent"]].name
    child = est._table.columns[est._table.functions[0]["column"]].name
    prefix = {"label": "", "code": "c_"}
    rare = est.sample(20, given={child: prefix[child] + "R3"}, random_state=0)
    assert (rare[child] == prefix[child] + "R3").all()
    assert rare[parent].str.startswith(prefix[parent] + "R").all()  # rare, not which
    common = est.sample(20, given={child: prefix[child] + "L3"}, random_state=0)
    assert (common[parent] == prefix[parent] + "L3").all()


def test_partial_fit_warns_once_when_a_batch_breaks_a_rule():
    frame = functional_frame()
    est = VAETransformer(**{**MARGINAL, "max_iter": 2})
    est.partial_fit(frame)
    flipped = frame.assign(treat=~frame["treat"])
    with pytest.warns(UserWarning, match="Column 'treat' follows 'arm' in every row"):
        est.partial_fit(flipped)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.partial_fit(flipped)  # once per column in a stream
        est.partial_fit(frame)


def test_find_functions_checks_every_row_after_the_subset(monkeypatch):
    frame = functional_frame(n=3000)
    frame.loc[2999, "region"] = "south"  # broken in one row the subset may miss
    monkeypatch.setattr(skvae._tabular, "_FUNCTION_ROWS", 100)
    table = Table(frame, None)
    # region no longer follows country, nor continent region: continent follows country
    assert _named(table) == {"treat": "arm", "continent": "country"}


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_samples_and_reconstructions_keep_the_columns_another_decides(Estimator):
    frame = functional_frame()
    est = Estimator(**MARGINAL).fit(frame)
    for out in (
        est.sample(2000, random_state=0),
        est.inverse_transform(est.transform(frame)),
    ):
        np.testing.assert_array_equal(out["treat"], out["arm"] != "a")
        regions = frame.groupby("country")["region"].first()
        np.testing.assert_array_equal(out["region"], out["country"].map(regions))
        continents = frame.groupby("region")["continent"].first()
        np.testing.assert_array_equal(out["continent"], out["region"].map(continents))
    assert out["treat"].dtype == bool


def test_given_columns_decide_their_parents_up_the_chain():
    frame = functional_frame()
    est = VAETransformer(**MARGINAL).fit(frame)
    asia = est.sample(
        300, given=pd.DataFrame({"continent": ["asia"] * 300}), random_state=0
    )
    assert set(asia["region"]) == {"east"}
    assert set(asia["country"]) <= {"jp", "cn"} and asia["country"].nunique() == 2
    untreated = est.sample(50, given=pd.DataFrame({"treat": [False] * 50}), random_state=0)
    assert set(untreated["arm"]) == {"a"}
    # a parent given alone decides its column
    fr = est.sample(50, given=pd.DataFrame({"country": ["fr"] * 50}), random_state=0)
    assert set(fr["region"]) == {"west"} and set(fr["continent"]) == {"europe"}
    with pytest.raises(ValueError, match=r"'arm' \('b'\), 'treat' \(False\) break"):
        est.sample(2, given=pd.DataFrame({"arm": ["b", "b"], "treat": [True, False]}))


def test_given_columns_at_both_ends_of_a_chain_decide_what_is_between():
    frame = functional_frame().assign(
        sib=lambda f: np.where(f["arm"] == "b", "Y", "N")  # a second child of arm
    )
    est = VAETransformer(**MARGINAL).fit(frame)
    both = {"country": ["fr"] * 300, "continent": ["europe"] * 300}
    out = est.sample(300, given=pd.DataFrame(both), random_state=0)
    assert set(out["region"]) == {"west"}  # 41% "central" when only asia was held
    # conditions that no state between them agrees with: refused, rules named
    far = {"country": ["fr", "fr"], "continent": ["europe", "asia"]}
    match = (
        r"'country' \('fr'\), 'continent' \('asia'\) break rules .*"
        r"'region' follows 'country'; 'continent' follows 'region'"
    )
    with pytest.raises(ValueError, match=match):
        est.sample(2, given=pd.DataFrame(far))
    with pytest.raises(ValueError, match=r"'treat' \(False\), 'sib' \('Y'\) break"):
        est.sample(1, given={"treat": False, "sib": "Y"})
    ok = est.sample(100, given={"treat": True, "sib": "N"}, random_state=0)
    assert set(ok["arm"]) == {"c", "d"}


def test_an_identifier_decides_no_column():
    # One row per name: every column is a function of it, by no evidence; as a
    # parent, samples copied the training rows' other columns whole.
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(
        {
            "name": [f"n{i}" for i in range(20)],
            "grade": rng.choice(list("abc"), 20),
            "city": rng.choice(list("wxyz"), 20),
        }
    )
    assert Table(frame, None).functions == []


def test_save_load_and_warm_start_keep_the_columns_another_decides(tmp_path):
    frame = functional_frame()
    est = VAETransformer(**{**MARGINAL, "max_iter": 2}, warm_start=True).fit(frame)
    loaded = VAETransformer.load(est.save(tmp_path / "m.skvae"))
    assert loaded._table.functions == est._table.functions
    pd.testing.assert_frame_equal(
        loaded.sample(100, random_state=0), est.sample(100, random_state=0)
    )
    table = est._table
    est.fit(frame)  # the same data: the same table, trained on
    assert est._table is table
    broken = frame.assign(treat=frame["treat"].to_numpy() ^ (np.arange(400) == 3))
    est.fit(broken)  # new data that break a rule: a new table
    assert est._table is not table and "treat" not in _named(est._table)
    assert est.n_iter_ == 6  # of the same structure: the network continues on it


FUNCTION_CORRUPTIONS = {
    "a column its own parent": lambda rule: rule.update(parent=rule["column"]),
    "a numeric parent": lambda rule: rule.update(parent=5),
    "a state too large": lambda rule: rule["map"].append([9, 0]),
    "a parent state twice": lambda rule: rule["map"].append(list(rule["map"][0])),
}


@pytest.mark.parametrize("change", list(FUNCTION_CORRUPTIONS))
def test_load_refuses_corrupted_functions(change, tmp_path):
    est = VAETransformer(**{**MARGINAL, "max_iter": 2}).fit(functional_frame())
    path = est.save(tmp_path / "m.skvae")

    def corrupt(table):
        FUNCTION_CORRUPTIONS[change](table["functions"][0]["dict"])

    with pytest.raises(ValueError, match="corrupted"):
        VAETransformer.load(corrupted(path, corrupt, tmp_path))


def test_find_functions_by_hand():
    columns = [
        Column("a", "categorical", object, 0, levels=["p", "q", "r"]),
        Column("b", "boolean", bool, 3),
    ]
    X = pd.DataFrame({"a": ["p", "q", "r"] * 10, "b": [False, True, True] * 10})
    # b's support: 9 more rows of p times the 2/3 that are True, 18 of q and r
    # times 1/3 (a state's first row cannot break the rule)
    assert find_functions(columns, X, []) == [
        {"column": 1, "parent": 0, "map": [[0, 0], [1, 1], [2, 1]]}
    ]
    assert find_functions(columns, X, [{"column": 1, "gate": 0}]) == []


def test_declared_levels_never_seen_are_outside_the_rules():
    # arm declares "e", which no row holds: given, it decoded as the first level
    # (an all-zero block) and its children copied that level's rule
    frame = functional_frame()
    levels = ["b", "a", "c", "d", "e"]
    frame["arm"] = frame["arm"].astype(pd.CategoricalDtype(levels))
    frame["treat"] = frame["treat"].map({True: "yes", False: "no"})
    frame["treat"] = frame["treat"].astype(pd.CategoricalDtype(["no", "yes", "maybe"]))
    est = VAETransformer(**{**MARGINAL, "max_iter": 5}).partial_fit(frame)
    assert _named(est._table)["treat"] == "arm"
    e = est.sample(200, given={"arm": "e"}, random_state=0)
    assert set(e["treat"]) == {"no", "yes"}  # free: fit never saw "e"
    maybe = est.sample(50, given={"treat": "maybe"}, random_state=0)  # no rule led there
    assert "e" not in set(maybe["arm"]) and maybe["arm"].nunique() > 1  # arm is free


def test_a_gate_chain_below_a_parent_is_decided_before_the_check():
    # g gates x2 (missing for "a", present for "b"), x2 gates x1, f follows g:
    # x1 observed means x2 observed means g is "b", so f True agrees
    rng = np.random.RandomState(0)
    g = rng.choice(list("abcd"), 400)
    x2 = np.where(g == "a", np.nan, rng.normal(size=400))
    x2[(g != "a") & (g != "b") & (rng.rand(400) < 0.5)] = np.nan
    x1 = np.where(np.isnan(x2), np.nan, rng.normal(size=400))
    x1[~np.isnan(x1) & (rng.rand(400) < 0.3)] = np.nan
    frame = pd.DataFrame({"g": g, "x2": x2, "x1": x1, "f": g == "b", "f2": g == "a"})
    est = VAETransformer(**MARGINAL).fit(frame)
    names = [c.name for c in est._table.columns]
    assert {(names[r["column"]], names[r["gate"]]) for r in est._table.gates} >= {
        ("x2", "g"),
        ("x1", "x2"),
    }
    out = est.sample(60, given={"x1": 0.1, "f": True}, random_state=0)
    assert (out["g"] == "b").all() and out["x2"].notna().all()
    # down the chain, given at both ends: x1 observed, and g "a", where x2 and
    # so x1 are always missing (60 of 60 samples broke a rule)
    match = (
        r"'g' \('a'\), 'x1' \(0.1\) break rules .*'g' decides where 'x2' is "
        r"missing; 'x2' decides where 'x1' is missing"
    )
    with pytest.raises(ValueError, match=match):
        est.sample(5, given={"x1": 0.1, "g": "a"})
    # with f given too (False agrees with g "a"), the chain still refuses
    with pytest.raises(ValueError, match="break rules"):
        est.sample(5, given={"x1": 0.1, "f": False, "g": "a"})
    # f2 True is g "a": through the chain and a rule (200 of 200 samples broke it)
    with pytest.raises(ValueError, match=r"'x1' \(0.1\), 'f2' \(True\) break"):
        est.sample(5, given={"x1": 0.1, "f2": True})


def test_a_chain_of_gates_and_a_rule_given_at_its_ends_is_decided_from_the_top():
    # g gates x2 (missing in "a", observed in "c" and "d"), x2 gates x1 (observed
    # wherever x2 is missing), and flag follows g (True in "a"). Given x1, x2 is
    # free; the gates kept its drawn state, which ruled "a" out wherever x2 was
    # observed: with flag True too, 194 of 300 samples broke flag's rule (185
    # for the autoencoder), and with flag False, x2 drawn missing left g only
    # "b" (57% of the samples, where b, c and d are as common).
    rng = np.random.RandomState(0)
    g = rng.choice(list("abcd"), 400)
    x2_missing = (g == "a") | ((g == "b") & (rng.rand(400) < 0.5))
    x1_missing = ~x2_missing & (rng.rand(400) < 0.35)
    frame = pd.DataFrame(
        {
            "g": g,
            "x2": np.where(x2_missing, np.nan, rng.normal(size=400)),
            "x1": np.where(x1_missing, np.nan, rng.normal(size=400)),
            "flag": g == "a",
            "w": rng.normal(size=400),
        }
    )
    for Estimator in ESTIMATORS:
        est = Estimator(**MARGINAL).fit(frame)
        names = [c.name for c in est._table.columns]
        gates = [(names[r["column"]], names[r["gate"]]) for r in est._table.gates]
        assert gates == [("x2", "g"), ("x1", "x2")] and _named(est._table) == {"flag": "g"}
        for flag in (True, False):
            out = est.sample(300, given={"x1": 0.1, "flag": flag}, random_state=0)
            np.testing.assert_array_equal(out["flag"], out["g"] == "a")
            assert out["x2"][out["g"] == "a"].isna().all(), Estimator
            assert out["x2"][out["g"].isin(["c", "d"])].notna().all(), Estimator
            assert (out["x1"] == 0.1).all()
            assert set(out["g"]) == ({"a"} if flag else set("bcd")), Estimator
            assert flag or (out["g"] == "b").mean() < 0.45, Estimator
        # x2 observed rules g "a" out, flag True rules it in: refused
        match = r"'x2' \(0.5\), 'flag' \(True\) break rules .*'flag' follows 'g'"
        with pytest.raises(ValueError, match=match):
            est.sample(3, given={"x2": 0.5, "flag": True}, random_state=0)
        # a given column outside the rules (the check broadcast its gates' states
        # over no rows, and raised numpy's ValueError)
        out = est.sample(3, given={"w": 0.0}, random_state=0)
        np.testing.assert_array_equal(out["flag"], out["g"] == "a")


def test_a_declared_level_never_seen_keeps_no_rule_of_a_chain_open():
    # g "b" always has k observed and so z missing; k declares "w", never seen,
    # which would leave z free: given z and g "b" must still be refused
    rng = np.random.RandomState(0)
    g = rng.choice(list("abc"), 600)
    k_missing = (g == "a") | ((g == "c") & (rng.rand(600) < 0.5))
    k = np.where(k_missing, None, rng.choice(["u", "v"], 600))
    z = np.where(k_missing & (rng.rand(600) < 0.6), rng.normal(size=600), np.nan)
    frame = pd.DataFrame(
        {"g": g, "k": pd.Series(k).astype(pd.CategoricalDtype(["u", "v", "w"])), "z": z}
    )
    est = VAETransformer(**{**MARGINAL, "max_iter": 2}).partial_fit(frame)
    with pytest.raises(ValueError, match="break rules"):
        est.sample(3, given={"z": 0.1, "g": "b"})


def test_a_contradiction_names_the_rules_between_the_given_columns():
    frame = functional_frame()
    code = frame["arm"].map(dict(zip("abcd", "wxyz")))
    frame.insert(0, "code", code)  # first: the parent of treat, zone and group
    frame["zone"] = code.map({"w": "n", "x": "s", "y": "n", "z": "s"})
    frame["group"] = code.map({"w": "g1", "x": "g1", "y": "g2", "z": "g2"})
    est = VAETransformer(**{**MARGINAL, "max_iter": 2}).fit(frame)
    assert {_named(est._table)[c] for c in ("treat", "zone", "group")} == {"code"}
    with pytest.raises(ValueError) as error:
        est.sample(1, given={"treat": False, "zone": "s"})
    message = str(error.value)
    assert "'treat' follows 'code'" in message and "'zone' follows 'code'" in message
    assert "'group' follows" not in message  # a rule no given column is under


def test_a_gate_that_a_function_implies_gives_way_to_it():
    # 15 arms of "a" missing, and treat False there: treat gated the arm's
    # missing values (True: never missing), so the arm, gated, could not
    # decide treat, and 38% of the samples drew treat against the arm.
    frame = functional_frame()
    arm = frame["arm"].astype(object)
    arm[(frame["arm"] == "a").to_numpy() & (np.arange(400) < 60)] = np.nan
    frame["arm"] = arm
    est = VAETransformer(**MARGINAL).fit(frame)
    assert est._table.gates == [] and _named(est._table)["treat"] == "arm"
    out = est.sample(2000, random_state=0)
    expected = out["arm"].map({"a": False, "b": True, "c": True, "d": True})
    observed = out["arm"].notna()
    np.testing.assert_array_equal(out["treat"][observed], expected[observed])
    assert not out["treat"][~observed].any()  # a missing arm: never treated
    assert 0.02 < (~observed).mean() < 0.06  # data: 0.0375


def test_dtype_names_read_back_as_their_dtypes():
    # pandas 3's "str" was written as "str", read back as the machine's
    # default storage; pandas 2.2's NaN-valued "string[pyarrow_numpy]" must
    # keep its name, which that pandas reads back
    from skvae._tabular import _dtype_name, _dtype_of

    dtypes = [np.dtype("float32"), pd.Int64Dtype(), pd.StringDtype("python")]
    try:
        dtypes.append(pd.StringDtype("python", na_value=np.nan))
    except TypeError:  # pandas before 2.3
        pass
    for dtype in dtypes:
        assert _dtype_of(_dtype_name(dtype)) == dtype, dtype
    with pytest.raises(TypeError):  # not a dtype's name: refused, not read as strings
        _dtype_of(12345)
