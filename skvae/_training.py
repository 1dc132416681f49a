"""The training loop: minibatches, the optimizer step, early stopping, history."""

import copy
import math
import warnings
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ._networks import mix_background

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


class NonFiniteLossError(ValueError):
    """Training produced a NaN or infinite loss."""


@dataclass
class History:
    """What one call of :func:`train` did."""

    losses: list = field(default_factory=list)
    validation_scores: list = field(default_factory=list)
    best_loss: float = math.inf
    best_validation_score: float = -math.inf
    converged: bool = False
    interrupted: bool = False

    @property
    def n_epochs(self):
        return len(self.losses)


@dataclass(frozen=True)
class Schedule:
    """The training objective over time: the KL weight, its warm-up, the validation weight.

    ``weight(epoch)`` rises linearly from ``beta / warmup`` to ``beta`` over
    ``warmup`` epochs (``beta`` throughout when ``warmup`` is 0); the
    validation objective always weighs the KL by ``beta``. A deterministic
    autoencoder has ``beta=0``.
    """

    beta: float = 0.0
    warmup: int = 0

    def weight(self, epoch):
        """Weight of the KL term at a 0-based global ``epoch``."""
        return kl_weight(epoch, self.warmup, self.beta)

    @property
    def validation_weight(self):
        return float(self.beta)


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`train` runs: batches, epochs, the stopping rule, reporting.

    Attributes
    ----------
    batch_size, max_epochs : int
    tol, n_iter_no_change : float, int
        With validation rows, stop when the validation score has not improved
        by ``tol`` for more than ``n_iter_no_change`` epochs (as
        ``MLPRegressor``). Without, stop when the mean training loss of the
        last ``n_iter_no_change`` epochs is not ``tol`` below the mean of the
        ``n_iter_no_change`` epochs before them: averaging over a window
        makes the rule robust to the noise of a stochastic objective and to
        the rise of the loss in the first epochs after a linear start.
    stop_early : bool
        Whether to apply the rule at all (``partial_fit`` does not).
    min_epochs : int
        Global epoch count before which the rule does not stop training (the
        KL warm-up, during which the objective itself changes).
    start_epoch : int
        Epochs already trained, for the schedule and the progress display.
    verbose : int
        0 silent, 1 a tqdm progress bar, 2 or more a line per epoch.
    """

    batch_size: int = 256
    max_epochs: int = 200
    tol: float = 1e-4
    n_iter_no_change: int = 10
    stop_early: bool = True
    min_epochs: int = 0
    start_epoch: int = 0
    verbose: int = 0


def kl_weight(epoch, warmup, beta):
    """Weight of the KL term at a 0-based ``epoch``: linear from beta/warmup up to beta."""
    if warmup <= 0:
        return float(beta)
    return float(beta) * min(1.0, (epoch + 1) / warmup)


def make_optimizer(module, name, learning_rate, weight_decay, state=None):
    """The optimizer over ``module``'s parameters, resuming from ``state`` if given.

    The state (moment estimates, step counts) is reused when it comes from the
    same kind of optimizer; the hyperparameters are always the current ones.
    """
    kwargs = {"lr": learning_rate, "weight_decay": weight_decay}
    if name == "sgd":
        kwargs["momentum"] = 0.9
    elif next(module.parameters()).device.type in ("cpu", "cuda"):
        kwargs["fused"] = True  # one kernel per step: about 17% faster epochs on a CPU
    optimizer = OPTIMIZERS[name](module.parameters(), **kwargs)
    same_kind = state is not None and set(state["param_groups"][0]) == set(
        optimizer.param_groups[0]
    )
    if same_kind:  # a state of another optimizer (Adam after SGD) is dropped
        optimizer.load_state_dict(state)
        for group in optimizer.param_groups:  # the current hyperparameters win
            group.update(optimizer.defaults)
    return optimizer


def objective(terms, weight):
    """Per-sample training objective: reconstruction plus weighted KL.

    With a background density (``terms.background``, log(w p_b(x))) it is
    minus the bound on the mixture's log-density,
    ``-log((1 - w) exp(-objective) + w p_b(x))``, which cannot exceed the
    background's own cost: a row the model cannot explain stops pulling on it.
    """
    value = terms.reconstruction + weight * terms.kl if weight else terms.reconstruction
    if terms.background is None:
        return value
    return -mix_background(-value, terms.background)


def evaluate(module, X, weight, chunk=4096):
    """Mean objective of ``module`` over the rows of ``X``, in eval mode."""
    was_training = module.training
    module.eval()
    total = torch.zeros((), device=X.device)
    with torch.inference_mode():
        for start in range(0, X.shape[0], chunk):
            total += objective(module.loss(X[start : start + chunk]), weight).sum()
    module.train(was_training)
    return total.item() / X.shape[0]


def _stalled(losses, window, tol):
    """Whether the last ``window`` losses' mean is not ``tol`` below the one before."""
    if len(losses) < 2 * window:
        return False
    recent = sum(losses[-window:]) / window
    before = sum(losses[-2 * window : -window]) / window
    return recent > before - tol


def train(module, X, optimizer, config, schedule=None, *, X_val=None, device=None):
    """Train ``module`` by minibatch gradient descent on ``module.loss``.

    Parameters
    ----------
    module : nn.Module
        Has ``loss(x)`` returning per-sample :class:`~._networks.Terms`.
    X : tensor of shape (n_samples, n_features)
        Training rows, on the training device or (to stream) on the CPU.
    optimizer : torch.optim.Optimizer
    config : TrainConfig
    schedule : Schedule or None
        The KL weight over epochs (None: no KL term).
    X_val : tensor or None
        Validation rows: when given, stopping watches the validation score
        (minus the objective) and the best weights are restored at the end.
    device : torch.device or None
        Where the module lives, when ``X`` is streamed from the CPU.

    Returns
    -------
    history : History

    Raises
    ------
    NonFiniteLossError
        When an epoch's loss is NaN or infinite; the module is then left with
        the weights of that failed step, for the caller to restore.
    """
    schedule = Schedule() if schedule is None else schedule
    device = X.device if device is None else device
    stream = X.device != device
    n = X.shape[0]
    history = History()
    best_state, no_improvement = None, 0
    epochs = range(config.start_epoch, config.start_epoch + config.max_epochs)
    bar = tqdm(epochs, disable=config.verbose != 1, unit="epoch", leave=True)
    module.train()
    try:
        for epoch in bar:
            w = schedule.weight(epoch)
            total = torch.zeros((), device=device)
            for idx in torch.randperm(n, device=X.device).split(config.batch_size):
                xb = X[idx]
                if stream:
                    xb = xb.pin_memory().to(device, non_blocking=True)
                loss = objective(module.loss(xb), w).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach() * idx.shape[0]
            epoch_loss = total.item() / n
            if not math.isfinite(epoch_loss):
                raise NonFiniteLossError(
                    f"The training loss became {epoch_loss} at epoch {epoch + 1}. The "
                    "learning rate may be too high, or the data may need scaling "
                    "(e.g. StandardScaler); lower learning_rate or preprocess X."
                )
            history.losses.append(epoch_loss)
            history.best_loss = min(history.best_loss, epoch_loss)
            if X_val is None:
                stalled = _stalled(history.losses, config.n_iter_no_change, config.tol)
            else:
                watched = -evaluate(module, X_val, schedule.validation_weight)
                history.validation_scores.append(watched)
                if watched < history.best_validation_score + config.tol:
                    no_improvement += 1
                else:
                    no_improvement = 0
                if watched > history.best_validation_score:
                    history.best_validation_score = watched
                    best_state = copy.deepcopy(module.state_dict())
                stalled = no_improvement > config.n_iter_no_change
            _report(bar, config.verbose, epoch, epoch_loss, history.validation_scores)
            if config.stop_early and stalled and epoch + 1 >= config.min_epochs:
                history.converged = True
                break
    except KeyboardInterrupt:
        history.interrupted = True
        warnings.warn(
            f"Training interrupted by the user after {history.n_epochs} epoch(s); "
            "keeping the weights learned so far.",
            UserWarning,
            stacklevel=3,
        )
    finally:
        bar.close()
        module.eval()
    if best_state is not None:
        module.load_state_dict(best_state)
    return history


def _report(bar, verbose, epoch, loss, validation_scores):
    """Show an epoch's losses on the progress bar (verbose=1) or as a line (verbose>=2)."""
    if verbose == 1:
        postfix = {"loss": f"{loss:.4g}"}
        if validation_scores:
            postfix["val_loss"] = f"{-validation_scores[-1]:.4g}"
        bar.set_postfix(postfix)
    elif verbose >= 2:
        line = f"Epoch {epoch + 1}, loss = {loss:.8f}"
        if validation_scores:
            line += f", validation loss = {-validation_scores[-1]:.8f}"
        print(line)
