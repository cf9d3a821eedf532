"""Tables for the tabular agents: scikit-learn's real breast-cancer table (fixed held-out split)
and GENERATED credit applicants, card transactions with injected fraud, and a market series.
Generated tables carry their ground truth; entity ids (``cust-N``) are shared across tables.
"""

from __future__ import annotations

import functools

import numpy as np

from engine.agents.nets import MlpConfig
from engine.agents.runtime import sklearn_data_file
from engine.agents.table_columns import (
    CANCER_CLASSES,
    CANCER_FEATURES,
    CREDIT_CLASSES,
    CREDIT_FEATURES,
    FRAUD_CLASSES,
    FRAUD_FEATURES,
)

CREDIT = MlpConfig(CREDIT_FEATURES, CREDIT_CLASSES, 32, "GENERATED credit applicants")
FRAUD = MlpConfig(FRAUD_FEATURES, FRAUD_CLASSES, 32, "GENERATED card transactions")


CANCER_CSV = "breast_cancer.csv"  # in scikit-learn's datasets/data


@functools.lru_cache(maxsize=1)
def _cancer_data() -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """The breast-cancer table scikit-learn ships: (features, target, feature names, classes),
    read from the package's CSV (``runtime.sklearn_data_file``), or through ``load_breast_cancer``
    where the file is not what this reader knows. Read once per process; the arrays are read-only."""
    try:
        x, y, classes = _read_cancer_csv()
        features = list(CANCER_FEATURES)
    except (OSError, ValueError, IndexError):
        from sklearn.datasets import load_breast_cancer

        data = load_breast_cancer()
        x, y = data.data, data.target
        features, classes = [str(f) for f in data.feature_names], [str(c) for c in data.target_names]
    x.flags.writeable = y.flags.writeable = False
    return x, y, features, classes


def _read_cancer_csv() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The CSV's rows and class names; its first line says ``rows,features,class...``."""
    path = sklearn_data_file(CANCER_CSV)
    with path.open(encoding="utf-8") as f:
        head = f.readline().strip().split(",")
        rows = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
    n, width, classes = int(head[0]), int(head[1]), head[2:]
    if rows.shape != (n, width + 1) or width != len(CANCER_FEATURES) or tuple(classes) != CANCER_CLASSES:
        raise ValueError(f"{path} is not the table this reader knows ({rows.shape}, {head})")
    return rows[:, :width], rows[:, width].astype(np.int64), list(classes)


def cancer_config() -> MlpConfig:
    _, _, features, classes = _cancer_data()
    return MlpConfig(tuple(features), tuple(classes), 32, "scikit-learn breast cancer (real)")


def cancer_split() -> tuple[np.ndarray, np.ndarray]:
    """Fixed train / held-out indices (75 % / 25 %) into the 569 rows."""
    order = np.random.RandomState(0).permutation(569)
    return order[:427], order[427:]


def cancer_table(split: str = "held_out", n: int | None = None, seed: int = 0) -> dict:
    """Rows of the REAL Wisconsin breast-cancer table; ``diagnosis`` is the ground truth."""
    x, y, features, classes = _cancer_data()
    train, held_out = cancer_split()
    rows = {"held_out": held_out, "train": train, "all": np.arange(len(y))}[split]
    rows = np.random.RandomState(seed).permutation(rows)[:n] if n else rows
    columns: dict[str, list] = {f: x[rows, j].tolist() for j, f in enumerate(features)}
    columns["diagnosis"] = [classes[t] for t in y[rows]]
    return {"columns": columns, "ids": [f"patient-{r}" for r in rows], "target": "diagnosis"}


def credit_table(n: int, seed: int) -> dict:
    """GENERATED applicants ``cust-0..n-1``; ``defaulted`` drawn from a known logistic rule."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(19, 75, n)
    income = rng.lognormal(3.8, 0.45, n)
    debt_ratio = rng.beta(2, 4, n)
    history = np.clip(age - 18 - rng.uniform(0, 10, n), 0, None)
    late = rng.poisson(0.3 + 2.5 * debt_ratio, n)
    loan = income * rng.uniform(0.2, 2.5, n)
    employment = np.clip(rng.exponential(6, n), 0, age - 18)
    logit = (-2.2 + 4.0 * (debt_ratio - 0.33) + 0.75 * late - 0.05 * history
             + 0.9 * (loan / income - 1.3) - 0.06 * employment)
    defaulted = rng.random(n) < 1 / (1 + np.exp(-logit))
    values = (age, income, debt_ratio, history, late, loan, employment)
    columns: dict[str, list] = {f: np.round(v, 3).tolist() for f, v in zip(CREDIT_FEATURES, values, strict=False)}
    columns["defaulted"] = defaulted.astype(int).tolist()
    return {"columns": columns, "ids": [f"cust-{i}" for i in range(n)], "target": "defaulted"}


def transactions_table(n: int, seed: int, n_customers: int = 200,
                       fraud_rate: float = 0.04) -> dict:
    """GENERATED card transactions of customers ``cust-*``; ``is_fraud`` marks injected fraud.

    Fraud rows are drawn from shifted distributions (larger, at night, far away, card absent,
    bursts, abroad) that overlap normal ones, so scoring is not trivial.
    """
    rng = np.random.default_rng(seed)
    fraud = rng.random(n) < fraud_rate
    amount = np.where(fraud, rng.lognormal(4.2, 1.0, n), rng.lognormal(3.5, 1.0, n))
    hour = np.where(fraud, rng.normal(2, 5, n) % 24, rng.normal(14, 4.5, n) % 24)
    distance = np.where(fraud, rng.exponential(120, n), rng.exponential(25, n))
    merchant_risk = np.clip(np.where(fraud, rng.beta(3, 4, n), rng.beta(2, 6, n)), 0, 1)
    present = np.where(fraud, rng.random(n) < 0.45, rng.random(n) < 0.75).astype(int)
    burst = np.where(fraud, rng.poisson(4, n), rng.poisson(2, n))
    foreign = np.where(fraud, rng.random(n) < 0.25, rng.random(n) < 0.05).astype(int)
    values = (amount, hour, distance, merchant_risk, present, burst, foreign)
    columns: dict[str, list] = {f: np.round(v, 3).tolist() for f, v in zip(FRAUD_FEATURES, values, strict=False)}
    columns["customer"] = [f"cust-{c}" for c in rng.integers(0, n_customers, n)]
    columns["is_fraud"] = fraud.astype(int).tolist()
    return {"columns": columns, "ids": [f"tx-{seed}-{i}" for i in range(n)], "target": "is_fraud"}


def market_table(n: int, seed: int, shock_at: float = 0.8) -> dict:
    """A GENERATED daily price series: calm random walk, then a volatility shock from
    ``shock_at`` of the way through (ground truth column ``regime``: calm / stress)."""
    rng = np.random.default_rng(seed)
    start = int(n * shock_at)
    vol = np.where(np.arange(n) < start, 0.008, 0.03)
    drift = np.where(np.arange(n) < start, 0.0004, -0.003)
    returns = rng.normal(drift, vol)
    price = 100 * np.exp(np.cumsum(returns))
    volume = rng.lognormal(10, 0.2, n) * np.where(np.arange(n) < start, 1.0, 1.8)
    return {"columns": {"day": list(range(n)), "price": np.round(price, 4).tolist(),
                        "volume": np.round(volume, 1).tolist(),
                        "regime": ["calm" if t < start else "stress" for t in range(n)]},
            "ids": [f"day-{t}" for t in range(n)], "target": "regime"}
