"""
==============================
Loss curves and early stopping
==============================

With ``early_stopping=True`` a VAE holds out ``validation_fraction`` of the
rows, records minus the validation loss of every epoch in
``validation_scores_``, stops after ``n_iter_no_change`` epochs without
improvement and restores the best weights. Here it is turned on explicitly
(the default, ``early_stopping="auto"``, decides by the number of rows), with
a fifth of the rows held out.
"""

import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skvae import VAETransformer

# The fit gets the default budget, max_iter="auto", which early stopping ends
# sooner. SKVAE_DOCS_FAST=1 trains for at most 20 epochs instead, for quick
# documentation builds.
fast = os.environ.get("SKVAE_DOCS_FAST") == "1"
if fast:  # 20 epochs may end before the loss levels off: do not warn about it
    warnings.simplefilter("ignore", ConvergenceWarning)

X, _ = load_digits(return_X_y=True)
X = X / 16  # pixel intensities in [0, 1], for the Bernoulli likelihood

vae = VAETransformer(
    n_components=4,
    likelihood="bernoulli",
    early_stopping=True,
    validation_fraction=0.2,
    n_iter_no_change=3 if fast else 20,
    max_iter=20 if fast else "auto",
    random_state=0,
).fit(X)
print(f"stopped after {vae.n_iter_} epochs")

# %%
# Plot both curves
# ----------------
# ``loss_curve_`` is the training loss (the negative ELBO, in nats per row) and
# ``validation_scores_`` minus the same loss on the held-out rows.
epochs = np.arange(1, vae.n_iter_ + 1)
validation_loss = -np.asarray(vae.validation_scores_)
best = int(np.argmin(validation_loss)) + 1

fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
ax.plot(epochs, vae.loss_curve_, label="training loss")
ax.plot(epochs, validation_loss, label="validation loss")
ax.axvline(best, color="gray", linestyle="--", label=f"best epoch ({best}), restored")
ax.set_xlabel("epoch")
ax.set_ylabel("negative ELBO (nats per row)")
ax.set_title("VAETransformer on load_digits")
ax.legend()
plt.show()

# %%
# Both losses fall quickly at first and then level off; the validation loss
# stays above the training loss and stops improving first, as the network
# begins to fit details of the training rows. Training stops once
# ``n_iter_no_change`` epochs in a row have not improved the validation loss by
# ``tol`` times the progress made so far, well before the budget runs out, and
# ``vae`` keeps the weights of the epoch with the lowest validation loss, at the
# dashed line.
