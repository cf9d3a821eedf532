"""Schedule generation schemes on a virtual clock: parallel (what the executor does) and serial.

A ``Compiled`` problem holds integer indices and per-device need vectors (built with the same
``ResourceLedger.needs``/``candidate_devices`` the executor uses), so each schedule costs
no object churn. Zero-duration tasks hold no resources.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from dataclasses import dataclass

from engine.errors import CapacityError
from engine.problem import Problem
from engine.resources import ResourceLedger

EPS = 1e-9
Need = tuple[tuple[int, float], ...]  # (resource index, amount), non-zero only


@dataclass
class Schedule:
    """Start, finish and device index (into the task's options) of every task."""

    start: list[float]
    finish: list[float]
    option: list[int]
    makespan: float


class Compiled:
    """Index form of a Problem for fast schedule generation."""

    def __init__(self, problem: Problem) -> None:
        problem.check_feasible()
        order = problem.topological_order()
        self.ids: list[str] = list(problem.tasks)
        index = {tid: i for i, tid in enumerate(self.ids)}
        self.n = len(self.ids)
        self.topo: list[int] = [index[t] for t in order]
        self.dur: list[float] = [problem.tasks[t].duration for t in self.ids]
        self.preds: list[list[int]] = [sorted({index[p] for p in problem.tasks[t].preds}) for t in self.ids]
        self.succs: list[list[int]] = [[] for _ in self.ids]
        for j, ps in enumerate(self.preds):
            for p in ps:
                self.succs[p].append(j)
        ledger = ResourceLedger(problem.capacity)
        self.keys: list[str] = list(ledger.total)
        self.cap: list[float] = [ledger.total[k] + EPS for k in self.keys]
        kidx = {k: i for i, k in enumerate(self.keys)}
        self.devices: list[list[str]] = []
        self.options: list[list[Need]] = []
        for tid in self.ids:
            demand = problem.tasks[tid].demand
            devs = ledger.candidate_devices(demand) or ["cpu"]
            if problem.tasks[tid].duration <= 0:
                self.devices.append(devs[:1])
                self.options.append([()])
                continue
            fitting = [d for d in devs if _fits_empty(ledger, ledger.needs(demand, d))]
            self.devices.append(fitting)
            self.options.append(
                [tuple((kidx[k], a) for k, a in ledger.needs(demand, d).items()) for d in fitting]
            )
        self.floor_keys: list[int] = _floor(self)
        self.floor_need: list[list[float]] = [
            [min((dict(nd).get(k, 0.0) for nd in self.options[j]), default=0.0) for k in self.floor_keys]
            for j in range(self.n)
        ]



def _floor(cp: Compiled) -> list[int]:
    """Resources (indices) that every option of every timed task needs."""
    common: set[int] | None = None
    for j in range(cp.n):
        if cp.dur[j] <= 0:
            continue
        for need in cp.options[j]:
            keys = {k for k, _ in need}
            common = keys if common is None else common & keys
    return sorted(common or ())


def _fits_empty(ledger: ResourceLedger, need: dict[str, float]) -> bool:
    return all(a <= ledger.total.get(k, 0.0) + EPS for k, a in need.items())


def parallel_sgs(cp: Compiled, rank: list[float]) -> Schedule:
    """Event-driven list scheduling: at each decision time go through the ready tasks by rank
    (lower first) and start every one that fits on its first fitting device; then advance."""
    n = cp.n
    free = list(cp.cap)
    missing = [len(p) for p in cp.preds]
    start = [0.0] * n
    finish = [0.0] * n
    option = [0] * n
    dur, options, succs = cp.dur, cp.options, cp.succs
    # resources every task needs; a heap per such resource of the ready tasks' amounts (lazy
    # deletion) tells at once when no ready task can fit, so wide DAGs are not rescanned
    fkeys, fneed = cp.floor_keys, cp.floor_need
    lows: list[list[tuple[float, int]]] = [[] for _ in fkeys]
    is_ready = [False] * n

    def add_ready(j: int) -> None:
        is_ready[j] = True
        heapq.heappush(ready, (rank[j], j))
        for i, low in enumerate(lows):
            heapq.heappush(low, (fneed[j][i], j))

    def blocked() -> bool:
        for i, low in enumerate(lows):
            while low and not is_ready[low[0][1]]:
                heapq.heappop(low)
            if low and free[fkeys[i]] < low[0][0]:
                return True
        return False
    ready: list[tuple[float, int]] = []  # heap by (rank, index)
    running: list[tuple[float, int]] = []
    t = 0.0
    done = 0

    def release_to(j: int) -> None:
        """Make j's successors ready; zero-duration ones finish at once (cascading)."""
        nonlocal done
        stack = [j]
        while stack:
            for s in succs[stack.pop()]:
                missing[s] -= 1
                if missing[s] == 0:
                    if dur[s] <= 0:
                        start[s] = finish[s] = t
                        done += 1
                        stack.append(s)
                    else:
                        add_ready(s)

    for j in [j for j in range(n) if missing[j] == 0]:  # sources, before any release
        if dur[j] <= 0:
            done += 1
            release_to(j)
        else:
            add_ready(j)
    while done < n:
        if ready and not blocked():
            passed = []
            while ready:
                item = heapq.heappop(ready)
                j = item[1]
                for o, need in enumerate(options[j]):
                    for k, a in need:
                        if free[k] < a:
                            break
                    else:
                        for k, a in need:
                            free[k] -= a
                        start[j] = t
                        finish[j] = t + dur[j]
                        option[j] = o
                        heapq.heappush(running, (finish[j], j))
                        is_ready[j] = False
                        break
                else:
                    passed.append(item)
                    continue
                if blocked():
                    break
            for item in passed:
                heapq.heappush(ready, item)
        if not running:
            raise CapacityError(f"task {cp.ids[min(ready)[1]]!r} can never be started")
        t = running[0][0]
        while running and running[0][0] <= t + EPS:
            _, j = heapq.heappop(running)
            for k, a in options[j][option[j]]:
                free[k] += a
            done += 1
            release_to(j)
    return Schedule(start, finish, option, max(finish, default=0.0))


def serial_sgs(cp: Compiled, order: list[int], preds: list[list[int]] | None = None) -> Schedule:
    """Schedule tasks one at a time in ``order`` (precedence-feasible for ``preds``), each at its
    earliest precedence- and resource-feasible start on its best device."""
    preds = cp.preds if preds is None else preds
    n = cp.n
    cap, dur, options = cp.cap, cp.dur, cp.options
    times: list[float] = [0.0]
    usage: list[list[float]] = [[0.0] * len(cap)]
    start = [0.0] * n
    finish = [0.0] * n
    option = [0] * n
    for j in order:
        es = 0.0
        for p in preds[j]:
            if finish[p] > es:
                es = finish[p]
        d = dur[j]
        if d <= 0:
            start[j] = finish[j] = es
            continue
        best_s = -1.0
        best_o = 0
        for o, need in enumerate(options[j]):
            s = _earliest(times, usage, cap, es, d, need)
            if best_s < 0 or s < best_s - EPS:
                best_s, best_o = s, o
        start[j] = best_s
        finish[j] = best_s + d
        option[j] = best_o
        _book(times, usage, best_s, best_s + d, options[j][best_o])
    return Schedule(start, finish, option, max(finish, default=0.0))


def _earliest(
    times: list[float], usage: list[list[float]], cap: list[float], es: float, d: float, need: Need
) -> float:
    s = es
    i = bisect_right(times, s) - 1
    m = len(times)
    while True:
        idx = i
        end = s + d - EPS
        ok = True
        while idx < m and times[idx] < end:
            row = usage[idx]
            for k, a in need:
                if row[k] + a > cap[k]:
                    ok = False
                    break
            if not ok:
                break
            idx += 1
        if ok:
            return s
        s = times[idx + 1]
        i = idx + 1


def _split(times: list[float], usage: list[list[float]], t: float) -> int:
    i = bisect_right(times, t + EPS) - 1
    if abs(times[i] - t) <= EPS:
        return i
    times.insert(i + 1, t)
    usage.insert(i + 1, list(usage[i]))
    return i + 1


def _book(times: list[float], usage: list[list[float]], s: float, f: float, need: Need) -> None:
    i = _split(times, usage, s)
    e = _split(times, usage, f)
    for idx in range(i, e):
        row = usage[idx]
        for k, a in need:
            row[k] += a


def list_from_schedule(cp: Compiled, sched: Schedule) -> list[int]:
    """The activity list of a schedule: tasks by start time, ties in topological order."""
    pos = [0] * cp.n
    for i, j in enumerate(cp.topo):
        pos[j] = i
    return sorted(range(cp.n), key=lambda j: (sched.start[j], sched.finish[j], pos[j]))


def justify(cp: Compiled, sched: Schedule) -> tuple[Schedule, int]:
    """Forward-backward improvement: right-justify, then left-justify. Returns (schedule, passes)."""
    pos = [0] * cp.n
    for i, j in enumerate(cp.topo):
        pos[j] = i
    back_order = sorted(range(cp.n), key=lambda j: (-sched.finish[j], -sched.start[j], -pos[j]))
    back = serial_sgs(cp, back_order, cp.succs)
    mk = back.makespan
    real_start = [mk - f for f in back.finish]
    fwd_order = sorted(range(cp.n), key=lambda j: (real_start[j], mk - back.start[j], pos[j]))
    fwd = serial_sgs(cp, fwd_order)
    return (fwd if fwd.makespan <= sched.makespan + EPS else sched), 2

