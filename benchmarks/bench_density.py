"""Density and sample-quality benchmark: VAETransformer against PCA and GaussianMixture.

Run with ``python benchmarks/bench_density.py`` (about seven minutes on one CPU core), or
``python benchmarks/bench_density.py --quick`` for a smoke run of about a minute.
``--part NAME`` (repeatable) runs only some parts: ``models``, ``standardized``,
``sweep`` or ``prior``; all four run by default.

Part ``models``
---------------

For each dataset (``load_digits`` and ``load_breast_cancer``) the rows are split 50/50
with a fixed seed and standardized with a ``StandardScaler`` fitted on the training
half. The digits are integers in 0..16, and a continuous density can put unbounded
mass on such a lattice (and on pixels that are constant in the training half), so they
are first dequantized with uniform noise in [0, 1): every model then scores the same
continuous data and the log-likelihoods are finite and comparable.

Two tables are printed per dataset.

1. Held-out log-likelihood: the mean ``score_samples`` per held-out row, in nats on
   the standardized data, for every density model: VAETransformer (Gaussian
   likelihood; the ELBO, K=1, and the IWAE bound with K=50, also with
   ``sample_from="posterior"``, whose p(z) is the code density), probabilistic PCA
   (``PCA.score``), factor analysis (PPCA with a per-feature noise variance, the
   linear counterpart of the VAE's Gaussian likelihood), GaussianMixture (full
   covariance, components chosen by BIC on the training half) and one Gaussian with
   diagonal or full covariance as anchors. Higher is better; all numbers are in the
   same units. The VAE numbers are lower bounds on its log-likelihood.
2. Sample quality: as many rows as the held-out half drawn from each sampler, compared
   with the held-out rows by a classifier two-sample test (the 5-fold cross-validated
   ROC AUC of a HistGradientBoostingClassifier telling real from sampled rows; 0.5 is
   indistinguishable, 1.0 is trivially told apart) and by the mean absolute gaps
   between the feature means, the feature standard deviations and the off-diagonal
   correlations. The training rows, used as a sampler, give the reference floor.

Part ``standardized`` (a markdown table)
----------------------------------------
``load_digits``, ``load_breast_cancer`` and ``load_wine`` as they come (not
dequantized), for seeds 0, 1, 2: halves from ``train_test_split(X, test_size=0.5,
random_state=seed)``, a ``StandardScaler`` fitted on the fitting half, and for k = 2,
5, 10 the mean held-out ``score`` of the default ``VAETransformer(n_components=k,
random_state=seed)``, of ``PCA(k)`` and of ``FactorAnalysis(k, random_state=0)``,
averaged over the seeds. The bar: the VAE beats both on the seed-averaged means, and
no held-out row scores more than 50 nats below PCA's score for it (the worst row is
the minimum over seeds and rows of the VAE's row score minus PCA's). A test row with
ink on a pixel that is constant in the fitting half can cost factor analysis
astronomically many nats; such means are printed in exponent notation.

Part ``sweep`` (a markdown table)
---------------------------------
Data with a known latent dimension, 3: 2000 rows of three N(0, 1) coordinates through
a fixed random network (a tanh hidden layer of 32 units, then a linear layer to 20
features) plus Gaussian noise of standard deviation 0.1, split and standardized as
above. The mean held-out score of the default VAE, averaged over seeds 0, 1, 2, for
n_components in 1, 2, 3, 4, 6, 8, with PCA and factor analysis for reference. The
bar: the VAE's score rises clearly from k=1 to k=3 and stays within 1 nat per row of
its k=3 value for k=4, 6, 8.

Part ``prior`` (a markdown table)
---------------------------------
The default VAE with ``prior="normal"`` against ``prior="mixture"`` (a learned
mixture of Gaussians), on the dequantized digits of part ``models`` and on the
standardized breast cancer data (seed 0): the held-out score and the classifier
two-sample AUC of as many ``sample()`` rows as held-out rows, with the model's p(z)
the prior and the aggregate posterior's code density (``sample_from="prior"`` and
``"posterior"``; the score is then the model's whose samples are scored), the AUC on
the features and on the training half's 10 leading principal components.
"""

import argparse
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.preprocessing import StandardScaler

from skvae import AutoencoderTransformer, VAETransformer

SEED = 0


def load(name):
    """Standardized training and held-out halves of a bundled dataset."""
    if name == "digits":
        X = load_digits().data
        X = X + np.random.RandomState(SEED).uniform(size=X.shape)  # dequantize
    else:
        X = load_breast_cancer().data
    X_train, X_test = train_test_split(X, test_size=0.5, random_state=SEED)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test)


def timed(fit, X):
    """Fit on X and return the fitted model and the wall-clock seconds it took."""
    start = time.perf_counter()
    model = fit(X)
    return model, time.perf_counter() - start


def gmm_by_bic(X, candidates):
    """The full-covariance GaussianMixture with the lowest BIC on X."""
    models = [
        GaussianMixture(n, covariance_type="full", n_init=2, random_state=SEED).fit(X)
        for n in candidates
    ]
    return min(models, key=lambda m: m.bic(X))


def ppca_sample(pca, n_samples, rng):
    """Draw from the probabilistic PCA model: x = mean + W z + noise.

    The latent directions carry variance ``explained_variance_ - noise_variance_`` and
    the isotropic noise adds ``noise_variance_`` everywhere, so the draws have
    covariance ``pca.get_covariance()``.
    """
    signal = np.sqrt(np.maximum(pca.explained_variance_ - pca.noise_variance_, 0))
    Z = rng.standard_normal((n_samples, pca.n_components_)) * signal
    noise = rng.standard_normal((n_samples, pca.n_features_in_))
    return pca.inverse_transform(Z) + np.sqrt(pca.noise_variance_) * noise


def two_sample_auc(X_real, X_fake):
    """5-fold cross-validated ROC AUC of a classifier telling real rows from samples."""
    X = np.vstack([X_real, X_fake])
    y = np.r_[np.ones(len(X_real)), np.zeros(len(X_fake))]
    clf = HistGradientBoostingClassifier(max_iter=100, random_state=SEED)
    cv = StratifiedKFold(5, shuffle=True, random_state=SEED)
    return cross_val_score(clf, X, y, cv=cv, scoring="roc_auc").mean()


def off_diagonal_correlations(X):
    corr = np.nan_to_num(np.corrcoef(X, rowvar=False))  # constant columns: 0
    return corr[~np.eye(len(corr), dtype=bool)]


def sample_gaps(X_real, X_fake):
    """Mean absolute gaps in feature means, standard deviations and correlations."""
    corr_gap = off_diagonal_correlations(X_real) - off_diagonal_correlations(X_fake)
    return (
        np.abs(X_real.mean(0) - X_fake.mean(0)).mean(),
        np.abs(X_real.std(0) - X_fake.std(0)).mean(),
        np.abs(corr_gap).mean(),
    )


def fit_models(X_train, ks, quick):
    """Fit every model; return the log-likelihood rows' models and the samplers.

    A sampler is ``(draw, fit seconds)`` where ``draw(n, rng)`` returns n rows.
    """
    net = {
        "hidden_layer_sizes": (128, 64),
        "batch_size": 64,
        "max_iter": 20 if quick else 300,
        "device": "cpu",
        "random_state": SEED,
    }
    scorers = []  # (label, score function, fit seconds)
    samplers = {"training rows (reference)": (lambda n, rng: X_train, 0.0)}

    diag, t = timed(GaussianMixture(1, covariance_type="diag").fit, X_train)
    scorers.append(("Gaussian, diagonal covariance", diag.score, t))
    full, t = timed(GaussianMixture(1, covariance_type="full").fit, X_train)
    scorers.append(("Gaussian, full covariance", full.score, t))
    gmm, t = timed(
        lambda X: gmm_by_bic(X, (1, 2, 3) if quick else (1, 2, 3, 5, 8)), X_train
    )
    scorers.append((f"GaussianMixture, {gmm.n_components} by BIC", gmm.score, t))
    # GaussianMixture.sample draws with the mixture's own random_state (fixed here).
    samplers[f"GaussianMixture ({gmm.n_components})"] = (lambda n, rng: gmm.sample(n)[0], t)

    for k in ks:
        pca, t = timed(PCA(n_components=k, random_state=SEED).fit, X_train)
        scorers.append((f"PPCA, k={k}", pca.score, t))
        samplers[f"PPCA k={k}"] = (lambda n, rng, pca=pca: ppca_sample(pca, n, rng), t)
        fa, t = timed(FactorAnalysis(n_components=k, random_state=SEED).fit, X_train)
        scorers.append((f"FactorAnalysis, k={k}", fa.score, t))

        # Same seed, so the same network; only the density of sample() differs.
        prior, t = timed(VAETransformer(k, **net).fit, X_train)
        posterior = VAETransformer(k, sample_from="posterior", **net).fit(X_train)
        for K in (1, 50):
            label = "ELBO" if K == 1 else f"IWAE K={K}"
            vae = clone_scorer(prior, n_importance_samples=K)
            scorers.append((f"VAE, k={k}, {label}", vae, t))
        vae = clone_scorer(posterior, n_importance_samples=50)
        scorers.append((f"VAE, k={k}, agg. posterior, IWAE K=50", vae, t))
        scorers.append((f"  active latents: {prior.n_active_components_} of {k}", None, t))
        samplers[f"VAE k={k}, prior"] = (lambda n, rng, m=prior: m.sample(n, rng), t)
        samplers[f"VAE k={k}, prior, mean"] = (
            lambda n, rng, m=prior: m.sample(n, rng, add_noise=False),
            t,
        )
        samplers[f"VAE k={k}, agg. posterior"] = (
            lambda n, rng, m=posterior: m.sample(n, rng),
            t,
        )

        ae, t = timed(AutoencoderTransformer(k, **net).fit, X_train)
        samplers[f"Autoencoder k={k} + GMM"] = (lambda n, rng, m=ae: m.sample(n, rng), t)
    return scorers, samplers


def clone_scorer(vae, **params):
    """``vae.score`` with ``params`` set at call time (they do not need a refit)."""

    def score(X):
        old = vae.get_params()
        vae.set_params(**params)
        try:
            return vae.score(X)
        finally:
            vae.set_params(**old)

    return score


def benchmark(name, ks, quick):
    X_train, X_test = load(name)
    n, d = X_test.shape
    print(f"\n=== {name}: {len(X_train)} training / {n} held-out rows, {d} features ===")
    scorers, samplers = fit_models(X_train, ks, quick)

    print("\nHeld-out log-likelihood (nats per row, standardized data; higher is better)")
    print(f"{'model':<36}{'log-lik':>10}{'fit s':>8}")
    for label, score, seconds in scorers:
        if score is None:
            print(label)
        else:
            print(f"{label:<36}{score(X_test):>10.2f}{seconds:>8.1f}")
    print(
        "(The VAE's ELBO row uses one posterior draw shared by all rows, so it is itself\n"
        " noisy, about +-1.5 nats between seeds; the IWAE row is stable to about 0.3.)"
    )

    # Trees spot samples outside the data's support one feature at a time (e.g. below
    # a pixel's lowest value) however good the joint structure is, so the test is also
    # run on the leading principal components, which mix many features.
    project = PCA(n_components=min(10, d), random_state=SEED).fit(X_train).transform
    print(f"\nSample quality against the {n} held-out rows (lower is better; AUC 0.5 best)")
    print(
        f"{'sampler':<32}{'C2ST AUC':>10}{'10 PCs':>8}{'|d mean|':>10}{'|d std|':>10}"
        f"{'|d corr|':>10}{'fit s':>8}"
    )
    for label, (draw, seconds) in samplers.items():
        X_fake = draw(n, np.random.RandomState(SEED))
        auc = two_sample_auc(X_test, X_fake)
        auc_pc = two_sample_auc(project(X_test), project(X_fake))
        gaps = "".join(f"{g:>10.3f}" for g in sample_gaps(X_test, X_fake))
        print(f"{label:<32}{auc:>10.3f}{auc_pc:>8.3f}{gaps}{seconds:>8.1f}")


# ---------------------------------------------------------------------------------
# The new parts print markdown tables.

STANDARDIZED_DATASETS = {
    "digits": load_digits,
    "breast_cancer": load_breast_cancer,
    "wine": load_wine,
}
SEEDS = (0, 1, 2)
WORST_ROW_BAR = -50.0  # nats: the VAE's worst held-out row against PCA's score for it


def fmt(value):
    """A score in nats: two decimals, or exponent notation when astronomically large."""
    return f"{value:.2f}" if abs(value) < 1e5 else f"{value:.4g}"


def markdown(header, rows):
    """Print a markdown table."""
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


def standardized_halves(X, seed):
    """The fitting and held-out halves of X, standardized on the fitting half."""
    X_train, X_test = train_test_split(X, test_size=0.5, random_state=seed)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test)


def vae_params(quick):
    """The default VAE, or a few epochs of it for a smoke run."""
    return {"max_iter": 5} if quick else {}


def row_scores(X_train, X_test, k, seed, quick):
    """Held-out row scores of the VAE, PCA and FA, and the VAE's fit seconds."""
    vae, seconds = timed(
        VAETransformer(n_components=k, random_state=seed, **vae_params(quick)).fit,
        X_train,
    )
    pca = PCA(n_components=k).fit(X_train)
    fa = FactorAnalysis(n_components=k, random_state=0).fit(X_train)
    return (
        vae.score_samples(X_test),
        pca.score_samples(X_test),
        fa.score_samples(X_test),
        seconds,
    )


def standardized(quick):
    datasets = ("breast_cancer", "wine") if quick else tuple(STANDARDIZED_DATASETS)
    seeds = (0,) if quick else SEEDS
    ks = (2,) if quick else (2, 5, 10)
    print(
        "\n### Standardized data: mean held-out score (nats per row, averaged over "
        f"seeds {', '.join(map(str, seeds))})\n"
    )
    rows = []
    for name in datasets:
        X = STANDARDIZED_DATASETS[name]().data
        halves = [standardized_halves(X, seed) for seed in seeds]
        for k in ks:
            means, worst, seconds, wins = [], np.inf, [], 0
            for seed, (X_train, X_test) in zip(seeds, halves):
                vae, pca, fa, t = row_scores(X_train, X_test, k, seed, quick)
                means.append((vae.mean(), pca.mean(), fa.mean()))
                worst = min(worst, (vae - pca).min())
                seconds.append(t)
                wins += vae.mean() > max(pca.mean(), fa.mean())
            vae_mean, pca_mean, fa_mean = np.mean(means, axis=0)
            beats = "yes" if vae_mean > max(pca_mean, fa_mean) else "no"
            rows.append(
                (
                    name,
                    k,
                    fmt(vae_mean),
                    fmt(pca_mean),
                    fmt(fa_mean),
                    f"{beats} ({wins}/{len(seeds)} seeds)",
                    f"{worst:.2f}",
                    f"{np.median(seconds):.1f}",
                )
            )
    markdown(
        (
            "dataset",
            "k",
            "VAE",
            "PCA",
            "FA",
            "VAE > PCA and FA",
            "worst row VAE - PCA",
            "VAE fit s (median)",
        ),
        rows,
    )
    print(
        f"\nBar: VAE > PCA and FA on every line, worst row > {WORST_ROW_BAR:.0f} nats. "
        "The VAE's score is the IWAE bound\n(K=10), a lower bound on its log-likelihood."
    )


def nonlinear_data(n_samples=2000, n_latent=3, n_hidden=32, n_features=20, noise=0.1):
    """Rows from a fixed random tanh network of ``n_latent`` N(0, 1) coordinates."""
    rng = np.random.RandomState(SEED)
    W1 = rng.standard_normal((n_latent, n_hidden))
    b1 = 0.5 * rng.standard_normal(n_hidden)
    W2 = rng.standard_normal((n_hidden, n_features)) / np.sqrt(n_hidden)
    Z = rng.standard_normal((n_samples, n_latent))
    X = np.tanh(Z @ W1 + b1) @ W2
    return X + noise * rng.standard_normal(X.shape)


def sweep(quick):
    X = nonlinear_data()
    seeds = (0,) if quick else SEEDS
    ks = (1, 3) if quick else (1, 2, 3, 4, 6, 8)
    halves = [standardized_halves(X, seed) for seed in seeds]
    print(
        "\n### k-sweep on a nonlinear model with 3 latent dimensions (2000 rows, 20 "
        "features): mean held-out score\n(nats per row, averaged over seeds "
        f"{', '.join(map(str, seeds))})\n"
    )
    results = {}
    for k in ks:
        scores = [
            row_scores(X_train, X_test, k, seed, quick)
            for seed, (X_train, X_test) in zip(seeds, halves)
        ]
        vae, pca, fa = (np.mean([s[i].mean() for s in scores]) for i in range(3))
        seconds = np.median([s[3] for s in scores])
        results[k] = (vae, pca, fa, seconds)
    rows = []
    for k, (vae, pca, fa, seconds) in results.items():
        gap = f"{vae - results[3][0]:+.2f}" if 3 in results else ""
        rows.append((k, fmt(vae), gap, fmt(pca), fmt(fa), f"{seconds:.1f}"))
    markdown(
        ("n_components", "VAE", "VAE - VAE(k=3)", "PCA", "FA", "VAE fit s (median)"),
        rows,
    )
    print(
        "\nBar: the VAE rises clearly from k=1 to k=3 and stays within 1 nat/row of "
        "its k=3 value for k=4, 6, 8."
    )


def prior_comparison(quick):
    print('\n### Prior: prior="normal" against prior="mixture" (default VAE, seed 0)\n')
    settings = (("digits", (5, 10)), ("breast_cancer", (2, 5)))
    if quick:
        settings = (("breast_cancer", (2,)),)
    rows = []
    for name, ks in settings:
        # The digits are dequantized as in part ``models``; breast cancer is the
        # seed-0 split of part ``standardized``.
        X_train, X_test = load(name)
        n = len(X_test)
        project = PCA(n_components=10, random_state=SEED).fit(X_train).transform
        reference = (
            f"{two_sample_auc(X_test, X_train):.3f}",
            f"{two_sample_auc(project(X_test), project(X_train)):.3f}",
        )
        rows.append(
            (name, "", "training rows (reference)", "", "", *reference, *reference, "")
        )
        for k in ks:
            for prior in ("normal", "mixture"):
                vae, seconds = timed(
                    VAETransformer(
                        n_components=k, prior=prior, random_state=SEED, **vae_params(quick)
                    ).fit,
                    X_train,
                )
                scores, aucs = [], []
                for sample_from in ("prior", "posterior"):
                    vae.set_params(sample_from=sample_from)
                    scores.append(fmt(vae.score(X_test)))
                    X_fake = vae.sample(n, random_state=SEED)
                    aucs.append(f"{two_sample_auc(X_test, X_fake):.3f}")
                    aucs.append(f"{two_sample_auc(project(X_test), project(X_fake)):.3f}")
                rows.append((name, k, prior, *scores, *aucs, f"{seconds:.1f}"))
    markdown(
        (
            "dataset",
            "k",
            "prior",
            "held-out score",
            "with agg. posterior",
            "AUC, from prior",
            "10 PCs",
            "AUC, from agg. posterior",
            "10 PCs",
            "fit s",
        ),
        rows,
    )
    print(
        "\nC2ST AUC: 5-fold ROC AUC of a classifier telling held-out rows from as many "
        "samples; 0.5 is best.\nThe training rows' line is the floor. Digits are "
        "dequantized (part models); breast cancer is not."
    )


PARTS = ("models", "standardized", "sweep", "prior")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument(
        "--part",
        action="append",
        choices=PARTS,
        help="run only this part (repeatable); all parts by default",
    )
    args = parser.parse_args()
    parts = args.part or PARTS
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    # The networks are small: one thread is faster, and far faster on a busy machine.
    torch.set_num_threads(1)
    if "models" in parts:
        benchmark("digits", (5,) if args.quick else (5, 10), args.quick)
        benchmark("breast_cancer", (2,) if args.quick else (2, 5), args.quick)
    if "standardized" in parts:
        standardized(args.quick)
    if "sweep" in parts:
        sweep(args.quick)
    if "prior" in parts:
        prior_comparison(args.quick)


if __name__ == "__main__":
    main()
