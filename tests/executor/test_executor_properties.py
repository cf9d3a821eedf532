"""Hypothesis properties of the executor over random DAGs of tiny sleeps with random demands:
every node runs once and after its parents, nothing is over-committed, runs always terminate,
and a cancel at any moment leaves every node in a terminal state."""

from __future__ import annotations

import time
from pathlib import Path

from executor_kit import MACHINE, Recorder, workflow
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sweep import assert_within, max_usage

from engine.events import NodeStatus, RunStatus
from engine.resources import Capacity
from engine.results import ResultStore
from engine.runs import RunManager, RunOptions

_manager: RunManager | None = None
_rec = Recorder()


def shared_manager() -> RunManager:
    global _manager
    if _manager is None:
        _manager = RunManager(machine=MACHINE, results=ResultStore(Path("/nonexistent-never-written")))
        _manager.bus.subscribe(_rec)
    return _manager


def teardown_module() -> None:
    if _manager is not None:
        _manager.shutdown()


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[dict], list[tuple[str, str]], Capacity]:
    cap_cpu = draw(st.sampled_from([1.0, 2.0, 3.0, 4.0]))
    cap_mem = draw(st.sampled_from([256.0, 1000.0]))
    n = draw(st.integers(1, 10))
    nodes = []
    for i in range(n):
        cpu = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0]).filter(lambda c: c <= cap_cpu))
        mem = draw(st.sampled_from([0.0, 100.0, 256.0]))
        nodes.append({"id": f"n{i}", "agent": "test.sleep",
                      "params": {"seconds": draw(st.sampled_from([0.0, 0.001, 0.003]))},
                      "resources": {"cpu": cpu, "memory_mb": mem}})
    edges = [(f"n{i}", f"n{j}") for j in range(n) for i in range(j) if draw(st.booleans()) and draw(st.booleans())]
    return nodes, edges, Capacity(cpu=cap_cpu, memory_mb=cap_mem)


SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(dag=dags(), policy=st.sampled_from(["fifo", "critical_path", "smallest_demand", "auto"]))
def test_every_node_runs_once_after_its_parents_without_overcommit(dag, policy) -> None:
    nodes, edges, cap = dag
    m = shared_manager()
    h = m.submit(workflow(nodes, edges), RunOptions(policy=policy, capacity=cap, use_cache=False, plan_budget_s=0.05))
    assert h.wait(20) == RunStatus.SUCCEEDED
    events = _rec.of(h.run_id)
    started = [e.node_id for e in events if e.kind == "NodeStarted"]
    finished = [e.node_id for e in events if e.kind == "NodeFinished"]
    assert sorted(started) == sorted(n["id"] for n in nodes) == sorted(finished)
    position = {e.node_id: i for i, e in enumerate(events) if e.kind in ("NodeStarted", "NodeFinished")
                and (e.kind == "NodeStarted")}
    done_at = {e.node_id: i for i, e in enumerate(events) if e.kind == "NodeFinished"}
    for s, t in edges:
        assert done_at[s] < position[t], f"{t} started before its parent {s} finished"
    assert_within(max_usage(events), {"cpu": cap.cpu, "memory_mb": cap.memory_mb})
    assert events[-1].kind == "RunFinished"


@SETTINGS
@given(dag=dags(), delay=st.floats(0, 0.01))
def test_cancel_at_any_moment_terminates_with_every_node_terminal(dag, delay) -> None:
    nodes, edges, cap = dag
    m = shared_manager()
    h = m.submit(workflow(nodes, edges), RunOptions(capacity=cap, use_cache=False, predict=False))
    time.sleep(delay)
    h.cancel()
    status = h.wait(20)
    assert status in (RunStatus.CANCELLED, RunStatus.SUCCEEDED)
    snap = h.snapshot()
    assert all(NodeStatus(v["status"]).is_terminal for v in snap.nodes.values()), snap.nodes
    assert snap.progress == (len(nodes), len(nodes))
    events = _rec.of(h.run_id)
    terminal = [e.node_id for e in events if e.kind in ("NodeFinished", "NodeFailed", "NodeCancelled", "NodeSkipped")]
    assert sorted(terminal) == sorted(n["id"] for n in nodes)  # exactly one ending per node
    assert_within(max_usage(events), {"cpu": cap.cpu, "memory_mb": cap.memory_mb})
