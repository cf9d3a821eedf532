"""Pause on failure (``RunOptions.pause_on_failure``, a debugger's break on exception): a node
that fails for good pauses the run and holds what follows it; its settings can then be fixed
(``RunManager.amend``) and it retried in the same run (``RunManager.retry``), or the run resumed
without it (what follows it skipped) or cancelled."""

from __future__ import annotations

import pytest
from executor_kit import sleep, statuses, until, workflow

from engine.errors import AmendError
from engine.events import RunStatus
from engine.runs import RunOptions

OPTIONS = RunOptions(use_cache=False, pause_on_failure=True)


def _flaky(fail_times: int = -1):
    """src -> check (fails) -> after, and src -> side (an independent branch)."""
    return workflow([{"id": "src", "agent": "test.source", "params": {"value": [1, 2]}},
                     {"id": "check", "agent": "test.fail", "params": {"fail_times": fail_times, "message": "bad rule"}},
                     sleep("after"), sleep("side")],
                    [("src", "check"), ("check", "after"), ("src", "side")])


def test_a_failure_pauses_the_run_and_holds_what_follows_it(manager) -> None:
    m, rec = manager
    handle = m.submit(_flaky(), OPTIONS)
    until(lambda: handle.snapshot().held and statuses(handle)["side"] == "done")
    snap = handle.snapshot()
    assert snap.paused and snap.status == "running"
    assert snap.held == {"check": "RuntimeError: node 'check' (agent 'test.fail') failed: RuntimeError: bad rule "
                                  "(attempt 1)"}
    assert statuses(handle) == {"src": "done", "check": "failed", "after": "waiting_inputs", "side": "done"}
    (paused,) = rec.of(handle.run_id, "RunPaused")
    assert paused.failed == "check" and paused.at is None and paused.why == snap.held["check"]
    assert snap.pauses[0][2].startswith("check failed: RuntimeError: node 'check'")  # the Gantt's shaded span says so
    assert handle.wait(0.3) == RunStatus.RUNNING  # it does not end on its own
    handle.cancel()
    assert handle.wait(10) == RunStatus.CANCELLED


def test_fix_the_failed_node_and_retry_it_in_the_same_run(manager) -> None:
    m, rec = manager
    handle = m.submit(_flaky(), OPTIONS)
    until(lambda: bool(handle.snapshot().held))
    assert handle.set_params("check", fail_times=0) == ["fail_times -1 -> 0"]  # a held failed node may change
    assert handle.retry("check") and not handle.retry("check")  # once: it is no longer held
    assert statuses(handle)["check"] == "queued" and handle.snapshot().held == {}
    handle.resume()
    assert handle.wait(10) == RunStatus.SUCCEEDED
    assert statuses(handle) == {"src": "done", "check": "done", "after": "done", "side": "done"}
    assert handle.outputs("after") == {"out": [[[1, 2]]]}  # src's value, through check (each port a list)
    (retried,) = [e for e in rec.of(handle.run_id, "NodeRetried") if e.by_hand]
    assert retried.node_id == "check" and retried.error_type == "RuntimeError"
    assert "retried by hand: a fresh start, with its retries" in handle.snapshot().nodes["check"]["logs"]
    started = [e.attempt for e in rec.of(handle.run_id, "NodeStarted") if e.node_id == "check"]
    assert len(started) == 2


def test_a_retry_without_a_fix_fails_and_holds_it_again(manager) -> None:
    m, rec = manager
    handle = m.submit(_flaky(), OPTIONS)
    until(lambda: bool(handle.snapshot().held))
    handle.retry("check")
    handle.step()
    until(lambda: bool(handle.snapshot().held))
    assert statuses(handle)["check"] == "failed" and statuses(handle)["after"] == "waiting_inputs"
    assert len(rec.of(handle.run_id, "NodeFailed")) == 2
    handle.resume()  # give up on it: what follows it is skipped, and the run ends failed
    assert handle.wait(10) == RunStatus.FAILED
    assert statuses(handle)["after"] == "skipped"


def test_resume_gives_up_on_the_failed_node(manager) -> None:
    m, _ = manager
    handle = m.submit(_flaky(), OPTIONS)
    until(lambda: bool(handle.snapshot().held))
    handle.resume()
    assert handle.wait(10) == RunStatus.FAILED
    assert statuses(handle) == {"src": "done", "check": "failed", "after": "skipped", "side": "done"}
    assert not handle.retry("check")  # the run ended


def test_a_failing_last_node_still_waits_for_a_retry(manager) -> None:
    m, _ = manager
    wf = workflow([{"id": "src", "agent": "test.source", "params": {"value": 1}},
                   {"id": "sink", "agent": "test.fail", "params": {"fail_times": 1}}], [("src", "sink")])
    handle = m.submit(wf, OPTIONS)
    until(lambda: bool(handle.snapshot().held))
    assert handle.wait(0.2) == RunStatus.RUNNING  # every node has ended, but one is held
    handle.retry("sink")
    handle.resume()  # its second start is a fresh one: its first attempt fails again
    until(lambda: bool(handle.snapshot().held))
    handle.set_params("sink", fail_times=0)
    handle.retry("sink")
    handle.resume()
    assert handle.wait(10) == RunStatus.SUCCEEDED


def test_without_the_option_a_failure_ends_as_before(manager) -> None:
    m, rec = manager
    handle = m.submit(_flaky(), RunOptions(use_cache=False))
    assert handle.wait(10) == RunStatus.FAILED
    assert rec.of(handle.run_id, "RunPaused") == [] and statuses(handle)["after"] == "skipped"
    with pytest.raises(AmendError, match=r"run \w+ has ended \(failed\)"):
        handle.set_params("check", fail_times=0)


def test_with_fail_fast_the_rest_is_cancelled_only_once_the_failure_is_given_up(manager) -> None:
    m, _ = manager
    wf = workflow([{"id": "src", "agent": "test.source", "params": {"value": 1}},
                   {"id": "check", "agent": "test.fail"}, sleep("after"), sleep("slow", 2.0)],
                  [("src", "check"), ("check", "after"), ("src", "slow")])
    handle = m.submit(wf, RunOptions(use_cache=False, pause_on_failure=True, fail_fast=True))
    until(lambda: bool(handle.snapshot().held))
    assert statuses(handle)["slow"] in ("queued", "running")  # not cancelled while the failure is held
    handle.resume()
    assert handle.wait(10) == RunStatus.FAILED
    assert statuses(handle)["after"] == "skipped" and statuses(handle)["slow"] == "cancelled"


def test_an_isolated_node_is_held_and_retried_in_its_own_process(manager) -> None:
    m, _ = manager
    wf = workflow([{"id": "src", "agent": "test.source", "params": {"value": 1}},
                   {"id": "check", "agent": "test.fail", "params": {"fail_times": -1},
                    "lifecycle": {"execution": {"isolate": True}}}, sleep("after")],
                  [("src", "check"), ("check", "after")])
    handle = m.submit(wf, OPTIONS)
    until(lambda: bool(handle.snapshot().held), timeout=30)
    handle.set_params("check", fail_times=0)
    handle.retry("check")
    handle.resume()
    assert handle.wait(30) == RunStatus.SUCCEEDED
    assert handle.snapshot().nodes["check"]["metrics"].get("isolated") is True
