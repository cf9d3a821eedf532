"""The run manager's `ray` backend: same outputs as local, events mirrored, runs stored with the Ray node."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.events import RunStatus
from engine.results import ResultStore
from engine.runs import RunManager, RunOptions
from engine.workflow import Workflow

pytestmark = pytest.mark.ray


def _diamond() -> Workflow:
    return Workflow.model_validate({
        "schema_version": 1, "name": "diamond",
        "nodes": [
            {"id": "a", "agent": "test.source", "params": {"value": 7}},
            {"id": "b", "agent": "test.echo"},
            {"id": "c", "agent": "sim.task", "params": {"duration_s": 0.05}},
            {"id": "d", "agent": "test.echo"},
        ],
        "edges": [{"source": "a", "target": "b"}, {"source": "a", "target": "c"},
                  {"source": "b", "target": "d"}, {"source": "c", "target": "d"}],
    })


@pytest.fixture
def manager(ray_cluster: object, tmp_path: Path) -> Iterator[RunManager]:
    m = RunManager(results=ResultStore(tmp_path / "results"))
    yield m
    m.shutdown()


def test_ray_run_gives_the_local_outputs_and_records_the_ray_node(manager: RunManager, tmp_path: Path) -> None:
    from storage import Store

    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    manager.bus.subscribe(store.observer())
    wf = _diamond()
    local = manager.submit(wf, RunOptions(use_cache=False))
    remote = manager.submit(wf, RunOptions(backend="ray", use_cache=False))
    assert local.wait(60) == RunStatus.SUCCEEDED
    assert remote.wait(120) == RunStatus.SUCCEEDED
    for node in ("a", "b", "d"):
        assert json.dumps(remote.outputs(node), sort_keys=True) == json.dumps(local.outputs(node), sort_keys=True)
    snap = remote.snapshot()
    assert snap.progress == (4, 4)
    assert {v["status"] for v in snap.nodes.values()} == {"done"}
    assert store.flush(10)
    detail = store.get_run(remote.run_id)
    assert detail is not None and detail.status == "succeeded"
    assert all(n.metrics.get("ray_node_id") for n in detail.nodes)
    store.close()


def test_ray_run_can_be_cancelled_through_the_manager(manager: RunManager) -> None:
    wf = Workflow.model_validate({
        "schema_version": 1, "name": "slow",
        "nodes": [{"id": "s", "agent": "test.sleep", "params": {"seconds": 30}},
                  {"id": "t", "agent": "test.echo"}],
        "edges": [{"source": "s", "target": "t"}],
    })
    handle = manager.submit(wf, RunOptions(backend="ray", use_cache=False))
    import time

    deadline = time.monotonic() + 60
    while handle.snapshot().nodes["s"]["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    manager.cancel(handle.run_id)
    assert handle.wait(60) == RunStatus.CANCELLED
    assert all(v["status"] in ("cancelled", "skipped") for v in handle.snapshot().nodes.values())
