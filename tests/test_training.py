"""The training engine: fit-free tests of the loop, and its robustness in the estimators."""

import copy
import math
import threading
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from torch import nn

from skvae import AutoencoderTransformer, VAETransformer
from skvae._networks import BACKGROUND_WEIGHT, Autoencoder, Terms
from skvae._training import (
    ANNEAL_FLOOR,
    AUTO_FULL_ROWS,
    AUTO_STEPS,
    AUTO_VAE_TABLE_MIN_STEPS,
    DIVERGED_RISE,
    ONE_EPOCH_DIVERGED_RISE,
    Schedule,
    TrainConfig,
    _check_finite,
    _check_outputs,
    _Modes,
    _snapshot,
    auto_learning_rate,
    budget,
    improving,
    kl_weight,
    make_optimizer,
    objective,
    reconstruction_error,
    train,
)
from skvae.exceptions import NonFiniteLossError

ESTIMATORS = [AutoencoderTransformer, VAETransformer]
FAST = dict(hidden_layer_sizes=(16,), max_iter=5, batch_size=64, random_state=0)


def _tiny(seed=0):
    torch.manual_seed(seed)
    likelihood = {"name": "squared_error", "n_features": 4}
    return Autoencoder(4, 2, (8,), "tanh", 0.0, likelihood, 0.0)


def _data(n=64, seed=0):
    return torch.from_numpy(
        np.random.RandomState(seed).normal(size=(n, 4)).astype(np.float32)
    )


class _Scripted(nn.Module):
    """A module whose loss follows a script: a value per call, or an exception.

    Its terms are the scripted reconstruction, a constant ``kl`` and an optional
    constant ``background``; in eval mode (validation) the reconstruction comes
    from the ``validation`` script instead, when one is given.
    """

    def __init__(self, script, kl=0.0, background=None, validation=None):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.script = list(script)
        self.kl, self.background = kl, background
        self.validation = None if validation is None else list(validation)

    def loss(self, x):
        script = self.script
        if not self.training and self.validation is not None:
            script = self.validation
        step = script.pop(0) if script else 1.0
        if isinstance(step, type) and issubclass(step, BaseException):
            raise step
        n = x.shape[0]
        value = (self.w * 0 + step).expand(n)
        background = None if self.background is None else torch.full((n,), self.background)
        return Terms(value, torch.full((n,), float(self.kl)), background)


def _config(**options):
    return TrainConfig(**{"batch_size": 4, "max_epochs": 10, **options})


WEIGHTS = [
    (0, 0, 2.0, 2.0),
    (9, 0, 2.0, 2.0),
    (0, 4, 1.0, 0.25),
    (2, 4, 1.0, 0.75),
    (3, 4, 1.0, 1.0),
    (50, 4, 0.5, 0.5),
]


@pytest.mark.parametrize("epoch, warmup, beta, expected", WEIGHTS)
def test_kl_weight(epoch, warmup, beta, expected):
    assert kl_weight(epoch, warmup, beta) == pytest.approx(expected)


@pytest.mark.parametrize("epoch, warmup, beta, expected", WEIGHTS)
def test_schedule_weights(epoch, warmup, beta, expected):
    schedule = Schedule(beta=beta, warmup=warmup)
    assert schedule.weight(epoch) == pytest.approx(expected)
    assert schedule.validation_weight == beta  # validation weighs the KL fully, always


def test_default_schedule_has_no_kl_term():
    schedule = Schedule()
    assert [schedule.weight(epoch) for epoch in range(5)] == [0.0] * 5
    assert schedule.validation_weight == 0.0
    with pytest.raises(AttributeError):  # frozen: a fit cannot change it half-way
        schedule.beta = 1.0


def test_train_follows_the_schedule_from_the_global_epoch():
    module = _Scripted([0.0] * 10, kl=1.0, validation=[0.0] * 10)  # epoch loss = weight
    optimizer = make_optimizer(module, "sgd", 1e-3, 0.0)
    config = _config(max_epochs=3, start_epoch=2, stop_early=False)
    schedule = Schedule(beta=2.0, warmup=4)
    history = train(
        module, torch.zeros(4, 1), optimizer, config, schedule, X_val=torch.zeros(4, 1)
    )
    assert history.losses == pytest.approx([1.5, 2.0, 2.0])  # epochs 2, 3, 4 of warm-up 4
    assert history.validation_scores == pytest.approx([-2.0] * 3)  # always beta
    history = train(_Scripted([0.0] * 3, kl=1.0), torch.zeros(4, 1), optimizer, config)
    assert history.losses == [0.0] * 3  # no schedule: no KL term


def test_objective_against_hand_computation():
    reconstruction = torch.tensor([1.0, 30.0, 3000.0], dtype=torch.float64)
    kl = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    log_pb = np.array([-5.0, -6.0, -7.0])
    w = BACKGROUND_WEIGHT
    background = torch.from_numpy(math.log(w) + log_pb)
    value = reconstruction.numpy() + 0.5 * kl.numpy()
    np.testing.assert_allclose(objective(Terms(reconstruction, kl), 0.5).numpy(), value)
    got = objective(Terms(reconstruction, kl, background), 0.5).numpy()
    expected = -np.log((1 - w) * np.exp(-value) + w * np.exp(log_pb))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert (got <= -background.numpy()).all()  # never above the background's own cost
    assert got[-1] == pytest.approx(-math.log(w) + 7.0)  # an impossible row costs that
    # weight 0 leaves the KL out entirely, even an infinite one
    infinite = Terms(reconstruction, torch.full_like(kl, math.inf))
    np.testing.assert_array_equal(objective(infinite, 0.0).numpy(), reconstruction.numpy())


def test_train_minimises_the_objective_with_the_background():
    module = _Scripted([5.0] * 3, kl=2.0, background=math.log(BACKGROUND_WEIGHT) - 1.0)
    optimizer = make_optimizer(module, "sgd", 1e-3, 0.0)
    history = train(
        module, torch.zeros(4, 1), optimizer, _config(max_epochs=1), Schedule(beta=1.0)
    )
    w = BACKGROUND_WEIGHT
    expected = -math.log((1 - w) * math.exp(-7.0) + w * math.exp(-1.0))
    assert history.losses == [pytest.approx(expected, rel=1e-6)]


@pytest.mark.parametrize(
    "losses, window, tol, expected",
    [
        ([], 1, 0.0, True),  # too few to tell
        ([5.0] * 5, 3, 1e-2, True),  # fewer than two windows
        ([5.0] * 6, 3, 1e-2, False),  # flat
        ([5.0] * 6, 3, 0.0, False),  # flat is no improvement, even with tol 0
        ([10.0, 6.0, 5.0, 4.0, 3.0], 2, 0.1, True),  # means 5.5 then 3.5: 2 > 0.1 * 7
        ([10.0, 6.0, 5.0, 4.0, 3.0], 2, 0.5, False),  # ...but not 0.5 * 7
        ([100.0, 1.0, 1.0, 1.0, 1.0], 2, 1e-2, False),  # only the last windows count
        ([3.0, 1.0, 3.0, 1.0, 3.0, 1.0, 3.0], 2, 1e-2, False),  # noise, flat mean
        ([3.0, 1.0, 3.0, 1.0, 3.0, 1.0], 1, 1e-2, True),  # window 1: a step down
        ([-1.0, -5.0, -6.0, -6.5, -6.6], 2, 0.1, True),  # nats/row can be negative
        ([-1.0, -5.0, -6.0, -6.5, -6.6], 2, 0.2, False),
        ([5.0, 6.0, 7.0, 6.9], 2, 1e-2, False),  # above its start: no progress
    ],
)
def test_improving(losses, window, tol, expected):
    assert improving(losses, window, tol) is expected


def test_improving_counts_a_gain_within_the_noise_as_none():
    # A noisy loss whose last window is 0.03 lower, after a progress of 1: 3% of
    # the progress, but well within the noise of the windows' means (about 0.06).
    rng = np.random.RandomState(0)
    noise = 0.15 * rng.standard_normal(40)
    losses = [2.0] + list(1.0 + noise[:20] - noise[:20].mean())
    losses += list(0.97 + noise[20:] - noise[20:].mean())
    assert improving(losses, 20, 0.01)
    assert not improving(losses, 20, 0.01, noise=2.0)
    # the same gain without the noise is no longer hidden, nor is a larger one
    assert improving([2.0] + [1.0] * 20 + [0.97] * 20, 20, 0.01, noise=2.0)
    steeper = [2.0] + list(1.0 + noise[:20]) + list(0.8 + noise[20:])
    assert improving(steeper, 20, 0.01, noise=2.0)
    # the tolerance still applies
    assert not improving([2.0] + [1.0] * 20 + [0.97] * 20, 20, 0.05, noise=2.0)


def test_improving_is_relative_to_the_progress():
    losses = np.array([9.0, 5.0, 3.0, 2.0, 1.6, 1.4])
    for scale, offset in [(1, 0), (1e-3, 0), (1e4, -1e6)]:
        assert improving(list(losses * scale + offset), 2, 0.05)
        assert not improving(list(losses * scale + offset), 2, 0.15)


@pytest.mark.parametrize(
    "n_rows, batch_size, max_iter, expected",
    [
        # below about 330 rows: 6.25 steps per row of 32 rows, taken in
        # batches of 64 at twice the rate (half the steps)
        (20, "auto", "auto", (64, 125, 1e-3)),  # one batch either way: same rate
        (50, "auto", "auto", (64, 156, 1e-3 * 50 / 32)),  # a step sees 50 rows, not 32
        (300, "auto", "auto", (64, 188, 2e-3)),  # 10 steps of 32 an epoch: 5 of 64
        (500, "auto", "auto", (64, 391, 1e-3)),  # 8 steps of 64 an epoch
        (800, "auto", "auto", (64, 385, 1e-3)),  # 13 steps an epoch: 5,000 steps
        (900, "auto", "auto", (64, 333, 1e-3)),
        (9_000, "auto", "auto", (256, 139, 4e-3)),
        (45_000, "auto", "auto", (512, 57, 4e-3)),
        # from about 84,000 rows batches of 512 for the epochs of larger ones
        (90_000, "auto", "auto", (512, 57, 4e-3)),  # the epochs of 1024 rows
        (900_000, "auto", "auto", (512, 20, 4e-3)),  # of 2048: more steps for much data
        (10**9, "auto", "auto", (512, 5, 4e-3)),  # at least 5 epochs
        (90_000, 1024, "auto", (1024, 57, 4e-3)),  # a batch set by the user is kept
        (100_000, 64, 7, (64, 7, 1e-3)),  # integers are used as they are
        (300, 32, "auto", (32, 188, 1e-3)),  # a batch set by the user is not doubled
    ],
)
def test_budget(n_rows, batch_size, max_iter, expected):
    batch, epochs, rate = budget(n_rows, batch_size, max_iter)
    assert (batch, epochs) == expected[:2]
    assert rate == pytest.approx(expected[2])


def test_budget_caps_the_batch_on_a_cpu_only():
    # an accelerator's step costs about the same at any of these sizes
    assert budget(900_000, device="cpu")[:2] == budget(900_000)[:2] == (512, 20)
    assert budget(900_000, device=torch.device("cpu"))[:2] == (512, 20)
    assert budget(900_000, device="cuda")[:2] == (2048, 20)
    assert budget(900_000, device="mps")[:2] == (2048, 20)
    assert budget(9_000, device="cuda") == budget(9_000)  # below the cap alike


def test_budget_learning_rate_set_by_the_user_is_used_as_it_is():
    assert budget(300, learning_rate=0.05)[2] == 0.05
    assert budget(300, batch_size=32, learning_rate="auto")[2] == auto_learning_rate(32)


def test_budget_steps_grow_with_the_rows_up_to_auto_full_rows():
    def steps(n, batch_size="auto"):
        batch_size, epochs, _ = budget(n, batch_size)
        return epochs * math.ceil(n / batch_size)

    small = [steps(n) for n in (100, 200, 400, 600)]
    assert small == sorted(small)
    for n in (400, 600):  # about 6.25 steps per row, up to rounding
        assert steps(n) == pytest.approx(AUTO_STEPS * n / AUTO_FULL_ROWS, rel=0.05)
    for n in (100, 200, 300):  # batches of 32 raised to 64:
        # the epochs of batches of 32, which make about 6.25 steps per row...
        assert budget(n, 32)[1] == budget(n)[1]
        assert steps(n, 32) == pytest.approx(AUTO_STEPS * n / AUTO_FULL_ROWS, rel=0.05)
        assert steps(n) < 0.6 * steps(n, 32)  # ...in about half the steps
    for n in (AUTO_FULL_ROWS, 5_000, 50_000):  # the full budget from AUTO_FULL_ROWS on
        assert steps(n) == pytest.approx(AUTO_STEPS, rel=0.05)


@pytest.mark.parametrize(
    "n_rows, batch_size, max_iter, expected",
    [
        (100, "auto", "auto", (64, 500)),  # 2 steps an epoch: 500 epochs, not 156
        (20, "auto", "auto", (64, 1000)),  # one step an epoch: at most 1,000 epochs
        (100, 16, "auto", (16, 143)),  # in steps of the batch trained with (7 an epoch)
        (900, "auto", "auto", (64, 333)),  # 5,000 steps already: as without a floor
        (100, "auto", 7, (64, 7)),  # an integer is used as it is
    ],
)
def test_budget_min_steps(n_rows, batch_size, max_iter, expected):
    batch, epochs, rate = budget(n_rows, batch_size, max_iter, min_steps=1000)
    assert (batch, epochs) == expected
    assert rate == budget(n_rows, batch_size, max_iter)[2]


@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer])
@pytest.mark.parametrize("table", [False, True], ids=["array", "table"])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_auto_max_iter_of_a_small_fit_is_the_budget_of_its_rows(
    Estimator, table, early_stopping
):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(100, 3))
    if table:
        X = pd.DataFrame(X, columns=["a", "b", "c"]).assign(
            level=pd.Categorical(rng.choice(["u", "v"], size=100))
        )
    params = dict(hidden_layer_sizes=(4,), n_iter_no_change=10**6)
    est = Estimator(**params, early_stopping=early_stopping, random_state=0).fit(X)
    # nothing stops it early; 90 training rows with validation rows
    n = 90 if early_stopping else 100
    if table and early_stopping and Estimator is VAETransformer:
        expected = budget(n, min_steps=AUTO_VAE_TABLE_MIN_STEPS)[1]
        assert expected == 500  # at least 1,000 steps of 64 rows
    else:
        expected = budget(n)[1]
        assert expected == (188 if early_stopping else 156)  # not 1,000 of 4 steps
    assert est.n_iter_ == expected


@pytest.mark.parametrize(
    "n_rows, floor, epochs",
    [
        (900, 900, None),  # below the rule's 5,000 steps: the rule's epochs
        (5_000, 5_000, None),
        (9_000, 9_000, 250),  # more than the rule's 139 epochs of 256 from 5,000 rows...
        (45_000, 10_000, 114),  # ...twice its 57 from 10,000 to 50,000 rows...
        (54_000, 8_574, 81),  # ...then fading: 10,000 * (50,000 / n) ** 2...
        (90_000, 3_087, None),  # ...to below the rule's 5,000 from about 71,000
        (900_000, 31, None),
    ],
)
def test_an_autoencoder_makes_more_steps_from_a_few_thousand_rows(n_rows, floor, epochs):
    # where it binds, no more row passes (epochs times rows) than a 90,000-row fit
    assert AutoencoderTransformer()._min_steps(n_rows, None, None) == floor
    got = budget(n_rows, min_steps=floor)
    if epochs is None:
        assert got == budget(n_rows)
    else:
        assert got[1] == epochs > budget(n_rows)[1]
        assert got[1] * n_rows <= 1.01 * budget(90_000)[1] * 90_000
    # a VAE keeps the rule: of arrays, and of tables without validation rows
    for table in (None, object()):
        assert VAETransformer()._min_steps(n_rows, table, None) == 0


def test_an_autoencoders_floor_sets_its_epochs(monkeypatch):
    import skvae._autoencoder

    monkeypatch.setattr(skvae._autoencoder, "AUTO_AE_ROWS", 100)
    monkeypatch.setattr(skvae._autoencoder, "AUTO_AE_STEPS", 1_000)
    X = np.random.RandomState(0).normal(size=(100, 3))
    params = dict(hidden_layer_sizes=(4,), n_iter_no_change=10**6, random_state=0)
    ae = AutoencoderTransformer(**params).fit(X)
    # 900 steps of 64 rows for 90 training rows (2 an epoch), not the rule's 376
    assert ae.n_iter_ == budget(90, min_steps=900)[1] == 450 > budget(90)[1]
    assert VAETransformer(**params).fit(X).n_iter_ == budget(90)[1]


@pytest.mark.parametrize(
    "batch_size, learning_rate, expected",
    [
        (32, "auto", 1e-3),
        (64, "auto", 1e-3),
        (128, "auto", 2e-3),  # in proportion to the batch...
        (256, "auto", 4e-3),
        (4096, "auto", 4e-3),  # ...up to 4 times
        (1024, 0.05, 0.05),
    ],
)
def test_auto_learning_rate_grows_with_the_batch(batch_size, learning_rate, expected):
    assert auto_learning_rate(batch_size, learning_rate) == pytest.approx(expected)


def test_annealing_follows_a_cosine_over_the_budget():
    module, X = _tiny(), _data(64)
    optimizer = make_optimizer(module, "adam", 1e-2, 0.0)
    config = _config(batch_size=16, max_epochs=5, anneal=True, stop_early=False)
    train(module, X, optimizer, config)
    # 20 steps: the rate ends at the floor
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 * ANNEAL_FLOOR)
    optimizer = make_optimizer(module, "adam", 1e-2, 0.0)
    train(module, X, optimizer, _config(batch_size=16, max_epochs=5, stop_early=False))
    assert optimizer.param_groups[0]["lr"] == 1e-2  # constant without annealing


def test_a_warmed_up_rate_rises_first_and_ends_at_the_floor_it_is_given():
    module, X = _tiny(), _data(64)
    optimizer = make_optimizer(module, "adam", 4e-2, 0.0)
    config = _config(
        batch_size=8,
        max_epochs=5,
        anneal=True,
        stop_early=False,
        rate_warmup=0.1,
        rate_floor=5e-4,
    )
    rates = []
    hook = optimizer.register_step_pre_hook(
        lambda opt, *_: rates.append(opt.param_groups[0]["lr"])
    )
    train(module, X, optimizer, config)
    hook.remove()
    # 40 steps: 4 rising to 4e-2, then a cosine down to the floor given
    assert len(rates) == 40
    assert rates[:5] == pytest.approx([8e-3, 1.6e-2, 2.4e-2, 3.2e-2, 4e-2])
    assert all(a >= b for a, b in zip(rates[4:], rates[5:]))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)


def test_one_epoch_moves_the_weights_and_lowers_the_loss():
    module, X = _tiny(), _data()
    before = [p.detach().clone() for p in module.parameters()]
    optimizer = make_optimizer(module, "adam", 1e-2, 0.0)
    history = train(module, X, optimizer, _config(batch_size=16, max_epochs=20))
    assert history.n_epochs == 20
    assert all(not torch.equal(a, b) for a, b in zip(before, module.parameters()))
    assert history.losses[-1] < history.losses[0]
    assert history.best_loss == min(history.losses)
    assert not module.training  # left in eval mode


def test_epoch_loss_is_the_sample_weighted_mean():
    module = _Scripted([1.0, 3.0])  # two batches of 3 and 1 rows
    optimizer = make_optimizer(module, "sgd", 1e-3, 0.0)
    history = train(
        module, torch.zeros(4, 1), optimizer, _config(batch_size=3, max_epochs=1)
    )
    assert history.losses == [pytest.approx((3 * 1.0 + 1 * 3.0) / 4)]


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_optimizers_resume_from_state(name):
    module = _tiny()
    optimizer = make_optimizer(module, name, 1e-2, 0.1)
    train(module, _data(), optimizer, _config(batch_size=16, max_epochs=1))
    resumed = make_optimizer(module, name, 5e-3, 0.0, optimizer.state_dict())
    other = "sgd" if name != "sgd" else "adam"
    assert not make_optimizer(module, other, 5e-3, 0.0, optimizer.state_dict()).state
    assert resumed.param_groups[0]["lr"] == 5e-3  # current parameters win
    assert resumed.param_groups[0]["weight_decay"] == 0.0
    assert len(resumed.state) == len(optimizer.state) > 0


def test_stops_when_the_loss_stops_improving():
    module = _Scripted([5.0] * 100)  # a flat loss never improves by tol
    optimizer = make_optimizer(module, "sgd", 1e-3, 0.0)
    config = _config(max_epochs=100, n_iter_no_change=3)
    history = train(module, torch.zeros(4, 1), optimizer, config)
    assert history.converged and history.n_epochs == 6  # two windows of 3, the same mean
    config = _config(max_epochs=10, n_iter_no_change=3, stop_early=False)
    history = train(_Scripted([5.0] * 10), torch.zeros(4, 1), optimizer, config)
    # it runs the whole budget, and ends settled: converged
    assert history.stop_reason == "budget" and history.n_epochs == 10
    assert history.settled and history.converged
    falling = [10.0 - i for i in range(10)]
    history = train(_Scripted(falling), torch.zeros(4, 1), optimizer, config)
    assert not history.settled and not history.converged


def test_settled_uses_windows_of_a_fifth_of_the_epochs():
    # 10 epochs: windows of 2; the last fall, 0.05, is below 1% of the progress 8.55
    script = [10.0, 5.0, 3.0, 2.0, 1.8, 1.6, 1.5, 1.5, 1.45, 1.45]
    optimizer = make_optimizer(_Scripted([]), "sgd", 1e-3, 0.0)
    config = _config(max_epochs=10, n_iter_no_change=10, tol=0.1, stop_early=False)
    history = train(_Scripted(script), torch.zeros(4, 1), optimizer, config)
    assert history.stop_reason == "budget" and history.settled
    falling = script[:8] + [1.3, 1.2]  # 0.25 below the window before: still falling
    history = train(_Scripted(falling), torch.zeros(4, 1), optimizer, config)
    assert not history.settled
    config = _config(max_epochs=4, n_iter_no_change=10, tol=0.1)
    history = train(_Scripted(script), torch.zeros(4, 1), optimizer, config)
    assert not history.settled  # 4 epochs: no window to judge by
    # A loss never below its first value, falling back towards it, is not "still
    # improving": any dip was, against a progress of 0, and warned to train longer.
    # (The stopping rule itself is as it was: a fit with a KL warm-up, whose first
    # epoch is often its lowest, trains on.)
    rising = [5.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 8.0, 7.0]
    config = _config(max_epochs=10, n_iter_no_change=10, tol=0.1, stop_early=False)
    history = train(_Scripted(rising), torch.zeros(4, 1), optimizer, config)
    assert history.stop_reason == "budget" and history.settled
    assert improving(rising, 2, 0.01)


def test_keeps_going_while_the_windowed_mean_falls():
    # noisy, but each window of 2 epochs has a mean 1 below the one before
    script = [10.0, 12.0, 9.0, 11.0, 8.0, 10.0, 8.0, 10.0, 8.0, 10.0]
    optimizer = make_optimizer(_Scripted([]), "sgd", 1e-3, 0.0)
    config = _config(max_epochs=10, n_iter_no_change=2, tol=0.2)
    history = train(_Scripted(script), torch.zeros(4, 1), optimizer, config)
    # window means 11, 10, 9, 9: each fall of 1 is more than 0.2 times the progress
    # (1, then 2), until the last
    assert history.converged and history.n_epochs == 8


def test_no_stop_before_min_epochs():
    optimizer = make_optimizer(_Scripted([]), "sgd", 1e-3, 0.0)
    for start_epoch, expected in [(0, 6), (3, 3), (10, 2)]:
        config = _config(
            max_epochs=20, n_iter_no_change=1, min_epochs=5, start_epoch=start_epoch
        )
        history = train(_Scripted([5.0] * 20), torch.zeros(4, 1), optimizer, config)
        # the rule needs two epochs' losses from global epoch 5 on (from the
        # first epoch of a call that starts beyond it)
        assert history.converged and history.n_epochs == expected


def test_validation_rule_counts_epochs_without_improvement():
    # training alone would stop after two flat windows of 2 (4 epochs); validation
    # improves for 2 epochs, then stays flat: it stops after more than 2 such epochs
    # the first validation value scores the starting weights
    module = _Scripted([5.0] * 20, validation=[3.0, 3.0, 2.0] + [2.0] * 18)
    optimizer = make_optimizer(module, "sgd", 1e-3, 0.0)
    config = _config(max_epochs=20, n_iter_no_change=2, tol=0.1)
    history = train(module, torch.zeros(4, 1), optimizer, config, X_val=torch.zeros(2, 1))
    assert history.converged and history.n_epochs == 5
    assert history.validation_scores == [-3.0, -2.0, -2.0, -2.0, -2.0]  # epochs only
    assert history.best_validation_score == -2.0


def test_early_stopping_restores_the_best_weights():
    torch.manual_seed(0)
    module, X, X_val = (
        _tiny(),
        _data(64, 0),
        _data(32, 1) * 5,
    )  # validation is off-distribution
    optimizer = make_optimizer(module, "adam", 5e-2, 0.0)
    config = _config(batch_size=16, max_epochs=60, n_iter_no_change=3, tol=0.0)
    history = train(module, X, optimizer, config, X_val=X_val)
    assert len(history.validation_scores) == history.n_epochs
    best = max(history.validation_scores)
    assert history.best_validation_score == best
    assert history.validation_scores[-1] < best  # it ended past the best epoch...
    with torch.no_grad():  # ...and the best epoch's weights are back
        restored = -module.loss(X_val).reconstruction.mean().item()
    assert restored == pytest.approx(best, rel=1e-5)


def test_snapshot_copies_the_state_dict_and_outlives_later_steps():
    module, X = _tiny(), _data(64)
    snapshot = _snapshot(module)
    before = copy.deepcopy(module.state_dict())
    assert snapshot.keys() == before.keys()
    optimizer = make_optimizer(module, "adam", 1e-2, 0.0)
    train(module, X, optimizer, _config(max_epochs=2, stop_early=False))
    assert any(not torch.equal(module.state_dict()[k], before[k]) for k in before)
    for key, value in before.items():  # training did not write into the copy
        assert torch.equal(snapshot[key], value)
    module.load_state_dict(snapshot)
    for key, value in module.state_dict().items():
        assert torch.equal(value, before[key])


def test_non_finite_loss_raises_with_advice(capsys):
    module = _Scripted([1.0, math.nan])
    optimizer = make_optimizer(module, "sgd", 1e-3, 0.0)
    with pytest.raises(NonFiniteLossError, match="loss became nan .*learning rate"):
        train(module, torch.zeros(4, 1), optimizer, _config(max_epochs=5, verbose=1))
    assert issubclass(NonFiniteLossError, ValueError)
    # the progress bar says why it ended (it read "epoch budget reached")
    bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert bar.startswith("diverged") and "1/1" in bar


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_weights_that_become_non_finite_raise_whichever_tensor_holds_them(bad):
    module = _tiny()
    optimizer = make_optimizer(module, "adam", 1e-3, 0.0)
    params = list(module.parameters())
    _check_finite(params, optimizer, 1.0, 0)  # all finite: nothing raised
    _check_finite([], optimizer, 1.0, 0)
    with torch.no_grad():
        params[-1][0] = bad
    with pytest.raises(NonFiniteLossError, match="weights became NaN or infinite"):
        _check_finite(params, optimizer, 1.0, 3)


def test_modes_replay_the_flags_that_train_and_eval_set(manifold):
    module = VAETransformer(**FAST).fit(manifold).module_
    assert module.background is not None  # overrides train(): stays in eval mode
    modes = _Modes(module)
    for training in (True, False, True):
        module.train(training)
        expected = [m.training for m in module.modules()]
        module.train(not training)
        modes(module, training)
        assert [m.training for m in module.modules()] == expected
    assert not module.background.training


def test_an_adam_state_saved_with_a_scaled_epsilon_resumes_at_this_scale():
    # states saved before training divided an autoencoder's gradients by their
    # units' size hold moments of the undivided gradients, with epsilon scaled
    # alike: resumed as they were, a warm start nearly stopped learning
    module = _tiny()
    optimizer = make_optimizer(module, "adam", 1e-3, 0.0)
    X = _data()
    loss = module.loss(X).reconstruction.mean()
    loss.backward()
    optimizer.step()
    state = copy.deepcopy(optimizer.state_dict())
    old = copy.deepcopy(state)
    for group in old["param_groups"]:
        group["eps"] = 1e-8 * 1e6  # gradients a million times these
    for moments in old["state"].values():
        moments["exp_avg"] = moments["exp_avg"] * 1e6
        moments["exp_avg_sq"] = moments["exp_avg_sq"] * 1e12
    resumed = make_optimizer(module, "adam", 1e-3, 0.0, old)
    assert resumed.param_groups[0]["eps"] == 1e-8
    for key, moments in resumed.state_dict()["state"].items():
        for name in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(moments[name], state["state"][key][name])


def test_keyboard_interrupt_keeps_the_epochs_so_far():
    module = _Scripted([1.0, 1.0, KeyboardInterrupt])
    optimizer = make_optimizer(module, "sgd", 1e-3, 0.0)
    with pytest.warns(UserWarning, match="interrupted by the user after 2 epoch"):
        history = train(module, torch.zeros(4, 1), optimizer, _config(max_epochs=10))
    assert history.interrupted and history.n_epochs == 2


def test_trains_from_cpu_data_on_the_module_device(device):
    """On CUDA, rows kept on the CPU are streamed to the GPU batch by batch."""
    module, X = _tiny().to(device), _data()
    optimizer = make_optimizer(module, "adam", 1e-2, 0.0)
    config = _config(batch_size=16, max_epochs=3)
    history = train(module, X, optimizer, config, device=torch.device(device))
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
    with pytest.raises(ValueError, match="diverged"):
        est.fit(manifold * 100)
    with pytest.raises(NotFittedError):
        est.transform(manifold)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_divergence_in_partial_fit_keeps_the_previous_model(Estimator, manifold):
    est = Estimator(**FAST).fit(manifold)
    Z, n_iter = est.transform(manifold), est.n_iter_
    est.set_params(optimizer="sgd", learning_rate=1e12)
    with pytest.raises(ValueError, match="diverged"):
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
    # (no validation rows: no trials of the start before the fit's own training)
    est = Estimator(**{**FAST, "max_iter": 50, "early_stopping": False})
    with pytest.warns(UserWarning, match="interrupted by the user"):
        est.fit(manifold)
    assert est.n_iter_ == 2
    assert np.isfinite(est.transform(manifold)).all()
    monkeypatch.setattr(module_class, "loss", original)
    est.partial_fit(manifold)  # usable afterwards
    assert est.n_iter_ == 3


@pytest.mark.parametrize("verbose", [1, 2])
def test_keyboard_interrupt_in_a_validation_pass_records_whole_epochs(
    manifold, monkeypatch, capsys, verbose
):
    # The epoch's loss was recorded before its validation pass: a Ctrl-C there
    # left n_iter_ and loss_curve_ one epoch ahead of validation_scores_, the
    # bar at 3/4 and the last line saying 4 epochs
    import skvae._base

    original_train, original_evaluate = skvae._base.train, skvae._training.evaluate
    calls = {"armed": False, "n": 0}

    def evaluate(*args, **kwargs):
        if calls["armed"]:
            calls["n"] += 1
            if calls["n"] == 5:  # the start, then epochs 1-3, then epoch 4's pass
                raise KeyboardInterrupt
        return original_evaluate(*args, **kwargs)

    def train_(module, X, optimizer, config, *args, **kwargs):  # the fit, not its trials
        calls["armed"], calls["n"] = config.anneal, 0
        try:
            return original_train(module, X, optimizer, config, *args, **kwargs)
        finally:
            calls["armed"] = False

    monkeypatch.setattr(skvae._training, "evaluate", evaluate)
    monkeypatch.setattr(skvae._base, "train", train_)
    est = AutoencoderTransformer(**{**FAST, "max_iter": 20, "verbose": verbose})
    with pytest.warns(UserWarning, match="interrupted by the user after 3 epoch"):
        est.fit(manifold)
    assert est.n_iter_ == len(est.loss_curve_) == len(est.validation_scores_) == 3
    out, err = capsys.readouterr()
    if verbose == 1:
        assert "3/3" in err.replace("\r", "\n").strip().splitlines()[-1]
    else:
        assert (
            out.strip().splitlines()[-1]
            == "Training stopped after 3 epoch(s): interrupted."
        )


@pytest.mark.parametrize("verbose", [1, 2])
# found by the output check (at 1.0 an error 4 times the rows' mean's, 7 times its
# PCA start's: within the 10 times the check allowed), in the loop
@pytest.mark.parametrize("rate", [1.0, 1e9])
def test_a_fit_that_diverges_says_so_on_its_bar_and_last_line(
    manifold, capsys, verbose, rate
):
    # the bar closed before the check of the trained outputs, at "epoch budget
    # reached", and verbose=2 printed no reason (nor for a loss that became NaN)
    est = AutoencoderTransformer(
        **{**FAST, "max_iter": 10, "learning_rate": rate, "early_stopping": False}
    )
    with pytest.raises(NonFiniteLossError, match="diverged"):
        est.set_params(verbose=verbose).fit(manifold * 3)
    out, err = capsys.readouterr()
    if verbose == 1:
        assert err.replace("\r", "\n").strip().splitlines()[-1].startswith("diverged")
    else:
        assert out.strip().splitlines()[-1].endswith("epoch(s): diverged.")


def test_a_failure_or_ctrl_c_in_the_output_check(manifold, monkeypatch, capsys):
    # the bar read "epoch budget reached" for an error there, and a Ctrl-C
    # there lost the whole fit
    import skvae._training

    def failing(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(skvae._training, "_check_outputs", failing)
    est = AutoencoderTransformer(**{**FAST, "verbose": 1, "early_stopping": False})
    with pytest.raises(RuntimeError, match="out of memory"):
        est.fit(manifold)
    assert (
        capsys.readouterr()
        .err.replace("\r", "\n")
        .strip()
        .splitlines()[-1]
        .startswith("failed")
    )

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(skvae._training, "_check_outputs", interrupted)
    with pytest.warns(UserWarning, match="interrupted by the user after 5 epoch"):
        est.set_params(verbose=0).fit(manifold)
    assert est.n_iter_ == 5 and np.isfinite(est.transform(manifold)).all()


def test_without_validation_rows_the_patience_counts_from_the_kl_warmup_end(manifold):
    # judged on every training loss, whose KL weight rose over the warm-up, the
    # rule found no progress at every epoch and stopped at epoch kl_warmup
    params = {**FAST, "max_iter": 300, "early_stopping": False, "n_iter_no_change": 10}
    for warmup in (30, 60):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = VAETransformer(**params, kl_warmup=warmup).fit(manifold)
        assert est.n_iter_ >= warmup + 2 * 10


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("early_stopping", [False, True])
def test_keyboard_interrupt_in_the_first_epoch_keeps_the_previous_model(
    Estimator, early_stopping, manifold, monkeypatch
):
    # A refit interrupted before one epoch ended replaced a fitted model with an
    # untrained network (n_iter_ 0) and returned normally, with a warning.
    est = Estimator(**{**FAST, "early_stopping": early_stopping}).fit(manifold)
    Z, n_iter = est.transform(manifold), est.n_iter_
    module_class = type(est.module_)
    original = module_class.loss

    def interrupting(self, x, *args):
        if self.training:  # a training step; the start's scoring runs in eval mode
            raise KeyboardInterrupt
        return original(self, x, *args)

    monkeypatch.setattr(module_class, "loss", interrupting)
    for method in (est.fit, est.partial_fit):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "keeping the weights learned so far"
            with pytest.raises(KeyboardInterrupt):
                method(manifold)
        np.testing.assert_array_equal(est.transform(manifold), Z)
        assert est.n_iter_ == n_iter
    fresh = Estimator(**FAST)
    with pytest.raises(KeyboardInterrupt):
        fresh.fit(manifold)  # a first fit: it stays unfitted
    with pytest.raises(NotFittedError):
        fresh.transform(manifold)


def test_keyboard_interrupt_while_choosing_the_start_stops_the_fit(manifold, monkeypatch):
    est = VAETransformer(**FAST).fit(manifold)
    Z = est.transform(manifold)
    module_class, calls = type(est.module_), []
    original = module_class.loss

    def interrupting(self, x, *args):
        calls.append(1)
        if len(calls) == 3:  # inside the first trial: nothing is learned yet
            raise KeyboardInterrupt
        return original(self, x, *args)

    monkeypatch.setattr(module_class, "loss", interrupting)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "keeping the weights learned so far"
        with pytest.raises(KeyboardInterrupt):
            est.fit(manifold)
    np.testing.assert_array_equal(est.transform(manifold), Z)  # the previous model


def test_convergence_warning_advice_depends_on_validation_rows(manifold):
    # Without validation rows the loss watched is the training loss, which more
    # epochs lower by overfitting too (tables of fewer than 50 rows ran 1,000
    # steps 4.5-7.4 nats/row worse held out): check held-out scores first.
    # 6 epochs: from PCA's start, the validation loss can be level by the 10th
    still_falling = {**FAST, "max_iter": 6, "n_iter_no_change": 50}
    est = AutoencoderTransformer(**still_falling, early_stopping=True)
    with pytest.warns(ConvergenceWarning) as record:
        est.fit(manifold)
    assert str(record[0].message).endswith("Increase max_iter to train longer.")
    est.set_params(early_stopping=False)
    with pytest.warns(ConvergenceWarning, match=r"early_stopping=False\), which") as record:
        est.fit(manifold)
    assert "compare scores on held-out rows before you increase max_iter" in str(
        record[0].message
    )
    tiny = manifold[:40]
    est.set_params(early_stopping="auto")
    with pytest.warns(
        ConvergenceWarning, match="holds them out from 50 rows, and there were 40"
    ):
        est.fit(tiny)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_convergence_warning_at_max_iter(Estimator, manifold, recwarn):
    with pytest.warns(
        ConvergenceWarning, match=r"ran only 2 epoch\(s\) \(max_iter=2\): too few"
    ):
        Estimator(**{**FAST, "max_iter": 2}).fit(manifold)
    # the autoencoder's loss is still falling after 10 epochs (the VAE's, started
    # at factor analysis, is level by then)
    still_falling = {"max_iter": 10, "early_stopping": False, "n_iter_no_change": 50}
    with pytest.warns(ConvergenceWarning, match=r"used all 10 epochs .* still improving"):
        AutoencoderTransformer(**{**FAST, **still_falling}).fit(manifold)
    est = Estimator(
        **{**FAST, "max_iter": 100, "tol": 1e6, "n_iter_no_change": 1},
        early_stopping=False,
    )
    # converged after 2 epochs, the second not tol below the first: no warning
    est.fit(manifold)
    assert est.n_iter_ == 2
    assert not [w for w in recwarn if issubclass(w.category, ConvergenceWarning)]


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_verbose_output(Estimator, manifold, capsys):
    Estimator(**{**FAST, "max_iter": 2}).fit(manifold)
    assert capsys.readouterr() == ("", "")
    Estimator(**{**FAST, "max_iter": 2, "verbose": 2, "early_stopping": True}).fit(manifold)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("Epoch 1, loss = ") and "validation loss = " in lines[0]
    assert lines[2] == "Training stopped after 2 epoch(s): epoch budget reached."
    Estimator(**{**FAST, "max_iter": 2, "verbose": 1}).fit(manifold)
    err = capsys.readouterr().err
    assert "2/2" in err and "loss=" in err  # the tqdm bar
    assert "epoch budget reached" in err
    # a fit that stops early: the bar ends at the epochs run, and says why
    params = {"max_iter": 50, "verbose": 1, "tol": 1e6, "n_iter_no_change": 1}
    params["early_stopping"] = False
    Estimator(**{**FAST, **params}).fit(manifold)
    err = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "converged" in err and "2/2" in err


# ------------------------------------------------ threads, RNG, faults (issue 10)
NOISY = {"dropout": 0.2}


def _fit_params(Estimator):
    extra = {"noise": 0.1} if Estimator is AutoencoderTransformer else {}
    return {**FAST, **NOISY, **extra, "random_state": 3}


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_fits_in_threads_match_sequential_fits(Estimator, manifold):
    from concurrent.futures import ThreadPoolExecutor

    def fit(_):
        est = Estimator(**_fit_params(Estimator)).fit(manifold)
        return est.transform(manifold), est.score_samples(manifold)

    sequential = fit(None)
    with ThreadPoolExecutor(4) as pool:
        for Z, scores in pool.map(fit, range(4)):
            np.testing.assert_array_equal(Z, sequential[0])
            np.testing.assert_array_equal(scores, sequential[1])


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_fits_neither_use_nor_move_the_global_rng(Estimator, manifold):
    torch.manual_seed(0)
    first = Estimator(**_fit_params(Estimator)).fit(manifold).transform(manifold)
    state = torch.random.get_rng_state()
    torch.manual_seed(12345)  # another global seed: the same model
    state_other = torch.random.get_rng_state()
    second = Estimator(**_fit_params(Estimator)).fit(manifold).transform(manifold)
    np.testing.assert_array_equal(first, second)
    assert torch.equal(torch.random.get_rng_state(), state_other)  # untouched
    assert not torch.equal(state, state_other)


@pytest.mark.parametrize("n_jobs, expected", [(None, 1), (1, 1), (2, 2)])
def test_n_jobs_sets_torch_threads_and_restores_them(
    manifold, monkeypatch, n_jobs, expected
):
    import skvae._base

    seen, original = [], skvae._base.train

    def recording(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(skvae._base, "train", recording)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        VAETransformer(**{**FAST, "n_jobs": n_jobs}).fit(manifold)
        # the fit, and the trials that choose its start (see test_start.py)
        assert len(seen) == 3 and set(seen) == {expected}
        assert torch.get_num_threads() == 3  # the user's setting is back
    finally:
        torch.set_num_threads(before)


def test_overlapping_thread_blocks_in_two_threads_each_restore_their_own():
    # One saved value, restored by the last block to end in its own thread, left
    # the thread whose block ended first at the block's count, for good.
    from skvae._torch import torch_threads

    before = torch.get_num_threads()
    torch.set_num_threads(3)
    entered, leave = threading.Event(), threading.Event()

    def other():
        with torch_threads(1):
            entered.set()
            leave.wait(60)

    thread = threading.Thread(target=other)
    thread.start()
    try:
        assert entered.wait(60)
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 3
    finally:
        leave.set()
        thread.join()
    try:
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_a_nested_thread_block_gives_the_outer_one_its_count_back():
    from skvae._torch import torch_threads

    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        with torch_threads(1):
            with torch_threads(1):  # inference within a fit, say
                pass
            assert torch.get_num_threads() == 1  # not the caller's 3 yet
            with torch_threads(2):
                assert torch.get_num_threads() == 2
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_a_call_under_threadpool_limits_leaves_torch_settings_as_they_were(manifold):
    # Its block restored a count it had not changed: torch.set_num_threads also
    # sets MKL's count and the one new threads start with, which threadpoolctl
    # does not restore, so new threads ran on one thread from then on.
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = torch.get_num_threads()
    torch.set_num_threads(2)

    def in_a_new_thread():
        seen = []
        thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        return seen[0]

    try:
        est = AutoencoderTransformer(**FAST).fit(manifold)
        expected = in_a_new_thread()
        with threadpoolctl.threadpool_limits(1):
            est.transform(manifold)
        assert in_a_new_thread() == expected
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def _state(est):
    """Everything a fitted estimator holds, with tensors as numpy arrays."""
    weights = {
        k: v.detach().cpu().numpy().copy() for k, v in est.module_.state_dict().items()
    }
    attributes = {
        k: v for k, v in vars(est).items() if k.endswith("_") and k not in ("module_",)
    }
    import copy

    return weights, copy.deepcopy(attributes), copy.deepcopy(est._optimizer_state)


def _assert_same_state(a, b):
    for key in a[0]:
        np.testing.assert_array_equal(a[0][key], b[0][key])
    assert a[1].keys() == b[1].keys()
    for key in a[1]:
        if key == "code_density_":
            np.testing.assert_array_equal(a[1][key].means_, b[1][key].means_)
        else:
            np.testing.assert_equal(a[1][key], b[1][key])
    for key, value in a[2]["state"].items():
        for name, tensor in value.items():
            assert torch.equal(tensor, b[2]["state"][key][name])


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("how", ["partial_fit", "warm_start"])
def test_any_failure_in_a_continued_fit_keeps_the_previous_model(
    Estimator, manifold, monkeypatch, how
):
    est = Estimator(**{**FAST, "warm_start": how == "warm_start"}).fit(manifold)
    before = _state(est)

    def failing(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(Estimator, "_fitted_extras", failing)  # after training
    with pytest.raises(RuntimeError, match="boom"):
        getattr(est, "partial_fit" if how == "partial_fit" else "fit")(manifold)
    monkeypatch.undo()
    _assert_same_state(before, _state(est))
    # a diverging continued fit also leaves it whole, and it trains on afterwards
    est.set_params(optimizer="sgd", learning_rate=1e12)
    with pytest.raises(NonFiniteLossError, match="learning rate 1e\\+12"):
        est.partial_fit(manifold * 100)
    _assert_same_state(before, _state(est))
    est.set_params(optimizer="adam", learning_rate=1e-3).partial_fit(manifold)
    assert est.n_iter_ == before[1]["n_iter_"] + 1


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_a_loss_that_explodes_but_stays_finite_has_diverged(Estimator, manifold):
    # Only NaN and infinities counted: an autoencoder at learning_rate=100 ended
    # at a loss of 3.7e34 and reconstructions of 5e17 with no error, a VAE at 1.0
    # at 443 nats per row from 5 with samples 1e5 times too wide, warning only
    # that its loss was still improving.
    est = Estimator(**FAST).fit(manifold)
    before = _state(est)
    est.set_params(learning_rate=100.0, early_stopping=False, max_iter=15)
    match = r"reconstructions .* moved from .*\(learning rate 100\)"
    with pytest.raises(NonFiniteLossError, match=match):
        est.fit(manifold)
    _assert_same_state(before, _state(est))
    est.set_params(weight_decay=1e-4)
    with pytest.raises(NonFiniteLossError, match="weight decay 0.0001.*or weight_decay"):
        est.fit(manifold)
    # Reconstructions of the same rows, not losses: a loss compared a whole epoch
    # with one batch (a stream sorted by size raised), and a VAE's loss on rows
    # it overfits soars where its variance collapses (batches of 2 or 3 rows
    # raised at any rate), though it reconstructs them well.
    rng = np.random.RandomState(0)
    heavy = rng.standard_t(2, size=(1000, 5))
    fresh = Estimator(n_components=2, batch_size=32, random_state=0)
    fresh.partial_fit(heavy[np.argsort(-np.abs(heavy).max(1))])
    stream = Estimator(n_components=2, hidden_layer_sizes=(8,), random_state=0)
    for batch in np.array_split(manifold[:12], 6):
        stream.partial_fit(batch)
    # Rows drawn at random, not the first ones: data sorted by class start with
    # one tight group, which a healthy model (a VAE whose large beta leaves it
    # the mean) reconstructs ten times worse than its spread.
    from sklearn.datasets import load_iris

    by_class = load_iris().data
    Estimator(batch_size=32, early_stopping=False, random_state=0).set_params(
        **({"beta": 10.0} if Estimator is VAETransformer else {})
    ).fit(by_class)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_the_divergence_check_skips_entries_the_likelihood_does_not_score(Estimator):
    # A table's value at a missing entry (or at a column's point mass) is a
    # placeholder that training never fits: the default autoencoder of
    # bench_tabular.py's fair table, whose affairs are 0 in two thirds of the
    # rows, left those placeholders 30-48 away and raised "Training diverged"
    # (162.5 from 6.7), reconstructing every scored entry well.
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"a": rng.randn(80), "b": rng.randn(80), "c": rng.randn(80)})
    missing = rng.rand(80) < 0.5
    frame.loc[missing, "b"] = np.nan
    est = Estimator(n_components=1, **FAST).fit(frame)
    X = torch.as_tensor(est._table.encode(frame), dtype=torch.float32)
    scored = est.module_.likelihood.scored(X)
    unscored = torch.nonzero((scored == 0).any(0)).flatten().tolist()
    assert len(unscored) == 1  # b's value
    assert np.array_equal((scored[:, unscored[0]] == 0).numpy(), missing)
    error = reconstruction_error(est.module_, X)
    decode = est.module_.decode
    est.module_.decode = lambda z: decode(z) + 1e3 * (1 - scored)  # off where unscored
    assert reconstruction_error(est.module_, X) == pytest.approx(error)
    optimizer = make_optimizer(est.module_, "adam", 1e-3, 0.0)
    _check_outputs(est.module_, X, Schedule(), optimizer, 0, error)
    est.module_.decode = lambda z: decode(z) + 1e3 * scored  # off where scored
    with pytest.raises(NonFiniteLossError, match="diverged"):
        _check_outputs(est.module_, X, Schedule(), optimizer, 0, error)
    assert VAETransformer(**FAST).fit(rng.randn(60, 3)).module_.likelihood.scored(X) is None


def test_a_single_epoch_is_allowed_a_larger_rise_than_a_fit(manifold):
    # A fit ending 3 times worse than the rows' mean reconstructs them has
    # diverged (at learning_rate=1.0 one ended 4 times worse, within the 10
    # times once allowed); one pass over a stream's batch (partial_fit) may
    # move its few or sorted rows by more: randhie sorted by a column, in
    # batches of 16, raised at 3 times and not at 10.
    est = AutoencoderTransformer(**FAST).fit(manifold)
    X = torch.as_tensor(manifold, dtype=torch.float32)
    error = reconstruction_error(est.module_, X)
    spread = (X - X.mean(0)).pow(2).sum(-1).mean().item()
    decode = est.module_.decode
    shift = math.sqrt(5 * max(error, spread) / X.shape[1])  # 5 times worse, about
    est.module_.decode = lambda z: decode(z) + shift
    optimizer = make_optimizer(est.module_, "adam", 1e-3, 0.0)
    with pytest.raises(NonFiniteLossError, match="diverged"):
        _check_outputs(est.module_, X, Schedule(), optimizer, 0, error)
    _check_outputs(est.module_, X, Schedule(), optimizer, 0, error, ONE_EPOCH_DIVERGED_RISE)
    assert ONE_EPOCH_DIVERGED_RISE > 5 > DIVERGED_RISE


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_a_failed_fit_on_other_columns_keeps_the_previous_model(Estimator, manifold):
    # input checks had recorded the new width (and names) before training failed,
    # so the old network no longer matched n_features_in_
    est = Estimator(**FAST).fit(manifold)
    before = _state(est)
    Z = est.transform(manifold)
    est.set_params(optimizer="sgd", learning_rate=1e12)
    with pytest.raises(NonFiniteLossError):
        est.fit(manifold[:, :3] * 100)
    assert est.n_features_in_ == manifold.shape[1]
    _assert_same_state(before, _state(est))
    np.testing.assert_array_equal(est.transform(manifold), Z)
    frame = pd.DataFrame(manifold, columns=[f"f{i}" for i in range(manifold.shape[1])])
    named = Estimator(**FAST).fit(frame)
    named.set_params(optimizer="sgd", learning_rate=1e12)
    with pytest.raises(NonFiniteLossError):
        named.fit(frame.rename(columns=str.upper) * 100)
    np.testing.assert_array_equal(named.feature_names_in_, frame.columns)
    named.transform(frame)  # the fitted names still match


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_divergence_on_the_last_step_names_the_learning_rate(Estimator, manifold):
    # one full batch, one epoch: the only step diverges, no loss is computed after it
    est = Estimator(
        hidden_layer_sizes=(16,),
        max_iter=1,
        batch_size=10_000,
        optimizer="sgd",
        learning_rate=1e30,  # the networks read inputs in their units: 1e20 stays finite
        random_state=0,
    )
    with pytest.raises(NonFiniteLossError, match="became .*learning rate"):
        est.fit(manifold * 1e3)
    with pytest.raises(NotFittedError):
        est.transform(manifold)


def test_warnings_point_at_the_callers_line(manifold):
    with pytest.warns(ConvergenceWarning) as record:
        VAETransformer(**{**FAST, "max_iter": 2}).fit(manifold)
        AutoencoderTransformer(**{**FAST, "max_iter": 2}).fit_transform(manifold)
    assert [w.filename for w in record] == [__file__] * 2


def test_posterior_collapse_warns_once_per_partial_fit_stream(manifold):
    from skvae.exceptions import PosteriorCollapseWarning

    est = VAETransformer(**{**FAST, "beta": 50.0, "n_components": 4})
    with pytest.warns(PosteriorCollapseWarning) as record:
        for _ in range(4):
            est.partial_fit(manifold)
    assert len(record) == 1 and record[0].filename == __file__
    with pytest.warns(PosteriorCollapseWarning):  # a new fit warns again
        est.fit(manifold)


def test_importance_draws_are_chunked_without_changing_scores(manifold, monkeypatch):
    import skvae._networks

    est = VAETransformer(**{**FAST, "n_importance_samples": 50}).fit(manifold)
    whole = est.score_samples(manifold)
    monkeypatch.setattr(skvae._networks, "IMPORTANCE_ELEMENTS", 1)  # one draw a chunk
    np.testing.assert_allclose(est.score_samples(manifold), whole, rtol=1e-10)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_default_fits_on_small_data_do_not_warn(Estimator, recwarn):
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    digits = StandardScaler().fit_transform(load_digits().data[:400])
    est = Estimator(n_components=2, hidden_layer_sizes=(32,), random_state=0).fit(digits)
    assert not [w for w in recwarn if issubclass(w.category, ConvergenceWarning)]
    assert est.validation_scores_ is not None  # early_stopping="auto" from 50 rows


def test_n_jobs_none_is_one_thread_inside_a_joblib_context(manifold, monkeypatch):
    import joblib

    import skvae._base

    seen, original = [], skvae._base.train

    def recording(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(skvae._base, "train", recording)
    with joblib.parallel_config(n_jobs=2):  # e.g. a dask cluster's context
        VAETransformer(**FAST).fit(manifold)
    assert seen == [1, 1, 1]  # the start's two trials and the fit


def test_auto_budget_without_validation_rows_does_not_warn(manifold):
    # Below 50 rows "auto" holds out no validation rows, and the default budget
    # is the stopping rule: the training loss still falls there, but training
    # longer overfits (tables of 16-44 rows scored worse held out from 400
    # epochs on), so "increase max_iter" would be bad advice. (The rule is the
    # estimators' shared fit; the autoencoder is the one whose loss still falls.)
    tiny = manifold[:40]
    params = dict(hidden_layer_sizes=(32,), n_components=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = AutoencoderTransformer(**params).fit(tiny)
    assert est.validation_scores_ is None
    fifth = est.n_iter_ // 5
    last, before = est.loss_curve_[-fifth:], est.loss_curve_[-2 * fifth : -fifth]
    assert np.mean(before) - np.mean(last) > 0.01 * (est.loss_curve_[0] - min(last))
    # The same fit with the budget set by hand warns, with its advice.
    with pytest.warns(ConvergenceWarning, match="compare scores on held-out rows"):
        AutoencoderTransformer(**params, max_iter=est.n_iter_).fit(tiny)
