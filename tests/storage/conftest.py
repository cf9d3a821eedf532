"""Storage fixtures: a Store on a real SQLite file per test, and synthetic run event streams."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from event_streams import emit, make_workflow, run_stream

from engine import events as ev
from engine.workflow import Workflow
from storage import Store


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SERVICEGRID_DATA_DIR", str(tmp_path / "data"))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("SERVICEGRID_DATABASE_URL", url)
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    yield s
    s.close()


@pytest.fixture
def workflow() -> Workflow:
    return make_workflow()


@pytest.fixture
def stream() -> Callable[..., list[ev.Event]]:
    return run_stream


@pytest.fixture
def record() -> Callable[[Store, list[ev.Event]], None]:
    """Feed events to a store's observer and wait until they are written."""

    def _record(store: Store, events: list[ev.Event]) -> None:
        emit(store, events)
        assert store.flush(timeout=30), "the store did not write the events in time"

    return _record
