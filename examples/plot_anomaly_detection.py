"""
========================================
Anomaly detection with ``score_samples``
========================================

Low ``score_samples`` values flag rows unlike the training data: for a VAE an
estimated log-likelihood, for an autoencoder minus the reconstruction error.
Here the models are trained on handwritten digits, and the anomalies are
held-out digits seen in a mirror: the same strokes and pixel values, in shapes
that no digit has. :class:`~sklearn.ensemble.IsolationForest` is the
baseline.
"""

import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.ensemble import IsolationForest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import RocCurveDisplay, roc_auc_score
from sklearn.model_selection import train_test_split
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
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
# Mirror 100 held-out digits whose mirror image is not a digit (not 0, 1 or 8).
asymmetric = X_test[~np.isin(y_test, [0, 1, 8])][:100]
mirrored = asymmetric.reshape(-1, 8, 8)[:, :, ::-1].reshape(-1, 64)
X_eval = np.vstack([X_test, mirrored])
is_anomaly = np.r_[np.zeros(len(X_test)), np.ones(len(mirrored))]

scaler = StandardScaler().fit(X_train)
S_train, S_eval = scaler.transform(X_train), scaler.transform(X_eval)

# %%
# Score the evaluation rows
# -------------------------
# All three estimators follow the same convention: higher ``score_samples``
# means more normal, so minus the score is the anomaly score.
detectors = {
    "VAETransformer": VAETransformer(n_components=8, max_iter=max_iter, random_state=0),
    "AutoencoderTransformer": AutoencoderTransformer(
        n_components=8, max_iter=max_iter, random_state=0
    ),
    "IsolationForest": IsolationForest(random_state=0),
}
anomaly_scores = {}
for name, detector in detectors.items():
    anomaly_scores[name] = -detector.fit(S_train).score_samples(S_eval)
    print(f"{name:<24} ROC AUC: {roc_auc_score(is_anomaly, anomaly_scores[name]):.3f}")

# %%
# Plot ROC curves and the VAE's scores
# ------------------------------------
fig, (ax_roc, ax_hist) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
for name, score in anomaly_scores.items():
    RocCurveDisplay.from_predictions(is_anomaly, score, name=name, ax=ax_roc)
ax_roc.plot([0, 1], [0, 1], "k:", linewidth=1)
ax_roc.set_title("Detecting mirrored digits")

# A few very low log-likelihoods are clipped into the first bin.
log_px = -anomaly_scores["VAETransformer"]
low, high = np.percentile(log_px, [5, 100])
log_px = np.clip(log_px, low, high)
bins = np.linspace(low, high, 40)
ax_hist.hist(log_px[is_anomaly == 0], bins=bins, alpha=0.6, label="held-out digits")
ax_hist.hist(log_px[is_anomaly == 1], bins=bins, alpha=0.6, label="mirrored digits")
ax_hist.set_xlabel("VAE score_samples: log p(x) (nats), clipped")
ax_hist.set_ylabel("rows")
ax_hist.legend()
plt.show()

# %%
# The networks model how pixels go together, the shapes of the strokes, so
# they separate the mirrored digits better than the isolation forest, which
# isolates rows by thresholds on single pixels. The autoencoder's
# reconstruction error is the simplest and here the best detector; the VAE's
# advantage is that its score is a log-likelihood in nats, comparable across
# models and with a meaning of its own.
