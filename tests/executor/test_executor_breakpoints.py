"""Breakpoints: a run pauses before a node that has one, once its inputs are ready (Node-RED's
debugger, an IDE's red dot); Step starts it, Resume goes on; on a component's node the run pauses
before the nodes inside that its inputs feed; a fused chain stops before one."""

from __future__ import annotations

import time

import pytest
from executor_kit import sleep, statuses, until, workflow

from engine.events import RunStatus
from engine.runs import RunOptions
from engine.workflow import Workflow


def test_a_run_pauses_before_a_node_with_a_breakpoint_and_steps_into_it(manager) -> None:
    m, rec = manager
    nodes = [sleep("a"), {**sleep("b"), "breakpoint": True}, sleep("c"), sleep("side", 0.05)]
    handle = m.submit(workflow(nodes, [("a", "b"), ("b", "c")]), RunOptions(use_cache=False))
    until(lambda: handle.snapshot().paused)
    until(lambda: statuses(handle)["side"] == "done")  # what was admitted before goes on
    snap = handle.snapshot()
    assert snap.paused_at == "b" and snap.status == "running"
    assert statuses(handle) == {"a": "done", "b": "queued", "c": "waiting_inputs", "side": "done"}
    (paused,) = rec.of(handle.run_id, "RunPaused")
    assert paused.at == "b" and "b" in paused.ready
    assert handle.step()
    until(lambda: statuses(handle)["b"] == "done")
    time.sleep(0.05)
    assert statuses(handle)["c"] == "queued" and handle.snapshot().paused_at is None  # still paused, by the step
    assert handle.resume()
    assert handle.wait(10) == RunStatus.SUCCEEDED
    assert len(rec.of(handle.run_id, "RunPaused")) == 1  # the breakpoint stops the run once


def test_resume_at_a_breakpoint_runs_the_rest_and_a_later_breakpoint_pauses_again(manager) -> None:
    m, rec = manager
    nodes = [sleep("a"), {**sleep("b"), "breakpoint": True}, {**sleep("c"), "breakpoint": True}]
    handle = m.submit(workflow(nodes, [("a", "b"), ("b", "c")]), RunOptions(use_cache=False))
    until(lambda: handle.snapshot().paused_at == "b")
    handle.resume()
    until(lambda: handle.snapshot().paused_at == "c")
    assert statuses(handle)["b"] == "done"
    handle.resume()
    assert handle.wait(10) == RunStatus.SUCCEEDED
    assert [e.at for e in rec.of(handle.run_id, "RunPaused")] == ["b", "c"]


def test_breakpoints_given_with_the_run_reach_inside_components(manager) -> None:
    m, _ = manager
    component = {"name": "pair", "nodes": [sleep("first"), sleep("second")], "edges": [
        {"source": "first", "target": "second"}], "inputs": [{"name": "x", "node": "first"}],
        "outputs": [{"name": "y", "node": "second"}]}
    wf = Workflow.model_validate({
        "schema_version": 1, "name": "pairs", "components": [component],
        "nodes": [sleep("src"), {"id": "p", "agent": "component:pair"}, {"id": "q", "agent": "component:pair"}],
        "edges": [{"source": "src", "target": "p", "target_port": "x"},
                  {"source": "p", "source_port": "y", "target": "q", "target_port": "x"}]})
    handle = m.submit(wf, RunOptions(use_cache=False, breakpoints=("q", "p/second")))
    until(lambda: handle.snapshot().paused_at == "p/second")  # a node inside, named by its run id
    handle.resume()
    until(lambda: handle.snapshot().paused_at == "q/first")  # an instance: before its first node
    handle.resume()
    assert handle.wait(10) == RunStatus.SUCCEEDED
    with pytest.raises(ValueError, match="no node 'nope' to pause before"):
        m.submit(wf, RunOptions(breakpoints=("nope",)))


def test_a_fused_chain_stops_before_a_breakpoint(manager) -> None:
    m, _ = manager
    nodes = [{"id": "t", "agent": "test.texts", "params": {"n": 8}},
             {"id": "x", "agent": "test.tag", "lifecycle": {"execution": {"batch_size": 4}}},
             {"id": "y", "agent": "test.tag", "lifecycle": {"execution": {"batch_size": 4}}, "breakpoint": True},
             {"id": "z", "agent": "test.tag", "lifecycle": {"execution": {"batch_size": 4}}}]
    handle = m.submit(workflow(nodes, [("t", "x"), ("x", "y"), ("y", "z")]), RunOptions(use_cache=False))
    until(lambda: handle.snapshot().paused_at == "y")
    snap = handle.snapshot()
    assert snap.nodes["x"]["status"] == "done" and snap.nodes["y"]["status"] == "queued"
    assert not snap.nodes["x"]["chain"] or "y" not in snap.nodes["x"]["chain"]
    handle.resume()
    assert handle.wait(10) == RunStatus.SUCCEEDED


def test_one_pause_holds_every_node_ready_at_a_component_s_breakpoint(manager) -> None:
    m, rec = manager
    component = {"name": "fan", "nodes": [sleep("left"), sleep("right")],
                 "inputs": [{"name": "x", "node": "left"}, {"name": "x", "node": "right"}],
                 "outputs": [{"name": "y", "node": "left"}]}
    wf = Workflow.model_validate({
        "schema_version": 1, "name": "fan", "components": [component],
        "nodes": [sleep("src"), {"id": "f", "agent": "component:fan", "breakpoint": True}],
        "edges": [{"source": "src", "target": "f", "target_port": "x"}]})
    handle = m.submit(wf, RunOptions(use_cache=False))
    until(lambda: handle.snapshot().paused)
    (paused,) = rec.of(handle.run_id, "RunPaused")
    assert paused.at in ("f/left", "f/right") and set(paused.ready) == {"f/left", "f/right"}
    assert handle.step()
    until(lambda: sum(s == "done" for s in statuses(handle).values()) == 2)
    time.sleep(0.05)
    assert sorted(statuses(handle).values()) == ["done", "done", "queued"]  # the other waits: still paused
    handle.resume()
    assert handle.wait(10) == RunStatus.SUCCEEDED
    assert len(rec.of(handle.run_id, "RunPaused")) == 1  # not again before the second one


def test_two_breakpoints_ready_at_once_each_pause_the_run(manager) -> None:
    """Unrelated breakpoints on two branches ready together: the run pauses before one, and when
    resumed, before the other (one pause does not use up the other's breakpoint)."""
    m, rec = manager
    wf = workflow([sleep("src"), {**sleep("a"), "breakpoint": True}, {**sleep("b"), "breakpoint": True}],
                  [("src", "a"), ("src", "b")])
    handle = m.submit(wf, RunOptions(use_cache=False))
    until(lambda: handle.snapshot().paused)
    first = handle.snapshot().paused_at
    assert first in ("a", "b")
    handle.resume()
    until(lambda: len(rec.of(handle.run_id, "RunPaused")) == 2)
    second = handle.snapshot().paused_at
    assert {first, second} == {"a", "b"}
    assert statuses(handle)[second] == "queued"
    handle.resume()
    assert handle.wait(10) == RunStatus.SUCCEEDED
    assert [e.at for e in rec.of(handle.run_id, "RunPaused")] == [first, second]
