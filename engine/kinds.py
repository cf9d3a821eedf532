"""The closed set of data kinds that flow along edges, and which may connect to which."""

from __future__ import annotations

from enum import StrEnum


class DataKind(StrEnum):
    """What a port carries. ``ANY`` connects to everything."""

    IMAGE_BATCH = "image_batch"  # float tensor N x C x H x W (or a list of images)
    TENSOR = "tensor"  # any numeric tensor
    TEXT_BATCH = "text_batch"  # list[str]
    EMBEDDING = "embedding"  # float tensor N x D
    TABLE = "table"  # dict of equal-length columns (list[dict] rows accepted)
    SCORES = "scores"  # per-item scores / probabilities with labels
    LABELS = "labels"  # per-item class labels
    ANY = "any"


# A scores payload read as a table has a column of each class's score, named with this prefix
# (``engine.agents.tables.to_table``), so its planned columns say its classes.
SCORE_PREFIX = "score_"
CLASS_COLUMNS = ("predicted", "label")  # and these columns hold class names
# The planned key (``AgentSpec.keys_fn``) that counts the groups a payload's rows belong to: a
# scores payload's ``entities`` (a transaction's customer), which a risk aggregation pools by; by
# default every row is its own group.
ENTITY = "@entity"


def score_classes(columns: tuple[str, ...]) -> list[str]:
    """The classes of a scores payload whose table has these columns, in order."""
    return [c[len(SCORE_PREFIX):] for c in columns if c.startswith(SCORE_PREFIX)]


def is_compatible(source: DataKind, target: DataKind, accepts: tuple[DataKind, ...] = ()) -> bool:
    """Whether an output of kind ``source`` may feed an input of kind ``target``. ``accepts``: for
    an ``any`` input, the kinds it can read (empty: every kind), e.g. a CSV sink reads tables,
    scores, labels, texts, embeddings and tensors, not images."""
    if source == target or source == DataKind.ANY:
        return True
    return target == DataKind.ANY and (not accepts or source in accepts)
