"""The optimal schedule of a small problem by constraint programming (OR-Tools CP-SAT, the
``solver`` extra): one interval per task (one optional interval per device it may use),
precedence, a cumulative constraint per ledger resource, minimise the makespan.

Times are integers for CP-SAT: durations are scaled by ``scale`` (1 when every duration is a
whole number, else 1000, i.e. milliseconds) and rounded *up*, so the solver's schedule stays
feasible with the real durations; reported times are in seconds with the real durations. With
rounding the reported makespan can exceed the true optimum by at most one unit (1 ms) per task
on the critical chain. Demands and capacities are scaled the same way (demand up, capacity down).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from engine.errors import ServiceGridError
from engine.problem import Problem
from engine.resources import ResourceLedger

MAX_NODES = 30  # tasks with a positive duration; larger problems need force=True
FINE_SCALE = 1000


class OptimalTooLargeError(ServiceGridError, ValueError):
    """The problem has more tasks than the exact solver is offered for by default."""


class SolverMissingError(ServiceGridError, ImportError):
    """OR-Tools is not installed."""


@dataclass
class OptimalResult:
    """What CP-SAT found: ``status`` optimal (proven), feasible (time limit hit) or unknown (none)."""

    status: str
    makespan: float | None
    lower_bound: float
    nodes: list[dict[str, Any]] = field(default_factory=list)  # {id, start, end, device}
    solve_s: float = 0.0
    scale: int = 1

    @property
    def proven(self) -> bool:
        return self.status == "optimal"

    def gap_of(self, makespan: float) -> float | None:
        """How far ``makespan`` is above this result's makespan (0.05 = 5 %)."""
        if self.makespan is None or self.makespan <= 0:
            return None
        return makespan / self.makespan - 1.0


def _units(value: float, scale: int, up: bool = True) -> int:
    scaled = value * scale
    near = round(scaled)
    if abs(scaled - near) <= 1e-6:
        return int(near)
    return math.ceil(scaled) if up else math.floor(scaled)


def _scale_of(values: list[float]) -> int:
    return 1 if all(abs(v - round(v)) <= 1e-9 for v in values) else FINE_SCALE


def optimal_schedule(
    problem: Problem, time_limit_s: float = 10.0, workers: int = 1, *, force: bool = False
) -> OptimalResult:
    """Minimise the makespan of ``problem`` with CP-SAT within ``time_limit_s``.

    Raises:
        OptimalTooLargeError: more than MAX_NODES tasks and not ``force``.
        SolverMissingError: OR-Tools is not installed.
        CapacityError: a task can never fit the capacity.
    """
    tasks = list(problem.tasks.values())
    real = [t for t in tasks if t.duration > 0]
    if len(real) > MAX_NODES and not force:
        raise OptimalTooLargeError(
            f"{problem.name!r} has {len(real)} tasks; the exact solver is offered for up to {MAX_NODES} "
            "(it can take very long beyond that); compare the policies against the lower bounds "
            "instead, or pass force=True"
        )
    try:
        from ortools.sat.python import cp_model
    except ImportError:
        raise SolverMissingError(
            "the optimal schedule needs OR-Tools; install it with `pip install servicegrid[solver]`"
        ) from None
    from engine.planner import plan as make_plan

    problem.check_feasible()
    began = time.perf_counter()
    heuristic = make_plan(problem, "critical_path")
    scale = _scale_of([t.duration for t in tasks])
    dur = {t.id: _units(t.duration, scale) for t in tasks}
    exact = all(abs(dur[t.id] - t.duration * scale) <= 1e-6 for t in tasks)
    horizon = _units(heuristic.makespan, scale) if exact else sum(dur.values())
    horizon = max(horizon, max(dur.values(), default=0))
    lb_units = min(horizon, math.ceil(heuristic.lower_bound * scale - 1e-6)) if exact else 0
    built = _Model(cp_model.CpModel(), problem, dur, horizon)
    built.minimise_makespan(lb_units)
    for node in heuristic.nodes:  # a good first solution
        built.model.add_hint(built.starts[node.id], min(horizon, _units(node.start, scale)))

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.1, float(time_limit_s))
    solver.parameters.num_workers = max(1, int(workers))
    code = solver.solve(built.model)
    status = {cp_model.OPTIMAL: "optimal", cp_model.FEASIBLE: "feasible"}.get(code, "unknown")
    bound = max(heuristic.lower_bound, solver.best_objective_bound / scale if exact else 0.0)
    if status == "unknown":
        return OptimalResult("unknown", None, bound, [], time.perf_counter() - began, scale)
    nodes = built.read(solver, scale)
    span = max((n["end"] for n in nodes), default=0.0)
    if status == "optimal" and exact:
        bound = span
    return OptimalResult(status, span, min(bound, span), nodes, time.perf_counter() - began, scale)


class _Model:
    """The CP-SAT model: start/end variables, device choices, precedence and cumulatives."""

    def __init__(self, model: Any, problem: Problem, dur: dict[str, int], horizon: int) -> None:
        self.model, self.problem, self.horizon = model, problem, horizon
        self.ledger = ResourceLedger(problem.capacity)
        self.starts: dict[str, Any] = {}
        self.ends: dict[str, Any] = {}
        self.choices: dict[str, list[tuple[str, Any]]] = {}  # task -> [(device, presence literal or None)]
        self.usage: dict[str, list[tuple[Any, float]]] = {k: [] for k in self.ledger.total}
        for task in problem.tasks.values():
            self._task(task.id, dur[task.id])
        for task in problem.tasks.values():
            for pred in set(task.preds):
                model.add(self.starts[task.id] >= self.ends[pred])
        for key, items in self.usage.items():
            if items:
                rscale = _scale_of([a for _, a in items] + [self.ledger.total[key]])
                capacity = _units(self.ledger.total[key], rscale, up=False)
                model.add_cumulative([i for i, _ in items], [_units(a, rscale) for _, a in items], capacity)

    def _task(self, tid: str, d: int) -> None:
        model, ledger, demand = self.model, self.ledger, self.problem.tasks[tid].demand
        s = model.new_int_var(0, self.horizon, f"s_{tid}")
        e = model.new_int_var(0, self.horizon, f"e_{tid}")
        model.add(e == s + d)
        self.starts[tid], self.ends[tid] = s, e
        candidates = ledger.candidate_devices(demand) or ["cpu"]
        devices = [dev for dev in candidates
                   if all(a <= ledger.total.get(k, 0.0) + 1e-9 for k, a in ledger.needs(demand, dev).items())]
        if d <= 0 or not devices:  # zero-duration tasks hold nothing
            self.choices[tid] = [(candidates[0], None)]
            return
        options = []
        for dev in devices:
            if len(devices) == 1:
                lit = None
                interval = model.new_interval_var(s, d, e, f"i_{tid}_{dev}")
            else:
                lit = model.new_bool_var(f"on_{tid}_{dev}")
                interval = model.new_optional_interval_var(s, d, e, lit, f"i_{tid}_{dev}")
            options.append((dev, lit))
            for key, amount in ledger.needs(demand, dev).items():
                self.usage[key].append((interval, amount))
        if len(options) > 1:
            model.add_exactly_one(lit for _, lit in options)
        self.choices[tid] = options

    def minimise_makespan(self, lower: int) -> None:
        makespan = self.model.new_int_var(lower, self.horizon, "makespan")  # the engine's bound helps proofs
        for end in self.ends.values():
            self.model.add(makespan >= end)
        self.model.minimize(makespan)

    def read(self, solver: Any, scale: int) -> list[dict[str, Any]]:
        nodes = []
        for task in self.problem.tasks.values():
            start = solver.value(self.starts[task.id]) / scale
            options = self.choices[task.id]
            device = next((dev for dev, lit in options if lit is None or solver.boolean_value(lit)), options[0][0])
            nodes.append({"id": task.id, "start": start, "end": start + task.duration, "device": device})
        return nodes
