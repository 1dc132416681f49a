"""
========================================
A 2-D latent space of handwritten digits
========================================

Reduce the 64-pixel images of :func:`~sklearn.datasets.load_digits` to two
numbers with PCA, an autoencoder and a VAE, and colour each image by its digit.
The two networks separate the classes much better than the linear projection.
"""

import os
import warnings

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from skvae import AutoencoderTransformer, VAETransformer

# The networks train for the default budget, max_iter="auto" (as many epochs as
# the data size calls for, stopping once the loss levels off). SKVAE_DOCS_FAST=1
# trains for 5 epochs instead, for quick documentation builds.
fast = os.environ.get("SKVAE_DOCS_FAST") == "1"
max_iter = 5 if fast else "auto"
if fast:  # 5 epochs cannot converge: do not warn that the loss was still improving
    warnings.simplefilter("ignore", ConvergenceWarning)

X, y = load_digits(return_X_y=True)
X = StandardScaler().fit_transform(X)

# %%
# Fit the three reducers
# ----------------------
# Each is a transformer with ``n_components=2``; ``fit_transform`` returns the
# codes. For the VAE these are the posterior means.
reducers = {
    "PCA": PCA(n_components=2),
    "AutoencoderTransformer": AutoencoderTransformer(
        n_components=2, max_iter=max_iter, random_state=0
    ),
    "VAETransformer": VAETransformer(n_components=2, max_iter=max_iter, random_state=0),
}
codes = {name: reducer.fit_transform(X) for name, reducer in reducers.items()}

# %%
# Plot the codes
# --------------
fig, axes = plt.subplots(1, 3, figsize=(13, 4.3), layout="constrained")
for ax, (name, Z) in zip(axes, codes.items(), strict=True):
    points = ax.scatter(Z[:, 0], Z[:, 1], c=y, cmap="tab10", s=6, vmin=-0.5, vmax=9.5)
    ax.set_title(name)
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(points, ax=axes, ticks=range(10), label="digit")
plt.show()

# %%
# PCA keeps the two directions of largest variance, which mix most classes.
# The autoencoder is free to bend the map and spreads the classes apart; the
# VAE's KL term additionally pulls its codes towards a standard normal cloud,
# so its latent space is compact and has no large empty regions, which is what
# makes it useful for sampling (see :ref:`sphx_glr_auto_examples_plot_generate.py`).
