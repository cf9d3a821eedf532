"""Table operations for the flow agents: any payload as columns, joins by id or column, row
filters with a closed set of operators (no code execution), and slicing of per-item payloads.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from engine.agents.table_columns import vector_columns
from engine.errors import shown_names, suggest
from engine.kinds import CLASS_COLUMNS, SCORE_PREFIX, score_classes

Columns = dict[str, list[Any]]

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
    "contains": lambda a, b: str(b).lower() in str(a).lower(),
    "in": lambda a, b: str(a) in listed_values(b),
}
ORDERING = ("<", "<=", ">", ">=")


def listed_values(value: Any) -> list[str]:
    """The values an ``in`` condition lists: a list, or comma-separated text ("high, urgent")."""
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(x).strip() if isinstance(x, str) else str(x) for x in items]


def _plain(value: Any) -> list[Any]:
    return value.tolist() if hasattr(value, "tolist") else list(value)


def _given(payload: dict[str, Any], key: str) -> list[Any] | None:
    """``payload[key]`` as a plain list, or None when absent or empty (a list or a tensor: vision
    payloads carry their ground-truth labels as a tensor, whose truth value is an error)."""
    value = payload.get(key)
    if value is None:
        return None
    items = _plain(value)
    return items or None


def _truth(payload: dict[str, Any], classes: list[str]) -> list[Any] | None:
    """The ground-truth labels beside scores: class names where they are indices of ``classes``
    (as the vision sources give them and the classifier's accuracy reads them)."""
    labels = _given(payload, "labels")
    if labels and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(classes) for v in labels):
        return [classes[v] for v in labels]
    return labels


def to_table(payload: Any) -> tuple[Columns, list[str]]:
    """(columns, ids) of a table, scores, labels, text_batch or embedding payload, or of rows."""
    if isinstance(payload, list) and all(isinstance(r, dict) for r in payload):
        keys = list(dict.fromkeys(k for row in payload for k in row))
        return {k: [row.get(k) for row in payload] for k in keys}, [str(i) for i in range(len(payload))]
    if not isinstance(payload, dict):
        raise TypeError(f"cannot read a {type(payload).__name__} as a table; connect a table, "
                        "scores, labels, texts or embeddings")
    if isinstance(payload.get("columns"), dict):
        cols = {k: _plain(v) for k, v in payload["columns"].items()}
    elif "scores" in payload and "classes" in payload:
        cols = _scores_columns(payload)
    elif "labels" in payload and "confidence" in payload:
        cols = {"label": list(payload["labels"]), "confidence": list(payload["confidence"])}
    elif "texts" in payload:
        cols = {"text": list(payload["texts"])}
        if (labels := _given(payload, "labels")) is not None:
            cols["label"] = labels
    elif "vectors" in payload or "tensor" in payload:
        rows = _plain(payload["vectors"] if "vectors" in payload else payload["tensor"])
        if rows and not isinstance(rows[0], list):  # one number per item
            cols = {"value": rows}
        elif rows and rows[0] and isinstance(rows[0][0], list):
            raise TypeError("cannot write a tensor of more than 2 dimensions as a table (one row per "
                            "item, one column per value); reshape it to items x values")
        else:
            width = len(rows[0]) if rows else 0
            cols = dict(zip(vector_columns(width), ([r[d] for r in rows] for d in range(width)), strict=True))
    elif "images" in payload:
        raise TypeError("images cannot be written as a table; connect what was found in them: a "
                        "classifier's scores or labels, or the explainer's regions table")
    else:
        raise TypeError(f"cannot read a payload with keys {sorted(payload)} as a table")
    n = len(next(iter(cols.values()), []))
    ids = [str(i) for i in _given(payload, "ids") or range(n)]
    return cols, ids


def _scores_columns(payload: dict[str, Any]) -> Columns:
    rows, classes = _plain(payload["scores"]), [str(c) for c in payload["classes"]]
    cols: Columns = {}
    if (texts := _given(payload, "texts")) is not None:
        cols["text"] = texts
    best = [max(range(len(r)), key=r.__getitem__) if r else 0 for r in rows]
    cols["predicted"] = _given(payload, "predicted") or [classes[b] for b in best]
    cols["confidence"] = [round(float(r[b]), 4) if r else 0.0 for r, b in zip(rows, best, strict=True)]
    if (labels := _truth(payload, classes)) is not None:
        cols["label"] = labels
    for k, name in enumerate(classes):
        cols[f"{SCORE_PREFIX}{name}"] = [round(float(r[k]), 4) for r in rows]
    for name, values in (payload.get("components") or {}).items():  # a risk aggregate's inputs
        cols[str(name)] = [None if v is None else round(float(v), 4) for v in values]
    return cols


# How a scores payload reads as a table (``to_table``), for the planner to know its columns
# before the run (``AgentSpec.columns_fn``): these columns, in this order, where present.
SCORES_BASE = ("text", "predicted", "confidence", "label")
LABELS_COLUMNS = ("label", "confidence")  # a labels payload: the predicted class and its confidence


def scores_columns(classes: tuple[str, ...] | list[str], *, texts: bool = False, truth: bool = True,
                   components: tuple[str, ...] | list[str] = ()) -> tuple[str, ...]:
    """The columns ``to_table`` gives a scores payload over ``classes``: the text where the payload
    carries it, the predicted class and its confidence, the ground truth where it may be known
    (``truth``; a planned table may have a column a run leaves out, never one it lacks), one
    score per class, then a risk aggregate's ``components``."""
    return (*(("text",) if texts else ()), "predicted", "confidence", *(("label",) if truth else ()),
            *(f"{SCORE_PREFIX}{c}" for c in classes), *components)


def components_in(columns: tuple[str, ...]) -> list[str]:
    """A risk aggregate's component columns among a scores table's (``scores_columns``)."""
    return [c for c in columns if c not in SCORES_BASE and not c.startswith(SCORE_PREFIX)]


# names a component column cannot take: the scores table's own and the threshold's tables'
_TAKEN = (*SCORES_BASE, "score", "decision")


def component_names(risky: list[str | None]) -> list[str]:
    """The column names of an aggregate's components, from each input's risky (last) class (None:
    an input without classes): the class, unless the scores or threshold tables already use the
    name, and made unique by the input's position."""
    names: list[str] = []
    for i, cls in enumerate(risky):
        name = f"input{i}" if cls is None else str(cls)
        if name in _TAKEN or name.startswith(SCORE_PREFIX):
            name = f"risk_{name}"
        names.append(name if name not in names else f"{name}_{i}")
    return names


def join(tables: list[tuple[Columns, list[str]]], on: str, how: str) -> tuple[Columns, list[str]]:
    """Join tables left to right on their ids (``on='id'``) or on a column of that name.

    Rows with several matches are repeated (one per match). Clashing column names get ``_2``,
    ``_3``... suffixes by the table's position.
    """
    cols, ids = tables[0]
    keys = _keys(cols, ids, on, 1)
    row_ids = [str(i) for i in ids]
    rows = [{c: cols[c][r] for c in cols} for r in range(len(keys))]
    for pos, (right, right_ids) in enumerate(tables[1:], start=2):
        rkeys = _keys(right, right_ids, on, pos)
        index: dict[str, list[int]] = {}
        for r, key in enumerate(rkeys):
            index.setdefault(key, []).append(r)
        existing = set(cols) if pos == 2 else {c for row in rows for c in row}
        names = {c: (f"{c}_{pos}" if c in existing else c) for c in right if c != on}
        new_keys, new_ids, new_rows, used = [], [], [], set()
        for key, row_id, row in zip(keys, row_ids, rows, strict=True):
            matches = index.get(key, [])
            used.update(matches)
            for r in matches or ([None] if how in ("left", "outer") else []):
                new_keys.append(key)
                new_ids.append(row_id)
                new_rows.append({**row, **{names[c]: (None if r is None else right[c][r]) for c in names}})
        if how == "outer":
            for r, key in enumerate(rkeys):
                if r not in used:
                    new_keys.append(key)
                    new_ids.append(str(right_ids[r]))
                    new_rows.append({names[c]: right[c][r] for c in names} | ({on: key} if on != "id" else {}))
        keys, row_ids, rows = new_keys, new_ids, new_rows
    columns = list(dict.fromkeys(c for row in rows for c in row))
    out = {c: [row.get(c) for row in rows] for c in columns}
    if on == "id":
        out = {"id": keys, **out}
    return out, _unique_ids(row_ids)


def joined_columns(inputs: list[tuple[str, ...] | None], on: str) -> tuple[str, ...] | None:
    """The columns ``join`` gives for tables with these columns, joined in this order (None when
    one of them is unknown): the clashing names with their ``_2``, ``_3``... suffixes."""
    if not inputs or None in inputs:
        return None
    first, *rest = inputs
    names = list(dict.fromkeys(first or ()))
    for pos, right in enumerate(rest, start=2):
        existing = set(names)
        names += [f"{c}_{pos}" if c in existing else c for c in right or () if c != on]
    return (("id",) if on == "id" else ()) + tuple(dict.fromkeys(names))


def _keys(cols: Columns, ids: list[str], on: str, pos: int) -> list[str]:
    if on == "id":
        return [str(i) for i in ids]
    if on not in cols:
        raise ValueError(f"input {pos} has no column {on!r} to join on; its columns are "
                         f"{', '.join(cols) or '(none)'}")
    return [str(v) for v in cols[on]]


def _unique_ids(keys: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for key in keys:
        n = seen[key] = seen.get(key, 0) + 1
        out.append(key if n == 1 else f"{key}#{n}")
    return out


def select_rows(cols: Columns, ids: list[str], field: str, op: str, value: Any) -> list[bool]:
    """Whether each row's ``field`` satisfies ``op value`` (numbers compare as numbers)."""
    if field == "id":
        column: list[Any] = ids
    elif field in cols:
        column = cols[field]
    else:
        raise ValueError(f"no column {field!r} to branch on; the columns are "
                         f"{', '.join(['id', *cols])}")
    test = OPERATORS[op]
    return [_compare(test, cell, value, op) for cell in column]


def _compare(test: Callable[[Any, Any], bool], cell: Any, value: Any, op: str) -> bool:
    if cell is None:
        return op == "!="
    if op not in ("contains", "in"):
        a, b = _number(cell), _number(value)
        if a is not None and b is not None:
            return bool(test(a, b))
        return bool(test(str(cell), str(value))) if op in ("==", "!=") else False
    return bool(test(cell, value))


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def value_choices(field: str, op: str, values: Mapping[str, tuple[str, ...]]) -> list[str]:
    """The values a condition ``field op value`` can usefully name: the names ``field`` is known
    to hold (``values``: a scores table's classes, a ticket's priorities), where ``op`` compares
    names; else none (any number or text)."""
    return list(values.get(field, ())) if op in ("==", "!=", "in") else []


def never_matches(field: str, op: str, value: Any, columns: tuple[str, ...],
                  values: Mapping[str, tuple[str, ...]]) -> tuple[str, str] | None:
    """Why some or all of the condition ``field op value`` can match no row of a table with these
    planned columns, whose columns hold these known names (message, hint), or None: a name that
    is not one of them, a column of names compared with a number, a column of scores compared
    with text."""
    if field not in columns:
        return None
    classes = score_classes(columns)
    names = values.get(field)
    kind = "classes" if field in CLASS_COLUMNS and classes else "values"
    if names and op in ORDERING:
        hint = "use '==' or 'in' with one of them" + (
            f", or branch on 'confidence' or a score column such as '{SCORE_PREFIX}{classes[-1]}'" if classes else "")
        what = "class names" if kind == "classes" else "names"
        return f"{field!r} holds {what} ({shown_names(names)}) and {op!r} compares numbers, so no row will match", hint
    if names and op in ("==", "in"):
        wanted = listed_values(value) if op == "in" else [str(value)]
        unknown = [v for v in wanted if v not in names]
        if unknown:
            close = suggest(unknown[0], list(names))
            hint = f"did you mean {close[0]!r}?" if close else f"compare with one of {shown_names(names)}"
            if len(unknown) < len(wanted):  # the others still match
                return (f"{field!r} holds the {kind} {shown_names(names)}, and {shown_names(unknown)} "
                        f"{'is' if len(unknown) == 1 else 'are'} not among them, so no row will match "
                        f"{'it' if len(unknown) == 1 else 'them'}", hint)
            which = f"none of {shown_names(wanted)} is" if op == "in" else f"{value!r} is not"
            return f"{field!r} holds the {kind} {shown_names(names)}, and {which} one of them, so no row will match", hint
    if classes and (field == "confidence" or field.startswith(SCORE_PREFIX)) and op in (*ORDERING, "==") \
            and (isinstance(value, list) or _number(value) is None):
        return (f"{field!r} holds numbers from 0 to 1 and {value!r} is not a number, so no row will match",
                "compare it with a number, e.g. 0.5")
    return None


def take(cols: Columns, ids: list[str], rows: list[int]) -> dict[str, Any]:
    """A table payload of the given row indices."""
    return {"columns": {c: [v[r] for r in rows] for c, v in cols.items()}, "ids": [ids[r] for r in rows]}


# mappings of per-item columns in a payload: a table's columns, a risk aggregate's components
_PER_ITEM_MAPPINGS = ("columns", "components")


def slice_payload(payload: Any, rows: list[int]) -> Any:
    """The payload restricted to ``rows``: every per-item list or tensor is indexed."""
    if isinstance(payload, list):
        return [payload[r] for r in rows]
    if not isinstance(payload, dict):
        raise TypeError(f"cannot take items of a {type(payload).__name__}")
    n = _item_count(payload)
    out: dict[str, Any] = {}
    for key, value in payload.items():
        if key in _PER_ITEM_MAPPINGS and isinstance(value, dict):
            out[key] = {c: _index(v, rows, n) for c, v in value.items()}
        else:
            out[key] = _index(value, rows, n) if key != "classes" else value
    return out


def _item_count(payload: dict[str, Any]) -> int:
    if payload.get("ids") is not None:
        return len(payload["ids"])
    if isinstance(payload.get("columns"), dict):
        return len(next(iter(payload["columns"].values()), []))
    for key in ("texts", "images", "scores", "vectors", "labels"):
        if payload.get(key) is not None:
            return len(payload[key])
    raise TypeError("cannot tell how many items the payload holds (no ids)")


def _index(value: Any, rows: list[int], n: int) -> Any:
    if hasattr(value, "shape") and getattr(value, "ndim", 0) >= 1 and value.shape[0] == n:
        import torch

        return value[torch.as_tensor(rows, dtype=torch.long)] if rows else value[:0]
    if isinstance(value, list) and len(value) == n:
        return [value[r] for r in rows]
    return value


def item_count(payload: Any) -> int:
    """How many items a payload holds."""
    return len(payload) if isinstance(payload, list) else _item_count(payload)
