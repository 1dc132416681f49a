"""
============================================
Choosing ``n_components`` and ``beta`` by CV
============================================

``VAETransformer.score`` is the mean held-out log-likelihood (in nats per row),
so :class:`~sklearn.model_selection.GridSearchCV` can tune a VAE with no
scorer. It estimates log p(x) whatever ``beta`` the model was trained with, so
models trained with different ``beta`` compare fairly.
"""

import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold

from skvae import VAETransformer
from skvae.exceptions import PosteriorCollapseWarning

# Every fit trains for the default budget, max_iter="auto". SKVAE_DOCS_FAST=1
# uses a smaller grid and 5 epochs per fit instead, for quick builds.
fast = os.environ.get("SKVAE_DOCS_FAST") == "1"
if fast:  # 5 epochs cannot converge: do not warn that the loss was still improving
    warnings.simplefilter("ignore", ConvergenceWarning)
# A 16-dimensional latent space is more than the digits need: the VAE switches
# off the surplus dimensions (see the end of this example), and warns when more
# than half of them are off. Expected here, so not shown.
warnings.simplefilter("ignore", PosteriorCollapseWarning)

X, _ = load_digits(return_X_y=True)
X = X / 16  # pixel intensities in [0, 1], for the Bernoulli likelihood

# %%
# Search the grid
# ---------------
# With ``likelihood="bernoulli"`` the score is the log-probability of the
# pixel intensities under independent Bernoulli outputs, which suits pixel
# intensities scaled to [0, 1]. (With the Gaussian likelihood, a pixel that was
# constant in the training folds is bounded too: the model's density mixes in a
# broad background with weight 1e-3.)
param_grid = {
    "n_components": [2, 8] if fast else [2, 4, 8, 16],
    "beta": [0.5, 1.0] if fast else [0.5, 1.0, 2.0],
}
search = GridSearchCV(
    VAETransformer(likelihood="bernoulli", max_iter=5 if fast else "auto", random_state=0),
    param_grid,
    cv=KFold(2 if fast else 3, shuffle=True, random_state=0),
    refit=False,
).fit(X)
print("best parameters:", search.best_params_)

# %%
# Plot the cross-validated scores
# -------------------------------
results = search.cv_results_
fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
for beta in param_grid["beta"]:
    rows = results["param_beta"] == beta
    ax.errorbar(
        np.asarray(results["param_n_components"][rows], dtype=int),
        results["mean_test_score"][rows],
        yerr=results["std_test_score"][rows],
        marker="o",
        capsize=3,
        label=f"beta={beta}",
    )
ax.set_xscale("log", base=2)
ax.set_xticks(param_grid["n_components"], labels=param_grid["n_components"])
ax.set_xlabel("n_components")
ax.set_ylabel("held-out log-likelihood (nats per row)")
ax.set_title("VAETransformer on load_digits, 3-fold CV")
ax.legend(title="VAE")
plt.show()

# %%
# Higher is better; the error bars are the standard deviation over folds.
# ``beta`` below 1 trains for reconstruction at the expense of a regular latent
# space, ``beta`` above 1 the other way round; the held-out likelihood is the
# arbiter. Once the data are explained, extra latent dimensions stay unused
# (posterior collapse of the surplus dimensions) and the score levels off.
