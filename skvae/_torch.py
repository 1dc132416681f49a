"""Device resolution, array <-> tensor conversion, batched inference, torch threads."""

import copy
import functools
import os
import threading
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp
import torch
from scipy.special import ndtri

#: Rows per chunk for inference. Chunks of a few thousand rows keep the working
#: set in cache on a CPU and bound the memory whatever the number of rows.
INFERENCE_CHUNK = 1024


def physical_memory():
    """This machine's physical memory in bytes, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # Windows has no sysconf
        return None


def check_memory(n_bytes, action, advice):
    """Refuse, with a MemoryError, work that needs more memory than the machine has.

    Parameters
    ----------
    n_bytes : int
        A lower bound on the memory ``action`` needs at once.
    action : str
        What needs it, the sentence's subject (``"sample(n_samples=...)"``).
    advice : str
        What to do instead.

    Raises
    ------
    MemoryError
        If ``n_bytes`` exceeds the physical memory (where the OS reports it):
        such work would otherwise fail deep in numpy or torch, or thrash the
        machine until the OS kills the process.
    """
    total = physical_memory()
    if total is not None and n_bytes > total:
        raise MemoryError(
            f"{action} needs at least {_size(n_bytes)} of memory, more than this "
            f"machine's {_size(total)}. {advice}"
        )


def _size(n_bytes):
    """A byte count for people: '1.5 GB'."""
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n_bytes < 1000 or unit == "TB":
            return f"{n_bytes:.3g} {unit}" if unit != "bytes" else f"{n_bytes} bytes"
        n_bytes /= 1000


def resolve_device(device):
    """Turn the ``device`` parameter into an indexed, available ``torch.device``.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:N"``, ``"mps"`` or a ``torch.device``.

    Returns
    -------
    device : torch.device
        ``cuda`` devices always carry an index (``cuda:0``).
    """
    if isinstance(device, str) and device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid device; use 'auto', 'cpu', 'cuda', "
            "'cuda:N', 'mps' or a torch.device."
        ) from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={str(device)!r} was requested but CUDA is not available; "
                "use device='cpu' or 'auto'."
            )
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device={str(device)!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) are visible; use "
                "an index below that, or device='cpu'."
            )
        return torch.device("cuda", index)
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(
                "device='mps' was requested but MPS is not available; use "
                "device='cpu' or 'auto'."
            )
        return device
    if device.type != "cpu":
        raise ValueError(
            f"device={str(device)!r} is not supported; use 'auto', 'cpu', 'cuda', "
            "'cuda:N' or 'mps'."
        )
    return torch.device("cpu")  # "cpu:0" is the same CPU (torch.Generator refuses it)


def available(device):
    """Whether a device that was resolved on some machine exists on this one."""
    if device.type == "cuda":
        return torch.cuda.is_available() and device.index < torch.cuda.device_count()
    if device.type == "mps":
        return torch.backends.mps.is_available()
    return device.type == "cpu"


def to_tensor(X, device, dtype=torch.float32):
    """Copy 2-D rows to ``device`` as a dense ``dtype`` tensor (one copy at most).

    ``X`` is a numpy array, a scipy.sparse matrix or array (densified here, so
    pass it a minibatch of rows at a time) or a tensor.
    """
    if isinstance(X, torch.Tensor):
        return X.to(device, dtype)
    if sp.issparse(X):
        X = X.toarray()
    X = np.ascontiguousarray(X, dtype=torch.empty((), dtype=dtype).numpy().dtype)
    if not X.flags.writeable:  # from_numpy warns on read-only arrays
        X = X.copy()
    return torch.from_numpy(X).to(device)


def inference_dtype(X_dtype, device):
    """The precision that inference runs at: float64 for float64 input.

    Float64 inference makes results independent of how rows are batched (to
    ~1e-15), which scikit-learn's subset and order invariance checks require.
    MPS has no float64, so it falls back to float32 there.
    """
    if np.dtype(X_dtype) == np.float64 and torch.device(device).type != "mps":
        return torch.float64
    return torch.float32


def inference_module(module, dtype):
    """An eval-mode copy of ``module`` at ``dtype`` (the module itself for float32)."""
    if dtype != torch.float32:
        module = copy.deepcopy(module).to(dtype)
    return module.eval()


def batched(function, arrays, device, dtype, chunk=INFERENCE_CHUNK):
    """Apply ``function`` to row chunks of numpy ``arrays`` under inference mode.

    Parameters
    ----------
    function : callable
        Takes one tensor per array (rows of the same chunk) and returns a tensor
        or a tuple of tensors whose first dimension is the chunk's rows.
    arrays : list of ndarray
        Arrays with the same number of rows.
    device : torch.device
    dtype : torch.dtype
        Precision of the inputs and of the computation.
    chunk : int
        Rows per chunk.

    Returns
    -------
    out : ndarray or tuple of ndarray
        The concatenated results, as numpy arrays on the CPU.
    """
    n = arrays[0].shape[0]
    outputs = None
    with torch.inference_mode():
        for start in range(0, max(n, 1), chunk):
            tensors = [to_tensor(a[start : start + chunk], device, dtype) for a in arrays]
            out = function(*tensors)
            out = [o.cpu().numpy() for o in (out if isinstance(out, tuple) else (out,))]
            if outputs is None:  # preallocated: no list of parts, no concatenate copy
                outputs = [np.empty((n, *o.shape[1:]), dtype=o.dtype) for o in out]
            for dst, o in zip(outputs, out):
                dst[start : start + len(o)] = o
    return tuple(outputs) if len(outputs) > 1 else outputs[0]


_THREADS_LOCK = threading.Lock()
_threads_state = {"users": 0, "saved": None}
_threads_local = threading.local()  # each thread's depth of nested blocks


@contextmanager
def torch_threads(n_threads):
    """Run a block with torch's intra-op thread count set to ``n_threads``.

    The caller's setting is read when no other such block runs (in any
    thread), and each outermost block of a thread puts that thread back to
    it at the end; a block nested in another of the same thread puts it
    back to the outer block's count. Either only where the count differs.
    torch's OpenMP setting belongs to each OS thread, but a thread picks up
    the last count set in any thread at its first parallel operation: a
    block that started while another ran could read that block's count as
    the caller's, and one saved value restored by the last block to end, in
    its own thread, left the other thread at the blocks' count. A block that
    changes nothing sets nothing: ``torch.set_num_threads`` also sets MKL's
    count and the one new threads start with, which ``threadpoolctl``'s
    limits do not restore.
    """
    with _THREADS_LOCK:
        depth = getattr(_threads_local, "depth", 0)
        current = torch.get_num_threads()
        if _threads_state["users"] == 0:
            _threads_state["saved"] = current
        back = _threads_state["saved"] if depth == 0 else current
        _threads_state["users"] += 1
        _threads_local.depth = depth + 1
        if current != n_threads:
            torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _threads_state["users"] -= 1
            _threads_local.depth = depth
            if torch.get_num_threads() != back:
                torch.set_num_threads(back)


def generator(seed, device="cpu"):
    """A ``torch.Generator`` on ``device`` seeded with ``seed``, for draws outside a fit."""
    return torch.Generator(device=device).manual_seed(int(seed))


#: splitmix64's increment and finalizer (Steele, Lea and Flood, "Fast
#: splittable pseudorandom number generators", OOPSLA 2014): a counter-based
#: generator, vectorized here over numpy uint64 arrays (which wrap silently).
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(h):
    """splitmix64's finalizer of the uint64 array ``h``, as a new array."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def row_keys(X, seed):
    """A 64-bit key per row of ``X`` from ``seed`` and the row's values.

    The key hashes each non-zero entry's column and value (rounded to
    float32), summed over the row: a row gets the same key wherever it sits,
    whatever rows come with it, in float32 or float64, and as a dense or a
    CSR row (explicit zeros count as zeros).

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix of shape (n_samples, n_features)
        float32 or float64.
    seed : int

    Returns
    -------
    keys : ndarray of shape (n_samples,), dtype uint64
    """
    n, d = X.shape
    # An odd multiplier per column: an entry's hash is 0 exactly where its
    # value is 0, so stored and implicit zeros alike add nothing.
    columns = (_mix(np.arange(d, dtype=np.uint64)) | np.uint64(1)).astype(np.uint32)
    keys = np.zeros(n, dtype=np.uint64)
    step = max(1, DENSE_ELEMENTS // max(d, 1))
    for start in range(0, n, step):
        block = X[start : start + step]
        rows = block.shape[0]
        if sp.issparse(block):
            block = block.tocsr()
            if not block.has_canonical_format:  # duplicates add up, as densified
                block = block.copy()
                block.sum_duplicates()
            values, where, ends = block.data, columns[block.indices], block.indptr
        else:
            values, where, ends = block, columns, None
        # Rounded to float32 (a row in either precision, or encoded with a
        # last-bit difference, keeps its key); + 0 turns -0.0 into 0.0.
        bits = (np.asarray(values, dtype=np.float32) + np.float32(0)).view(np.uint32)
        entry = bits * np.uint32(0x9E3779B1)
        entry ^= entry >> np.uint32(16)
        entry *= where
        if ends is None:
            keys[start : start + rows] = entry.sum(axis=1, dtype=np.uint64)
        else:
            total = np.concatenate(
                [np.zeros(1, np.uint64), np.cumsum(entry, dtype=np.uint64)]
            )
            keys[start : start + rows] = total[ends[1:]] - total[ends[:-1]]
    return _mix(keys ^ _mix(np.full(1, seed, dtype=np.uint64) + _GOLDEN))  # seed mixed once


#: Normal draws a score's rows pick theirs from, at least (4 MiB of float32);
#: a row that needs more draws gets a pool of the next power of 2 above them.
_POOL = 2**20


@functools.lru_cache(maxsize=4)
def _pool(seed, size):
    """``size`` standard normal draws from ``seed``, read-only.

    splitmix64 counters through the normal quantile: no generator's stream
    that a numpy version could change.
    """
    counters = np.arange(1, size + 1, dtype=np.uint64) * _GOLDEN
    h = _mix(counters + _mix(np.full(1, seed, dtype=np.uint64)))
    uniform = ((h >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53
    pool = ndtri(uniform).astype(np.float32)
    pool.flags.writeable = False
    return pool


def row_normals(keys, count, seed=0):
    """``count`` standard normal draws per key: shape (len(keys), count), float32.

    Each key picks ``count`` entries of a pool of ``size`` standard normal
    draws (2**20, or the power of 2 at or above ``count``; seeded by
    ``seed``): from its own start, at its own odd stride, so one key's draws
    are distinct entries, independent of each other, and two keys share
    about count**2 / size of them.
    """
    size = max(_POOL, 1 << max(count - 1, 0).bit_length())
    mask = np.uint64(size - 1)
    start = (keys & mask).astype(np.int64)
    stride = (((keys >> np.uint64(32)) | np.uint64(1)) & mask).astype(np.int64)
    # (start + stride * i) mod size in int64: stride and i are below size,
    # which a row's memory check keeps far below 2**31
    index = stride[:, None] * np.arange(count, dtype=np.int64)
    index += start[:, None]
    index &= size - 1
    return _pool(int(seed), size)[index]


#: The type a ``device`` parameter may also be (for parameter validation).
torch_device_type = torch.device

#: Fraction of free GPU memory the training data may take before it is streamed.
_GPU_DATA_FRACTION = 0.5


def training_tensor(X, device):
    """The training rows as one float32 tensor, on ``device`` when they fit there.

    On CUDA, data that would take more than half the free GPU memory stays in
    pinned CPU memory and :func:`~._training.train` copies each minibatch over.
    Sparse rows stay a :class:`SparseRows` on the CPU, densified a minibatch
    at a time.
    """
    if isinstance(X, SparseRows):
        return X
    if sp.issparse(X):
        return SparseRows(X)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if X.shape[0] * X.shape[1] * 4 > _GPU_DATA_FRACTION * free:
            return to_tensor(X, "cpu").pin_memory()
    return to_tensor(X, device)


#: Numbers (rows times features) that a sparse fit densifies at once at most
#: when it needs dense rows outside its minibatches: the start's factor
#: analysis and background density, and the moments of the output biases
#: (32 MiB of float64).
DENSE_ELEMENTS = 2**22


class SparseRows:
    """Rows of a CSR matrix that stay sparse on the CPU, densified on indexing.

    The training data of a sparse fit: ``rows[index]`` (a tensor or array of
    row indices, or a slice) is a dense float32 tensor of those rows, so only
    a minibatch is ever dense. ``subset`` selects rows without copying the
    matrix (the training and validation rows of one CSR).

    Parameters
    ----------
    matrix : scipy.sparse matrix or array
        Converted to CSR with float32 values (sharing the index arrays, and
        the values too when they already are float32).
    rows : ndarray of int or None
        The rows of ``matrix`` this object stands for, in order (None: all).
    """

    device = torch.device("cpu")
    dtype = torch.float32

    def __init__(self, matrix, rows=None):
        matrix = matrix.tocsr() if matrix.format != "csr" else matrix
        self.matrix = matrix.astype(np.float32, copy=False)
        self.rows = None if rows is None else np.asarray(rows, dtype=np.intp)
        n = self.matrix.shape[0] if self.rows is None else len(self.rows)
        self.shape = (n, self.matrix.shape[1])

    def __len__(self):
        return self.shape[0]

    def subset(self, rows):
        """The rows at positions ``rows`` of this object, on the same matrix."""
        rows = np.asarray(rows, dtype=np.intp)
        return SparseRows(self.matrix, rows if self.rows is None else self.rows[rows])

    def sparse(self, index):
        """The rows ``index`` as a CSR matrix."""
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        if self.rows is not None:
            index = self.rows[index]
        return self.matrix[index]

    def __getitem__(self, index):
        return torch.from_numpy(self.sparse(index).toarray())


def dense_row_count(X, max_rows, max_elements=None):
    """How many of X's rows :func:`dense_rows` reads with these limits."""
    n, d = X.shape
    if sp.issparse(X) or isinstance(X, SparseRows):
        max_elements = DENSE_ELEMENTS if max_elements is None else max_elements
        max_rows = min(max_rows, max(2, max_elements // max(d, 1)))
    return min(n, max_rows)


def dense_rows(X, max_rows, seed, max_elements=None):
    """A random subset of X's rows as a dense float64 ndarray of bounded size.

    Parameters
    ----------
    X : ndarray, scipy.sparse matrix or :class:`SparseRows` of shape (n, d)
    max_rows : int
        At most this many rows; a sparse X gets at most ``max_elements // d``
        (at least 2; ``DENSE_ELEMENTS`` by default), so that its dense copy
        stays small however wide it is.
    seed : int
        Seeds the choice of rows (all rows, in order, when they fit).

    Returns
    -------
    rows : ndarray of shape (m, d)
    """
    n = X.shape[0]
    max_rows = dense_row_count(X, max_rows, max_elements)
    if n > max_rows:
        index = np.random.RandomState(seed).choice(n, max_rows, replace=False)
        X = X[index]
    if isinstance(X, SparseRows):  # all of them: dense on indexing
        X = X[np.arange(n)]
    if isinstance(X, torch.Tensor):
        return X.cpu().numpy().astype(np.float64)
    if sp.issparse(X):
        X = X.toarray()
    return np.asarray(X, dtype=np.float64)
