"""The training engine: fit-free tests of the loop, and its robustness in the estimators."""

import math

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from torch import nn

from skvae import AutoencoderTransformer, VAETransformer
from skvae._networks import Autoencoder, Terms
from skvae._training import NonFiniteLossError, kl_weight, make_optimizer, train

ESTIMATORS = [AutoencoderTransformer, VAETransformer]
FAST = dict(hidden_layer_sizes=(16,), max_iter=5, batch_size=64, random_state=0)


def _tiny(seed=0):
    torch.manual_seed(seed)
    return Autoencoder(4, 2, (8,), "tanh", 0.0, "mse", 0.0)


def _data(n=64, seed=0):
    return torch.from_numpy(
        np.random.RandomState(seed).normal(size=(n, 4)).astype(np.float32)
    )


class _Scripted(nn.Module):
    """A module whose loss follows a script: a value per call, or an exception."""

    def __init__(self, script):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.script = list(script)

    def loss(self, x):
        step = self.script.pop(0) if self.script else 1.0
        if isinstance(step, type) and issubclass(step, BaseException):
            raise step
        value = self.w * 0 + step
        return Terms(value.expand(x.shape[0]), torch.zeros(x.shape[0]))


@pytest.mark.parametrize(
    "epoch, warmup, beta, expected",
    [
        (0, 0, 2.0, 2.0),
        (9, 0, 2.0, 2.0),
        (0, 4, 1.0, 0.25),
        (2, 4, 1.0, 0.75),
        (3, 4, 1.0, 1.0),
        (50, 4, 0.5, 0.5),
    ],
)
def test_kl_weight(epoch, warmup, beta, expected):
    assert kl_weight(epoch, warmup, beta) == pytest.approx(expected)


def test_one_epoch_moves_the_weights_and_lowers_the_loss():
    module, X = _tiny(), _data()
    before = [p.detach().clone() for p in module.parameters()]
    optimizer = make_optimizer(module, "adam", 1e-2, 0.0)
    history = train(module, X, optimizer, batch_size=16, max_epochs=20)
    assert history.n_epochs == 20
    assert all(not torch.equal(a, b) for a, b in zip(before, module.parameters()))
    assert history.losses[-1] < history.losses[0]
    assert history.best_loss == min(history.losses)
    assert not module.training  # left in eval mode


def test_epoch_loss_is_the_sample_weighted_mean():
    module = _Scripted([1.0, 3.0])  # two batches of 3 and 1 rows
    optimizer = make_optimizer(module, "sgd", 1e-3, 0.0)
    history = train(module, torch.zeros(4, 1), optimizer, batch_size=3, max_epochs=1)
    assert history.losses == [pytest.approx((3 * 1.0 + 1 * 3.0) / 4)]


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_optimizers_resume_from_state(name):
    module = _tiny()
    optimizer = make_optimizer(module, name, 1e-2, 0.1)
    train(module, _data(), optimizer, batch_size=16, max_epochs=1)
    resumed = make_optimizer(module, name, 5e-3, 0.0, optimizer.state_dict())
    other = "sgd" if name != "sgd" else "adam"
    assert not make_optimizer(module, other, 5e-3, 0.0, optimizer.state_dict()).state
    assert resumed.param_groups[0]["lr"] == 5e-3  # current parameters win
    assert resumed.param_groups[0]["weight_decay"] == 0.0
    assert len(resumed.state) == len(optimizer.state) > 0


def test_stops_when_the_loss_stops_improving():
    module = _Scripted([5.0] * 100)  # a flat loss never improves by tol
    optimizer = make_optimizer(module, "sgd", 1e-3, 0.0)
    history = train(
        module,
        torch.zeros(4, 1),
        optimizer,
        batch_size=4,
        max_epochs=100,
        n_iter_no_change=3,
    )
    assert history.converged and history.n_epochs == 5  # best at 1, then 4 without progress
    history = train(
        _Scripted([5.0] * 10),
        torch.zeros(4, 1),
        optimizer,
        batch_size=4,
        max_epochs=10,
        n_iter_no_change=3,
        stop_early=False,
    )
    assert not history.converged and history.n_epochs == 10


def test_early_stopping_restores_the_best_weights():
    torch.manual_seed(0)
    module, X, X_val = (
        _tiny(),
        _data(64, 0),
        _data(32, 1) * 5,
    )  # validation is off-distribution
    optimizer = make_optimizer(module, "adam", 5e-2, 0.0)
    history = train(
        module, X, optimizer, batch_size=16, max_epochs=60, X_val=X_val, n_iter_no_change=3
    )
    assert len(history.validation_scores) == history.n_epochs
    best = max(history.validation_scores)
    assert history.best_validation_score == best
    assert history.validation_scores[-1] < best  # it ended past the best epoch...
    with torch.no_grad():  # ...and the best epoch's weights are back
        restored = -module.loss(X_val).reconstruction.mean().item()
    assert restored == pytest.approx(best, rel=1e-5)


def test_non_finite_loss_raises_with_advice():
    module = _Scripted([1.0, math.nan])
    optimizer = make_optimizer(module, "sgd", 1e-3, 0.0)
    with pytest.raises(NonFiniteLossError, match="learning rate .* scaling"):
        train(module, torch.zeros(4, 1), optimizer, batch_size=4, max_epochs=5)
    assert issubclass(NonFiniteLossError, ValueError)


def test_keyboard_interrupt_keeps_the_epochs_so_far():
    module = _Scripted([1.0, 1.0, KeyboardInterrupt])
    optimizer = make_optimizer(module, "sgd", 1e-3, 0.0)
    with pytest.warns(UserWarning, match="interrupted by the user after 2 epoch"):
        history = train(module, torch.zeros(4, 1), optimizer, batch_size=4, max_epochs=10)
    assert history.interrupted and history.n_epochs == 2


def test_trains_from_cpu_data_on_the_module_device(device):
    """On CUDA, rows kept on the CPU are streamed to the GPU batch by batch."""
    module, X = _tiny().to(device), _data()
    optimizer = make_optimizer(module, "adam", 1e-2, 0.0)
    history = train(
        module, X, optimizer, batch_size=16, max_epochs=3, device=torch.device(device)
    )
    assert history.n_epochs == 3 and history.losses[-1] < history.losses[0]
    assert next(module.parameters()).device.type == device


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_fits_and_pickles_on_each_device(Estimator, manifold, device):
    import pickle

    est = Estimator(**{**FAST, "device": device}).fit(manifold)
    assert est.device_.type == device
    loaded = pickle.loads(pickle.dumps(est))
    assert next(loaded.module_.parameters()).device.type == device
    np.testing.assert_allclose(loaded.transform(manifold), est.transform(manifold))


# ------------------------------------------------------ through the estimators
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_divergence_raises_and_leaves_a_fresh_estimator_unfitted(Estimator, manifold):
    est = Estimator(**{**FAST, "optimizer": "sgd", "learning_rate": 1e12})
    with pytest.raises(ValueError, match="training loss became"):
        est.fit(manifold * 100)
    with pytest.raises(NotFittedError):
        est.transform(manifold)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_divergence_in_partial_fit_keeps_the_previous_model(Estimator, manifold):
    est = Estimator(**FAST).fit(manifold)
    Z, n_iter = est.transform(manifold), est.n_iter_
    est.set_params(optimizer="sgd", learning_rate=1e12)
    with pytest.raises(ValueError, match="training loss became"):
        est.partial_fit(manifold * 100)
    np.testing.assert_array_equal(est.transform(manifold), Z)
    assert est.n_iter_ == n_iter


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_keyboard_interrupt_during_fit(Estimator, manifold, monkeypatch):
    module_class = type(Estimator(**FAST).fit(manifold[:8]).module_)
    original, calls = module_class.loss, []

    def interrupting(self, x, *args):
        calls.append(1)
        if len(calls) == 15:  # 7 batches per epoch: interrupt in the third epoch
            raise KeyboardInterrupt
        return original(self, x, *args)

    monkeypatch.setattr(module_class, "loss", interrupting)
    est = Estimator(**{**FAST, "max_iter": 50})
    with pytest.warns(UserWarning, match="interrupted by the user"):
        est.fit(manifold)
    assert est.n_iter_ == 2
    assert np.isfinite(est.transform(manifold)).all()
    monkeypatch.setattr(module_class, "loss", original)
    est.partial_fit(manifold)  # usable afterwards
    assert est.n_iter_ == 3


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_convergence_warning_at_max_iter(Estimator, manifold, recwarn):
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(2\) reached"):
        Estimator(**{**FAST, "max_iter": 2}).fit(manifold)
    est = Estimator(**{**FAST, "max_iter": 100, "tol": 1e6, "n_iter_no_change": 1})
    est.fit(manifold)  # converged (first epoch, then 2 without progress): no warning
    assert est.n_iter_ == 3
    assert not [w for w in recwarn if issubclass(w.category, ConvergenceWarning)]


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_verbose_output(Estimator, manifold, capsys):
    Estimator(**{**FAST, "max_iter": 2}).fit(manifold)
    assert capsys.readouterr() == ("", "")
    Estimator(**{**FAST, "max_iter": 2, "verbose": 2, "early_stopping": True}).fit(manifold)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("Epoch 1, loss = ") and "validation loss = " in lines[0]
    Estimator(**{**FAST, "max_iter": 2, "verbose": 1}).fit(manifold)
    err = capsys.readouterr().err
    assert "2/2" in err and "loss=" in err  # the tqdm bar
