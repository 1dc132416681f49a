"""Convergence benchmark: do the "auto" defaults fit well, fast, and without warnings?

Run with ``python benchmarks/bench_convergence.py`` (roughly half an hour on 2 quiet CPU
cores, most of it in the long reference fits and the 1,000,000-row workload), or
``python benchmarks/bench_convergence.py --quick`` for a smoke run of one to two
minutes (with one torch thread: on a loaded machine two threads can stall a
fit tenfold). ``--sizes`` picks the manifold workloads, ``--parts`` the sections
(``table``, ``threads``, ``gpu``), ``--threads N`` the torch threads of the main table,
``--reference-epochs E`` the reference fits' ``max_iter`` (``--no-reference`` skips
them), ``--device cuda`` runs the
estimators on a GPU and adds the ``gpu`` section. See ``--help``.

The defaults under test: ``max_iter="auto"``, ``batch_size="auto"`` and
``early_stopping="auto"`` (a validation slice from 10,000 rows on), the relative
``tol=1e-2``, a cosine learning-rate schedule over the budget, ``n_jobs=None`` (one
torch thread), and a ``ConvergenceWarning`` when a fit uses its whole budget while
still improving. The rule is ``skvae._training.budget``.

Workloads
---------
- ``manifold N``: N training rows of a 64-feature nonlinear manifold, an 8-d N(0, I)
  latent through a fixed random two-layer tanh network (8 -> 64 -> 64) plus Gaussian
  noise of standard deviation 0.05, standardized with the training rows' mean and
  standard deviation. The network comes from ``--seed``; the training rows and a
  held-out test set of 10,000 rows (never trained on) are drawn from two independent
  streams of the same seed, in chunks of 100,000 rows (float32; 1,000,000 rows are
  256 MB). ``n_components=8``.
- ``digits``: ``load_digits`` split in halves (``train_test_split(test_size=0.5,
  random_state=seed)``), standardized with a ``StandardScaler`` fitted on the training
  half (not dequantized, as in ``bench_density.py``'s standardized part).
  ``n_components=10``.

No mixed-type table: none of scikit-learn's bundled ``load_*`` datasets has one and
nothing is downloaded (``bench_tabular.py`` covers tables).

Main table (part ``table``)
---------------------------
For ``AutoencoderTransformer`` and ``VAETransformer`` on each workload:

- the default fit: ``Estimator(n_components=k, n_jobs=THREADS, random_state=seed)``,
  its wall time (the median of ``--repeats`` fits), ``n_iter_``, the automatic batch
  size and epoch budget, and whether it raised a ``ConvergenceWarning``;
- the held-out loss: for the autoencoder the mean squared reconstruction error per
  entry of the test rows, ``np.mean((X - inverse_transform(transform(X))) ** 2)``
  (lower is better); for the VAE the mean held-out ``score`` in nats per row (the
  importance-weighted bound, higher is better);
- a long reference fit of the same estimator and seed, and the gap: for the
  autoencoder ``100 * (default - reference) / reference`` in % (bar: at most 2%), for
  the VAE ``reference - default`` in nats per row (bar: at most 1 nat); a default
  that beats its reference has a negative gap;
- ``PCA(k)``: its fit time on the same training rows and its loss (the
  reconstruction error in the autoencoder's row, ``PCA.score`` in the VAE's);
- the time bars: a default fit under 30 s on 100,000 rows and under 120 s on
  1,000,000 rows, on 2 CPU cores;
- the speed-up against skvae 0.1's defaults (``max_iter=200, batch_size=256,
  early_stopping=False, tol=1e-4``), which would take hours on 1,000,000 rows and
  are not run: their time is *estimated* as 200 times the wall time of a whole
  ``fit(max_iter=1, batch_size=256, early_stopping=False, tol=1e-4)`` (one epoch;
  nothing is subtracted, so the fixed cost of a fit counts 200 times and the estimate
  leans high). The column adds a tighter estimate, 200 times the epoch's training loop
  (``skvae._base.train``, timed from outside) plus the rest of that fit once.

The reference fits, all with ``tol=0`` and ``early_stopping=True`` (which restores the
best weights on the 10% validation slice) and the automatic batch size, get more epochs
than the estimator's default budget E (its "auto" epochs for the rows a default fit
trains on):

=====================  =====================  ====================================
workload               ``max_iter``           ``n_iter_no_change``
=====================  =====================  ====================================
up to 10,000 rows      ``max(500, 2 * E)``    50
more rows              ``5 * E``              ``max(10, max_iter // 10)``
any, with ``--quick``  ``2 * E``              10
=====================  =====================  ====================================

``--reference-epochs`` sets ``max_iter`` for all of them (the patience follows the same
rule). The run prints the resulting settings, with each workload's default budget,
before it fits anything (with the rule as this is written, E is 385 epochs of 64
rows for digits, 139 of 256 for 10k, 57 of 512 for 100k and 20 of 512 for 1M, the
last two the epochs of batches of 1024 and 2048; the autoencoder's, with its step
floor, 250 for 10k and the same for the others).

Threads (part ``threads``)
--------------------------
A default fit (``n_components=8``) of each estimator on 100,000 manifold rows (20,000
and ``max_iter=3`` with ``--quick``) with ``n_jobs=None`` (the default; the torch thread
count it trained with is read inside the fit), ``n_jobs=1`` and ``n_jobs=2``, in two
settings: ``quiet``, and ``busy``, with a competing CPU-bound process (``while True:
pass``) pinned to core 0 (``os.sched_setaffinity`` where available) for the duration.
The fits are interleaved (reverse order every other repetition) and the table gives
the median seconds of ``--thread-repeats`` repetitions and ``default / best`` per
setting (bar: at most 1.5).

GPU (part ``gpu``, default with ``--device cuda``)
-------------------------------------------------
Seconds per epoch of ``VAETransformer`` (``n_components=8``, default network 64-128-64,
``max_iter=3``, no early stopping) at batch sizes 256 and 4096 on 100,000 manifold
rows, both its training loop alone (``skvae._base.train``, timed from outside) and the
whole fit divided by its epochs, against a hand-written loop of the same sizes: plain
``nn.Sequential`` Linear/ReLU encoder 64-128-64-16 (mean and log-variance) and decoder
8-64-128-64, a learned per-feature log-variance, the Gaussian negative log-likelihood
plus the closed-form KL, ``torch.optim.Adam`` (lr 1e-3), ``randperm`` batches cut from
one tensor on the device. skvae's network is slightly larger (a linear path beside each
MLP and a background density). On a CPU the section runs the same way.

Timings come from a shared machine: the header prints its CPU count, the CPUs this
process may use, torch's version and the load average at the start.
"""

import argparse
import math
import os
import platform
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager

import numpy as np
import torch
from bench_speed import (  # the same tables, plain networks and loop timing
    _stack,
    table,
    timing_training_loop,
)
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from torch import nn

from skvae import AutoencoderTransformer, VAETransformer
from skvae._training import AUTO_EARLY_STOPPING_ROWS, budget

N_FEATURES = 64
LATENT = 8
NOISE = 0.05
CHUNK = 100_000
N_TEST = 10_000
VALIDATION_FRACTION = 0.1  # the estimators' default
#: The default fit's time bar, seconds, by number of manifold rows.
TIME_BARS = {100_000: 30.0, 1_000_000: 120.0}
AE_GAP_BAR = 2.0  # % of the reference's reconstruction error
VAE_GAP_BAR = 1.0  # nats per row
THREAD_BAR = 1.5  # default / best
OLD_DEFAULT = {"max_iter": 200, "batch_size": 256, "early_stopping": False, "tol": 1e-4}
DIGITS_TRAIN_ROWS = 898  # load_digits' 1,797 rows, halved
SMALL = 10_000  # workloads up to this many rows get the fixed long reference
MODELS = {"AE": AutoencoderTransformer, "VAE": VAETransformer}


# ------------------------------------------------------------------------------ data
def manifold(n_train, n_test, seed):
    """Standardized float32 training and test rows of the 64-feature tanh manifold."""
    rng = np.random.default_rng(seed)
    W1 = rng.standard_normal((LATENT, 64)) / np.sqrt(LATENT)
    b1 = 0.1 * rng.standard_normal(64)
    W2 = rng.standard_normal((64, N_FEATURES)) / np.sqrt(64)
    b2 = 0.1 * rng.standard_normal(N_FEATURES)

    def draw(n, stream):
        rng = np.random.default_rng([seed, stream])
        X = np.empty((n, N_FEATURES), dtype=np.float32)
        for lo in range(0, n, CHUNK):
            m = min(CHUNK, n - lo)
            latent = rng.standard_normal((m, LATENT))
            H = np.tanh(np.tanh(latent @ W1 + b1) @ W2 + b2)
            X[lo : lo + m] = H + NOISE * rng.standard_normal(H.shape)
        return X

    X_train, X_test = draw(n_train, 1), draw(n_test, 2)
    total = np.zeros(N_FEATURES)
    squares = np.zeros(N_FEATURES)
    for lo in range(0, n_train, CHUNK):
        block = X_train[lo : lo + CHUNK].astype(np.float64)
        total += block.sum(0)
        squares += (block**2).sum(0)
    mean = total / n_train
    std = np.sqrt(np.maximum(squares / n_train - mean**2, 1e-12))
    for X in (X_train, X_test):
        for lo in range(0, X.shape[0], CHUNK):
            X[lo : lo + CHUNK] = (X[lo : lo + CHUNK] - mean) / std
    return X_train, X_test


def digits(seed):
    """Standardized halves of ``load_digits``."""
    X_train, X_test = train_test_split(load_digits().data, test_size=0.5, random_state=seed)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test)


def n_fitted(n_rows, early_stopping="auto"):
    """Training rows a fit keeps after the validation slice."""
    if early_stopping == "auto":
        early_stopping = n_rows >= AUTO_EARLY_STOPPING_ROWS
    if not early_stopping:
        return n_rows
    return n_rows - math.ceil(VALIDATION_FRACTION * n_rows)


def default_budget(Estimator, n_rows):
    """The batch size and "auto" epochs of ``Estimator``'s default fit on ``n_rows`` rows.

    The autoencoder's epochs include its step floor (``AUTO_AE_STEPS``).
    """
    n = n_fitted(n_rows)
    validation = object() if n < n_rows else None
    min_steps = Estimator()._min_steps(n, None, validation)
    return budget(n, min_steps=min_steps)[:2]


def reference_params(n_rows, quick, epochs=None, Estimator=None):
    """The long reference fit's parameters for ``Estimator`` on ``n_rows`` rows.

    ``Estimator`` None: the VAE's (the rule's budget, without the autoencoder's
    step floor).
    """
    default_epochs = default_budget(Estimator or VAETransformer, n_rows)[1]
    small = n_rows <= SMALL
    if epochs is None:
        if quick:
            epochs = 2 * default_epochs
        elif small:
            epochs = max(500, 2 * default_epochs)
        else:
            epochs = 5 * default_epochs
    if quick:
        patience = 10
    else:
        patience = 50 if small else max(10, epochs // 10)
    return {
        "max_iter": int(epochs),
        "early_stopping": True,
        "n_iter_no_change": int(min(patience, epochs)),
        "tol": 0.0,
    }


# ---------------------------------------------------------------------------- timing
def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def fit(Estimator, X, device, **params):
    """Fit once: the estimator, its wall time, the warnings raised, the train calls."""
    est = Estimator(device=str(device), **params)
    with warnings.catch_warnings(record=True) as caught, timing_training_loop() as calls:
        warnings.simplefilter("always")
        _sync(device)
        start = time.perf_counter()
        est.fit(X)
        _sync(device)
        seconds = time.perf_counter() - start
    return est, seconds, [w.category for w in caught], calls


def held_out(key, est, X):
    """The autoencoder's reconstruction MSE per entry, or the VAE's mean score."""
    if key == "AE":
        return float(np.mean((X - est.inverse_transform(est.transform(X))) ** 2))
    return est.score(X)


def pca_run(key, k, X_train, X_test):
    start = time.perf_counter()
    pca = PCA(n_components=k).fit(X_train)
    seconds = time.perf_counter() - start
    if key == "AE":
        return seconds, float(
            np.mean((X_test - pca.inverse_transform(pca.transform(X_test))) ** 2)
        )
    return seconds, pca.score(X_test)


@contextmanager
def busy_core():
    """A CPU-bound competitor process pinned to core 0 (the lowest usable core)."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    where = "unpinned"
    try:
        if hasattr(os, "sched_setaffinity"):
            cores = os.sched_getaffinity(0)
            core = 0 if 0 in cores else min(cores)
            try:
                os.sched_setaffinity(hog.pid, {core})
                where = f"pinned to core {core}"
            except OSError:
                pass
        time.sleep(0.5)  # let it start spinning
        yield where
    finally:
        hog.kill()
        hog.wait()


# --------------------------------------------------------------------------- reports
def verdict(ok):
    return "pass" if ok else "FAIL"


def fmt_loss(key, value):
    return f"{value:.4g}" if key == "AE" else f"{value:.2f}"


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _usable_cpus():
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


# ------------------------------------------------------------------------ main table
def bench_workload(name, k, X_train, X_test, args, bars):
    """Rows of the quality and time tables for one workload, both estimators."""
    n = X_train.shape[0]
    threads = args.threads
    quality, timing = [], []
    for key, Estimator in MODELS.items():
        batch, epochs = default_budget(Estimator, n)
        ref = reference_params(n, args.quick, args.reference_epochs, Estimator)
        base = {"n_components": k, "n_jobs": threads, "random_state": args.seed}
        seconds = []
        for _ in range(args.repeats):
            est, t, caught, _ = fit(Estimator, X_train, args.device, **base)
            seconds.append(t)
        t_default = float(np.median(seconds))
        warned = ConvergenceWarning in caught
        loss = held_out(key, est, X_test)
        print(
            f"  {name} {key}: default fit {t_default:.1f} s, {est.n_iter_} epochs",
            flush=True,
        )

        t_pca, pca_loss = pca_run(key, k, X_train, X_test)
        bars["no ConvergenceWarning"].append((f"{name} {key}", not warned))
        if args.no_reference:
            ref_text, gap_text, ref_info = "not run", "not run", "--no-reference"
        else:
            ref_est, t_ref, ref_caught, _ = fit(
                Estimator, X_train, args.device, **base, **ref
            )
            ref_loss = held_out(key, ref_est, X_test)
            print(
                f"  {name} {key}: reference {t_ref:.1f} s, {ref_est.n_iter_} epochs",
                flush=True,
            )
            if key == "AE":
                gap = 100.0 * (loss - ref_loss) / ref_loss
                gap_ok, gap_text = gap <= AE_GAP_BAR, f"{gap:+.2f}%"
            else:
                gap = ref_loss - loss
                gap_ok, gap_text = gap <= VAE_GAP_BAR, f"{gap:+.2f} nats"
            bars["gap " + key].append((name, gap_ok))
            gap_text = f"{gap_text}: {verdict(gap_ok)}"
            ref_text = fmt_loss(key, ref_loss)
            stopped = "stopped early" if ref_est.n_iter_ < ref["max_iter"] else "all epochs"
            ref_info = (
                f"{ref_est.n_iter_}/{ref['max_iter']} ({stopped}), "
                f"patience {ref['n_iter_no_change']}, {t_ref:.1f} s"
                + (", ConvergenceWarning" if ConvergenceWarning in ref_caught else "")
            )
        quality.append(
            [
                name,
                key,
                fmt_loss(key, loss),
                ref_text,
                gap_text,
                fmt_loss(key, pca_loss),
                ref_info,
            ]
        )

        bar_text = ""
        if args.manifold_rows.get(name) in TIME_BARS:
            limit = TIME_BARS[args.manifold_rows[name]]
            ok = t_default < limit
            bars[f"time {args.manifold_rows[name]:,} rows"].append((key, ok))
            bar_text = f"< {limit:.0f} s: {verdict(ok)}"
        old = ""
        if name in args.manifold_rows:  # skvae 0.1's defaults, one epoch x 200
            _, t_one, _, calls = fit(
                Estimator, X_train, args.device, **base, **{**OLD_DEFAULT, "max_iter": 1}
            )
            old_total = OLD_DEFAULT["max_iter"] * t_one
            old = f"~{old_total:,.0f} s (est.), x{old_total / t_default:.1f}"
            if calls:  # the fixed cost counted once: 200 x the loop + the rest of the fit
                loop = sum(c["seconds"] for c in calls)
                tight = OLD_DEFAULT["max_iter"] * loop + (t_one - loop)
                old += f"; loop only ~{tight:,.0f} s, x{tight / t_default:.1f}"
        timing.append(
            [
                name,
                key,
                f"{t_default:.2f}"
                + (f" [{min(seconds):.2f}-{max(seconds):.2f}]" if len(seconds) > 1 else ""),
                f"{est.n_iter_}/{epochs}",
                str(batch),
                "yes" if warned else "no",
                bar_text,
                f"{t_pca:.2f}",
                old,
            ]
        )
    return quality, timing


def bench_table(args, bars):
    workloads = []
    args.manifold_rows = {}
    for n in args.sizes:
        name = f"manifold {n:,}"
        args.manifold_rows[name] = n
        workloads.append((name, LATENT, lambda n=n: manifold(n, N_TEST, args.seed)))
    workloads.append(("digits", 10, lambda: digits(args.seed)))
    settings = []
    for name, k, _ in workloads:
        n = args.manifold_rows.get(name, DIGITS_TRAIN_ROWS)
        # The VAE's settings, and the autoencoder's where its step floor differs.
        batch, epochs = default_budget(VAETransformer, n)
        ae_epochs = default_budget(AutoencoderTransformer, n)[1]
        ae_text = f" (AE {ae_epochs})" if ae_epochs != epochs else ""
        ref = reference_params(n, args.quick, args.reference_epochs)
        AE = AutoencoderTransformer
        ae_ref = reference_params(n, args.quick, args.reference_epochs, AE)
        ae_iter = ae_patience = ""
        if ae_ref != ref:
            ae_iter = f" (AE {ae_ref['max_iter']})"
            ae_patience = f" (AE {ae_ref['n_iter_no_change']})"
        stopping = (
            "early stopping" if n >= AUTO_EARLY_STOPPING_ROWS else "no early stopping"
        )
        settings.append(
            [
                name,
                k,
                f"{n:,} ({n_fitted(n):,} trained on; {stopping})",
                f"{batch} / {epochs}{ae_text}",
                f"max_iter={ref['max_iter']}{ae_iter}, "
                f"n_iter_no_change={ref['n_iter_no_change']}{ae_patience}",
            ]
        )
    table(
        [
            "workload",
            "k",
            "rows",
            "default batch / epochs",
            "reference (tol=0, early stopping on 10%)",
        ],
        settings,
    )
    quality, timing = [], []
    for name, k, load in workloads:
        X_train, X_test = load()
        if name == "digits":
            assert X_train.shape[0] == DIGITS_TRAIN_ROWS, X_train.shape
        q, t = bench_workload(name, k, X_train, X_test, args, bars)
        quality += q
        timing += t
        del X_train, X_test
    print()
    table(
        [
            "workload",
            "model",
            "default held-out",
            "reference held-out",
            f"gap (bar: AE <= {AE_GAP_BAR:g}%, VAE <= {VAE_GAP_BAR:g} nat)",
            "PCA(k) held-out",
            "reference epochs",
        ],
        quality,
    )
    print(
        "Held-out: AE = reconstruction MSE per entry (lower is better), VAE = mean "
        "score in nats/row (higher is better); PCA's column is the same measure."
    )
    print()
    table(
        [
            "workload",
            "model",
            "default fit s",
            "epochs/budget",
            "batch",
            "ConvergenceWarning",
            "time bar",
            "PCA(k) fit s",
            "0.1 defaults (200 x 1 epoch at 256), speed-up",
        ],
        timing,
    )


# --------------------------------------------------------------------------- threads
def bench_threads(args, bars):
    n = 20_000 if args.quick else 100_000
    X, _ = manifold(n, 1, args.seed)
    extra = {"max_iter": 3} if args.quick else {}
    configs = [None, 1, 2]
    rows = []
    for setting in ("quiet", "busy"):
        with busy_core() if setting == "busy" else _nothing() as where:
            for key, Estimator in MODELS.items():
                times = {c: [] for c in configs}
                default_threads = set()
                for rep in range(args.thread_repeats):
                    for n_jobs in configs if rep % 2 == 0 else configs[::-1]:
                        _, t, _, calls = fit(
                            Estimator,
                            X,
                            "cpu",
                            n_components=LATENT,
                            n_jobs=n_jobs,
                            random_state=args.seed,
                            **extra,
                        )
                        times[n_jobs].append(t)
                        if n_jobs is None:
                            default_threads.update(c["threads"] for c in calls)
                med = {c: float(np.median(v)) for c, v in times.items()}
                ratio = med[None] / min(med.values())
                ok = ratio <= THREAD_BAR
                bars[f"threads, {setting}"].append((key, ok))
                used = ",".join(map(str, sorted(default_threads))) or "?"
                rows.append(
                    [
                        key,
                        setting + ("" if where is None else f" ({where})"),
                        f"{med[None]:.2f} ({used} thread)",
                        f"{med[1]:.2f}",
                        f"{med[2]:.2f}",
                        f"{ratio:.2f}: {verdict(ok)}",
                    ]
                )
                print(f"  threads {setting} {key} done", flush=True)
    print()
    fit_text = "default fit" + (", max_iter=3" if args.quick else "")
    table(
        [
            f"{fit_text}, {n:,} x {N_FEATURES}",
            "setting",
            "n_jobs=None s",
            "n_jobs=1 s",
            "n_jobs=2 s",
            f"default / best (bar <= {THREAD_BAR:g})",
        ],
        rows,
    )


@contextmanager
def _nothing():
    yield None


# ------------------------------------------------------------------------------- gpu
class HandVAE(nn.Module):
    """A plain VAE of the default sizes: Sequential encoder/decoder, Gaussian p(x|z)."""

    def __init__(self, n_features=N_FEATURES, k=LATENT, hidden=(128, 64)):
        super().__init__()
        self.k = k
        self.encoder = _stack([n_features, *hidden, 2 * k])
        self.decoder = _stack([k, *hidden[::-1], n_features])
        self.log_var = nn.Parameter(torch.zeros(n_features))

    def loss(self, x):
        mean, log_var = self.encoder(x).split(self.k, dim=1)
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        error = (x - self.decoder(z)) ** 2
        nll = 0.5 * (
            error * torch.exp(-self.log_var) + self.log_var + math.log(2 * math.pi)
        )
        kl = 0.5 * (mean**2 + log_var.exp() - 1.0 - log_var)
        return (nll.sum(1) + kl.sum(1)).mean()


def hand_written(X_t, batch_size, epochs, seed):
    """Seconds per epoch of the hand-written VAE loop on the tensor ``X_t``."""
    device = X_t.device
    torch.manual_seed(seed)
    module = HandVAE().to(device)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    _sync(device)
    start = time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(X_t.shape[0], device=device).split(batch_size):
            loss = module.loss(X_t[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    _sync(device)
    return (time.perf_counter() - start) / epochs


def bench_gpu(args, bars):
    n = 20_000 if args.quick else 100_000
    epochs = 1 if args.quick else 3
    repeats = 1 if args.quick else 3
    X, _ = manifold(n, 1, args.seed)
    device = torch.device(args.device)
    X_t = torch.from_numpy(X).to(device)
    params = {
        "n_components": LATENT,
        "max_iter": epochs,
        "early_stopping": False,
        "tol": 0.0,
        "n_iter_no_change": epochs + 1,
        "n_jobs": args.threads,
        "random_state": args.seed,
    }
    rows = []
    for batch_size in (256, 4096):
        hand_written(X_t[: 4 * batch_size], batch_size, 1, 0)  # warm-up, untimed
        fit(VAETransformer, X[: 4 * batch_size], device, **{**params, "max_iter": 1})
        times = {"hand": [], "loop": [], "fit": []}
        for rep in range(repeats):
            order = ("hand", "skvae") if rep % 2 == 0 else ("skvae", "hand")
            for what in order:
                if what == "hand":
                    times["hand"].append(hand_written(X_t, batch_size, epochs, rep))
                    continue
                est, t, _, calls = fit(
                    VAETransformer, X, device, **{**params, "batch_size": batch_size}
                )
                times["fit"].append(t / est.n_iter_)
                if calls:
                    times["loop"].append(sum(c["seconds"] for c in calls) / est.n_iter_)
        hand = float(np.median(times["hand"]))
        for label, key in (
            ("hand-written VAE loop", "hand"),
            ("VAETransformer, training loop", "loop"),
            ("VAETransformer, whole fit / epochs", "fit"),
        ):
            if not times[key]:
                continue
            med = float(np.median(times[key]))
            rows.append(
                [batch_size, label, f"{med:.4f}", f"{n / med:,.0f}", f"{med / hand:.2f}"]
            )
    del X_t
    print()
    table(
        [f"batch ({n:,} rows, {device})", "method", "s/epoch", "rows/s", "x hand"],
        rows,
    )


# ------------------------------------------------------------------------------ main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, 1-2 minutes")
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=None,
        help="manifold training rows (10000 100000 1000000; --quick: 2000)",
    )
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (n_jobs) of the table and gpu parts (cpu: 2, --quick: 1)",
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=("table", "threads", "gpu"),
        default=None,
        help="sections to run (default: table threads, and gpu with --device cuda)",
    )
    parser.add_argument(
        "--reference-epochs", type=int, default=None, help="max_iter of the reference fits"
    )
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="skip the long reference fits (the gap columns read 'not run')",
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="default fits per workload (median time)"
    )
    parser.add_argument(
        "--thread-repeats", type=int, default=None, help="repetitions per thread setting"
    )
    parser.add_argument("--seed", type=int, default=0, help="data and random_state")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda was given but CUDA is not available")
        device = torch.device("cuda", torch.cuda.current_device())
    args.device = str(device)
    if args.threads is None:
        # 2 CPU cores; a smoke run takes 1, as 2 threads stall on a loaded machine.
        args.threads = (1 if args.quick else 2) if device.type == "cpu" else None
    if args.sizes is None:
        args.sizes = [2_000] if args.quick else [10_000, 100_000, 1_000_000]
    if args.parts is None:
        args.parts = ["table", "threads"] + (["gpu"] if device.type == "cuda" else [])
    if args.thread_repeats is None:
        args.thread_repeats = 1 if args.quick else 3
    if args.threads:
        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)  # numpy's BLAS too (PCA, the start, the GMM)

    load = os.getloadavg() if hasattr(os, "getloadavg") else ()
    print(f"# skvae convergence benchmark ({'quick' if args.quick else 'full'} run)")
    print()
    gpu = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    print(
        f"- machine: {os.cpu_count()} CPUs ({_usable_cpus()} usable by this process), "
        f"{_cpu_name()}; torch {torch.__version__}; device {device}{gpu}"
    )
    print(
        f"- main table: n_jobs={args.threads} (torch threads), seed {args.seed}; "
        f"load average at start {', '.join(f'{x:.2f}' for x in load) or 'n/a'}"
    )
    print(f"- parts: {', '.join(args.parts)}")
    print()
    bars = _Bars()
    start = time.perf_counter()
    sections = {
        "table": ("Default fits against long reference fits", bench_table),
        "threads": (
            "Threads: default n_jobs against 1 and 2 torch threads (CPU)",
            bench_threads,
        ),
        "gpu": ("VAE epoch time against a hand-written loop", bench_gpu),
    }
    for part, (title, run) in sections.items():
        if part in args.parts:
            print(f"## {title}")
            began = time.perf_counter()
            run(args, bars)
            print(f"({part}: {time.perf_counter() - began:.0f} s)")
            print()
    for name, label in bar_labels().items():
        results = bars.get(name)
        if not results:
            status = "not run"
        else:
            failed = [what for what, ok in results if not ok]
            status = "pass" if not failed else "FAIL (" + ", ".join(failed) + ")"
        print(f"- Bar ({label}): {status}")
    print(f"\nTotal run time {time.perf_counter() - start:.0f} s.")


def bar_labels():
    """The checks, by the key their results are recorded under, in report order."""
    return {
        "gap AE": f"AE held-out MSE within {AE_GAP_BAR:g}% of its reference",
        "gap VAE": f"VAE held-out score within {VAE_GAP_BAR:g} nat/row of its reference",
        "no ConvergenceWarning": "no ConvergenceWarning from a default fit",
        **{
            f"time {n:,} rows": f"default fit under {limit:g} s on {n:,} rows"
            for n, limit in TIME_BARS.items()
        },
        "threads, quiet": f"threads, quiet: default at most {THREAD_BAR:g}x the best",
        "threads, busy": f"threads, busy: default at most {THREAD_BAR:g}x the best",
    }


class _Bars(dict):
    """Bar name -> list of (what, passed); missing names start empty."""

    def __missing__(self, key):
        self[key] = []
        return self[key]


if __name__ == "__main__":
    main()
