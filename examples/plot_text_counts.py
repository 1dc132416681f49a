"""
=======================================
Word counts: a sparse, count-based VAE
=======================================

:class:`~sklearn.feature_extraction.text.CountVectorizer` returns a
scipy.sparse matrix of word counts, which :class:`~skvae.VAETransformer`
takes as it is: training densifies one minibatch of rows at a time, never
the whole matrix. With ``likelihood="negative_binomial"`` (or ``"poisson"``)
each document's word counts are modelled as its length (its total count, the
library size) times a composition over the vocabulary that the decoder
predicts from the code, so the codes describe what a document is about, not
how long it is. This example compares those codes with
:class:`~sklearn.decomposition.TruncatedSVD`'s, the usual linear reducer of
sparse counts.
"""

import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from skvae import VAETransformer

# The network trains for the default budget, max_iter="auto" (as many epochs as
# the data size calls for, stopping once the loss levels off). SKVAE_DOCS_FAST=1
# trains for 5 epochs instead, for quick documentation builds.
fast = os.environ.get("SKVAE_DOCS_FAST") == "1"
max_iter = 5 if fast else "auto"
if fast:  # 5 epochs cannot converge: do not warn that the loss was still improving
    warnings.simplefilter("ignore", ConvergenceWarning)

# %%
# A corpus with known topics
# --------------------------
# 600 documents over a vocabulary of 300 words. Each document mixes two of
# four topics (distributions over the words) in a proportion of its own, and
# its length varies tenfold, from 20 to 200 words.
rng = np.random.RandomState(0)
vocabulary = np.array([f"word{i:03d}" for i in range(300)])
topics = rng.dirichlet(np.full(300, 0.05), size=4)
n_docs = 600
first, second = rng.randint(4, size=n_docs), rng.randint(4, size=n_docs)
share = rng.uniform(size=(n_docs, 1))
lengths = rng.randint(20, 200, size=n_docs)
docs = [
    " ".join(rng.choice(vocabulary, size=n, p=w * topics[a] + (1 - w) * topics[b]))
    for n, a, b, w in zip(lengths, first, second, share[:, 0])
]
main_topic = np.where(share[:, 0] > 0.5, first, second)

X = CountVectorizer().fit_transform(docs)
print(f"{type(X).__name__} of shape {X.shape}, {X.nnz / np.prod(X.shape):.1%} non-zero")

# %%
# Fit on the sparse counts
# ------------------------
vae = VAETransformer(
    n_components=2,
    likelihood="negative_binomial",
    max_iter=max_iter,
    random_state=0,
)
Z = vae.fit_transform(X)
Z_svd = TruncatedSVD(2, random_state=0).fit_transform(X)

# %%
# The codes do not depend on the length
# -------------------------------------
# A document repeated three times has three times the counts and the same
# composition: its code is the same.
print("largest code change for tripled documents:", np.abs(vae.transform(3 * X) - Z).max())

# %%
# ``score`` is the mean log-probability of each document's counts given its
# length, in nats (``log p(x | l)``, with ``l`` the document's total), and
# ``sample`` draws new count vectors with lengths drawn from the training
# documents' lengths: both return dense arrays.
print(f"mean log p(x | l): {vae.score(X):.1f} nats per document")
print("sampled counts:", vae.sample(3, random_state=0).shape)

# %%
# Compare the codes
# -----------------
# SVD's first component mostly follows the document length; the VAE's codes
# follow the topics. The correlation of each code with the length, and the
# accuracy of a linear classifier of the main topic on each 2-d code:
for name, codes in [("VAE", Z), ("TruncatedSVD", Z_svd)]:
    correlation = [np.corrcoef(code, lengths)[0, 1] for code in codes.T]
    accuracy = cross_val_score(make_pipeline(LogisticRegression()), codes, main_topic, cv=5)
    print(
        f"{name:>12}: correlation with length {np.round(correlation, 2)}, "
        f"main-topic accuracy {accuracy.mean():.2f}"
    )

fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
for ax, codes, title in [(axes[0], Z, "VAETransformer"), (axes[1], Z_svd, "TruncatedSVD")]:
    points = ax.scatter(
        codes[:, 0], codes[:, 1], c=main_topic, s=8 + lengths / 10, cmap="tab10"
    )
    ax.set_title(f"{title} codes (size: document length)")
    ax.set_xlabel("code 1")
    ax.set_ylabel("code 2")
axes[0].legend(*points.legend_elements(), title="main topic", loc="best", fontsize=8)
fig.tight_layout()
plt.show()
