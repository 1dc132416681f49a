"""Sparse counts: held-out likelihood against the truth, codes, memory and speed.

Run with ``python benchmarks/bench_sparse.py`` (a few minutes on 2 busy CPU cores),
``--quick`` for a smoke run of a few minutes, or ``--full`` for the issue's sizes
(50,000 x 2,000 counts; memory up to 1,000,000 x 20,000 rows; an hour or more).
``--sections memory`` (or ``likelihood``, ``speed``) prints only those tables.
``--threads`` sets torch's and BLAS's threads (default 1: timings on a shared
machine are steadier single-threaded). See ``--help``.

Data. Counts with a known truth: a 2-d latent z on a 24 x 24 grid over [-2.5, 2.5]^2
with standard normal weights (a finite mixture, so the true likelihood is exact),
log-compositions ``eta(z) = b + W2 tanh(W1 z + c)`` (a fixed random MLP, 2 -> 16
-> d, plus Zipf-like base frequencies b), library sizes ``l`` drawn independently
from a log-normal (median 60), and ``x_j ~ NB(l * softmax(eta)_j, theta_j)`` with
per-feature inverse dispersions ``theta_j`` in [0.5, 5]. About 2% of the entries are
non-zero. The label to classify is the quadrant of z.

Likelihood. skvae's count models score ``log p(x | l)`` with ``l`` the row's own
total (the library size as an observed scale, as scVI does): the IWAE bound with
``n_importance_samples`` draws of ``log int p(z) prod_j p(x_j | z, l) dz`` (the
Poisson's is reported on that plug-in scale: its score, the multinomial given
``l``, plus ``log Poisson(l; l)``). The
matching truth is the same quantity under the true model, exact over the grid:
``log sum_g w_g prod_j NB(x_j; l softmax(eta(z_g))_j, theta_j)`` with the row's
own total as ``l`` (the "truth" row); "truth, true l" uses the library size the
row was drawn with, for reference (a different quantity: it conditions on the
unobserved l, not on the total). The gap is truth minus skvae in nats per row per
100 features (bar: below 1).

Codes. TruncatedSVD, NMF and LatentDirichletAllocation (``k`` components, on the
same counts) and skvae's codes (``k`` dimensions), each fed to the same classifier
(StandardScaler + LogisticRegression) trained on the training rows' codes and
labels; test accuracy. The Bayes row classifies with the true posterior over the
grid.

Memory. A child process builds a float32 CSR of ``rows`` x 20,000 counts at 0.5%
density, resets its peak resident set (``/proc/self/clear_refs``), fits a Poisson
VAETransformer for one epoch (batch 1,024) and transforms all rows; "extra" is the
peak beyond the resident set before the fit (the matrix, torch and the interpreter),
so it is the memory the fit and transform add. A flat column across row counts
means nothing grows with the rows.

Speed. Seconds per epoch of skvae's training loop (``train`` inside ``fit``, timed
on its own) for the same data as a float32 CSR matrix and as a dense float32 array,
and of a hand-written torch loop on the dense tensor (randperm batches, the same
encoder/decoder widths, the same library-size NB loss and KL), interleaved over
repetitions; medians with the range in brackets. scvi-tools is not installed here
(it needs jax and lightning, not available offline), so the hand-written loop is
the reference.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from bench_speed import _rss_kb, fmt_seconds, table, verdict  # the same reports
from scipy import stats
from scipy.special import gammaln, logsumexp
from sklearn.decomposition import NMF, LatentDirichletAllocation, TruncatedSVD
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from torch import nn

import skvae._base
from skvae import VAETransformer

GRID = 24
HIDDEN = (128, 64)
MEDIAN_LIBRARY = 60.0


# ------------------------------------------------------------------------- data
class Truth:
    """The true model: grid latent, nonlinear log-compositions, NB counts."""

    def __init__(self, n_features, seed=0):
        rng = np.random.RandomState(seed)
        axis = np.linspace(-2.5, 2.5, GRID)
        self.z = np.array([(a, b) for a in axis for b in axis])
        weight = np.exp(-0.5 * (self.z**2).sum(1))
        self.log_w = np.log(weight / weight.sum())
        W1, c = 1.5 * rng.normal(size=(2, 16)), rng.normal(size=16)
        W2 = 0.8 * rng.normal(size=(16, n_features))
        base = -1.1 * np.log(np.arange(1, n_features + 1))  # Zipf-like frequencies
        eta = base[rng.permutation(n_features)] + np.tanh(self.z @ W1 + c) @ W2
        self.log_rho = eta - logsumexp(eta, axis=1, keepdims=True)  # (G, d)
        self.theta = rng.uniform(0.5, 5.0, size=n_features)

    def draw(self, n, seed):
        """Counts (CSR, float32), their grid cells, library sizes and labels."""
        rng = np.random.RandomState(seed)
        cell = rng.choice(len(self.z), size=n, p=np.exp(self.log_w))
        library = MEDIAN_LIBRARY * np.exp(0.5 * rng.normal(size=n))
        blocks = []
        for lo in range(0, n, 5000):
            mu = library[lo : lo + 5000, None] * np.exp(self.log_rho[cell[lo : lo + 5000]])
            rate = rng.gamma(self.theta, mu / self.theta)
            blocks.append(sp.csr_matrix(rng.poisson(rate).astype(np.float32)))
        label = 2 * (self.z[cell, 0] > 0) + (self.z[cell, 1] > 0)
        return sp.vstack(blocks).tocsr(), cell, library, label

    def log_lik(self, X, library=None):
        """log p(x | l) per row, exact over the grid; l the row's total by default.

        Also returns the posterior over the grid cells, of shape (n, G).
        """
        X = sp.csr_matrix(X, dtype=np.float64)
        totals = np.asarray(X.sum(1)).ravel() if library is None else library
        theta, rho = self.theta, np.exp(self.log_rho)  # rho: (G, d)
        n = X.shape[0]
        joint = np.empty((n, len(self.z)))
        for lo in range(0, n, 8):
            # every entry's x = 0 term theta log(theta / (theta + mu)) ...
            mu = totals[lo : lo + 8, None, None] * rho[None]  # (b, G, d)
            joint[lo : lo + 8] = (theta * (np.log(theta) - np.log(theta + mu))).sum(-1)
        for i in range(n):  # ... then the non-zero entries' corrections
            cols = X.indices[X.indptr[i] : X.indptr[i + 1]]
            x = X.data[X.indptr[i] : X.indptr[i + 1]]
            t, mu = theta[cols], totals[i] * rho[:, cols]  # (G, m)
            joint[i] += (
                gammaln(x + t)
                - gammaln(t)
                - gammaln(x + 1)
                + x * (np.log(mu) - np.log(t + mu))
            ).sum(-1)
        joint += self.log_w
        log_p = logsumexp(joint, axis=1)
        return log_p, np.exp(joint - log_p[:, None])


# ------------------------------------------------------------ likelihood, codes
def vae(likelihood, k, seed=0, **params):
    return VAETransformer(
        n_components=k,
        hidden_layer_sizes=HIDDEN,
        likelihood=likelihood,
        random_state=seed,
        **params,
    )


def bench_likelihood(truth, X, test, label, k, max_iter):
    X_test, _, library_test, label_test = test
    d = X.shape[1]
    log_p, posterior = truth.log_lik(X_test)
    log_p_true_l, _ = truth.log_lik(X_test, library_test)
    rows, codes = [], {}
    rows.append(["truth (l = row total)", f"{log_p.mean():.2f}", "0", "", ""])
    rows.append(["truth, true l", f"{log_p_true_l.mean():.2f}", "", "", ""])
    results = {}
    for likelihood in ["poisson", "negative_binomial"]:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = vae(likelihood, k, max_iter=max_iter).fit(X)
        seconds = time.perf_counter() - start
        scores = est.score_samples(X_test)
        if likelihood == "poisson":
            # The Poisson's score is the multinomial of the row's total, a proper
            # probability given l; the truth, as the negative binomial's score, is
            # the plug-in likelihood of independent counts at means that add up
            # to l. On that scale the Poisson's is the multinomial's times
            # Poisson(l; l).
            totals = np.asarray(X_test.sum(1)).ravel()
            scores = scores + stats.poisson.logpmf(totals, totals)
        gap = (log_p - scores) / d * 100
        results[likelihood] = float(np.mean(gap))
        rows.append(
            [
                f"skvae {likelihood}",
                f"{scores.mean():.2f}",
                f"{np.mean(gap):.3f}",
                f"{np.median(gap):.3f}",
                f"{seconds:.0f} s, {est.n_iter_} epochs",
            ]
        )
        codes[f"skvae {likelihood}"] = (est.transform(X), est.transform(X_test))
    print(f"Held-out log p(x | l), nats per row ({X_test.shape[0]} rows x {d} features)")
    table(["model", "mean log p", "gap /100 feat", "median gap", "fit"], rows)
    worst = max(results.values())
    print(f"Bar: gap below 1 nat per row per 100 features: {verdict(worst < 1)}\n")

    with threadpool_limits(1):
        svd = TruncatedSVD(k, random_state=0).fit(X)
        codes["TruncatedSVD"] = (svd.transform(X), svd.transform(X_test))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nmf = NMF(k, init="nndsvda", max_iter=400, random_state=0).fit(X)
        codes["NMF"] = (nmf.transform(X), nmf.transform(X_test))
        lda = LatentDirichletAllocation(k, learning_method="online", random_state=0)
        lda.fit(X)
        codes["LDA"] = (lda.transform(X), lda.transform(X_test))
    rows = []
    for name in ["TruncatedSVD", "NMF", "LDA", "skvae poisson", "skvae negative_binomial"]:
        Z, Z_test = codes[name]
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        clf.fit(Z, label)
        rows.append([name, k, f"{clf.score(Z_test, label_test):.3f}"])
    quadrant = 2 * (truth.z[:, 0] > 0) + (truth.z[:, 1] > 0)
    bayes = np.stack([posterior[:, quadrant == q].sum(1) for q in range(4)], 1)
    rows.append(
        ["Bayes (true posterior)", "", f"{(bayes.argmax(1) == label_test).mean():.3f}"]
    )
    print(
        "Quadrant of z from the codes (StandardScaler + LogisticRegression), test accuracy"
    )
    table(["reducer", "k", "accuracy"], rows)
    return results


# ------------------------------------------------------------------------ memory
def random_csr(n_rows, n_features, density, seed=0):
    """A float32 CSR of counts (1 + Poisson(0.5)) at ``density``, without a dense copy.

    Each row's columns are drawn with replacement and sorted (duplicates, rare,
    are summed by scipy where it matters).
    """
    rng = np.random.default_rng(seed)
    per_row = max(1, round(density * n_features))
    indptr = np.arange(n_rows + 1, dtype=np.int64) * per_row
    indices = np.empty((n_rows, per_row), dtype=np.int32)
    for lo in range(0, n_rows, 100_000):
        block = rng.integers(0, n_features, (min(100_000, n_rows - lo), per_row))
        indices[lo : lo + len(block)] = np.sort(block, axis=1)
    data = (1 + rng.poisson(0.5, size=n_rows * per_row)).astype(np.float32)
    if indptr[-1] <= np.iinfo(np.int32).max:
        indptr = indptr.astype(np.int32)
    return sp.csr_matrix((data, indices.ravel(), indptr), shape=(n_rows, n_features))


def memory_child(n_rows, n_features, threads):
    """Run in a child process: peak memory the fit and transform of a big CSR add."""
    torch.set_num_threads(threads)
    threadpool_limits(threads)
    X = random_csr(n_rows, n_features, 0.005)
    matrix_bytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    est = vae("poisson", 10, max_iter=1, batch_size=1024, early_stopping=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vae("poisson", 10, max_iter=1, batch_size=1024).fit(X[:2000])  # warm-up
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        method = "VmHWM after clear_refs"
    except OSError:
        method = "unavailable"
    before = _rss_kb("VmRSS") * 1024
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
    fit_seconds = time.perf_counter() - start
    fit_peak = _rss_kb("VmHWM") * 1024
    start = time.perf_counter()
    Z = est.transform(X)
    transform_seconds = time.perf_counter() - start
    peak = _rss_kb("VmHWM") * 1024
    print(
        json.dumps(
            {
                "rows": n_rows,
                "matrix": matrix_bytes,
                "fit_extra": fit_peak - before,
                "extra": peak - before - Z.nbytes,
                "fit_seconds": fit_seconds,
                "transform_seconds": transform_seconds,
                "method": method,
            }
        )
    )


def bench_memory(row_counts, n_features, threads):
    rows = []
    for n_rows in row_counts:
        cmd = [sys.executable, os.path.abspath(__file__), "--_memory-child", str(n_rows)]
        cmd += ["--memory-features", str(n_features), "--threads", str(threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            error = (proc.stderr.strip().splitlines() or ["failed"])[-1]
            rows.append([f"{n_rows:,}", "", "", "", error, ""])
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(
            [
                f"{n_rows:,}",
                f"{r['matrix'] / 2**20:.0f} MiB",
                f"{r['fit_extra'] / 2**20:.0f} MiB",
                f"{r['extra'] / 2**20:.0f} MiB",
                f"{r['fit_seconds']:.1f}",
                f"{r['transform_seconds']:.1f}",
            ]
        )
    print(
        f"Peak memory beyond the CSR: Poisson VAE, 1 epoch (batch 1,024) then transform, "
        f"x {n_features:,} features at 0.5%"
    )
    header = ["rows", "CSR", "fit extra", "fit+transform extra", "fit s", "transform s"]
    table(header, rows)


# ------------------------------------------------------------------------ speed
class _HandVAE(nn.Module):
    """The same encoder/decoder widths and library-size NB loss, written by hand."""

    def __init__(self, d, k):
        super().__init__()

        def stack(sizes):
            layers = []
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
                layers.append(nn.Linear(a, b))
                if i < len(sizes) - 2:
                    layers.append(nn.ReLU())
            return nn.Sequential(*layers)

        self.encoder = stack([d, *HIDDEN, 2 * k])
        self.decoder = stack([k, *HIDDEN[::-1], d])
        self.log_theta = nn.Parameter(torch.zeros(d))

    def loss(self, x):
        total = x.sum(1, keepdim=True)
        mean, log_var = self.encoder(torch.log1p(x * (60.0 / total.clamp_min(1)))).chunk(
            2, 1
        )
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        log_mu = torch.log_softmax(self.decoder(z), 1) + total.log()
        theta = self.log_theta.exp()
        log_total = torch.logaddexp(self.log_theta, log_mu)
        log_p = (
            torch.lgamma(x + theta)
            - torch.lgamma(theta)
            - torch.lgamma(x + 1)
            + theta * (self.log_theta - log_total)
            + torch.where(x > 0, x * (log_mu - log_total), torch.zeros_like(x))
        ).sum(1)
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum(1)
        return (kl - log_p).mean()


def hand_epochs(X, k, batch_size, epochs, seed=0):
    torch.manual_seed(seed)
    model = _HandVAE(X.shape[1], k)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    X = torch.from_numpy(X)
    start = time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(X.shape[0]).split(batch_size):
            loss = model.loss(X[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return (time.perf_counter() - start) / epochs


def skvae_epochs(X, k, batch_size, epochs):
    """Seconds per epoch of skvae's training loop inside ``fit`` (timed on its own)."""
    seconds = []
    original = skvae._base.train

    def timed(*args, **kwargs):
        start = time.perf_counter()
        history = original(*args, **kwargs)
        seconds.append((time.perf_counter() - start) / history.n_epochs)
        return history

    skvae._base.train = timed
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params = dict(max_iter=epochs, batch_size=batch_size, early_stopping=False)
            vae("negative_binomial", k, **params).fit(X)
    finally:
        skvae._base.train = original
    return seconds[0]


def bench_speed(X, k, batch_size, epochs, repeats):
    dense = X.toarray()
    times = {"sparse": [], "dense": [], "hand": []}
    for r in range(repeats):
        order = ["sparse", "dense", "hand"]
        for name in order if r % 2 == 0 else order[::-1]:
            if name == "hand":
                times[name].append(hand_epochs(dense, k, batch_size, epochs))
            else:
                data = X if name == "sparse" else dense
                times[name].append(skvae_epochs(data, k, batch_size, epochs))
    ratio = np.median(np.array(times["sparse"]) / np.array(times["dense"]))
    hand = np.median(np.array(times["sparse"]) / np.array(times["hand"]))
    print(
        f"Seconds per epoch, negative binomial VAE, {X.shape[0]:,} x {X.shape[1]:,} "
        f"({X.nnz / np.prod(X.shape):.1%} non-zero), batch {batch_size}, "
        f"{epochs} epochs x {repeats} repetitions"
    )
    table(
        ["input", "s/epoch", "x dense"],
        [
            ["skvae, CSR float32", fmt_seconds(times["sparse"]), f"{ratio:.2f}"],
            ["skvae, dense float32", fmt_seconds(times["dense"]), "1.00"],
            ["hand-written loop, dense", fmt_seconds(times["hand"]), ""],
        ],
    )
    print(f"Bar: sparse within 1.2x of dense: {verdict(ratio <= 1.2)} ({ratio:.2f}x);")
    print(f"skvae on CSR against the hand-written loop on dense: {hand:.2f}x\n")


# -------------------------------------------------------------------------- main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (about a minute)")
    parser.add_argument("--full", action="store_true", help="the issue's sizes")
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS threads (1)")
    parser.add_argument(
        "--sections",
        nargs="+",
        default=["likelihood", "speed", "memory"],
        choices=["likelihood", "speed", "memory"],
        help="which tables to print (all three by default)",
    )
    parser.add_argument(
        "--memory-features", type=int, default=20_000, help=argparse.SUPPRESS
    )
    parser.add_argument("--_memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._memory_child is not None:
        memory_child(args._memory_child, args.memory_features, args.threads)
        return
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    if args.quick:
        n, d, n_test, max_iter, memory_rows, repeats = 3000, 500, 500, 30, [5000, 10000], 2
    elif args.full:
        n, d, n_test, max_iter, memory_rows, repeats = (
            50_000,
            2000,
            5000,
            "auto",
            [
                100_000,
                300_000,
                1_000_000,
            ],
            5,
        )
    else:
        n, d, n_test, max_iter, memory_rows, repeats = (
            10_000,
            1000,
            2000,
            "auto",
            [
                25_000,
                50_000,
                100_000,
            ],
            3,
        )
    print(f"torch {torch.__version__}, {args.threads} thread(s)\n")
    truth = Truth(d)
    X, _, _, label = truth.draw(n, seed=1)
    test = truth.draw(n_test, seed=2)
    print(
        f"Data: {n:,} training and {n_test:,} test rows x {d:,} features, "
        f"{X.nnz / np.prod(X.shape):.1%} non-zero, median total "
        f"{np.median(np.asarray(X.sum(1))):.0f}\n"
    )
    if "likelihood" in args.sections:
        bench_likelihood(truth, X, test, label, 4, max_iter)
    if "speed" in args.sections:
        bench_speed(X[: min(n, 10_000)], 4, 256, 1 if args.quick else 2, repeats)
    if "memory" in args.sections:
        bench_memory(memory_rows, args.memory_features, args.threads)


if __name__ == "__main__":
    main()
