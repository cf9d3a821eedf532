"""Priority policies: the order in which ready tasks are admitted when several fit at once.

The planner (virtual clock) and the executor (real time) both go through the ready tasks in
``priority_order`` and start every one that fits; ``auto`` is the planner's improving search.
"""

from __future__ import annotations

from engine.bounds import Cpm, cpm
from engine.errors import ServiceGridError, suggest
from engine.problem import Problem

POLICIES: tuple[str, ...] = ("fifo", "smallest_demand", "critical_path", "shortest_first", "auto")

POLICY_HELP: dict[str, str] = {
    "fifo": "topological order, ties by file order",
    "smallest_demand": "smaller resource demand first (sum over dimensions of demand / capacity)",
    "critical_path": "longest remaining path first (duration-weighted; ties: more successors)",
    "shortest_first": "shortest duration first",
    "auto": "best plan found by an improving search within a time budget",
}


def check_policy(policy: str) -> str:
    """The policy name itself; raise UnknownPolicyError listing the valid names otherwise."""
    if policy in POLICIES:
        return policy
    close = suggest(policy, POLICIES)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownPolicyError(f"unknown policy {policy!r}.{hint} Choose one of: {', '.join(POLICIES)}")


class UnknownPolicyError(ServiceGridError, ValueError):
    """A policy name that is not one of POLICIES."""


def demand_share(problem: Problem, task_id: str) -> float:
    """Scalar size of a task's demand: sum over dimensions of demand / capacity."""
    cap = problem.capacity
    demand = problem.tasks[task_id].demand
    share = demand.cpu / cap.cpu if cap.cpu else 0.0
    share += demand.memory_mb / cap.memory_mb if cap.memory_mb else 0.0
    gpu_max = max((g.memory_mb for g in cap.gpus or ()), default=0.0)
    if demand.gpu_memory_mb and gpu_max:
        share += demand.gpu_memory_mb / gpu_max
    for name, amount in demand.custom.items():
        total = cap.custom.get(name, 0.0)
        share += amount / total if total else 0.0
    return share


def priority_order(problem: Problem, policy: str, times: Cpm | None = None) -> list[str]:
    """Every task id, lower index = admitted first when several are ready and fit.

    ``auto`` falls back to the ``critical_path`` order here; its real order is the planned
    start order of ``engine.planner.plan(problem, "auto")``. ``times``: a precomputed ``cpm``.
    """
    check_policy(policy)
    times = times or cpm(problem)
    position = {tid: i for i, tid in enumerate(times.order)}
    if policy == "fifo":
        return list(times.order)
    if policy == "smallest_demand":
        return sorted(times.order, key=lambda t: (demand_share(problem, t), position[t]))
    if policy == "shortest_first":
        return sorted(times.order, key=lambda t: (problem.tasks[t].duration, position[t]))
    # critical_path (and auto's fallback): min latest start = longest remaining path incl. itself
    n_succ = _all_successor_counts(problem, times.order)
    return sorted(times.order, key=lambda t: (times.ls[t], times.lf[t], -n_succ[t], position[t]))


def _all_successor_counts(problem: Problem, order: list[str]) -> dict[str, int]:
    """Number of (transitive) successors of every task (MTS rule); bitsets keep it fast.
    Above 2,000 tasks the immediate successors are counted instead (quadratic memory)."""
    succs = problem.succs()
    if len(order) > 2000:
        return {t: len(succs[t]) for t in order}
    index = {t: i for i, t in enumerate(order)}
    reach: dict[str, int] = {}
    for tid in reversed(order):
        bits = 0
        for s in succs[tid]:
            bits |= reach[s] | (1 << index[s])
        reach[tid] = bits
    return {t: bin(b).count("1") for t, b in reach.items()}
