"""Real mixed-type tables that ship inside installed packages, as typed DataFrames.

Shared by ``bench_tabular.py`` and ``bench_impute.py``; nothing is downloaded.
``penguins`` comes from palmerpenguins, ``anes96`` and ``fair`` from statsmodels,
``cars`` and ``weather`` from vega_datasets, ``actg175`` and ``gbsg2`` from lifelines
(those two packages are imported only by their loaders). See ``bench_tabular.py`` for
how each table is prepared.
"""

import pandas as pd
from palmerpenguins import load_penguins
from statsmodels.datasets import anes96, fair

__all__ = [
    "as_category",
    "is_numeric",
    "load_actg175",
    "load_anes96",
    "load_cars",
    "load_fair",
    "load_gbsg2",
    "load_penguins",
    "load_weather",
]

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


def as_category(codes, labels, ordered=False):
    """Integer codes as a ``category`` column with the given {code: label} levels."""
    return pd.Categorical(
        codes.astype(int).map(labels), categories=list(labels.values()), ordered=ordered
    )


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


def load_cars():
    from vega_datasets import data as vega

    df = vega.cars().drop(columns="Name")
    df["Year"] = df["Year"].dt.year
    return df.astype({"Year": "int64", "Cylinders": "int64", "Weight_in_lbs": "int64"})


def load_weather():
    from vega_datasets import data as vega

    df = vega.seattle_weather()
    date = df.pop("date")
    df.insert(0, "month", date.dt.month.astype("int64"))
    df.insert(0, "year", date.dt.year.astype("int64"))
    return df


def load_actg175():
    from lifelines import datasets as lifelines_datasets

    path = f"{lifelines_datasets.__path__[0]}/ACTG175.csv"
    df = pd.read_csv(path).drop(columns=["Unnamed: 0", "pidnum"])
    flags = ["hemo", "homo", "drugs", "oprior", "z30", "zprior", "race", "gender"]
    flags += ["str2", "symptom", "treat", "offtrt", "r", "cens"]
    df = df.astype(dict.fromkeys(flags, bool))
    arms = ["zidovudine", "zidovudine+didanosine", "zidovudine+zalcitabine"]
    df["arms"] = as_category(df["arms"], dict(enumerate([*arms, "didanosine"])))
    history = ["naive", "1-52 weeks", "over 52 weeks"]
    df["strat"] = as_category(df["strat"], dict(enumerate(history, start=1)))
    return df


def load_gbsg2():
    from lifelines import datasets as lifelines_datasets

    df = lifelines_datasets.load_gbsg2()
    df["tgrade"] = pd.Categorical(df["tgrade"], ["I", "II", "III"], ordered=True)
    return df.astype({"cens": bool})


#: Every table by name, in the benchmarks' order (the loaders import their
#: packages when called).
TABLES = {
    "penguins": load_penguins,
    "anes96": load_anes96,
    "fair": load_fair,
    "cars": load_cars,
    "weather": load_weather,
    "actg175": load_actg175,
    "gbsg2": load_gbsg2,
}
