"""Reading a user's CSV table for ``tabular.csv``: size-limited UTF-8, the delimiter found from the
file (comma, semicolon, tab or bar), one header line, numbers read as numbers. Torch-free.

A column whose every filled cell is a whole number becomes ``int``, one of numbers ``float``, any
other ``str``; empty cells and the usual spellings of a missing value (``NA``, ``NaN``, ``null``...)
are None. A whole number written with a leading zero (``007``, a postcode) keeps its column as
text. Relative paths start in the data folder (where browser uploads are kept).
"""

from __future__ import annotations

import csv
import functools
import io
import math
from dataclasses import dataclass
from typing import Any

from engine.agents.text_io import SNIFF_CHARS, read_user_text, sniff_delimiter
from engine.errors import ServiceGridError
from engine.settings import FileVersion, file_version, resolve_data_path

MAX_TABLE_FILE_BYTES = 50 * 2**20
TABLE_SUFFIXES = (".csv", ".tsv")
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "-"})


class TableFileError(ServiceGridError, ValueError):
    """A CSV table is missing, too large, not UTF-8, or malformed (the message says where)."""


@dataclass(frozen=True)
class CsvTable:
    """A table read from a file: its columns (the id column taken out), the row ids, and the
    kind each column was read as (``int``, ``float`` or ``str``)."""

    columns: dict[str, list[Any]]
    ids: list[str]
    types: dict[str, str]
    delimiter: str


def read_table(path: str, id_column: str = "", max_rows: int | None = None) -> CsvTable:
    """The table in the CSV file ``path``. ``id_column``: the column holding row ids (empty: a
    column named ``id`` if there is one, else ``row-1``, ``row-2``...); ``max_rows``: read at most
    that many rows.

    Raises:
        TableFileError: the file is missing, too large, not UTF-8, has no header or no rows, a
            header name is empty or repeated, a row has another number of fields than the header,
            or ``id_column`` is not a column. The message names the file and the line.
        DataPathError: the path is outside the folders this server may read (lab mode).
    """
    if not path.strip():
        raise TableFileError("no file given; upload a CSV in the properties panel (Your files) or "
                             "set `path`")
    file = resolve_data_path(path)
    content = read_user_text(file, "table file", TABLE_SUFFIXES, MAX_TABLE_FILE_BYTES, TableFileError)
    return parse_table(content, file.name, id_column, max_rows)


def parse_table(content: str, name: str, id_column: str = "", max_rows: int | None = None) -> CsvTable:
    """``read_table`` on text already read (``name`` is for messages)."""
    delimiter = sniff_delimiter(content)
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise TableFileError(f"{name} is empty; the first line must name the columns") from None
    except csv.Error as exc:
        raise TableFileError(f"{name}, line 1: {exc}") from None
    blank = [i + 1 for i, h in enumerate(header) if not h]
    if blank:
        raise TableFileError(f"{name}, line 1: column {blank[0]} of the header has no name; name "
                             "every column")
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise TableFileError(f"{name}, line 1: the header names {', '.join(map(repr, repeated))} more "
                             "than once; give every column its own name")
    cells: list[list[str]] = [[] for _ in header]
    try:
        for row in reader:
            if not any(c.strip() for c in row):
                continue  # a blank line
            if len(row) != len(header):
                raise TableFileError(
                    f"{name}, line {reader.line_num}: {len(row)} field(s) but the header has "
                    f"{len(header)}; check the quoting and the delimiter ({_shown(delimiter)})")
            for column, cell in zip(cells, row, strict=True):
                column.append(cell.strip())
            if max_rows is not None and len(cells[0]) >= max_rows:
                break
    except csv.Error as exc:
        raise TableFileError(f"{name}, line {reader.line_num}: {exc}") from None
    if not cells[0]:
        raise TableFileError(f"{name} has a header but no rows")
    typed = {h: _typed(column) for h, column in zip(header, cells, strict=True)}
    key = id_column.strip() or ("id" if "id" in typed else "")
    if key and key not in typed:
        raise TableFileError(f"{name} has no column {key!r} for the ids; its columns are "
                             f"{', '.join(header)}. Set `id_column` to one of them, or leave it empty")
    if key:
        ids = ["" if v is None else str(v) for v in typed.pop(key)[1]]
    else:
        ids = [f"row-{i}" for i in range(1, len(cells[0]) + 1)]
    return CsvTable({h: values for h, (_, values) in typed.items()}, ids,
                    {h: kind for h, (kind, _) in typed.items()}, delimiter)


def _shown(delimiter: str) -> str:
    return {"\t": "tab", ",": "comma", ";": "semicolon", "|": "bar"}[delimiter]


def _typed(cells: list[str]) -> tuple[str, list[Any]]:
    """(kind, values) of one column's cells: int, float or str (see the module doc)."""
    filled = [c for c in cells if c.lower() not in MISSING]
    for kind, convert in (("int", _as_int), ("float", _as_float)):
        try:
            values = [convert(c) for c in filled]
        except ValueError:
            continue
        it = iter(values)
        return kind, [None if c.lower() in MISSING else next(it) for c in cells]
    return "str", [None if c == "" else c for c in cells]


def _is_code(cell: str) -> bool:
    """Written like a code rather than a number: ``007``, a postcode (kept as written), or with
    ``_`` (which Python's int() and float() would read)."""
    digits = cell.lstrip("+-")
    return "_" in cell or (digits.isdigit() and len(digits) > 1 and digits.startswith("0"))


def _as_int(cell: str) -> int:
    if _is_code(cell):
        raise ValueError(cell)
    return int(cell)


def _as_float(cell: str) -> float:
    if _is_code(cell):
        raise ValueError(cell)
    value = float(cell)
    if not math.isfinite(value):
        raise ValueError(cell)
    return value


@dataclass(frozen=True)
class SampleTable:
    """A GENERATED table offered as a CSV file to try ``tabular.csv`` without one's own data."""

    name: str  # the file's name
    target: str  # its ground-truth column
    label: str  # for people


SAMPLES = {
    "transactions": SampleTable("sample_transactions.csv", "is_fraud",
                                "500 GENERATED card transactions, 4 % injected fraud (for the fraud scorer)"),
    "credit_applicants": SampleTable("sample_credit_applicants.csv", "defaulted",
                                     "300 GENERATED credit applicants (for the credit scorer)"),
}


def sample_csv(dataset: str) -> bytes:
    """One of ``SAMPLES`` as CSV bytes (id first), generated with a fixed seed."""
    from engine.agents import tabular_data

    table = (tabular_data.transactions_table(500, 11, 120) if dataset == "transactions"
             else tabular_data.credit_table(300, 11))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["id", *table["columns"]])
    columns = list(table["columns"].values())
    writer.writerows([row_id, *(c[i] for c in columns)] for i, row_id in enumerate(table["ids"]))
    return buf.getvalue().encode("utf-8")


def header(path: str) -> list[str]:
    """The column names on the first line of the table file ``path`` (its delimiter found as
    ``read_table`` finds it), for choosing columns in a form; [] when it cannot be read."""
    try:
        file = resolve_data_path(path) if path.strip() else None
        if file is None or file.suffix.lower() not in TABLE_SUFFIXES or not file.is_file():
            return []
        with file.open(encoding="utf-8-sig", newline="") as fh:
            sample = fh.read(SNIFF_CHARS)
        row = next(csv.reader(io.StringIO(sample, newline=""), delimiter=sniff_delimiter(sample)), [])
    except (ServiceGridError, OSError, UnicodeDecodeError, csv.Error, ValueError):
        return []
    return [c.strip() for c in row if c.strip()]


Shape = tuple[tuple[str, ...], int]  # a table's columns (the id column taken out) and rows
Names = dict[str, tuple[str, ...]]  # per text column of few distinct values: those values
MAX_NAMES = 30  # a text column with more distinct values is free text (or ids), not names to pick
_Read = tuple[Shape | None, str | None, tuple[tuple[str, tuple[str, ...]], ...]]  # shape, problem, names


def table_shape(path: str, id_column: str = "") -> Shape | None:
    """(columns, rows) of the table ``read_table`` would give, for the planner and validation;
    None when the file cannot be read (``table_problem`` says why)."""
    return _read_once(path, id_column)[0]


def table_names(path: str, id_column: str = "") -> Names:
    """The values of each text column that holds at most ``MAX_NAMES`` distinct ones (a region,
    a segment), in order of first appearance: what a branch on it can name (the designer offers
    them, validation warns of others). Empty when the file cannot be read."""
    return dict(_read_once(path, id_column)[2])


def table_problem(path: str, id_column: str = "", target: str = "") -> str | None:
    """What is wrong with the table file for these settings (the reader's message, or a
    ``target`` that is not a column), or None; for validation, before the run."""
    shape, problem, _ = _read_once(path, id_column)
    return problem if problem is not None or shape is None else target_problem(shape[0], target)


def target_problem(columns: tuple[str, ...] | list[str], target: str) -> str | None:
    """A ground-truth column that is not one of the table's, or None."""
    if target and target not in columns:
        return f"the table has no column {target!r} for `target`; its columns are {', '.join(columns)}"
    return None


def _read_once(path: str, id_column: str) -> _Read:
    """(shape, problem, names) of the file, read once per version of it
    (``settings.file_version``): planning and validating again cost a ``stat``."""
    if not path.strip():
        return None, None, ()
    try:
        version = file_version(resolve_data_path(path))
    except (ServiceGridError, OSError, ValueError) as exc:
        return None, str(exc), ()
    return _read(version, id_column)


@functools.lru_cache(maxsize=64)
def _read(version: FileVersion, id_column: str) -> _Read:
    try:
        table = read_table(version[0], id_column)
    except (ServiceGridError, OSError, ValueError) as exc:
        return None, str(exc), ()
    names = []
    for column, kind in table.types.items():
        if kind == "str":
            distinct = tuple(dict.fromkeys(str(v) for v in table.columns[column] if v not in (None, "")))
            if 0 < len(distinct) <= MAX_NAMES:
                names.append((column, distinct))
    return (tuple(table.columns), len(table.ids)), None, tuple(names)
