"""Independent checks of a plan: every task once, precedence, capacity (ResourceLedger replay), bounds."""

from __future__ import annotations

from engine.planner import Plan
from engine.problem import Problem
from engine.resources import ResourceLedger

TOL = 1e-6


def assert_valid_plan(problem: Problem, plan: Plan) -> None:
    ids = [n.id for n in plan.nodes]
    assert sorted(ids) == sorted(problem.tasks), "every task is scheduled exactly once"
    node = {n.id: n for n in plan.nodes}
    for task in problem.tasks.values():
        n = node[task.id]
        assert n.start >= -TOL
        assert abs((n.end - n.start) - task.duration) <= TOL * max(1.0, task.duration)
        for pred in task.preds:
            assert n.start >= node[pred].end - TOL, f"{task.id} starts before its predecessor {pred} ends"
    # sweep line: replay on a real ledger; releases before acquisitions at the same instant
    ledger = ResourceLedger(problem.capacity)
    events = []
    for task in problem.tasks.values():
        if task.duration <= 0:
            continue
        n = node[task.id]
        assert n.device in ledger.candidate_devices(task.demand), f"{task.id} placed on a device it may not use"
        events.append((n.start, 1, task.id))
        events.append((n.end, 0, task.id))
    for _, kind, tid in sorted(events):
        demand = problem.tasks[tid].demand
        if kind:
            ledger.acquire(demand, node[tid].device)  # raises CapacityError when over-committed
        else:
            ledger.release(demand, node[tid].device)
    assert abs(plan.makespan - max((n.end for n in plan.nodes), default=0.0)) <= TOL
    for name, bound in plan.lower_bounds.items():
        assert plan.makespan >= bound - TOL * max(1.0, bound), f"makespan below the {name} bound"


def simulate_with_ledger(problem: Problem, order: list[str]) -> dict[str, tuple[float, str]]:
    """A slow, independent replay of the executor's admission rule on a ResourceLedger:
    at each instant, go through the ready tasks in ``order`` and start every one that fits."""
    ledger = ResourceLedger(problem.capacity)
    rank = {tid: i for i, tid in enumerate(order)}
    done: dict[str, float] = {}
    running: dict[str, tuple[float, str]] = {}
    out: dict[str, tuple[float, str]] = {}
    now = 0.0
    while len(done) < len(problem.tasks):
        progress = True
        while progress:  # zero-duration tasks finish at once and may make others ready
            progress = False
            for tid, task in problem.tasks.items():
                if tid not in out and task.duration <= 0 and all(p in done for p in task.preds):
                    out[tid] = (now, ledger.candidate_devices(task.demand)[0] if ledger.candidate_devices(task.demand) else "cpu")
                    done[tid] = now
                    progress = True
        ready = sorted(
            (t for t, task in problem.tasks.items() if t not in out and all(p in done for p in task.preds)),
            key=rank.__getitem__,
        )
        for tid in ready:
            device = ledger.place(problem.tasks[tid].demand)
            if device is not None:
                ledger.acquire(problem.tasks[tid].demand, device)
                out[tid] = (now, device)
                running[tid] = (now + problem.tasks[tid].duration, device)
        if not running:
            break
        now = min(end for end, _ in running.values())
        for tid in [t for t, (end, _) in running.items() if end <= now + 1e-9]:
            ledger.release(problem.tasks[tid].demand, running.pop(tid)[1])
            done[tid] = now
    return out
