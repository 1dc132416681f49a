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
``GaussianMixture`` can be instantiated.
"""

import json
import math
import os
import warnings
import zipfile
from importlib import metadata

import numpy as np
import sklearn
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from sklearn.mixture import GaussianMixture

from ._networks import build
from ._torch import available, resolve_device, seeded

FORMAT = "skvae"
#: Bump when a file written by this version cannot be read by older ones
#: (2: the network is rebuilt from its stored description; skvae 0.1 wrote 1).
FORMAT_VERSION = 2
_META = "skvae.json"
_WEIGHTS = "weights.safetensors"
_MODULE = "module_"
#: Tags of the one-key JSON objects that stand for non-JSON values.
_TAGS = {"tuple", "dict", "pairs", "float", "ndarray", "strings", "device", "random_state"}
_TAGS |= {"gaussian_mixture", "table"}


def _shown(path):
    """``path`` for an error message."""
    return repr(os.fspath(path)) if isinstance(path, (str, os.PathLike)) else repr(path)


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


def _decode(value, tensors):
    """Invert :func:`_encode`, rejecting anything it cannot have written."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict) or not value or next(iter(value)) not in _TAGS:
        raise ValueError(f"Unexpected value {str(value)[:80]!r} in the file.")
    tag, body = next(iter(value.items()))
    if tag == "tuple":
        return tuple(_decode(v, tensors) for v in body)
    if tag == "dict":
        return {str(k): _decode(v, tensors) for k, v in body.items()}
    if tag == "pairs":
        return {_decode(k, tensors): _decode(v, tensors) for k, v in body}
    if tag == "float":
        if body not in ("inf", "-inf", "nan"):
            raise ValueError(f"Unexpected float {body!r} in the file.")
        return float(body)
    if tag == "ndarray":
        if body not in tensors:
            raise ValueError(f"The weights have no array {body!r}.")
        tensor = tensors[body]
        return tensor if value.get("torch") else tensor.numpy()
    if tag == "strings":
        return np.asarray(body, dtype=object if value.get("dtype") == "O" else str)
    if tag == "device":
        try:
            return torch.device(body)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"Unexpected device {body!r} in the file.") from exc
    if tag == "random_state":
        name, keys, pos, has_gauss, cached = _decode(body, tensors)
        rng = np.random.RandomState()
        rng.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        return rng
    if tag == "table":
        from ._tabular import Table  # pandas: only models of DataFrames have tables

        return Table.from_state(_decode(body, tensors))
    gmm = GaussianMixture().set_params(**_decode(body["params"], tensors))
    for name, attribute in _decode(body["attributes"], tensors).items():
        if not name.endswith("_"):
            raise ValueError(f"Unexpected GaussianMixture attribute {name!r} in the file.")
        _set_attribute(gmm, name, attribute)
    return gmm


def _set_attribute(obj, name, value):
    """``setattr`` for instance data only: no dunders, methods or properties."""
    if not name.isidentifier() or name.startswith("__") or hasattr(type(obj), name):
        raise ValueError(f"Unexpected {type(obj).__name__} attribute {name!r} in the file.")
    setattr(obj, name, value)


# ------------------------------------------------------------------- save
def save_estimator(estimator, path):
    """Write a fitted estimator to ``path`` (see the module docstring for the format)."""
    params = estimator.get_params(deep=False)
    tensors = {
        f"{_MODULE}/{name}": tensor.detach().cpu().contiguous().clone()
        for name, tensor in estimator.module_.state_dict().items()
    }
    attributes = {
        name: value
        for name, value in vars(estimator).items()
        if name not in params and name != _MODULE
    }
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": type(estimator).__name__,
        "skvae_version": _skvae_version(),
        "sklearn_version": sklearn.__version__,
        "torch_version": torch.__version__,
        "params": _encode(params, tensors, "params"),
        "module": estimator.module_.description,
        "attributes": _encode(attributes, tensors, "attributes"),
    }
    document = json.dumps(meta, indent=1, allow_nan=False).encode()
    weights = save_tensors(tensors, metadata={"format": FORMAT})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(_META, document)
        archive.writestr(_WEIGHTS, weights)


# ------------------------------------------------------------------- load
def _read(path):
    """The metadata dict and the tensors of a saved estimator."""
    try:
        with zipfile.ZipFile(path) as archive:
            document, weights = archive.read(_META), archive.read(_WEIGHTS)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(
            f"{_shown(path)} is not a file written by skvae's save ({exc}); load "
            "only files written by the estimators' save method."
        ) from exc
    try:
        meta = json.loads(document)
    except ValueError as exc:
        raise ValueError(f"{_shown(path)} has a corrupted {_META}: {exc}.") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{_shown(path)} is not a file written by skvae's save.")
    version = meta.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise ValueError(
            f"{_shown(path)} uses skvae file format version {version!r}, written by skvae "
            f"{meta.get('skvae_version', 'unknown')}; this skvae ({_skvae_version()}) "
            f"reads version {FORMAT_VERSION} only. Load it with a matching skvae "
            "version and refit, or save it again."
        )
    try:
        tensors = load_tensors(weights)
    except SafetensorError as exc:
        raise ValueError(f"{_shown(path)} has corrupted weights: {exc}.") from exc
    return meta, tensors


def _concrete_classes(cls):
    """``cls`` and its subclasses that can be instantiated, by class name."""
    found, stack = {}, [cls]
    while stack:
        klass = stack.pop()
        stack.extend(klass.__subclasses__())
        if not getattr(klass, "__abstractmethods__", None):
            found.setdefault(klass.__name__, []).append(klass)
    return found


def load_estimator(cls, path):
    """The estimator saved at ``path``; ``cls`` or one of its subclasses."""
    meta, tensors = _read(path)
    name = meta.get("class")
    candidates = _concrete_classes(cls).get(name, [])
    if len(candidates) != 1:
        known = sorted(_concrete_classes(cls))
        raise ValueError(
            f"{_shown(path)} holds a {name!r}, which {cls.__name__}.load cannot load"
            + (" (several classes have that name)" if candidates else "")
            + f"; it loads {known}."
        )
    estimator = candidates[0]()
    try:
        estimator.set_params(**_decode(meta["params"], tensors))
        estimator._validate_params()
        attributes = _decode(meta["attributes"], tensors)
        n_features = attributes["n_features_in_"]
        device = attributes["device_"]
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{_shown(path)} has corrupted metadata: {exc!r}.") from exc
    if type(n_features) is not int or n_features < 1:
        raise ValueError(f"{_shown(path)} has an invalid n_features_in_ {n_features!r}.")

    state = {
        key[len(_MODULE) + 1 :]: tensor
        for key, tensor in tensors.items()
        if key.startswith(f"{_MODULE}/")
    }
    # The network is what the validated parameters describe; the stored
    # description must agree with it.
    table = attributes.get("_table")
    width = n_features if table is None else table.width
    description = estimator._describe(width, estimator._hidden(), table)
    if meta.get("module") != description:
        raise ValueError(
            f"The network stored in {_shown(path)} does not fit the network that its "
            "parameters describe; the file is corrupted."
        )
    with seeded(0, torch.device("cpu")):  # leave the caller's RNG alone
        module = build(description)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(
            f"The weights in {_shown(path)} do not fit the network that its parameters "
            f"describe: {exc}"
        ) from exc

    if not isinstance(device, torch.device):
        raise ValueError(f"{_shown(path)} has an invalid device_ {device!r}.")
    if not available(device):
        warnings.warn(
            f"{name} was fitted on {device}, which is not available here; it has been "
            "loaded on the CPU.",
            UserWarning,
            stacklevel=3,
        )
        device = resolve_device("cpu")
    attributes["device_"] = device
    for attribute, value in attributes.items():
        _set_attribute(estimator, attribute, value)
    estimator.module_ = module.to(device).eval()  # as fit leaves it
    return estimator
