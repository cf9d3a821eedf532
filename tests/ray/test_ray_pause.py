"""Pause, step and resume on the Ray backend: a paused run hands no more nodes to Ray, and the ones
Ray holds already (submitted ahead of their inputs) wait in their workers until a step releases
them or the run resumes; a run can be walked node by node, and cancelled while paused."""

from __future__ import annotations

import io
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.backends.ray_run import Gate
from engine.errors import AmendError
from engine.events import RunStatus
from engine.results import ResultStore
from engine.runs import RunManager, RunOptions
from engine.workflow import Workflow
from tests.executor.executor_kit import statuses, until

pytestmark = pytest.mark.ray


def _chain(first_s: float = 0.05) -> Workflow:
    """a -> b -> c, each a short sim task (``first_s`` for a)."""
    return Workflow.model_validate({
        "schema_version": 1, "name": "chain",
        "nodes": [{"id": "a", "agent": "sim.task", "params": {"duration_s": first_s}},
                  {"id": "b", "agent": "sim.task", "params": {"duration_s": 0.05}},
                  {"id": "c", "agent": "sim.task", "params": {"duration_s": 0.05}}],
        "edges": [{"source": "a", "target": "b"}, {"source": "b", "target": "c"}]})


@pytest.fixture
def manager(ray_cluster: object, tmp_path: Path) -> Iterator[RunManager]:
    m = RunManager(results=ResultStore(tmp_path / "results"))
    yield m
    m.shutdown()


def _until(check: Callable[[], bool]) -> None:
    until(check, timeout=60.0, every=0.05)  # a Ray run: slower than a local one, and polled less often


def test_the_gate_lets_steps_through_one_by_one() -> None:
    gate = Gate(paused=True)
    assert not gate.take()
    assert gate.step(2) and gate.take() and gate.take() and not gate.take()
    assert not gate.pause()  # paused already
    assert gate.resume() and gate.take() and not gate.resume()
    assert not gate.step()  # not paused: nothing to step


def test_a_ray_run_started_paused_is_walked_node_by_node(manager: RunManager) -> None:
    handle = manager.submit(_chain(), RunOptions(backend="ray", start_paused=True, use_cache=False))
    time.sleep(1.0)
    assert statuses(handle)["a"] == "queued" and handle.snapshot().paused
    assert handle.step()
    _until(lambda: statuses(handle)["a"] == "done")
    time.sleep(0.8)  # b is ready: it waits for the next step
    assert statuses(handle)["b"] == "queued"
    assert handle.step()
    _until(lambda: statuses(handle)["b"] == "done")
    time.sleep(0.8)
    assert statuses(handle)["c"] == "queued"
    assert handle.resume()
    assert handle.wait(60) == RunStatus.SUCCEEDED
    snap = handle.snapshot()
    assert not snap.paused and len(snap.pauses) == 1 and snap.pauses[0][1] is not None


def test_pausing_midway_holds_the_nodes_ray_holds_already(manager: RunManager) -> None:
    """b and c are handed to Ray while a runs (ahead of their inputs); paused, they wait in their
    workers: b starts only when a step releases it, c only at resume."""
    handle = manager.submit(_chain(first_s=1.5), RunOptions(backend="ray", use_cache=False))
    _until(lambda: statuses(handle)["a"] == "running")
    assert handle.pause() and not handle.pause()
    _until(lambda: statuses(handle)["a"] == "done")
    time.sleep(1.0)
    assert statuses(handle)["b"] == "queued"  # its inputs are there: the pause holds it
    held_at = time.time()
    assert handle.step()
    _until(lambda: statuses(handle)["b"] == "done")
    time.sleep(1.0)
    assert statuses(handle)["c"] == "queued"
    assert handle.resume()
    assert handle.wait(60) == RunStatus.SUCCEEDED
    b = handle.snapshot().nodes["b"]
    assert b["start"] >= held_at - 0.05  # it started after the step, not when a finished


def test_a_paused_ray_run_is_cancelled_with_the_nodes_waiting_in_workers(manager: RunManager) -> None:
    handle = manager.submit(_chain(first_s=1.0), RunOptions(backend="ray", use_cache=False))
    _until(lambda: statuses(handle)["a"] == "running")
    handle.pause()
    _until(lambda: statuses(handle)["a"] == "done")
    time.sleep(0.5)
    started = time.time()
    handle.cancel()
    assert handle.wait(30) == RunStatus.CANCELLED
    assert time.time() - started < 5.0  # the held attempts read the cancel, none waits for its grace
    now = statuses(handle)
    assert now["a"] == "done" and {now["b"], now["c"]} <= {"cancelled", "skipped"}


def test_priority_stays_a_local_backend_feature(manager: RunManager) -> None:
    handle = manager.submit(_chain(), RunOptions(backend="ray", start_paused=True, use_cache=False))
    with pytest.raises(ValueError, match="local backend"):
        manager.set_priority(handle.run_id, 5)
    handle.resume()
    assert handle.wait(60) == RunStatus.SUCCEEDED


def test_the_cli_walks_a_ray_run_step_by_step(ray_cluster: object, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from servicegrid.cli import main

    monkeypatch.setenv("SERVICEGRID_DATABASE_URL", f"sqlite:///{tmp_path / 'runs.db'}")
    monkeypatch.setenv("SERVICEGRID_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(_chain().to_dict()))
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n\nr\n"))
    assert main(["run", str(path), "--step", "--backend", "ray", "--no-cache"]) == 0
    err = capsys.readouterr().err
    assert re.findall(r"paused: Enter starts (\w+)", err) == ["a", "b", "c"]
    assert err.index("done    a") < err.index("Enter starts b") < err.index("done    b")


def test_a_breakpoint_pauses_a_ray_run_before_its_node(manager: RunManager) -> None:
    """b is not handed to Ray ahead of its inputs (it has a breakpoint): the run pauses when a
    ends, b waits for a step, and c (after b) for the resume."""
    chain = _chain()
    chain = chain.model_copy(update={"nodes": tuple(
        n.model_copy(update={"breakpoint": True}) if n.id == "b" else n for n in chain.nodes)})
    handle = manager.submit(chain, RunOptions(backend="ray", use_cache=False))
    _until(lambda: handle.snapshot().paused_at == "b")
    time.sleep(0.8)
    assert statuses(handle) == {"a": "done", "b": "queued", "c": "waiting_inputs"}
    assert handle.step()
    _until(lambda: statuses(handle)["b"] == "done")
    time.sleep(0.8)
    assert statuses(handle)["c"] == "queued"
    assert handle.resume()
    assert handle.wait(60) == RunStatus.SUCCEEDED


def test_a_conditional_breakpoint_on_ray_reads_the_inputs_from_the_object_store(manager: RunManager) -> None:
    """The driver tests the condition on the parent's outputs in Ray's object store: a condition
    that holds pauses the run before its node and says what it found; one that does not lets it go on."""
    table = {"columns": {"amount": [20, 950, 40]}, "ids": ["t1", "t2", "t3"]}

    def flow(condition: dict[str, Any]) -> Workflow:
        return Workflow.model_validate({
            "schema_version": 1, "name": "tickets",
            "nodes": [{"id": "src", "agent": "test.source", "params": {"value": table}},
                      {"id": "check", "agent": "test.echo", "breakpoint": True, "break_when": condition},
                      {"id": "after", "agent": "sim.task", "params": {"duration_s": 0.05}}],
            "edges": [{"source": "src", "target": "check"}, {"source": "check", "target": "after"}]})

    handle = manager.submit(flow({"field": "amount", "op": ">", "value": 500}), RunOptions(backend="ray", use_cache=False))
    _until(lambda: handle.snapshot().paused_at == "check")
    assert handle.snapshot().paused_why == "amount > 500 holds for 1 of 3 rows"
    assert statuses(handle)["check"] == "queued"
    assert manager.inputs(handle.run_id, "check") == {"in": [table]}  # read from Ray's object store
    assert handle.resume()
    assert handle.wait(60) == RunStatus.SUCCEEDED
    quiet = manager.submit(flow({"field": "amount", "op": ">", "value": 5000}), RunOptions(backend="ray", use_cache=False))
    assert quiet.wait(60) == RunStatus.SUCCEEDED
    assert "breakpoint: amount > 5000 holds for none of 3 rows: not paused" in quiet.snapshot().nodes["check"]["logs"]


def test_edit_and_continue_on_ray_changes_nodes_not_handed_to_ray(manager: RunManager) -> None:
    """Paused at a's breakpoint: a and b (not handed to Ray yet) take new parameters, b a
    breakpoint set now; the driver runs them with those; a node that ran refuses a change."""
    batch = {"execution": {"batch_size": 2}}
    wf = Workflow.model_validate({
        "schema_version": 1, "name": "tags",
        "nodes": [{"id": "src", "agent": "test.texts", "params": {"n": 4}},
                  {"id": "a", "agent": "test.tag", "params": {"suffix": "A"}, "lifecycle": batch, "breakpoint": True},
                  {"id": "b", "agent": "test.tag", "params": {"suffix": "B"}, "lifecycle": batch}],
        "edges": [{"source": "src", "target": "a"}, {"source": "a", "target": "b"}]})
    handle = manager.submit(wf, RunOptions(backend="ray", use_cache=False))
    _until(lambda: handle.snapshot().paused_at == "a")
    assert handle.set_params("a", suffix="Z") == ["suffix 'A' -> 'Z'"]
    b = manager.workflow(handle.run_id).node("b")
    assert handle.amend([b.model_copy(update={"params": {"suffix": "Y"}, "breakpoint": True})]) == {
        "b": ["suffix 'B' -> 'Y'", "breakpoint off -> on"]}
    assert handle.resume()
    _until(lambda: handle.snapshot().paused_at == "b")  # the breakpoint set during the run
    with pytest.raises(AmendError, match=r"node 'a' of run \w+ has ended \(done\)"):
        handle.set_params("a", suffix="Q")
    assert handle.resume()
    assert handle.wait(60) == RunStatus.SUCCEEDED
    assert handle.outputs("b")["texts"]["texts"] == [f"item-{i}ZY" for i in range(4)]
    assert "settings changed during the run: suffix 'A' -> 'Z'" in handle.snapshot().nodes["a"]["logs"]


def test_a_node_ray_holds_already_refuses_a_change(manager: RunManager) -> None:
    """Short plain tasks: b and c are handed to Ray with a (their inputs resolve in the object
    store), so the driver refuses to change c, and the run and its record stay as they were."""
    chain = _chain(first_s=0.45)
    chain = chain.model_copy(update={"nodes": tuple(
        n.model_copy(update={"params": {"duration_s": 0.45}}) if n.id == "b" else n for n in chain.nodes)})
    handle = manager.submit(chain, RunOptions(backend="ray", use_cache=False))
    _until(lambda: statuses(handle)["a"] in ("running", "done"))
    with pytest.raises(AmendError, match=r"node 'c' of run \w+ was handed to Ray already \(\w+\)"):
        handle.set_params("c", duration_s=0.2)
    assert manager.workflow(handle.run_id).node("c").params == {"duration_s": 0.05}
    assert handle.snapshot().amended == {}
    assert handle.wait(60) == RunStatus.SUCCEEDED


def test_pause_on_failure_on_ray_holds_the_failed_node_for_a_fix_and_a_retry(manager: RunManager) -> None:
    """The driver holds a failed node and what follows it (nothing is handed to Ray ahead of its
    inputs then); its settings change and a retry hands it to Ray again; Resume gives up instead."""
    def flaky() -> Workflow:
        return Workflow.model_validate({
            "schema_version": 1, "name": "flaky",
            "nodes": [{"id": "src", "agent": "test.source", "params": {"value": [1, 2]}},
                      {"id": "check", "agent": "test.fail", "params": {"fail_times": -1}},
                      {"id": "after", "agent": "test.echo"}],
            "edges": [{"source": "src", "target": "check"}, {"source": "check", "target": "after"}]})

    options = RunOptions(backend="ray", use_cache=False, pause_on_failure=True)
    handle = manager.submit(flaky(), options)
    _until(lambda: bool(handle.snapshot().held))
    snap = handle.snapshot()
    assert snap.paused and set(snap.held) == {"check"} and "RuntimeError" in snap.held["check"]
    assert statuses(handle) == {"src": "done", "check": "failed", "after": "waiting_inputs"}
    assert handle.set_params("check", fail_times=0) == ["fail_times -1 -> 0"]
    assert handle.retry("check") and not handle.retry("check")
    assert handle.step()
    _until(lambda: statuses(handle)["check"] == "done")
    assert handle.resume()
    assert handle.wait(60) == RunStatus.SUCCEEDED
    assert handle.outputs("after") == {"out": [[1, 2]]}  # src's value, through check
    again = manager.submit(flaky(), options)
    _until(lambda: bool(again.snapshot().held))
    assert again.resume()  # give up on it
    assert again.wait(60) == RunStatus.FAILED
    assert statuses(again)["after"] == "skipped"


def test_two_breakpoints_ready_at_once_each_pause_a_ray_run(manager: RunManager) -> None:
    wf = Workflow.model_validate({
        "schema_version": 1, "name": "fork",
        "nodes": [{"id": "src", "agent": "sim.task", "params": {"duration_s": 0.05}},
                  {"id": "a", "agent": "sim.task", "params": {"duration_s": 0.05}, "breakpoint": True},
                  {"id": "b", "agent": "sim.task", "params": {"duration_s": 0.05}, "breakpoint": True}],
        "edges": [{"source": "src", "target": "a"}, {"source": "src", "target": "b"}]})
    handle = manager.submit(wf, RunOptions(backend="ray", use_cache=False))
    _until(lambda: handle.snapshot().paused_at is not None)
    first = handle.snapshot().paused_at
    assert handle.resume()
    _until(lambda: handle.snapshot().paused_at not in (None, first))
    assert {first, handle.snapshot().paused_at} == {"a", "b"}
    assert handle.resume()
    assert handle.wait(60) == RunStatus.SUCCEEDED
