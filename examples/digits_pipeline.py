"""Reduce load_digits with skvae, classify, score and generate.

Run with ``python examples/digits_pipeline.py``. Prints how a VAE and an
autoencoder compare with PCA as the reduction step of a classifier, their
held-out scores, and the shape of generated rows.
"""

import warnings

from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skvae import AutoencoderTransformer, VAETransformer

warnings.filterwarnings("ignore", category=ConvergenceWarning)
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)

reducers = {
    "PCA": PCA(n_components=10, random_state=0),
    "AutoencoderTransformer": AutoencoderTransformer(n_components=10, random_state=0),
    "VAETransformer": VAETransformer(n_components=10, random_state=0),
}
print(f"{'reducer':<24}{'accuracy':>10}{'held-out score':>16}")
for name, reducer in reducers.items():
    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            ("reduce", reducer),
            ("clf", LogisticRegression(max_iter=2000)),
        ]
    ).fit(X_train, y_train)
    scaled_test = pipe["scale"].transform(X_test)
    print(
        f"{name:<24}{pipe.score(X_test, y_test):>10.3f}"
        f"{pipe['reduce'].score(scaled_test):>16.2f}"
    )

vae = reducers["VAETransformer"]
synthetic = pipe["scale"].inverse_transform(vae.sample(5, random_state=0))
print("generated rows:", synthetic.shape, "(score: mean log-likelihood in nats per row)")
