"""Shared helpers of the executor tests: a small machine, event recording, workflow builders."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.events import Event
from engine.resources import Capacity
from engine.results import ResultStore
from engine.runs import RunManager
from engine.workflow import Workflow

MACHINE = Capacity(cpu=4, memory_mb=8192, gpus=())


class Recorder:
    """Collects every event in emission order (thread-safe)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def on_event(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, run_id: str, kind: str | None = None) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.run_id == run_id and (kind is None or e.kind == kind)]


def workflow(nodes: list[dict[str, Any]], edges: list[tuple[str, str]] = (), name: str = "t", **extra: Any) -> Workflow:
    return Workflow.model_validate({
        "schema_version": 1, "name": name, "nodes": nodes,
        "edges": [{"source": s, "target": t} for s, t in edges], **extra})


def sleep(node_id: str, seconds: float = 0.005, **resources: Any) -> dict[str, Any]:
    return {"id": node_id, "agent": "test.sleep", "params": {"seconds": seconds}, "resources": resources}


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[tuple[RunManager, Recorder]]:
    m = RunManager(machine=MACHINE, results=ResultStore(tmp_path / "results"), sample_hz=20)
    rec = Recorder()
    m.bus.subscribe(rec)
    yield m, rec
    m.shutdown(timeout=5)
