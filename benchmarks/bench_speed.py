"""Speed and memory benchmark: skvae against a hand-written PyTorch loop, skorch and PCA.

Run with ``python benchmarks/bench_speed.py`` (about 5 minutes on 2 CPU cores), or
``python benchmarks/bench_speed.py --quick`` for a smoke run of well under a minute.
``--device cuda`` prints the same tables on a GPU, for batch sizes 256 and 4096.
``--threads N`` sets torch's intra-op threads and numpy's BLAS threads (on a loaded
machine, ``--threads 1`` avoids the stalls of OpenMP and OpenBLAS threads waiting for a
descheduled sibling, which make 2-thread timings swing by 10x and more);
``--memory-rows`` sizes the memory test (``0`` skips it). See ``--help``.

Everything is measured in one run on one synthetic dataset: an 8-d standard normal
latent pushed through a fixed random MLP (8 -> 64 -> 64, tanh after each layer) plus
Gaussian noise of standard deviation 0.05, 100,000 x 64 float32 rows made with a fixed
seed. Every network is the same autoencoder, ``hidden_layer_sizes=(256, 128)`` and
``n_components=8``: Linear/ReLU layers 64-256-128-8 and their mirror 8-128-256-64,
trained with Adam (lr 1e-3) on the squared error summed over features, averaged over
minibatches of ``batch_size`` rows.

The methods are timed in interleaved repetitions (every repetition runs each method
once, in turn, in reverse order every other repetition) and the tables report medians,
with the fastest and slowest repetition in brackets, so that a burst of load on a shared
machine spreads over all methods. Training's ``x hand`` column is the median over
repetitions of each method's time divided by the hand-written loop's in the same
repetition.

Training. The reference is a minimal hand-written loop: ``torch.randperm`` batches cut
from one tensor by indexing, ``zero_grad``/``backward``/``step``, no DataLoader. skvae's
``fit(max_iter=epochs)`` is timed whole, and so is the call of its training loop inside
it (``skvae._base.train``, wrapped with a timer for the duration of the fit): the loop
per epoch is what the target compares, and the rest of the fit is its fixed cost (input
validation, module construction, and the GaussianMixture that AutoencoderTransformer
fits on the training codes for ``sample``). The all-in figure is the whole fit divided
by its epochs. skorch trains the same module with ``NeuralNet`` (its per-epoch ``dur``).
VAETransformer trains a slightly larger model (a 16-wide encoder output, the
reparameterisation draw, the KL term and a Gaussian likelihood with learned variances),
so its ratio to the autoencoder loop is not overhead alone.

FLOP rate. One training sample costs about ``6 * W`` floating-point operations, where
``W`` is the number of weights of the Linear layers (biases and activations ignored):
``2 * W`` for the forward pass (a multiply and an add per weight) and ``4 * W`` for the
backward pass (gradients for the inputs and for the weights). The achieved rate is
compared with the rate measured for one large float32 matmul on the same device.

Transform. ``AutoencoderTransformer.transform`` on float32 and float64 input against a
bare forward pass of the same encoder at the same precision: numpy chunks turned into
tensors, the encoder under ``torch.inference_mode``, results written into a
preallocated numpy array, for 1,024-, 2,048-, 4,096- and 65,536-row chunks.

Memory. A child process (so the other measurements do not move its high-water mark)
fills a ``--memory-rows`` x 64 float32 array with standard normal numbers, fits a small
AutoencoderTransformer on 5,000 of its rows, resets its peak resident set size
(Linux ``/proc/self/clear_refs``), transforms all rows and reports the peak beyond the
input and the output. Without ``clear_refs`` it falls back to ``getrusage``'s lifetime
peak, which can only overstate the extra memory.
"""

import argparse
import functools
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager

import numpy as np
import torch
from sklearn.decomposition import PCA
from threadpoolctl import threadpool_limits
from torch import nn

from skvae import AutoencoderTransformer, VAETransformer

N_FEATURES = 64
N_COMPONENTS = 8
HIDDEN = (256, 128)
LEARNING_RATE = 1e-3
BARE_CHUNKS = (1024, 2048, 4096)
LARGE_CHUNK = 65_536
TARGETS = {
    "fit": "skvae <= 1.05x hand-written per epoch",
    "skorch": "measured ~2x hand-written before",
    "transform": ">= 0.9x bare forward, same precision",
    "memory": "< 1 GB beyond input and output",
}


# ------------------------------------------------------------------------------ data
def make_data(n_samples, seed=0):
    """An 8-d Gaussian latent through a fixed random tanh MLP (8-64-64), plus noise."""
    rng = np.random.default_rng(seed)
    W1 = rng.standard_normal((8, 64)) / np.sqrt(8)
    b1 = 0.1 * rng.standard_normal(64)
    W2 = rng.standard_normal((64, N_FEATURES)) / np.sqrt(64)
    b2 = 0.1 * rng.standard_normal(N_FEATURES)
    latent = rng.standard_normal((n_samples, 8))
    X = np.tanh(np.tanh(latent @ W1 + b1) @ W2 + b2)
    X += 0.05 * rng.standard_normal(X.shape)
    return X.astype(np.float32)


# --------------------------------------------------------------------------- network
def _stack(sizes):
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MirrorAutoencoder(nn.Module):
    """The autoencoder every method trains: Linear/ReLU encoder and its mirror."""

    def __init__(self, n_features=N_FEATURES, n_components=N_COMPONENTS, hidden=HIDDEN):
        super().__init__()
        sizes = [n_features, *hidden, n_components]
        self.encoder = _stack(sizes)
        self.decoder = _stack(sizes[::-1])

    def forward(self, x):
        return self.decoder(self.encoder(x))


class SummedSquaredError(nn.Module):
    """Squared error summed over features, averaged over rows (skvae's loss="mse")."""

    def forward(self, y_pred, y_true):
        return (y_pred - y_true).pow(2).sum(1).mean()


def n_weights(module):
    """Weights of the Linear layers (no biases): the ``W`` of the ``6 * W`` FLOP count."""
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Linear))


# ---------------------------------------------------------------------------- timing
def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def hand_written(X, device, batch_size, epochs, seed):
    """Seconds per epoch of the minimal hand-written loop."""
    torch.manual_seed(seed)
    module = MirrorAutoencoder().to(device)
    optimizer = torch.optim.Adam(module.parameters(), lr=LEARNING_RATE)
    X_t = torch.from_numpy(X).to(device)
    _sync(device)
    start = time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(X_t.shape[0], device=device).split(batch_size):
            xb = X_t[idx]
            loss = (module(xb) - xb).pow(2).sum(1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    _sync(device)
    return (time.perf_counter() - start) / epochs


@contextmanager
def timing_training_loop():
    """Time each call of skvae's training loop, ``train``, as ``fit`` makes it.

    Yields the list that each call's ``{"seconds", "threads"}`` (its duration and
    torch's thread count) is appended to. This reaches into skvae's private
    ``_base`` module; if a refactor moves ``train``, the list stays empty and only
    the all-in ``fit`` figures are reported.
    """
    from skvae import _base

    calls = []
    original = getattr(_base, "train", None)
    if original is None:
        yield calls
        return

    @functools.wraps(original)
    def timed_train(*args, **kwargs):
        threads = torch.get_num_threads()
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:  # train ends on the host (one .item() per epoch): no sync needed
            calls.append({"seconds": time.perf_counter() - start, "threads": threads})

    _base.train = timed_train
    try:
        yield calls
    finally:
        _base.train = original


def skvae_fit(Estimator, X, device, batch_size, max_iter, seed):
    """Wall time of one ``fit``, the time in its training loop, and its epochs."""
    est = Estimator(
        N_COMPONENTS,
        hidden_layer_sizes=HIDDEN,
        batch_size=batch_size,
        max_iter=max_iter,
        learning_rate=LEARNING_RATE,
        device=str(device),
        random_state=seed,
    )
    with warnings.catch_warnings(), timing_training_loop() as loop:
        warnings.simplefilter("ignore")  # ConvergenceWarning, posterior collapse
        _sync(device)
        start = time.perf_counter()
        est.fit(X)
        _sync(device)
        total = time.perf_counter() - start
    return total, (sum(c["seconds"] for c in loop) if loop else None), est.n_iter_


def skorch_fit(X, device, batch_size, epochs, seed):
    """Seconds per epoch of skorch's NeuralNet on the same module (its ``dur``)."""
    from skorch import NeuralNet

    torch.manual_seed(seed)
    net = NeuralNet(
        module=MirrorAutoencoder,
        criterion=SummedSquaredError,
        optimizer=torch.optim.Adam,
        lr=LEARNING_RATE,
        batch_size=batch_size,
        max_epochs=epochs,
        train_split=None,
        iterator_train__shuffle=True,
        device=str(device),
        verbose=0,
    )
    net.fit(X, X)
    _sync(device)
    return float(np.sum(net.history[:, "dur"])) / epochs


def pca_fit(X):
    start = time.perf_counter()
    PCA(n_components=N_COMPONENTS).fit(X)
    return time.perf_counter() - start


def matmul_gflops(device, size=2048, repeats=5):
    """float32 GFLOP/s of ``size`` x ``size`` matmuls (best and median of repeats)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device)
    b = torch.randn(size, size, generator=gen).to(device)
    a @ b  # warm-up
    inner = 1 if device.type == "cpu" else 20
    rates = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        for _ in range(inner):
            a @ b
        _sync(device)
        rates.append(2 * size**3 * inner / (time.perf_counter() - start) / 1e9)
    return max(rates), float(np.median(rates))


def bare_transform(encoder, X, device, dtype, chunk):
    """Seconds for a bare chunked forward pass of ``encoder`` over numpy ``X``."""
    out = np.empty((X.shape[0], N_COMPONENTS), dtype=X.dtype)
    _sync(device)
    start = time.perf_counter()
    with torch.inference_mode():
        for lo in range(0, X.shape[0], chunk):
            x = torch.from_numpy(X[lo : lo + chunk]).to(device, dtype)
            out[lo : lo + chunk] = encoder(x).cpu().numpy()
    _sync(device)
    return time.perf_counter() - start


def timed(function, *args):
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


# ---------------------------------------------------------------------------- memory
def _rss_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def memory_child(n_rows, device, threads):
    """Run in a child process: peak resident memory of one big transform, as JSON."""
    if threads:
        torch.set_num_threads(threads)
        threadpool_limits(threads)
    X = np.empty((n_rows, N_FEATURES), dtype=np.float32)
    rng = np.random.default_rng(0)
    for lo in range(0, n_rows, 1_000_000):
        rng.standard_normal(out=X[lo : lo + 1_000_000], dtype=np.float32)
    est = AutoencoderTransformer(
        N_COMPONENTS, hidden_layer_sizes=HIDDEN, max_iter=1, device=device, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X[:5000])
        est.transform(X[:5000])  # warm-up
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        method = "VmHWM after clear_refs"
        before = _rss_kb("VmRSS") * 1024
    except OSError:
        method = "getrusage lifetime peak (an upper bound)"
        before = X.nbytes  # counts the interpreter, torch and the model as extra
    start = time.perf_counter()
    Z = est.transform(X)
    seconds = time.perf_counter() - start
    if method.startswith("VmHWM"):
        peak = _rss_kb("VmHWM") * 1024
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = {
        "rows": n_rows,
        "input_bytes": X.nbytes,
        "output_bytes": Z.nbytes,
        "rss_before": before,
        "peak": peak,
        "extra": peak - before - Z.nbytes,
        "seconds": seconds,
        "method": method,
        "cuda_peak": torch.cuda.max_memory_allocated()
        if device.startswith("cuda")
        else None,
    }
    print(json.dumps(result))


def run_memory(n_rows, device, threads):
    cmd = [sys.executable, os.path.abspath(__file__), "--_memory-child", str(n_rows)]
    cmd += ["--device", str(device), "--threads", str(threads or 0)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- reports
def summary(values):
    values = np.asarray(values, dtype=float)
    return float(np.median(values)), float(values.min()), float(values.max())


def fmt_seconds(values):
    med, lo, hi = summary(values)
    return f"{med:.3f} [{lo:.3f}-{hi:.3f}]"


def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        padded = (str(c).ljust(w) for c, w in zip(cells, widths, strict=True))
        return "| " + " | ".join(padded) + " |"

    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))
    print()


def verdict(ok):
    return "met" if ok else "NOT met"


# ------------------------------------------------------------------------ benchmark
def bench_training(X, device, batch_size, epochs, repeats, peak_gflops, flops_per_sample):
    n = X.shape[0]
    keys = ("hand", "ae", "ae_loop", "vae", "vae_loop", "skorch", "pca")
    times = {key: [] for key in keys}
    skorch_error = None
    # Warm-up on a slice, untimed: library loading, kernel selection, allocator.
    warm = X[: min(n, 4 * batch_size)]
    hand_written(warm, device, batch_size, 1, 0)
    skvae_fit(AutoencoderTransformer, warm, device, batch_size, 1, 0)
    skvae_fit(VAETransformer, warm, device, batch_size, 1, 0)
    try:
        skorch_fit(warm, device, batch_size, 1, 0)
    except Exception as exc:  # ImportError or an incompatibility: report it
        skorch_error = f"{type(exc).__name__}: {exc}"[:80]

    def run(name, seed):
        if name == "hand":
            times[name].append(hand_written(X, device, batch_size, epochs, seed))
        elif name == "skorch":
            times[name].append(skorch_fit(X, device, batch_size, epochs, seed))
        elif name == "pca":
            times[name].append(pca_fit(X))
        else:
            Est = AutoencoderTransformer if name == "ae" else VAETransformer
            total, loop, n_iter = skvae_fit(Est, X, device, batch_size, epochs, seed)
            if n_iter != epochs:
                raise RuntimeError(f"{Est.__name__} ran {n_iter} epochs, not {epochs}")
            times[name].append(total / epochs)
            if loop is not None:
                times[name + "_loop"].append(loop / epochs)

    names = ["hand", "ae", "vae", "pca"] + (["skorch"] if skorch_error is None else [])
    for rep in range(repeats):
        for name in names if rep % 2 == 0 else names[::-1]:  # alternate the order
            run(name, rep)
        print(f"  batch_size={batch_size}: repetition {rep + 1}/{repeats} done", flush=True)

    hand = np.array(times["hand"])
    rows = []

    def row(name, per_epoch, target="", ok=None):
        """One row; ``x hand`` is the median over repetitions of the paired ratios."""
        per_epoch = np.array(per_epoch)
        med = summary(per_epoch)[0]
        ratio = float(np.median(per_epoch / hand))
        gflops = n / med * flops_per_sample / 1e9
        rows.append(
            [
                name,
                fmt_seconds(per_epoch),
                f"{n / med:,.0f}",
                f"{ratio:.3f}",
                "" if ok == "no flops" else f"{gflops:.1f} ({gflops / peak_gflops:.0%})",
                target + ("" if ok in (None, "no flops") else f": {verdict(ok)}"),
            ]
        )
        return ratio

    row("hand-written torch loop", hand)
    for key, label in (("ae", "AutoencoderTransformer"), ("vae", "VAETransformer")):
        total = np.array(times[key])
        target = TARGETS["fit"] if key == "ae" else ""
        if times[key + "_loop"]:
            loop = np.array(times[key + "_loop"])
            ratio = row(f"skvae {label}, training loop", loop, target)
            if key == "ae":
                rows[-1][-1] += f": {verdict(ratio <= 1.05)}"
            row(f"skvae {label}, whole fit / epochs", total)
            fixed = fmt_seconds((total - loop) * epochs)
            rows.append([f"  {label}: rest of fit, s per fit", fixed, "", "", "", ""])
        else:
            ratio = row(f"skvae {label}, whole fit / epochs", total, target)
            if key == "ae":
                rows[-1][-1] += f": {verdict(ratio <= 1.05)}"
    if skorch_error is None:
        row("skorch NeuralNet, same module", times["skorch"], TARGETS["skorch"])
    else:
        rows.append(["skorch NeuralNet", "unavailable: " + skorch_error, "", "", "", ""])
    row("PCA(n_components=8).fit, whole fit", times["pca"], ok="no flops")
    header = [
        f"training, batch_size={batch_size}",
        "s/epoch median [min-max]",
        "samples/s",
        "x hand (paired median)",
        "GFLOP/s (% of matmul)",
        "target",
    ]
    table(header, rows)


def bench_transform(X, device, repeats):
    est = AutoencoderTransformer(
        N_COMPONENTS,
        hidden_layer_sizes=HIDDEN,
        max_iter=1,
        device=str(device),
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X[:5000])
    encoder = MirrorAutoencoder().encoder.to(device).eval()
    encoders = {np.float32: encoder, np.float64: MirrorAutoencoder().encoder.double()}
    encoders[np.float64].to(device).eval()  # in place
    inputs = {np.float32: X, np.float64: X.astype(np.float64)}
    torch_dtype = {np.float32: torch.float32, np.float64: torch.float64}
    chunks = (*BARE_CHUNKS, LARGE_CHUNK)
    times = {}
    for dtype in inputs:  # warm-up
        est.transform(inputs[dtype][:5000])
        bare_transform(
            encoders[dtype], inputs[dtype][:5000], device, torch_dtype[dtype], 2048
        )
    for rep in range(repeats):
        for dtype, Xd in inputs.items():
            keys = ["skvae", *chunks]
            for key in keys if rep % 2 == 0 else keys[::-1]:  # alternate the order
                if key == "skvae":
                    t = timed(est.transform, Xd)
                else:
                    t = bare_transform(encoders[dtype], Xd, device, torch_dtype[dtype], key)
                times.setdefault((dtype, key), []).append(t)
    n = X.shape[0]
    rows = []
    for dtype in inputs:
        name = np.dtype(dtype).name
        best_bare = min(summary(times[(dtype, c)])[0] for c in BARE_CHUNKS)
        for key in ("skvae", *chunks):
            med = summary(times[(dtype, key)])[0]
            label = (
                f"skvae transform, {name}"
                if key == "skvae"
                else f"bare encoder, {name}, {key:,}-row chunks"
            )
            target = ""
            if key == "skvae":
                target = f"{TARGETS['transform']}: {verdict(best_bare / med >= 0.9)}"
            rows.append(
                [
                    label,
                    fmt_seconds(times[(dtype, key)]),
                    f"{n / med:,.0f}",
                    f"{best_bare / med:.3f}",
                    target,
                ]
            )
    header = [
        f"transform, {n:,} rows",
        "seconds median [min-max]",
        "rows/s",
        "speed vs best bare 1k-4k",
        "target",
    ]
    table(header, rows)


def bench_memory(n_rows, device, threads):
    result = run_memory(n_rows, device, threads)
    if "error" in result:
        table(["memory", "result"], [["transform of big input", result["error"]]])
        return
    gb = 1e9
    extra = result["extra"]
    rows = [
        ["rows x 64 float32", f"{result['rows']:,}"],
        ["input (GB)", f"{result['input_bytes'] / gb:.3f}"],
        ["output (GB)", f"{result['output_bytes'] / gb:.3f}"],
        ["RSS before transform (GB)", f"{result['rss_before'] / gb:.3f}"],
        ["peak RSS during transform (GB)", f"{result['peak'] / gb:.3f}"],
        [
            "peak extra beyond input+output (GB)",
            f"{extra / gb:.3f} ({TARGETS['memory']}: {verdict(extra < gb)})",
        ],
        ["transform time (s)", f"{result['seconds']:.1f}"],
        ["measured with", result["method"]],
    ]
    if result["cuda_peak"] is not None:
        rows.append(["CUDA peak allocated (GB)", f"{result['cuda_peak'] / gb:.3f}"])
    table(["memory of one transform, in a child process", "value"], rows)


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run on 5,000 rows")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--n-samples", type=int, default=None, help="default 100,000")
    parser.add_argument("--epochs", type=int, default=None, help="timed epochs (3)")
    parser.add_argument("--repeats", type=int, default=None, help="repetitions (5)")
    parser.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=None,
        help="256 (cpu), 256 4096 (cuda)",
    )
    parser.add_argument(
        "--memory-rows", type=int, default=None, help="rows of the memory test (10,000,000)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--_memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._memory_child is not None:
        memory_child(args._memory_child, args.device, args.threads)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)  # numpy's BLAS too (PCA, GaussianMixture)
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda was given but CUDA is not available")
        device = torch.device("cuda", torch.cuda.current_device())
    quick = args.quick
    n = args.n_samples or (5_000 if quick else 100_000)
    epochs = args.epochs or (1 if quick else 3)
    repeats = args.repeats or (2 if quick else 5)
    batch_sizes = args.batch_sizes or ([256, 4096] if device.type == "cuda" else [256])
    memory_rows = args.memory_rows
    if memory_rows is None:
        memory_rows = 200_000 if quick else 10_000_000

    X = make_data(n)
    flops_per_sample = 6 * n_weights(MirrorAutoencoder())
    peak, peak_median = matmul_gflops(device, 512 if quick else 2048)
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("n/a",)
    print(f"# skvae speed benchmark ({'quick' if quick else 'full'} run)")
    print()
    print(
        f"- device: {device} ({_cpu_name() if device.type == 'cpu' else ''}"
        f"{torch.cuda.get_device_name(device) if device.type == 'cuda' else ''})"
    )
    print(
        f"- torch {torch.__version__}, {torch.get_num_threads()} intra-op thread(s); "
        f"load average at start {', '.join(f'{x:.2f}' for x in load)}"
    )
    print(
        f"- data: {n:,} x {N_FEATURES} float32 (8-d latent, tanh MLP 8-64-64, noise 0.05)"
    )
    print(
        f"- network 64-256-128-8 + mirror, W = {n_weights(MirrorAutoencoder()):,} weights;"
        f" training FLOPs/sample = 6 * W = {flops_per_sample:,}"
    )
    print(
        f"- float32 matmul rate: best {peak:.1f} GFLOP/s, median {peak_median:.1f} "
        "(the % column is relative to the best)"
    )
    print(f"- {epochs} timed epoch(s) per fit, {repeats} interleaved repetitions, medians")
    print()
    for batch_size in batch_sizes:
        bench_training(X, device, batch_size, epochs, repeats, peak, flops_per_sample)
    bench_transform(X, device, repeats + 2)
    if memory_rows > 0:
        bench_memory(memory_rows, device, args.threads)
    for key, text in TARGETS.items():
        print(f"- target ({key}): {text}")


if __name__ == "__main__":
    main()
