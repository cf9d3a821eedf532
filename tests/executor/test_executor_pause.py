"""Pause, resume and step a run (I1 of the anchor study: Orange's freeze and step, KNIME's node by
node): paused, a run admits no node while those running go on; a step starts the next ready node
and stays paused; resume lets the rest go; cancel still works; the events are recorded."""

from __future__ import annotations

import time

import pytest
from executor_kit import sleep, statuses, until, workflow

from engine.events import RunStatus
from engine.runs import RunOptions

CHAIN = [sleep("a", 0.01), sleep("b", 0.01), sleep("c", 0.01)]


def test_a_run_started_paused_is_walked_node_by_node(manager) -> None:
    m, rec = manager
    handle = m.submit(workflow(CHAIN, [("a", "b"), ("b", "c")]), RunOptions(start_paused=True))
    time.sleep(0.1)
    assert statuses(handle) == {"a": "queued", "b": "waiting_inputs", "c": "waiting_inputs"}
    assert handle.snapshot().paused and handle.status == RunStatus.RUNNING
    for done in ("a", "b"):
        assert handle.step()
        until(lambda done=done: statuses(handle)[done] == "done")
        time.sleep(0.05)  # what it released stays queued: the run is still paused
        assert [e.node_id for e in rec.of(handle.run_id, "NodeStarted")][-1] == done
        assert handle.snapshot().paused
    assert statuses(handle)["c"] == "queued"
    assert handle.resume() and not handle.resume()  # a second resume has nothing to do
    assert handle.wait(10) == RunStatus.SUCCEEDED
    assert [e.node_id for e in rec.of(handle.run_id, "NodeStarted")] == ["a", "b", "c"]
    (paused,) = rec.of(handle.run_id, "RunPaused")
    assert paused.ready == ("a",)
    assert len(rec.of(handle.run_id, "RunResumed")) == 1
    assert not handle.snapshot().paused and not handle.pause()  # an ended run cannot pause


def test_pausing_lets_running_nodes_finish_and_starts_nothing_new(manager) -> None:
    m, rec = manager
    nodes = [sleep("slow", 0.4), sleep("after", 0.01), sleep("other", 0.01, cpu=4)]
    handle = m.submit(workflow(nodes, [("slow", "after")]), RunOptions(policy="fifo"))
    until(lambda: statuses(handle)["slow"] == "running")
    assert handle.pause() and not handle.pause()
    until(lambda: statuses(handle)["slow"] == "done", timeout=5)
    time.sleep(0.1)
    now = statuses(handle)
    assert now["after"] == "queued"  # ready, not started: the run is paused
    assert now["other"] in ("queued", "waiting_resource")  # it needs all 4 CPUs slow holds
    assert handle.resume()
    assert handle.wait(10) == RunStatus.SUCCEEDED
    (paused,) = rec.of(handle.run_id, "RunPaused")
    assert "other" in paused.ready or now["other"] == "waiting_resource"


def test_a_paused_run_can_be_cancelled(manager) -> None:
    m, _ = manager
    handle = m.submit(workflow(CHAIN, [("a", "b"), ("b", "c")]), RunOptions(start_paused=True))
    time.sleep(0.05)
    handle.cancel()
    assert handle.wait(5) == RunStatus.CANCELLED
    assert set(statuses(handle).values()) == {"cancelled", "skipped"} or set(statuses(handle).values()) == {"cancelled"}


def test_pause_of_an_unknown_run_says_so(manager) -> None:
    m, _ = manager
    with pytest.raises(KeyError):
        m.pause("no-such-run")


def test_a_run_started_paused_is_not_fused(manager) -> None:
    """Stepping goes node by node, so the itemwise chains that fusion would run as one are not fused."""
    m, _ = manager
    nodes = [{"id": "t", "agent": "test.texts", "params": {"n": 8}},
             {"id": "x", "agent": "test.tag", "lifecycle": {"execution": {"batch_size": 4}}},
             {"id": "y", "agent": "test.tag", "lifecycle": {"execution": {"batch_size": 4}}}]
    fused = m.submit(workflow(nodes, [("t", "x"), ("x", "y")]))
    assert fused.wait(10) == RunStatus.SUCCEEDED
    assert any(n["chain"] for n in fused.snapshot().nodes.values())  # the same chain, not paused: fused
    handle = m.submit(workflow(nodes, [("t", "x"), ("x", "y")]), RunOptions(start_paused=True, use_cache=False))
    assert not any(n["fused_into"] or n["chain"] for n in handle.snapshot().nodes.values())
    handle.resume()
    assert handle.wait(10) == RunStatus.SUCCEEDED


def test_the_time_a_node_was_held_by_the_pause_is_measured_and_explained(manager) -> None:
    from engine.explain import why_waited_run

    m, _ = manager
    handle = m.submit(workflow(CHAIN[:2], [("a", "b")]), RunOptions(start_paused=True))
    time.sleep(0.3)
    handle.step()
    until(lambda: statuses(handle)["a"] == "done")
    time.sleep(0.2)
    handle.resume()
    assert handle.wait(10) == RunStatus.SUCCEEDED
    nodes = handle.snapshot().nodes
    assert nodes["a"]["metrics"]["paused_s"] == pytest.approx(0.3, abs=0.15)  # ready at once, held by the pause
    assert nodes["b"]["metrics"]["paused_s"] == pytest.approx(0.2, abs=0.15)  # ready when a ended, then held
    assert nodes["a"]["metrics"]["paused_s"] <= nodes["a"]["metrics"]["wait_resource_s"] + 1e-6
    why = why_waited_run(handle.snapshot())
    assert why["a"].kind == "paused" and "while the run was paused" in why["a"].text
    plain = m.submit(workflow(CHAIN[:2], [("a", "b")], name="plain"), RunOptions(use_cache=False))
    assert plain.wait(10) == RunStatus.SUCCEEDED
    assert all(n["metrics"]["paused_s"] == 0 for n in plain.snapshot().nodes.values())


def test_the_sampler_rests_while_a_run_is_paused_with_nothing_running(manager) -> None:
    m, rec = manager  # the fixture samples at 20 Hz
    handle = m.submit(workflow([sleep("a", 0.3), sleep("b", 0.01)], [("a", "b")]), RunOptions(start_paused=True))
    assert not m._worth_sampling()  # paused, nothing running
    handle.step()
    until(lambda: statuses(handle)["a"] == "running")
    assert m._worth_sampling()  # a node runs: measure it
    until(lambda: statuses(handle)["a"] == "done")
    time.sleep(0.1)
    before = len(rec.of(handle.run_id, "MetricSampled"))
    time.sleep(0.6)
    assert len(rec.of(handle.run_id, "MetricSampled")) <= before + 1  # resting, not 12 more samples
    handle.resume()
    assert handle.wait(10) == RunStatus.SUCCEEDED


def _start_of(rec, run_id: str) -> float:
    (started,) = rec.of(run_id, "NodeStarted")
    return started.time


@pytest.mark.parametrize("raise_later", [False, True])
def test_a_higher_priority_run_is_admitted_first_when_room_frees(manager, raise_later: bool) -> None:
    """Runs share the machine; when room frees, the run of higher priority (RunOptions.priority, or
    RunManager.set_priority while it waits) gets it before an older run of lower priority."""
    m, rec = manager  # 4 CPUs
    holder = m.submit(workflow([sleep("hold", 0.3, cpu=4)], name="holder"))
    until(lambda: statuses(holder)["hold"] == "running")
    low = m.submit(workflow([sleep("x", 0.05, cpu=4)], name="low"), RunOptions(use_cache=False))
    high = m.submit(workflow([sleep("x", 0.05, cpu=4)], name="high"),
                    RunOptions(use_cache=False, priority=0 if raise_later else 5))
    if raise_later:
        assert m.set_priority(high.run_id, 5)
    assert high.snapshot().priority == 5
    for h in (holder, low, high):
        assert h.wait(10) == RunStatus.SUCCEEDED
    assert _start_of(rec, high.run_id) < _start_of(rec, low.run_id)
    assert not m.set_priority(high.run_id, 1)  # it ended


def test_without_priorities_the_older_run_goes_first(manager) -> None:
    m, rec = manager
    holder = m.submit(workflow([sleep("hold", 0.2, cpu=4)], name="holder"))
    until(lambda: statuses(holder)["hold"] == "running")
    first = m.submit(workflow([sleep("x", 0.05, cpu=4)], name="first"), RunOptions(use_cache=False))
    second = m.submit(workflow([sleep("x", 0.05, cpu=4)], name="second"), RunOptions(use_cache=False))
    for h in (holder, first, second):
        assert h.wait(10) == RunStatus.SUCCEEDED
    assert _start_of(rec, first.run_id) < _start_of(rec, second.run_id)
