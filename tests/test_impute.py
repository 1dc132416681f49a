"""VAEImputer: scikit-learn's imputer API on arrays and DataFrames."""

import copy
import json
import pickle
import warnings
import zipfile

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.impute import SimpleImputer

import skvae._base
import skvae._impute
import skvae._torch
from skvae import VAEImputer, VAETransformer
from skvae.exceptions import PosteriorCollapseWarning

FAST = dict(n_components=2, max_iter=60, n_estimators=1, random_state=0)
#: Fits whose imputations average two models (the ensemble's code path).
PAIR = {**FAST, "n_estimators": 2}


def correlated(n=1000, seed=0):
    """Three features driven by one factor, so each predicts the others."""
    rng = np.random.RandomState(seed)
    t = rng.normal(size=n)
    return np.column_stack([t, 0.9 * t, -0.8 * t]) + 0.3 * rng.normal(size=(n, 3))


def holes(X, share=0.2, seed=1):
    mask = np.random.RandomState(seed).rand(*X.shape) < share
    mask[mask.all(axis=1), 0] = False  # every row keeps a value
    return np.where(mask, np.nan, X), mask


@pytest.fixture(scope="module")
def array_case():
    X = correlated()
    X_missing, mask = holes(X)
    return X, X_missing, mask, VAEImputer(**PAIR).fit(X_missing)


def make_frame(n=800, seed=0):
    """A table where a category sets a numeric mean, with a bool and an int column."""
    rng = np.random.RandomState(seed)
    kind = rng.choice(["low", "high"], n)
    size = np.where(kind == "high", 3.0, -3.0) + rng.normal(size=n)
    return pd.DataFrame(
        {
            "kind": pd.Categorical(kind, categories=["low", "high"]),
            "size": size,
            "count": rng.poisson(3, n).astype("int64"),
            "label": np.where(size > 0, "pos", "neg").astype(object),
        }
    )


@pytest.fixture(scope="module")
def frame_case():
    frame = make_frame()
    missing = frame.copy()
    rng = np.random.RandomState(2)
    missing.loc[rng.rand(len(frame)) < 0.2, "kind"] = np.nan
    missing.loc[rng.rand(len(frame)) < 0.2, "size"] = np.nan
    missing.loc[rng.rand(len(frame)) < 0.1, "label"] = None
    return frame, missing, VAEImputer(**PAIR).fit(missing)


def test_imputes_every_missing_value_of_an_array(array_case):
    X, X_missing, mask, imputer = array_case
    before = X_missing.copy()
    out = imputer.transform(X_missing)
    assert out.shape == X.shape and out.dtype == X.dtype
    assert not np.isnan(out).any()
    np.testing.assert_array_equal(out[~mask], X[~mask])  # observed cells kept
    np.testing.assert_array_equal(X_missing, before)  # input not modified


def test_beats_the_mean_on_correlated_data(array_case):
    X, X_missing, mask, imputer = array_case
    vae_error = np.sqrt(np.mean((imputer.transform(X_missing)[mask] - X[mask]) ** 2))
    mean = SimpleImputer().fit_transform(X_missing)
    mean_error = np.sqrt(np.mean((mean[mask] - X[mask]) ** 2))
    assert vae_error < 0.6 * mean_error


def _members(imputer):
    """One single-model imputer per fitted model of ``imputer``."""
    singles = []
    for vae in imputer.estimators_:
        single = copy.copy(imputer)
        single.n_estimators, single.estimators_ = 1, [vae]
        singles.append(single)
    return singles


def test_imputations_average_the_models(array_case, frame_case):
    # Numeric cells: the mean of each model's expected value; the models
    # differ (each has its own seed), so the average is not any one of them.
    _, X_missing, mask, imputer = array_case
    assert len(imputer.estimators_) == 2
    members = [single.transform(X_missing) for single in _members(imputer)]
    assert not np.allclose(members[0][mask], members[1][mask])
    np.testing.assert_allclose(imputer.transform(X_missing), np.mean(members, axis=0))
    assert imputer.n_iter_ == max(vae.n_iter_ for vae in imputer.estimators_)
    _, missing, imputer = frame_case
    members = [single.transform(missing)["size"] for single in _members(imputer)]
    np.testing.assert_allclose(imputer.transform(missing)["size"], np.mean(members, axis=0))


def test_every_model_encodes_x_alike():
    # transform encodes X once for all the models: their tables must agree,
    # "mixture" maps (fitted with a random state) included.
    frame = make_frame(300)
    missing = frame.copy()
    missing.loc[np.random.RandomState(3).rand(300) < 0.2, "size"] = np.nan
    params = {**PAIR, "max_iter": 2, "numeric_transform": "mixture"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # two epochs: convergence
        imputer = VAEImputer(**params).fit(missing)
    first, second = (vae._validate_X(missing) for vae in imputer.estimators_)
    np.testing.assert_array_equal(first, second)


def test_models_are_seeded_by_random_state():
    X_missing, _ = holes(correlated(200))
    params = {**PAIR, "max_iter": 2}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # two epochs: convergence
        first = VAEImputer(**params).fit(X_missing)
        again = VAEImputer(**params).fit(X_missing)
    seeds = [vae.random_state for vae in first.estimators_]
    assert len(set(seeds)) == 2
    assert seeds == [vae.random_state for vae in again.estimators_]
    np.testing.assert_array_equal(first.transform(X_missing), again.transform(X_missing))


def test_transform_is_deterministic_and_survives_pickle(array_case):
    _, X_missing, _, imputer = array_case
    first = imputer.transform(X_missing[:50])
    np.testing.assert_array_equal(first, imputer.transform(X_missing[:50]))
    restored = pickle.loads(pickle.dumps(imputer))
    np.testing.assert_array_equal(first, restored.transform(X_missing[:50]))


def test_many_importance_draws_are_imputed_in_bounded_memory(frame_case, monkeypatch):
    _, missing, imputer = frame_case
    imputer = pickle.loads(pickle.dumps(imputer))
    monkeypatch.setattr(skvae._torch, "physical_memory", lambda: 2**40)  # also on Windows
    with pytest.raises(MemoryError, match="n_importance_samples=10000000000000 needs"):
        imputer.set_params(n_importance_samples=10**13).transform(missing)
    # counted with the widest layer (128), not the encoded width alone: refused,
    # where torch's allocator raised its RuntimeError
    width = imputer.estimators_[0].module_.description["n_features"]
    K = 20 * 10**6
    monkeypatch.setattr(skvae._torch, "physical_memory", lambda: 8 * K * 3 * width)
    with pytest.raises(MemoryError, match="n_importance_samples=20000000 needs"):
        imputer.set_params(n_importance_samples=K).transform(missing)
    monkeypatch.undo()
    for bad in (0, 2.5, "a"):  # checked again after set_params, as in fit
        with pytest.raises(ValueError, match="'n_importance_samples' parameter"):
            imputer.set_params(n_importance_samples=bad).transform(missing)
    # Three rows a chunk where 256 fit: each chunk's rows are imputed, as before.
    imputer.set_params(n_importance_samples=300)
    width = imputer.estimators_[0].module_.description["n_features"]
    monkeypatch.setattr(skvae._impute, "_CANDIDATE_ELEMENTS", 3 * 300 * width)
    part = missing[:40]
    filled = imputer.transform(part)
    assert not filled.isna().any().any() and part.isna().any().any()
    assert set(filled["kind"]) <= {"low", "high"}
    pd.testing.assert_frame_equal(filled[part.notna()], part[part.notna()])


def test_a_row_is_imputed_alike_whatever_rows_come_with_it(array_case, frame_case):
    # each row drew its own candidates from one generator, so a row's imputation
    # moved (by 0.01-0.06 sd) with its position and the rows transformed with it
    _, X_missing, _, imputer = array_case
    rows = np.flatnonzero(np.isnan(X_missing).any(axis=1))[:5]
    together = imputer.transform(X_missing[:300])
    for i in rows:
        np.testing.assert_allclose(imputer.transform(X_missing[i : i + 1])[0], together[i])
    same = imputer.transform(np.full((3, X_missing.shape[1]), np.nan))
    np.testing.assert_allclose(same, np.repeat(same[:1], 3, axis=0))
    _, missing, table_imputer = frame_case
    together = table_imputer.transform(missing)
    for i in np.flatnonzero(missing.isna().any(axis=1).to_numpy())[:5]:
        alone = table_imputer.transform(missing.iloc[i : i + 1])
        pd.testing.assert_frame_equal(alone, together.iloc[i : i + 1], rtol=1e-9)


def test_a_pickle_with_one_model_as_vae_still_imputes(array_case):
    # Imputers pickled before n_estimators kept their model as ``vae_``.
    _, X_missing, _, imputer = array_case
    old = copy.copy(_members(imputer)[0])
    state = dict(old.__getstate__())  # object.__getstate__ is the __dict__ itself
    state["vae_"] = state.pop("estimators_")[0]
    del state["n_estimators"], state["n_components_"]
    restored = VAEImputer.__new__(VAEImputer)
    restored.__setstate__(state)
    assert restored.n_estimators == 1 and len(restored.estimators_) == 1
    assert restored.n_components_ == 2
    np.testing.assert_array_equal(
        restored.transform(X_missing[:20]), old.transform(X_missing[:20])
    )


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 1 epoch
@pytest.mark.parametrize("n_features, expected", [(3, 4), (14, 4), (15, 5), (30, 10)])
def test_auto_n_components_grows_with_the_columns(n_features, expected):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(30, 1)) + 0.5 * rng.normal(size=(30, n_features))
    X_missing, _ = holes(X)
    params = {**FAST, "n_components": "auto", "max_iter": 1}
    imputer = VAEImputer(**params).fit(X_missing)
    assert imputer.n_components_ == expected
    assert imputer.estimators_[0].n_components == expected
    explicit = VAEImputer(**{**params, "n_components": 3}).fit(X_missing)
    assert explicit.n_components_ == 3 and explicit.estimators_[0].n_components == 3


def test_the_models_warnings_are_passed_on_once():
    rng = np.random.RandomState(0)  # one factor: most of 6 dimensions stay unused
    kind = rng.choice(["small", "large"], 300)
    size = np.where(kind == "large", 2.0, -2.0) + rng.normal(size=300)
    X_missing = pd.DataFrame({"kind": kind, "size": size, "weight": 2 * size})
    X_missing.loc[:29, "size"] = np.nan
    X_missing.loc[30:59, "kind"] = None
    # On the CPU, where this seed's first model collapses (CUDA draws other numbers).
    imputer = VAEImputer(
        n_components=6, max_iter=30, n_estimators=2, random_state=0, device="cpu"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        imputer.fit(X_missing)
    with pytest.warns(PosteriorCollapseWarning):  # what a model says alone
        clone(imputer.estimators_[0]).fit(X_missing)
    categories = [w.category for w in caught]
    assert PosteriorCollapseWarning not in categories
    assert categories.count(ConvergenceWarning) == 1
    message = str(next(w.message for w in caught if w.category is ConvergenceWarning))
    assert "of VAEImputer's 2 models used all 30 epochs" in message
    assert "increase max_iter" in message.lower()


def test_a_warning_about_the_data_is_passed_on_once():
    # every model warned that the names look like identifiers: three warnings
    rng = np.random.RandomState(0)
    X = pd.DataFrame(
        {"x": rng.normal(size=200), "name": [f"n{i}" for i in rng.permutation(200)]}
    )
    X.loc[:9, "x"] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        VAEImputer(**{**TINY, "n_estimators": 3}).fit(X)
    identifiers = [w for w in caught if "identifiers" in str(w.message)]
    assert len(identifiers) == 1


def test_a_failed_fit_leaves_the_imputer_as_it_was(array_case, monkeypatch):
    _, X_missing, _, _ = array_case
    imputer = VAEImputer(**FAST).fit(X_missing[:200])
    models, before = imputer.estimators_, imputer.transform(X_missing[:50])

    def failing(self, X, y=None):
        raise RuntimeError("boom")

    monkeypatch.setattr(VAETransformer, "fit", failing)
    wide = pd.DataFrame(np.column_stack([X_missing[:200], X_missing[:200]]))
    wide.columns = [f"c{j}" for j in range(6)]
    with pytest.raises(RuntimeError, match="boom"):
        imputer.fit(wide)
    assert imputer.estimators_ is models and imputer.n_features_in_ == 3
    assert not hasattr(imputer, "feature_names_in_")
    np.testing.assert_array_equal(imputer.transform(X_missing[:50]), before)
    fresh = VAEImputer(**FAST)
    with pytest.raises(RuntimeError, match="boom"):
        fresh.fit(X_missing[:200])
    with pytest.raises(NotFittedError):
        fresh.transform(X_missing[:50])


def test_features_with_no_observed_value_are_named():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3))
    X[:, 1] = np.nan
    X[:5, 0] = np.nan
    with pytest.warns(UserWarning, match=r"Features \['x1'\] have no observed values"):
        out = VAEImputer(**{**FAST, "max_iter": 5}).fit_transform(X)
    np.testing.assert_array_equal(out[:, 1], 0.0)
    frame = pd.DataFrame({"a": X[:, 0], "b": pd.Series([None] * 60, dtype=object)})
    frame["c"] = rng.choice(["u", "v"], 60)
    with pytest.warns(UserWarning, match=r"\['b'\].*leaves a categorical one missing"):
        out = VAEImputer(**{**FAST, "max_iter": 5}).fit_transform(frame)
    assert out["b"].isna().all() and not out[["a", "c"]].isna().any().any()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # none without empty features
        warnings.simplefilter("ignore", ConvergenceWarning)
        VAEImputer(**{**FAST, "max_iter": 5}).fit(X[:, [0, 2]])


def test_float32_in_float32_out(array_case):
    _, X_missing, _, imputer = array_case
    out = imputer.transform(X_missing[:20].astype(np.float32))
    assert out.dtype == np.float32 and not np.isnan(out).any()


def test_a_model_fitted_without_missing_values_imputes_too():
    X = correlated()
    imputer = VAEImputer(**PAIR).fit(X)
    X_missing, mask = holes(X)
    out = imputer.transform(X_missing)
    error = np.sqrt(np.mean((out[mask] - X[mask]) ** 2))
    mean_error = np.sqrt(np.mean((X.mean(0)[np.nonzero(mask)[1]] - X[mask]) ** 2))
    assert not np.isnan(out).any() and error < 0.7 * mean_error
    members = [single.transform(X_missing) for single in _members(imputer)]
    np.testing.assert_allclose(out, np.mean(members, axis=0))  # the models' mean


def test_missing_values_placeholder():
    X = correlated(300)
    X_missing, mask = holes(X)
    X_placeholder = np.where(mask, -999.0, X_missing)
    imputer = VAEImputer(missing_values=-999.0, n_components=2, max_iter=5, random_state=0)
    out = imputer.fit_transform(X_placeholder)
    assert not (out == -999.0).any()
    np.testing.assert_array_equal(out[~mask], X[~mask])


@pytest.mark.parametrize("placeholder", [pd.NA, None, "?"])
def test_placeholders_that_are_not_numbers_mark_an_object_array(placeholder):
    # pd.NA raised numpy's "arrays used as indices must be of integer (or
    # boolean) type"; None and "?" failed float conversion of the array
    X = correlated(200)
    X_missing, mask = holes(X)
    marked = X.astype(object)
    marked[mask] = placeholder
    imputer = VAEImputer(
        missing_values=placeholder, n_components=2, max_iter=3, random_state=0
    )
    out = imputer.fit_transform(marked)
    assert out.dtype == np.float64 and np.isfinite(out).all()
    np.testing.assert_array_equal(out[~mask], X[~mask])
    # not modified in place
    assert all(v is placeholder for v in marked[mask])
    assert (marked[~mask] == X[~mask]).all()
    numbers = imputer.transform(X[:5])  # a float array holds none: nothing to impute
    np.testing.assert_array_equal(numbers, X[:5])


def test_pd_na_marks_the_missing_cells_of_a_dataframe(tmp_path):
    frame = make_frame(100).astype({"size": "Float64"})
    frame.loc[:9, "size"] = pd.NA
    imputer = VAEImputer(missing_values=pd.NA, n_components=2, max_iter=3, random_state=0)
    filled = imputer.fit_transform(frame)
    assert not filled.isna().any().any()
    loaded = VAEImputer.load(imputer.save(tmp_path / "na.skvae"))  # pd.NA is saved
    assert loaded.missing_values is pd.NA
    pd.testing.assert_frame_equal(loaded.transform(frame), filled)


def test_dataframe_comes_back_with_its_columns_and_dtypes(frame_case):
    frame, missing, imputer = frame_case
    before = missing.copy()
    out = imputer.transform(missing)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(missing.columns)
    assert out.dtypes.tolist() == missing.dtypes.tolist()
    assert not out.isna().any().any()
    assert set(out["kind"]) <= {"low", "high"} and set(out["label"]) <= {"pos", "neg"}
    observed = missing.notna()
    for name in frame.columns:
        pd.testing.assert_series_equal(
            out[name][observed[name]], missing[name][observed[name]]
        )
    pd.testing.assert_frame_equal(missing, before)  # input not modified


def test_categorical_cells_get_the_level_the_other_columns_imply(frame_case):
    frame, missing, imputer = frame_case
    out = imputer.transform(missing)
    holes_ = missing["kind"].isna() & missing["size"].notna()
    assert holes_.sum() > 50
    accuracy = (out["kind"][holes_] == frame["kind"][holes_]).mean()
    assert accuracy > 0.95
    sizes = missing["size"].isna() & missing["kind"].notna()
    error = np.abs(out["size"][sizes] - frame["size"][sizes]).mean()
    assert error < 1.5  # the level's mean is within 1 of the value; the global one, 3


def test_a_skewed_column_gets_its_conditional_mean_not_its_median():
    # A lognormal column independent of the others: E[x | rest] is its mean,
    # exp(1/2) = 1.65, while mapping the decoder mean back gives the median, 1.
    rng = np.random.RandomState(0)
    n = 800
    t = rng.normal(size=n)
    frame = pd.DataFrame(
        {"a": t, "b": t + 0.3 * rng.normal(size=n), "skewed": np.exp(rng.normal(size=n))}
    )
    missing = frame.copy()
    missing.loc[rng.rand(n) < 0.2, "skewed"] = np.nan
    out = VAEImputer(**FAST).fit_transform(missing)
    imputed = out["skewed"][missing["skewed"].isna()]
    assert abs(imputed.mean() - np.exp(0.5)) < 0.25


def test_numeric_transform_reaches_the_model():
    frame = make_frame(200)
    frame.loc[:19, "size"] = np.nan
    imputer = VAEImputer(**{**FAST, "max_iter": 2}, numeric_transform="standard")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # two epochs: convergence
        imputer.fit(frame)
    numeric = [c for c in imputer.estimators_[0]._table.columns if c.kind == "numeric"]
    assert numeric and {c.transform for c in numeric} == {"standard"}
    with pytest.raises(ValueError, match="numeric_transform"):
        VAEImputer(numeric_transform="log").fit(frame)


def test_models_train_on_every_row_unless_early_stopping_is_asked_for():
    frame = make_frame(200)
    frame.loc[:19, "size"] = np.nan
    fit = {**FAST, "max_iter": 3}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # three epochs: convergence
        default = VAEImputer(**fit).fit(frame).estimators_[0]
        stopped = VAEImputer(**fit, early_stopping="auto").fit(frame).estimators_[0]
    assert default.early_stopping is False and default.validation_scores_ is None
    assert stopped.early_stopping == "auto" and len(stopped.validation_scores_) == 3


def test_complete_data_come_back_unchanged(frame_case):
    frame, _, imputer = frame_case
    pd.testing.assert_frame_equal(imputer.transform(frame), frame)


def test_a_linear_imputer_imputes():
    # the memory check read the widest layer as max(width), a TypeError
    X = correlated(60)
    X[::7, 0] = np.nan
    imputer = VAEImputer(hidden_layer_sizes=(), n_estimators=1, max_iter=3, random_state=0)
    assert np.isfinite(imputer.fit(X).transform(X)).all()


def test_errors_of_the_models_name_the_imputer():
    X = correlated(20)
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"1 sample\(s\), but VAEImputer needs at least 2"):
        VAEImputer().fit(X[:1])
    with pytest.raises(ValueError, match="out of 2 samples; VAEImputer needs at least 2"):
        VAEImputer(early_stopping=True).fit(X[:2])


def test_a_dataframe_model_refuses_an_array(frame_case):
    # numpy's "could not convert string to float: 'b'"
    _, missing, imputer = frame_case
    with pytest.raises(ValueError, match="fitted on a DataFrame; pass a DataFrame"):
        imputer.transform(missing.to_numpy())


def test_dataframe_needs_nan_as_missing_values():
    imputer = VAEImputer(missing_values=-1, max_iter=2)
    with pytest.raises(ValueError, match="mark missing cells as NaN"):
        imputer.fit(make_frame(50))


def test_clone_keeps_parameters():
    imputer = VAEImputer(n_components=3, n_importance_samples=7, random_state=2)
    assert clone(imputer).get_params() == imputer.get_params()


def test_declares_missing_values_in_tags():
    assert VAEImputer().__sklearn_tags__().input_tags.allow_nan


def test_feature_names_out_are_the_input_names(frame_case):
    _, missing, imputer = frame_case
    np.testing.assert_array_equal(imputer.get_feature_names_out(), missing.columns)


def test_imputes_on_each_device(device):
    X_missing, _ = holes(correlated(200))
    imputer = VAEImputer(n_components=2, max_iter=3, device=device, random_state=0)
    out = imputer.fit_transform(X_missing)
    assert not np.isnan(out).any()
    np.testing.assert_array_equal(out, imputer.transform(X_missing))


# ------------------------------------------------------------------ save/load
def _rewritten(path, tmp_path, change_meta=None, members=None):
    """A copy of the saved imputer at ``path``, its JSON and members changed."""
    import io
    import json
    import zipfile

    with zipfile.ZipFile(path) as archive:
        content = {name: archive.read(name) for name in archive.namelist()}
    if change_meta is not None:
        meta = json.loads(content["skvae.json"])
        change_meta(meta)
        content["skvae.json"] = json.dumps(meta).encode()
    if members is not None:
        members(content)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in content.items():
            archive.writestr(name, data)
    bad = tmp_path / "bad.skvae"
    bad.write_bytes(out.getvalue())
    return bad


@pytest.mark.parametrize("case", ["array_case", "frame_case"])
def test_save_load_imputes_as_the_saved_imputer(case, request, tmp_path):
    _, X_missing, *_, imputer = request.getfixturevalue(case)
    loaded = VAEImputer.load(imputer.save(tmp_path / "imputer.skvae"))
    params, expected = loaded.get_params(), imputer.get_params()
    assert np.isnan(params.pop("missing_values"))
    assert np.isnan(expected.pop("missing_values"))
    assert type(loaded) is VAEImputer and params == expected
    assert loaded.n_components_ == imputer.n_components_
    assert loaded.n_iter_ == imputer.n_iter_ and len(loaded.estimators_) == 2
    filled = imputer.transform(X_missing[:60])
    if isinstance(filled, pd.DataFrame):
        pd.testing.assert_frame_equal(loaded.transform(X_missing[:60]), filled)
        assert list(loaded.feature_names_in_) == list(imputer.feature_names_in_)
    else:
        np.testing.assert_array_equal(loaded.transform(X_missing[:60]), filled)


def test_save_load_through_file_objects_and_keeps_set_output(frame_case):
    import io

    _, X_missing, imputer = frame_case
    imputer = copy.deepcopy(imputer).set_output(transform="default")
    buffer = io.BytesIO()
    assert imputer.save(buffer) is buffer
    buffer.seek(0)
    loaded = VAEImputer.load(buffer)
    assert loaded._sklearn_output_config == {"transform": "default"}
    np.testing.assert_array_equal(
        loaded.transform(X_missing[:30]), imputer.transform(X_missing[:30])
    )


def test_save_load_keeps_array_parameters(tmp_path):
    # A RandomState, or hidden_layer_sizes as an array, is stored as a model's
    # are: save refused them ("Cannot save the imputer's arrays").
    rng = np.random.RandomState(0)
    X = rng.normal(size=(80, 4))
    X[rng.rand(80, 4) < 0.2] = np.nan
    imputer = VAEImputer(
        n_estimators=1,
        max_iter=3,
        hidden_layer_sizes=np.array([8]),
        random_state=np.random.RandomState(0),
    ).fit(X)
    path = imputer.save(tmp_path / "imputer.skvae")
    with zipfile.ZipFile(path) as archive:  # a layout older versions cannot read
        assert json.loads(archive.read("skvae.json"))["format_version"] == 5
        weights = archive.read("weights.safetensors")
        members = {name: archive.read(name) for name in archive.namelist()}
    loaded = VAEImputer.load(path)
    assert isinstance(loaded.random_state, np.random.RandomState)
    assert list(loaded.hidden_layer_sizes) == [8]
    np.testing.assert_array_equal(loaded.transform(X), imputer.transform(X))
    with pytest.raises(ValueError, match="is a VAEImputer's file"):
        VAETransformer.load(tmp_path / "imputer.skvae")
    # its weights are checked as a model's: skvae's header
    from safetensors.torch import load, save

    members["weights.safetensors"] = save(load(weights), metadata={"format": "other"})
    with zipfile.ZipFile(tmp_path / "bad.skvae", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ValueError, match="header is not skvae's"):
        VAEImputer.load(tmp_path / "bad.skvae")


def test_a_frame_given_to_an_imputer_of_an_array_is_checked_for_infinity():
    # it skipped the checks: inf reached the models ("sample overflowed ...
    # Refit the model"), and a row holding inf and no hole came back with it
    rng = np.random.RandomState(0)
    imputer = VAEImputer(n_estimators=1, max_iter=3, random_state=0).fit(
        rng.normal(size=(80, 3))
    )
    frame = pd.DataFrame({"a": [np.inf, 1.0], "b": [np.nan, 1.0], "c": [0.5, 0.5]})
    with pytest.raises(ValueError, match="Input X contains infinity.*column 'a'"):
        imputer.transform(frame)
    filled = imputer.transform(frame.assign(a=[0.3, 1.0]))
    assert np.isfinite(np.asarray(filled, dtype=float)).all()
    assert np.asarray(filled)[0, 0] == 0.3


def test_save_needs_a_fitted_imputer(tmp_path):
    with pytest.raises(NotFittedError):
        VAEImputer().save(tmp_path / "imputer.skvae")
    assert not (tmp_path / "imputer.skvae").exists()


def test_a_failed_save_keeps_the_previous_file(array_case, tmp_path):
    *_, imputer = array_case
    path = imputer.save(tmp_path / "imputer.skvae")
    before = path.read_bytes()
    broken = copy.deepcopy(imputer)
    broken.estimators_[1].set_params(hidden_layer_sizes=(3,))  # no longer its network
    with pytest.raises(ValueError, match="parameters were changed after fit"):
        broken.save(path)
    assert path.read_bytes() == before


def test_a_frames_imputed_numbers_stay_in_the_fitted_range():
    # A mean of values in the range, rounded: a constant column of 7.0 was
    # imputed as 7.0000000000000115 and 6.999999999999985.
    rng = np.random.RandomState(0)
    n = 200
    frame = pd.DataFrame(
        {"x": rng.randn(n), "const": np.full(n, 7.0), "c": rng.choice(["a", "b"], n)}
    )
    frame.loc[rng.rand(n) < 0.2, "const"] = np.nan
    filled = VAEImputer(**{**FAST, "max_iter": 5}).fit_transform(frame)
    assert (filled["const"] == 7.0).all()


def test_tags_and_dtypes_follow_the_placeholder():
    # allow_nan was True whatever missing_values was (scikit-learn's checks put
    # NaN into data an imputer of -1 refuses); with None as the placeholder a
    # float32 X came back float64 and complex data raised float()'s TypeError.
    assert VAEImputer().__sklearn_tags__().input_tags.allow_nan
    assert not VAEImputer(missing_values=-1.0).__sklearn_tags__().input_tags.allow_nan
    X = correlated(60).astype(np.float32)
    imputer = VAEImputer(**{**FAST, "max_iter": 3}, missing_values=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert imputer.fit_transform(X).dtype == np.float32
    with pytest.raises(ValueError, match="Complex data not supported"):
        imputer.fit(X.astype(complex))


def test_save_refuses_an_n_estimators_changed_after_fit(array_case, tmp_path):
    # save wrote a file that load refused as "corrupted" (models should be 5).
    *_, imputer = array_case
    changed = copy.deepcopy(imputer).set_params(n_estimators=imputer.n_estimators + 3)
    with pytest.raises(ValueError, match="n_estimators was changed after fit"):
        changed.save(tmp_path / "imputer.skvae")
    assert not (tmp_path / "imputer.skvae").exists()


def test_one_ctrl_c_stops_the_whole_fit(array_case, monkeypatch):
    # Each model kept what it had learned and the next one started: the user
    # pressed Ctrl-C once per model and got a mix of stopped and full models.
    _, X_missing, _, fitted = array_case
    imputer = copy.deepcopy(fitted)
    before = [vae.n_iter_ for vae in imputer.estimators_]
    import skvae._training

    calls, original = [0], skvae._training._check_finite

    def ctrl_c_in_the_second_epoch(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(skvae._training, "_check_finite", ctrl_c_in_the_second_epoch)
    with pytest.raises(KeyboardInterrupt), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imputer.set_params(max_iter=10).fit(X_missing)
    assert calls[0] == 2  # no model trained after it
    assert [vae.n_iter_ for vae in imputer.estimators_] == before  # as it was


def test_transform_works_with_n_jobs_set_after_fit(array_case, monkeypatch):
    # transform ran at the n_jobs its models copied at fit.
    _, X_missing, _, imputer = array_case
    seen, original = [], skvae._base.torch_threads

    def recording(n_threads):
        seen.append(n_threads)
        return original(n_threads)

    monkeypatch.setattr(skvae._base, "torch_threads", recording)
    changed = copy.deepcopy(imputer).set_params(n_jobs=2)
    changed.transform(X_missing)
    assert seen and set(seen) == {min(2, joblib.cpu_count())}
    assert all(vae.n_jobs is None for vae in changed.estimators_)  # its models stay


def _model_of_another_class(content):
    import io

    X = correlated(200)
    other = io.BytesIO()
    from skvae import AutoencoderTransformer

    AutoencoderTransformer(n_components=2, max_iter=2).fit(X).save(other)
    content["estimators/1.skvae"] = other.getvalue()


def _model_of_other_data(content):
    import io

    X = np.c_[correlated(200), correlated(200, seed=1)[:, :1]]  # four columns
    other = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        VAETransformer(n_components=2, max_iter=2).fit(X).save(other)
    content["estimators/1.skvae"] = other.getvalue()


IMPUTER_CORRUPTIONS = {
    "a model short": (
        None,
        lambda c: c.pop("estimators/1.skvae"),
        r"models should be 2 \(n_estimators\), got 1",
    ),
    "a model too many": (
        None,
        lambda c: c.update({"estimators/5.skvae": c["estimators/0.skvae"]}),
        "is not a file written by skvae's save",
    ),
    "n_estimators disagrees": (
        lambda m: m["params"]["dict"].update(n_estimators=3),
        None,
        r"models should be 3 \(n_estimators\), got 2",
    ),
    "a model's weights cut": (
        None,
        lambda c: c.update({"estimators/0.skvae": c["estimators/0.skvae"][:-100]}),
        "estimators/0.skvae",
    ),
    "a model of another class": (
        None,
        _model_of_another_class,
        "has a model estimators/1.skvae that holds a 'AutoencoderTransformer'",
    ),
    "a model of other data": (None, _model_of_other_data, "estimators/1.skvae's input"),
    "n_components_ disagrees": (
        lambda m: m["attributes"]["dict"].update(n_components_=3),
        None,
        "estimators/0.skvae's n_components should be 3",
    ),
    "n_iter_ disagrees": (
        lambda m: m["attributes"]["dict"].update(n_iter_=10**6),
        None,
        "n_iter_ should be",
    ),
    "an unknown attribute": (
        lambda m: m["attributes"]["dict"].update(vae_=1),
        None,
        r"unexpected attribute 'vae_'; a fitted VAEImputer has none such",
    ),
    "a model's attribute": (
        lambda m: m["attributes"]["dict"].update(_density_rows=5),
        None,
        r"unexpected attribute '_density_rows'",
    ),
    "an invalid parameter": (
        lambda m: m["params"]["dict"].update(n_importance_samples=0),
        None,
        "has an invalid parameter",
    ),
    "an unknown format version": (
        lambda m: m.update(format_version=99),
        None,
        "uses skvae file format version 99",
    ),
}


@pytest.mark.parametrize("corruption", list(IMPUTER_CORRUPTIONS))
def test_load_refuses_a_corrupted_imputer(corruption, array_case, tmp_path):
    *_, imputer = array_case
    path = imputer.save(tmp_path / "imputer.skvae")
    change_meta, members, message = IMPUTER_CORRUPTIONS[corruption]
    bad = _rewritten(path, tmp_path, change_meta, members)
    with pytest.raises(ValueError, match=message):
        VAEImputer.load(bad)


def test_imputer_and_model_files_are_not_interchangeable(array_case, tmp_path):
    *_, imputer = array_case
    imputer_file = imputer.save(tmp_path / "imputer.skvae")
    model_file = imputer.estimators_[0].save(tmp_path / "model.skvae")
    # each says which load reads it (both said "is not a file written by skvae's save")
    with pytest.raises(ValueError, match="is a VAEImputer's file: load it with VAEImputer"):
        VAETransformer.load(imputer_file)
    with pytest.raises(ValueError, match="is a single model's file .* that class's load"):
        VAEImputer.load(model_file)


TINY = dict(hidden_layer_sizes=(8,), max_iter=3, n_estimators=1, random_state=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_a_narrow_float_column_is_imputed_in_its_own_dtype(dtype):
    # pandas refuses float64 values in a float32 column: the imputations were set
    # as float64 and transform raised a raw TypeError
    X = pd.DataFrame(
        {
            "f": np.array([1.5, 2.0, np.nan, 4.0] * 10, dtype=dtype),
            "c": ["a", "b", "c", "a"] * 10,
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        out = VAEImputer(**TINY).fit(X).transform(X)
    assert out["f"].dtype == dtype and not out["f"].isna().any()
    assert X["f"].isna().sum() == 10  # X itself is untouched


def test_imputed_levels_missing_from_a_category_dtype_are_added_to_it():
    # a test split's Categorical built from its own values lacks a fitted level
    X = pd.DataFrame(
        {
            "x": np.r_[np.nan, np.arange(39.0)],
            "k": pd.Categorical(["r"] * 30 + ["p", "q"] * 5),
        }
    )
    X.loc[[1, 2, 3], "k"] = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        imputer = VAEImputer(**TINY).fit(X)
    X_test = X.copy()
    X_test["k"] = X["k"].cat.remove_categories(["r"])  # its rows become missing
    out = imputer.transform(X_test)
    assert not out["k"].isna().any()
    assert list(out["k"].cat.categories[:2]) == ["p", "q"]  # the declared ones first
    assert set(out["k"]) <= {"p", "q", "r"} and "r" in set(out["k"])
    assert list(X_test["k"].cat.categories) == ["p", "q"]


def test_an_imputer_fitted_on_an_array_takes_a_frame_by_position():
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"x": rng.randn(40), "y": rng.randn(40)})
    frame.iloc[0, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        imputer = VAEImputer(**TINY).fit(frame.to_numpy())
    with pytest.warns(UserWarning, match="fitted without feature names"):
        out = imputer.transform(frame)
    np.testing.assert_allclose(out, imputer.transform(frame.to_numpy()))


def test_columns_with_no_value_in_fit_stay_missing():
    # an all-missing category column crashed transform ("Categorical categories
    # cannot be null"), and an all-missing nullable boolean one was filled with
    # values the models never saw, though the warning says such columns stay missing
    rng = np.random.RandomState(0)
    X = pd.DataFrame(
        {
            "a": rng.normal(size=40),
            "z": pd.Categorical([None] * 40, categories=["p", "q"]),
            "flag": pd.Series([None] * 40, dtype="boolean"),
        }
    )
    X.loc[:4, "a"] = np.nan
    with pytest.warns(UserWarning, match=r"\['z', 'flag'\] have no observed values"):
        imputer = VAEImputer(**TINY).fit(X)
    out = imputer.transform(X)
    assert not out["a"].isna().any()
    assert out["z"].isna().all() and out["flag"].isna().all()
    assert out["z"].dtype == X["z"].dtype and out["flag"].dtype == "boolean"


def test_a_column_whose_levels_are_all_pooled_is_imputed():
    # every level rare: no kept level, only the pool, and the cells were left
    # missing as if the column had no value in fit
    rng = np.random.RandomState(0)
    X = pd.DataFrame(
        {
            "x": rng.normal(size=400),
            "name": pd.Series([f"n{i}" for i in rng.permutation(400)], dtype=object),
        }
    )
    X.loc[rng.rand(400) < 0.1, "name"] = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imputer = VAEImputer(**TINY).fit(X)
    column = {c.name: c for c in imputer.estimators_[0]._table.columns}["name"]
    assert column.levels == [] and column.rare
    out = imputer.transform(X)
    assert not out["name"].isna().any()
    assert set(out["name"]) <= set(X["name"].dropna())


@pytest.mark.parametrize("kind", ["boolean", "category"])
def test_a_gate_is_imputed_to_a_state_its_observed_child_allows(kind):
    # income is observed only for paid jobs: imputing "unpaid" beside an observed
    # income broke the rule the models learned (13% of such rows), where
    # sample(given=) kept it
    rng = np.random.RandomState(0)
    n = 600
    z = rng.normal(size=n)
    paid = z + 0.5 * rng.normal(size=n) > 0
    frame = pd.DataFrame(
        {
            "income": np.where(paid, np.exp(z + 0.3 * rng.normal(size=n)), np.nan),
            "age": 40 + 10 * z + 5 * rng.normal(size=n),
        }
    )
    if kind == "boolean":
        frame["job"] = pd.array(paid, dtype="boolean")
    else:
        levels = np.where(paid, np.where(rng.rand(n) < 0.5, "full", "part"), "none")
        frame["job"] = pd.Categorical(levels)
    hidden = rng.rand(n) < 0.3
    frame.loc[hidden, "job"] = pd.NA if kind == "boolean" else np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imputer = VAEImputer(**FAST).fit(frame)
    out = imputer.transform(frame)
    paying = hidden & frame["income"].notna().to_numpy()
    unpaid = False if kind == "boolean" else "none"
    assert paying.sum() > 50 and not (out.loc[paying, "job"] == unpaid).any()
    # rows with no income may be imputed either way
    assert (out.loc[hidden & ~paying, "job"] == unpaid).mean() > 0.5
    # the rows that observe the job keep it, and no imputed job is missing
    assert out["job"].notna().all()
    pd.testing.assert_series_equal(out.loc[~hidden, "job"], frame.loc[~hidden, "job"])


def test_gates_up_a_chain_of_rules_are_imputed_within_them():
    # income is observed only for full-time jobs, and a job kind only for a
    # sector other than "none": an observed income hiding both was imputed
    # sector "none" beside kind "full" in 53 of 128 rows (the direct gate only
    # was kept to its rule)
    rng = np.random.RandomState(0)
    n = 800
    z = rng.normal(size=n)
    employed = z + rng.normal(size=n) > 0
    full = employed & (rng.rand(n) < 0.5)
    frame = pd.DataFrame(
        {
            "age": 40 + 10 * z + 5 * rng.normal(size=n),
            "sector": pd.Categorical(
                np.where(employed, np.where(rng.rand(n) < 0.5, "private", "public"), "none")
            ),
            "kind": pd.Categorical(
                np.where(employed, np.where(full, "full", "part"), None)
            ),
            "income": np.where(full, np.exp(z + 0.3 * rng.normal(size=n)), np.nan),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imputer = VAEImputer(**FAST).fit(frame)
    table = imputer.estimators_[0]._table
    chain = {
        (table.columns[r["column"]].name, table.columns[r["gate"]].name)
        for r in table.gates
    }
    assert {("income", "kind"), ("kind", "sector")} <= chain
    hidden = np.random.RandomState(1).rand(n) < 0.5
    holes = frame.copy()
    holes.loc[hidden, ["sector", "kind"]] = np.nan
    out = imputer.transform(holes)
    paid = hidden & frame["income"].notna().to_numpy()
    assert paid.sum() > 50
    assert (out.loc[paid, "kind"] == "full").all()
    assert not (out.loc[paid, "sector"] == "none").any()
