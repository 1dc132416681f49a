"""dask: Incremental training, parallel transform, GridSearchCV on a LocalCluster."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skvae import AutoencoderTransformer, VAETransformer

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
wrappers = pytest.importorskip("dask_ml.wrappers")
joblib = pytest.importorskip("joblib")

SMALL = {
    "n_components": 2,
    "hidden_layer_sizes": (8,),
    "max_iter": 2,
    "batch_size": 32,
    "density_components": 2,
    "random_state": 0,
}
ESTIMATORS = [AutoencoderTransformer, VAETransformer]

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning",
    "ignore:Only .* latent dimensions are active:UserWarning",
)


@pytest.fixture(scope="module")
def X():
    return np.random.RandomState(0).uniform(size=(120, 5))


@pytest.fixture(scope="module")
def dX(X):
    return da.from_array(X, chunks=(40, 5))


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        dashboard_address=None,
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_incremental_trains_one_partial_fit_per_block(Estimator, X, dX):
    inc = wrappers.Incremental(Estimator(**SMALL), shuffle_blocks=False)
    inc.fit(dX)

    # The same partial_fit calls, block by block, in memory.
    expected = Estimator(**SMALL)
    for start in range(0, X.shape[0], 40):
        expected.partial_fit(X[start : start + 40])
    assert inc.estimator_.n_iter_ == dX.numblocks[0] == 3
    assert_array_equal(inc.estimator_.transform(X), expected.transform(X))
    assert inc.estimator_.loss_curve_ == expected.loss_curve_


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_parallel_post_fit_transforms_blocks(Estimator, X, dX, client):
    est = Estimator(**SMALL).fit(X)
    Z = wrappers.ParallelPostFit(est).transform(dX)
    assert isinstance(Z, da.Array)
    # dask-ml maps blocks with X's chunks, so the lazy Z.shape claims X's
    # width; only the computed array has the right shape.
    Z = Z.compute()
    assert Z.shape == (X.shape[0], 2)
    assert_allclose(Z, est.transform(X), rtol=1e-12, atol=1e-12)
    # ParallelPostFit.score requires a y; unsupervised scores pass None.
    score = wrappers.ParallelPostFit(est).score(dX, None)
    assert score == pytest.approx(est.score(X), rel=1e-12)


def test_map_blocks_transform_matches(X, dX, client):
    est = VAETransformer(**SMALL).fit(X)
    Z = dX.map_blocks(est.transform, chunks=(dX.chunks[0], (2,)), dtype=X.dtype)
    assert_allclose(Z.compute(), est.transform(X), rtol=1e-12, atol=1e-12)


def test_grid_search_on_a_local_cluster(X, client):
    from sklearn.model_selection import GridSearchCV

    grid = {"n_components": [1, 2], "beta": [0.5, 1.0]}
    search = GridSearchCV(VAETransformer(**SMALL), grid, cv=2, n_jobs=2)
    with distributed.get_task_stream(client) as tasks, joblib.parallel_backend("dask"):
        search.fit(X)
    # The fits ran on the cluster, in batches of calls (the task stream may
    # miss a batch that ends as it is collected, so count at least one).
    keys = [str(task["key"]) for task in tasks.data]
    assert any(key.startswith("batch_of__fit_and_score") for key in keys)
    assert len(search.cv_results_["params"]) == 4
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_params_ in search.cv_results_["params"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert (
            search.best_estimator_.transform(X).shape[1]
            == search.best_params_["n_components"]
        )


def test_a_dask_dataframe_is_refused_with_advice(X):
    # Read as a pandas one, it failed inside dask ("Trying to convert ... to a
    # boolean value") in fit, and in VAEImputer with an AttributeError.
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    from skvae import VAEImputer

    frame = pd.DataFrame(X, columns=list("abcde"))
    lazy = dd.from_pandas(frame, npartitions=2)
    match = r"X is a dask\.DataFrame.*\.compute\(\)"
    with pytest.raises(TypeError, match=match):
        VAETransformer(**SMALL).fit(lazy)
    with pytest.raises(TypeError, match=match):
        VAEImputer(n_estimators=1, max_iter=2).fit(lazy)
    fitted = VAETransformer(**SMALL).fit(frame)
    with pytest.raises(TypeError, match=match):
        fitted.transform(lazy)
    with pytest.raises(TypeError, match=r"given is a dask\.DataFrame"):
        fitted.sample(2, given=lazy.head(2, compute=False))
    # its partitions are pandas frames, which dask-ml's wrappers pass
    parts = [lazy.get_partition(i).compute() for i in range(lazy.npartitions)]
    codes = np.vstack([fitted.transform(part) for part in parts])
    assert_allclose(codes, fitted.transform(frame))
