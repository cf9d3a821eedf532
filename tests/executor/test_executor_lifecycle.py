"""Lifecycle rules of the executor: failure and skip, retries, timeouts, cancel, shared capacity."""

from __future__ import annotations

import time

from executor_kit import workflow
from sweep import assert_within, max_usage

from engine.events import NodeStatus, RunStatus
from engine.resources import Capacity
from engine.runs import RunOptions

NO_CACHE = RunOptions(use_cache=False)


def wait_until(predicate, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.005)


def test_failing_node_skips_descendants_and_independent_branch_finishes(manager) -> None:
    m, rec = manager
    wf = workflow([
        {"id": "src", "agent": "test.source"},
        {"id": "bad", "agent": "test.fail", "params": {"message": "boom"}},
        {"id": "child", "agent": "test.echo"},
        {"id": "grandchild", "agent": "test.echo"},
        {"id": "other", "agent": "test.sleep", "params": {"seconds": 0.02}},
    ], [("src", "bad"), ("bad", "child"), ("child", "grandchild"), ("src", "other")])
    h = m.submit(wf, NO_CACHE)
    assert h.wait(10) == RunStatus.FAILED
    nodes = h.snapshot().nodes
    assert nodes["bad"]["status"] == "failed"
    assert nodes["bad"]["error"]["type"] == "RuntimeError"
    assert nodes["bad"]["error"]["message"] == (
        "node 'bad' (agent 'test.fail') failed: RuntimeError: boom (attempt 1)")
    assert "Traceback" in nodes["bad"]["error"]["traceback"]
    for nid in ("child", "grandchild"):
        assert nodes[nid]["status"] == "skipped"
        assert nodes[nid]["reason"] == "upstream node 'bad' failed"
    assert nodes["other"]["status"] == "done"
    skipped = rec.of(h.run_id, "NodeSkipped")
    assert {e.node_id for e in skipped} == {"child", "grandchild"}


def test_fail_fast_cancels_the_rest(manager) -> None:
    m, _ = manager
    wf = workflow([{"id": "bad", "agent": "test.fail"},
                   {"id": "slow", "agent": "test.sleep", "params": {"seconds": 5}},
                   {"id": "after", "agent": "test.echo"}], [("slow", "after")])
    h = m.submit(wf, RunOptions(use_cache=False, fail_fast=True))
    assert h.wait(10) == RunStatus.FAILED
    nodes = h.snapshot().nodes
    assert nodes["slow"]["status"] == "cancelled"
    assert "fail_fast" in nodes["slow"]["reason"]
    assert nodes["after"]["status"] in ("cancelled", "skipped")


def test_retries_with_backoff_succeed_on_the_third_attempt(manager) -> None:
    m, rec = manager
    wf = workflow([{"id": "flaky", "agent": "test.fail", "params": {"fail_times": 2},
                    "lifecycle": {"execution": {"retries": 2, "backoff_s": 0.01, "backoff_factor": 3}}}])
    h = m.submit(wf, NO_CACHE)
    assert h.wait(10) == RunStatus.SUCCEEDED
    retried = rec.of(h.run_id, "NodeRetried")
    assert [e.attempt for e in retried] == [1, 2]
    assert [round(e.delay_s, 6) for e in retried] == [0.01, 0.03]
    assert h.snapshot().nodes["flaky"]["attempts"] == 3
    assert rec.of(h.run_id, "NodeFinished")[0].metrics["attempts"] == 3


def test_retries_exhausted_fail(manager) -> None:
    m, _ = manager
    wf = workflow([{"id": "flaky", "agent": "test.fail", "params": {"fail_times": 5},
                    "lifecycle": {"execution": {"retries": 1, "backoff_s": 0}}}])
    h = m.submit(wf, NO_CACHE)
    assert h.wait(10) == RunStatus.FAILED
    assert h.snapshot().nodes["flaky"]["attempts"] == 2


def test_timeout_fails_the_node(manager) -> None:
    m, rec = manager
    wf = workflow([{"id": "stuck", "agent": "test.hang", "lifecycle": {"execution": {"timeout_s": 0.1}}}])
    h = m.submit(wf, NO_CACHE)
    assert h.wait(10) == RunStatus.FAILED
    failed = rec.of(h.run_id, "NodeFailed")[0]
    assert failed.error_type == "AgentTimeoutError"
    assert "timed out" in failed.message and "0.1 s" in failed.message


def test_cancel_run_stops_running_and_pending_nodes(manager) -> None:
    m, _ = manager
    wf = workflow([{"id": "a", "agent": "test.hang"}, {"id": "b", "agent": "test.echo"}], [("a", "b")])
    h = m.submit(wf, NO_CACHE)
    wait_until(lambda: h.snapshot().nodes["a"]["status"] == "running")
    m.cancel(h.run_id)
    assert h.wait(10) == RunStatus.CANCELLED
    nodes = h.snapshot().nodes
    assert nodes["a"]["status"] == nodes["b"]["status"] == "cancelled"


def test_cancel_one_node_skips_its_descendants_only(manager) -> None:
    m, _ = manager
    wf = workflow([{"id": "a", "agent": "test.hang"}, {"id": "b", "agent": "test.echo"},
                   {"id": "c", "agent": "test.sleep", "params": {"seconds": 0.01}}], [("a", "b")])
    h = m.submit(wf, NO_CACHE)
    wait_until(lambda: h.snapshot().nodes["a"]["status"] == "running")
    m.cancel_node(h.run_id, "a")
    h.wait(10)
    nodes = h.snapshot().nodes
    assert nodes["a"]["status"] == "cancelled"
    assert nodes["b"]["status"] == "skipped" and nodes["b"]["reason"] == "upstream node 'a' was cancelled"
    assert nodes["c"]["status"] == "done"


def test_two_concurrent_runs_share_the_capacity_without_overcommit(manager) -> None:
    m, rec = manager
    nodes = [{"id": f"n{i}", "agent": "test.sleep", "params": {"seconds": 0.01}, "resources": {"cpu": 1 + i % 2}}
             for i in range(8)]
    handles = [m.submit(workflow(nodes, name=f"w{k}"), NO_CACHE) for k in range(3)]
    assert [h.wait(20) for h in handles] == [RunStatus.SUCCEEDED] * 3
    ids = {h.run_id for h in handles}
    events = [e for e in rec.events if e.run_id in ids]
    peak = max_usage(events)
    assert_within(peak, {"cpu": 4.0, "memory_mb": 8192.0})
    assert peak["cpu"] > 2  # the runs did overlap: the check had something to check


def test_per_run_capacity_is_enforced(manager) -> None:
    m, rec = manager
    nodes = [{"id": f"n{i}", "agent": "test.sleep", "params": {"seconds": 0.01}, "resources": {"memory_mb": 300}}
             for i in range(6)]
    h = m.submit(workflow(nodes), RunOptions(use_cache=False, capacity=Capacity(memory_mb=600)))
    assert h.wait(10) == RunStatus.SUCCEEDED
    assert max_usage(rec.of(h.run_id))["memory_mb"] <= 600
    waits = rec.of(h.run_id, "NodeWaitingResource")
    assert waits and {e.resource for e in waits} <= {"memory_mb", "cpu"}
    assert all(e.held_by for e in waits)


def test_waiting_events_name_upstream_nodes(manager) -> None:
    m, rec = manager
    h = m.submit(workflow([{"id": "a", "agent": "test.source"}, {"id": "b", "agent": "test.echo"}], [("a", "b")]),
                 NO_CACHE)
    h.wait(10)
    (w,) = rec.of(h.run_id, "NodeWaitingInputs")
    assert w.node_id == "b" and w.waiting_for == ("a",)
    kinds = [e.kind for e in rec.of(h.run_id) if e.node_id == "b"]
    assert kinds == ["NodeWaitingInputs", "NodeQueued", "NodeStarted", "NodeFinished"]


def test_metrics_and_snapshot(manager) -> None:
    m, rec = manager
    wf = workflow([{"id": "mem", "agent": "test.hold_memory", "params": {"mb": 8, "seconds": 0.4}}])
    h = m.submit(wf, NO_CACHE)
    assert h.wait(10) == RunStatus.SUCCEEDED
    metrics = rec.of(h.run_id, "NodeFinished")[0].metrics
    assert set(metrics) >= {"wait_inputs_s", "wait_resource_s", "wait_resource", "queue_s", "wall_s", "cpu_s",
                            "peak_rss_mb", "memory_mb", "peak_gpu_mb", "items", "attempts", "device", "threads"}
    assert metrics["wall_s"] >= 0.4 and metrics["device"] == "cpu" and metrics["peak_gpu_mb"] is None
    snap = h.snapshot()
    assert snap.progress == (1, 1) and snap.status == "succeeded" and snap.version > 0
    assert snap.nodes["mem"]["output_summary"]["out"]["type"] == "dict"
    assert rec.of(h.run_id, "MetricSampled"), "the sampler emitted nothing during a 0.4 s run at 20 Hz"


def test_invalid_workflow_is_refused(manager) -> None:
    import pytest

    from engine.errors import WorkflowInvalidError

    m, _ = manager
    with pytest.raises(WorkflowInvalidError) as info:
        m.submit(workflow([{"id": "a", "agent": "test.nope"}]))
    assert info.value.issues


def test_time_limit_exit_is_not_a_failure(manager) -> None:
    from engine.spec import RunContext

    ctx = RunContext(stop_at=0.0, clock=lambda: 1.0)
    assert ctx.should_stop()
    assert not RunContext(clock=lambda: 1.0).should_stop()
    assert NodeStatus.DONE.is_terminal


def test_cancel_flag_behaves_like_an_event() -> None:
    import threading

    from engine.runstate import CancelFlag

    flag = CancelFlag()
    assert not flag.is_set() and flag.wait(0.001) is False
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(flag.wait(30)))
    waiter.start()
    flag.set()
    waiter.join(30)
    assert woke == [True] and flag.is_set() and flag.wait() is True
