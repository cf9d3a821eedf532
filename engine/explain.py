"""Step mode of the planner: the parallel schedule generation of engine.sgs replayed one decision
time at a time, with the ready set, the free capacity and why each ready node started or waited.

``why_waited`` (for any plan) and ``why_waited_run`` (for a real run) live in engine.waits.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from engine.bounds import cpm
from engine.policies import check_policy, demand_share, priority_order
from engine.problem import Problem
from engine.sgs import Compiled
from engine.waits import Explanation, why_waited, why_waited_run

__all__ = ["Decision", "Explanation", "ReadyNode", "priority_reason", "step_schedule", "why_waited", "why_waited_run"]


@dataclass(frozen=True)
class ReadyNode:
    """A ready node at one decision time: its rank (0 = first), what it was and what happened."""

    id: str
    rank: int
    priority: str  # "remaining path 42 s", "duration 3 s", ...
    started: bool
    device: str = ""
    reason: str = ""  # why it started, or why it waits


@dataclass(frozen=True)
class Decision:
    """One decision time of the parallel schedule generation."""

    index: int
    time: float
    ready: list[ReadyNode]
    free_before: dict[str, float]  # free capacity per ledger resource before the choice
    free_after: dict[str, float]
    running: dict[str, list[str]]  # resource -> nodes holding it before the choice
    started: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)  # nodes that finished exactly at this time

    def summary(self) -> str:
        if not self.started:
            return f"t={self.time:g} s: nothing fits; wait for the next node to finish"
        return f"t={self.time:g} s: start {', '.join(self.started)}"


def priority_reason(problem: Problem, policy: str) -> dict[str, str]:
    """What each node's priority rests on under ``policy``, in words."""
    times = cpm(problem)
    out: dict[str, str] = {}
    for i, tid in enumerate(times.order):
        task = problem.tasks[tid]
        if policy == "fifo":
            out[tid] = f"position {i + 1} in topological/file order"
        elif policy == "smallest_demand":
            out[tid] = f"demand share {demand_share(problem, tid):.3g} of the capacity"
        elif policy == "shortest_first":
            out[tid] = f"duration {task.duration:g} s"
        else:
            out[tid] = f"remaining path {times.length - times.ls[tid]:g} s"
    return out


def _rank(problem: Problem, cp: Compiled, policy: str) -> list[float]:
    if policy == "auto":
        from engine.planner import plan

        order = plan(problem, "auto").order()
    else:
        order = priority_order(problem, policy)
    position = {tid: i for i, tid in enumerate(order)}
    return [float(position[t]) for t in cp.ids]


def step_schedule(problem: Problem, policy: str = "critical_path") -> list[Decision]:
    """Every decision of the planner's parallel schedule generation under ``policy``.

    Mirrors engine.sgs.parallel_sgs exactly (zero-duration nodes finish at once and hold
    nothing). For ``auto`` the rank is the planned start order of the auto plan, which is how
    the executor admits nodes under auto (its replay may differ from the searched plan).
    """
    check_policy(policy)
    return _Stepper(problem, policy).run()


class _Stepper:
    """The state of engine.sgs.parallel_sgs, advanced one decision time at a time."""

    def __init__(self, problem: Problem, policy: str) -> None:
        cp = self.cp = Compiled(problem)
        self.rank = _rank(problem, cp, policy)
        self.words = priority_reason(problem, policy)
        self.label = "the planned start order of auto" if policy == "auto" else policy
        self.free = list(cp.cap)
        self.missing = [len(p) for p in cp.preds]
        self.option = [0] * cp.n
        self.ready: list[int] = []
        self.running: list[tuple[float, int]] = []
        self.holding: set[int] = set()
        self.t = 0.0
        self.done = 0
        self.finished_now: list[str] = []

    def _finish_at_once(self, j: int) -> None:
        self.done += 1
        self.finished_now.append(self.cp.ids[j])

    def release_to(self, j: int) -> None:
        """Make j's successors ready; zero-duration ones finish at once (cascading)."""
        stack = [j]
        while stack:
            for s in self.cp.succs[stack.pop()]:
                self.missing[s] -= 1
                if self.missing[s] == 0:
                    if self.cp.dur[s] <= 0:
                        self._finish_at_once(s)
                        stack.append(s)
                    else:
                        self.ready.append(s)

    def run(self) -> list[Decision]:
        cp = self.cp
        for j in [j for j in range(cp.n) if self.missing[j] == 0]:  # sources, before any release
            if cp.dur[j] <= 0:
                self._finish_at_once(j)
                self.release_to(j)
            else:
                self.ready.append(j)
        decisions: list[Decision] = []
        while self.done < cp.n:
            if self.ready:  # times when only nodes finish, with nothing ready, are no decision
                decisions.append(self.decide(len(decisions)))
            if not self.running:
                break
            self.advance()
        return decisions

    def decide(self, index: int) -> Decision:
        """Go through the ready nodes by rank and start every one that fits."""
        cp, ids, free = self.cp, self.cp.ids, self.free
        before = _free_map(cp, free)
        holders = _holders(cp, self.holding, self.option)
        self.ready.sort(key=self.rank.__getitem__)
        rows: list[ReadyNode] = []
        fresh: dict[str, list[str]] = {}  # resource -> nodes started at this decision
        started: list[str] = []
        waiting: list[int] = []
        for pos, j in enumerate(self.ready):
            placed = _try_place(cp, free, j)
            prio = self.words.get(ids[j], "")
            if placed is None:
                waiting.append(j)
                rows.append(ReadyNode(ids[j], pos, prio, False, "", _blocked(cp, free, j, holders, fresh)))
                continue
            self.option[j] = placed
            heapq.heappush(self.running, (self.t + cp.dur[j], j))
            self.holding.add(j)
            ahead = [ids[k] for k in waiting]
            why = f"highest priority under {self.label}: {prio}" if not ahead and not started else (
                f"fits after {', '.join(started)} started" if not ahead else
                f"fits, while higher-priority {', '.join(ahead)} cannot")
            rows.append(ReadyNode(ids[j], pos, prio, True, cp.devices[j][placed], why))
            started.append(ids[j])
            for k, _ in cp.options[j][placed]:
                fresh.setdefault(cp.keys[k], []).append(ids[j])
        self.ready[:] = waiting
        decision = Decision(index, self.t, rows, before, _free_map(cp, free), holders, started,
                            list(self.finished_now))
        self.finished_now.clear()
        return decision

    def advance(self) -> None:
        """Move the clock to the next finish and release everything that ends then."""
        self.t = self.running[0][0]
        while self.running and self.running[0][0] <= self.t + 1e-9:
            _, j = heapq.heappop(self.running)
            for k, a in self.cp.options[j][self.option[j]]:
                self.free[k] += a
            self.holding.discard(j)
            self.finished_now.append(self.cp.ids[j])
            self.done += 1
            self.release_to(j)


def _try_place(cp: Compiled, free: list[float], j: int) -> int | None:
    for o, need in enumerate(cp.options[j]):
        if all(free[k] >= a for k, a in need):
            for k, a in need:
                free[k] -= a
            return o
    return None


def _free_map(cp: Compiled, free: list[float]) -> dict[str, float]:
    return {k: round(max(0.0, f - 1e-9), 9) for k, f in zip(cp.keys, free, strict=True)}


def _holders(cp: Compiled, holding: set[int], option: list[int]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {k: [] for k in cp.keys}
    for j in sorted(holding):
        for k, _ in cp.options[j][option[j]]:
            out[cp.keys[k]].append(cp.ids[j])
    return out


def _blocked(cp: Compiled, free: list[float], j: int, holders: dict[str, list[str]],
             fresh: dict[str, list[str]]) -> str:
    """"needs 3,072 memory_mb but 1,024 is free (held by A, B)" for each device option."""
    parts = []
    for o, need in enumerate(cp.options[j]):
        for k, a in need:
            if free[k] < a:
                key = cp.keys[k]
                held = holders.get(key, []) + [f"{n} (started now)" for n in fresh.get(key, [])]
                by = f" (held by {', '.join(held)})" if held else ""
                on = f" on {cp.devices[j][o]}" if len(cp.options[j]) > 1 else ""
                parts.append(f"needs {a:,.6g} {key}{on} but {max(0.0, free[k] - 1e-9):,.6g} is free{by}")
                break
    return "; ".join(parts) or "does not fit"


def replay(decisions: list[Decision]) -> dict[str, tuple[float, str]]:
    """Start time and device of every node started in ``decisions`` (for checks)."""
    return {r.id: (d.time, r.device) for d in decisions for r in d.ready if r.started}
