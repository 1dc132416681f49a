"""Conditional sampling and imputation from one VAE, on real mixed-type tables.

Run with ``python benchmarks/bench_impute.py`` (a few minutes on 2 CPU cores), or
``--quick`` for a smoke run (few epochs, one repeat). Needs ``palmerpenguins``,
``statsmodels`` and ``vega_datasets``; nothing is downloaded: the tables ship inside
those packages (``penguins``: 344 rows, 8 columns, strings with missing values;
``anes96``: 944 rows, 10 columns, two categories, a bool; ``fair``: 6,366 rows, 9
columns, four categories; ``cars``: 406 rows, 8 columns, a string, missing values;
``weather``: 1,461 rows, 7 columns, a string; prepared as in ``bench_tabular.py``).
The imputation part also takes bench_tabular.py's two other tables, ``actg175``
(2,139 rows, 26 columns, 14 bools of which one is constant, two categories, missing
values) and ``gbsg2`` (686 rows, 10 columns, two strings, a category, a bool), when
``lifelines`` (which ships them) is installed: it needs pandas<3, so they are in
the run in ``.venv-tabular`` (see ``bench_tabular.py``) and skipped, with a note,
elsewhere.

Conditional sampling. Each of penguins, anes96 and cars is split 50/50 (fixed seed);
a ``VAETransformer`` with the user guide's synthetic-table settings
(``n_components=8, prior="mixture", beta=0.3, sample_from="posterior"``, printed with
the table) is fitted on the training half. For one categorical condition (a level)
and one numeric condition (the held-out rows whose value is in the column's top
third, conditioned on those exact values, a DataFrame of conditions with 5 samples
per row), ``sample(n, given=...)`` is compared with the held-out rows that meet the
condition: for every other column, the difference of the means (numeric) or of each
level's share (categorical, booleans and "missing" included; the largest over
levels) in standard errors of the difference, counting both samples (Welch's
standard error for a mean, the pooled two-proportion one for a share). A column
passes when it is within 3 standard errors; the bar is at least 80% of the columns.
"real" is the same share when the training half's own rows that meet the condition
stand in for the samples (the ceiling: real rows against real rows), "real n" when
n of them are drawn with replacement, as many as the samples (what a model that had
learned its training rows exactly would score). "z cond" and "z free" are the mean
over columns of those differences for the conditional samples and for as many
unconditional ``sample(n)`` rows: conditioning must bring the samples closer to the
conditional rows than the model's marginal is. "model" is the share of columns
within 3 standard errors of the model's own conditional law, estimated by
rejection: 20 times the table's rows drawn with ``sample`` and filtered by the
condition (the numeric one as "in the top third"), so it separates the sampler's
accuracy from the model's; "reject s" is the time that rejection takes to give as
many rows as the conditional draw ("s").

Imputation. 20% of each table's cells are masked at random (missing completely at
random, seeds 0 and 1); the cells that held a value are scored. RMSE is
per numeric column in units of the column's standard deviation, averaged over the
numeric columns; accuracy is over the masked categorical (and bool) cells. The
contenders get the table as they need it: skvae's ``VAEImputer`` (defaults,
``random_state=0``; and with ``n_estimators=1``, one model instead of the
default's three) the raw DataFrame; scikit-learn's imputers a standardized
numeric matrix with one one-hot block per categorical column, its first level
dropped (a masked categorical cell is NaN over its block; the first level scores
one minus the block's sum, and the arg-max is the predicted level). With the full
block, ``IterativeImputer`` predicted each level's column from its sibling
columns, which are missing on the same rows and start at their means: every
imputed cell then fell back to one level (``BayesianRidge``'s accuracy equalled
the most frequent level's, ExtraTrees' was 0.14-0.17 on three tables), and the
categorical cells told the numeric ones nothing. The contenders:
``IterativeImputer`` with ``BayesianRidge`` (its default) and with
``ExtraTreesRegressor(n_estimators=20)``, ``KNNImputer(n_neighbors=5)`` and
``SimpleImputer`` (the mean of a numeric column, the most frequent level of a
categorical one). "s" is the wall-clock time of fit + transform with one torch
thread and one BLAS thread.

``--part arrays`` imputes scikit-learn's numeric arrays (iris, wine, diabetes,
breast cancer, digits), each standardized on all its rows, with 20% of the cells
masked at random (seeds 0 and 1), and prints the RMSE over the masked cells in
standard deviations: ``VAEImputer`` with its defaults and with
``early_stopping="auto"`` (its default before it trained on every row), against
the same four scikit-learn imputers on the array as it is.

``--part sdv``, run in the pandas<3 environment of ``bench_tabular.py``
(``.venv-tabular``), scores sdv's synthesizers (300 epochs) the same way: CTGAN,
whose conditional vector conditions on a category natively, and TVAE, for which sdv
conditions by rejection (``sample_from_conditions`` with 100 tries per batch,
``sample_remaining_columns`` with 10: every distinct value of a numeric condition is
a rejection loop of its own); a numeric condition is by rejection for both, and the
rows sdv returns are counted.
"""

import argparse
import time
import warnings

import numpy as np
import pandas as pd
import torch
from real_tables import TABLES, is_numeric
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    load_iris,
    load_wine,
)
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from skvae import VAEImputer, VAETransformer

SEED = 0
#: The tables of the imputation part: all of bench_tabular.py's (actg175 and
#: gbsg2 only where lifelines is installed).
DATASETS = TABLES
#: (categorical column, level) and numeric column of the conditional-sampling test.
CONDITIONS = {
    "penguins": (("species", "Gentoo"), "body_mass_g"),
    "anes96": (("PID", "strong republican"), "age"),
    "cars": (("Origin", "Japan"), "Weight_in_lbs"),
}
#: The model of the conditional part: the user guide's synthetic-table settings.
CONDITIONAL_SETTINGS = dict(
    n_components=8, prior="mixture", beta=0.3, sample_from="posterior"
)


# ------------------------------------------------------------ conditional sampling
def _shares(column):
    return (
        column.astype(object)
        .where(column.notna(), "<missing>")
        .value_counts(normalize=True)
    )


def deviation(real, fake):
    """|difference| of a column's mean (or largest level share) in standard errors.

    Both samples are finite, so both count: a mean's difference is over Welch's
    standard error, sqrt(s1^2/n1 + s2^2/n2); a level share's is the two-proportion
    z statistic, whose standard error is that of the pooled share,
    sqrt(p(1 - p)(1/n1 + 1/n2)) (the unpooled one is 0 for a level that one sample
    lacks, which made 10 stray rows in 1,000 count 8 standard errors against 0 in 60).
    """
    if is_numeric(real) and is_numeric(fake):
        r, f = real.dropna().astype(float), fake.dropna().astype(float)
        se = np.sqrt(r.var() / len(r) + f.var() / len(f))
        return abs(r.mean() - f.mean()) / max(se, 1e-12)
    p, q = _shares(real), _shares(fake)
    levels = p.index.union(q.index)
    p, q = p.reindex(levels, fill_value=0.0), q.reindex(levels, fill_value=0.0)
    pooled = (p * len(real) + q * len(fake)) / (len(real) + len(fake))
    var = pooled * (1 - pooled) * (1 / len(real) + 1 / len(fake))
    return float((np.abs(p - q) / np.sqrt(var.clip(lower=1e-12))).max())


def share_within(real, fake, columns):
    """Share of ``columns`` within 3 standard errors, and their mean deviation."""
    z = np.array([deviation(real[c], fake[c]) for c in columns])
    return np.mean(z <= 3), z.mean()


def conditional(name, quick):
    df = DATASETS[name]()
    train, test = train_test_split(df, test_size=0.5, random_state=SEED)
    vae = VAETransformer(**CONDITIONAL_SETTINGS, random_state=SEED)
    if quick:
        vae.set_params(max_iter=20)
    vae.fit(train)
    (column, level), numeric = CONDITIONS[name]
    threshold = test[numeric].quantile(2 / 3)
    top = test[test[numeric] >= threshold]
    given = pd.DataFrame({numeric: np.repeat(top[numeric].to_numpy(), 5)})
    cases = [
        (f"{column} = {level}", column, test[test[column] == level], {column: level}, 1000),
        (f"{numeric} in top third", numeric, top, given, len(given)),
    ]
    # The real training half's rows that meet each condition: what a model that
    # learned its training rows exactly would give.
    learned = [train[train[column] == level], train[train[numeric] >= threshold]]
    start = time.perf_counter()
    joint = vae.sample(20 * len(df), random_state=SEED + 1)
    joint_seconds = time.perf_counter() - start
    events = [joint[column] == level, joint[numeric] >= threshold]
    rng = np.random.RandomState(SEED)
    out = []
    for (label, conditioned, real, given, n), event, known in zip(cases, events, learned):
        others = [c for c in df.columns if c != conditioned]
        start = time.perf_counter()
        fake = vae.sample(n, random_state=SEED, given=given)
        seconds = time.perf_counter() - start
        free = vae.sample(n, random_state=SEED)
        share, cond = share_within(real, fake, others)
        _, marg = share_within(real, free, others)
        model, _ = share_within(joint[event], fake, others)
        ceiling, _ = share_within(real, known, others)
        resampled = known.iloc[rng.randint(len(known), size=n)]
        ceiling_n, _ = share_within(real, resampled, others)
        # Rejection from the model's own draws: the seconds that n accepted rows take.
        rejection = joint_seconds * n / max(event.sum(), 1)
        out.append(
            (name, label, len(real), share, ceiling, ceiling_n, cond, marg, model)
            + (seconds, rejection)
        )
    return out


def sdv_conditional(name, kind, quick):
    """SDV's conditional sampling: CTGAN's conditional vector, TVAE's rejection."""
    from sdv.metadata import Metadata
    from sdv.sampling import Condition
    from sdv.single_table import CTGANSynthesizer, TVAESynthesizer

    df = DATASETS[name]()
    train, test = train_test_split(df, test_size=0.5, random_state=SEED)
    columns = {
        n: {"sdtype": "numerical" if is_numeric(c) else "categorical"}
        for n, c in df.items()
    }
    metadata = Metadata.load_from_dict({"tables": {"data": {"columns": columns}}})
    Synthesizer = {"CTGAN": CTGANSynthesizer, "TVAE": TVAESynthesizer}[kind]
    synthesizer = Synthesizer(metadata, epochs=5 if quick else 300)
    np.random.seed(SEED)  # noqa: NPY002  (sdv draws from the global generators)
    torch.manual_seed(SEED)
    categories = {n: object for n, c in train.items() if c.dtype == "category"}
    synthesizer.fit({"data": train.astype(categories)})
    (column, level), numeric = CONDITIONS[name]
    top = test[test[numeric] >= test[numeric].quantile(2 / 3)]
    cases = [
        (
            f"{column} = {level}",
            test[test[column] == level],
            column,
            lambda: synthesizer.sample_from_conditions(
                [Condition({column: level}, num_rows=1000)], max_tries_per_batch=100
            ),
        ),
        (
            f"{numeric} in top third",
            top,
            numeric,
            lambda: synthesizer.sample_remaining_columns(
                pd.DataFrame({numeric: np.repeat(top[numeric].to_numpy(), 5)}),
                # Each distinct value is its own rejection loop: at 100 tries a
                # batch, cars' 68 weights took an estimated 54 minutes; the rows it
                # returns within 10 tries are reported with their count.
                max_tries_per_batch=10,
            ),
        ),
    ]
    out = []
    for label, real, conditioned, draw in cases:
        start = time.perf_counter()
        try:
            fake = draw()
            fake = fake["data"] if isinstance(fake, dict) else fake
        except Exception as exc:  # noqa: BLE001  (sdv gives up on rare conditions)
            out.append((name, label, kind, f"failed: {type(exc).__name__}"))
            continue
        seconds = time.perf_counter() - start
        fake = fake.reset_index(drop=True).astype(
            {n: c.dtype for n, c in df.items() if c.dtype == "category"}
        )
        others = [c for c in df.columns if c != conditioned]
        cond = np.array([deviation(real[c], fake[c]) for c in others])
        out.append(
            (
                name,
                label,
                kind,
                f"{np.mean(cond <= 3):.0%}  z {cond.mean():.2f}  "
                f"{len(fake)} rows  {seconds:.2f} s",
            )
        )
    return out


# ------------------------------------------------------------------- imputation
def mask_cells(df, rng, share=0.2):
    mask = rng.random_sample(df.shape) < share
    return df.mask(mask), mask & df.notna().to_numpy()


class OneHot:
    """A table as a standardized numeric matrix with a one-hot block per category.

    Each block drops its first level (``OneHotEncoder(drop="first")``): the
    other levels' columns do not determine one another, so an imputer cannot
    predict a missing level from its siblings' imputed values.
    """

    def __init__(self, df):
        self.columns = []
        for name in df.columns:
            column = df[name]
            if is_numeric(column):
                values = column.astype(float)
                self.columns.append((name, None, values.mean(), values.std()))
            else:
                levels = sorted(column.dropna().unique().tolist(), key=str)
                self.columns.append((name, levels, 0.0, 1.0))

    def encode(self, df):
        blocks = []
        for name, levels, mean, std in self.columns:
            column = df[name]
            if levels is None:
                blocks.append(((column.astype(float) - mean) / std).to_numpy()[:, None])
                continue
            block = np.zeros((len(column), len(levels) - 1))  # none for a constant
            for k, v in enumerate(levels[1:]):
                block[:, k] = (column == v).to_numpy(dtype=float)
            block[column.isna().to_numpy()] = np.nan
            blocks.append(block)
        return np.hstack(blocks)

    def decode(self, M):
        out, j = {}, 0
        for name, levels, mean, std in self.columns:
            if levels is None:
                out[name], j = M[:, j] * std + mean, j + 1
            else:
                rest = M[:, j : j + len(levels) - 1]
                scores = np.column_stack([1.0 - rest.sum(axis=1), rest])
                out[name] = np.asarray(levels, dtype=object)[scores.argmax(axis=1)]
                j += len(levels) - 1
        return pd.DataFrame(out)


def sklearn_imputer(make):
    def impute(df):
        onehot = OneHot(df)
        return onehot.decode(make().fit_transform(onehot.encode(df)))

    return impute


def vae_imputer(quick, **params):
    def impute(df):
        imputer = VAEImputer(random_state=SEED, **params)
        if quick:
            imputer.set_params(max_iter=20)
        return imputer.fit_transform(df)

    return impute


def imputers(quick):
    return {
        "VAEImputer": vae_imputer(quick),
        "VAEImputer (1 model)": vae_imputer(quick, n_estimators=1),
        "Iterative (BayesianRidge)": sklearn_imputer(
            lambda: IterativeImputer(random_state=SEED)
        ),
        "Iterative (ExtraTrees)": sklearn_imputer(
            lambda: IterativeImputer(
                ExtraTreesRegressor(n_estimators=20, random_state=SEED),
                random_state=SEED,
            )
        ),
        "KNNImputer": sklearn_imputer(lambda: KNNImputer(n_neighbors=5)),
        "SimpleImputer": sklearn_imputer(_simple),
    }


class _simple:
    """Mean of numeric columns, most frequent level of categorical ones (one-hot)."""

    def fit_transform(self, X):
        return SimpleImputer().fit_transform(X)  # a block's mean: arg-max = mode


def score_imputation(df, imputed, mask):
    rmse, hits, total = [], 0, 0
    for j, name in enumerate(df.columns):
        rows = mask[:, j]
        if not rows.any():
            continue
        truth, guess = df[name].to_numpy()[rows], imputed[name].to_numpy()[rows]
        if is_numeric(df[name]):
            std = df[name].astype(float).std()
            error = truth.astype(float) - guess.astype(float)
            rmse.append(np.sqrt(np.mean(error**2)) / std)
        else:
            hits += int(np.sum(truth.astype(object) == guess.astype(object)))
            total += int(rows.sum())
    return float(np.mean(rmse)), hits / max(total, 1)


#: Numeric arrays of scikit-learn for ``--part arrays``, standardized on all rows.
ARRAYS = {
    "iris": load_iris,
    "wine": load_wine,
    "diabetes": load_diabetes,
    "breast_cancer": load_breast_cancer,
    "digits": load_digits,
}


def array_imputers(quick):
    """The imputers of a numeric array: skvae's with and without early stopping."""
    return {
        "VAEImputer": vae_imputer(quick),
        'VAEImputer (early_stopping="auto")': vae_imputer(quick, early_stopping="auto"),
        "Iterative (BayesianRidge)": IterativeImputer(random_state=SEED).fit_transform,
        "Iterative (ExtraTrees)": IterativeImputer(
            ExtraTreesRegressor(n_estimators=20, random_state=SEED), random_state=SEED
        ).fit_transform,
        "KNNImputer": KNNImputer(n_neighbors=5).fit_transform,
        "SimpleImputer": SimpleImputer().fit_transform,
    }


def array_imputation(name, quick, repeats):
    """RMSE over the masked cells of a standardized array, and seconds, per imputer."""
    X = ARRAYS[name]().data
    X = (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
    results = {}
    for r in range(repeats):
        mask = np.random.RandomState(SEED + r).random_sample(X.shape) < 0.2
        for label, impute in array_imputers(quick).items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                start = time.perf_counter()
                imputed = np.asarray(impute(np.where(mask, np.nan, X)), dtype=float)
                seconds = time.perf_counter() - start
            rmse = np.sqrt(np.mean((imputed[mask] - X[mask]) ** 2))
            results.setdefault(label, []).append((rmse, seconds))
    return {label: np.mean(values, axis=0) for label, values in results.items()}


def imputation(name, quick, repeats):
    df = DATASETS[name]().reset_index(drop=True)
    results = {}
    for r in range(repeats):
        holed, mask = mask_cells(df, np.random.RandomState(SEED + r))
        for label, impute in imputers(quick).items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                start = time.perf_counter()
                imputed = impute(holed)
                seconds = time.perf_counter() - start
            rmse, accuracy = score_imputation(df, imputed, mask)
            results.setdefault(label, []).append((rmse, accuracy, seconds))
    return {label: np.mean(values, axis=0) for label, values in results.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--part",
        choices=["all", "conditional", "imputation", "arrays", "sdv"],
        default="all",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    repeats = 1 if args.quick else 2
    with threadpool_limits(1):
        if args.part == "sdv":  # in the pandas<3 environment of bench_tabular.py
            print("SDV conditional sampling, against the same held-out rows")
            for name in CONDITIONS:
                for kind in ("CTGAN", "TVAE"):
                    for row in sdv_conditional(name, kind, args.quick):
                        print("  ".join(row))
            return
        if args.part in ("all", "conditional"):
            print("Conditional sampling: sample(n, given=...) against held-out rows")
            settings = ", ".join(f"{k}={v!r}" for k, v in CONDITIONAL_SETTINGS.items())
            print(f"VAETransformer({settings}), fitted on each table's training half")
            header = f"{'table':<9} {'condition':<26} {'rows':>4} {'<=3 SE':>6} "
            header += f"{'real':>5} {'real n':>6} {'z cond':>6} {'z free':>6} {'model':>6} "
            header += f"{'s':>5} {'reject s':>8}"
            print(header)
            for name in CONDITIONS:
                for row in conditional(name, args.quick):
                    table, label, n, share, real, real_n, cond, free, model = row[:9]
                    seconds, reject = row[9:]
                    print(
                        f"{table:<9} {label:<26} {n:>4} {share:>6.0%} {real:>5.0%} "
                        f"{real_n:>6.0%} {cond:>6.2f} {free:>6.2f} {model:>6.0%} "
                        f"{seconds:>5.2f} {reject:>8.2f}"
                    )
            print()
        if args.part in ("all", "imputation"):
            print(f"Imputation: 20% of cells masked at random, mean of {repeats} repeat(s)")
            print(f"{'table':<9} {'imputer':<26} {'RMSE (sd)':>9} {'accuracy':>8} {'s':>7}")
            wins = {"RMSE": [], "accuracy": [], "both": []}
            tables, skipped = [], []
            for name in DATASETS:
                try:
                    results = imputation(name, args.quick, repeats)
                except ImportError:  # actg175 and gbsg2 without lifelines
                    skipped.append(name)
                    continue
                tables.append(name)
                for label, (rmse, accuracy, seconds) in results.items():
                    print(
                        f"{name:<9} {label:<26} {rmse:>9.3f} {accuracy:>8.3f} "
                        f"{seconds:>7.2f}"
                    )
                ours = results["VAEImputer"]
                others = [v for k, v in results.items() if not k.startswith("VAEImputer")]
                rmse = all(ours[0] < other[0] for other in others)
                accuracy = all(ours[1] > other[1] for other in others)
                for key, won in (("RMSE", rmse), ("accuracy", accuracy)):
                    if won:
                        wins[key].append(name)
                if rmse and accuracy:
                    wins["both"].append(name)
            print("\nVAEImputer (defaults) against scikit-learn's four imputers:")
            for key, names in wins.items():
                print(
                    f"  best {key}: {len(names)} of {len(tables)} tables"
                    f" ({', '.join(names) or 'none'})"
                )
            if skipped:
                print(
                    f"  skipped {', '.join(skipped)}: lifelines is not installed (run"
                    " this part in .venv-tabular, see bench_tabular.py, for them)"
                )
        if args.part in ("all", "arrays"):
            print(
                f"\nNumeric arrays, standardized: 20% of cells masked at random, RMSE"
                f" over the masked cells (sd), mean of {repeats} repeat(s)"
            )
            print(f"{'data':<14} {'imputer':<34} {'RMSE (sd)':>9} {'s':>7}")
            for name in ARRAYS:
                for label, (rmse, seconds) in array_imputation(
                    name, args.quick, repeats
                ).items():
                    print(f"{name:<14} {label:<34} {rmse:>9.3f} {seconds:>7.2f}")


if __name__ == "__main__":
    main()
