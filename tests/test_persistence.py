"""save/load: exact round trips, no pickle, clear errors on bad files."""

import copy
import io
import json
import os
import pickle
import stat
import threading
import time
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from numpy.testing import assert_array_equal
from sklearn.exceptions import NotFittedError

import skvae._persistence
from skvae import AutoencoderTransformer, VAETransformer
from skvae._base import _BaseAutoencoder  # loads the files of both estimators

SMALL = {
    "hidden_layer_sizes": (8,),
    "max_iter": 3,
    "density_components": 2,
    "random_state": 0,
}
CONFIGS = [
    (AutoencoderTransformer, {"loss": "mse"}),
    (AutoencoderTransformer, {"loss": "bce", "noise": 0.1}),
    (AutoencoderTransformer, {"optimizer": "sgd", "early_stopping": True}),
    (VAETransformer, {"likelihood": "gaussian"}),
    (VAETransformer, {"likelihood": "bernoulli", "sample_from": "posterior"}),
    (
        VAETransformer,
        {"likelihood": "student_t", "prior": "mixture", "early_stopping": True},
    ),
]
IDS = ["ae-mse", "ae-bce", "ae-sgd-early", "vae-gaussian", "vae-bernoulli", "vae-t-mixture"]


@pytest.fixture(scope="module")
def X():
    return np.random.RandomState(0).uniform(size=(80, 6))


def fitted(Estimator, params, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence, posterior collapse
        return Estimator(n_components=2, **SMALL, **params).fit(X)


@pytest.mark.parametrize(("Estimator", "params"), CONFIGS, ids=IDS)
def test_round_trip_is_exact(Estimator, params, X, tmp_path):
    est = fitted(Estimator, params, X)
    path = est.save(tmp_path / "model.skvae")
    loaded = Estimator.load(path)

    assert type(loaded) is Estimator
    assert loaded.get_params() == est.get_params()
    assert_array_equal(loaded.transform(X), est.transform(X))
    assert_array_equal(
        loaded.transform(X.astype(np.float32)), est.transform(X.astype(np.float32))
    )
    assert_array_equal(loaded.score_samples(X), est.score_samples(X))
    assert_array_equal(loaded.sample(5, random_state=1), est.sample(5, random_state=1))
    Z = est.transform(X)
    assert_array_equal(loaded.inverse_transform(Z), est.inverse_transform(Z))
    assert loaded.loss_curve_ == est.loss_curve_
    assert loaded.n_iter_ == est.n_iter_
    assert loaded.device_ == est.device_
    for name in ("active_components_", "noise_variance_"):
        if getattr(est, name, None) is not None:
            assert_array_equal(getattr(loaded, name), getattr(est, name))


def test_base_class_loads_the_saved_class(X, tmp_path):
    est = fitted(VAETransformer, {}, X)
    loaded = _BaseAutoencoder.load(est.save(tmp_path / "m.skvae"))
    assert type(loaded) is VAETransformer


def test_dataframe_fit_keeps_feature_names(X, tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    est = fitted(AutoencoderTransformer, {}, df)
    loaded = AutoencoderTransformer.load(est.save(tmp_path / "m.skvae"))
    assert_array_equal(loaded.feature_names_in_, est.feature_names_in_)
    assert loaded.feature_names_in_.dtype == object
    assert_array_equal(loaded.get_feature_names_out(), est.get_feature_names_out())
    assert_array_equal(loaded.transform(df), est.transform(df))
    with pytest.warns(UserWarning, match="feature names"):
        loaded.transform(X)  # fitted with names, so a bare array warns as before


@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer])
def test_partial_fit_continues_after_load(Estimator, X, tmp_path):
    est = fitted(Estimator, {}, X)
    loaded = Estimator.load(est.save(tmp_path / "m.skvae"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.partial_fit(X)
        loaded.partial_fit(X)
    # Same optimizer moments, step count and seed: the same next epoch.
    assert loaded.n_iter_ == est.n_iter_ == SMALL["max_iter"] + 1
    assert loaded.loss_curve_ == est.loss_curve_
    assert_array_equal(loaded.transform(X), est.transform(X))
    # The same rows behind the code density: the same updated density.
    # The fit's 72 training rows (8 are held out for validation), then the batch.
    assert loaded._density_rows == est._density_rows == 72 + len(X)
    assert_array_equal(loaded.code_density_.means_, est.code_density_.means_)


@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer])
def test_a_file_from_before_the_density_rows_continues(Estimator, X, tmp_path):
    # Files saved before _density_rows existed lack it: partial_fit then counts
    # the saved code density as one batch.
    est = fitted(Estimator, {}, X)
    path = est.save(tmp_path / "m.skvae")
    rewrite(path, tmp_path / "old.skvae", lambda m: stored(m).pop("_density_rows"))
    loaded = Estimator.load(tmp_path / "old.skvae")
    assert not hasattr(loaded, "_density_rows")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded.partial_fit(X)
    assert loaded._density_rows == 2 * len(X)
    assert np.isfinite(loaded.sample(5, random_state=0)).all()


def _as_before_input_units(est):
    """``est`` as skvae 0.2 before input units fitted it: the same function, no unit.

    The encoder's input unit is folded into its first layers' weights.
    """
    from skvae._networks import build

    description = dict(est.module_.description)
    assert description.pop("input_unit") is True
    if description.get("background") == "ppca_t":  # and a Gaussian background
        description["background"] = "ppca"
    encoder = est.module_.encoder
    shift, unit = encoder.shift.double(), encoder.unit.double()
    state = {
        k: v
        for k, v in est.module_.state_dict().items()
        if k not in ("encoder.shift", "encoder.unit", "background.tail_dof")
    }
    for layer in ("encoder.linear", "encoder.mlp.0"):
        weight = state[f"{layer}.weight"].double()
        state[f"{layer}.weight"] = (weight / unit).float()
        state[f"{layer}.bias"] = (
            state[f"{layer}.bias"].double() - weight @ (shift / unit)
        ).float()
    module = build(description)
    module.load_state_dict(state)
    old = copy.deepcopy(est)
    old.module_ = module.eval()
    old._architecture = (description, None)
    return old


@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer])
def test_a_model_from_before_input_units_loads_continues_and_saves(Estimator, X, tmp_path):
    # Files of format 4 and pickles of version 2 hold networks without an input
    # unit: they load as they were, partial_fit and warm_start go on without
    # one, and save writes them again.
    est = fitted(Estimator, {}, X * 1e3)
    old = _as_before_input_units(est)
    np.testing.assert_allclose(
        old.transform(X * 1e3), est.transform(X * 1e3), rtol=1e-4, atol=1e-4
    )
    # written as the oldest format and pickle version that hold it, which
    # the skvae versions before input units read
    path = old.save(tmp_path / "old.skvae")
    with zipfile.ZipFile(path) as archive:
        assert json.loads(archive.read("skvae.json"))["format_version"] == 4
    state = old.__getstate__()
    assert state["_pickle_version"] == 2
    assert est.__getstate__()["_pickle_version"] == (
        4 if Estimator is VAETransformer else 3
    )
    unpickled = Estimator.__new__(Estimator)
    unpickled.__setstate__(state)
    for loaded in (Estimator.load(tmp_path / "old.skvae"), unpickled):
        assert "input_unit" not in loaded.module_.description
        assert_array_equal(loaded.transform(X * 1e3), old.transform(X * 1e3))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded.partial_fit(X * 1e3)
            loaded.set_params(warm_start=True).fit(X * 1e3)
        assert "input_unit" not in loaded.module_.description
        assert loaded.n_iter_ == 2 * SMALL["max_iter"] + 1
        Estimator.load(loaded.save(tmp_path / "again.skvae"))
    # a fresh fit of the loaded model has the unit, as has a new network that
    # warm_start builds after a change of its shape
    changed = Estimator.load(tmp_path / "old.skvae").set_params(
        warm_start=True, n_components=3
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert loaded.set_params(warm_start=False).fit(X).module_.description["input_unit"]
        assert changed.fit(X * 1e3).module_.description["input_unit"]


@pytest.mark.parametrize(("Estimator", "params"), CONFIGS, ids=IDS)
def test_the_file_and_pickle_version_are_the_oldest_that_hold_the_network(
    Estimator, params, X, tmp_path
):
    # format 5 and pickle version 3 only for a network with an input unit, 6
    # and 4 for a VAE's with its heavy-tailed background
    est = fitted(Estimator, params, X)
    units = "input_unit" in est.module_.description
    expected = params.get("likelihood") != "bernoulli" and params.get("loss") != "bce"
    assert units == expected
    tails = units and Estimator is VAETransformer
    assert tails == (est.module_.description.get("background") == "ppca_t")
    with zipfile.ZipFile(est.save(tmp_path / "m.skvae")) as archive:
        version = json.loads(archive.read("skvae.json"))["format_version"]
    assert version == (6 if tails else 5 if units else 4)
    assert est.__getstate__()["_pickle_version"] == (4 if tails else 3 if units else 2)


def test_unfitted_save_raises(tmp_path):
    with pytest.raises(NotFittedError):
        VAETransformer().save(tmp_path / "m.skvae")
    assert not (tmp_path / "m.skvae").exists()


def test_loading_does_not_unpickle(X, tmp_path, monkeypatch):
    est = fitted(VAETransformer, {"sample_from": "posterior"}, X)
    path = est.save(tmp_path / "m.skvae")

    def refuse(*args, **kwargs):
        raise AssertionError("load used pickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    loaded = VAETransformer.load(path)
    assert_array_equal(loaded.transform(X), est.transform(X))

    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["skvae.json", "weights.safetensors"]
        for name in archive.namelist():
            data = archive.read(name)
            # Pickle protocol 2+ streams start with PROTO (0x80); torch.save is a zip.
            assert not data.startswith(b"\x80")
            assert not data.startswith(b"PK")
        meta = json.loads(archive.read("skvae.json"))
    assert meta["class"] == "VAETransformer"
    assert meta["format_version"] == 6
    assert meta["module"] == est.module_.description
    assert meta["attributes"]["dict"]["n_features_in_"] == X.shape[1]


def rewrite(path, out, change):
    """Copy a saved file to ``out`` with its JSON metadata passed through ``change``."""
    with zipfile.ZipFile(path) as archive:
        meta = json.loads(archive.read("skvae.json"))
        weights = archive.read("weights.safetensors")
    change(meta)
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("skvae.json", json.dumps(meta))
        archive.writestr("weights.safetensors", weights)
    return out


@pytest.fixture(scope="module")
def saved(X, tmp_path_factory):
    est = fitted(AutoencoderTransformer, {}, X)
    return est.save(tmp_path_factory.mktemp("saved") / "m.skvae")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m: m.update(format_version=99), "format version 99"),
        (lambda m: m.pop("format_version"), "format version None"),
        (lambda m: m.update(format="other"), "not a file written by skvae"),
        (lambda m: m.update({"class": "os.system"}), "holds a 'os.system'"),
        (
            lambda m: m["params"]["dict"].update(hidden_layer_sizes=[9]),
            "does not fit the network",
        ),
        (lambda m: m["attributes"]["dict"].pop("n_features_in_"), "corrupted metadata"),
        (lambda m: m["params"]["dict"].update(loss="pickle"), "loss"),
        (lambda m: m["attributes"]["dict"].update(x={"__reduce__": 1}), "Unexpected value"),
        (lambda m: m["attributes"]["dict"].update(fit="x"), "attribute 'fit'"),
        (lambda m: m["attributes"]["dict"].update(__dict__={"dict": {}}), "'__dict__'"),
    ],
    ids=[
        "version",
        "no-version",
        "format",
        "class",
        "shapes",
        "missing",
        "param",
        "tag",
        "method",
        "dunder",
    ],
)
def test_bad_metadata_raises_value_error(saved, tmp_path, change, match):
    path = rewrite(saved, tmp_path / "bad.skvae", change)
    with pytest.raises(ValueError, match=match):
        AutoencoderTransformer.load(path)


def test_other_class_is_rejected(saved):
    with pytest.raises(ValueError, match="holds a 'AutoencoderTransformer'"):
        VAETransformer.load(saved)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"not a zip file", "not a file written by skvae"),
        (pickle.dumps({"a": 1}), "not a file written by skvae"),
    ],
)
def test_not_an_archive_raises_value_error(tmp_path, content, match):
    path = tmp_path / "bad.skvae"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        AutoencoderTransformer.load(path)


def test_corrupted_members_raise_value_error(saved, tmp_path):
    with zipfile.ZipFile(saved) as archive:
        meta, weights = archive.read("skvae.json"), archive.read("weights.safetensors")
    for name, members in [
        ("json", {"skvae.json": meta[:-20], "weights.safetensors": weights}),
        ("weights", {"skvae.json": meta, "weights.safetensors": weights[:50]}),
        ("missing", {"skvae.json": meta}),
    ]:
        path = tmp_path / f"{name}.skvae"
        with zipfile.ZipFile(path, "w") as archive:
            for member, data in members.items():
                archive.writestr(member, data)
        with pytest.raises(ValueError, match="corrupted|not a file written"):
            AutoencoderTransformer.load(path)


def test_missing_device_loads_on_cpu_with_warning(saved, tmp_path):
    def to_cuda(meta):
        meta["attributes"]["dict"]["device_"] = {"device": "cuda:7"}

    path = rewrite(saved, tmp_path / "cuda.skvae", to_cuda)
    if torch.cuda.device_count() > 7:  # pragma: no cover
        pytest.skip("this machine has a cuda:7")
    with pytest.warns(UserWarning, match="cuda:7, which is not available"):
        loaded = AutoencoderTransformer.load(path)
    assert loaded.device_ == torch.device("cpu")
    assert next(loaded.module_.parameters()).device.type == "cpu"


def test_load_leaves_global_rng_alone(saved):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    AutoencoderTransformer.load(saved)
    assert torch.equal(torch.rand(3), expected)


def test_load_refuses_what_is_not_a_file_name_or_binary_file(saved):
    # these were reported as corrupted files ("None is corrupted: AttributeError")
    from skvae import VAEImputer

    with open(saved, encoding="latin-1") as text:  # text mode: not a zip to read
        for path in (None, 3, text):
            for cls in (AutoencoderTransformer, VAEImputer):
                with pytest.raises(TypeError, match="path must be a file name"):
                    cls.load(path)
    with open(saved, "rb") as binary:
        assert AutoencoderTransformer.load(binary).n_features_in_ > 0
    # and save: an AttributeError of None's write
    est = AutoencoderTransformer.load(saved)

    class WriteOnly:  # no flush, which zipfile calls: an AttributeError from it
        def write(self, data):
            return len(data)

    with open(saved, encoding="latin-1") as text:
        for path in (None, 3, text, WriteOnly()):
            with pytest.raises(TypeError, match="path must be a file name"):
                est.save(path)


def test_random_state_instance_round_trips(X, tmp_path):
    rng = np.random.RandomState(3)
    est = fitted(AutoencoderTransformer, {}, X).set_params(random_state=rng)
    loaded = AutoencoderTransformer.load(est.save(tmp_path / "m.skvae"))
    assert isinstance(loaded.random_state, np.random.RandomState)
    assert_array_equal(loaded.random_state.rand(4), rng.rand(4))


# --------------------------------------------------------------- saving safely
def listing(folder):
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_failed_save_keeps_the_previous_file(X, tmp_path, monkeypatch, error):
    path = tmp_path / "m.skvae"
    fitted(AutoencoderTransformer, {}, X).save(path)
    before = path.read_bytes()
    other = fitted(VAETransformer, {}, X)
    writestr = zipfile.ZipFile.writestr

    def fail_on_the_weights(self, name, data, *args, **kwargs):
        if name == "weights.safetensors":
            raise error
        return writestr(self, name, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", fail_on_the_weights)
    with pytest.raises(type(error)):
        other.save(path)
    assert path.read_bytes() == before
    assert listing(tmp_path) == ["m.skvae"]  # no temporary file left behind
    monkeypatch.undo()
    other.save(path)
    assert type(VAETransformer.load(path)) is VAETransformer
    assert listing(tmp_path) == ["m.skvae"]


def test_save_to_a_file_object(X):
    est = fitted(VAETransformer, {}, X)
    buffer = io.BytesIO()
    assert est.save(buffer) is buffer
    buffer.seek(0)
    assert_array_equal(VAETransformer.load(buffer).transform(X), est.transform(X))


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_save_gives_files_the_usual_permissions(X, tmp_path):
    est = fitted(AutoencoderTransformer, {}, X)
    (tmp_path / "plain").write_bytes(b"")
    est.save(tmp_path / "new.skvae")
    mode = stat.S_IMODE(os.stat(tmp_path / "new.skvae").st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "plain").st_mode)
    os.chmod(tmp_path / "new.skvae", 0o640)
    est.save(tmp_path / "new.skvae")
    assert stat.S_IMODE(os.stat(tmp_path / "new.skvae").st_mode) == 0o640


def test_save_errors_name_the_path_given(X, tmp_path):
    # they named the temporary file beside it: '.../.x.skvae.92f22ef1.tmp'
    est = fitted(AutoencoderTransformer, {}, X)
    missing = tmp_path / "no folder" / "x.skvae"
    with pytest.raises(FileNotFoundError) as error:
        est.save(missing)
    assert error.value.filename == str(missing) and error.value.filename2 is None
    with pytest.raises(IsADirectoryError) as error:
        est.save(tmp_path)
    assert error.value.filename == str(tmp_path)
    assert os.listdir(tmp_path) == []  # no temporary file left behind


def test_save_refuses_the_paths_open_refuses(X, tmp_path):
    # "out/" was saved as a file named "out" (realpath drops the separator).
    est = fitted(AutoencoderTransformer, {}, X)
    with pytest.raises(IsADirectoryError):
        est.save(f"{tmp_path / 'out'}{os.sep}")
    with pytest.raises(IsADirectoryError):  # a file named "sub" was written
        est.save(os.path.join(tmp_path, "sub", "."))  # a str: pathlib drops the "."
    with pytest.raises(FileNotFoundError):
        est.save("")
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_save_writes_through_a_pipe_rather_than_replacing_it(X, tmp_path):
    # A new file was renamed over the path: a device node (as root, /dev/null
    # for the whole machine) or a named pipe became a regular file, and the
    # pipe's reader got nothing.
    est = fitted(AutoencoderTransformer, {}, X)
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()))
    reader.start()
    est.save(pipe)
    reader.join(timeout=60)
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)
    loaded = AutoencoderTransformer.load(io.BytesIO(received[0]))
    assert_array_equal(loaded.transform(X), est.transform(X))
    assert os.listdir(tmp_path) == ["pipe"]


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_save_writes_through_a_symlink(X, tmp_path):
    est = fitted(AutoencoderTransformer, {}, X)
    (tmp_path / "link.skvae").symlink_to(tmp_path / "target.skvae")
    est.save(tmp_path / "link.skvae")
    assert (tmp_path / "link.skvae").is_symlink()
    assert_array_equal(
        AutoencoderTransformer.load(tmp_path / "target.skvae").transform(X),
        est.transform(X),
    )


def test_attributes_outside_the_format_are_not_saved(X, tmp_path):
    est = fitted(AutoencoderTransformer, {}, X)
    est.note_ = "mine"
    with pytest.raises(ValueError, match="Cannot save attribute 'note_'"):
        est.save(tmp_path / "m.skvae")
    assert listing(tmp_path) == []


# ------------------------------------------------------------ more estimators
@pytest.fixture(scope="module")
def frame(X):
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(1)
    df = pd.DataFrame(
        {
            "size": X[:, 0],
            "colour": rng.choice(["red", "green", "blue"], len(X)),
            "flag": X[:, 1] > 0.4,
            "grade": pd.Categorical(rng.choice(["a", "b"], len(X)), ordered=True),
            "count": rng.randint(0, 5, len(X)),
        }
    )
    df.loc[[3, 7], "size"] = np.nan
    df.loc[5, "colour"] = None
    return df


@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer])
def test_mixed_frame_round_trip(Estimator, frame, tmp_path):
    est = fitted(Estimator, {}, frame).set_output(transform="pandas")
    loaded = Estimator.load(est.save(tmp_path / "m.skvae"))
    assert loaded.get_params() == est.get_params()
    assert_array_equal(loaded.feature_names_in_, est.feature_names_in_)
    assert_array_equal(loaded.transform(frame), est.transform(frame))
    assert list(loaded.transform(frame).columns) == list(est.transform(frame).columns)
    assert loaded.sample(5, random_state=0).equals(est.sample(5, random_state=0))


# -------------------------------------------------------------- corrupt files
def saved_file(Estimator, params, data, path):
    return fitted(Estimator, params, data).save(path)


@pytest.fixture(scope="module")
def saved_files(X, frame, tmp_path_factory):
    folder = tmp_path_factory.mktemp("files")
    return {
        "ae": saved_file(  # no validation rows: validation attributes are None
            AutoencoderTransformer, {"early_stopping": False}, X, folder / "ae.skvae"
        ),
        "vae": saved_file(
            VAETransformer, {"early_stopping": True}, X, folder / "vae.skvae"
        ),
        "vae-frame": saved_file(
            VAETransformer, {"prior": "mixture"}, frame, folder / "vae-frame.skvae"
        ),
    }


def members(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("skvae.json")), archive.read("weights.safetensors")


def write(path, meta, weights, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        archive.writestr(
            "skvae.json", meta if isinstance(meta, bytes) else json.dumps(meta)
        )
        archive.writestr("weights.safetensors", weights)
    return path


def split_weights(weights):
    n = int.from_bytes(weights[:8], "little")
    return json.loads(weights[8 : 8 + n]), weights[8 + n :]


def join_weights(header, data):
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


def assert_refused(path, match=None):
    """Loading ``path`` raises a ValueError, and nothing else."""
    with pytest.raises(ValueError, match=match):
        _BaseAutoencoder.load(path)


def nodes(value, where=()):
    """Every (path, value) in a JSON value, the root first."""
    yield where, value
    if isinstance(value, dict):
        for key, child in value.items():
            yield from nodes(child, (*where, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from nodes(child, (*where, index))


def replaced(meta, where, new):
    meta = json.loads(json.dumps(meta))
    if not where:
        return new
    parent = meta
    for key in where[:-1]:
        parent = parent[key]
    parent[where[-1]] = new
    return meta


def loads(path, cls=_BaseAutoencoder):
    """Whether ``cls.load`` accepts the file (False: it raised the ValueError)."""
    try:
        cls.load(path)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("name", ["ae", "vae", "vae-frame"])
def test_every_metadata_value_of_a_wrong_type_is_refused(saved_files, tmp_path, name):
    # Each value of a real file, replaced by one of another JSON type: a string
    # where there was anything else, a number where there was a string (-1 for
    # "auto", which stands for a positive int).
    meta, weights = members(saved_files[name])
    accepted = []
    for where, value in nodes(meta):
        wrong = "x" if not isinstance(value, str) else -1 if value == "auto" else 12345
        path = write(tmp_path / "bad.skvae", replaced(meta, where, wrong), weights)
        if loads(path):
            accepted.append(where)
    assert accepted == []


@pytest.mark.parametrize("name", ["ae", "vae", "vae-frame"])
def test_every_extra_key_is_refused(saved_files, tmp_path, name):
    meta, weights = members(saved_files[name])
    accepted = []
    for where, value in nodes(meta):
        if not isinstance(value, dict) or "lr" in value:
            continue  # an optimizer's settings: the current ones replace them anyway
        extra = dict(value, zzz_=1)
        path = write(tmp_path / "bad.skvae", replaced(meta, where, extra), weights)
        if loads(path):
            accepted.append(where)
    assert accepted == []


def test_round_trip_keeps_pooled_rare_levels(tmp_path):
    rng = np.random.RandomState(0)
    names = ["common"] * 10 + [f"n{i}" for i in range(110)]
    frame = pd.DataFrame({"name": names, "x": rng.normal(size=120)})
    est = fitted(VAETransformer, {}, frame)
    loaded = VAETransformer.load(est.save(tmp_path / "pooled.skvae"))
    (name, _) = loaded._table.columns
    assert name.levels == ["common"] and len(name.rare) == 110
    assert name.rare_counts == [1] * 110
    pd.testing.assert_frame_equal(
        loaded.sample(50, random_state=1), est.sample(50, random_state=1)
    )
    assert_array_equal(loaded.score_samples(frame), est.score_samples(frame))


def stored(meta):
    """The JSON of a file's attributes, by name."""
    return meta["attributes"]["dict"]


def attribute(name, value):
    """A change that sets one stored attribute's JSON to ``value``."""
    return lambda meta: stored(meta).__setitem__(name, value)


def gmm(meta):
    return stored(meta)["code_density_"]["gaussian_mixture"]


def in_gmm(name, value):
    """A change that sets the code density's attribute ``name`` to ``value``."""
    return lambda meta: gmm(meta)["attributes"]["dict"].__setitem__(name, value)


def optimizer(meta):
    return stored(meta)["_optimizer_state"]["dict"]


def table(meta):
    return stored(meta)["_table"]["table"]["dict"]


def column(i, **changes):
    """A change of the table's column ``i``."""
    return lambda meta: table(meta)["columns"][i]["dict"].update(changes)


INCONSISTENT = {
    # name: (file, change of its JSON, message)
    "param": ("ae", lambda m: m["params"]["dict"].update(n_components=-5), "n_components"),
    "unknown-param": ("ae", lambda m: m["params"]["dict"].update(spam=1), "spam"),
    "attribute-is-a-param": ("ae", attribute("n_components", -5), "'n_components'"),
    "attribute-is-a-method": ("ae", attribute("transform", 1), "'transform'"),
    "attribute-module": ("ae", attribute("module_", None), "'module_'"),
    "n_components_": ("ae", attribute("n_components_", 3), "n_components_ should be 2"),
    "n_iter_-float": ("ae", attribute("n_iter_", 3.0), "n_iter_"),
    "n_iter_-negative": ("ae", attribute("n_iter_", -1), "n_iter_"),
    "n_iter_-curve": ("ae", attribute("n_iter_", 2), "loss_curve_"),
    "best_loss_": ("ae", attribute("best_loss_", None), "best_loss_"),
    "n_features_in_": ("ae", attribute("n_features_in_", 5), "does not fit the network"),
    "n_features_in_-zero": ("ae", attribute("n_features_in_", 0), "n_features_in_"),
    "feature_names_in_-length": (
        "vae-frame",
        lambda m: stored(m)["feature_names_in_"]["strings"].pop(),
        "feature_names_in_",
    ),
    "feature_names_in_-renamed": (
        "vae-frame",
        lambda m: stored(m)["feature_names_in_"].update(strings=list("abcde")),
        "feature_names_in_",
    ),
    "device-no-index": ("ae", attribute("device_", {"device": "cuda"}), "device_"),
    "device-meta": ("ae", attribute("device_", {"device": "meta"}), "device_"),
    "device-garbage": ("ae", attribute("device_", {"device": "gpu:x"}), "device"),
    "seed": ("ae", attribute("_seed", -1), "_seed"),
    "validation": ("ae", attribute("best_validation_score_", 1.0), "best_validation"),
    "gmm-n_features_in_": ("ae", in_gmm("n_features_in_", 3), "n_features_in_"),
    "gmm-converged_": ("ae", in_gmm("converged_", 1), "converged_"),
    "gmm-method": ("ae", in_gmm("fit", 1), "code_density_"),
    "gmm-init": (
        "ae",
        lambda m: gmm(m)["params"]["dict"].update(weights_init=[0.5, 0.5]),
        "weights_init",
    ),
    "gmm-covariance_type": (
        "ae",
        lambda m: gmm(m)["params"]["dict"].update(covariance_type="diag"),
        "covariance_type",
    ),
    "architecture": (
        "ae",
        lambda m: stored(m)["_architecture"]["tuple"].pop(),
        "_architecture",
    ),
    "optimizer-params": (
        "ae",
        lambda m: optimizer(m)["param_groups"][0]["dict"]["params"].pop(),
        "optimizer",
    ),
    "optimizer-index": (
        "ae",
        lambda m: optimizer(m)["state"]["pairs"][0].__setitem__(0, 99),
        "optimizer",
    ),
    "optimizer-moment-is-numpy": (
        "ae",
        lambda m: optimizer(m)["state"]["pairs"][0][1]["dict"]["exp_avg"].pop("torch"),
        "exp_avg",
    ),
    "n_active_components_": ("vae", attribute("n_active_components_", 7), "n_active"),
    "collapse-warned": ("vae", attribute("_collapse_warned", 1), "_collapse_warned"),
    "density-rows": ("ae", attribute("_density_rows", 0), "_density_rows"),
    "vae-attribute-on-ae": ("ae", attribute("n_active_components_", 1), "autoencoder"),
    "missing-vae-attribute": (
        "vae",
        lambda m: stored(m).pop("noise_variance_"),
        "a fitted vae",
    ),
    "output-config": (
        "ae",
        attribute("_sklearn_output_config", {"dict": {"transform": "arrow"}}),
        "_sklearn_output_config",
    ),
    "random_state": (
        "ae",
        lambda m: m["params"]["dict"].update(
            random_state={"random_state": ["MT19937", 1, 2, 3, 4.0]}
        ),
        "random state",
    ),
    "table-start": ("vae-frame", column(1, start=3), "start"),
    "table-kind": ("vae-frame", column(0, kind="date"), "kind"),
    "table-scale": ("vae-frame", column(0, scale=0.0), "scale"),
    "table-levels": ("vae-frame", column(1, levels=["red", "red", "blue"]), "levels"),
    "table-dtype": ("vae-frame", column(0, dtype="float64; rm -rf"), "dtype"),
    "table-names": ("vae-frame", column(1, name="size"), "names"),
    "table-width": ("vae-frame", lambda m: table(m).update(width=99), "width"),
    "table-rare-level": (
        "vae-frame",
        column(1, rare=["red", "violet"], rare_counts=[1, 1]),
        "rare levels",
    ),
    "table-rare-counts": (
        "vae-frame",
        column(1, rare=["violet", "indigo"], rare_counts=[1]),
        "rare level counts",
    ),
    "nan-constant": ("ae", attribute("best_loss_", float("nan")), "NaN"),
    "tag-extra-key": ("ae", attribute("_seed", {"tuple": [], "x": 1}), "Unexpected value"),
    "tensor-twice": (
        "vae",
        lambda m: stored(m)["noise_variance_"].update(stored(m)["active_components_"]),
        "no array",
    ),
    "top-level-key": ("ae", lambda m: m.update(extra=1), "keys"),
    "deep-nesting": ("ae", attribute("_seed", json.loads("[" * 200 + "]" * 200)), "nests"),
}


@pytest.mark.parametrize("case", sorted(INCONSISTENT))
def test_inconsistent_metadata_is_refused(saved_files, tmp_path, case):
    name, change, match = INCONSISTENT[case]
    meta, weights = members(saved_files[name])
    change(meta)
    document = json.dumps(meta).encode()  # NaN stays as the JSON constant NaN
    assert_refused(write(tmp_path / "bad.skvae", document, weights), match=match)


def with_tensors(path, out, change):
    """Copy a saved file to ``out`` with its tensors (a dict) passed through ``change``."""
    from safetensors.torch import load, save

    meta, weights = members(path)
    tensors = load(weights)
    change(tensors)
    return write(out, meta, save(tensors, metadata={"format": "skvae"}))


GMM = "attributes/code_density_/attributes/"
OPTIMIZER = "attributes/_optimizer_state/state/"


def setting(key, value):
    def apply(tensors):
        tensors[key] = torch.as_tensor(value(tensors[key]) if callable(value) else value)

    return apply


BAD_ARRAYS = {
    "weights-negative": ("ae", setting(GMM + "weights_", [1.5, -0.5]), "weights_"),
    "weights-sum": ("ae", setting(GMM + "weights_", [0.5, 0.4]), "weights_"),
    "weights-float32": ("ae", setting(GMM + "weights_", lambda w: w.float()), "weights_"),
    "covariances-negative": ("ae", setting(GMM + "covariances_", lambda c: -c), "definite"),
    "covariances-asymmetric": (
        "ae",
        setting(GMM + "covariances_", lambda c: c + torch.tensor([[0.0, 1.0], [0.0, 0.0]])),
        "definite",
    ),
    "means-shape": ("ae", setting(GMM + "means_", lambda m: m.reshape(-1)), "means_"),
    "means-nan": ("ae", setting(GMM + "means_", lambda m: m * np.nan), "means_"),
    "active-float": (
        "vae",
        setting("attributes/active_components_", lambda a: a.double()),
        "active_components_",
    ),
    "noise-negative": (
        "vae",
        setting("attributes/noise_variance_", lambda v: -v),
        "noise_variance_",
    ),
    "moment-shape": (
        "ae",
        setting(OPTIMIZER + "0/exp_avg", lambda m: m.T.contiguous()),
        "exp_avg",
    ),
    "module-transposed": (
        "ae",
        setting("module_/encoder.mlp.0.weight", lambda w: w.T.contiguous()),
        "do not fit the network",
    ),
    "module-float64": (
        "ae",
        setting("module_/encoder.mlp.0.weight", lambda w: w.double()),
        "do not fit the network",
    ),
    "module-missing": (
        "ae",
        lambda t: t.pop("module_/decoder.linear.bias"),
        "do not fit the network",
    ),
    "module-extra": (
        "ae",
        setting("module_/encoder.extra", [1.0]),
        "do not fit the network",
    ),
    "unreferenced": ("ae", setting("attributes/payload", [1.0]), "nothing refers to"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARRAYS))
def test_inconsistent_arrays_are_refused(saved_files, tmp_path, case):
    name, change, match = BAD_ARRAYS[case]
    assert_refused(
        with_tensors(saved_files[name], tmp_path / "bad.skvae", change), match=match
    )


def header_change(change):
    """A change of the weights' safetensors header (a dict), as a change of the bytes."""

    def apply(weights):
        header, data = split_weights(weights)
        change(header)
        return join_weights(header, data)

    return apply


def first(header, prefix="module_/"):
    return header[next(key for key in header if key.startswith(prefix))]


def swap_shapes(header):
    a, b = "module_/encoder.mlp.0.weight", "module_/decoder.mlp.2.weight"
    header[a]["shape"], header[b]["shape"] = header[b]["shape"], header[a]["shape"]


BAD_WEIGHTS = {
    "swapped-shapes": header_change(swap_shapes),
    "dtype": header_change(lambda h: first(h).update(dtype="F64")),
    "unknown-dtype": header_change(lambda h: first(h).update(dtype="F8_E4M3")),
    "negative-shape": header_change(lambda h: first(h).update(shape=[-8, -6])),
    "shape-of-strings": header_change(lambda h: first(h).update(shape=["8", "6"])),
    "huge-shape": header_change(lambda h: first(h).update(shape=[10**12, 10**12])),
    "overlapping": header_change(lambda h: first(h).update(data_offsets=[0, 4])),
    "no-metadata": header_change(lambda h: h.pop("__metadata__")),
    "extra-field": header_change(lambda h: first(h).update(extra=1)),
    "not-an-object": lambda w: join_weights([1, 2], split_weights(w)[1]),
    "header-length": lambda w: (2**40).to_bytes(8, "little") + w[8:],
    "header-garbage": lambda w: w[:8] + b"\xff" * 40 + w[48:],
    "deep-header": lambda w: (10**5).to_bytes(8, "little") + b"[" * 10**5,
    "short": lambda w: w[:5],
    "empty": lambda w: b"",
    "truncated-data": lambda w: w[:-10],
    "padded-data": lambda w: w + b"\0" * 10,
}


@pytest.mark.parametrize("case", sorted(BAD_WEIGHTS))
def test_corrupted_weights_are_refused(saved_files, tmp_path, case):
    meta, weights = members(saved_files["ae"])
    path = write(tmp_path / "bad.skvae", meta, BAD_WEIGHTS[case](weights))
    assert_refused(path, match="weights")


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 0.999])
def test_truncated_files_are_refused(saved_files, tmp_path, fraction):
    data = saved_files["vae"].read_bytes()
    path = tmp_path / "bad.skvae"
    path.write_bytes(data[: int(fraction * len(data))])
    assert_refused(path, match="not a file written by skvae|corrupted")


@pytest.mark.parametrize("name", ["ae", "vae-frame"])
def test_flipped_bytes_are_refused_or_harmless(saved_files, X, frame, tmp_path, name):
    # A flipped byte is refused with a ValueError, or it was in a part of the
    # archive that nothing reads (a date, a version field) and the model loads
    # the same.
    data = saved_files[name].read_bytes()
    reference = _BaseAutoencoder.load(saved_files[name])
    inputs = frame if name == "vae-frame" else X
    offsets = sorted(
        {*range(0, 64), *range(0, len(data), 97), *range(len(data) - 300, len(data))}
    )
    path = tmp_path / "bad.skvae"
    for offset in offsets:
        path.write_bytes(data[:offset] + bytes([data[offset] ^ 0x5A]) + data[offset + 1 :])
        try:
            loaded = _BaseAutoencoder.load(path)
        except ValueError:
            continue
        assert_array_equal(loaded.transform(inputs), reference.transform(inputs))


def test_not_a_file_written_by_save(tmp_path):
    for content in [b"PK\x05\x06" + b"\0" * 18, b"\0" * 1000, b"PK" * 5000]:
        path = tmp_path / "bad.skvae"
        path.write_bytes(content)
        assert_refused(path, match="not a file written by skvae")


def test_other_members_are_refused(saved_files, tmp_path):
    meta, weights = members(saved_files["ae"])
    path = write(tmp_path / "bad.skvae", meta, weights)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("payload.bin", b"x")
    assert_refused(path, match="not a file written by skvae")


def test_compressed_members_are_refused_unread(saved_files, tmp_path, monkeypatch):
    # A zip bomb: a few hundred kilobytes that inflate to 100 MB of JSON.
    meta, weights = members(saved_files["ae"])
    document = json.dumps(meta).encode()[:-1] + b" " * 10**8 + b"}"
    path = write(tmp_path / "bomb.skvae", document, weights, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 10**6

    def refuse(*args, **kwargs):
        raise AssertionError("a compressed member was read")

    monkeypatch.setattr(zipfile.ZipFile, "read", refuse)
    monkeypatch.setattr(zipfile.ZipFile, "open", refuse)
    assert_refused(path, match="compressed")


def lie_about_size(data, member, size):
    """The archive ``data`` with ``member``'s sizes in its headers set to ``size``."""
    data = bytearray(data)
    name = member.encode()
    for signature, offset in [(b"PK\x03\x04", 18), (b"PK\x01\x02", 20)]:
        start = data.find(signature)
        while start >= 0:
            name_at = start + (30 if signature == b"PK\x03\x04" else 46)
            if data[name_at : name_at + len(name)] == name:
                data[start + offset : start + offset + 8] = size.to_bytes(4, "little") * 2
            start = data.find(signature, start + 1)
    return bytes(data)


@pytest.mark.parametrize("member", ["skvae.json", "weights.safetensors"])
def test_member_sizes_beyond_the_file_are_refused(saved_files, tmp_path, member):
    path = tmp_path / "bad.skvae"
    path.write_bytes(lie_about_size(saved_files["ae"].read_bytes(), member, 2**32 - 2))
    assert_refused(path, match="does not fit in the file")


def test_oversized_metadata_is_refused(saved_files, tmp_path, monkeypatch):
    monkeypatch.setattr(skvae._persistence, "_MAX_META_BYTES", 2**20)
    meta, weights = members(saved_files["ae"])
    document = json.dumps(meta).encode()[:-1] + b" " * 2**20 + b"}"
    assert_refused(write(tmp_path / "big.skvae", document, weights), match="larger than")


def test_save_refuses_what_load_would_refuse_and_keeps_the_old_file(tmp_path, monkeypatch):
    # A model of 300 integer columns of 1,000 values wrote 74 MB of skvae.json
    # that load refused (then at 32 MB).
    est = VAETransformer(n_components=2, max_iter=1, random_state=0)
    frame = pd.DataFrame(
        np.random.RandomState(0).randint(0, 50, (100, 3)), columns=list("abc")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(frame)
    path = est.save(tmp_path / "m.skvae")
    before = path.read_bytes()
    size = len(json.dumps(members(path)[0], indent=1).encode())
    monkeypatch.setattr(skvae._persistence, "_MAX_META_BYTES", size - 1)
    with pytest.raises(ValueError, match="would take .* more than .* pickle"):
        est.save(path)
    assert path.read_bytes() == before
    monkeypatch.setattr(skvae._persistence, "_MAX_META_BYTES", size)
    VAETransformer.load(est.save(path))


def test_save_refuses_levels_the_format_cannot_hold_and_keeps_the_old_file(tmp_path):
    # Tuple levels were written (JSON stores them as lists) and load then called
    # the file corrupted.
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"x": rng.normal(size=40), "k": pd.Series([(1, 2), (3, 4)] * 20)})
    est = AutoencoderTransformer(n_components=2, max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(frame)
    path = tmp_path / "m.skvae"
    path.write_bytes(b"an older file")
    match = r"Cannot save .*cannot hold it.*levels should be .*\(1, 2\).* pickle"
    with pytest.raises(ValueError, match=match):
        est.save(path)
    assert path.read_bytes() == b"an older file"
    restored = pickle.loads(pickle.dumps(est))  # pickle holds them
    assert set(restored.sample(20, random_state=0)["k"]) <= {(1, 2), (3, 4)}


def test_samples_keep_their_dtypes_after_pickle_and_load(tmp_path):
    # int8 categories came back int64, and "string[python]" as pyarrow's string
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=40),
            "k": pd.Series(rng.choice([1, 2], 40), dtype="int8").astype("category"),
            "o": pd.Series(rng.choice(["a", "b"], 40), dtype=object).astype("category"),
            "s": pd.Series(rng.choice(["a", "b"], 40), dtype="string[python]"),
        }
    )
    est = AutoencoderTransformer(n_components=2, max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(frame)
    fresh = est.sample(5, random_state=0)
    assert fresh["k"].cat.categories.dtype == np.int8
    assert fresh["s"].dtype == frame["s"].dtype
    for restored in (
        pickle.loads(pickle.dumps(est)),
        AutoencoderTransformer.load(est.save(tmp_path / "m.skvae")),
    ):
        samples = restored.sample(5, random_state=0)
        assert samples.dtypes.to_dict() == fresh.dtypes.to_dict()
        assert samples["k"].cat.categories.dtype == np.int8
        pd.testing.assert_frame_equal(samples, fresh)


def test_a_string_storage_this_machine_lacks_loads_as_the_default(tmp_path, monkeypatch):
    # "string[pyarrow]" raised pyarrow's ImportError where pyarrow is missing
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=40),
            "s": pd.Series(rng.choice(["a", "b"], 40), dtype="string[python]"),
            "k": pd.Series(rng.choice(["a", "b"], 40), dtype="string").astype("category"),
        }
    )
    est = AutoencoderTransformer(n_components=2, max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(frame)
    path = est.save(tmp_path / "m.skvae")
    pickled = pickle.dumps(est)
    real = pd.api.types.pandas_dtype

    def no_python_storage(name):  # as if that storage's package were missing
        if isinstance(name, str) and name.startswith("string["):
            raise ImportError("pyarrow>=16.0.0 is required")
        return real(name)

    monkeypatch.setattr(pd.api.types, "pandas_dtype", no_python_storage)
    for restored in (AutoencoderTransformer.load(path), pickle.loads(pickled)):
        samples = restored.sample(5, random_state=0)
        assert samples["s"].dtype == real("string")
        assert set(samples["k"]) <= {"a", "b"}


def test_deeply_nested_json_is_refused(saved_files, tmp_path):
    meta, weights = members(saved_files["ae"])
    document = json.dumps(meta).encode()[:-1] + b', "x": ' + b"[" * 10**5 + b"]" * 10**5
    path = write(tmp_path / "deep.skvae", document + b"}", weights)
    assert_refused(path, match="corrupted")


def with_hidden_layers(meta, hidden):
    """Metadata that describes ``hidden`` layers consistently (the tensors do not)."""
    meta["params"]["dict"]["hidden_layer_sizes"] = {"tuple": hidden}
    meta["module"]["hidden"] = hidden
    architecture = meta["attributes"]["dict"]["_architecture"]["tuple"][0]["dict"]
    architecture["hidden"] = hidden


@pytest.mark.parametrize("width", [12_000, 10**6])
def test_huge_networks_are_refused_without_allocating(
    saved_files, tmp_path, monkeypatch, width
):
    # A small file whose parameters describe 2 x 144 MB or 2 x 4 TB of weights.
    meta, weights = members(saved_files["ae"])
    with_hidden_layers(meta, [width, width])
    path = write(tmp_path / "huge.skvae", meta, weights)
    empty = torch.empty

    def small_empty(*size, **kwargs):
        shape = size[0] if len(size) == 1 and not isinstance(size[0], int) else size
        tensor = empty(0, **{k: v for k, v in kwargs.items() if k == "device"})
        if tensor.device.type != "meta" and np.prod(shape, dtype=float) > 10**7:
            raise MemoryError(f"load allocated a tensor of shape {tuple(shape)}")
        return empty(*size, **kwargs)

    # torch lists the factory functions that torch.device("meta") redirects on
    # first use: list them before the patch, or the real torch.empty is not on it.
    with torch.device("meta"):
        torch.empty(0)
    monkeypatch.setattr(torch, "empty", small_empty)
    start = time.perf_counter()
    assert_refused(path, match="do not fit the network")
    assert time.perf_counter() - start < 10


def test_many_layers_are_refused_before_they_are_laid_out(saved_files, tmp_path):
    meta, weights = members(saved_files["ae"])
    with_hidden_layers(meta, [2] * 100_000)
    start = time.perf_counter()
    assert_refused(write(tmp_path / "deep.skvae", meta, weights), match="hidden layers")
    assert time.perf_counter() - start < 10


# -------------------------------------------------------------------- skops
def _skops_round_trip(est, X, tmp_path):
    sio = pytest.importorskip("skops.io")
    path = tmp_path / "m.skops"
    sio.dump(est, path)
    untrusted = sio.get_untrusted_types(file=path)
    assert all(name.split(".")[0] in {"skvae", "sklearn", "numpy"} for name in untrusted)
    loaded = sio.load(path, trusted=untrusted)
    assert type(loaded) is type(est)
    assert_array_equal(loaded.transform(X), est.transform(X))
    return loaded


@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer])
def test_skops_round_trip(Estimator, X, tmp_path):
    est = fitted(Estimator, {}, X)
    loaded = _skops_round_trip(est, X, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.partial_fit(X)
        loaded.partial_fit(X)
    assert_array_equal(loaded.transform(X), est.transform(X))


@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer])
def test_skops_round_trip_of_a_mixed_frame(Estimator, frame, tmp_path):
    _skops_round_trip(fitted(Estimator, {}, frame), frame, tmp_path)


@pytest.mark.parametrize(
    ("params", "match"),
    [({"hidden_layer_sizes": (4,)}, "no longer describe"), ({"max_iter": -1}, "max_iter")],
)
def test_save_refuses_what_load_would_refuse(X, tmp_path, params, match):
    est = fitted(AutoencoderTransformer, {}, X).set_params(**params)
    with pytest.raises(ValueError, match=match):
        est.save(tmp_path / "m.skvae")
    assert listing(tmp_path) == []


def test_arrays_where_other_values_were_are_refused(saved_files, tmp_path):
    # Every attribute of a VAE's file replaced by a reference to a new array.
    from safetensors.torch import load, save

    meta, weights = members(saved_files["vae"])
    tensors = load(weights)
    tensors["attributes/payload"] = torch.tensor([-1.0, 2.0, 3.0], dtype=torch.float64)
    weights = save(tensors, metadata={"format": "skvae"})
    accepted = []
    for name in meta["attributes"]["dict"]:
        changed = replaced(
            meta, ("attributes", "dict", name), {"ndarray": "attributes/payload"}
        )
        if loads(write(tmp_path / "bad.skvae", changed, weights), VAETransformer):
            accepted.append(name)
    assert accepted == []


@pytest.mark.parametrize("storage", ["python", "pyarrow"])
def test_the_nan_valued_string_dtype_keeps_its_storage(storage, tmp_path):
    # pandas 3's default string dtype was saved as "str", which a machine with
    # pyarrow reads back as pyarrow's: a model fitted without it changed dtype
    try:
        dtype = pd.StringDtype(storage, na_value=np.nan)
    except (TypeError, ImportError):
        pytest.skip("this pandas has no NaN-valued string dtype of that storage")
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(
        {
            "s": pd.Series(rng.choice(["x", "y"], 80)).astype(dtype),
            "c": pd.Categorical(rng.choice(["u", "v"], 80)).set_categories(
                pd.Index(["u", "v"], dtype=dtype)
            ),
            "x": rng.normal(size=80),
        }
    )
    est = fitted(VAETransformer, {}, frame)
    path = est.save(tmp_path / "m.skvae")
    # "str" where it reads back as this dtype here (what older versions wrote);
    # else a name older versions cannot read, in format 6 and pickle version 4
    named = pd.api.types.pandas_dtype("str") != dtype
    with zipfile.ZipFile(path) as archive:
        version = json.loads(archive.read("skvae.json"))["format_version"]
    assert version == (6 if named else 4)
    assert est.__getstate__()["_pickle_version"] == (4 if named else 2)
    for loaded in (VAETransformer.load(path), pickle.loads(pickle.dumps(est))):
        drawn = loaded.sample(5, random_state=0)
        assert drawn["s"].dtype == dtype
        assert drawn["c"].dtype.categories.dtype == dtype
