"""Where the sink agents write: sanitised names under ``<data folder>/outputs/``, CSV via the csv
module and SQLite via the stdlib sqlite3 (never SQLModel, never an absolute path from a form).
"""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

from engine.settings import data_dir

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def output_path(name: str, suffix: str) -> Path:
    """A safe path under ``<data folder>/outputs/`` for a user-given relative name.

    Each part is reduced to letters, digits, ``._-``; ``..``, empty and hidden parts are dropped,
    so the result can never leave the outputs folder. ``suffix`` is added when missing.
    """
    parts = [_UNSAFE.sub("_", p).strip("._") for p in re.split(r"[\\/]+", name)]
    parts = [p for p in parts if p]
    if not parts:
        parts = ["output"]
    if not parts[-1].lower().endswith(suffix):
        parts[-1] += suffix
    root = (data_dir() / "outputs").resolve()
    path = root.joinpath(*parts).resolve()
    if root not in path.parents:
        raise ValueError(f"output name {name!r} leaves the outputs folder; use a plain file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a text cell a spreadsheet would run as a formula


def spreadsheet_safe(value: Any) -> Any:
    """``value``, with a leading ``'`` when it is text a spreadsheet would run as a formula
    (``=HYPERLINK(...)`` in a customer's ticket): CSV files are opened in Excel."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def _cell(value: Any) -> Any:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list | dict | tuple):
        return json.dumps(value)
    return spreadsheet_safe(value)


def write_csv(name: str, cols: dict[str, list[Any]], ids: list[str]) -> Path:
    """Write ``id`` plus the columns as a UTF-8 CSV file; returns its path."""
    path = output_path(name, ".csv")
    names = list(cols) if "id" in cols else ["id", *cols]
    data = cols if "id" in cols else {"id": ids, **cols}
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for r in range(len(ids)):
            writer.writerow([_cell(data[c][r]) for c in names])
    return path


def _sql_type(values: list[Any]) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool | int) for v in present):
        return "INTEGER"
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "REAL"
    return "TEXT"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def write_sqlite(database: str, table: str, cols: dict[str, list[Any]], ids: list[str], *,
                 replace: bool = True) -> Path:
    """Write rows (``id`` plus the columns) into ``table`` of a SQLite file; returns its path."""
    if not _IDENT.match(table):
        raise ValueError(f"table name {table!r} is not allowed; use letters, digits and "
                         "underscores, starting with a letter (e.g. 'results')")
    path = output_path(database, ".sqlite")
    data = {"id": ids, **cols} if "id" not in cols else cols
    plain = {c: [_cell(v) for v in values] for c, values in data.items()}
    column_sql = ", ".join(f"{_quote(c)} {_sql_type(v)}" for c, v in plain.items())
    marks = ", ".join("?" for _ in plain)
    conn = sqlite3.connect(path)
    try:
        with conn:
            if replace:
                conn.execute(f"DROP TABLE IF EXISTS {_quote(table)}")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {_quote(table)} ({column_sql})")
            conn.executemany(f"INSERT INTO {_quote(table)} VALUES ({marks})",
                             list(zip(*plain.values(), strict=True)))
    except sqlite3.Error as exc:
        raise ValueError(f"writing table {table!r} of {path.name} failed: {exc}; in mode "
                         "'append' the columns must match the existing table (or use "
                         "'replace')") from None
    finally:
        conn.close()
    return path
