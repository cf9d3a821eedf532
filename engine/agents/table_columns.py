"""The columns of the tables ``tabular.source`` and the recommendation agents emit and read, and the
classes of the trained models, known without loading any data or weights (validation checks a
table's columns against what its readers need before a run, and the designer offers them in its
pickers; ``tests/agents/test_tabular.py`` checks these lists against the generated and real
tables and the trained models).
"""

from __future__ import annotations

CREDIT_FEATURES = ("age", "income_k", "debt_ratio", "history_years", "late_payments",
                   "loan_k", "employment_years")
FRAUD_FEATURES = ("amount", "hour", "distance_km", "merchant_risk", "card_present",
                  "tx_last_24h", "foreign")
_CANCER_MEASURES = ("radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
                    "concave points", "symmetry", "fractal dimension")
# scikit-learn's order: the means, the standard errors, the worst values of the ten measures
CANCER_FEATURES = (tuple(f"mean {m}" for m in _CANCER_MEASURES) + tuple(f"{m} error" for m in _CANCER_MEASURES)
                   + tuple(f"worst {m}" for m in _CANCER_MEASURES))

# the recommendation agents: an interaction log, per-user and per-item features
LOG_COLUMNS = ("user", "item", "event", "timestamp", "category", "price")
USER_COLUMNS = ("user", "events", "purchases", "purchase_rate", "distinct_items", "favourite_category",
                "favourite_share", "mean_price", "last_seen")
ITEM_COLUMNS = ("item", "category", "price", "users", "events", "purchases", "conversion", "popularity_rank")

DATASET_COLUMNS: dict[str, tuple[str, ...]] = {
    "breast_cancer": (*CANCER_FEATURES, "diagnosis"),
    "credit_applicants": (*CREDIT_FEATURES, "defaulted"),
    "transactions": (*FRAUD_FEATURES, "customer", "is_fraud"),
    "market": ("day", "price", "volume", "regime"),
}

RECOMMENDATION_COLUMNS = ("user", "rank", "item", "score", "category")  # recommend.rank, one row per pick
# vision.explain's most salient square per image (engine.agents.vision_ops.top_regions)
REGION_KEYS = ("top", "left", "size", "center_row", "center_col")

# the classes the trained models score, in their output order
CREDIT_CLASSES = ("repay", "default")
FRAUD_CLASSES = ("legit", "fraud")
CANCER_CLASSES = ("malignant", "benign")  # scikit-learn's target names
MARKET_CLASSES = ("calm", "stress")
CNN_CLASSES: dict[str, tuple[str, ...]] = {
    "lesion_cnn": ("no_lesion", "lesion"),
    "digits_cnn": tuple(str(d) for d in range(10)),
}
EMBEDDING_WIDTH = 32  # the text models' pooled layer and the CNNs' penultimate layer


def vector_columns(width: int) -> tuple[str, ...]:
    """The columns an embedding or tensor of ``width`` values per item reads as (v0, v1, ...)."""
    return tuple(f"v{d}" for d in range(width))
