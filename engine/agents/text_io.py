"""Reading user text files for ``text.source``: size-limited UTF-8 ``.txt`` (one text per line)
or ``.csv`` (one column). Relative paths are taken from the data folder.
"""

from __future__ import annotations

import csv
import functools
import io
from pathlib import Path

from engine.errors import ServiceGridError
from engine.settings import FileVersion, file_version, resolve_data_path

MAX_TEXT_FILE_BYTES = 20 * 2**20


DELIMITERS = ",;\t|"  # what a CSV may be separated by (a spreadsheet in a semicolon locale writes ";")
SNIFF_CHARS = 64 * 1024


def sniff_delimiter(content: str) -> str:
    """The delimiter of a CSV text: found from its first 64 kB, else the only one its first line
    holds, else a comma (one column)."""
    sample = content[:SNIFF_CHARS]
    first = sample.split("\n", 1)[0]
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:  # one column, or too little to tell
        found = [d for d in DELIMITERS if d in first]
        return found[0] if len(found) == 1 else ","


def csv_rows(content: str) -> csv.DictReader[str]:
    """The rows of a CSV text by column name: the delimiter it uses (a spreadsheet in a semicolon
    locale writes ";"), the header's names stripped."""
    reader = csv.DictReader(io.StringIO(content), delimiter=sniff_delimiter(content))
    reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
    return reader


class TextFileError(ServiceGridError, ValueError):
    """A text file is missing, too large, not UTF-8 or lacks the column asked for."""


def resolve_input_path(path: str) -> Path:
    """``path`` itself when absolute, else under the data folder."""
    if not path.strip():
        raise TextFileError("no file path given; set the `path` parameter (mode file)")
    return resolve_data_path(path)


def read_user_text(file: Path, what: str, suffixes: tuple[str, ...], max_bytes: int,
                   error: type[ServiceGridError]) -> str:
    """The text of a user's file (UTF-8, a BOM skipped), after the checks every reader of one
    makes: a suffix of ``suffixes``, present, at most ``max_bytes``. Raises ``error`` saying which
    file and how to fix it; ``what`` names the kind in messages ("text file", "table file")."""
    if file.suffix.lower() not in suffixes:
        raise error(f"{file.name}: a {what} must be a {' or '.join(suffixes)} file")
    if not file.is_file():
        raise error(f"{what} {file} does not exist; check the `path` parameter (relative paths start "
                    "in the data folder)")
    size = file.stat().st_size
    if size > max_bytes:
        raise error(f"{what} {file.name} is {size / 2**20:.1f} MB; the limit is {max_bytes // 2**20} MB "
                    "— sample or split it first")
    try:
        return file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {file.name} is not UTF-8 (byte {exc.start}); save it as UTF-8 and try "
                    "again") from None


def read_text_file(path: str, column: str = "text") -> list[str]:
    """The non-empty texts of a .txt file (one per line) or of one .csv column."""
    file = resolve_input_path(path)
    content = read_user_text(file, "text file", (".txt", ".csv"), MAX_TEXT_FILE_BYTES, TextFileError)
    if file.suffix.lower() == ".txt":
        return [line.strip() for line in content.splitlines() if line.strip()]
    reader = csv_rows(content)
    if column not in (reader.fieldnames or []):
        raise TextFileError(f"{file.name} has no column {column!r}; its columns are "
                            f"{', '.join(reader.fieldnames or []) or '(none)'}; set `column`")
    return [row[column].strip() for row in reader if (row.get(column) or "").strip()]


def count_texts(path: str, column: str = "text") -> int | None:
    """How many texts ``read_text_file`` would give, for the planner (None when the file cannot
    be read: validation and the run say why)."""
    return _read_once(path, column)[0]


def text_file_problem(path: str, column: str = "text") -> str | None:
    """What ``read_text_file`` would refuse in the file (not UTF-8, no such CSV column, too large,
    no text in it), or None; for validation, before the run."""
    count, problem = _read_once(path, column)
    if problem is None and count == 0:
        return f"{Path(path).name} holds no text (every line or cell is empty)"
    return problem


def _read_once(path: str, column: str) -> tuple[int | None, str | None]:
    """(texts, problem) of the file, read once per version of it (``settings.file_version``)."""
    try:
        version = file_version(resolve_input_path(path))
    except (ServiceGridError, OSError, ValueError) as exc:
        return None, str(exc)
    return _read(version, column)


@functools.lru_cache(maxsize=64)
def _read(version: FileVersion, column: str) -> tuple[int | None, str | None]:
    try:
        return len(read_text_file(version[0], column)), None
    except (ServiceGridError, OSError, ValueError) as exc:
        return None, str(exc)
