"""
=====================================
Conditional samples and imputation
=====================================

One :class:`~skvae.VAETransformer` of a table knows the conditional
distribution of any of its columns given the others. ``sample(n,
given=...)`` draws rows with some values fixed, and
:class:`~skvae.VAEImputer` fills the missing cells of a table with their
expected values given the observed ones, both from the same importance-weighted
posterior over the latent code.

The data are the diabetes table of Efron et al. (ages, a sex code as a
category, body-mass index, blood pressure, six blood measurements and a
disease-progression target).
"""

import os
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.datasets import load_diabetes
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, SimpleImputer
from sklearn.model_selection import train_test_split

from skvae import VAEImputer, VAETransformer
from skvae.exceptions import PosteriorCollapseWarning

# SKVAE_DOCS_FAST=1 trains 10 epochs, for quick builds.
fast = os.environ.get("SKVAE_DOCS_FAST") == "1"
if fast:  # 10 epochs can neither converge nor use the latent space: no warnings
    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.simplefilter("ignore", PosteriorCollapseWarning)
max_iter = 10 if fast else "auto"

table = load_diabetes(as_frame=True, scaled=False).frame.astype({"sex": "category"})
train, real = train_test_split(table, test_size=0.5, random_state=0)

# %%
# Conditional samples next to real rows
# -------------------------------------
# Fit on one half and condition on the real held-out rows' body-mass index: a
# DataFrame of conditions, one row per sample. Each sample keeps its row's
# ``bmi`` exactly and draws the other columns from the model given it, so the
# samples should follow the real rows' relation between ``bmi`` and the other
# columns, which unconditional samples (a scattered cloud) do not.
vae = VAETransformer(n_components=4, max_iter=max_iter, random_state=0).fit(train)
conditional = vae.sample(len(real), random_state=0, given=real[["bmi"]])
free = vae.sample(len(real), random_state=0)
print(pd.concat({"real": real.head(3), "given bmi": conditional.head(3)}))

fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
for ax, (name, rows) in zip(axes, [("given bmi", conditional), ("unconditional", free)]):
    ax.scatter(real["bmi"], real["target"], s=8, c="0.6", label="real (held out)")
    ax.scatter(rows["bmi"], rows["target"], s=8, c="C0", label=f"samples, {name}")
    ax.set_xlabel("bmi")
    ax.legend(fontsize=8)
axes[0].set_ylabel("target")
fig.tight_layout()
plt.show()

# %%
# A categorical condition works the same way: the share of each blood-pressure
# level among women (``sex`` 2) against the held-out rows. ``given`` may mix
# columns of any kind; a value outside the fitted range, an unknown level or
# a missing value raises a ``ValueError`` that says which.
women = vae.sample(1000, random_state=0, given={"sex": 2.0})
print(
    pd.DataFrame(
        {
            "real women": real.loc[real["sex"] == 2.0, ["bp", "s5", "target"]].mean(),
            "sampled women": women[["bp", "s5", "target"]].mean(),
            "real men": real.loc[real["sex"] == 1.0, ["bp", "s5", "target"]].mean(),
        }
    ).round(1)
)

# %%
# Imputation
# ----------
# Hide 20% of the held-out rows' cells at random and fill them in with
# :class:`~skvae.VAEImputer`, which fits three VAEs on the table with its holes
# (the missing values are modelled, not filled in beforehand) and averages
# their imputations, against
# scikit-learn's ``IterativeImputer`` and the column means. Errors are in
# units of each column's standard deviation. The DataFrame comes back with its
# columns and dtypes: ``sex`` is imputed as one of its levels.
rng = np.random.RandomState(0)
mask = rng.random_sample(real.shape) < 0.2
holes = real.mask(mask)
numeric = holes.drop(columns="sex")

start = time.perf_counter()
imputed = VAEImputer(max_iter=max_iter, random_state=0).fit_transform(holes)
print(
    f"VAEImputer: {time.perf_counter() - start:.1f} s, dtypes kept:",
    imputed.dtypes.equals(real.dtypes),
)
others = {
    "IterativeImputer": IterativeImputer(max_iter=100, random_state=0).fit_transform(
        numeric
    ),
    "mean": SimpleImputer().fit_transform(numeric),
}
print(pd.concat({"real": real.head(4), "holes": holes.head(4), "imputed": imputed.head(4)}))

columns = list(numeric.columns)
scale = real[columns].std()
errors = {"VAEImputer": [], **{name: [] for name in others}}
for j, column in enumerate(columns):
    rows = mask[:, real.columns.get_loc(column)]
    truth = real[column].to_numpy()[rows]
    errors["VAEImputer"].append(
        np.sqrt(np.mean((imputed[column].to_numpy()[rows] - truth) ** 2))
    )
    for name, values in others.items():
        errors[name].append(np.sqrt(np.mean((values[rows, j] - truth) ** 2)))
errors = pd.DataFrame(errors, index=columns).div(scale, axis=0)
print(errors.mean().round(3))
sex = mask[:, real.columns.get_loc("sex")]
print("sex accuracy:", (imputed["sex"][sex] == real["sex"][sex]).mean().round(3))

ax = errors.plot.bar(figsize=(10, 4), color=["C0", "C1", "0.6"])
ax.set_ylabel("RMSE (standard deviations)")
ax.set_title("Held-out cells, 20% masked at random")
plt.tight_layout()
plt.show()
