"""The CP-SAT optimum: never above any policy, equal to PSPLIB's proven optima, always valid."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from engine.benchmarks import load_instance
from engine.optimal import MAX_NODES, OptimalTooLargeError, optimal_schedule
from engine.planner import plan
from engine.policies import POLICIES
from engine.problem import Problem, problem_from_workflow
from engine.registry import Registry
from engine.resources import Capacity, GpuDevice
from tests.lab.lab_checks import assert_valid_schedule, make_problem, plan_nodes, small_problems

PSPLIB = Path("/work/shared/benchdata/psplib")
FIXED = [p for p in POLICIES if p != "auto"]


def _sim_registry() -> Registry:
    registry = Registry()
    registry.register_module("engine.agents.sim")
    return registry


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_problems())
def test_optimum_is_never_above_any_policy(problem: Problem) -> None:
    result = optimal_schedule(problem, time_limit_s=5)
    assert result.status == "optimal"
    assert_valid_schedule(problem, result.nodes)
    for policy in POLICIES:
        p = plan(problem, policy, max_schedules=200)
        assert_valid_schedule(problem, plan_nodes(p))
        assert result.makespan <= p.makespan + 1e-9, policy
        assert result.makespan >= p.lower_bound - 1e-9
    assert result.lower_bound == result.makespan


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_problems(max_tasks=5, gpus=True))
def test_optimum_places_gpu_tasks_on_devices_that_fit(problem: Problem) -> None:
    result = optimal_schedule(problem, time_limit_s=5)
    assert result.status == "optimal"
    assert_valid_schedule(problem, result.nodes)
    for policy in FIXED:
        assert result.makespan <= plan(problem, policy).makespan + 1e-9


def test_fractional_durations_are_scaled_and_stay_feasible() -> None:
    cap = Capacity(cpu=2, memory_mb=1024, gpus=())
    problem = make_problem([("a", 0.3333, {"cpu": 1}, ()), ("b", 1.25, {"cpu": 2}, ()),
                            ("c", 0.5, {"cpu": 1}, ("a",))], cap)
    result = optimal_schedule(problem, time_limit_s=5)
    assert result.scale == 1000
    assert_valid_schedule(problem, result.nodes)
    assert result.makespan == pytest.approx(0.3333 + 0.5 + 1.25, abs=0.003)  # b cannot overlap anything


def test_large_problems_are_refused_unless_forced() -> None:
    cap = Capacity(cpu=4, memory_mb=1024, gpus=())
    problem = make_problem([(f"t{i}", 1.0, {"cpu": 1}, ()) for i in range(MAX_NODES + 1)], cap)
    with pytest.raises(OptimalTooLargeError, match=f"up to {MAX_NODES}"):
        optimal_schedule(problem)
    forced = optimal_schedule(problem, time_limit_s=5, force=True)
    assert forced.makespan == 8.0  # 31 unit tasks on 4 threads


@pytest.mark.parametrize("instance", ["j301_1", "j301_2", "j3010_1", "j3025_3"])
def test_psplib_j30_known_optimum(instance: str) -> None:
    if not PSPLIB.is_dir():
        pytest.skip("benchmark data (/work/shared/benchdata) is not available")
    with (PSPLIB / "reference" / "j30_reference.csv").open() as handle:
        optimum = float(next(r for r in csv.DictReader(handle) if r["instance"] == instance)["optimum"])
    problem = problem_from_workflow(load_instance(PSPLIB / "j30" / f"{instance}.sm"), _sim_registry(), Capacity())
    result = optimal_schedule(problem, time_limit_s=30)
    assert result.status == "optimal"
    assert result.makespan == optimum
    assert_valid_schedule(problem, result.nodes)
    for policy in FIXED:
        assert plan(problem, policy).makespan >= optimum


def test_gpu_pool_of_two_devices() -> None:
    gpus = (GpuDevice(index=0, memory_mb=8000, simulated=True), GpuDevice(index=1, memory_mb=8000, simulated=True))
    cap = Capacity(cpu=8, memory_mb=4096, gpus=gpus)
    problem = make_problem([(f"g{i}", 2.0, {"cpu": 1, "device": "cuda", "gpu_memory_mb": 6000}, ()) for i in range(4)], cap)
    result = optimal_schedule(problem, time_limit_s=5)
    assert result.makespan == 4.0  # two at a time, one per GPU
    assert {n["device"] for n in result.nodes} == {"cuda:0", "cuda:1"}
