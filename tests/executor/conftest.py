"""Fixtures of the executor tests (helpers live in executor_kit)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from executor_kit import MACHINE, Recorder

from engine.results import ResultStore
from engine.runs import RunManager


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[tuple[RunManager, Recorder]]:
    m = RunManager(machine=MACHINE, results=ResultStore(tmp_path / "results"), sample_hz=20)
    rec = Recorder()
    m.bus.subscribe(rec)
    yield m, rec
    m.shutdown(timeout=5)
