"""export_onnx: onnxruntime reproduces transform and inverse_transform in float32."""

import io
import logging
import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import NotFittedError

from skvae import AutoencoderTransformer, VAETransformer

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

SMALL = {
    "hidden_layer_sizes": (8,),
    "max_iter": 3,
    "density_components": 2,
    "random_state": 0,
}
CONFIGS = [
    (AutoencoderTransformer, {"loss": "mse"}),
    (AutoencoderTransformer, {"loss": "bce"}),
    (VAETransformer, {"likelihood": "gaussian"}),
    (VAETransformer, {"likelihood": "bernoulli"}),
]
IDS = ["ae-mse", "ae-bce", "vae-gaussian", "vae-bernoulli"]


@pytest.fixture(scope="module")
def X():
    return np.random.RandomState(0).uniform(size=(50, 6)).astype(np.float32)


def run(path, array):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    return name, session.run(None, {name: array})[0]


def fitted(Estimator, params, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence, posterior collapse
        return Estimator(n_components=3, **SMALL, **params).fit(X)


@pytest.mark.parametrize(("Estimator", "params"), CONFIGS, ids=IDS)
def test_onnx_matches_transform_and_inverse_transform(Estimator, params, X, tmp_path):
    est = fitted(Estimator, params, X)
    Z = est.transform(X)
    X_back = est.inverse_transform(Z)

    encoder = est.export_onnx(tmp_path / "encoder.onnx")
    decoder = est.export_onnx(tmp_path / "decoder.onnx", part="decoder")

    for rows in (slice(None), slice(0, 1), slice(0, 7)):  # the batch size is dynamic
        name, Z_onnx = run(encoder, X[rows])
        assert name == "X"
        assert Z_onnx.dtype == np.float32
        assert_allclose(Z_onnx, Z[rows], rtol=1e-5, atol=1e-6)
        name, X_onnx = run(decoder, Z[rows])
        assert name == "Z"
        assert X_onnx.shape == X[rows].shape
        assert_allclose(X_onnx, X_back[rows], rtol=1e-5, atol=1e-6)
    if params.get("loss") == "bce" or params.get("likelihood") == "bernoulli":
        # The decoder mean includes the sigmoid: probabilities, not logits.
        assert X_back.min() >= 0 and X_back.max() <= 1


def test_export_leaves_the_estimator_alone(X, tmp_path):
    est = fitted(VAETransformer, {}, X)
    Z = est.transform(X)
    module = est.module_
    est.export_onnx(tmp_path / "encoder.onnx")
    assert est.module_ is module
    assert all(p.dtype == torch.float32 for p in module.parameters())
    assert next(module.parameters()).device == est.device_
    assert_array_equal(est.transform(X), Z)


def test_failed_export_keeps_the_previous_file(X, tmp_path, monkeypatch):
    # the exporter wrote straight to the path: a failure half-way (a full disk)
    # left a truncated file where a good one had been
    est = fitted(VAETransformer, {}, X)
    path = tmp_path / "encoder.onnx"
    est.export_onnx(path)
    good = path.read_bytes()
    export = torch.onnx.export

    def fail_half_way(model, args, f, *, dynamo, **kwargs):
        export(model, args, f, dynamo=dynamo, **kwargs)
        with open(f, "r+b") as file:
            file.truncate(100)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch.onnx, "export", fail_half_way)
    with pytest.raises(OSError, match="No space left"):
        est.export_onnx(path, part="decoder")
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["encoder.onnx"]  # no leftovers
    with pytest.raises(TypeError, match="path must be a file name"):
        est.export_onnx(None)
    buffer = io.BytesIO()  # a binary file object is written as save writes one
    assert est.export_onnx(buffer) is buffer
    session = ort.InferenceSession(buffer.getvalue())
    Z = session.run(None, {"X": X[:5].astype(np.float32)})[0]
    assert_allclose(Z, est.transform(X[:5]), rtol=1e-4, atol=1e-5)


def test_bad_part_and_unfitted_raise(X, tmp_path):
    with pytest.raises(NotFittedError):
        AutoencoderTransformer().export_onnx(tmp_path / "m.onnx")
    est = fitted(AutoencoderTransformer, {}, X)
    with pytest.raises(ValueError, match="part must be one of"):
        est.export_onnx(tmp_path / "m.onnx", part="both")
    assert not (tmp_path / "m.onnx").exists()


def torch_handlers():
    """The stream handlers of torch's loggers (bound to the stderr of its import)."""
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    # torch.__trace's handler writes structured traces to files (TORCH_TRACE), never
    # to a terminal: it would write here only because its stream is replaced. The
    # object may hang on other torch loggers too (under torch 2.11 its records
    # reached this buffer), so it is left out wherever it is found.
    traces = set(logging.getLogger("torch.__trace").handlers)
    return {
        handler
        for logger in loggers
        if logger.name.startswith("torch")
        for handler in logger.handlers
        if isinstance(handler, logging.StreamHandler) and handler not in traces
    }


def test_export_prints_logs_and_warns_nothing(X, tmp_path, capfd):
    est = fitted(VAETransformer, {}, X)
    level = logging.getLogger("torch").level
    capfd.readouterr()
    # torch's handlers hold the stderr of its import, which capfd does not see.
    logs = io.StringIO()
    handlers = {handler: handler.setStream(logs) for handler in torch_handlers()}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.export_onnx(tmp_path / "encoder.onnx")
            est.export_onnx(tmp_path / "decoder.onnx", part="decoder")
    finally:
        for handler, stream in handlers.items():
            handler.setStream(stream)
    out, err = capfd.readouterr()
    assert (out, err, logs.getvalue()) == ("", "", "")
    assert [str(w.message) for w in caught] == []
    assert logging.getLogger("torch").level == level  # restored


def test_mixed_type_table_is_refused_with_what_to_do(tmp_path, capfd):
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    table = pd.DataFrame(
        {
            "size": rng.normal(size=40),
            "colour": pd.Categorical(rng.choice(["red", "green", "blue"], 40)),
            "new": rng.uniform(size=40) > 0.5,
        }
    )
    for Estimator in (AutoencoderTransformer, VAETransformer):
        est = fitted(Estimator, {}, table)
        capfd.readouterr()
        for part in ("encoder", "decoder"):
            path = tmp_path / f"{part}.onnx"
            with pytest.raises(ValueError, match="model of a table") as info:
                est.export_onnx(path, part=part)
            assert "ColumnTransformer" in str(info.value)
            assert not path.exists()
        assert capfd.readouterr() == ("", "")

    # An all-numeric DataFrame is a table too (each column mapped to normal
    # scores); its numbers as an array are not: they export.
    numbers = table[["size"]].assign(other=rng.uniform(size=40)).to_numpy(np.float32)
    est = fitted(AutoencoderTransformer, {}, numbers)
    _, Z = run(est.export_onnx(tmp_path / "numbers.onnx"), numbers)
    assert_allclose(Z, est.transform(numbers), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("likelihood", ["poisson", "negative_binomial"])
def test_count_model_exports_its_input_scaling_and_expected_counts(likelihood, tmp_path):
    # The encoder of a count model reads log1p(x * mean_total / row total), and
    # the decoder gives expected counts at the mean training total: both must be
    # inside the graphs, not only in the estimator's Python code.
    rng = np.random.RandomState(0)
    counts = rng.poisson(rng.gamma(2.0, 2.0, size=(60, 7))).astype(np.float32)
    counts[::3] *= 3  # rows of different totals
    est = fitted(VAETransformer, {"likelihood": likelihood}, counts)
    Z = est.transform(counts)
    _, Z_onnx = run(est.export_onnx(tmp_path / "encoder.onnx"), counts)
    assert_allclose(Z_onnx, Z, rtol=1e-5, atol=1e-6)
    _, X_onnx = run(est.export_onnx(tmp_path / "decoder.onnx", part="decoder"), Z)
    assert_allclose(X_onnx, est.inverse_transform(Z), rtol=1e-5, atol=1e-5)
    assert (X_onnx >= 0).all()
