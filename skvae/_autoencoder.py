"""AutoencoderTransformer: a deterministic (optionally denoising) autoencoder."""

import math
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from ._base import (
    Interval,
    StrOptions,
    _BaseAutoencoder,
    check_n_samples,
    check_sample_random_state,
    pca_start,
    sample_code_density,
    shared_parameter_docs,
)
from ._torch import batched
from ._training import AUTO_AE_FULL_ROWS, AUTO_AE_ROWS, AUTO_AE_STEPS


@shared_parameter_docs
class AutoencoderTransformer(_BaseAutoencoder):
    """Autoencoder for nonlinear dimensionality reduction, a nonlinear PCA.

    An encoder network compresses each row x to a code z of ``n_components``
    numbers, and a decoder network, the encoder's mirror image, reconstructs x
    from z. Both are trained together to minimise the reconstruction loss.
    ``transform`` returns the codes and ``inverse_transform`` decodes them.

    With ``loss="mse"`` on an array of up to 20,000 training rows, the
    network may start at PCA's solution (linear paths beside its perceptrons
    hold it): with validation rows (``early_stopping``) a short trial from PCA
    and one from no start decide, and PCA's start is kept where its trial ends
    more than 1% lower; without, it starts at PCA where the rows support as
    many axes as codes (see the user guide's "The autoencoder's PCA start").

    Parameters
    ----------
    n_components : int, default=2
        Width of the latent code.
    hidden_layer_sizes : array-like of int, default=(128, 64)
        Widths of the encoder's hidden layers; the decoder uses them in reverse.
        ``()`` gives a linear autoencoder.
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
        Seeds initialisation, shuffling, dropout, noise and the code density.
        An int gives identical results on every fit (on the CPU).
    %(verbose)s
    %(warm_start)s
    loss : {"mse", "bce"}, default="mse"
        Squared error, or binary cross-entropy for data in [0, 1] (the decoder
        then ends with a sigmoid).
    noise : float, default=0.0
        Standard deviation of the Gaussian noise added to the inputs during
        training (a denoising autoencoder).
    density_components : int, default=10
        Components of the GaussianMixture fitted to the training codes, which
        ``sample`` draws from.
    %(categorical_features)s
    %(numeric_transform)s

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network, with ``encoder`` and ``decoder``.
    device_ : torch.device
        The device the network lives on.
    n_components_ : int
        Width of the latent code.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when X has string column names.
    n_iter_ : int
        Number of epochs trained.
    loss_curve_ : list of float
        Mean training loss of each epoch.
    best_loss_ : float
        Lowest value in ``loss_curve_``.
    validation_scores_ : list of float or None
        Minus the validation loss of each epoch, with validation rows
        (``early_stopping=True``, or "auto" from 50 rows); a warm start's
        fits add theirs, as to ``loss_curve_``, where the fits before had
        validation rows too (each fit draws its own).
    best_validation_score_ : float or None
        Best of the last fit's validation scores and its starting weights'
        score: the score of the weights the fit kept.
    code_density_ : sklearn.mixture.GaussianMixture
        Density of the training codes used by ``sample``. Each ``partial_fit``
        updates it with the batch's codes, so that it stands for the rows seen
        in the last ten batches or so, not the last batch alone.

    See Also
    --------
    VAETransformer : A variational autoencoder, with a latent density.
    sklearn.decomposition.PCA : The linear counterpart.

    Notes
    -----
    Training minimises the mean over rows of the reconstruction loss, summed
    over features: ``||x - g(f(x + noise))||^2`` for ``loss="mse"``, the binary
    cross-entropy between x and ``sigmoid(g(f(x)))`` for ``loss="bce"``, where
    f is the encoder and g the decoder. ``score_samples`` returns minus that
    loss per row (no noise), so low scores flag anomalies. ``sample`` draws codes
    from a Gaussian mixture fitted to the training codes and decodes them
    (ex-post density estimation).

    Training runs in float32; inference runs at the precision of its input, so
    float64 results do not depend on how rows are batched.

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
    guide). ``inverse_transform`` and ``sample`` then return a DataFrame with the
    fitted columns, order and dtypes.

    References
    ----------
    .. [1] G. E. Hinton and R. R. Salakhutdinov, "Reducing the dimensionality of
       data with neural networks", Science 313, 2006.
    .. [2] P. Ghosh et al., "From variational to deterministic autoencoders",
       ICLR 2020.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skvae import AutoencoderTransformer
    >>> X, _ = load_digits(return_X_y=True)
    >>> X = X[:300] / 16  # 300 images, pixels in [0, 1]
    >>> ae = AutoencoderTransformer(n_components=8, random_state=0)
    >>> Z = ae.fit_transform(X)
    >>> Z.shape
    (300, 8)
    >>> ae.inverse_transform(Z).shape
    (300, 64)
    """

    #: Beyond ``_START_TRIAL_ROWS`` training rows, where no trials run, no
    #: PCA start: kept untried, it held
    #: 50,000 rows of Hastie's independent features at an error of 0.685
    #: (0.403 from scratch), and a million manifold rows ended 1.1% worse from
    #: it (bench_convergence: 0.01966 against 0.01944) though trials of a
    #: tenth and of a quarter of the epochs preferred it by 6%. Up to there,
    #: without validation rows (below 50 rows, ``early_stopping=False``,
    #: ``partial_fit``), it is kept untried: from scratch, arrays in their own
    #: units ended far above PCA's held-out error (50/50 halves: statsmodels'
    #: ccard, 36 rows, 39 times; macrodata, 101 rows with
    #: ``early_stopping=False``, 15 times and streamed 1,400 times;
    #: load_breast_cancer's 40 rows 2,100 times), and from PCA at 0.24-1.5
    #: times it (a raw stream of 284 rows 12 times, 12,585 from scratch);
    #: standardized data moved either way (0.9-1.4 times PCA's).
    _linear_start_beyond_trial_rows = False
    _untried_start_may_leave_codes_unused = False
    #: Where PCA's trial beat the other's by less than 1% of the error (9,000
    #: rows of load_digits and their shifts: 0.7%), the fit from PCA ended
    #: 3.4% worse: PCA's start must win by more.
    _start_margin = 0.01

    _parameter_constraints = {
        **_BaseAutoencoder._parameter_constraints,
        "loss": [StrOptions({"mse", "bce"})],
        "noise": [Interval(Real, 0, None, closed="left")],
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
        loss="mse",
        noise=0.0,
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
        self.loss = loss
        self.noise = noise
        self.density_components = density_components

    def _describe(self, n_features, hidden, table):
        if table is not None:
            likelihood = table.likelihood("squared_error", {})
        elif self.loss == "bce":
            likelihood = {"name": "bernoulli", "n_features": n_features}
        else:
            likelihood = {"name": "squared_error", "n_features": n_features}
        network = self._network("autoencoder", n_features, hidden, likelihood)
        if table is None and self.loss == "mse":  # values in their own units
            network["input_unit"] = True
        return {**network, "noise": self.noise}

    def _support(self, fitted=False):
        bce = self.loss == "bce"
        if fitted:
            likelihood = self.module_.description["likelihood"]["name"]
            bce = self._table is None and likelihood == "bernoulli"
        return ("unit_interval", "loss='bce'") if bce else (None, None)

    def _linear_start(self, X, table, seed, like=None):
        # Real-valued arrays with the squared error: PCA, which the network
        # nests (linear paths beside its MLPs), so training only adds to it.
        # A sigmoid output (loss="bce") does not nest it.
        if table is None and self.loss == "mse":
            return pca_start(X, self.n_components, seed)
        return None

    def _min_steps(self, n_rows, table, X_val):
        # Twice the budget's steps from AUTO_AE_ROWS to AUTO_AE_FULL_ROWS rows,
        # fading beyond (see AUTO_AE_STEPS).
        share = min(n_rows / AUTO_AE_ROWS, 1.0, (AUTO_AE_FULL_ROWS / max(n_rows, 1)) ** 2)
        return math.ceil(AUTO_AE_STEPS * share)

    def _fitted_extras(self, module, X, device, seed, incremental):
        Z = batched(module.encode, [X], device, torch.float32)
        return self._code_density_of(Z.astype(np.float64), X.shape[0], seed, incremental)

    def score_samples(self, X):
        """Minus the reconstruction loss of each row, summed over features.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            ``-||x - x_hat||^2`` (``loss="mse"``) or minus the binary
            cross-entropy (``loss="bce"``); higher is more typical. For a
            table, the sum over its columns: minus the squared error of the
            numeric columns' normal scores and minus the cross-entropy of the
            booleans and categories, where a level that fit did not see
            costs minus the log of the probability fit estimated for one
            (see :meth:`VAETransformer.score_samples`).
        """
        return super().score_samples(X)

    def sample(self, n_samples=1, random_state=None, *, given=None):
        """Generate rows by decoding codes drawn from the code density.

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
            names seen in fit) for an array. The given entries hold their
            values exactly and the others are decoded from codes drawn from
            the code density conditioned on them (see Notes).

        Returns
        -------
        X : ndarray of shape (n_samples, n_features) or DataFrame
            Generated rows (float64); for a model of a mixed-type table, a
            DataFrame with its columns and dtypes, categories drawn from the
            decoder's probabilities.

        Raises
        ------
        %(sample_raises)s

        Notes
        -----
        The code density is the autoencoder's prior p(z), and its loss the
        likelihood p(x | z): a Gaussian around the decoder's output with
        variance 1/2 (``loss="mse"``; in normal scores for a table) or
        a Bernoulli (``loss="bce"``). A conditional draw resamples, for each
        row, one of 200 candidate codes by importance weight ``p(x_given | z)
        p(z) / q(z)``, where q mixes a Gaussian around the code of the partial
        row (its free entries filled in by the model's own reconstruction)
        with p(z) itself, and decodes it. The cost is fixed, whatever the
        condition's probability (no rejection loop).
        """
        check_is_fitted(self)
        check_n_samples(self, n_samples, given)
        rng = check_sample_random_state(self, random_state)
        if given is not None:
            return self._sample_given(given, n_samples, rng, "decoder_mean", rng)
        Z = sample_code_density(self.code_density_, n_samples, rng)
        means = self._decode_means(Z, "sample")
        return means if self._table is None else self._table.decode(means, rng)
