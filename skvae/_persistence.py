"""Saving and loading fitted estimators without pickle: JSON metadata plus safetensors.

A saved estimator is one zip archive (stored, not compressed) with two members:

``skvae.json``
    ``format`` ("skvae"), ``format_version``, the estimator's ``class`` name,
    the ``skvae``/``scikit-learn``/``torch`` versions that wrote it, the
    constructor ``params``, the network's plain ``module`` description (sizes,
    and the names and options of its likelihood, prior and background) and
    every other instance attribute (fitted attributes and private fit state
    such as ``_seed`` and the optimizer state), encoded as JSON. Values JSON
    has no type for are tagged one-key objects, e.g. ``{"tuple": [...]}``,
    ``{"ndarray": "<tensor key>"}`` or ``{"gaussian_mixture": {...}}``.
``weights.safetensors``
    Every numeric array: the module's ``state_dict`` under ``module_/...``, and
    the arrays that ``skvae.json`` refers to by key (optimizer moments, the
    code density's means and covariances, ...).

Loading reads JSON and safetensors only and rebuilds the module from its stored
description (``_networks.build``), so an untrusted file can hold data but no
code: nothing is unpickled, and only skvae's estimator classes and scikit-learn's
``GaussianMixture`` can be instantiated. Before anything is built, it checks
that the archive holds the two members, stored and within the file (nothing
to inflate), the JSON's size and depth, the safetensors header against its
member's size, the parameters against the estimator's constraints, every
attribute against the schema below (names, types, shapes, and agreement with
each other and with the network), and the shapes of the tensors against the
network the parameters describe, laid out on torch's ``meta`` device (which
allocates no memory). Whatever is wrong with a file, ``load`` raises a
ValueError that says what.

A saved ``VAEImputer`` is one zip archive (stored) of ``skvae.json`` (the
same keys, less ``module``: the imputer has no network of its own) and one
member per model, ``estimators/<i>.skvae``, each a saved ``VAETransformer``
as above, checked as a file of its own, and all of them against the imputer
(their number, their input, their latent size and their table encoding).

``save`` writes to a temporary file beside the destination and renames it
into place, so a save that fails leaves the previous file as it was.
"""

import contextlib
import errno
import io
import json
import math
import os
import re
import secrets
import stat
import struct
import warnings
import zipfile
import zlib
from importlib import metadata

import numpy as np
import sklearn
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from sklearn.mixture import GaussianMixture

from ._networks import as_fitted, build, shell
from ._torch import available, resolve_device

FORMAT = "skvae"
#: Bump when a file written by this version cannot be read by older ones
#: (2: the network is rebuilt from its stored description; skvae 0.1 wrote 1;
#: 3: a table's numeric block may be interval-censored and a category dtype
#: stores its categories' dtype, which readers of version 2 called corrupted;
#: 4: a table may hold columns that another decides, its "functions";
#: 5: an array's network may read its inputs in a unit, "input_unit", and an
#: imputer's file may hold weights of its own; other files are still written
#: as 4, see ``_versions``; 6: a VAE's background may be "ppca_t", with a
#: heavy tail, or a table's string dtype may name its storage, "str[python]").
FORMAT_VERSION = 6
#: The versions this one reads: an older file's table lacks only what later ones added.
READABLE_VERSIONS = (2, 3, 4, 5, 6)
_META = "skvae.json"
_WEIGHTS = "weights.safetensors"
_MODULE = "module_"
_META_KEYS = {"format", "format_version", "class", "params", "module", "attributes"}
_META_KEYS |= {"skvae_version", "sklearn_version", "torch_version"}
#: Largest ``skvae.json`` and safetensors header read, in bytes. A table's
#: marginals take about 200 kB per numeric column of 1,000 values (its knots and
#: the cells of its likelihood, twice): at 32 MB, a model of 300 such columns
#: was saved but not loaded.
_MAX_META_BYTES = 256 * 2**20
_MAX_HEADER_BYTES = 16 * 2**20
#: Deepest nesting of JSON values (a saved file needs about 16).
_MAX_DEPTH = 64
#: Tags of the one-key JSON objects that stand for non-JSON values, and the
#: other keys that two of them have.
_TAGS = {"tuple", "dict", "pairs", "float", "ndarray", "strings", "device", "random_state"}
_TAGS |= {"gaussian_mixture", "table", "pandas_na"}
_TAG_EXTRAS = {"ndarray": {"torch"}, "strings": {"dtype"}}
#: safetensors dtypes a file may hold.
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16}
_DTYPES |= {"I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8}
_DTYPES |= {"U8": torch.uint8, "BOOL": torch.bool}
_DTYPE_NAMES = {dtype: name for name, dtype in _DTYPES.items()}
#: Errors that zipfile raises on a malformed archive.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError)
_ZIP_ERRORS += (KeyError, IndexError, OverflowError, RuntimeError, NotImplementedError)
_ZIP_ERRORS += (struct.error, zlib.error)
#: Errors that any other step can raise on a malformed file, beyond the checks
#: below; load reports them as a corrupted file.
_ERRORS = (TypeError, KeyError, IndexError, AttributeError, RuntimeError, OverflowError)
_ERRORS += (RecursionError, NotImplementedError, EOFError, struct.error, zlib.error)

# ----------------------------------------------------------------- schema
#: The attributes of every fitted estimator, besides its parameters and module_
#: (their types and shapes: :func:`_check_input` and :func:`_check_fitted`).
_FITTED = {"n_features_in_", "device_", "n_components_", "n_iter_", "loss_curve_"}
_FITTED |= {"best_loss_", "validation_scores_", "best_validation_score_", "code_density_"}
_FITTED |= {"_table", "_architecture", "_optimizer_state", "_seed"}
#: Attributes a fitted estimator may have: ``feature_names_in_`` after a fit on
#: a DataFrame with string column names, ``_sklearn_output_config`` after
#: ``set_output``, ``_density_rows`` (files written before it existed lack it).
_OPTIONAL = {"feature_names_in_", "_sklearn_output_config", "_density_rows"}
#: Further attributes, by the kind of network: required, and optional
#: (``_collapse_warned``: files written before it existed lack it).
_EXTRAS = {
    "autoencoder": set(),
    "vae": {"active_components_", "n_active_components_", "noise_variance_"},
}
_OPTIONAL_EXTRAS = {"autoencoder": set(), "vae": {"_collapse_warned"}}
#: State a file does not keep: what a partial_fit stream's batches have warned
#: about (a loaded model's stream warns again, once).
_TRANSIENT = {"_batch_warned"}
_KNOWN = _FITTED | _OPTIONAL
_KNOWN |= set().union(*_EXTRAS.values(), *_OPTIONAL_EXTRAS.values())
#: A fitted GaussianMixture's attributes (``lower_bounds_`` from scikit-learn 1.7).
_GMM_FITTED = {"weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"}
_GMM_FITTED |= {"converged_", "n_iter_", "lower_bound_", "n_features_in_"}
_GMM_OPTIONAL = {"lower_bounds_"}
#: A VAEImputer's metadata keys, and its attributes besides ``estimators_``.
_IMPUTER_META_KEYS = _META_KEYS - {"module"}
_IMPUTER_FITTED = {"n_features_in_", "n_components_", "n_iter_"}
_IMPUTER_OPTIONAL = {"feature_names_in_", "_sklearn_output_config"}
_ESTIMATORS = "estimators_"
_COLUMN_FIELDS = {"name", "kind", "dtype", "start", "missing", "mean", "scale", "integer"}
_COLUMN_FIELDS |= {"levels"}
#: A column's marginal model: files written before it existed lack these.
_MARGINAL_FIELDS = {"transform", "low", "high", "knots", "cdf", "atoms", "atom_low"}
_MARGINAL_FIELDS |= {"atom_high"}
_TRANSFORMS = {"standard", "quantile", "mixture"}
#: A table's keys: files written before missing-value gates and arrays lack the extras,
#: those written before the likelihood had gates or cells the last ones.
_TABLE_KEYS = {"columns", "width"}
_TABLE_EXTRAS = {"gates", "array"}
_TABLE_LATER = {"likelihood_gates", "censored"}
_COLUMN_KINDS = {"numeric", "boolean", "categorical"}
_DTYPE_PATTERN = re.compile(r"[\w\[\], ]{1,64}")
_OUTPUTS = {"default", "pandas", "polars"}
_SCALARS = (str, int, float, bool)


class _Invalid(Exception):
    """What is wrong with a file; :func:`load_estimator` reports it as a ValueError.

    The message completes a sentence that starts with the file's name.
    """


def _shown(path):
    """``path`` for an error message."""
    return repr(os.fspath(path)) if isinstance(path, (str, os.PathLike)) else repr(path)


def _brief(value):
    """A short description of a value for an error message."""
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return f"an array of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _corrupted(message):
    """The error for metadata that no save could have written."""
    return _Invalid(f"has corrupted metadata: {message}")


def _expect(ok, name, expected, value):
    """Raise unless ``ok``: attribute ``name`` should be ``expected``."""
    if not ok:
        raise _corrupted(f"{name} should be {expected}, got {_brief(value)}.")


def _is_int(value, low=None):
    """Whether ``value`` is an int (not a bool), and at least ``low`` if given."""
    return type(value) is int and (low is None or value >= low)


def _is_real(value):
    """Whether ``value`` is an int or a float (not a bool)."""
    return type(value) in (int, float)


def _is_floats(values):
    """Whether ``values`` is a list of floats."""
    return isinstance(values, list) and all(type(v) is float for v in values)


def _equal(a, b):
    """``a == b`` for decoded values; False where arrays make it ambiguous."""
    try:
        return bool(a == b)
    except (ValueError, TypeError):
        return False


def _skvae_version():
    try:
        return metadata.version("skvae")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
        return "unknown"


# ---------------------------------------------------------------- encoding
def _encode(value, tensors, key):
    """A JSON-able form of ``value``; numeric arrays go to ``tensors`` under ``key``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic) and not isinstance(value, (np.str_, np.bytes_)):
        return _encode(value.item(), tensors, key)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, list):
        return [_encode(v, tensors, f"{key}/{i}") for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, tensors, f"{key}/{i}") for i, v in enumerate(value)]}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            items = value.items()
            return {"dict": {k: _encode(v, tensors, f"{key}/{k}") for k, v in items}}
        return {
            "pairs": [
                [_encode(k, tensors, f"{key}/key{i}"), _encode(v, tensors, f"{key}/{i}")]
                for i, (k, v) in enumerate(value.items())
            ]
        }
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf":
            tensors[key] = torch.from_numpy(np.ascontiguousarray(value).copy())
            return {"ndarray": key}
        if value.dtype.kind in "OU" and all(isinstance(v, str) for v in value.ravel()):
            return {"strings": value.tolist(), "dtype": value.dtype.kind}
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().cpu().contiguous().clone()
        return {"ndarray": key, "torch": True}
    if isinstance(value, torch.device):
        return {"device": str(value)}
    if type(value).__name__ == "NAType" and type(value).__module__.startswith("pandas"):
        return {"pandas_na": True}  # VAEImputer's missing_values
    if isinstance(value, np.random.RandomState):
        name, keys, pos, has_gauss, cached = value.get_state()
        keys = keys.astype(np.int64)
        return {"random_state": _encode([name, keys, pos, has_gauss, cached], tensors, key)}
    if type(value) is GaussianMixture:
        fitted = {k: v for k, v in vars(value).items() if k.endswith("_")}
        return {
            "gaussian_mixture": {
                "params": _encode(value.get_params(deep=False), tensors, f"{key}/params"),
                "attributes": _encode(fitted, tensors, f"{key}/attributes"),
            }
        }
    if type(value).__name__ == "Table" and type(value).__module__ == "skvae._tabular":
        return {"table": _encode(value.to_state(), tensors, f"{key}/table")}
    raise ValueError(
        f"Cannot save {key!r}: values of type {type(value).__name__} are not supported "
        "by skvae's file format."
    )


def _unexpected(value):
    """The error for a JSON value that :func:`_encode` cannot have written."""
    return _corrupted(f"Unexpected value {_brief(value)} in the file.")


def _decode(value, tensors, used):
    """Invert :func:`_encode`, rejecting anything it cannot have written.

    ``used`` collects the keys of the tensors the value refers to.
    """
    if value is None or isinstance(value, _SCALARS):
        return value
    if isinstance(value, list):
        return [_decode(v, tensors, used) for v in value]
    tag = next(iter(value), None) if isinstance(value, dict) else None
    if tag not in _TAGS or not set(value) - {tag} <= _TAG_EXTRAS.get(tag, set()):
        raise _unexpected(value)
    body = value[tag]
    if tag == "tuple" and isinstance(body, list):
        return tuple(_decode(v, tensors, used) for v in body)
    if tag == "dict" and isinstance(body, dict):
        return {k: _decode(v, tensors, used) for k, v in body.items()}
    if tag == "pairs" and isinstance(body, list):
        return _pairs(body, tensors, used)
    if tag == "float" and body in ("inf", "-inf", "nan"):
        return float(body)
    if tag == "ndarray" and isinstance(body, str) and value.get("torch", True) is True:
        if body not in tensors or body in used:
            raise _corrupted(f"the weights have no array {body!r} to refer to.")
        used.add(body)
        return tensors[body] if "torch" in value else tensors[body].numpy()
    if (
        tag == "strings"
        and isinstance(body, list)
        and all(isinstance(v, str) for v in body)
        and value.get("dtype") in ("O", "U")
    ):
        return np.asarray(body, dtype=object if value["dtype"] == "O" else str)
    if tag == "pandas_na" and body is True:
        import pandas as pd  # a file that holds pd.NA was written with pandas

        return pd.NA
    if tag == "device" and isinstance(body, str) and len(body) <= 32:
        try:
            return torch.device(body)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise _corrupted(f"unexpected device {body!r}.") from exc
    if tag == "random_state":
        return _random_state(_decode(body, tensors, used))
    if tag == "gaussian_mixture" and isinstance(body, dict):
        if set(body) != {"params", "attributes"}:
            raise _unexpected(value)
        params = _decode(body["params"], tensors, used)
        return _gaussian_mixture(params, _decode(body["attributes"], tensors, used))
    if tag == "table":
        return _table(_decode(body, tensors, used))
    raise _unexpected(value)


def _pairs(body, tensors, used):
    """The dict of a ``{"pairs": [[key, value], ...]}`` value."""
    out = {}
    for pair in body:
        if not (isinstance(pair, list) and len(pair) == 2):
            raise _unexpected(pair)
        key = _decode(pair[0], tensors, used)
        try:
            hash(key)
        except TypeError as exc:
            raise _unexpected(pair) from exc
        out[key] = _decode(pair[1], tensors, used)
    return out


def _random_state(state):
    """A RandomState from the ``get_state()`` values that :func:`_encode` wrote."""
    ok = isinstance(state, list) and len(state) == 5
    if ok:
        name, keys, pos, has_gauss, cached = state
        ok = (
            isinstance(name, str)
            and name == "MT19937"
            and isinstance(keys, np.ndarray)
            and keys.shape == (624,)
            and keys.dtype == np.int64
            and bool(((keys >= 0) & (keys < 2**32)).all())
            and _is_int(pos, 0)
            and pos <= 624
            and type(has_gauss) is int
            and has_gauss in (0, 1)
            and type(cached) is float
        )
    if not ok:
        raise _corrupted(f"unexpected random state {_brief(state)}.")
    rng = np.random.RandomState()
    rng.set_state((name, keys.astype(np.uint32), pos, has_gauss, cached))
    return rng


def _gaussian_mixture(params, attributes):
    """The code density: a full-covariance GaussianMixture (shapes: :func:`_check_gmm`)."""
    if not isinstance(params, dict) or not isinstance(attributes, dict):
        raise _corrupted("code_density_ should hold params and attributes.")
    gmm = GaussianMixture()
    try:
        gmm.set_params(**params)
        gmm._validate_params()
    except ValueError as exc:
        raise _corrupted(f"code_density_ has invalid parameters: {exc}") from exc
    for name in ("weights_init", "means_init", "precisions_init"):
        value = getattr(gmm, name)
        _expect(value is None, f"code_density_.{name}", "None", value)
    _expect(gmm.covariance_type == "full", "code_density_.covariance_type", "'full'", gmm)
    missing = _GMM_FITTED - set(attributes)
    unknown = set(attributes) - _GMM_FITTED - _GMM_OPTIONAL
    if missing or unknown:
        raise _corrupted(
            f"code_density_ lacks attributes {sorted(missing)} or has unexpected ones "
            f"{sorted(unknown)}."
        )
    for name, value in attributes.items():
        setattr(gmm, name, value)
    return gmm


def _table(state):
    """The Table of a model of a DataFrame, from checked :meth:`Table.to_state` values."""
    from ._tabular import Table  # pandas: only models of DataFrames have tables

    keys = set(state) - {"functions"} if isinstance(state, dict) else None
    ok = keys in (
        _TABLE_KEYS,
        _TABLE_KEYS | _TABLE_EXTRAS,
        _TABLE_KEYS | _TABLE_EXTRAS | {"likelihood_gates"},
        _TABLE_KEYS | _TABLE_EXTRAS | _TABLE_LATER,
    )
    columns = state["columns"] if ok else None
    if not (ok and isinstance(columns, list) and columns):
        raise _corrupted(f"unexpected table {_brief(state)}.")
    start, names = 0, set()
    for column in columns:
        width = _check_column(column, start)
        names.add(column["name"])
        start += width
    _expect(len(names) == len(columns), "the table's column names", "unique", names)
    width = state["width"]
    _expect(_is_int(width) and width == start, "the table's width", start, width)
    array = state.get("array", False)
    _expect(type(array) is bool, "the table's array flag", "a bool", array)
    for key in _TABLE_LATER:
        flag = state.get(key, False)
        _expect(type(flag) is bool, f"the table's {key}", "a bool", flag)
    if array:
        kinds = [(c["kind"], c["name"]) for c in columns]
        _expect(
            kinds == [("numeric", j) for j in range(len(columns))],
            "the columns of an array's table",
            "numeric, named 0, 1, ...",
            kinds,
        )
    _check_gates(state.get("gates", []), columns)
    if "functions" in state:
        _check_functions(state["functions"], columns, state.get("gates", []))
    try:
        return Table.from_state(state)
    except (TypeError, ValueError, KeyError) as exc:
        raise _corrupted(f"the table cannot be rebuilt: {exc}") from exc


def _flagged(column):
    """Whether a checked column's state has a 0/1 flag: missing values or a point."""
    return column["missing"] or column.get("point") is not None


def _check_gates(gates, columns):
    """Check a table's missing-value gates (see ``_tabular.find_gates``)."""
    _expect(isinstance(gates, list), "the table's gates", "a list", gates)
    gated = set()
    for rule in gates:
        ok = isinstance(rule, dict) and set(rule) == {
            "column",
            "gate",
            "missing",
            "observed",
        }
        if not ok:
            raise _corrupted(f"unexpected missing-value gate {_brief(rule)}.")
        i, j = rule["column"], rule["gate"]
        n = len(columns)
        ok = _is_int(i, 0) and i < n and _is_int(j, 0) and j < n and i != j
        ok = ok and columns[i]["kind"] != "boolean" and _flagged(columns[i])
        _expect(ok, "a missing-value gate's columns", "two table columns", rule)
        gate = columns[j]
        _expect(
            gate["kind"] != "numeric" or _flagged(gate),
            "a missing-value gate",
            "a categorical or boolean column, or a numeric one with missing values "
            "or a point",
            rule,
        )
        size = _n_saved_states(gate)
        states = [rule["missing"], rule["observed"]]
        _expect(
            all(isinstance(v, list) for v in states)
            and all(_is_int(v, 0) and v < size for v in states[0] + states[1])
            and not set(states[0]) & set(states[1]),
            "a missing-value gate's states",
            f"disjoint lists of indices below {size}",
            rule,
        )
        _expect(i not in gated, "the missing-value gates", "one per column", gates)
        gated.add(i)
    from ._tabular import decoding_order  # pandas: only models of DataFrames have gates

    try:
        decoding_order(gates)  # a chain of gates ends: no cycle
    except ValueError:
        raise _corrupted(
            f"the missing-value gates should have no cycle, got {_brief(gates)}."
        ) from None


def _n_saved_states(column):
    """The number of states of a checked column (see ``_tabular._state_codes``)."""
    if column["kind"] != "categorical":
        return 2
    return len(column["levels"]) + bool(column.get("rare")) + column["missing"]


def _check_functions(functions, columns, gates):
    """Check a table's columns that another decides (see ``_tabular.find_functions``)."""
    _expect(
        isinstance(functions, list) and functions,
        "the table's functions",
        "a non-empty list (an empty one is not written)",
        functions,
    )
    gated = {rule["column"] for rule in gates}
    linked = gated | {rule["gate"] for rule in gates}
    decided = set()
    for rule in functions:
        ok = isinstance(rule, dict) and set(rule) == {"column", "parent", "map"}
        if not ok:
            raise _corrupted(f"unexpected function of a column {_brief(rule)}.")
        i, j, n = rule["column"], rule["parent"], len(columns)
        ok = _is_int(i, 0) and i < n and _is_int(j, 0) and j < n and i != j
        ok = ok and i not in linked and j not in gated and i not in decided
        ok = ok and all(columns[k]["kind"] != "numeric" for k in (i, j))
        _expect(
            ok,
            "a function's columns",
            "two categorical or boolean table columns, one rule each, neither gated "
            "and the column no gate",
            rule,
        )
        decided.add(i)
        sizes = [_n_saved_states(columns[k]) for k in (j, i)]
        pairs = rule["map"]
        ok = isinstance(pairs, list) and all(
            isinstance(pair, list)
            and len(pair) == 2
            and all(_is_int(v, 0) and v < size for v, size in zip(pair, sizes))
            for pair in pairs
        )
        ok = ok and len({pair[0] for pair in pairs}) == len(pairs)
        _expect(ok, "a function's map", f"[parent state, state] pairs below {sizes}", rule)
    from ._tabular import decoding_order  # pandas: only models of DataFrames have them

    try:
        decoding_order(functions, "parent")
    except ValueError:
        raise _corrupted(
            f"the functions should have no cycle, got {_brief(functions)}."
        ) from None


def _check_marginal(column, where):
    """Check a numeric column's marginal model (see ``_tabular.fit_numeric``)."""
    if set(column) == _COLUMN_FIELDS:  # written before marginal models
        return
    transform = column["transform"]
    arrays = [column[k] for k in ("knots", "cdf", "atoms", "atom_low", "atom_high")]
    low, high = column["low"], column["high"]
    finite = all(_is_real(v) and math.isfinite(v) for v in (low, high))
    _expect(finite and low <= high, f"{where} range", "finite, low <= high", (low, high))
    if column["kind"] != "numeric":
        _expect(
            transform == "standard" and all(a is None for a in arrays),
            f"{where} marginal",
            "none (not numeric)",
            transform,
        )
        return
    _expect(transform in _TRANSFORMS, f"{where} transform", sorted(_TRANSFORMS), transform)
    knots, cdf, atoms, atom_low, atom_high = arrays
    if atoms is None:  # no atoms: no knots either (an empty column)
        _expect(all(a is None for a in arrays), f"{where} marginal", "None", arrays)
        return
    _expect(
        (knots is None) == (cdf is None) == (transform == "standard"),
        f"{where} knots",
        "present for the quantile and mixture transforms only",
        knots,
    )
    names = ("knots", "cdf", "atoms", "atom_low", "atom_high")
    for name, values in zip(names, arrays):
        if values is None:
            continue
        _expect(
            _is_floats(values) and all(math.isfinite(v) for v in values),
            f"{where} {name}",
            "a list of finite floats",
            values,
        )
    _expect(
        knots is None
        or len(knots) >= 2
        and len(cdf) == len(knots)
        and all(a < b for a, b in zip(knots, knots[1:]))
        and all(a < b for a, b in zip(cdf, cdf[1:]))
        and 0 < cdf[0]
        and cdf[-1] < 1,
        f"{where} knots and cdf",
        "increasing lists of one length, the cdf inside (0, 1)",
        (knots, cdf),
    )
    _expect(
        len(atoms) == len(atom_low) == len(atom_high)
        and all(a <= b for a, b in zip(atom_low, atom_high))
        and all(b <= a for a, b in zip(atom_low[1:], atom_high)),
        f"{where} atoms",
        "disjoint cells in increasing order",
        (atoms, atom_low, atom_high),
    )


def _distinct_scalars(values):
    """Whether ``values`` is a list of distinct strings or finite numbers.

    Distinct by type as well as value: 1, 1.0 and True are three levels.
    """
    return (
        isinstance(values, list)
        and all(isinstance(v, _SCALARS) for v in values)
        and all(math.isfinite(v) for v in values if isinstance(v, float))
        and len({(type(v), v) for v in values}) == len(values)
    )


def _check_column(column, start):
    """Check one column of a table's state, which starts at ``start``; its width."""
    fields = set(column) if isinstance(column, dict) else None
    # files written before lack them
    optional = {"unseen": None, "novel": None, "rare": None, "rare_counts": None}
    optional.update(point=None, point_width=None)
    if fields is not None:
        optional.update({k: column[k] for k in optional if k in fields})
        column = {k: v for k, v in column.items() if k not in optional}
        fields = set(column)
    unseen, novel = optional["unseen"], optional["novel"]
    rare, rare_counts = optional["rare"], optional["rare_counts"]
    point, point_width = optional["point"], optional["point_width"]
    if fields not in (_COLUMN_FIELDS, _COLUMN_FIELDS | _MARGINAL_FIELDS):
        raise _corrupted(f"unexpected table column {_brief(column)}.")
    name, kind, dtype, levels = (column[k] for k in ("name", "kind", "dtype", "levels"))
    where = f"table column {_brief(name)}"
    _expect(
        isinstance(name, _SCALARS)
        or (isinstance(name, tuple) and all(isinstance(v, _SCALARS) for v in name)),
        "a column name",
        "a string, a number or a tuple of them",
        name,
    )
    known = isinstance(kind, str) and kind in _COLUMN_KINDS
    _expect(known, f"{where} kind", sorted(_COLUMN_KINDS), kind)
    first = column["start"]
    _expect(_is_int(first) and first == start, f"{where} start", start, first)
    for field in ("missing", "integer"):
        _expect(type(column[field]) is bool, f"{where} {field}", "a bool", column[field])
    for field in ("mean", "scale"):
        value = column[field]
        finite = _is_real(value) and math.isfinite(value)
        _expect(finite, f"{where} {field}", "a finite number", value)
    _expect(column["scale"] > 0, f"{where} scale", "positive", column["scale"])
    _check_marginal(column, where)
    _expect(
        (point is None and point_width is None)
        or (
            kind == "numeric"
            and not column["missing"]
            and _is_real(point)
            and column.get("low", point) <= point <= column.get("high", point)
            and _is_real(point_width)
            and 0 < point_width < math.inf
        ),
        f"{where} point",
        "None, or a value in its range with a positive width",
        (point, point_width),
    )
    categorical = kind == "categorical"
    _expect(
        (isinstance(dtype, str) and _DTYPE_PATTERN.fullmatch(dtype) is not None)
        or (
            categorical
            and isinstance(dtype, dict)
            and set(dtype) - {"categories", "categories_dtype"} == {"category"}
            and (
                "categories_dtype" not in dtype
                or (
                    isinstance(dtype["categories_dtype"], str)
                    and _DTYPE_PATTERN.fullmatch(dtype["categories_dtype"]) is not None
                )
            )
        ),
        f"{where} dtype",
        "a dtype name",
        dtype,
    )
    if isinstance(dtype, dict):
        _expect(type(dtype["category"]) is bool, f"{where} dtype", "ordered", dtype)
        declared = dtype.get("categories", levels)
        _expect(
            isinstance(declared, list)
            and isinstance(levels, list)
            and all(isinstance(v, _SCALARS) for v in declared)
            and len(set(declared)) == len(declared)
            and set(levels) | set(rare or []) <= set(declared),
            f"{where} categories",
            "distinct values that hold the levels",
            declared,
        )
    if not categorical:
        _expect(levels is None, f"{where} levels", "None", levels)
        _expect(unseen is None, f"{where} unseen levels", "None", unseen)
        _expect(novel is None, f"{where} probability of a new level", "None", novel)
        _expect(rare is None, f"{where} rare levels", "None", rare)
        _expect(rare_counts is None, f"{where} rare level counts", "None", rare_counts)
        return 1 + (column["missing"] or point is not None)
    _expect(
        _distinct_scalars(levels),
        f"{where} levels",
        "a list of distinct strings or numbers",
        levels,
    )
    _expect(
        unseen is None
        or (
            isinstance(unseen, list)
            and all(_is_int(k, 0) and k < len(levels) for k in unseen)
            and len(set(unseen)) == len(unseen)
        ),
        f"{where} unseen levels",
        "distinct indices of its levels",
        unseen,
    )
    _expect(
        novel is None or (_is_real(novel) and 0 < novel <= 0.5),
        f"{where} probability of a new level",
        "None or a number in (0, 0.5]",
        novel,
    )
    _expect(
        rare is None
        or (
            _distinct_scalars(rare)
            and len(rare) >= 2
            and not {(type(v), v) for v in rare} & {(type(v), v) for v in levels}
        ),
        f"{where} rare levels",
        "None or a list of two or more distinct strings or numbers, none a level",
        rare,
    )
    _expect(
        (rare is None and rare_counts is None)
        or (
            isinstance(rare_counts, list)
            and len(rare_counts) == len(rare)
            and all(_is_int(k, 1) for k in rare_counts)
        ),
        f"{where} rare level counts",
        "a positive count per rare level",
        rare_counts,
    )
    return len(levels) + bool(rare) + column["missing"]


# ------------------------------------------------------------------- save
def _write(file, document, weights):
    """Write the archive of the two members to ``file``."""
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(_META, document)
        archive.writestr(_WEIGHTS, weights)


def _write_atomically(path, write):
    """Call ``write(file)`` on a new file beside ``path``, then rename it to ``path``.

    The new file is created with the permissions ``open(path, "wb")`` would
    give it (an existing file's mode is kept). On any exception, Ctrl-C
    included, it is removed and ``path`` is left as it was. A ``path`` that
    names a device, a pipe or a socket is written through, as ``open`` does:
    a file renamed over it would replace the node itself (``/dev/null``, for
    every process of the machine). An empty path, or one that ends in a
    separator, is refused as ``open`` refuses it.
    """
    name = os.fspath(path)
    text = os.fsdecode(name)
    if not text:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
    separator = text.endswith(os.sep) or (os.altsep and text.endswith(os.altsep))
    if separator or os.path.basename(text) in (".", ".."):  # a folder's name
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)
    try:
        mode = os.stat(name).st_mode
    except OSError:  # no such file yet (or no access: reported below)
        mode = None
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        with open(name, "wb") as file:
            write(file)
        return
    target = os.path.realpath(name)  # write through a symlink, as open does
    if os.path.isdir(target):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
    folder, name = os.path.split(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temporary = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            descriptor = os.open(temporary, flags, 0o666)
            break
        except FileExistsError:  # pragma: no cover - a name drawn twice
            continue
        except OSError as exc:  # no such folder, no permission: name the user's path
            raise type(exc)(exc.errno, exc.strerror, os.fspath(path)) from None
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temporary, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _versions(obj, descriptions, weights=False, strings=False):
    """The metadata every file starts with: format, class and the writers' versions.

    The format version is the oldest that holds the file: 4 for networks
    (``descriptions``) without an input unit, which skvae versions that read
    format 4 read as well; 5 with one, or for an imputer's file with
    ``weights`` of its own; 6 with a heavy-tailed background ("ppca_t") or a
    table whose string dtype names its storage (``strings``,
    :meth:`~._tabular.Table.names_string_storage`).
    """
    units = any("input_unit" in description for description in descriptions)
    tails = any(description.get("background") == "ppca_t" for description in descriptions)
    version = FORMAT_VERSION if tails or strings else 5 if units or weights else 4
    return {
        "format": FORMAT,
        "format_version": version,
        "class": type(obj).__name__,
        "skvae_version": _skvae_version(),
        "sklearn_version": sklearn.__version__,
        "torch_version": torch.__version__,
    }


def write_to(path, write):
    """``write(file)`` to a file name (atomically) or to a binary file object."""
    check_target(path)
    if isinstance(path, (str, os.PathLike)):
        _write_atomically(path, write)
    else:
        write(path)


def check_target(path, mode="wb"):
    """Refuse, with a TypeError, a ``path`` that is neither a file name nor a file.

    A file object must be binary and, for ``mode`` "rb", readable and seekable
    (a zip archive is read from its end); for "wb", writable and flushable
    (as zipfile writes it).
    """
    methods = ("read", "seek", "tell") if mode == "rb" else ("write", "flush")
    binary = not isinstance(path, io.TextIOBase) and all(
        callable(getattr(path, m, None)) for m in methods
    )
    if not (isinstance(path, (str, os.PathLike)) or binary):
        how = "reading" if mode == "rb" else "writing"
        raise TypeError(
            "path must be a file name (str or path-like) or a binary file object "
            f"opened for {how} ('{mode}'), got {type(path).__name__}."
        )


def _saved_attributes(obj, params, stored_apart, known):
    """``obj``'s attributes for the JSON: all but its parameters and ``stored_apart``.

    Raises a ValueError for one that is not ``known``, which load would refuse.
    """
    attributes = {
        name: value
        for name, value in vars(obj).items()
        if name not in params and name != stored_apart and name not in _TRANSIENT
    }
    unknown = set(attributes) - known
    if unknown:
        raise ValueError(
            f"Cannot save attribute {sorted(unknown)[0]!r}: skvae's file format stores "
            f"the parameters and the fitted attributes of the {type(obj).__name__} only "
            f"({sorted(known | {stored_apart})}), and load would refuse the file."
        )
    return attributes


def save_estimator(estimator, path):
    """Write a fitted estimator to ``path`` (see the module docstring for the format).

    ``path`` is a file name (replaced only once the new file is complete) or a
    writable binary file object.
    """
    params = estimator.get_params(deep=False)
    tensors = {
        f"{_MODULE}/{name}": tensor.detach().cpu().contiguous().clone()
        for name, tensor in estimator.module_.state_dict().items()
    }
    attributes = _saved_attributes(estimator, params, _MODULE, _KNOWN)
    # What load checks first, so that save does not write a file load refuses.
    estimator._validate_params()
    table = attributes.get("_table")
    width = estimator.n_features_in_ if table is None else table.width
    description = estimator._describe(width, estimator._hidden(), table)
    description = as_fitted(description, estimator.module_.description)
    if description != estimator.module_.description:
        raise ValueError(
            f"Cannot save this {type(estimator).__name__}: its parameters were changed "
            "after fit and no longer describe its network, so load would refuse the "
            "file. Restore them, or refit."
        )
    strings = estimator._table is not None and estimator._table.names_string_storage()
    meta = {
        **_versions(estimator, [estimator.module_.description], strings=strings),
        "params": _encode(params, tensors, "params"),
        "module": estimator.module_.description,
        "attributes": _encode(attributes, tensors, "attributes"),
    }
    document = _document(meta, estimator)
    _check_loadable(estimator, document, tensors)
    weights = save_tensors(tensors, metadata={"format": FORMAT})
    write_to(path, lambda file: _write(file, document, weights))


def _check_loadable(estimator, document, tensors):
    """Refuse, with a ValueError, to write what :func:`load_estimator` would refuse.

    ``document`` (``skvae.json``) is parsed back and checked with load's own
    checks, against ``tensors`` as the weights, so that every value the format
    cannot hold is caught before a file is touched (category levels that are
    tuples, say, which JSON stores as lists). The weights' bytes, which
    safetensors writes from ``tensors``, are neither copied nor read back.
    """
    try:
        meta = _checked_meta(_parse(document, _META))
        header = {
            key: (_DTYPE_NAMES.get(tensor.dtype), tuple(tensor.shape))
            for key, tensor in tensors.items()
        }
        estimator = _instantiate(type(estimator), meta["class"])
        _checked_contents(estimator, meta, header, tensors)
    except (_Invalid, *_ERRORS) as exc:
        reason = str(exc).removeprefix("has corrupted metadata: ").rstrip(".")
        raise ValueError(
            f"Cannot save this {type(estimator).__name__}: skvae's file format cannot "
            f"hold it, and load would refuse the file ({reason}). Save it with pickle "
            "or joblib instead."
        ) from None


def _document(meta, obj):
    """``meta`` as the bytes of ``skvae.json``; a ValueError where load would refuse it."""
    document = json.dumps(meta, indent=1, allow_nan=False).encode()
    if len(document) > _MAX_META_BYTES:
        raise ValueError(
            f"Cannot save this {type(obj).__name__}: its {_META} would take "
            f"{len(document)} bytes, more than the {_MAX_META_BYTES} that load reads "
            "(a table's marginals take about 200 kB per numeric column of 1,000 "
            "values). Save it with pickle or joblib instead."
        )
    return document


# ------------------------------------------------------------------- read
def _check_archive(archive, members=(_META, _WEIGHTS)):
    """Check that the archive holds ``members``, stored, within the file."""
    names = sorted(info.filename for info in archive.infolist())
    if names != sorted(members) and _META in names:  # the other kind of skvae file
        if _WEIGHTS in members and any(n.startswith("estimators/") for n in names):
            raise _Invalid("is a VAEImputer's file: load it with VAEImputer.load.")
        if _WEIGHTS not in members and names == sorted([_META, _WEIGHTS]):
            raise _Invalid(
                "is a single model's file (a VAETransformer's or an "
                "AutoencoderTransformer's): load it with that class's load."
            )
    if names != sorted(members):
        expected = " and ".join(map(repr, members)) if len(members) < 4 else members
        raise _Invalid(
            f"is not a file written by skvae's save (it holds {_brief(names)}, not "
            f"{_brief(expected)}); load only files written by the estimators' "
            "save method."
        )
    archive.fp.seek(0, os.SEEK_END)
    size = archive.fp.tell()
    for info in archive.infolist():
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            raise _Invalid(
                f"has a compressed or encrypted member {info.filename!r}; skvae's save "
                "stores its members uncompressed, so the file was not written by it."
            )
        end = info.header_offset + info.file_size
        if info.file_size != info.compress_size or end > size:
            raise _Invalid(
                f"has a corrupted {info.filename}: its size ({info.file_size} bytes) "
                f"does not fit in the file ({size} bytes)."
            )
    if archive.getinfo(_META).file_size > _MAX_META_BYTES:
        raise _Invalid(
            f"has a corrupted {_META}: it is larger than {_MAX_META_BYTES} bytes."
        )


def _reject_constant(name):
    """Refuse NaN and Infinity, which Python's json reads but JSON does not have."""
    raise ValueError(f"{name} is not JSON")


def _parse(document, what):
    """The JSON value of ``document``, at most ``_MAX_DEPTH`` levels deep."""
    try:
        value = json.loads(document, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise _Invalid(f"has a corrupted {what}: {exc}.") from exc
    stack = [(value, 1)]
    while stack:  # no recursion: the depth is what is being checked
        item, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise _Invalid(f"has a corrupted {what}: it nests over {_MAX_DEPTH} levels.")
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, (dict, list)):
            stack.extend((child, depth + 1) for child in children)
    return value


def _read(archive, name):
    """The bytes of the member ``name``."""
    try:
        return archive.read(name)
    except _ZIP_ERRORS as exc:
        raise _Invalid(f"has a corrupted {name}: {exc}.") from exc


def _read_meta(archive, keys=_META_KEYS):
    """``skvae.json``, checked to be a current skvae file's metadata with ``keys``."""
    return _checked_meta(_parse(_read(archive, _META), _META), keys)


def _checked_meta(meta, keys=_META_KEYS):
    """``meta`` (parsed), checked to be a current skvae file's metadata with ``keys``."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _Invalid("is not a file written by skvae's save.")
    version = meta.get("format_version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        writer = meta.get("skvae_version")
        *first, last = map(str, READABLE_VERSIONS)
        readable = f"{', '.join(first)} and {last}" if first else last
        raise _Invalid(
            f"uses skvae file format version {_brief(version)}, written by skvae "
            f"{writer if isinstance(writer, str) and len(writer) < 40 else 'unknown'}; "
            f"this skvae ({_skvae_version()}) reads versions {readable} only. Load "
            "it with a matching skvae version and refit, or save it again."
        )
    if set(meta) != keys:
        raise _corrupted(f"its keys are {sorted(meta)}, not {sorted(keys)}.")
    for key in ("class", "skvae_version", "sklearn_version", "torch_version"):
        _expect(isinstance(meta[key], str), key, "a string", meta[key])
    if "module" in keys:
        _expect(isinstance(meta["module"], dict), "module", "a dict", meta["module"])
    return meta


def _read_header(archive):
    """The safetensors header of the weights, ``{key: (dtype, shape)}``.

    Checked without reading the tensors: known dtypes, offsets that tile the
    data, and data exactly as large as the member.
    """
    size = archive.getinfo(_WEIGHTS).file_size
    try:
        with archive.open(_WEIGHTS) as member:
            length = int.from_bytes(member.read(8), "little") if size >= 8 else 0
            if not 2 <= length <= min(_MAX_HEADER_BYTES, size - 8):
                raise _Invalid(
                    f"has corrupted weights: a safetensors header of {length} bytes "
                    f"cannot be in {size} bytes (at most {_MAX_HEADER_BYTES} are read)."
                )
            text = member.read(length)
    except _ZIP_ERRORS as exc:
        raise _Invalid(f"has corrupted weights: {exc}.") from exc
    header = _parse(text, "safetensors header")
    info = header.pop("__metadata__", None) if isinstance(header, dict) else None
    if info != {"format": FORMAT}:
        raise _Invalid("has corrupted weights: the safetensors header is not skvae's.")
    entries = []
    for key, entry in header.items():
        ok = isinstance(entry, dict) and set(entry) == {"dtype", "shape", "data_offsets"}
        dtype, shape, offsets = (entry.get(k) for k in ("dtype", "shape", "data_offsets"))
        ok = (
            ok
            and isinstance(dtype, str)
            and dtype in _DTYPES
            and isinstance(shape, list)
            and len(shape) <= 8
            and all(_is_int(n, 0) for n in shape)
            and isinstance(offsets, list)
            and len(offsets) == 2
            and all(_is_int(n, 0) for n in offsets)
        )
        if not ok:
            raise _Invalid(f"has corrupted weights: tensor {key!r} is {_brief(entry)}.")
        header[key] = (dtype, tuple(shape))
        entries.append((*offsets, math.prod(shape) * _DTYPES[dtype].itemsize, key))
    end = 0
    for begin, stop, nbytes, key in sorted(entries):
        if begin != end or stop - begin != nbytes:
            raise _Invalid(f"has corrupted weights: tensor {key!r} has bad offsets.")
        end = stop
    if 8 + length + end != size:
        raise _Invalid(
            f"has corrupted weights: its tensors take {end} bytes, the member "
            f"{size - 8 - length}."
        )
    return header


def _read_tensors(archive):
    """The tensors of the weights (their header checked by :func:`_read_header`)."""
    try:
        return load_tensors(_read(archive, _WEIGHTS))
    except (SafetensorError, ValueError, TypeError, RuntimeError) as exc:
        raise _Invalid(f"has corrupted weights: {exc}.") from exc


# ------------------------------------------------------------------- load
def _concrete_classes(cls):
    """``cls`` and its subclasses that can be instantiated, by class name."""
    found, stack = {}, [cls]
    while stack:
        klass = stack.pop()
        stack.extend(klass.__subclasses__())
        if not getattr(klass, "__abstractmethods__", None):
            found.setdefault(klass.__name__, []).append(klass)
    return found


def _instantiate(cls, name):
    """An unfitted instance of the class called ``name``: ``cls`` or a subclass."""
    candidates = _concrete_classes(cls).get(name, [])
    if len(candidates) != 1:
        known = sorted(_concrete_classes(cls))
        raise _Invalid(
            f"holds a {_brief(name)}, which {cls.__name__}.load cannot load"
            + (" (several classes have that name)" if candidates else "")
            + f"; it loads {known}."
        )
    return candidates[0]()


def _set_params(estimator, params):
    """Set the stored parameters and check them against the estimator's constraints.

    Returns the network's hidden widths (None for an imputer, which has no
    network of its own).
    """
    _expect(isinstance(params, dict), "params", "a dict", params)
    try:
        estimator.set_params(**params)
        estimator._validate_params()
        return estimator._hidden() if hasattr(estimator, "_hidden") else None
    except ValueError as exc:
        raise _Invalid(f"has an invalid parameter: {exc}") from exc


def _check_names(attributes, cls, known=_KNOWN, required=_FITTED):
    """Check that the attributes are those of a fitted estimator (or imputer).

    Which of the network kind's extras it has is checked with the network.
    """
    _expect(isinstance(attributes, dict), "attributes", "a dict", attributes)
    unknown = sorted(set(attributes) - known)
    if unknown:
        names = ", ".join(f"attribute {name!r}" for name in unknown)
        raise _corrupted(f"unexpected {names}; a fitted {cls.__name__} has none such.")
    missing = sorted(required - set(attributes))
    if missing:
        raise _corrupted(f"attributes {missing} are missing.")


def _check_input(attributes):
    """Check what describes the fitted X; the width of the network's input."""
    n_features = attributes["n_features_in_"]
    _expect(_is_int(n_features, 1), "n_features_in_", "a positive int", n_features)
    table = attributes["_table"]
    _expect(table is None or type(table).__name__ == "Table", "_table", "a Table", table)
    if table is not None:
        n_columns = len(table.columns)
        _expect(n_features == n_columns, "n_features_in_", n_columns, n_features)
    if "feature_names_in_" in attributes:
        names = attributes["feature_names_in_"]
        _expect(
            isinstance(names, np.ndarray)
            and names.dtype == object
            and names.shape == (n_features,)
            and all(isinstance(v, str) for v in names),
            "feature_names_in_",
            f"an object array of {n_features} strings (n_features_in_)",
            names,
        )
        if table is not None:
            columns = [c.name for c in table.columns]
            _expect(names.tolist() == columns, "feature_names_in_", columns, names)
    return n_features if table is None else table.width


def _shell(description):
    """The network that ``description`` describes, on the meta device: no memory."""
    try:
        return shell(description)
    except (ValueError, TypeError, RuntimeError, KeyError, IndexError) as exc:
        raise _Invalid(f"describes a network that cannot be built: {exc}") from exc


def _check_weights(header, description):
    """Check the stored tensors against the network; its parameters' shapes."""
    prefix = f"{_MODULE}/"
    stored = {key: spec for key, spec in header.items() if key.startswith(prefix)}
    # Each hidden layer has a weight in the encoder and one in the decoder: a
    # description that cannot fit the tensors is refused before it is laid out.
    if 2 * len(description["hidden"]) > len(stored):
        raise _Invalid(
            "has weights that do not fit the network that its parameters describe: "
            f"{len(stored)} tensors for {len(description['hidden'])} hidden layers."
        )
    shell = _shell(description)
    expected = {
        prefix + key: (_DTYPE_NAMES.get(tensor.dtype), tuple(tensor.shape))
        for key, tensor in shell.state_dict().items()
    }
    if stored != expected:
        wrong = sorted(set(stored) ^ set(expected)) or sorted(
            key for key in stored if stored[key] != expected[key]
        )
        key = wrong[0]
        raise _Invalid(
            "has weights that do not fit the network that its parameters describe: "
            f"{key!r} is {stored.get(key, 'missing')}, the network's "
            f"{expected.get(key, 'absent')} (dtype, shape)."
        )
    return [tuple(parameter.shape) for parameter in shell.parameters()]


def _check_fitted(attributes, estimator, description, table, shapes):
    """Check the fitted attributes against each other and the network (the schema)."""
    kind = description["kind"]
    extras = set(attributes) - _FITTED - _OPTIONAL
    if not _EXTRAS[kind] <= extras <= _EXTRAS[kind] | _OPTIONAL_EXTRAS[kind]:
        raise _corrupted(
            f"a fitted {kind} has the attributes {sorted(_EXTRAS[kind])} (and may have "
            f"{sorted(_OPTIONAL_EXTRAS[kind])}), not {sorted(extras)}."
        )
    n_components = attributes["n_components_"]
    _expect(
        _is_int(n_components) and n_components == estimator.n_components,
        "n_components_",
        f"{estimator.n_components} (the n_components parameter)",
        n_components,
    )
    device = attributes["device_"]
    _expect(
        isinstance(device, torch.device)
        and device.type in ("cpu", "cuda", "mps")
        and (device.type != "cuda" or device.index is not None),
        "device_",
        "a cpu, cuda:N or mps torch.device",
        device,
    )
    n_iter, curve = attributes["n_iter_"], attributes["loss_curve_"]
    _expect(_is_int(n_iter, 0), "n_iter_", "a non-negative int", n_iter)
    _expect(_is_floats(curve), "loss_curve_", "a list of floats", curve)
    _expect(len(curve) == n_iter, "len(loss_curve_)", f"n_iter_ ({n_iter})", curve)
    best_loss = attributes["best_loss_"]
    _expect(type(best_loss) is float, "best_loss_", "a float", best_loss)
    scores = attributes["validation_scores_"]
    best = attributes["best_validation_score_"]
    if scores is None:
        _expect(best is None, "best_validation_score_", "None", best)
    else:
        _expect(_is_floats(scores), "validation_scores_", "a list of floats", scores)
        _expect(type(best) is float, "best_validation_score_", "a float", best)
    seed = attributes["_seed"]
    _expect(_is_int(seed, 0) and seed < 2**32, "_seed", "an int in [0, 2**32)", seed)
    architecture = (description, None if table is None else table.signature)
    _expect(
        _equal(attributes["_architecture"], architecture),
        "_architecture",
        "the network's description and the table's signature",
        attributes["_architecture"],
    )
    _check_output_config(attributes)
    _check_gmm(attributes["code_density_"], n_components, estimator)
    rows = attributes.get("_density_rows", 1)
    _expect(_is_int(rows, 1), "_density_rows", "a positive int", rows)
    _check_optimizer(attributes["_optimizer_state"], shapes)
    if kind == "vae":
        _check_vae(attributes, n_components, description["n_features"])


def _check_output_config(attributes):
    """Check ``set_output``'s configuration, where the attributes hold one."""
    config = attributes.get("_sklearn_output_config", {})
    _expect(
        isinstance(config, dict)
        and set(config) <= {"transform"}
        and all(isinstance(value, str) and value in _OUTPUTS for value in config.values()),
        "_sklearn_output_config",
        f"a dict of a transform output in {sorted(_OUTPUTS)}",
        config,
    )


def _check_gmm(gmm, n_components, estimator):
    """Check the code density: shapes (k components of n_components dimensions), values."""
    _expect(type(gmm) is GaussianMixture, "code_density_", "a GaussianMixture", gmm)
    k, d = gmm.n_components, n_components
    limit = getattr(estimator, "density_components", k)
    _expect(k <= limit, "code_density_.n_components", f"at most {limit}", k)
    for name, shape in [
        ("weights_", (k,)),
        ("means_", (k, d)),
        ("covariances_", (k, d, d)),
        ("precisions_", (k, d, d)),
        ("precisions_cholesky_", (k, d, d)),
    ]:
        value = getattr(gmm, name)
        _expect(
            isinstance(value, np.ndarray)
            and value.shape == shape
            and value.dtype == np.float64
            and np.isfinite(value).all(),
            f"code_density_.{name}",
            f"a finite float64 array of shape {shape}",
            value,
        )
    weights = gmm.weights_
    _expect(
        (weights >= 0).all() and abs(weights.sum() - 1) <= 1e-8,
        "code_density_.weights_",
        "non-negative and summing to 1",
        weights,
    )
    covariances = gmm.covariances_
    symmetric = np.allclose(covariances, covariances.transpose(0, 2, 1))
    try:
        positive = symmetric and np.linalg.cholesky(covariances) is not None
    except np.linalg.LinAlgError:
        positive = False
    _expect(positive, "code_density_.covariances_", "positive definite", covariances)
    n_features = gmm.n_features_in_
    ok = _is_int(n_features) and n_features == d
    _expect(ok, "code_density_.n_features_in_", d, n_features)
    _expect(_is_int(gmm.n_iter_, 0), "code_density_.n_iter_", "an int", gmm.n_iter_)
    _expect(type(gmm.converged_) is bool, "code_density_.converged_", "a bool", gmm)
    _expect(_is_real(gmm.lower_bound_), "code_density_.lower_bound_", "a float", gmm)
    bounds = getattr(gmm, "lower_bounds_", [])
    _expect(_is_floats(bounds), "code_density_.lower_bounds_", "a list of floats", bounds)


def _check_optimizer(state, shapes):
    """Check the optimizer state: one group over the parameters, moments of their shapes."""
    ok = isinstance(state, dict) and set(state) == {"state", "param_groups"}
    groups = state["param_groups"] if ok else None
    ok = ok and isinstance(groups, list) and len(groups) == 1
    ok = ok and isinstance(groups[0], dict) and isinstance(state["state"], dict)
    if not ok:
        raise _corrupted(f"unexpected optimizer state {_brief(state)}.")
    indices = list(range(len(shapes)))
    for key, value in groups[0].items():
        if key == "params":
            ok = isinstance(value, list) and all(_is_int(v) for v in value)
            _expect(ok and value == indices, "the optimizer's params", indices, value)
            continue
        items = value if isinstance(value, tuple) else (value,)
        _expect(
            all(v is None or isinstance(v, (bool, int, float)) for v in items),
            f"the optimizer's {key}",
            "a number, a bool or None",
            value,
        )
    _expect("params" in groups[0], "the optimizer's params", indices, groups[0])
    for index, moments in state["state"].items():
        _expect(
            _is_int(index) and index in indices and isinstance(moments, dict),
            "an optimizer state key",
            f"a parameter index below {len(shapes)}",
            index,
        )
        for name, value in moments.items():
            _expect(
                isinstance(value, torch.Tensor)
                and value.dtype.is_floating_point
                and tuple(value.shape) in ((), shapes[index]),
                f"the optimizer's {name} of parameter {index}",
                f"a float tensor of shape () or {shapes[index]}",
                value,
            )


def _check_vae(attributes, n_components, width):
    """Check a VAE's further attributes: ``width`` is the network's input width."""
    active = attributes["active_components_"]
    _expect(
        isinstance(active, np.ndarray)
        and active.dtype == bool
        and active.shape == (n_components,),
        "active_components_",
        f"a bool array of shape ({n_components},)",
        active,
    )
    warned = attributes.get("_collapse_warned", False)
    _expect(type(warned) is bool, "_collapse_warned", "a bool", warned)
    count = attributes["n_active_components_"]
    total = int(active.sum())
    _expect(_is_int(count) and count == total, "n_active_components_", total, count)
    variance = attributes["noise_variance_"]
    _expect(
        variance is None
        or (
            isinstance(variance, np.ndarray)
            and variance.dtype == np.float64
            and variance.ndim == 1
            and variance.shape[0] <= width
            and bool((variance >= 0).all())
        ),
        "noise_variance_",
        f"None or non-negative variances of at most {width} features",
        variance,
    )


def _checked(cls, archive):
    """The estimator, attributes, description and module state of a checked file."""
    _check_archive(archive)
    meta = _read_meta(archive)
    estimator = _instantiate(cls, meta["class"])
    return _checked_contents(estimator, meta, _read_header(archive), _read_tensors(archive))


def _checked_contents(estimator, meta, header, tensors):
    """:func:`_checked` from the parsed metadata, the weights' header and tensors."""
    cls = type(estimator)
    used = set()
    hidden = _set_params(estimator, _decode(meta["params"], tensors, used))
    attributes = _decode(meta["attributes"], tensors, used)
    _check_names(attributes, cls)
    width = _check_input(attributes)
    table = attributes["_table"]
    # The network is what the validated parameters describe; the stored
    # description must agree with it.
    description = estimator._describe(width, hidden, table)
    if isinstance(meta["module"], dict):
        description = as_fitted(description, meta["module"])
    if meta["module"] != description:
        raise _Invalid(
            "holds a network that does not fit the network that its parameters "
            "describe; the file is corrupted."
        )
    shapes = _check_weights(header, description)
    state = {
        key[len(_MODULE) + 1 :]: tensor
        for key, tensor in tensors.items()
        if key.startswith(f"{_MODULE}/")
    }
    _check_fitted(attributes, estimator, description, table, shapes)
    unused = sorted(set(tensors) - used - {f"{_MODULE}/{key}" for key in state})
    if unused:
        raise _corrupted(f"the weights hold arrays nothing refers to: {unused[:5]}.")
    return estimator, attributes, description, state


@contextlib.contextmanager
def _opened(path):
    """The zip archive at ``path`` (a file name or a readable binary file object)."""
    with contextlib.ExitStack() as stack:
        file = path
        if isinstance(path, (str, os.PathLike)):
            file = stack.enter_context(open(path, "rb"))  # noqa: SIM115
        try:
            archive = stack.enter_context(zipfile.ZipFile(file))
        except _ZIP_ERRORS as exc:
            raise _Invalid(
                f"is not a file written by skvae's save ({exc}); load only files "
                "written by the estimators' save method."
            ) from exc
        yield archive


def _read_checked(path, check, cls):
    """``check(cls, archive)`` on the archive at ``path``; any problem as a ValueError.

    A ``path`` that is neither a file name nor a binary file object is a
    TypeError, before anything is read.
    """
    check_target(path, "rb")
    try:
        with _opened(path) as archive:
            return check(cls, archive)
    except _Invalid as exc:
        raise ValueError(f"{_shown(path)} {exc}") from exc.__cause__
    except _ERRORS as exc:
        raise ValueError(
            f"{_shown(path)} is corrupted: {type(exc).__name__}: {exc}"
        ) from exc


def load_estimator(cls, path):
    """The estimator saved at ``path``; ``cls`` or one of its subclasses."""
    return _assembled(*_read_checked(path, _checked, cls))


def _assembled(estimator, attributes, description, state):
    """The fitted estimator from what :func:`_checked` returned."""
    module = build(description)  # in a forked RNG: the caller's RNG is left alone
    module.load_state_dict(state, strict=True)  # names, dtypes and shapes are checked
    device = attributes["device_"]
    if not available(device):
        warnings.warn(
            f"{type(estimator).__name__} was fitted on {device}, which is not available "
            "here; it has been loaded on the CPU.",
            UserWarning,
            stacklevel=3,
        )
        device = resolve_device("cpu")
    attributes["device_"] = device
    for name, value in attributes.items():
        setattr(estimator, name, value)
    estimator.module_ = module.to(device).eval()  # as fit leaves it
    return estimator


# --------------------------------------------------------------- imputer
def _member(i):
    """The archive member of an imputer's i-th model."""
    return f"estimators/{i}.skvae"


def save_imputer(imputer, path):
    """Write a fitted VAEImputer to ``path``: its metadata and each model's file.

    ``path`` is a file name (replaced only once the new file is complete) or a
    writable binary file object.
    """
    params = imputer.get_params(deep=False)
    known = _IMPUTER_FITTED | _IMPUTER_OPTIONAL
    attributes = _saved_attributes(imputer, params, _ESTIMATORS, known)
    imputer._validate_params()  # what load checks first
    if len(imputer.estimators_) != imputer.n_estimators:  # load counts the models
        raise ValueError(
            f"Cannot save this {type(imputer).__name__}: n_estimators was changed "
            f"after fit ({imputer.n_estimators}, for {len(imputer.estimators_)} "
            "fitted models), so load would refuse the file. Restore it, or refit."
        )
    members = []
    for model in imputer.estimators_:
        buffer = io.BytesIO()
        save_estimator(model, buffer)
        members.append(buffer.getvalue())
    tensors = {}
    encoded = {
        "params": _encode(params, tensors, "params"),
        "attributes": _encode(attributes, tensors, "attributes"),
    }
    networks = [model.module_.description for model in imputer.estimators_]
    meta = {**_versions(imputer, networks, weights=bool(tensors)), **encoded}
    document = _document(meta, imputer)
    # Arrays among its parameters (a RandomState's, hidden_layer_sizes as an
    # array) are stored as a model's are, in safetensors.
    weights = save_tensors(tensors, metadata={"format": FORMAT}) if tensors else None

    def write(file):
        with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(_META, document)
            if weights is not None:
                archive.writestr(_WEIGHTS, weights)
            for i, data in enumerate(members):
                archive.writestr(_member(i), data)

    write_to(path, write)


def load_imputer(cls, path):
    """The VAEImputer saved at ``path``; ``cls`` or one of its subclasses."""
    imputer, attributes, models = _read_checked(path, _checked_imputer, cls)
    for name, value in attributes.items():
        setattr(imputer, name, value)
    setattr(imputer, _ESTIMATORS, [_assembled(*checked) for checked in models])
    return imputer


def _checked_imputer(cls, archive):
    """The imputer, its attributes and its models' :func:`_checked` of a checked file."""
    from ._vae import VAETransformer

    listed = archive.namelist()
    # An imputer's own weights (arrays among its parameters) sit beside its
    # models; weights without models are a single model's file (refused below).
    models = any(name.startswith("estimators/") for name in listed)
    weights = [_WEIGHTS] if _WEIGHTS in listed and models else []
    n_members = len(listed) - 1 - len(weights)
    names = [_member(i) for i in range(max(n_members, 0))]
    _check_archive(archive, [_META, *weights, *names])
    meta = _read_meta(archive, _IMPUTER_META_KEYS)
    imputer = _instantiate(cls, meta["class"])
    if weights:  # checked as a model's: skvae's header, known dtypes, sizes
        _read_header(archive)
    tensors = _read_tensors(archive) if weights else {}
    used = set()
    _set_params(imputer, _decode(meta["params"], tensors, used))
    attributes = _decode(meta["attributes"], tensors, used)
    unused = sorted(set(tensors) - used)
    if unused:
        raise _Invalid(f"has weights that nothing refers to: {unused[:5]}.")
    _check_names(attributes, cls, _IMPUTER_FITTED | _IMPUTER_OPTIONAL, _IMPUTER_FITTED)
    n_estimators = imputer.n_estimators
    _expect(
        n_members == n_estimators, "models", f"{n_estimators} (n_estimators)", n_members
    )
    n_components = attributes["n_components_"]
    _expect(_is_int(n_components, 1), "n_components_", "a positive int", n_components)
    _check_output_config(attributes)
    models = []
    for name in names:
        try:
            with zipfile.ZipFile(io.BytesIO(_read(archive, name))) as member:
                models.append(_checked(VAETransformer, member))
        except _Invalid as exc:
            raise _Invalid(f"has a model {name} that {exc}") from exc.__cause__
        except (*_ZIP_ERRORS, *_ERRORS) as exc:
            raise _Invalid(
                f"has a corrupted model {name}: {type(exc).__name__}: {exc}"
            ) from exc
    # The models are the imputer's: of its input, latent size and encoding.
    inputs = ("n_features_in_", "feature_names_in_")
    model_input = {k: attributes[k] for k in inputs if k in attributes}
    signatures = set()
    for name, (model, fitted, _, _) in zip(names, models):
        given = {k: fitted[k] for k in inputs if k in fitted}
        _expect(
            set(given) == set(model_input)
            and all(np.array_equal(given[k], model_input[k]) for k in given),
            f"{name}'s input",
            "the imputer's n_features_in_ and feature_names_in_",
            given,
        )
        _expect(
            model.n_components == n_components,
            f"{name}'s n_components",
            n_components,
            model.n_components,
        )
        table = fitted["_table"]
        signatures.add(None if table is None else (table.signature, table.array))
    _expect(len(signatures) == 1, "models' tables", "one encoding", len(signatures))
    n_iter = max(fitted["n_iter_"] for _, fitted, _, _ in models)
    given = attributes["n_iter_"]
    _expect(_is_int(given) and given == n_iter, "n_iter_", n_iter, given)
    return imputer, attributes, models
