"""Fault drills (trouble on purpose, for lessons): failed attempts that retries recover from, a delay
a timeout stops, extra memory that is measured (and stops an isolated node past its limit); a drilled
node is never served from the cache (tests/ray: drills run in Ray's workers too)."""

from __future__ import annotations

import time

from executor_kit import workflow

from engine.events import RunStatus
from engine.runs import RunOptions


def _drilled(faults: dict, lifecycle: dict | None = None, seconds: float = 0.01, **node: object):
    return workflow([{"id": "src", "agent": "test.source", "params": {"value": [1, 2, 3]}},
                     {"id": "b", "agent": "test.sleep", "params": {"seconds": seconds}, "faults": faults,
                      "lifecycle": lifecycle or {}, **node},
                     {"id": "out", "agent": "test.echo"}], [("src", "b"), ("b", "out")])


def test_failed_attempts_are_recovered_by_enough_retries(manager) -> None:
    m, rec = manager
    run = m.submit(_drilled({"fail_attempts": 2}, {"execution": {"retries": 2, "backoff_s": 0.01}}))
    assert run.wait(10) == RunStatus.SUCCEEDED
    assert run.snapshot().nodes["b"]["attempts"] == 3
    retried = rec.of(run.run_id, "NodeRetried")
    assert [(e.attempt, e.error_type) for e in retried] == [(1, "InjectedFaultError"), (2, "InjectedFaultError")]
    plain = m.submit(_drilled({}), RunOptions(use_cache=False))
    assert plain.wait(10) == RunStatus.SUCCEEDED
    assert m.outputs(run.run_id, "out") == m.outputs(plain.run_id, "out")  # the drill changes nothing it computes


def test_too_few_retries_fail_the_node_with_a_message_that_says_it_was_a_drill(manager) -> None:
    m, _ = manager
    run = m.submit(_drilled({"fail_attempts": 2}, {"execution": {"retries": 1, "backoff_s": 0.01}}))
    assert run.wait(10) == RunStatus.FAILED
    error = run.snapshot().nodes["b"]["error"]
    assert error["type"] == "InjectedFaultError"
    assert "attempt 2 is one of the first 2 this node's fault drill fails" in error["message"]
    assert run.snapshot().nodes["out"]["status"] == "skipped"


def test_a_delay_longer_than_the_timeout_is_stopped_by_the_timeout(manager) -> None:
    m, _ = manager
    started = time.monotonic()
    run = m.submit(_drilled({"delay_s": 30}, {"execution": {"timeout_s": 0.3}}))
    assert run.wait(10) == RunStatus.FAILED
    assert time.monotonic() - started < 5  # the wait wakes at the deadline, not after 30 s
    assert run.snapshot().nodes["b"]["error"]["type"] == "AgentTimeoutError"
    assert any("fault drill: waiting 30 s" in line for line in run.snapshot().nodes["b"]["logs"])


def test_a_delayed_node_is_cancelled_promptly(manager) -> None:
    m, _ = manager
    run = m.submit(_drilled({"delay_s": 30}))
    for _ in range(200):
        if run.snapshot().nodes["b"]["status"] == "running":
            break
        time.sleep(0.01)
    started = time.monotonic()
    m.cancel(run.run_id)
    assert run.wait(10) == RunStatus.CANCELLED
    assert time.monotonic() - started < 2


def test_extra_memory_is_measured_as_the_node_s(manager) -> None:
    m, _ = manager
    run = m.submit(_drilled({"extra_memory_mb": 150}))
    assert run.wait(10) == RunStatus.SUCCEEDED
    assert run.snapshot().nodes["b"]["metrics"]["memory_mb"] >= 140


def test_an_isolated_node_holding_more_than_its_limit_is_stopped(manager) -> None:
    m, _ = manager
    run = m.submit(_drilled({"extra_memory_mb": 600}, {"execution": {"isolate": True}}, seconds=2.0,
                            resources={"memory_mb": 100}))
    assert run.wait(60) == RunStatus.FAILED
    error = run.snapshot().nodes["b"]["error"]
    assert error["type"] == "MemoryLimitExceeded" and "its process was killed" in error["message"]


def test_a_drilled_node_runs_every_time_and_what_follows_it_too(manager) -> None:
    m, _ = manager
    wf = _drilled({"fail_attempts": 1}, {"execution": {"retries": 1, "backoff_s": 0.01}})
    for _ in range(2):
        run = m.submit(wf)
        assert run.wait(10) == RunStatus.SUCCEEDED
    nodes = run.snapshot().nodes
    assert nodes["src"]["status"] == "cached" and nodes["b"]["status"] == "done" and nodes["out"]["status"] == "done"
