"""Shared fixtures: tiny datasets, a sweepable seed, a device that skips without CUDA."""

import os
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One intra-op thread per xdist worker: several workers each spinning two
    # OpenMP threads on a 2-core machine run 10-100x slower than one each.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _quiet_convergence():
    """Few-epoch fits are the norm in tests; their ConvergenceWarning is noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".* (used all|ran only) \d+ epoch")
        warnings.filterwarnings("ignore", message=".*latent dimensions are active")
        yield


@pytest.fixture
def seed():
    """The seed of randomised tests; sweep with SKVAE_SEED=1 pytest ..."""
    return int(os.environ.get("SKVAE_SEED", "0"))


@pytest.fixture(scope="session")
def digits01():
    """300 digits scaled to [0, 1], as float64."""
    X, _ = load_digits(return_X_y=True)
    return X[:300] / 16.0


def make_manifold(n_samples=400, n_harmonics=3, seed=0, noise=0.05):
    """A closed curve in ``2 * n_harmonics`` dims: (sin kt, cos kt) for k = 1..n_harmonics.

    One latent angle drives every feature, but no linear subspace of fewer than
    all the dimensions holds the curve, so a nonlinear model with a 2-d code
    beats PCA with 2 components.
    """
    rng = np.random.RandomState(seed)
    t = rng.uniform(-np.pi, np.pi, n_samples)
    k = np.arange(1, n_harmonics + 1)
    X = np.column_stack([np.sin(np.outer(t, k)), np.cos(np.outer(t, k))])
    X += noise * rng.normal(size=X.shape)
    return (X - X.mean(0)) / X.std(0)


@pytest.fixture(scope="session")
def manifold():
    return make_manifold()


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request):
    """Each device to test on; the CUDA one skips cleanly where CUDA is absent."""
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    return request.param
