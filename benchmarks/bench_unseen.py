"""Default fits on tables no default was chosen on: errors, warnings, invalid samples, time.

Every small table that ships with statsmodels, lifelines and vega_datasets (and
is not one of ``bench_tabular.py``'s seven) is fitted as a user would fit it,
``VAETransformer()`` and ``AutoencoderTransformer()`` with their defaults on
the whole table, and 500 rows are sampled. Printed per table and estimator:
the fit time (one torch thread), the epochs run, the warnings (by kind), the
share of sampled rows with an invalid value (out of the fitted range, wrong
sign, non-integer in an integer column, unseen level, missing where fit saw
none, or a broken missingness rule; ``bench_tabular.invalid_values``), and the
error if the fit raised. Datetime columns are dropped first (skvae refuses
them with a TypeError that says so); tables over ``--max-rows`` rows are
subsampled.

Needs the packages of ``bench_tabular.py`` (``pip install -e ".[benchmark]"``)::

    python benchmarks/bench_unseen.py            # about 10 minutes on one core
    python benchmarks/bench_unseen.py --quick    # five tables
"""

import argparse
import time
import warnings

import numpy as np
import pandas as pd
import torch
from bench_tabular import invalid_values, missingness_rules
from threadpoolctl import threadpool_limits

from skvae import AutoencoderTransformer, VAETransformer

STATSMODELS = (
    "ccard",
    "china_smoking",
    "committee",
    "copper",
    "cpunish",
    "engel",
    "fertility",
    "heart",
    "longley",
    "macrodata",
    "modechoice",
    "randhie",
    "scotland",
    "spector",
    "stackloss",
    "star98",
    "statecrime",
    "strikes",
)
LIFELINES = (
    "canadian_senators",
    "dd",
    "kidney_transplant",
    "larynx",
    "leukemia",
    "lupus",
    "lymph_node",
    "lymphoma",
    "mice",
    "multicenter_aids_cohort_study",
    "psychiatric_patients",
    "stanford_heart_transplants",
    "waltons",
)
VEGA = ("anscombe", "barley", "burtin", "crimea", "driving", "iris", "la_riots", "wheat")
QUICK = ("sm:ccard", "sm:longley", "ll:larynx", "ll:lymph_node", "vg:iris")


def tables():
    """{name: loader} of every table, loaded lazily (the packages import slowly)."""

    def statsmodels(name):
        import statsmodels.api as sm

        return getattr(sm.datasets, name).load_pandas().data

    def lifelines(name):
        import lifelines.datasets

        return getattr(lifelines.datasets, f"load_{name}")()

    def vega(name):
        from vega_datasets import data

        return getattr(data, name)()

    found = {}
    for prefix, names, load in (
        ("sm", STATSMODELS, statsmodels),
        ("ll", LIFELINES, lifelines),
        ("vg", VEGA, vega),
    ):
        for name in names:
            found[f"{prefix}:{name}"] = lambda load=load, name=name: load(name)
    return found


def run(df, Estimator, seed):
    """One default fit and 500 samples: a dict of what happened."""
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            estimator = Estimator(random_state=seed).fit(df)
            seconds = time.perf_counter() - start
            fake = estimator.sample(500, random_state=seed)
    except Exception as error:  # reported, not raised: the sweep goes on
        return {"error": f"{type(error).__name__}: {error}"[:160], "warnings": []}
    masks = invalid_values(df, fake, missingness_rules(df))
    invalid = np.logical_or.reduce(list(masks.values()))
    kinds = sorted({w.category.__name__ for w in record})
    identifiers = any("identifiers" in str(w.message) for w in record)
    return {
        "error": None,
        "seconds": seconds,
        "epochs": estimator.n_iter_,
        "invalid": float(invalid.mean()),
        "warnings": kinds,
        "identifiers": identifiers,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="five tables")
    parser.add_argument("--tables", nargs="+", help="names such as sm:ccard ll:larynx")
    parser.add_argument("--max-rows", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaders = tables()
    names = args.tables or (list(QUICK) if args.quick else list(loaders))
    rows = []
    with threadpool_limits(limits=1):
        # torch's first fit in a process pays about a second of set-up: not timed.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            VAETransformer(max_iter=2).fit(np.random.RandomState(0).rand(64, 3))
        for name in names:
            df = loaders[name]()
            df = df.drop(
                columns=df.select_dtypes(include=["datetime", "datetimetz"]).columns
            )
            if len(df) > args.max_rows:
                df = df.sample(args.max_rows, random_state=args.seed)
            for Estimator in (VAETransformer, AutoencoderTransformer):
                result = run(df.reset_index(drop=True), Estimator, args.seed)
                rows.append(
                    {
                        "table": name,
                        "rows": len(df),
                        "cols": df.shape[1],
                        "model": Estimator.__name__[:3],
                        **result,
                    }
                )
                line = rows[-1]
                if line["error"]:
                    print(f"{name:36s} {line['model']} ERROR {line['error']}", flush=True)
                else:
                    print(
                        f"{name:36s} {line['model']} {line['rows']:5d}x{line['cols']:<3d}"
                        f" {line['seconds']:6.1f} s {line['epochs']:4d} epochs "
                        f"invalid {line['invalid']:.1%} warnings {line['warnings']}",
                        flush=True,
                    )
    results = pd.DataFrame(rows)
    print("\nSummary (default fits of each estimator):")
    for model, group in results.groupby("model", sort=False):
        failed = group[group["error"].notna()]
        fitted = group[group["error"].isna()]
        kinds = pd.Series([k for ks in fitted["warnings"] for k in ks]).value_counts()
        print(
            f"  {model}: {len(fitted)}/{len(group)} fitted, "
            f"{int((fitted['invalid'] > 0).sum())} with invalid samples, "
            f"{int(fitted['warnings'].map(len).gt(0).sum())} warned "
            f"{ {k: int(v) for k, v in kinds.items()} }, "
            f"median fit {fitted['seconds'].median():.1f} s, "
            f"identifier columns named on {int(fitted['identifiers'].sum())}"
        )
        for _, line in failed.iterrows():
            print(f"    raised on {line['table']}: {line['error']}")


if __name__ == "__main__":
    main()
