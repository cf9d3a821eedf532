"""Critical-path method and makespan lower bounds of a scheduling problem.

Bounds: critical path (resources ignored), resource area per dimension, heads-and-tails energy,
and a disjunctive bound (tasks that can never overlap). See the benchdata literature notes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from engine.problem import Problem, Task

EPS = 1e-9


@dataclass(frozen=True)
class Cpm:
    """Resource-free earliest/latest times of every task (seconds)."""

    order: list[str]  # topological order, ties by file order
    es: dict[str, float]
    ef: dict[str, float]
    ls: dict[str, float]
    lf: dict[str, float]
    length: float
    path: list[str]  # one critical path, source to sink


def cpm(problem: Problem) -> Cpm:
    """Forward and backward pass of the critical-path method."""
    order = problem.topological_order()
    tasks = problem.tasks
    es: dict[str, float] = {}
    ef: dict[str, float] = {}
    for tid in order:
        start = max((ef[p] for p in tasks[tid].preds), default=0.0)
        es[tid] = start
        ef[tid] = start + tasks[tid].duration
    length = max(ef.values(), default=0.0)
    succs = problem.succs()
    lf: dict[str, float] = {}
    ls: dict[str, float] = {}
    for tid in reversed(order):
        finish = min((ls[s] for s in succs[tid]), default=length)
        lf[tid] = finish
        ls[tid] = finish - tasks[tid].duration
    return Cpm(order, es, ef, ls, lf, length, _critical_path(problem, order, es, ef, length))


def _critical_path(
    problem: Problem, order: list[str], es: dict[str, float], ef: dict[str, float], length: float
) -> list[str]:
    if not order:
        return []
    position = {t: i for i, t in enumerate(order)}
    # the last task (in topological order) that ends at the length, then walk back through tight preds
    current = next(t for t in reversed(order) if abs(ef[t] - length) <= EPS * max(1.0, length))
    path = [current]
    while True:
        tight = [p for p in problem.tasks[current].preds if abs(ef[p] - es[current]) <= EPS * max(1.0, length)]
        if not tight:
            break
        current = max(tight, key=lambda p: (problem.tasks[p].duration > 0, position[p]))
        path.append(current)
    return path[::-1]


def _integral(problem: Problem) -> bool:
    return all(abs(t.duration - round(t.duration)) <= EPS for t in problem.tasks.values())


def _dimensions(problem: Problem) -> dict[str, tuple[float, dict[str, float]]]:
    """Single-pool dimensions: name -> (capacity, demand per task). GPU memory only when pooled."""
    cap = problem.capacity
    dims: dict[str, tuple[float, dict[str, float]]] = {
        "cpu": (float(cap.cpu or 0), {t.id: t.demand.cpu for t in problem.tasks.values()}),
        "memory_mb": (float(cap.memory_mb or 0), {t.id: t.demand.memory_mb for t in problem.tasks.values()}),
    }
    gpus = cap.gpus or ()
    if gpus:
        need = {t.id: t.demand.gpu_memory_mb if t.demand.device == "cuda" else 0.0 for t in problem.tasks.values()}
        dims["gpu_memory_mb"] = (sum(g.memory_mb for g in gpus), need)
    for name, total in cap.custom.items():
        dims[name] = (float(total), {t.id: t.demand.custom.get(name, 0.0) for t in problem.tasks.values()})
    return dims


def lower_bounds(problem: Problem, times: Cpm | None = None) -> dict[str, float]:
    """Every bound by name: ``critical_path``, ``resource_area.<dim>``, ``heads_tails``, ``disjunctive``."""
    times = times or cpm(problem)
    rounding: Callable[[float], float] = math.ceil if _integral(problem) else float
    out: dict[str, float] = {"critical_path": times.length}
    tasks = [t for t in problem.tasks.values() if t.duration > 0]
    heads_tails = 0.0
    disjunctive = 0.0
    for name, (total, need) in _dimensions(problem).items():
        if total <= 0:
            continue
        area = sum(t.duration * need[t.id] for t in tasks) / total
        if area > 0:
            out[f"resource_area.{name}"] = float(rounding(area - 1e-7))
        users = [t for t in tasks if need[t.id] > 0]
        heads_tails = max(heads_tails, _heads_tails(users, need, total, times, rounding))
        disjunctive = max(disjunctive, _disjunctive(users, need, total, times))
    if heads_tails > 0:
        out["heads_tails"] = heads_tails
    if disjunctive > 0:
        out["disjunctive"] = disjunctive
    return out


def _heads_tails(
    tasks: list[Task], need: dict[str, float], total: float, times: Cpm, rounding: Callable[[float], float]
) -> float:
    """max over thresholds a, b of a + b + energy of tasks with head >= a and tail >= b / capacity."""
    best = 0.0
    tail = {t.id: times.length - times.lf[t.id] for t in tasks}
    heads = sorted({times.es[t.id] for t in tasks})
    limit = max(2, 20000 // max(1, len(tasks)))  # keep it O(20000 log n) on large DAGs
    if len(heads) > limit:
        heads = [heads[i * (len(heads) - 1) // (limit - 1)] for i in range(limit)]
    for a in heads:
        chosen = sorted((t for t in tasks if times.es[t.id] >= a - EPS), key=lambda t: -tail[t.id])
        energy = 0.0
        for t in chosen:
            energy += t.duration * need[t.id]
            best = max(best, a + tail[t.id] + float(rounding(energy / total - 1e-7)))
    return best


def _disjunctive(tasks: list[Task], need: dict[str, float], total: float, times: Cpm) -> float:
    """Tasks needing more than half the capacity can never overlap: they run one after another."""
    big = [t for t in tasks if need[t.id] > total / 2 + EPS]
    if len(big) < 2:
        return 0.0
    head = min(times.es[t.id] for t in big)
    tail = min(times.length - times.lf[t.id] for t in big)
    return head + sum(t.duration for t in big) + tail
