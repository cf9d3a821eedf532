"""Helpers of the fault and load tests: a manager recording into a tmp SQLite store, workflow builders."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.resources import Capacity
from engine.results import ResultStore
from engine.runs import RunManager
from engine.workflow import Workflow
from storage import Store

MACHINE = Capacity(cpu=4, memory_mb=4096, gpus=())


def workflow(nodes: list[dict[str, Any]], edges: list[tuple[str, str]] = (), name: str = "fault") -> Workflow:
    return Workflow.model_validate({"schema_version": 1, "name": name, "nodes": nodes,
                                    "edges": [{"source": s, "target": t} for s, t in edges]})


def sleep(node_id: str, seconds: float = 0.01, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "agent": "test.sleep", "params": {"seconds": seconds}, **extra}


@contextmanager
def recorded_manager(tmp: Path, *, attach_store: bool = True,
                     machine: Capacity = MACHINE) -> Iterator[tuple[RunManager, Store]]:
    """A RunManager whose events go to a Store on ``tmp/runs.db`` (always yielded, maybe detached)."""
    store = Store(f"sqlite:///{tmp / 'runs.db'}")
    manager = RunManager(machine=machine, results=ResultStore(tmp / "results"), sample_hz=5)
    if attach_store:
        manager.bus.subscribe(store.observer())
    try:
        yield manager, store
    finally:
        manager.shutdown(timeout=10)
        store.flush(10)
        store.close()


def node_records(store: Store, run_id: str) -> dict[str, dict[str, Any]]:
    """The stored node runs of a run, by node id (status, times, metrics, error)."""
    detail = store.get_run(run_id)
    assert detail is not None, f"run {run_id} is not in the store"
    return {n.node_id: n.to_dict() for n in detail.nodes}
