"""The training loop: minibatches, the optimizer step, early stopping, history."""

import copy
import math
import statistics
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ._likelihoods import TINY_VARIANCE
from ._networks import mix_background, use_generator
from .exceptions import NonFiniteLossError, _warn

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


@dataclass
class History:
    """What one call of :func:`train` did.

    ``stop_reason`` is "converged" (the stopping rule saw the watched loss stop
    improving), "budget" (every epoch ran), or "interrupted" (Ctrl-C after
    at least one epoch; before, :func:`train` lets the KeyboardInterrupt
    through); "diverged" or "failed" only on the progress bar of a call that
    raised (NonFiniteLossError, or another error);
    ``settled`` says whether a fit that used its whole budget ended on a loss
    that had stopped improving (:func:`improving`).
    """

    losses: list = field(default_factory=list)
    validation_scores: list = field(default_factory=list)
    best_loss: float = math.inf
    best_validation_score: float = -math.inf
    stop_reason: str = "budget"
    settled: bool = False

    @property
    def n_epochs(self):
        return len(self.losses)

    @property
    def watched(self):
        """The losses convergence is judged on: the validation ones when there are."""
        return [-score for score in self.validation_scores] or self.losses

    @property
    def converged(self):
        return self.stop_reason == "converged" or (
            self.stop_reason == "budget" and self.settled
        )

    @property
    def interrupted(self):
        return self.stop_reason == "interrupted"


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
    """How :func:`train` runs: batches, epochs, the schedule, the stopping rule.

    Attributes
    ----------
    batch_size, max_epochs : int
    tol, n_iter_no_change : float, int
        The stopping rule, relative to the progress made so far (see
        :func:`improving`). With validation rows, stop when the best
        validation loss has not improved by ``tol`` times the progress for
        more than ``n_iter_no_change`` epochs (and restore the best weights);
        without, stop when the mean training loss of the last
        ``n_iter_no_change`` epochs is not below the mean of the epochs before
        them by that much. A fit that uses all its epochs has converged when
        the same test, on windows of a fifth of its epochs, with
        ``SETTLED_TOL`` and ``SETTLED_NOISE``, holds at the end.
    stop_early : bool
        Whether to apply the rule at all (``partial_fit`` does not).
    anneal : bool
        Whether the learning rate follows a cosine from its value down to
        ``ANNEAL_FLOOR`` times it (or to ``rate_floor``) over the
        ``max_epochs`` epochs' steps (constant otherwise).
    rate_warmup : float
        With ``anneal``, the share of the steps over which the learning rate
        first rises linearly to its value, the cosine following over the
        rest (0: none).
    rate_floor : float or None
        With ``anneal``, the learning rate the cosine ends at (None:
        ``ANNEAL_FLOOR`` times the starting one).
    min_epochs : int
        Global epoch count before which the rule does not stop training (the
        KL warm-up, during which the objective itself changes, or the high
        phase of a multiple of the rate); its patience counts from there
        (without validation rows, the windows hold the losses from there).
    start_epoch : int
        Epochs already trained, for the schedule and the progress display.
    seed : int
        Seeds the fit's own generators (shuffling, dropout, noise,
        reparameterisation draws); torch's global RNG is not used.
    verbose : int
        0 silent, 1 a tqdm progress bar, 2 or more a line per epoch.
    dequantize : callable or None
        Spreads heavy atoms in each training batch (see :func:`dequantizer`).
    """

    batch_size: int = 256
    max_epochs: int = 200
    tol: float = 1e-2
    n_iter_no_change: int = 10
    stop_early: bool = True
    anneal: bool = False
    rate_warmup: float = 0.0
    rate_floor: float | None = None
    min_epochs: int = 0
    start_epoch: int = 0
    seed: int = 0
    verbose: int = 0
    dequantize: object = None


#: How the warning of a fit that Ctrl-C stopped after its first epoch begins.
INTERRUPTED = "Training interrupted by the user"
#: A fit that ran all its epochs has converged when the mean watched loss of its
#: last fifth of epochs is less than this fraction of its progress below the
#: mean of the fifth before (:func:`improving`).
SETTLED_TOL = 0.01
#: ... or no more than SETTLED_NOISE standard errors of the difference of the
#: two means (the watched loss's own noise: a VAE's validation loss moves by
#: about 0.15 nats/row from epoch to epoch on load_digits). A gain within the
#: noise is no evidence that training longer helps: in the docs' grid search
#: (36 default fits of a Bernoulli VAE on the digits) a fit whose last fifth
#: gained 0.026 nats/row, 2% of its progress but 0.8 standard errors, warned.
SETTLED_NOISE = 2.0
#: A trained model whose reconstructions of training rows drawn at random are this
#: many times worse than its start's, or than the rows' spread about their mean, has
#: diverged, finite as its loss may be (:func:`_check_outputs`). It was 10, and an
#: autoencoder at learning_rate=1.0 from PCA's start (an error of 32 per row) ended
#: at 236, four times what the rows' mean gives (54), and was kept without a word.
#: At 3 the 39 tables of bench_unseen.py, bench_tabular.py's seven and about 70
#: shipped tables at both defaults, with the imputer and the count likelihoods
#: (a review's sweep, rerun), still fit.
DIVERGED_RISE = 3.0
#: ... for a single epoch (a ``partial_fit`` call), whose one pass over a
#: stream's batch of a few rows, or of rows sorted by a column, moves them by
#: more than a whole fit does: at 3, streams of rows sorted by a column
#: (randhie in batches of 16) raised where they had not at 10.
ONE_EPOCH_DIVERGED_RISE = 10.0
#: The annealed learning rate ends at this fraction of its starting value (unless
#: ``TrainConfig.rate_floor`` sets it: a fit at a multiple of the rate ends at
#: this fraction of the rate itself).
ANNEAL_FLOOR = 0.05
#: ``batch_size="auto"``: ``AUTO_BATCH_FACTOR * sqrt(n)`` rows for n training rows,
#: rounded to a power of 2, within [AUTO_MIN_BATCH, AUTO_BUDGET_MAX_BATCH];
#: ``max_iter="auto"``: the epochs that make about ``AUTO_STEPS`` optimizer steps
#: of that batch, within [AUTO_MIN_EPOCHS, AUTO_MAX_EPOCHS]. Small data gets
#: small batches and many epochs, large data large batches and few epochs,
#: every fit a similar number of steps. Chosen with
#: benchmarks/bench_convergence.py (see the docs' performance page).
AUTO_STEPS = 5_000
#: Below AUTO_FULL_ROWS training rows the steps shrink in proportion to the rows
#: (6.25 a row, about 190 epochs at the smallest batch): on tables of 150-450
#: rows (benchmarks/bench_tabular.py, two seeds) the full budget took 2-5 times
#: longer for the same two-sample AUC and real-binned quality, and 0.3 nats per
#: row more held out; 2,865 rows (fair) still gained 2 nats per row from 2,000
#: to 5,000 steps, and load_digits' halves (808 rows) keep their budget.
AUTO_FULL_ROWS = 800
#: Beyond AUTO_STEPS_ROWS training rows the steps grow as (n / AUTO_STEPS_ROWS)
#: to this power (about 8,800 at 900,000 rows): more data supports longer training,
#: and 5,000 steps left a million rows 3 nats/row below a 5x longer fit.
AUTO_STEPS_ROWS = 100_000
AUTO_STEPS_GROWTH = 0.25
AUTO_BATCH_FACTOR = 2.5
AUTO_MIN_BATCH = 32
AUTO_BUDGET_MAX_BATCH = 2048
#: On a CPU the batches train with at most AUTO_MAX_BATCH rows, for the
#: epochs of the larger batch the rule gives (from about 84,000 training
#: rows): there an epoch of smaller batches takes about as long, and its
#: extra steps went far (on a GPU a step of a VAE cost 3.9 ms at batch 256,
#: bounded by per-step overhead: four times the steps would take about four
#: times as long, and accelerators keep the larger batch).
#: bench_convergence's manifold (two threads, seed 0), 100,000 rows (batch
#: 1024 -> 512): autoencoder 0.02175 -> 0.02022 in 10.8 -> 15.4 s, VAE
#: 8.82 -> 9.65 nats/row in 20.3 -> 20.0 s; a million rows (2048 -> 512):
#: 0.01944 -> 0.01781 in 44 -> 59 s, 9.67 -> 10.98 in 66 -> 87 s. Confirmed
#: on 100,000 standardized rows of three other arrays: the autoencoder's
#: error fell by 1% (30-feature blobs), 7% (make_classification) and 17%
#: (Friedman's), the blobs' VAE lost 0.15 nats/row (5.14 -> 4.99), and the
#: other two VAEs kept their factor-analysis start either way. Batches of
#: 256 lowered the 100,000-row autoencoder's error further (0.01899, 19.0 s)
#: but took 1.5 times as long as 512 at a million rows (88 s) and for the
#: 100,000-row VAE (31 s).
AUTO_MAX_BATCH = 512
#: An "auto" batch below AUTO_SMALL_BATCH rows (below about 330 training rows)
#: is raised to it, at a learning rate raised with the rows a step sees, for the
#: epochs of the smaller batch: the linear scaling rule's equivalent of the same
#: training in half the steps. Measured with the default VAE on 50/50 halves
#: (two-sample AUC, real-binned quality, held-out nats/row): bench_tabular.py's
#: penguins, cars and gbsg2 (seeds 0-3) and nine other tables of 54-194
#: training rows (seeds 0-1) gave the same figures within the seed noise in
#: about half the time; standardized arrays of that size (load_breast_cancer,
#: load_wine and load_iris halves) moved by -0.08 to +0.11 nats/row. Doubling
#: the batches of 64 too (330-800 rows) left five tables' figures as they were
#: but ended 5 of 10 fits still improving, against 2 of 10.
AUTO_SMALL_BATCH = 64
AUTO_MIN_EPOCHS = 5
AUTO_MAX_EPOCHS = 1000
#: A VAE of a table with validation rows makes at least this many optimizer
#: steps with "auto" epochs (of the batch it trains with; at most
#: AUTO_MAX_EPOCHS epochs). Below about 290 training rows the rows' budget is
#: smaller (188 steps for 60 rows, 376 for 90, 564 for 150), and a table's VAE, which starts
#: from scratch (no factor-analysis start) on a sampled objective, had not got
#: far: on 10 tables of 60-343 training rows (50/50 halves, seeds 0-1;
#: statsmodels, lifelines, vega_datasets and bench_tabular's penguins, cars,
#: gbsg2) 1,000 steps raised the held-out score in 17 of 20 fits (by 0.64
#: nats/row on average) and lowered the two-sample AUC by 0.025, in 2 times
#: the (small) time. Without validation rows (below 50 rows) two of ten tables
#: overfit by 4-7 nats/row and the fits kept warning that the training loss
#: was falling, so those keep their budget; so do arrays (load_wine's
#: standardized 80-row halves, which start from factor analysis, lost 0.6
#: nats/row at n_components 5 and 10 in bench_density.py) and the autoencoder
#: (no KL term to hold it: it lost 4 nats/row on the tables).
AUTO_VAE_TABLE_MIN_STEPS = 1000
#: An AutoencoderTransformer makes at least ``AUTO_AE_STEPS * min(n /
#: AUTO_AE_ROWS, 1, (AUTO_AE_FULL_ROWS / n) ** 2)`` optimizer steps with
#: "auto" epochs for n training rows: more than the rule's 5,000 from 5,000
#: rows, twice it from 10,000 to 50,000 rows, and back to the rule from about
#: 71,000. Twice the steps (one torch thread, seed 0) lowered the held-out
#: error by 4.4%, 1.4% and 13% on 9,000 rows of the manifold, blobs and
#: Friedman's, by 14%, 14% and 2% on 45,000 rows of Hastie's, Friedman's and
#: make_classification's features (6-7 s to 12-15 s), and changed it by -0.7%
#: to +0.4% on five other 9,000-row arrays. Below a few thousand rows they did
#: not help (load_digits' 808-row halves +3.1%, manifold 1,800 rows +0.3%,
#: the small bundled datasets -0.9% to +4.1%). On 90,000 manifold rows they
#: lowered it by 8.8% too, but in 29 s instead of 17 (one thread): beyond
#: 50,000 rows the extra steps fade, so that large fits keep their time
#: (bench_convergence.py's bar: 30 s for 100,000 rows on slower machines
#: than this one).
AUTO_AE_STEPS = 10_000
AUTO_AE_ROWS = 10_000
AUTO_AE_FULL_ROWS = 50_000
#: ``early_stopping="auto"`` holds out a validation slice from this many rows (5
#: at the default validation_fraction), and its patience is at least
#: ``AUTO_PATIENCE`` of the epochs: a VAE started at factor analysis can sit
#: on a plateau for hundreds of steps before it learns the curvature, and a
#: patience of 10 epochs of a few steps each stopped it there. Measured:
#: without early stopping, about 5,000 steps on a few hundred rows overfit
#: (wine, 89 rows: -21.7 nats/row held out against -16.1 with it; the
#: autoencoder on digits: reconstructions 10% worse).
AUTO_EARLY_STOPPING_ROWS = 50
AUTO_PATIENCE = 0.2


def budget(
    n_rows,
    batch_size="auto",
    max_iter="auto",
    learning_rate="auto",
    min_steps=0,
    device=None,
):
    """The batch size, the number of epochs and the learning rate for ``n_rows`` rows.

    An "auto" batch is ``AUTO_BATCH_FACTOR * sqrt(n_rows)`` rounded to a power
    of 2 within [AUTO_MIN_BATCH, AUTO_BUDGET_MAX_BATCH], then raised to at
    least AUTO_SMALL_BATCH and, on a CPU, lowered to at most AUTO_MAX_BATCH.
    "auto" epochs make about ``AUTO_STEPS`` optimizer steps of the batch before the
    raise or the cap, times ``n_rows / AUTO_FULL_ROWS`` below
    AUTO_FULL_ROWS rows and times ``(n_rows / AUTO_STEPS_ROWS) **
    AUTO_STEPS_GROWTH`` beyond AUTO_STEPS_ROWS, and at least ``min_steps``
    steps of the batch trained with. An "auto" learning rate is
    :func:`auto_learning_rate`'s for the batch before the raise, times the
    factor by which the raise grows the rows a step sees (1 where the smaller
    batch held every row already).

    Parameters
    ----------
    n_rows : int
    batch_size, max_iter : int or "auto"
    learning_rate : float or "auto"
        The estimator's parameters; a number is used as it is.
    min_steps : int
        The fewest optimizer steps that "auto" epochs make (within
        [AUTO_MIN_EPOCHS, AUTO_MAX_EPOCHS] epochs).
    device : torch.device, str or None
        Where the fit trains; None or "cpu" for a CPU. An accelerator keeps
        the larger batch: a step there costs about the same at any of these
        sizes, so smaller batches would take longer.

    Returns
    -------
    batch_size, max_epochs : int
    learning_rate : float
    """
    n_rows = max(int(n_rows), 1)
    raised = 1.0
    if batch_size == "auto":
        target = AUTO_BATCH_FACTOR * math.sqrt(n_rows)
        batch_size = 2 ** round(math.log2(target))
        batch_size = min(max(batch_size, AUTO_MIN_BATCH), AUTO_BUDGET_MAX_BATCH)
        steps_batch = batch_size
        if batch_size < AUTO_SMALL_BATCH:
            raised = min(n_rows, AUTO_SMALL_BATCH) / min(n_rows, batch_size)
            batch_size = AUTO_SMALL_BATCH
        if device is None or torch.device(device).type == "cpu":
            batch_size = min(batch_size, AUTO_MAX_BATCH)
    else:
        steps_batch = batch_size
    if max_iter == "auto":
        steps_per_epoch = math.ceil(n_rows / steps_batch)
        growth = max(n_rows / AUTO_STEPS_ROWS, 1.0) ** AUTO_STEPS_GROWTH
        growth *= min(n_rows / AUTO_FULL_ROWS, 1.0)
        max_iter = round(AUTO_STEPS * growth / steps_per_epoch)
        max_iter = max(max_iter, math.ceil(min_steps / math.ceil(n_rows / batch_size)))
        max_iter = min(max(max_iter, AUTO_MIN_EPOCHS), AUTO_MAX_EPOCHS)
    if learning_rate == "auto":
        learning_rate = auto_learning_rate(steps_batch) * raised
    return int(batch_size), int(max_iter), float(learning_rate)


#: ``learning_rate="auto"``: AUTO_LEARNING_RATE for batches up to AUTO_LR_BATCH
#: rows, growing in proportion to the batch size beyond (the linear scaling
#: rule), up to AUTO_LR_MAX_FACTOR times: 2e-3 at batch 128 (from about 1,300
#: training rows) and 4e-3 from batch 256 (about 5,200 rows). Measured on
#: bench_convergence's manifold, held-out VAE score in nats/row: 100,000 rows
#: (batch 1024) 5.2 at 2e-3, 6.6 at 4e-3, and diverging to -3.8 at 8e-3; a
#: million rows (batch 2048) 7.5 at 2.8e-3 and 8.4 at 4e-3; 10,000 rows (batch
#: 256) 0.10 at 1e-3 and 2.65 at 4e-3 (the autoencoder's error 0.0306 and
#: 0.0248); 3,000 rows (batch 128) -3.44 at 1e-3 and -2.16 at 2e-3 (0.0381 and
#: 0.0328). Tables and other data below 1,300 rows (batches of 32 and 64), on
#: which the small-data defaults were chosen, keep 1e-3 (2e-3 where
#: :func:`budget` raises a batch of 32 to AUTO_SMALL_BATCH).
AUTO_LEARNING_RATE = 1e-3
AUTO_LR_BATCH = 64
AUTO_LR_MAX_FACTOR = 4.0


def auto_learning_rate(batch_size, learning_rate="auto"):
    """The learning rate for ``batch_size``; a number is used as it is."""
    if learning_rate != "auto":
        return float(learning_rate)
    factor = min(max(batch_size / AUTO_LR_BATCH, 1.0), AUTO_LR_MAX_FACTOR)
    return AUTO_LEARNING_RATE * factor


def improving(losses, window, tol, noise=0.0):
    """Whether the last ``window`` losses still improve on the ``window`` before.

    True when the mean of the last ``window`` losses is below the mean of the
    ``window`` losses before them by more than ``tol`` times the progress so
    far (the first loss minus the lowest) and by more than ``noise`` standard
    errors of that difference (from the spread of the losses in each window),
    or when there are fewer than ``2 * window`` losses to tell. Relative to
    the progress, the test reads the same for losses in any unit or offset
    (nats per row can be negative), and means over windows make it robust to
    a stochastic objective's noise.
    """
    if window < 1 or len(losses) < 2 * window:
        return True
    recent, before = losses[-window:], losses[-2 * window : -window]
    progress = max(losses[0] - min(losses), 0.0)
    gain = sum(before) / window - sum(recent) / window
    if noise and window > 1:
        variances = statistics.variance(recent) + statistics.variance(before)
        if gain <= noise * math.sqrt(variances / window):
            return False
    return gain > tol * progress


def kl_weight(epoch, warmup, beta):
    """Weight of the KL term at a 0-based ``epoch``: linear from beta/warmup up to beta."""
    if warmup <= 0:
        return float(beta)
    return float(beta) * min(1.0, (epoch + 1) / warmup)


#: Adam's epsilon (torch's default), for gradients of about unit size: a model
#: whose loss is in squared data units divides it by their size for the
#: gradients (``Model.gradient_scale``; :func:`train`). Data in units of 1e-6
#: make gradients of about 1e-12, which this epsilon would damp ten thousand
#: times; scaling epsilon instead left Adam's float32 averages of squared
#: gradients to overflow (units of 1e12: an autoencoder stayed at its start)
#: or underflow (1e-11).
ADAM_EPS = 1e-8


def make_optimizer(module, name, learning_rate, weight_decay, state=None):
    """The optimizer over ``module``'s parameters, resuming from ``state`` if given.

    The state (moment estimates, step counts) is reused when it comes from the
    same kind of optimizer; the hyperparameters are always the current ones.
    """
    kwargs = {"lr": learning_rate, "weight_decay": weight_decay}
    if name == "sgd":
        kwargs["momentum"] = 0.9
    else:  # for gradients of unit size (train divides by gradient_scale)
        kwargs["eps"] = ADAM_EPS
        if next(module.parameters()).device.type in ("cpu", "cuda"):
            kwargs["fused"] = True  # one kernel per step: about 17% faster epochs on a CPU
    optimizer = OPTIMIZERS[name](module.parameters(), **kwargs)
    # A learning-rate schedule adds "initial_lr" to the groups: not a kind.
    same_kind = state is not None and set(state["param_groups"][0]) - {"initial_lr"} == set(
        optimizer.param_groups[0]
    )
    if same_kind:  # a state of another optimizer (Adam after SGD) is dropped
        optimizer.load_state_dict(state)
        for group in optimizer.param_groups:  # the current hyperparameters win
            group.pop("initial_lr", None)
            saved = group.get("eps")
            group.update(optimizer.defaults)
            if name != "sgd" and saved and not math.isclose(saved, ADAM_EPS):
                _rescale_moments(optimizer, group, saved / ADAM_EPS)
    return optimizer


def _rescale_moments(optimizer, group, ratio):
    """Divide ``group``'s Adam moments by ``ratio`` (the second by its square).

    A state saved when Adam's epsilon was scaled with an autoencoder's
    gradients (by ``gradient_scale``, before :func:`train` divided the
    gradients by it instead) holds moments of gradients ``ratio`` times the
    ones training now makes: resumed as they were, a warm start or
    ``partial_fit`` of data in units of 1e3 nearly stopped learning.
    """
    with torch.no_grad():
        for p in group["params"]:
            moments = optimizer.state.get(p, {})
            if "exp_avg" in moments:
                moments["exp_avg"].div_(ratio)
            for key in ("exp_avg_sq", "max_exp_avg_sq"):
                if key in moments:
                    moments[key].div_(ratio**2)


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


class _Modes:
    """Switch ``module`` between training and eval mode by replaying recorded flags.

    ``nn.Module.train`` walks the module tree in Python: validation switches
    modes twice an epoch, which small data pays at hundreds of epochs. The
    flags each mode gives the submodules (one may override ``train``, as the
    background does) are recorded once, for a module whose structure does not
    change while it trains.
    """

    def __init__(self, module):
        was_training = module.training
        self.flags = {}
        for mode in (False, True):
            module.train(mode)
            self.flags[mode] = [(m, m.training) for m in module.modules()]
        module.train(was_training)

    def __call__(self, module, training):
        for m, flag in self.flags[training]:
            m.training = flag


def _set_mode(module, training):
    """``module.train(training)``: the signature of :class:`_Modes`'s call."""
    module.train(training)


#: Numbers (rows times features) that :func:`evaluate` feeds the model at once at
#: most: 4,096 rows of up to 1,024 features, fewer of wider ones.
EVALUATE_ELEMENTS = 2**22


def evaluate(module, X, weight, chunk=4096, set_mode=_set_mode):
    """Mean objective of ``module`` over the rows of ``X``, in eval mode.

    ``X`` is a tensor or a :class:`~._torch.SparseRows`; chunks of its rows
    move to the module's device. ``set_mode(module, training)`` switches the
    mode (a :class:`_Modes` in the training loop).
    """
    was_training = module.training
    set_mode(module, False)
    device = next(module.parameters()).device
    total = torch.zeros((), device=device)
    chunk = max(1, min(chunk, EVALUATE_ELEMENTS // max(X.shape[1], 1)))  # wide rows
    with torch.inference_mode():
        for start in range(0, X.shape[0], chunk):
            rows = X[start : start + chunk].to(device)
            total += objective(module.loss(rows), weight).sum()
    set_mode(module, was_training)
    return total.item() / X.shape[0]


def train(module, X, optimizer, config, schedule=None, *, X_val=None, device=None):
    """Train ``module`` by minibatch gradient descent on ``module.loss``.

    Parameters
    ----------
    module : nn.Module
        Has ``loss(x)`` returning per-sample :class:`~._networks.Terms`.
    X : tensor or :class:`~._torch.SparseRows` of shape (n_samples, n_features)
        Training rows, on the training device or (to stream) on the CPU;
        sparse rows are densified one minibatch at a time.
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
        When an epoch's loss or the weights after it are NaN or infinite; the
        module is then left with the weights of the failed step, for the
        caller to discard.
    KeyboardInterrupt
        On Ctrl-C before the first epoch ends: nothing was learned, so the
        caller's estimator stays as it was (a fitted one is not replaced by
        an untrained network). After it, training stops with a warning and
        keeps what it learned.
    """
    schedule = Schedule() if schedule is None else schedule
    device = X.device if device is None else device
    stream = X.device != device
    n = X.shape[0]
    history = History()
    best_state, best_watched, no_improvement = None, math.inf, 0
    shuffle = torch.Generator(X.device).manual_seed(config.seed)
    steps_per_epoch = math.ceil(n / config.batch_size)
    scheduler = _annealing(optimizer, config.max_epochs * steps_per_epoch, config)
    epochs = range(config.start_epoch, config.start_epoch + config.max_epochs)
    bar = tqdm(total=len(epochs), disable=config.verbose != 1, unit="epoch", leave=True)
    use_generator(module, torch.Generator(device).manual_seed(config.seed + 1))
    # The start's reconstruction error on rows drawn at random (the first rows
    # of data sorted by class are one tight group), which the trained model's
    # is checked against (_check_outputs); a generator of its own leaves the
    # training draws as they were.
    pick = torch.Generator(X.device).manual_seed(config.seed + 3)
    pick = torch.randperm(n, device=X.device, generator=pick)[: config.batch_size]
    rows = X[pick].to(device)
    start_error = reconstruction_error(module, rows)
    noise = torch.Generator(device).manual_seed(config.seed + 2)
    if X_val is not None and config.stop_early:
        # The start is a candidate too: a model started at a linear solution
        # that training cannot improve on held-out rows keeps that solution.
        best_watched = evaluate(module, X_val, schedule.validation_weight)
        best_state = _snapshot(module)
    # The loss's gradients at about unit size, whatever the data's units
    # (Adam's updates do not change with the loss's scale, but its float32
    # averages of squared gradients do); the recorded losses stay in them.
    scale = float(module.gradient_scale()) if hasattr(module, "gradient_scale") else 1.0
    set_mode = _Modes(module)
    module.train()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    try:  # the generator is removed again once the outputs are checked, below
        for epoch in epochs:
            w = schedule.weight(epoch)
            total = torch.zeros((), device=device)
            order = torch.randperm(n, device=X.device, generator=shuffle)
            for idx in order.split(config.batch_size):
                xb = X[idx]
                if stream:
                    xb = xb.pin_memory().to(device, non_blocking=True)
                if config.dequantize is not None:
                    xb = config.dequantize(xb, idx, noise)
                loss = objective(module.loss(xb), w).mean()
                for p in params:  # zero_grad(set_to_none=True), without its wrappers
                    p.grad = None
                (loss / scale if scale != 1.0 else loss).backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                total += loss.detach() * idx.shape[0]
            epoch_loss = total.item() / n
            _check_finite(params, optimizer, epoch_loss, epoch)
            # An epoch counts once all of it is recorded (loss, validation score,
            # progress bar): a Ctrl-C in its validation pass left n_iter_ and
            # loss_curve_ an epoch ahead of validation_scores_ and the bar.
            if X_val is None:
                history.losses.append(epoch_loss)
                # The patience counts from the floor on (a KL warm-up's losses
                # rise with its weight): judged on every loss, a fit with
                # kl_warmup=W stopped at epoch W whatever its max_iter.
                settled_from = max(config.min_epochs - 1 - config.start_epoch, 0)
                stalled = not improving(
                    history.losses[settled_from:], config.n_iter_no_change, config.tol
                )
            else:
                watched = evaluate(
                    module, X_val, schedule.validation_weight, set_mode=set_mode
                )
                if not math.isfinite(watched):
                    _diverged(optimizer, f"validation loss became {watched}", epoch)
                history.losses.append(epoch_loss)
                history.validation_scores.append(-watched)
                progress = max(history.watched[0] - min(history.watched), 0.0)
                if watched < best_watched - config.tol * progress:
                    no_improvement = 0
                elif epoch + 1 < config.min_epochs:
                    # The patience counts from the floor on: before it the
                    # objective (KL warm-up) or the rate (a multiple's high
                    # phase) is not the one the fit ends with.
                    no_improvement = 0
                else:
                    no_improvement += 1
                if watched < best_watched:
                    best_watched = watched
                    best_state = _snapshot(module)
                stalled = no_improvement > config.n_iter_no_change
            history.best_loss = min(history.best_loss, epoch_loss)
            bar.update()
            _report(bar, config.verbose, epoch, epoch_loss, history.validation_scores)
            if config.stop_early and stalled and epoch + 1 >= config.min_epochs:
                history.stop_reason = "converged"
                break
    except KeyboardInterrupt:
        history.stop_reason = "interrupted"
        if not history.losses:  # not one epoch learned: the caller keeps what it had
            use_generator(module, None)
            _close(bar, history, config.verbose)
            raise
        _warn_interrupted(history)
    except BaseException as error:
        use_generator(module, None)
        diverged = isinstance(error, NonFiniteLossError)
        history.stop_reason = "diverged" if diverged else "failed"
        _close(bar, history, config.verbose)
        raise
    finally:
        module.eval()
    history.best_validation_score = -best_watched
    if best_state is not None:
        module.load_state_dict(best_state)
    try:
        if not history.interrupted:  # with the fit's generator: the global RNG stays
            last = config.start_epoch + history.n_epochs - 1
            rise = DIVERGED_RISE if config.max_epochs > 1 else ONE_EPOCH_DIVERGED_RISE
            _check_outputs(module, rows, schedule, optimizer, last, start_error, rise)
    except NonFiniteLossError:  # the bar and the last line say so
        history.stop_reason = "diverged"
        raise
    except KeyboardInterrupt:  # as after the last epoch: keep what was learned
        history.stop_reason = "interrupted"
        _warn_interrupted(history)
    except BaseException:
        history.stop_reason = "failed"
        raise
    finally:
        use_generator(module, None)
        _close(bar, history, config.verbose)
    window = history.n_epochs // 5
    watched = history.watched
    # A loss never below its first value has no progress to go on with: not
    # "still improving" (any dip was, against a progress of 0).
    history.settled = window >= 1 and (
        min(watched) >= watched[0]
        or not improving(watched, window, SETTLED_TOL, SETTLED_NOISE)
    )
    return history


def _warn_interrupted(history):
    """Warn that Ctrl-C stopped training after ``history``'s epochs, which it keeps."""
    _warn(
        f"{INTERRUPTED} after {history.n_epochs} epoch(s); "
        "keeping the weights learned so far.",
        UserWarning,
    )


def _snapshot(module):
    """A copy of ``module``'s state dict, its tensors cloned rather than deep-copied.

    ``state_dict`` holds detached tensors (parameters and persistent buffers),
    so cloning them gives what ``copy.deepcopy`` gives at a fraction of the
    cost, which small data pays at many epochs (each new best validation loss).
    """
    return {
        key: value.clone() if torch.is_tensor(value) else copy.deepcopy(value)
        for key, value in module.state_dict().items()
    }


def _annealing(optimizer, total_steps, config):
    """The learning-rate schedule over ``total_steps`` steps, or None.

    A cosine from the optimizer's rate down to ``config.rate_floor``
    (``ANNEAL_FLOOR`` times the rate by default), after a linear rise over
    ``config.rate_warmup`` of the steps (see :class:`TrainConfig`).
    """
    if not config.anneal or total_steps < 2:
        return None
    rate = optimizer.param_groups[0]["lr"]
    floor = ANNEAL_FLOOR * rate if config.rate_floor is None else config.rate_floor
    rise = min(round(config.rate_warmup * total_steps), total_steps - 1)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=total_steps - rise, eta_min=min(floor, rate)
    )
    if rise < 1:
        return cosine
    warmup = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=1 / (rise + 1), total_iters=rise
    )
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, cosine], [rise])


def _check_finite(params, optimizer, epoch_loss, epoch):
    """Raise NonFiniteLossError when the epoch's loss or the weights after it diverged.

    The weights ``params`` are checked too: the last step of an epoch can
    diverge with no loss computed after it. They are read in one pass (one
    synchronisation, not one per tensor).
    """
    flat = torch.cat([p.detach().reshape(-1) for p in params]) if params else None
    weights_finite = flat is None or bool(torch.isfinite(flat).all())
    if math.isfinite(epoch_loss) and weights_finite:
        return
    what = (
        f"loss became {epoch_loss}"
        if not math.isfinite(epoch_loss)
        else "weights became NaN or infinite"
    )
    _diverged(optimizer, what, epoch)


def _diverged(optimizer, what, epoch):
    """Raise the NonFiniteLossError that says ``what`` diverged at ``epoch``.

    The learning rate quoted is the one training started at (a schedule's
    ``initial_lr``), not where its annealing had brought it; a weight decay is
    named with it.
    """
    group = optimizer.param_groups[0]
    lr = group.get("initial_lr", group["lr"])
    decay = group.get("weight_decay", 0.0)
    lower = "learning_rate or weight_decay" if decay else "learning_rate"
    held = f", weight decay {decay:.3g}" if decay else ""
    raise NonFiniteLossError(
        f"Training diverged: the {what} at epoch {epoch + 1} (learning rate "
        f"{lr:.3g}{held}). Lower {lower}, or scale the data (e.g. StandardScaler)."
    )


def reconstruction_error(module, X):
    """Mean summed squared error of X's deterministic reconstructions (eval mode).

    The decoder's mean at the encoder's code (a VAE's posterior mean): no
    draw, so the fit's generators are untouched. Entries the likelihood does
    not score (a table's missing values and the values at a column's point
    mass, whose placeholders training leaves the decoder free to miss) count
    nothing. None for a module without ``encode`` and ``decode``.
    """
    if not (hasattr(module, "encode") and hasattr(module, "decode")):
        return None
    was_training = module.training
    module.eval()
    with torch.inference_mode():
        squared = (module.decode(module.encode(X)) - X).pow(2)
        likelihood = getattr(module, "likelihood", None)
        scored = None if likelihood is None else likelihood.scored(X)
        if scored is not None:
            squared = squared * scored
        error = squared.sum(-1).mean().item()
    module.train(was_training)
    return error


def _check_outputs(
    module, X, schedule, optimizer, epoch, start_error=None, rise=DIVERGED_RISE
):
    """Raise NonFiniteLossError where the trained model diverged.

    The last step of the last epoch is followed by no loss: finite weights can
    still be large enough to overflow the codes or the reconstructions. A
    model whose loss stayed finite diverged too where its deterministic
    reconstructions of the rows X are more than ``rise`` times worse
    than the start's (``start_error``) or than X's spread about its mean,
    whichever is larger: an autoencoder at ``learning_rate=100`` ended at a
    loss of 3.7e34 with no error, a VAE at 1.0 at 443 nats per row from 5
    (its samples 1e5 times too wide), warning only that the loss was still
    improving. Reconstructions, not losses: a VAE's loss on rows it overfits
    (a stream's batches of 2 rows) soars where its variance collapsed,
    though it reconstructs them well.
    """
    loss = evaluate(module, X, schedule.validation_weight)
    if not math.isfinite(loss):
        what = f"weights became too large after the last step (the loss is {loss})"
        _diverged(optimizer, what, epoch)
    error = reconstruction_error(module, X)
    if start_error is None or error is None:
        return
    spread = (X - X.mean(0)).pow(2).sum(-1).mean().item()
    scale = max(start_error, spread)
    if scale < 100 * TINY_VARIANCE * X.shape[1]:  # too narrow for float32 to judge
        return
    # and a millionth of the rows' size: constant rows are reconstructed exactly
    size = X.pow(2).sum(-1).mean().item()
    if not error <= rise * scale + 1e-6 * size:
        what = (
            f"reconstructions of {X.shape[0]} training rows moved from a squared error of "
            f"{start_error:.4g} at the start to {error:.4g}"
        )
        _diverged(optimizer, what, epoch)


def _close(bar, history, verbose=0):
    """End the progress bar at the epochs actually run, saying why training stopped.

    With ``verbose >= 2``, print the line that says so instead.
    """
    if verbose >= 2:
        print(f"Training stopped after {history.n_epochs} epoch(s): {_reason(history)}.")
    if bar.disable:
        return
    bar.total = bar.n = history.n_epochs
    bar.set_description_str(_reason(history))
    bar.refresh()
    bar.close()


def _reason(history):
    """Why training stopped, in words."""
    return {
        "converged": "converged (stopped early)",
        "interrupted": "interrupted",
        "diverged": "diverged",
        "failed": "failed",
    }.get(history.stop_reason, "epoch budget reached")


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


def dequantizer(atoms, rows, device):
    """A function that spreads heavy atoms over their cells in training batches, or None.

    Parameters
    ----------
    atoms : tuple or None
        :meth:`~._tabular.Table.heavy_atoms` of the encoded training rows.
    rows, device : torch.device
        Where the training rows are (the batches are indexed there), and
        where the batches are trained.

    Returns
    -------
    dequantize : callable or None
        ``dequantize(xb, idx, generator)`` returns a copy of the batch ``xb``
        (training rows ``idx``) in which each entry at a heavy atom is a
        normal score drawn uniformly in probability over the atom's cell: it
        still decodes to the atom, and the column's scores are standard
        normal (a Gaussian fitted to the atom's one score gives the column's
        other values the tail beyond it, and samples lose them).
    """
    if atoms is None:
        return None
    columns, inside, p_low, p_high = atoms
    device = torch.device(device)
    here = device.type != "mps"  # no ndtri (nor float64) on mps: drawn on the CPU
    dtype = torch.float64 if here else torch.float32
    inside = torch.as_tensor(inside, device=rows)
    p_low, p_high = (
        torch.as_tensor(p, dtype=dtype, device=device) for p in (p_low, p_high)
    )
    columns = torch.as_tensor(columns, device=device)

    def dequantize(xb, idx, noise):
        at = inside[idx].to(xb.device)
        u = torch.rand(at.shape, generator=noise, device=xb.device, dtype=dtype)
        p = p_low + u * (p_high - p_low)
        z = torch.special.ndtri(p if here else p.cpu().double()).to(xb.device, xb.dtype)
        out = xb.clone()
        out[:, columns] = torch.where(at, z, xb[:, columns])
        return out

    return dequantize
