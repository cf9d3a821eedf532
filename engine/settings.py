"""Where ServiceGrid keeps its files (database, cached results, uploads)."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """``$SERVICEGRID_DATA_DIR`` or ``~/.servicegrid``; created on first use."""
    path = Path(os.environ.get("SERVICEGRID_DATA_DIR") or Path.home() / ".servicegrid").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def resolve_data_path(path: str) -> Path:
    """A file path as a node's parameter gives it: itself when absolute (``~`` expanded), else
    under the data folder, where browser uploads are kept (``engine.uploads``)."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else data_dir() / candidate
