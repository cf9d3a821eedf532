"""Step mode replays the planner exactly; "why did it wait?" on hand-made cases and real runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from engine.benchmarks import load_instance
from engine.explain import replay, step_schedule, why_waited, why_waited_run
from engine.optimal import optimal_schedule
from engine.planner import plan
from engine.problem import Problem, problem_from_workflow
from engine.registry import Registry
from engine.resources import Capacity
from tests.lab.lab_checks import make_problem, small_problems

SINGLE_PASS = ["fifo", "smallest_demand", "critical_path", "shortest_first"]
J30 = Path("/work/shared/benchdata/psplib/j30/j3013_1.sm")


def _assert_replay_matches(problem: Problem, policy: str) -> None:
    decisions = step_schedule(problem, policy)
    started = replay(decisions)
    expected = plan(problem, policy)
    for node in expected.nodes:
        if problem.tasks[node.id].duration > 0:
            assert started[node.id] == (pytest.approx(node.start), node.device), (policy, node.id)
    times = [d.time for d in decisions]
    assert times == sorted(times)
    for d in decisions:
        assert all(v >= -1e-9 for v in d.free_after.values())
        ranks = [r.rank for r in d.ready]
        assert ranks == list(range(len(ranks)))


@pytest.mark.parametrize("policy", SINGLE_PASS)
def test_step_replay_equals_plan_on_psplib(policy: str) -> None:
    if not J30.exists():
        pytest.skip("benchmark data is not available")
    registry = Registry()
    registry.register_module("engine.agents.sim")
    _assert_replay_matches(problem_from_workflow(load_instance(J30), registry, Capacity()), policy)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_problems(max_tasks=8, gpus=True))
def test_step_replay_equals_plan_on_random_problems(problem: Problem) -> None:
    for policy in SINGLE_PASS:
        _assert_replay_matches(problem, policy)


CAP = Capacity(cpu=4, memory_mb=4096, gpus=())


def test_input_wait_names_the_last_input() -> None:
    problem = make_problem([("a", 2.0, {"cpu": 1}, ()), ("b", 5.0, {"cpu": 1}, ()),
                            ("c", 1.0, {"cpu": 1}, ("a", "b"))], CAP)
    why = why_waited(problem, plan(problem, "fifo"))
    assert why["c"].kind == "input" and why["c"].last_input == "b"
    assert why["c"].ready_at == 5.0 and why["c"].waited_s == 0.0
    assert why["a"].kind == "none"


def test_resource_wait_names_resource_and_holders() -> None:
    problem = make_problem([("a", 4.0, {"cpu": 1, "memory_mb": 3000}, ()), ("b", 2.0, {"cpu": 1}, ()),
                            ("c", 1.0, {"cpu": 1, "memory_mb": 2000}, ("b",))], CAP)
    why = why_waited(problem, plan(problem, "fifo"))
    c = why["c"]
    assert (c.kind, c.resource, c.held_by) == ("resource", "memory_mb", ["a"])
    assert (c.ready_at, c.start, c.waited_s) == (2.0, 4.0, 2.0)
    assert c.needed == 2000 and c.free == pytest.approx(1096)
    assert "held by a" in c.text


def test_policy_preference_names_the_preferred_nodes() -> None:
    cap = Capacity(cpu=1, memory_mb=1024, gpus=())
    problem = make_problem([("long", 5.0, {"cpu": 1}, ()), ("short", 1.0, {"cpu": 1}, ())], cap)
    why = why_waited(problem, plan(problem, "shortest_first"))
    assert why["short"].kind == "none"
    assert (why["long"].kind, why["long"].preferred, why["long"].resource) == ("policy", ["short"], "cpu")
    why = why_waited(problem, plan(problem, "critical_path"))
    assert why["short"].preferred == ["long"]


def test_step_explains_choice_and_blocked_nodes() -> None:
    problem = make_problem([("a", 4.0, {"cpu": 1, "memory_mb": 3000}, ()), ("b", 1.0, {"cpu": 1, "memory_mb": 2000}, ())],
                           CAP)
    first = step_schedule(problem, "critical_path")[0]
    assert first.started == ["a"]
    assert first.ready[0].reason.startswith("highest priority under critical_path: remaining path 4 s")
    assert first.ready[1].reason == "needs 2,000 memory_mb but 1,096 is free (held by a (started now))"
    second = step_schedule(problem, "critical_path")[1]
    assert second.time == 4.0 and second.started == ["b"] and second.finished == ["a"]


def test_optimal_plans_can_be_explained_too() -> None:
    problem = make_problem([("a", 3.0, {"cpu": 2}, ()), ("b", 1.0, {"cpu": 1}, ()), ("c", 3.0, {"cpu": 2}, ("b",))],
                           Capacity(cpu=3, memory_mb=1024, gpus=()))
    result = optimal_schedule(problem, time_limit_s=5)
    why = why_waited(problem, result)
    assert set(why) == {"a", "b", "c"}
    assert all(e.waited_s >= 0 for e in why.values())


def test_why_waited_run_from_a_snapshot_and_a_stored_run() -> None:
    workflow = {"nodes": [{"id": "a"}, {"id": "b"}, {"id": "c"}], "edges": [{"source": "a", "target": "c"}]}
    snapshot = {"workflow": workflow, "nodes": {
        "a": {"status": "running", "ready_at": 0.0, "start": 0.0, "waiting_for": [], "waiting_resource": None},
        "b": {"status": "waiting_resource", "ready_at": 0.0, "start": None, "waiting_for": [],
              "waiting_resource": "memory_mb", "held_by": ["a"]},
        "c": {"status": "waiting_inputs", "ready_at": None, "start": None, "waiting_for": ["a"]}}}
    why = why_waited_run(snapshot)
    assert (why["b"].kind, why["b"].resource, why["b"].held_by) == ("resource", "memory_mb", ["a"])
    assert (why["c"].kind, why["c"].last_input) == ("input", "a")
    detail = {"workflow": workflow, "nodes": [
        {"node_id": "a", "status": "done", "queued_at": 0.0, "wait_inputs_s": 0.0, "started_at": 0.0,
         "finished_at": 3.0, "wait_resource": {}},
        {"node_id": "b", "status": "done", "queued_at": 0.0, "wait_inputs_s": 0.0, "started_at": 3.0,
         "finished_at": 4.0, "wait_resource": {"memory_mb": 3.0}},
        {"node_id": "c", "status": "done", "queued_at": 0.0, "wait_inputs_s": 3.0, "started_at": 3.0,
         "finished_at": 5.0, "wait_resource": {}}]}
    why = why_waited_run(detail)
    assert (why["b"].kind, why["b"].resource, why["b"].held_by, why["b"].waited_s) == ("resource", "memory_mb", ["a"], 3.0)
    assert (why["c"].kind, why["c"].last_input) == ("input", "a")
