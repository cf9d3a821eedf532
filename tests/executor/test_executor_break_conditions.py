"""Conditional breakpoints (``NodeSpec.break_when``, ``engine.breaks``): a run pauses before the
node only when some row of the tested input meets the condition, says what it found, and pauses
anyway (saying why) when the condition cannot be tested. Given with a run (``RunOptions.break_if``)
too, and on a component's node: tested by the nodes its input feeds."""

from __future__ import annotations

import pytest
from executor_kit import sleep, statuses, until, workflow

from engine import breaks
from engine.events import RunStatus
from engine.runs import RunOptions
from engine.workflow import Workflow

TICKETS = {"columns": {"amount": [20, 950, 40], "intent": ["refund", "refund", "billing"]},
           "ids": ["t1", "t2", "t3"]}


def _tickets(condition: dict | None = None, node: str = "check") -> Workflow:
    check = {**sleep(node), "breakpoint": True}
    if condition is not None:
        check["break_when"] = condition
    nodes = [{"id": "src", "agent": "test.source", "params": {"value": TICKETS}}, check, sleep("after")]
    return workflow(nodes, [("src", node), (node, "after")])


def test_a_condition_that_holds_pauses_and_says_what_it_found(manager) -> None:
    m, rec = manager
    handle = m.submit(_tickets({"field": "amount", "op": ">", "value": 500}), RunOptions(use_cache=False))
    until(lambda: handle.snapshot().paused)
    snap = handle.snapshot()
    assert snap.paused_at == "check" and snap.paused_why == "amount > 500 holds for 1 of 3 rows"
    assert statuses(handle)["check"] == "queued"
    (paused,) = rec.of(handle.run_id, "RunPaused")
    assert paused.at == "check" and paused.why == snap.paused_why
    assert snap.nodes["check"]["logs"][-1] == "breakpoint: amount > 500 holds for 1 of 3 rows"
    waiting = m.inputs(handle.run_id, "check")  # what it will start with, while the run holds it
    assert waiting == {"in": [TICKETS]}
    assert breaks.matching(m.workflow(handle.run_id).node("check").break_when, waiting) == (
        "in", {"columns": {"amount": [950], "intent": ["refund"]}, "ids": ["t2"]})
    handle.step()
    until(lambda: statuses(handle)["check"] == "done")
    assert handle.snapshot().paused_why is None  # the step moved past it
    handle.resume()
    assert handle.wait(10) == RunStatus.SUCCEEDED


def test_a_condition_that_does_not_hold_lets_the_run_go_on_and_logs_it(manager) -> None:
    m, rec = manager
    handle = m.submit(_tickets({"field": "amount", "op": ">", "value": 5000}), RunOptions(use_cache=False))
    assert handle.wait(10) == RunStatus.SUCCEEDED
    assert rec.of(handle.run_id, "RunPaused") == []
    logs = [e.message for e in rec.of(handle.run_id, "NodeLog") if e.node_id == "check"]
    assert logs[0] == "breakpoint: amount > 5000 holds for none of 3 rows: not paused"


@pytest.mark.parametrize(("condition", "found"), [
    ({"field": "intent", "op": "==", "value": "refund"}, "intent == 'refund' holds for 2 of 3 rows"),
    ({"field": "intent", "op": "in", "value": "billing, sales"}, "intent in billing, sales holds for 1 of 3 rows"),
    ({"field": "id", "op": "==", "value": "t3"}, "id == 't3' holds for 1 of 3 rows"),
])
def test_text_and_id_conditions(manager, condition: dict, found: str) -> None:
    m, _ = manager
    handle = m.submit(_tickets(condition), RunOptions(use_cache=False))
    until(lambda: handle.snapshot().paused)
    assert handle.snapshot().paused_why == found
    handle.cancel()
    handle.wait(10)


def test_a_condition_that_cannot_be_tested_pauses_and_says_why(manager) -> None:
    m, _ = manager
    handle = m.submit(_tickets({"field": "amont", "op": ">", "value": 500}), RunOptions(use_cache=False))
    until(lambda: handle.snapshot().paused)
    assert handle.snapshot().paused_why == ("cannot test amont > 500: input 'in' has no column 'amont' "
                                            "(it has id, amount, intent)")
    handle.resume()
    assert handle.wait(10) == RunStatus.SUCCEEDED


def test_conditions_given_with_the_run(manager) -> None:
    m, rec = manager
    wf = _tickets()
    wf = wf.model_copy(update={"nodes": tuple(n.model_copy(update={"breakpoint": False}) for n in wf.nodes)})
    handle = m.submit(wf, RunOptions(use_cache=False, break_if=(("check", "intent == billing"),)))
    until(lambda: handle.snapshot().paused)
    assert handle.snapshot().paused_at == "check"
    assert handle.snapshot().paused_why == "intent == 'billing' holds for 1 of 3 rows"
    handle.resume()
    assert handle.wait(10) == RunStatus.SUCCEEDED
    quiet = m.submit(wf, RunOptions(use_cache=False, break_if=(("check", "amount >= 1000"),)))
    assert quiet.wait(10) == RunStatus.SUCCEEDED and rec.of(quiet.run_id, "RunPaused") == []
    with pytest.raises(ValueError, match=r"breakpoint on 'check': cannot read the condition 'amount'"):
        m.submit(wf, RunOptions(break_if=(("check", "amount"),)))
    with pytest.raises(ValueError, match="no node 'nope' to pause before"):
        m.submit(wf, RunOptions(break_if=(("nope", "amount > 1"),)))


def test_a_condition_on_a_component_s_node_is_tested_by_the_nodes_its_input_feeds(manager) -> None:
    m, rec = manager
    component = {"name": "desk", "nodes": [sleep("triage"), sleep("log"), sleep("reply")],
                 "edges": [{"source": "triage", "target": "reply"}],
                 "inputs": [{"name": "tickets", "node": "triage"}, {"name": "audit", "node": "log"}],
                 "outputs": [{"name": "answer", "node": "reply"}]}
    wf = Workflow.model_validate({
        "schema_version": 1, "name": "desks", "components": [component],
        "nodes": [{"id": "src", "agent": "test.source", "params": {"value": TICKETS}},
                  {"id": "d", "agent": "component:desk", "breakpoint": True,
                   "break_when": {"port": "tickets", "field": "amount", "op": ">", "value": 900}}],
        "edges": [{"source": "src", "target": "d", "target_port": "tickets"},
                  {"source": "src", "target": "d", "target_port": "audit"}]})
    handle = m.submit(wf, RunOptions(use_cache=False))
    until(lambda: handle.snapshot().paused)
    (paused,) = rec.of(handle.run_id, "RunPaused")
    assert paused.at == "d/triage" and paused.why == "amount > 900 holds for 1 of 3 rows"
    handle.resume()
    assert handle.wait(10) == RunStatus.SUCCEEDED


def test_a_slow_condition_is_tested_off_the_scheduler_s_lock(manager, monkeypatch: pytest.MonkeyPatch) -> None:
    """A condition on a large table takes a while: another run goes on meanwhile, and the run
    pauses once the test has found a row."""
    import threading
    import time

    m, _ = manager
    real, started = breaks.check, threading.Event()

    def slow(condition, inputs):  # a table of millions of rows, as far as the clock can tell
        started.set()
        time.sleep(2.0)
        return real(condition, inputs)

    monkeypatch.setattr(breaks, "check", slow)
    held = m.submit(_tickets({"field": "amount", "op": ">", "value": 500}), RunOptions(use_cache=False))
    assert started.wait(10)
    other = m.submit(workflow([sleep("x"), sleep("y")], [("x", "y")], name="other"), RunOptions(use_cache=False))
    assert other.wait(10) == RunStatus.SUCCEEDED
    assert not held.snapshot().paused and statuses(held)["check"] == "queued"  # still being tested
    until(lambda: held.snapshot().paused, timeout=10)
    assert held.snapshot().paused_at == "check"
    held.cancel()
    assert held.wait(10) == RunStatus.CANCELLED
