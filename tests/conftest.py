"""Test-wide isolation: every test session gets its own data folder and database."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="servicegrid-tests-"))
os.environ.setdefault("SERVICEGRID_DATA_DIR", str(_SESSION_DIR / "data"))
os.environ.setdefault("SERVICEGRID_DATABASE_URL", f"sqlite:///{_SESSION_DIR / 'servicegrid.db'}")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private data folder and SQLite database for one test."""
    monkeypatch.setenv("SERVICEGRID_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SERVICEGRID_DATABASE_URL", f"sqlite:///{tmp_path / 'servicegrid.db'}")
    return tmp_path
