"""VAETransformer: Gaussian posterior, beta-weighted KL, IWAE scores, sampling."""

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from ._base import (
    _DENSITY_MAX_ROWS,
    _MAX_SEED,
    _MIN_SPREAD,
    Interval,
    StrOptions,
    _BaseAutoencoder,
    check_n_samples,
    check_sample_random_state,
    linear_start,
    sample_code_density,
    shared_parameter_docs,
)
from ._likelihoods import LIKELIHOODS
from ._priors import PRIORS
from ._torch import batched, check_memory, generator
from ._training import AUTO_VAE_TABLE_MIN_STEPS, Schedule
from .exceptions import PosteriorCollapseWarning, _warn

#: The Gaussian observation variance is floored at this fraction of each
#: feature's variance in the training data (of the mean feature variance for
#: a constant feature), as factor analysis floors its noise variances at 1e-12:
#: a feature that is constant in training is then nearly deterministic, and a
#: row that breaks it falls back on the background density.
VARIANCE_FLOOR = 1e-12
#: The floor for the standardized numeric columns of a mixed-type table.
TABLE_VARIANCE_FLOOR = 1e-3
#: Without a linear start, the observation variance starts at this fraction of
#: each feature's variance: a small start makes the reconstruction term dominate
#: the first steps, so the encoder learns informative codes before the KL term
#: can collapse them onto the prior. The closed-form update brings the variance
#: to the residuals' level within a few dozen steps.
VARIANCE_INIT = 0.01
#: Likelihoods of real values with a per-feature scale in closed form: they get
#: the variance floor, the factor-analysis start and the PPCA background, and
#: they are the ones a mixed-type table's numeric columns can use (the others
#: have a support, which ``fit`` refuses for tables).
_SCALED = {"gaussian", "student_t"}
#: A latent dimension is active when its posterior variance, averaged over the
#: training rows, is below this fraction of the prior's (which is 1).
ACTIVE_THRESHOLD = 0.9
#: The code density is fitted to up to this many draws from q(z|x) per training
#: row (at most _DENSITY_MAX_ROWS codes in all), so that it follows the
#: aggregate posterior rather than one draw per row. Measured with
#: sample_from="posterior" (held-out score minus the prior's, nats per row):
#: load_wine's 89-row halves at n_components=10 -4.9 with one draw, +0.6 with
#: ten (seeds 0-2); the seven tables of bench_tabular.py with the
#: synthetic-table settings higher on 9 of 14 table-seeds (penguins by 1.4 and
#: 1.9, the others lower by 0.15 at most), their two-sample AUC unchanged on
#: average (0.662 and 0.665).
CODE_DRAWS = 10


@shared_parameter_docs
class VAETransformer(_BaseAutoencoder):
    """Variational autoencoder: a nonlinear, probabilistic PCA.

    The encoder maps each row x to a Gaussian posterior q(z|x) over a latent
    code of ``n_components`` numbers; the decoder maps a code z to a
    distribution p(x|z) over rows. Training maximises the evidence lower bound
    (ELBO) on log p(x), which makes the latent space a density: ``transform``
    returns posterior means, ``score_samples`` estimates log p(x) in nats and
    ``sample`` generates new rows.

    Parameters
    ----------
    n_components : int, default=2
        Dimension of the latent space.
    hidden_layer_sizes : array-like of int, default=(128, 64)
        Widths of the encoder's hidden layers; the decoder uses them in reverse.
        ``()`` with ``likelihood="gaussian"`` is a linear-Gaussian model:
        factor analysis, probabilistic PCA with one noise variance per feature.
    %(activation)s
    %(dropout)s
    %(batch_size)s
    %(max_iter)s
    %(learning_rate)s
    %(optimizer)s
    %(weight_decay)s
    %(early_stopping)s
    %(validation_fraction)s
    %(n_iter_no_change)s
    %(tol)s
    %(device)s
    %(n_jobs)s
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, dropout, the reparameterisation draws,
        the draws of ``score_samples`` and the aggregate-posterior density.
    %(verbose)s
    %(warm_start)s
    likelihood : {"gaussian", "student_t", "bernoulli", "poisson", \
            "negative_binomial"}, default="gaussian"
        The observation model p(x|z). "gaussian" learns one variance per
        feature; "student_t" one scale and one number of degrees of freedom
        per feature (heavy tails: robust to outlying values); "bernoulli" is
        for data in [0, 1]; "poisson" and "negative_binomial" (one dispersion
        per feature) are for counts and need non-negative integers: each
        row's mean is its own total (library size) times a composition from
        the decoder, so codes do not depend on the row's scale and
        ``score_samples`` is log p(x | l) at the row's total l (Poisson:
        the multinomial; see :ref:`sparse`). The numeric columns of a
        mixed-type DataFrame take "gaussian" or "student_t".
    prior : {"normal", "mixture"}, default="normal"
        The prior p(z): the standard normal, or a learned mixture of 10
        diagonal Gaussians (its KL term is then estimated from the
        reparameterised draw).
    beta : float, default=1.0
        Weight of the KL term in the training objective (a beta-VAE); 1 is the
        ELBO.
    kl_warmup : int, default=0
        Epochs over which the KL weight rises linearly from ``beta/kl_warmup``
        to ``beta``; 0 uses ``beta`` from the start. Training does not stop
        before the warm-up ends, and the stopping rule's patience counts from
        there; a fit whose epochs end before it (fewer
        ``max_iter``) warns, as its KL weight never reaches ``beta``. A
        warm-up helps the model leave the early plateau where the decoder
        ignores z, which ``early_stopping`` could otherwise mistake for
        convergence.
    n_importance_samples : int, default=10
        Posterior draws K per row in ``score_samples`` (the IWAE bound); 1
        gives the ELBO.
    sample_from : {"prior", "posterior"}, default="prior"
        The p(z) of the fitted model: the prior it was trained with, or a
        Gaussian mixture fitted to the aggregate posterior (codes drawn from
        q(z|x) over the training rows), which avoids regions of the prior the
        data never uses. ``sample`` draws codes from it, and ``score_samples``
        scores rows under it, so the scores are those of the density the
        samples come from (a two-stage model: decoder and code density). Read
        when ``sample`` or ``score_samples`` is called, so it can be changed
        after fitting.
    density_components : int, default=10
        Components of that mixture, fitted with the model.
    %(categorical_features)s
    %(numeric_transform)s

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network, with ``encoder``, ``decoder`` and ``likelihood``.
    device_ : torch.device
        The device the network lives on.
    n_components_ : int
        Dimension of the latent space.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when X has string column names.
    n_iter_ : int
        Number of epochs trained.
    loss_curve_ : list of float
        Mean training objective (negative beta-ELBO, nats per row) per epoch.
    best_loss_ : float
        Lowest value in ``loss_curve_``.
    validation_scores_ : list of float or None
        Minus the validation objective per epoch, with validation rows
        (``early_stopping=True``, or "auto" from 50 rows); a warm start's
        fits add theirs, as to ``loss_curve_``, where the fits before had
        validation rows too (each fit draws its own).
    best_validation_score_ : float or None
        Best of the last fit's validation scores and its starting weights'
        score: the score of the weights the fit kept.
    noise_variance_ : ndarray of shape (n_features,) or None
        (For a mixed-type table, one per numeric column, in standardized units.)
        The per-feature observation variance of the Gaussian likelihood; for
        the Student-t its squared scale (the variance is that times df / (df
        - 2) where df > 2); None for the Bernoulli, Poisson and negative
        binomial likelihoods.
    active_components_ : ndarray of bool of shape (n_components,)
        Latent dimensions whose mean posterior variance over the training data
        is below 0.9 (the prior's is 1), i.e. that carry information.
    n_active_components_ : int
        Number of active dimensions. Few active dimensions mean posterior
        collapse, reported with a warning (a ``UserWarning``).
    code_density_ : sklearn.mixture.GaussianMixture
        Aggregate-posterior density, used by ``sample_from="posterior"``:
        fitted to up to ten codes drawn from q(z|x) per training row (at
        most 10,000 in all). Each ``partial_fit`` updates it with the batch's
        codes, so that it stands for the rows seen in the last ten batches or
        so, not the last batch alone.

    See Also
    --------
    AutoencoderTransformer : The deterministic autoencoder.
    sklearn.decomposition.PCA : Probabilistic PCA, the linear-Gaussian case.
    sklearn.mixture.GaussianMixture : Another density with ``score_samples``.

    Notes
    -----
    With encoder mean and log-variance ``mu(x), log s^2(x)`` and
    ``z = mu + s * eps``, ``eps ~ N(0, I)`` (the reparameterisation trick),
    training minimises the mean over rows of::

        -log p(x | z) + w * KL(q(z|x) || p(z)),
        KL = 1/2 * sum_j (mu_j^2 + s_j^2 - 1 - log s_j^2)   (prior="normal")

    (for ``prior="mixture"`` the KL is estimated at the drawn z as
    ``log q(z|x) - log p(z)``)

    where w rises to ``beta`` over ``kl_warmup`` epochs. With ``beta=1`` this
    is the negative ELBO. For ``likelihood="gaussian"``,
    ``-log p(x|z) = 1/2 * sum_i ((x_i - g_i(z))^2 / v_i + log(2 pi v_i))`` with a
    variance ``v_i`` per feature, learned in closed form: each training batch
    moves it towards its maximum-likelihood value given the decoder, the mean
    squared residual of feature i (a moving average with momentum 0.1), which
    converges in a few dozen steps where gradient steps on a log-variance take
    thousands. It is floored at 1e-12 times the mean feature variance of the
    training data (as ``FactorAnalysis`` floors its noise variances), so
    scores are real log-densities comparable with ``PCA.score_samples`` and
    ``FactorAnalysis.score_samples``. For real-valued data, the encoder and
    decoder each have a linear path beside their MLP, and training starts at
    the factor-analysis solution (its exact posterior and loadings, the
    decoder's outputs in units of each feature's noise deviation), so it only
    adds nonlinearity to it.

    A variance fitted on training rows can be tiny for a feature that is
    nearly constant there, and a new row that uses it would cost thousands of
    nats. So the model's density mixes in a broad background density p_b
    with weight w = 1e-3: ``p(x) = (1 - w) p_vae(x) + w p_b(x)``, where p_b is
    for real-valued data half probabilistic PCA with ``n_components`` factors
    (the density of ``PCA.score_samples``) and half the multivariate t with
    its scale matrix and the degrees of freedom that fit the training rows
    (a tail that charges the log of a row's distance, not its square), and
    the independent-features model otherwise. A row scores at most about 6.9
    nats below p_b, and any other row loses at most 0.001 nats.
    ``score_samples`` and the validation objective use this mixture;
    training fits the VAE's own ELBO.

    ``score_samples`` returns the importance-weighted bound [2]_ with K =
    ``n_importance_samples`` draws, ``log 1/K sum_k p(x, z_k) / q(z_k|x)``,
    which rises towards log p(x) as K grows; K = 1 is the ELBO (KL in closed
    form). Each row's draws are fixed by ``random_state`` and the row's values
    (rounded to float32), so a row's score does not depend on the rows scored
    with it, and a mean over rows (``score``) averages the draws' noise out
    (less so over many equal rows, which share their draws).

    A linear encoder and decoder (``hidden_layer_sizes=()``) with the Gaussian
    likelihood is probabilistic PCA with a per-feature noise variance (factor
    analysis); its held-out score matches ``PCA.score`` on linear-Gaussian data.

    A pandas DataFrame with categorical (``category``, object, string) or
    boolean columns is modelled column by column: numeric columns are
    mapped to normal scores (``numeric_transform``) and modelled as above,
    booleans as Bernoulli, each categorical column as a softmax over its
    levels; their terms are summed per row.
    Missing values seen in fit are modelled (a missing indicator beside a
    numeric column, a "missing" level of a categorical one) and sampled back
    at the data's rate; unknown levels at transform time encode as all zeros,
    as ``OneHotEncoder(handle_unknown="ignore")`` does, and score the
    probability fit estimated for a level it did not see (see the user
    guide). ``inverse_transform`` and ``sample`` then return a DataFrame with
    the fitted columns, order and dtypes.

    References
    ----------
    .. [1] D. P. Kingma and M. Welling, "Auto-encoding variational Bayes",
       ICLR 2014.
    .. [2] Y. Burda, R. Grosse and R. Salakhutdinov, "Importance weighted
       autoencoders", ICLR 2016.
    .. [3] I. Higgins et al., "beta-VAE: Learning basic visual concepts with a
       constrained variational framework", ICLR 2017.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skvae import VAETransformer
    >>> X, _ = load_digits(return_X_y=True)
    >>> X = X[:300] / 16  # 300 images, pixels in [0, 1]
    >>> vae = VAETransformer(n_components=4, random_state=0)
    >>> Z = vae.fit_transform(X)
    >>> Z.shape
    (300, 4)
    >>> vae.sample(3, random_state=0).shape
    (3, 64)
    """

    _parameter_constraints = {
        **_BaseAutoencoder._parameter_constraints,
        "likelihood": [
            StrOptions(
                set(LIKELIHOODS) - {"squared_error", "categorical", "interval_gaussian"}
            )
        ],
        "prior": [StrOptions(set(PRIORS))],
        "beta": [Interval(Real, 0, None, closed="left")],
        "kl_warmup": [Interval(Integral, 0, None, closed="left")],
        "n_importance_samples": [Interval(Integral, 1, None, closed="left")],
        "sample_from": [StrOptions({"prior", "posterior"})],
        "density_components": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        n_components=2,
        *,
        hidden_layer_sizes=(128, 64),
        activation="relu",
        dropout=0.0,
        batch_size="auto",
        max_iter="auto",
        learning_rate="auto",
        optimizer="adam",
        weight_decay=0.0,
        early_stopping="auto",
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-3,
        device="auto",
        n_jobs=None,
        random_state=None,
        verbose=0,
        warm_start=False,
        likelihood="gaussian",
        prior="normal",
        beta=1.0,
        kl_warmup=0,
        n_importance_samples=10,
        sample_from="prior",
        density_components=10,
        categorical_features="from_dtype",
        numeric_transform="auto",
    ):
        super().__init__(
            n_components,
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            dropout=dropout,
            batch_size=batch_size,
            max_iter=max_iter,
            learning_rate=learning_rate,
            optimizer=optimizer,
            weight_decay=weight_decay,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            tol=tol,
            device=device,
            n_jobs=n_jobs,
            random_state=random_state,
            verbose=verbose,
            warm_start=warm_start,
            categorical_features=categorical_features,
            numeric_transform=numeric_transform,
        )
        self.likelihood = likelihood
        self.prior = prior
        self.beta = beta
        self.kl_warmup = kl_warmup
        self.n_importance_samples = n_importance_samples
        self.sample_from = sample_from
        self.density_components = density_components

    _density_scores = True
    _table_min_steps = AUTO_VAE_TABLE_MIN_STEPS
    _rate_trials = True

    def _min_spread(self):
        # Its variances are in X's units (a table's encoding is standardized).
        return _MIN_SPREAD if self.likelihood in _SCALED else 0.0

    def _describe(self, n_features, hidden, table):
        name = self.likelihood
        if table is None:
            options = {}
            if name in _SCALED:
                options = {"floor_fraction": VARIANCE_FLOOR, "init_fraction": VARIANCE_INIT}
            likelihood = {"name": name, "n_features": n_features, **options}
        else:
            options = {
                "floor_fraction": TABLE_VARIANCE_FLOOR,
                "init_fraction": VARIANCE_INIT,
            }
            likelihood = table.likelihood(name, options)
        scaled = table is None and name in _SCALED
        description = {
            **self._network("vae", n_features, hidden, likelihood),
            "prior": {"name": self.prior, "n_components": self.n_components},
            "background": "ppca_t" if scaled else "independent",
        }
        if scaled:  # values in their own units: the encoder reads them in a unit
            description["input_unit"] = True
        return description

    def _linear_start(self, X, table, seed, like=None):
        # Real-valued arrays: start at factor analysis, which the network nests
        # (linear paths beside its MLPs), so training only adds to it; with
        # ``like``'s number of factors if given.
        if table is None and self.likelihood in _SCALED:
            factors = getattr(like, "factors", None)
            return linear_start(X, self.n_components, seed, factors)
        return None

    def _schedule(self):
        return Schedule(beta=float(self.beta), warmup=self.kl_warmup)

    def _support(self, fitted=False):
        name = self.likelihood
        if fitted:
            if self._table is not None:
                return None, None
            name = self.module_.description["likelihood"]["name"]
        return LIKELIHOODS[name].support, f"likelihood={name!r}"

    def _score_draws(self):
        K = self.n_importance_samples
        check_memory(  # a row's draws, their hashes and copies, its log-weights
            8 * K * (4 * self.n_components_ + 3),
            f"score_samples with n_importance_samples={K}",
            "Lower n_importance_samples: one row's draws are held at once.",
        )
        return K

    def _fitted_extras(self, module, X, device, seed, incremental):
        mean, log_var = batched(module.posterior, [X], device, torch.float32)
        with torch.no_grad():
            prior_variance = module.prior.marginal_variance().double().cpu().numpy()
        active = np.exp(log_var).mean(axis=0) < ACTIVE_THRESHOLD * prior_variance
        # A stream of partial_fit calls warns once, not on every batch.
        warned = incremental and getattr(self, "_collapse_warned", False)
        collapsed = active.sum() < self.n_components / 2
        if collapsed and not warned:
            _warn(
                f"Only {active.sum()} of {self.n_components} latent dimensions are "
                "active (posterior collapse): the others carry no information about "
                "the data. Lower beta, use kl_warmup, train longer, or reduce "
                "n_components.",
                PosteriorCollapseWarning,
            )
        n_rows = mean.shape[0]
        draws = min(CODE_DRAWS, max(1, _DENSITY_MAX_ROWS // n_rows))
        mean, log_var = np.repeat(mean, draws, axis=0), np.repeat(log_var, draws, axis=0)
        rng = np.random.RandomState(seed)
        Z = mean + np.exp(0.5 * log_var) * rng.standard_normal(mean.shape)
        return {
            **self._code_density_of(Z.astype(np.float64), n_rows, seed, incremental),
            "active_components_": active,
            "n_active_components_": int(active.sum()),
            "noise_variance_": _noise_variance(module.likelihood),
            "_collapse_warned": bool(collapsed or warned),
        }

    def score_samples(self, X):
        """Estimate log p(x) for each row, in nats (the importance-weighted bound).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
            The IWAE bound with ``n_importance_samples`` draws (the ELBO when
            that is 1), a lower bound on log p(x) in expectation over its
            draws (a row's estimate may lie a little above) that tightens as
            it grows.
            p(z) is the prior, or the code density with
            ``sample_from="posterior"`` (its ELBO then estimates the KL term
            at the one draw).
            Deterministic given ``random_state``. For
            ``likelihood="poisson"`` and ``"negative_binomial"`` it is log p(x
            | l), the log-probability of the counts given a total l set to
            the row's own total (the totals are not modelled): exactly 0 for
            a row of total 0.

        Raises
        ------
        MemoryError
            If one row's ``n_importance_samples`` draws would not fit in this
            machine's memory (rows are scored a chunk at a time, with fewer
            rows per chunk the more draws there are).
        """
        # Read here: set_params can change them.
        self._check_params("n_importance_samples", "sample_from")
        return super().score_samples(X)

    def _score_prior(self, module):
        if self.sample_from == "posterior":
            return super()._code_density(module)
        return None

    def _code_density(self, module):
        density = self._score_prior(module)
        return module.prior if density is None else density

    def sample(self, n_samples=1, random_state=None, *, given=None, add_noise=True):
        """Generate rows: draw codes, decode them, and draw from p(x|z).

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to generate.
        random_state : int, RandomState instance or None, default=None
            Seeds the draws; an int makes them reproducible.
        given : dict, DataFrame or None, default=None
            Values to condition on: ``{column: value}`` (a value for every
            sample, or an array-like of ``n_samples`` values), or a DataFrame
            of conditions with one row per sample. Columns are the fitted
            column names for a DataFrame, integer indices (or the feature
            names seen in fit) for an array. The rows are then drawn from the
            model's conditional distribution p(x_free | x_given), and the given
            entries hold their values exactly (see Notes).
        add_noise : bool, default=True
            Draw from the likelihood p(x|z) (Gaussian noise with the learned
            variance, or 0/1 Bernoulli draws; counts with each row's total
            drawn from the training rows' totals). False returns the decoder
            mean (for counts, the expected counts at the mean training total).

        Returns
        -------
        X : ndarray of shape (n_samples, n_features) or DataFrame
            Generated rows (float64, dense also for a model fitted on sparse
            data); for a model of a mixed-type table, a
            DataFrame with its columns and dtypes (with ``add_noise`` each
            category, boolean and missing value is drawn from the decoder's
            probabilities; without it, the most likely one).

        Raises
        ------
        %(sample_raises)s

        Notes
        -----
        A conditional draw is self-normalised importance resampling of the
        posterior p(z | x_given) [4]_: 200 candidate codes per row come from a
        mixture of the encoder's q(z | x~), where ``x~`` is the partial row
        with its free entries filled in by the model's own reconstruction
        (or, for a column that had missing values in fit, encoded as
        missing), and of p(z) itself (a fifth of them), weighted by
        ``p(x_given | z) p(z) / q(z)``. One code per row is drawn by weight,
        and the free entries are drawn from p(x_free | z). p(z) is the prior,
        or the code density with ``sample_from="posterior"``. No rejection
        loop is involved: the cost is fixed, whatever the condition's
        probability.

        References
        ----------
        .. [4] P.-A. Mattei and J. Frellsen, "MIWAE: Deep generative modelling
           and imputation of incomplete data sets", ICML 2019.
        """
        check_is_fitted(self)
        check_n_samples(self, n_samples, given)
        self._check_params("sample_from")  # read here, so set_params can change it
        rng = check_sample_random_state(self, random_state)
        if given is not None:
            mode = "draw" if add_noise else "decoder_mean"
            return self._sample_given(given, n_samples, rng, mode)
        if self.sample_from == "posterior":
            Z = sample_code_density(self.code_density_, n_samples, rng)
        else:
            g = generator(rng.randint(_MAX_SEED))
            with torch.no_grad():
                Z = self.module_.prior.sample(n_samples, g).double().cpu().numpy()
        if add_noise:
            g = generator(rng.randint(_MAX_SEED), self.device_)
            X = self._infer(lambda m, z: m.draw(z, g), [Z], Z.dtype, "sample")
        else:
            X = self._decode_means(Z, "sample")
        if self._table is None:
            return X
        return self._table.decode(X, rare_rng=rng if add_noise else None)


def _noise_variance(likelihood):
    """The per-feature variance (squared scale) of a likelihood's real-valued part."""
    for part in likelihood.modules():
        scale = getattr(part, "variance", None) or getattr(part, "scale2", None)
        if callable(scale):
            with torch.no_grad():
                return scale().cpu().numpy().astype(np.float64)
    return None
