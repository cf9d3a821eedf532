"""The run manager's `ray` backend: same outputs as local, events mirrored, runs stored with the Ray node."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def test_a_pinned_node_on_ray_reads_its_output_from_the_drivers_cache(manager: RunManager) -> None:
    """The same pinned workflow runs on Ray as locally: the pinned node's outputs come from the
    result cache (put in Ray's object store), the nodes that only feed it are not run, and the run
    succeeds; an unreadable pinned output fails that node clearly."""
    from engine.registry import default_registry
    from engine.results import pin_from_run
    from engine.workflow import with_pin

    chain = Workflow.model_validate({
        "schema_version": 1, "name": "pinned-on-ray",
        "nodes": [{"id": "a", "agent": "test.source", "params": {"value": [4, 5]}},
                  {"id": "b", "agent": "test.echo"}, {"id": "c", "agent": "test.echo"}],
        "edges": [{"source": "a", "target": "b"}, {"source": "b", "target": "c"}]})
    first = manager.submit(chain)
    assert first.wait(60) == RunStatus.SUCCEEDED
    pinned = with_pin(chain, "b", pin_from_run(chain, "b", first.run_id, default_registry(), manager.results))
    changed = pinned.model_copy(update={"nodes": (
        pinned.nodes[0].model_copy(update={"params": {"value": [9]}}), *pinned.nodes[1:])})
    remote = manager.submit(changed, RunOptions(backend="ray", use_cache=False))
    assert remote.wait(120) == RunStatus.SUCCEEDED
    nodes = remote.snapshot().nodes
    assert {n: v["status"] for n, v in nodes.items()} == {"a": "skipped", "b": "cached", "c": "done"}
    assert nodes["b"]["device"] == "pinned" and "only feed pinned" in nodes["a"]["reason"]
    assert remote.outputs("c") == {"out": [4, 5]}  # computed on Ray from b's pinned output, not from [9]
    (manager.results.root / pinned.node("b").pin.key / "value.json").write_text("{broken")
    broken = manager.submit(changed, RunOptions(backend="ray", use_cache=False))
    assert broken.wait(120) == RunStatus.FAILED
    nodes = broken.snapshot().nodes
    assert nodes["b"]["error"]["type"] == "PinnedOutputError" and nodes["c"]["status"] == "skipped"


def test_a_ray_run_s_snapshot_shows_a_running_node_s_progress(manager: RunManager) -> None:
    import time

    wf = Workflow.model_validate({"schema_version": 1, "name": "slow", "nodes": [
        {"id": "slow", "agent": "test.sleep", "params": {"seconds": 3.0, "steps": 10}}]})
    handle = manager.submit(wf, RunOptions(backend="ray", use_cache=False))
    seen: list[tuple[str, list[Any]]] = []
    deadline = time.time() + 60
    while handle.status == RunStatus.RUNNING and time.time() < deadline:
        node = handle.snapshot().nodes["slow"]
        seen.append((node["status"], node["progress"]))
        time.sleep(0.1)
    assert handle.wait(60) == RunStatus.SUCCEEDED
    assert any(status == "running" and 0 < done < 10 and total == 10 for status, (done, total) in seen), seen
