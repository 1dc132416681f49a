"""
================================
Reconstructing digits from codes
================================

Compress each digit to a code of 8 numbers and decode it back with
``inverse_transform``. Pixels are scaled to [0, 1], which lets both models use
a Bernoulli / cross-entropy output (``loss="bce"``, ``likelihood="bernoulli"``).
"""

import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skvae import AutoencoderTransformer, VAETransformer

# The networks train for the default budget, max_iter="auto" (as many epochs as
# the data size calls for, stopping once the loss levels off). SKVAE_DOCS_FAST=1
# trains for 5 epochs instead, for quick documentation builds.
fast = os.environ.get("SKVAE_DOCS_FAST") == "1"
max_iter = 5 if fast else "auto"
if fast:  # 5 epochs cannot converge: do not warn that the loss was still improving
    warnings.simplefilter("ignore", ConvergenceWarning)

X, y = load_digits(return_X_y=True)
X = X / 16  # pixel intensities in [0, 1]
X_train, X_test = train_test_split(X, test_size=0.2, random_state=0)

models = {
    "PCA": PCA(n_components=8),
    "Autoencoder": AutoencoderTransformer(
        n_components=8, loss="bce", max_iter=max_iter, random_state=0
    ),
    "VAE": VAETransformer(
        n_components=8, likelihood="bernoulli", max_iter=max_iter, random_state=0
    ),
}

# %%
# Reconstruct held-out digits
# ---------------------------
# ``inverse_transform(transform(X))`` maps each image to its code and back. For
# PCA the reconstruction can leave [0, 1], so it is clipped for display.
rows = {"original": X_test[:10]}
for name, model in models.items():
    model.fit(X_train)
    X_hat = model.inverse_transform(model.transform(X_test))
    rows[name] = np.clip(X_hat[:10], 0, 1)
    error = ((X_test - X_hat) ** 2).sum(axis=1).mean()
    print(f"{name:<12} mean squared reconstruction error: {error:.2f}")

fig, axes = plt.subplots(len(rows), 10, figsize=(10, 4.4))
for ax_row, (name, images) in zip(axes, rows.items(), strict=True):
    for ax, image in zip(ax_row, images, strict=True):
        ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    ax_row[0].set_ylabel(name, rotation=0, ha="right", va="center")
fig.suptitle("Held-out digits and their reconstructions from 8 numbers")
plt.show()

# %%
# The autoencoder spends all its capacity on reconstruction and is the
# sharpest. The VAE's codes are also regularised towards the prior, so its
# reconstructions are smoother: the price of being a density model.
