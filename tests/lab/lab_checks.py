"""Problem builders and independent plan checks for the lab tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from engine.problem import Problem, Task
from engine.resources import Capacity, GpuDevice, ResourceDemand, ResourceLedger

TOL = 1e-6


def make_problem(tasks: list[tuple[str, float, dict[str, Any], tuple[str, ...]]], capacity: Capacity,
                 name: str = "hand-made") -> Problem:
    return Problem(name, {tid: Task(tid, dur, ResourceDemand(**dem), preds) for tid, dur, dem, preds in tasks},
                   capacity)


@st.composite
def small_problems(draw: st.DrawFn, max_tasks: int = 7, gpus: bool = False) -> Problem:
    n = draw(st.integers(1, max_tasks))
    tasks = []
    for i in range(n):
        preds = tuple(f"t{j}" for j in range(i) if draw(st.booleans()) and draw(st.booleans()))
        demand: dict[str, Any] = {"cpu": draw(st.integers(0, 3)), "memory_mb": float(draw(st.integers(0, 4)) * 512),
                                  "custom": {"R": float(draw(st.integers(0, 4)))}}
        if gpus and draw(st.booleans()):
            demand.update(device=draw(st.sampled_from(["cuda", "any"])), gpu_memory_mb=float(draw(st.integers(1, 8)) * 1000))
        tasks.append((f"t{i}", float(draw(st.integers(0, 6))), demand, preds))
    gpu_devices = (GpuDevice(index=0, memory_mb=8000, simulated=True), GpuDevice(index=1, memory_mb=12000, simulated=True))
    capacity = Capacity(cpu=3, memory_mb=2048, gpus=gpu_devices if gpus else (), custom={"R": 4})
    return make_problem(tasks, capacity, "random")


def assert_valid_schedule(problem: Problem, nodes: list[dict[str, Any]]) -> None:
    """Every task once, with its duration, after its predecessors, never over capacity."""
    node = {n["id"]: n for n in nodes}
    assert sorted(node) == sorted(problem.tasks)
    ledger = ResourceLedger(problem.capacity)
    events = []
    for task in problem.tasks.values():
        n = node[task.id]
        assert n["start"] >= -TOL
        assert abs(n["end"] - n["start"] - task.duration) <= TOL
        for pred in task.preds:
            assert n["start"] >= node[pred]["end"] - TOL, f"{task.id} starts before {pred} ends"
        if task.duration > 0:
            assert n["device"] in ledger.candidate_devices(task.demand)
            events += [(n["start"], 1, task.id), (n["end"], 0, task.id)]
    for _, kind, tid in sorted(events):
        if kind:
            ledger.acquire(problem.tasks[tid].demand, node[tid]["device"])  # raises when over-committed
        else:
            ledger.release(problem.tasks[tid].demand, node[tid]["device"])


def plan_nodes(plan: Any) -> list[dict[str, Any]]:
    return [{"id": n.id, "start": n.start, "end": n.end, "device": n.device} for n in plan.nodes]
