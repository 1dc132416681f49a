"""Mixed-type tabular benchmark: skvae against ctgan's TVAE and a GaussianMixture.

Synthetic-data quality and fit time of skvae's VAETransformer and AutoencoderTransformer
fitted on raw mixed-type DataFrames. Run with ``python benchmarks/bench_tabular.py``
(about 2 minutes on 2 CPU cores), or ``python benchmarks/bench_tabular.py --quick``
for a smoke run of under a minute.
``--models`` and ``--datasets`` pick a subset, e.g. ``--models tvae gmm``.

It needs the ``benchmark`` extra plus ``palmerpenguins``, ``statsmodels``, ``ctgan`` and
``sdmetrics``. Nothing is downloaded at run time: the three datasets ship inside
installed packages.

- ``penguins`` (palmerpenguins, 344 rows): the species, island and sex as strings
  (object dtype, sex has missing values), four float measurements (two rows missing
  all four) and the integer year.
- ``anes96`` (statsmodels, 944 rows): the 1996 American National Election Study. The
  party identification and education codes become ``category`` columns with the
  labels from the dataset's notes, the expected vote becomes the bool ``vote_dole``,
  the other codes stay integers, the place's population stays float; ``logpopul``
  (a function of ``popul``) is dropped.
- ``fair`` (statsmodels, 6,366 rows): Fair's affairs survey. The marriage rating,
  religiousness and the two occupation codes become ``category`` columns with their
  labels, education years are integers, the rest are floats.

Each table is split 50/50 with a fixed seed. Every model is fitted on the training
half, as a DataFrame, and draws as many rows as the held-out half has:

- skvae ``VAETransformer`` / ``AutoencoderTransformer``: ``n_components=4``,
  ``categorical_features="from_dtype"``, batches of 64, ``max_iter=300`` (20 with
  ``--quick``), fitted on the raw DataFrame (missing values included) and sampled
  with ``sample(n, random_state=0)``. The autoencoder samples through the mixture
  density it fits on its codes.
- ctgan ``TVAE`` at its defaults (300 epochs; 10 with ``--quick``), with every
  non-numeric column discrete. TVAE cannot sample after fitting numeric columns with
  missing values (sdv-dev/CTGAN#413, #414), so these are mean-imputed and a bool "is
  missing" column is added, which puts the NaN back in the samples.
- ``GaussianMixture (5), one-hot``: a 5-component full-covariance ``GaussianMixture``
  on the one-hot encoded table (missing category levels get their own one-hot column;
  numeric columns are mean-imputed with a 0/1 missing indicator), standardized.
  Samples are decoded by inverse scaling, the arg-max of each one-hot block, an
  indicator above 0.5 for missing, and rounding of integer columns.
- ``training rows (reference)``: the training half itself, the score of real data.

TVAE's and the GMM's samples are cast back to the training dtypes; skvae's are scored
as returned, and a column whose dtype differs from the training one is reported.

The samples are scored against the held-out half:

- sdmetrics' ``QualityReport`` (single table; numeric columns "numerical", bool
  "boolean", category and object "categorical"): "shapes" is the Column Shapes
  property (KS complement for numeric columns, TV complement otherwise), "pairs" the
  Column Pair Trends property over all column pairs (correlation similarity, or
  contingency similarity with numeric columns binned), "quality" their mean, as in
  the classic report. "strong" is the Column Pair Trends score as sdmetrics now
  reports it by default: only over the pairs whose held-out |Pearson r| exceeds 0.5 or
  whose Cramer's V exceeds 0.3, the dependencies a sampler can really get wrong.
  Higher is better, 1 is a perfect match.
- A classifier two-sample test: the 5-fold cross-validated ROC AUC of a
  ``HistGradientBoostingClassifier`` (native categorical support, missing values as
  is) telling held-out rows from samples. 0.5 is indistinguishable, 1.0 trivially told
  apart. Trees catch samples off a numeric column's support one column at a time:
  fair's age, yrs_married and children are interval midpoints with 6 or 7 values,
  stored as floats, and two thirds of its affairs values are exactly 0, so a model
  with continuous outputs is told apart there however good its joint structure.
  "snapped" repeats the test after moving every numeric sample to the nearest value
  its column takes in the training half, which tests the joint structure rather than
  the support.

"fit s" is the wall-clock time of ``fit`` (for TVAE including its data transformer)
with one torch thread and one BLAS thread, after an untimed warm-up fit. skvae's fits
stop when the training loss has not improved by ``tol`` for 10 epochs, often well
before ``max_iter``. TVAE's default batch of 500 rows is larger
than the penguins and anes96 training halves, so there it takes one optimizer step
per epoch (300 in all), where skvae's batches of 64 take 3 to 8.
"""

import argparse
import time
import warnings

import numpy as np
import pandas as pd
import torch
from palmerpenguins import load_penguins
from sdmetrics.reports import QualityReport
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.preprocessing import StandardScaler
from statsmodels.datasets import anes96, fair
from threadpoolctl import threadpool_limits

from skvae import AutoencoderTransformer, VAETransformer

SEED = 0
MODELS = ("vae", "ae", "tvae", "gmm")
OCCUPATIONS = {
    1: "student",
    2: "farming, semi-skilled or unskilled",
    3: "white-collar",
    4: "teacher, nurse, artist, technician",
    5: "managerial, business",
    6: "professional, advanced degree",
}


def is_numeric(column):
    """Whether a column is modelled as a number (bool is categorical here)."""
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def as_category(codes, labels):
    """Integer codes as a ``category`` column with the given {code: label} levels."""
    return pd.Categorical(codes.astype(int).map(labels), categories=list(labels.values()))


def load_anes96():
    df = anes96.load_pandas().data.drop(columns="logpopul")
    parties = ["strong", "weak", "independent"]
    parties = [f"{p} democrat" for p in parties] + ["independent"]
    parties += [f"{p} republican" for p in ("independent", "weak", "strong")]
    grades = ["1-8 grades", "some high school", "high school", "some college", "college"]
    grades += ["master's", "PhD"]
    df["PID"] = as_category(df["PID"], dict(enumerate(parties)))
    df["educ"] = as_category(df["educ"], dict(enumerate(grades, start=1)))
    df["vote_dole"] = df.pop("vote").astype(bool)
    ints = ["TVnews", "selfLR", "ClinLR", "DoleLR", "age", "income"]
    return df.astype(dict.fromkeys(ints, "int64"))


def load_fair():
    df = fair.load_pandas().data
    ratings = ["very poor", "poor", "fair", "good", "very good"]
    df["rate_marriage"] = as_category(df["rate_marriage"], dict(enumerate(ratings, 1)))
    faiths = ["not", "mildly", "fairly", "strongly"]
    df["religious"] = as_category(df["religious"], dict(enumerate(faiths, start=1)))
    df["occupation"] = as_category(df["occupation"], OCCUPATIONS)
    df["occupation_husb"] = as_category(df["occupation_husb"], OCCUPATIONS)
    return df.astype({"educ": "int64"})


DATASETS = {"penguins": load_penguins, "anes96": load_anes96, "fair": load_fair}


def timed(fit, X):
    """Fit on X and return the fitted model and the wall-clock seconds it took."""
    start = time.perf_counter()
    model = fit(X)
    return model, time.perf_counter() - start


def cast_like(df, dtypes):
    """``df`` with each column cast to ``dtypes``, integer columns rounded first."""
    df = df.copy()
    for name, dtype in dtypes.items():
        if pd.api.types.is_integer_dtype(dtype):
            df[name] = np.rint(df[name].astype(float))
        df[name] = df[name].astype(dtype)
    return df


class OneHotTable:
    """A DataFrame <-> float matrix codec: one-hot categories, numbers with indicators.

    Numeric columns are mean-imputed, with a 0/1 missing indicator where the fitted
    column has missing values. Other columns get one 0/1 column per level, plus one
    for missing values where the fitted column has them.
    """

    def fit(self, df):
        self.dtypes_ = df.dtypes
        self.columns_ = {}  # name -> ("numeric", mean, has_missing) or ("levels", ...)
        for name, column in df.items():
            missing = bool(column.isna().any())
            if is_numeric(column):
                self.columns_[name] = ("numeric", column.mean(), missing)
            else:
                levels = list(column.dropna().unique())
                self.columns_[name] = ("levels", levels, missing)
        return self

    def transform(self, df):
        blocks = []
        for name, (kind, value, missing) in self.columns_.items():
            column = df[name]
            if kind == "numeric":
                blocks.append(column.fillna(value).to_numpy(float))
            else:
                blocks += [(column == level).to_numpy(float) for level in value]
            if missing:
                blocks.append(column.isna().to_numpy(float))
        return np.column_stack(blocks)

    def inverse_transform(self, X):
        columns, j = {}, 0
        for name, (kind, value, missing) in self.columns_.items():
            if kind == "numeric":
                values, j = X[:, j].astype(object), j + 1
                if missing:
                    values[X[:, j] > 0.5] = np.nan
                    j += 1
            else:
                block = X[:, j : j + len(value) + missing]
                levels = np.array([*value, np.nan][: block.shape[1]], dtype=object)
                values, j = levels[block.argmax(1)], j + block.shape[1]
            columns[name] = values
        return cast_like(pd.DataFrame(columns), self.dtypes_)


class MixtureSynthesizer:
    """A GaussianMixture on the standardized one-hot table, decoded back to a frame."""

    def __init__(self, n_components=5):
        self.n_components = n_components

    def fit(self, df):
        self.codec_ = OneHotTable().fit(df)
        X = self.codec_.transform(df)
        self.scaler_ = StandardScaler().fit(X)
        self.gmm_ = GaussianMixture(
            self.n_components, covariance_type="full", random_state=SEED
        ).fit(self.scaler_.transform(X))
        return self

    def sample(self, n_samples):
        X = self.scaler_.inverse_transform(self.gmm_.sample(n_samples)[0])
        return self.codec_.inverse_transform(X)


class TVAESynthesizer:
    """ctgan's TVAE, with numeric missing values as bool indicator columns."""

    def __init__(self, epochs=300):
        self.epochs = epochs

    def fit(self, df):
        from ctgan import TVAE  # imported here: it is slow to import

        self.dtypes_ = df.dtypes
        numeric = [n for n, c in df.items() if is_numeric(c)]
        self.means_ = df[numeric].mean()[df[numeric].isna().any()].to_dict()
        df = df.assign(**{f"{n}__missing": df[n].isna() for n in self.means_})
        df = df.fillna(self.means_)
        self.tvae_ = TVAE(epochs=self.epochs)
        self.tvae_.set_random_state(SEED)
        self.tvae_.fit(df, discrete_columns=[n for n, c in df.items() if not is_numeric(c)])
        return self

    def sample(self, n_samples):
        df = self.tvae_.sample(n_samples)
        for name in self.means_:
            df.loc[df.pop(f"{name}__missing").astype(bool), name] = np.nan
        return cast_like(df, self.dtypes_)


class SkvaeSynthesizer:
    """An skvae estimator fitted on the raw DataFrame, sampled with a fixed seed."""

    def __init__(self, estimator):
        self.estimator = estimator

    def fit(self, df):
        self.estimator.fit(df)
        return self

    def sample(self, n_samples):
        return self.estimator.sample(n_samples, random_state=SEED)


def make_synthesizer(name, quick):
    if name in ("vae", "ae"):
        Estimator = VAETransformer if name == "vae" else AutoencoderTransformer
        return SkvaeSynthesizer(
            Estimator(
                n_components=4,
                categorical_features="from_dtype",
                batch_size=64,
                max_iter=20 if quick else 300,
                device="cpu",
                random_state=SEED,
            )
        )
    if name == "tvae":
        return TVAESynthesizer(epochs=10 if quick else 300)
    return MixtureSynthesizer(n_components=5)


LABELS = {
    "vae": "skvae VAETransformer",
    "ae": "skvae AutoencoderTransformer",
    "tvae": "ctgan TVAE",
    "gmm": "GaussianMixture (5), one-hot",
}


def sdtype(column):
    if pd.api.types.is_bool_dtype(column):
        return "boolean"
    return "numerical" if is_numeric(column) else "categorical"


def quality(real, fake):
    """sdmetrics QualityReport: overall, column shapes, pair trends, strong pair trends.

    The overall score and "pairs" average all column pairs (thresholds set to 0, the
    classic report); "strong" is sdmetrics' default, which averages only the pairs
    whose real |Pearson r| exceeds 0.5 or whose Cramer's V exceeds 0.3.
    """
    columns = {name: {"sdtype": sdtype(column)} for name, column in real.items()}
    metadata = {"tables": {"data": {"columns": columns}}}
    scores = {}
    for strong in (False, True):
        report = QualityReport()
        if not strong:
            report.real_correlation_threshold = report.real_association_threshold = 0
        report.generate({"data": real}, {"data": fake}, metadata, verbose=False)
        scores[strong] = report.get_properties().set_index("Property")["Score"]
        scores[strong]["overall"] = report.get_score()
    shapes, pairs, overall = scores[False][
        ["Column Shapes", "Column Pair Trends", "overall"]
    ]
    return overall, shapes, pairs, scores[True]["Column Pair Trends"]


def two_sample_auc(real, fake):
    """5-fold cross-validated ROC AUC of a classifier telling real rows from samples."""
    X = pd.concat([real, fake], ignore_index=True)
    X = X.astype({n: "category" for n, c in X.items() if not is_numeric(c)})
    y = np.r_[np.ones(len(real)), np.zeros(len(fake))]
    clf = HistGradientBoostingClassifier(
        categorical_features="from_dtype", max_iter=100, random_state=SEED
    )
    cv = StratifiedKFold(5, shuffle=True, random_state=SEED)
    return cross_val_score(clf, X, y, cv=cv, scoring="roc_auc").mean()


def snap(fake, train):
    """``fake`` with every numeric value moved to the nearest value of its column in
    ``train`` (missing values stay missing)."""
    fake = fake.copy()
    for name, column in train.items():
        if is_numeric(column):
            values = np.unique(column.dropna().to_numpy(float))
            x = fake[name].to_numpy(float)
            right = np.clip(np.searchsorted(values, x), 1, len(values) - 1)
            left = right - 1
            nearest = np.where(x - values[left] <= values[right] - x, left, right)
            fake[name] = np.where(np.isnan(x), np.nan, values[nearest]).astype(column.dtype)
    return fake


def benchmark(name, models, quick):
    df = DATASETS[name]()
    train, test = train_test_split(df, test_size=0.5, random_state=SEED)
    train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    kinds = pd.Series([sdtype(c) for _, c in df.items()]).value_counts()
    print(
        f"\n=== {name}: {len(train)} training / {len(test)} held-out rows, {df.shape[1]}"
        f" columns ({', '.join(f'{n} {k}' for k, n in kinds.items())}),"
        f" {df.isna().to_numpy().sum()} missing values ==="
    )
    print(
        f"{'model':<32}{'fit s':>8}{'quality':>9}{'shapes':>8}{'pairs':>8}{'strong':>8}"
        f"{'C2ST AUC':>10}{'snapped':>9}"
    )
    rows = [("training rows (reference)", train, 0.0)]
    notes = []
    for model in models:
        synthesizer, seconds = timed(make_synthesizer(model, quick).fit, train)
        fake = synthesizer.sample(len(test))
        if list(fake.columns) != list(train.columns):
            raise ValueError(f"{LABELS[model]} returned columns {list(fake.columns)}")
        changed = [
            f"{n} {fake[n].dtype} (was {c.dtype})"
            for n, c in train.items()
            if fake[n].dtype != c.dtype
        ]
        if changed:
            notes.append(f"{LABELS[model]} changed dtypes: {', '.join(changed)}")
        rows.append((LABELS[model], fake, seconds))
    for label, fake, seconds in rows:
        scores = "".join(f"{s:>{w}.3f}" for s, w in zip(quality(test, fake), (9, 8, 8, 8)))
        auc = two_sample_auc(test, fake)
        auc_snapped = two_sample_auc(test, snap(fake, train))
        print(f"{label:<32}{seconds:>8.1f}{scores}{auc:>10.3f}{auc_snapped:>9.3f}")
    for note in notes:
        print(note)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument(
        "--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS)
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    # sdmetrics' contingency tables call groupby without observed=, which pandas flags.
    warnings.filterwarnings("ignore", category=FutureWarning, module="sdmetrics")
    # The networks are small: one thread is faster, and far faster on a busy machine.
    # NumPy's BLAS (the GaussianMixture) gets one thread too, so every fit s is 1 core.
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        # torch's first fit in a process pays about a second of set-up: not timed.
        VAETransformer(max_iter=2, device="cpu").fit(
            np.random.RandomState(SEED).rand(64, 3)
        )
        for name in args.datasets:
            benchmark(name, args.models, args.quick)


if __name__ == "__main__":
    main()
