"""scikit-learn's estimator checks, with no expected failures."""

import warnings

from sklearn.utils.estimator_checks import parametrize_with_checks

from skvae import AutoencoderTransformer, VAEImputer, VAETransformer

FAST = dict(hidden_layer_sizes=(8,), max_iter=3, batch_size=16, random_state=0)
INSTANCES = [
    AutoencoderTransformer(n_components=2, **FAST),
    VAETransformer(n_components=2, n_importance_samples=3, **FAST),
    VAETransformer(n_components=2, sample_from="posterior", early_stopping=True, **FAST),
    VAEImputer(n_components=2, n_importance_samples=5, n_estimators=2, **FAST),
]


@parametrize_with_checks(INSTANCES)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*(still improving|too few to tell|latent dimensions).*"
        )
        check(estimator)
