"""AutoencoderTransformer: a deterministic (optionally denoising) autoencoder."""

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
    fit_code_density,
    sample_code_density,
)
from ._torch import batched


class AutoencoderTransformer(_BaseAutoencoder):
    """Autoencoder for nonlinear dimensionality reduction, a nonlinear PCA.

    An encoder network compresses each row x to a code z of ``n_components``
    numbers, and a decoder network, the encoder's mirror image, reconstructs x
    from z. Both are trained together to minimise the reconstruction loss.
    ``transform`` returns the codes and ``inverse_transform`` decodes them.

    Parameters
    ----------
    n_components : int, default=2
        Width of the latent code.
    hidden_layer_sizes : array-like of int, default=(128, 64)
        Widths of the encoder's hidden layers; the decoder uses them in reverse.
        ``()`` gives a linear autoencoder.
    activation : {"relu", "tanh", "elu", "gelu", "silu", "leaky_relu", "sigmoid"}, \
            default="relu"
        Activation after each hidden layer.
    dropout : float, default=0.0
        Dropout probability after each hidden activation during training.
    batch_size : int or "auto", default="auto"
        Rows per minibatch; larger than the data means full-batch training.
        "auto" grows with the number of training rows n: ``2.5 * sqrt(n)``
        rounded to a power of 2, within [32, 2048] (64 for 1,000 rows, 256
        for 10,000, 1024 for 100,000, 2048 from 400,000).
    max_iter : int or "auto", default="auto"
        Maximum number of epochs (passes over the data). "auto" gives a fit
        about 5,000 optimizer steps, 6.25 per row below 800 rows and
        growing as ``(n / 100,000) ** 0.25`` beyond 100,000 rows: the epochs
        that make them, within [5, 1000] (about 190 epochs for 300 rows, 330
        for 1,000, 140 for 10,000, 57 for 100,000, 20 for a million),
        instead of a fixed number of passes that is too few
        steps for small data and too slow for large. Either way
        the learning rate follows a cosine from ``learning_rate`` down to 5%
        of it over the budget's steps, and training may stop earlier
        (``tol``).
    learning_rate : float or "auto", default="auto"
        Step size of the optimizer (at the start of its cosine schedule).
        "auto" is 1e-3 up to batches of 256 rows and grows in proportion to
        the batch size beyond, up to 4e-3 (from 1024 rows): larger batches
        average out more noise, so they can take larger steps, which is what
        lets large data converge in few epochs.
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
        Optimizer; "sgd" is SGD with momentum 0.9 (no Nesterov).
    weight_decay : float, default=0.0
        L2 penalty (decoupled for "adamw").
    early_stopping : bool or "auto", default="auto"
        Hold out ``validation_fraction`` of the rows, stop when the validation
        loss stops improving, and restore the best weights (the starting
        weights are a candidate too). "auto" does so when there are at least
        50 rows: the default budget of about 5,000 steps overfits small data
        without it.
    validation_fraction : float, default=0.1
        Fraction of rows held out when early stopping.
    n_iter_no_change : int, default=10
        Epochs without enough improvement (``tol``) before stopping; with
        ``early_stopping="auto"``, at least a fifth of ``max_iter``.
    tol : float, default=1e-3
        Relative tolerance of the stopping rule. Training stops when the
        validation loss has not improved by ``tol`` times the progress made so
        far (its first value minus its best) for more than
        ``n_iter_no_change`` epochs (with ``early_stopping="auto"``, a fifth
        of ``max_iter`` at least), or, without
        validation rows, when the mean training loss of the last
        ``n_iter_no_change`` epochs is not that much below the mean of the
        ``n_iter_no_change`` before. A fit that runs all ``max_iter`` epochs
        warns (``ConvergenceWarning``) only if its loss was still falling at
        the end: its last fifth of epochs more than 1% of the progress below
        the fifth before.
    device : str or torch.device, default="auto"
        "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:N", "mps".
    n_jobs : int or None, default=None
        Number of CPU threads torch uses, during fits and inference on the
        CPU. None means 1, also inside a joblib context (a grid search's
        workers, a dask cluster), which parallelises over fits instead; -1
        all processors, as in scikit-learn; more than the processors counts
        as all of them. One thread is the default because these small
        networks gain little from more, and lose much when another process
        competes for the cores (see :ref:`performance`); torch's own setting
        is restored afterwards.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, dropout, noise and the code density.
        An int gives identical results on every fit (on the CPU).
    verbose : int, default=0
        0 prints nothing, 1 shows a progress bar, 2 prints a line per epoch.
    warm_start : bool, default=False
        Continue training the previous model on the next ``fit``; a change of
        a parameter that shapes the network (widths, activation, dropout, loss,
        noise) or of the number of features refits from scratch.
    loss : {"mse", "bce"}, default="mse"
        Squared error, or binary cross-entropy for data in [0, 1] (the decoder
        then ends with a sigmoid).
    noise : float, default=0.0
        Standard deviation of the Gaussian noise added to the inputs during
        training (a denoising autoencoder).
    density_components : int, default=10
        Components of the GaussianMixture fitted to the training codes, which
        ``sample`` draws from.
    categorical_features : "from_dtype", array-like of str or bool, or None, \
            default="from_dtype"
        For a pandas DataFrame: which columns are categorical. "from_dtype"
        takes ``category``, object and string columns (and booleans, modelled
        as Bernoulli); a list of column names or a boolean mask adds numeric
        columns to those. A DataFrame is modelled column by column (see
        Notes); numeric arrays are not affected.
    numeric_transform : {"auto", "quantile", "mixture", "standard"} or dict, \
            default="auto"
        How each numeric column of a table (a DataFrame, or an array with
        missing values) is mapped to the normal scores the network models.
        "quantile" maps it through its empirical CDF (piecewise linear
        between quantiles) and ``Phi^-1``, so any marginal, skewed, bounded,
        multimodal or with repeated values, comes out right; "mixture" uses the
        CDF of a Bayesian Gaussian mixture (TVAE's modes) instead, smoother
        between the data; "standard" only standardizes. Columns with at most
        50 distinct values, and integer columns, are discrete: sampled among
        the values fitted. A dict maps column names to these (others "auto").
        "auto" is "quantile". Samples always lie in each column's fitted range,
        with its dtype. Scores include each map's log-Jacobian, so they stay
        densities in the original units.

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
        Minus the validation loss of each epoch, with ``early_stopping=True``.
    best_validation_score_ : float or None
        Best of ``validation_scores_`` and the starting weights' score: the
        score of the weights the fit kept.
    code_density_ : sklearn.mixture.GaussianMixture
        Density of the training codes used by ``sample``.

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
    standardized and modelled as above, booleans as Bernoulli, each categorical
    column as a softmax over its levels; their terms are summed per row.
    Missing values seen in fit are modelled (a missing indicator beside a
    numeric column, a "missing" level of a categorical one) and sampled back
    at the data's rate; unknown levels at transform time encode as all zeros,
    as ``OneHotEncoder(handle_unknown="ignore")`` does, and add nothing to the
    score. ``inverse_transform`` and ``sample`` then return a DataFrame with the
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
        return {**network, "noise": self.noise}

    def _support(self):
        return ("unit_interval", "loss='bce'") if self.loss == "bce" else (None, None)

    def _fitted_extras(self, module, X, device, seed, incremental):
        Z = batched(module.encode, [X], device, torch.float32)
        density = fit_code_density(Z.astype(np.float64), self.density_components, seed)
        return {"code_density_": density}

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
            cross-entropy (``loss="bce"``); higher is more typical.
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
        TypeError
            If ``given`` is not a dict or a DataFrame, or gives a numeric
            column something other than numbers.
        ValueError
            If ``given`` names an unknown column or level, holds missing
            values, has a number of rows other than ``n_samples``, or a
            number outside the range the model was fitted on: for a table,
            beyond the column's fitted range by more than 10% of its width;
            for an array, more than 10 standard deviations from the model's
            mean of the feature.

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
        check_n_samples(n_samples)
        rng = check_sample_random_state(self, random_state)
        if given is not None:
            return self._sample_given(given, n_samples, rng, "decoder_mean", rng)
        Z = sample_code_density(self.code_density_, n_samples, rng)
        means = self._decode_means(Z, "sample")
        return means if self._table is None else self._table.decode(means, rng)
