"""Where ServiceGrid keeps its files (database, cached results, uploads), and which files nodes
may read."""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import DataPathError

UPLOADS_DIR = "uploads"  # under the data folder: files handed over in the browser (engine.uploads)
MAX_NAME_BYTES = 255  # the longest file or folder name Linux, macOS and Windows file systems allow


def data_dir() -> Path:
    """``$SERVICEGRID_DATA_DIR`` or ``~/.servicegrid``; created on first use."""
    path = Path(os.environ.get("SERVICEGRID_DATA_DIR") or Path.home() / ".servicegrid").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


FILE_ROOTS_ENV = "SERVICEGRID_FILE_ROOTS"


def file_roots() -> tuple[Path, ...] | None:
    """The folders nodes may read files from, or None for anywhere.

    ``$SERVICEGRID_FILE_ROOTS`` (folders separated by ``os.pathsep``) when set; else, in the
    shared lab mode (``SERVICEGRID_LAB_MODE``), the uploads folder alone (``<data folder>/uploads``),
    so that a student's node cannot read the server's other files, the database or other runs'
    results; else anywhere (one person on their own machine).
    """
    raw = os.environ.get(FILE_ROOTS_ENV, "")
    if raw.strip():
        return tuple(Path(p.strip()).expanduser().resolve() for p in raw.split(os.pathsep) if p.strip())
    if os.environ.get("SERVICEGRID_LAB_MODE", "").strip().lower() in ("1", "true", "yes", "on"):
        uploads = data_dir() / UPLOADS_DIR
        uploads.mkdir(exist_ok=True)
        return (uploads.resolve(),)
    return None


FileVersion = tuple[str, int, int]  # a file's path, size and modification time (ns)


def file_version(file: Path) -> FileVersion:
    """The key under which a reader caches what it read from ``file``: a changed file is read
    again, an unchanged one costs a ``stat``. Raises OSError when it cannot be read."""
    stat = file.stat()
    return str(file), stat.st_size, stat.st_mtime_ns


def resolve_data_path(path: str) -> Path:
    """A file path as a node's parameter gives it: itself when absolute (``~`` expanded), else
    under the data folder, where browser uploads are kept (``engine.uploads``).

    Raises:
        DataPathError: the file (links and ``..`` followed) lies outside ``file_roots()``, or a
            name in the path is longer than a file system allows (every check of such a path
            would raise ``OSError``).
    """
    candidate = Path(path).expanduser()
    file = candidate if candidate.is_absolute() else data_dir() / candidate
    long = next((part for part in file.parts if len(os.fsencode(part)) > MAX_NAME_BYTES), None)
    if long is not None:
        raise DataPathError(f"{path[:80]!r}{'...' if len(path) > 80 else ''}: a name in the path is "
                            f"{len(os.fsencode(long))} bytes long, more than a file name may be "
                            f"({MAX_NAME_BYTES}); check the path")
    roots = file_roots()
    if roots is not None:
        real = file.resolve()
        if not any(real.is_relative_to(root) for root in roots):
            raise DataPathError(
                f"{path!r} is outside the folders this server reads files from "
                f"({', '.join(str(r) for r in roots)}); upload the file in the designer (Your files), "
                f"or ask whoever runs the server to add its folder to {FILE_ROOTS_ENV}")
    return file
