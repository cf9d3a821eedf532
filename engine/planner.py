"""The planner: simulate a workflow's schedule on a virtual clock under a capacity and a policy.

Fixed policies use the parallel schedule generation scheme, which admits ready tasks exactly as
the executor does; ``auto`` searches for a better plan (engine.search). Every plan carries its
lower bounds, its gap to them, the critical path, peak use and utilisation per resource.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.bounds import Cpm, cpm, lower_bounds
from engine.policies import POLICIES, check_policy, priority_order
from engine.problem import Problem, problem_from_workflow
from engine.registry import Registry
from engine.resources import Capacity, ResourceLedger
from engine.search import improve
from engine.sgs import Compiled, Schedule, parallel_sgs
from engine.workflow import Workflow


@dataclass(frozen=True)
class PlannedNode:
    id: str
    start: float  # seconds from the start of the run
    end: float
    device: str  # "cpu" or "cuda:N"


@dataclass
class Plan:
    """A predicted schedule and how good it is."""

    policy: str
    makespan: float
    nodes: list[PlannedNode]
    lower_bound: float
    lower_bounds: dict[str, float]
    gap: float  # makespan / lower_bound - 1
    critical_path: list[str]
    peak: dict[str, float]
    utilisation: dict[str, float]
    schedules_generated: int = 1
    elapsed_s: float = 0.0
    found_by: str = ""
    ready_at: dict[str, float] = field(default_factory=dict)  # when each node's inputs were done

    def order(self) -> list[str]:
        """Node ids by planned start (ties: planned end, then file order); ``auto``'s admission order."""
        index = {n.id: i for i, n in enumerate(self.nodes)}
        return [n.id for n in sorted(self.nodes, key=lambda n: (n.start, n.end, index[n.id]))]

    def node(self, node_id: str) -> PlannedNode:
        return next(n for n in self.nodes if n.id == node_id)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (times in seconds)."""
        data = asdict(self)
        data["nodes"] = [asdict(n) for n in self.nodes]
        return data


def why_waited(problem: Problem, result: Plan) -> dict[str, dict[str, Any]]:
    """Per node: when its inputs were ready, when it started, how long it waited, and why.

    ``reason`` is ``inputs`` (started as soon as its inputs were ready), ``resource`` (with the
    ledger key in ``resource`` and the nodes holding it in ``held_by``) or ``policy`` (it would
    have fitted just before it started: the policy gave the room to ``preferred`` instead).
    """
    out: dict[str, dict[str, Any]] = {}
    for n in result.nodes:
        ready = result.ready_at.get(n.id, 0.0)
        info: dict[str, Any] = {"ready_at": ready, "start": n.start, "waited_s": max(0.0, n.start - ready)}
        info["reason"] = "inputs"
        if info["waited_s"] > 1e-9:
            info.update(_blocker(problem, result, n.id, n.start))
        out[n.id] = info
    return out


def _blocker(problem: Problem, result: Plan, node_id: str, at: float) -> dict[str, Any]:
    """What kept ``node_id`` out just before it started at ``at``."""
    ledger = ResourceLedger(problem.capacity)
    holders = [
        m for m in result.nodes
        if m.id != node_id and m.start < at - 1e-9 and m.end > at - 1e-9 and problem.tasks[m.id].duration > 0
    ]
    for m in holders:
        ledger.acquire(problem.tasks[m.id].demand, m.device)
    demand = problem.tasks[node_id].demand
    key = ledger.blocking(demand) if ledger.place(demand) is None else None
    if key is None:
        preferred = [m.id for m in holders if m.start >= result.ready_at.get(node_id, 0.0) - 1e-9]
        return {"reason": "policy", "preferred": preferred}
    held_by = [m.id for m in holders if key in ledger.needs(problem.tasks[m.id].demand, m.device)]
    return {"reason": "resource", "resource": key, "held_by": held_by}


def plan(
    problem: Problem,
    policy: str = "auto",
    *,
    budget_s: float = 1.0,
    max_schedules: int = 5000,
    seed: int = 0,
) -> Plan:
    """Plan ``problem`` under ``policy`` (one of engine.policies.POLICIES).

    Raises:
        CapacityError: a task can never fit the capacity (names the task and the resource).
        WorkflowFileError: the dependencies form a cycle.
        UnknownPolicyError: an unknown policy name.
    """
    check_policy(policy)
    began = time.perf_counter()
    cp = Compiled(problem)
    times = cpm(problem)
    bounds = lower_bounds(problem, times)
    bound = max(bounds.values(), default=0.0)
    found_by = policy
    if policy == "auto":
        lf = [times.lf[t] for t in cp.ids]
        ls = [times.ls[t] for t in cp.ids]
        names = ["critical_path", *(n for n in POLICIES if n not in ("auto", "critical_path"))]
        rules = {name: _rank(problem, cp, name, times) for name in names}
        result = improve(cp, lf, ls, bound, budget_s=budget_s, max_schedules=max_schedules, seed=seed, rules=rules)
        sched, count, found_by = result.schedule, result.schedules, result.source
    else:
        sched = parallel_sgs(cp, _rank(problem, cp, policy, times))
        count = 1
    return _make_plan(problem, cp, sched, policy, bounds, times.path, count, time.perf_counter() - began, found_by)


def _rank(problem: Problem, cp: Compiled, policy: str, times: Cpm) -> list[float]:
    position = {tid: i for i, tid in enumerate(priority_order(problem, policy, times))}
    return [float(position[t]) for t in cp.ids]


def plan_workflow(
    workflow: Workflow,
    registry: Registry,
    capacity: Capacity,
    policy: str = "auto",
    durations: Mapping[str, float] | None = None,
    **kw: Any,
) -> Plan:
    """Plan a workflow (see ``problem_from_workflow`` for durations, demands and capacity)."""
    return plan(problem_from_workflow(workflow, registry, capacity, durations), policy, **kw)


def _make_plan(
    problem: Problem,
    cp: Compiled,
    sched: Schedule,
    policy: str,
    bounds: dict[str, float],
    path: list[str],
    count: int,
    elapsed: float,
    found_by: str,
) -> Plan:
    nodes = [
        PlannedNode(tid, sched.start[j], sched.finish[j], cp.devices[j][sched.option[j]] if cp.devices[j] else "cpu")
        for j, tid in enumerate(cp.ids)
    ]
    peak, area = _usage(cp, sched)
    makespan = sched.makespan
    total = dict(zip(cp.keys, cp.cap, strict=True))
    util = {k: (area[k] / ((total[k] - 1e-9) * makespan) if makespan > 0 else 0.0) for k in cp.keys}
    bound = max(bounds.values(), default=0.0)
    ready = {tid: max((sched.finish[p] for p in cp.preds[j]), default=0.0) for j, tid in enumerate(cp.ids)}
    return Plan(
        policy=policy,
        makespan=makespan,
        nodes=nodes,
        lower_bound=bound,
        lower_bounds=bounds,
        gap=(makespan / bound - 1.0) if bound > 0 else 0.0,
        critical_path=path,
        peak=peak,
        utilisation=util,
        schedules_generated=count,
        elapsed_s=elapsed,
        found_by=found_by,
        ready_at=ready,
    )


def _usage(cp: Compiled, sched: Schedule) -> tuple[dict[str, float], dict[str, float]]:
    """Peak concurrent use and area (amount x seconds) per ledger resource, by a sweep line."""
    events: list[tuple[float, int, int, float]] = []
    area = dict.fromkeys(cp.keys, 0.0)
    for j in range(cp.n):
        if cp.dur[j] <= 0:
            continue
        for k, a in cp.options[j][sched.option[j]]:
            events.append((sched.start[j], 1, k, a))
            events.append((sched.finish[j], 0, k, -a))  # releases sort before starts at one time
            area[cp.keys[k]] += a * cp.dur[j]
    used = [0.0] * len(cp.keys)
    peak = [0.0] * len(cp.keys)
    for _, _, k, a in sorted(events):
        used[k] += a
        peak[k] = max(peak[k], used[k])
    return dict(zip(cp.keys, peak, strict=True)), area
