"""Shared fixtures: tiny datasets, a sweepable seed, and a device that skips without CUDA."""

import os
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

ESTIMATOR_NAMES = ["AutoencoderTransformer", "VAETransformer"]


@pytest.fixture(autouse=True)
def _quiet_convergence():
    """Few-epoch fits are the norm in tests; their ConvergenceWarning is noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Maximum iterations")
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


def make_manifold(n_samples=400, n_features=6, seed=0, noise=0.02):
    """A 1-d curved manifold (a helix-like curve) embedded in ``n_features`` dims."""
    rng = np.random.RandomState(seed)
    t = rng.uniform(-np.pi, np.pi, n_samples)
    curve = np.column_stack([np.sin(t), np.cos(t), np.sin(2 * t), np.cos(2 * t), t / np.pi])
    mixing = rng.normal(size=(curve.shape[1], n_features))
    X = curve @ mixing + noise * rng.normal(size=(n_samples, n_features))
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
