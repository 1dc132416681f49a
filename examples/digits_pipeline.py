"""Reduce load_digits with skvae, classify, score and generate.

Run with ``python examples/digits_pipeline.py``. Prints how a VAE and an
autoencoder compare with PCA as the reduction step of a classifier, how well
each models held-out digits, and the shape of generated rows.
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skvae import AutoencoderTransformer, VAETransformer

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)

reducers = {
    "PCA": PCA(n_components=10, random_state=0),
    "AutoencoderTransformer": AutoencoderTransformer(n_components=10, random_state=0),
    "VAETransformer": VAETransformer(n_components=10, random_state=0),
}
print(f"{'reducer (10 components)':<26}{'accuracy':>9}{'reconstruction error':>22}")
pipes = {}
for name, reducer in reducers.items():
    pipes[name] = pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            ("reduce", reducer),
            ("clf", LogisticRegression(max_iter=2000)),
        ]
    ).fit(X_train, y_train)
    Z_test = pipe[:-1].transform(X_test)
    scaled_test = pipe["scale"].transform(X_test)
    error = ((reducer.inverse_transform(Z_test) - scaled_test) ** 2).sum(axis=1).mean()
    print(f"{name:<26}{pipe.score(X_test, y_test):>9.3f}{error:>22.2f}")

# Both PCA (probabilistic PCA) and the VAE give log p(x) in nats per row. The
# median is shown beside the mean: a few test digits have ink where almost no
# training digit has any, values dozens of standard deviations out on a
# standardized pixel. The VAE's density mixes in a broad background with weight
# 1e-3 (half PPCA, half a heavy-tailed t), so such a row scores at most about
# 7.6 nats below PCA's density, and often far above it, instead of thousands
# of nats below it.
print(f"\n{'held-out log p(x), nats':<26}{'median':>9}{'mean':>12}")
for name in ("PCA", "VAETransformer"):
    scores = pipes[name]["reduce"].score_samples(pipes[name]["scale"].transform(X_test))
    print(f"{name:<26}{np.median(scores):>9.2f}{scores.mean():>12.2f}")

vae_pipe = pipes["VAETransformer"]
synthetic = vae_pipe["scale"].inverse_transform(
    vae_pipe["reduce"].sample(5, random_state=0)
)
print("\ngenerated digits:", synthetic.shape)
