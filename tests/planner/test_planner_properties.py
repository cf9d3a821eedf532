"""Hypothesis properties of every policy over random DAGs, demands and capacities."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from planner_checks import assert_valid_plan, simulate_with_ledger

from engine.errors import CapacityError
from engine.planner import plan
from engine.policies import POLICIES, priority_order
from engine.problem import Problem, Task
from engine.resources import Capacity, GpuDevice, ResourceDemand, ResourceLedger

durations = st.one_of(st.just(0.0), st.integers(0, 10).map(float), st.floats(0.01, 20.0))


@st.composite
def problems(draw: st.DrawFn) -> Problem:
    n_gpus = draw(st.integers(0, 2))
    capacity = Capacity(
        cpu=draw(st.integers(1, 4)),
        memory_mb=draw(st.sampled_from([1024.0, 4096.0, 8192.0])),
        gpus=tuple(GpuDevice(index=i, memory_mb=draw(st.sampled_from([2000.0, 8000.0])), simulated=True) for i in range(n_gpus)),
        custom={"R": float(draw(st.integers(1, 6)))},
    )
    n = draw(st.integers(1, 12))
    tasks: dict[str, Task] = {}
    for j in range(n):
        preds = tuple(f"t{i}" for i in range(j) if draw(st.booleans()) and draw(st.booleans()))
        device = draw(st.sampled_from(["cpu", "cpu", "any", "cuda"])) if n_gpus else "cpu"
        demand = ResourceDemand(
            cpu=draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0])),
            memory_mb=draw(st.sampled_from([0.0, 512.0, 1024.0, 3000.0])),
            gpu_memory_mb=draw(st.sampled_from([0.0, 1000.0, 4000.0])) if device != "cpu" else 0.0,
            device=device,
            custom={"R": float(draw(st.integers(0, 4)))},
        )
        tasks[f"t{j}"] = Task(f"t{j}", draw(durations), demand, preds)
    return Problem("random", tasks, capacity)


def _fits_somewhere(problem: Problem) -> bool:
    ledger = ResourceLedger(problem.capacity)
    return all(t.duration <= 0 or ledger.could_ever_fit(t.demand) for t in problem.tasks.values())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=problems(), policy=st.sampled_from(POLICIES))
def test_every_policy_gives_a_valid_plan(problem: Problem, policy: str) -> None:
    if not _fits_somewhere(problem):
        with pytest.raises(CapacityError, match="task 't"):
            plan(problem, policy)
        return
    result = plan(problem, policy, budget_s=30.0, max_schedules=40, seed=1)
    assert_valid_plan(problem, result)
    assert result.lower_bound == max(result.lower_bounds.values())
    assert result.order()[0] in problem.tasks
    assert sorted(priority_order(problem, policy)) == sorted(problem.tasks)


@settings(max_examples=25, deadline=None)
@given(problem=problems())
def test_auto_is_never_worse_than_the_rules_it_starts_from_and_is_deterministic(problem: Problem) -> None:
    if not _fits_somewhere(problem):
        return
    first = plan(problem, "auto", budget_s=30.0, max_schedules=30, seed=3)
    again = plan(problem, "auto", budget_s=30.0, max_schedules=30, seed=3)
    assert [(n.start, n.device) for n in first.nodes] == [(n.start, n.device) for n in again.nodes]
    rule = plan(problem, "critical_path")
    assert first.makespan <= rule.makespan + 1e-9 or first.makespan <= first.lower_bound + 1e-9


@settings(max_examples=60, deadline=None)
@given(problem=problems(), policy=st.sampled_from([p for p in POLICIES if p != "auto"]))
def test_fixed_policies_plan_what_the_executor_rule_does_on_a_ledger(problem: Problem, policy: str) -> None:
    if not _fits_somewhere(problem):
        return
    result = plan(problem, policy)
    expected = simulate_with_ledger(problem, priority_order(problem, policy))
    for node in result.nodes:
        start, device = expected[node.id]
        assert node.start == pytest.approx(start, abs=1e-6), node.id
        if problem.tasks[node.id].duration > 0:
            assert node.device == device, node.id
