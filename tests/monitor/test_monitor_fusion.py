"""The monitor shows a fused chain as it ran: the head holds the chain's resources, the fused
nodes hold nothing of their own (the reserved-share chart never passes 100 %), and the status
table says which nodes ran fused; live and from the database alike. Stored runs also show the
memory a node reserved for its items."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.registry import default_registry
from engine.resources import Capacity
from engine.results import ResultStore
from engine.runs import RunManager, RunOptions
from engine.workflow import Workflow
from storage import Store
from ui.monitor.frames import node_table, utilisation_rows
from ui.monitor.view import fill_demands, view_from_snapshot, view_from_store

BATCH = {"execution": {"batch_size": 4}}
CHAIN = Workflow.model_validate({
    "schema_version": 1, "name": "fused", "capacity": {"cpu": 2, "memory_mb": 100},
    "nodes": [{"id": "src", "agent": "test.texts", "params": {"n": 40}},
              {"id": "a", "agent": "test.tag", "lifecycle": BATCH, "params": {"wait_s": 0.01},
               "resources": {"cpu": 2, "memory_mb": 40}},
              {"id": "b", "agent": "test.tag", "lifecycle": BATCH, "params": {"wait_s": 0.01},
               "resources": {"cpu": 2, "memory_mb": 40}}],
    "edges": [{"source": "src", "target": "a"}, {"source": "a", "target": "b"}]})


def _peak(view) -> dict[str, float]:
    peak: dict[str, float] = {}
    for row in utilisation_rows(view):
        peak[row["resource"]] = max(peak.get(row["resource"], 0.0), row["percent"])
    return peak


def _live_and_stored(workflow: Workflow, tmp_path: Path, monkeypatch, cpu: int) -> tuple[Any, Any]:
    """Run ``workflow`` into a SQLite store; its live view and its view read back from the store."""
    monkeypatch.setenv("SERVICEGRID_DATABASE_URL", f"sqlite:///{tmp_path / 'runs.db'}")
    store = Store()
    manager = RunManager(registry=default_registry(), machine=Capacity(cpu=cpu, memory_mb=8192, gpus=()),
                         results=ResultStore(tmp_path / "results"))
    manager.bus.subscribe(store.observer())
    try:
        handle = manager.submit(workflow, RunOptions(use_cache=False, predict=False))
        assert handle.wait(60) == "succeeded"
        assert store.flush(10)
        live = view_from_snapshot(handle.snapshot())
        stored = fill_demands(view_from_store(store.get_run(handle.run_id), store.run_samples(handle.run_id),
                                              store.node_logs(handle.run_id)), default_registry())
    finally:
        manager.shutdown()
        store.close()
    return live, stored


def test_a_fused_chain_is_shown_as_it_held_its_resources(tmp_path: Path, monkeypatch) -> None:
    live, stored = _live_and_stored(CHAIN, tmp_path, monkeypatch, cpu=4)
    for view in (live, stored):
        assert view.nodes["a"]["chain"] == ["b"] and view.nodes["b"]["fused_into"] == "a"
        peak = _peak(view)
        assert 99.0 <= max(peak.values()) <= 100.0 + 1e-6, peak  # the chain used its 2 CPUs, never 4
        why = {row["node"]: row["why"] for row in node_table(view)}
        assert "fused chain a -> b" in why["a"] and "fused into a" in why["b"]


def test_a_stored_run_shows_the_memory_its_nodes_reserved_for_their_items(tmp_path: Path, monkeypatch) -> None:
    """text.entities reserves memory per text: the stored view must show what the live run
    reserved (the workflow's declared demand plus the growth), not the agent's bare default."""
    workflow = Workflow.model_validate({
        "schema_version": 1, "name": "sized", "capacity": {"cpu": 2, "memory_mb": 4096},
        "nodes": [{"id": "reviews", "agent": "text.source", "params": {"mode": "reviews", "n": 2000}},
                  {"id": "entities", "agent": "text.entities"}],
        "edges": [{"source": "reviews", "target": "entities"}]})
    live, stored = _live_and_stored(workflow, tmp_path, monkeypatch, cpu=2)
    spec = default_registry().get("text.entities")
    reserved = live.nodes["entities"]["demand"]["memory_mb"]
    assert reserved == pytest.approx(spec.resources.memory_mb + 2000 * spec.memory_per_item_mb)
    assert stored.nodes["entities"]["demand"]["memory_mb"] == pytest.approx(reserved)


def test_a_stored_run_shows_what_its_nodes_logged(tmp_path: Path, monkeypatch) -> None:
    """History's node detail: the log lines come from the run's stored events (the node rows do
    not hold them; before, every stored node showed no log line)."""
    live, stored = _live_and_stored(CHAIN, tmp_path, monkeypatch, cpu=2)
    for node_id in ("a", "b"):
        assert stored.nodes[node_id]["logs"] == live.nodes[node_id]["logs"]
        assert any(line.startswith("fused a -> b:") for line in stored.nodes[node_id]["logs"]), node_id
