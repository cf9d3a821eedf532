"""Shared helpers of the executor tests: a small machine, event recording, workflow builders.

A plain module (not conftest) so test files can import it by a name no other test folder uses."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from engine.events import Event
from engine.resources import Capacity
from engine.workflow import Workflow

MACHINE = Capacity(cpu=4, memory_mb=8192, gpus=())


class FakeGpu:
    """Stands in for torch.cuda: records resets and reports fixed numbers."""

    def __init__(self) -> None:
        self.resets: list[str] = []

    def task_start(self, device: str) -> None:
        self.resets.append(device)

    def task_peak_mb(self, device: str) -> float | None:
        return 123.0

    def sample_mb(self, device: str) -> float | None:
        return 42.0

    def devices(self) -> list[str]:
        return ["cuda:0"]


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


def until(check: Callable[[], bool], timeout: float = 10.0, every: float = 0.005) -> None:
    """Wait until ``check()`` holds, asking every ``every`` s (failing the test after ``timeout`` s)."""
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(every)


def statuses(handle: Any) -> dict[str, str]:
    """Each node's status in the run's snapshot."""
    return {nid: n["status"] for nid, n in handle.snapshot().nodes.items()}
