"""The fixed policies differ the way their rules say on small hand-made cases."""

from __future__ import annotations

import json

import pytest

from engine.planner import plan, why_waited
from engine.policies import priority_order
from engine.problem import Problem, Task
from engine.resources import Capacity, ResourceDemand

CAP = Capacity(cpu=2, memory_mb=1024, gpus=())


def _chain_and_smalls() -> Problem:
    """A long chain that needs the whole machine first, and two small independent tasks."""
    tasks = {
        "big": Task("big", 10, ResourceDemand(cpu=2)),
        "after": Task("after", 10, ResourceDemand(cpu=1), ("big",)),
        "small1": Task("small1", 1, ResourceDemand(cpu=1)),
        "small2": Task("small2", 1, ResourceDemand(cpu=1)),
    }
    return Problem("chain", tasks, CAP)


def test_smallest_demand_starts_small_tasks_and_critical_path_starts_the_chain() -> None:
    problem = _chain_and_smalls()
    order = priority_order(problem, "smallest_demand")
    assert order.index("small1") < order.index("small2") < order.index("big")
    assert priority_order(problem, "critical_path")[0] == "big"
    small_first = plan(problem, "smallest_demand")
    chain_first = plan(problem, "critical_path")
    assert small_first.node("big").start == 1 and small_first.makespan == 21
    assert chain_first.node("big").start == 0 and chain_first.makespan == 20
    best = plan(problem, "auto")
    assert best.makespan == 20 and best.order()[0] == "big"
    data = json.loads(json.dumps(best.to_dict()))
    assert data["makespan"] == 20 and {n["id"] for n in data["nodes"]} == set(problem.tasks)
    why = why_waited(problem, small_first)
    assert why["big"]["waited_s"] == 1
    assert why["big"]["reason"] == "resource" and why["big"]["resource"] == "cpu"
    assert set(why["big"]["held_by"]) == {"small1", "small2"}
    assert why["after"]["reason"] == "inputs" and why["small1"]["waited_s"] == 0


def test_shortest_first_and_fifo() -> None:
    tasks = {
        "long": Task("long", 5, ResourceDemand(cpu=1)),
        "short": Task("short", 1, ResourceDemand(cpu=1)),
    }
    problem = Problem("two", tasks, Capacity(cpu=1, memory_mb=1024, gpus=()))
    assert plan(problem, "fifo").node("long").start == 0
    assert plan(problem, "shortest_first").node("short").start == 0


def test_zero_duration_tasks_hold_nothing_and_gpu_tasks_go_to_a_gpu() -> None:
    from engine.resources import GpuDevice

    cap = Capacity(cpu=1, memory_mb=1024, gpus=(GpuDevice(index=0, memory_mb=1000, simulated=True),))
    tasks = {
        "start": Task("start", 0, ResourceDemand(cpu=5)),  # would never fit, but takes no time
        "train": Task("train", 3, ResourceDemand(cpu=1, gpu_memory_mb=800, device="any"), ("start",)),
    }
    result = plan(Problem("gpu", tasks, cap), "fifo")
    assert result.node("train").device == "cuda:0" and result.makespan == 3


def test_unknown_policy_suggests_a_name() -> None:
    with pytest.raises(ValueError, match="critical_path"):
        plan(_chain_and_smalls(), "critical-path")
