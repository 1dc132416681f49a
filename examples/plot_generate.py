"""
=====================
Generating new digits
=====================

``sample`` generates rows that were not in the training data. A
:class:`~skvae.VAETransformer` decodes codes drawn from its prior, or from a
Gaussian mixture fitted to its aggregate posterior
(``sample_from="posterior"``); an :class:`~skvae.AutoencoderTransformer`
decodes codes drawn from a Gaussian mixture fitted to its training codes.
"""

import os
import warnings

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skvae import AutoencoderTransformer, VAETransformer

# The networks train for the default budget, max_iter="auto" (as many epochs as
# the data size calls for, stopping once the loss levels off). SKVAE_DOCS_FAST=1
# trains for 5 epochs instead, for quick documentation builds.
fast = os.environ.get("SKVAE_DOCS_FAST") == "1"
max_iter = 5 if fast else "auto"
if fast:  # 5 epochs cannot converge: do not warn that the loss was still improving
    warnings.simplefilter("ignore", ConvergenceWarning)

X, _ = load_digits(return_X_y=True)
X = X / 16  # pixel intensities in [0, 1]

params = dict(n_components=8, max_iter=max_iter, random_state=0)
vae_prior = VAETransformer(likelihood="bernoulli", **params).fit(X)
vae_posterior = VAETransformer(
    likelihood="bernoulli", sample_from="posterior", **params
).fit(X)
ae = AutoencoderTransformer(loss="bce", **params).fit(X)

# %%
# Draw 16 images from each model
# ------------------------------
# With ``add_noise=False`` a VAE returns the decoder's mean, the expected image,
# instead of a 0/1 draw from the Bernoulli likelihood.
samples = {
    "VAE, prior": vae_prior.sample(16, random_state=0, add_noise=False),
    "VAE, aggregate posterior": vae_posterior.sample(16, random_state=0, add_noise=False),
    "Autoencoder, code density": ae.sample(16, random_state=0),
}

fig, axes = plt.subplots(3, 16, figsize=(12, 3))
for ax_row, (name, images) in zip(axes, samples.items(), strict=True):
    for ax, image in zip(ax_row, images, strict=True):
        ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    ax_row[0].set_title(name, loc="left", fontsize=10)
fig.suptitle("Generated digits")
plt.show()

# %%
# Most draws look like digits. Codes from the prior sometimes land between the
# regions the data uses and decode to blends of two digits; drawing from the
# aggregate posterior avoids such regions.
