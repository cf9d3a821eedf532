"""The ``auto`` policy: an improving search over schedules within a time and schedule budget.

Phases: single-pass priority rules (parallel and serial SGS), regret-biased random sampling
around LFT/LST, each improved by forward-backward justification, then a genetic algorithm on
activity lists (peak or two-point crossover, precedence-preserving swaps and one insertion move,
offspring decoded by the serial or parallel SGS and justified, the worse half re-sampled when
the search stalls). Stops at
the lower bound, the schedule budget or the time budget. Deterministic for a seed when the
schedule budget, not the clock, ends the search.
"""

from __future__ import annotations

import heapq
import random
import time
from collections import deque
from dataclasses import dataclass

from engine.sgs import EPS, Compiled, Schedule, justify, list_from_schedule, parallel_sgs, serial_sgs

Member = tuple[float, list[int], Schedule]  # makespan, activity list, its schedule


@dataclass
class SearchResult:
    schedule: Schedule
    schedules: int
    source: str  # which phase found the best schedule


class _Search:
    def __init__(
        self, cp: Compiled, lf: list[float], ls: list[float], bound: float, budget_s: float, max_schedules: int, seed: int
    ) -> None:
        self.cp, self.lf, self.ls, self.bound = cp, lf, ls, bound
        self.deadline = time.perf_counter() + budget_s
        self.max_schedules = max(1, max_schedules)
        self.rng = random.Random(seed)
        self.count = 0
        self.best: Schedule | None = None
        self.source = ""
        self.parallel_share = 0.3  # offspring decoded by the parallel SGS (the rest: serial)
        self.peak_share = 0.5  # offspring made by peak crossover (the rest: two-point)
        self.mutation = 0.02  # probability of each neighbour swap
        self.shift = 1.0  # probability that a child has one task moved to another feasible place
        self.fbi_rounds = 3  # forward-backward passes per schedule while each still improves
        self.restart_after = 300  # offspring without a new best before a partial restart

    def done(self) -> bool:
        if self.best is not None and self.best.makespan <= self.bound + EPS:
            return True
        return self.count >= self.max_schedules or time.perf_counter() >= self.deadline

    def offer(self, sched: Schedule, source: str) -> Schedule:
        """Count one generated schedule; justify it (again while that helps, at most
        ``fbi_rounds`` times) when budget allows; keep the best."""
        self.count += 1
        for _ in range(self.fbi_rounds):
            if self.count + 2 > self.max_schedules:
                break
            improved, passes = justify(self.cp, sched)
            self.count += passes
            better = improved.makespan < sched.makespan - EPS
            sched = improved
            if not better:
                break
        if self.best is None or sched.makespan < self.best.makespan - EPS:
            self.best, self.source = sched, source
        return sched

    # -- phase 1: single-pass rules -----------------------------------------------------------
    def rules(self, extra: dict[str, list[float]]) -> None:
        """Every rule once with the parallel SGS (always: auto is never worse than a fixed
        policy), then with the serial SGS, each justified, while the budget lasts."""
        cp = self.cp
        n_succ = _all_successor_counts(cp) if cp.n <= 2000 else [len(s) for s in cp.succs]
        pos = [0] * cp.n
        for i, j in enumerate(cp.topo):
            pos[j] = i
        ranks = {
            **extra,
            "LFT": [self.lf[j] * (cp.n + 1) + pos[j] for j in range(cp.n)],
            "LST": [self.ls[j] * (cp.n + 1) + pos[j] for j in range(cp.n)],
            "MTS": [-n_succ[j] * (cp.n + 1) + pos[j] for j in range(cp.n)],
        }
        parallel = []
        for name, rank in ranks.items():
            if parallel and time.perf_counter() >= self.deadline:
                break  # large problems: at least the first rule (critical_path) always runs
            sched = parallel_sgs(cp, rank)
            self.count += 1
            parallel.append((sched.makespan, name, sched))
            if self.best is None or sched.makespan < self.best.makespan - EPS:
                self.best, self.source = sched, f"parallel SGS + {name}"
        parallel.sort(key=lambda x: x[0])
        for _, name, sched in parallel:
            if self.done():
                return
            self.count -= 1  # already counted above; offer() counts it again
            self.offer(sched, f"parallel SGS + {name} + justification")
            if self.done():
                return
            self.offer(serial_sgs(cp, _list_by_rank(cp, ranks[name])), f"serial SGS + {name}")

    # -- phase 2: regret-biased random sampling --------------------------------------------------
    def sample(self, n_lists: int) -> list[Member]:
        population: list[Member] = []
        for i in range(n_lists):
            if self.done():
                break
            prio = self.lf if i % 2 == 0 else self.ls
            activity = _regret_biased_list(self.cp, prio, self.rng)
            if i % 4 < 2:
                sched = self.offer(serial_sgs(self.cp, activity), "sampling (serial SGS)")
            else:
                rank = [0.0] * self.cp.n
                for p, j in enumerate(activity):
                    rank[j] = p
                sched = self.offer(parallel_sgs(self.cp, rank), "sampling (parallel SGS)")
            population.append((sched.makespan, list_from_schedule(self.cp, sched), sched))
        population.sort(key=lambda x: x[0])
        return population

    # -- phase 3: genetic algorithm on activity lists --------------------------------------------
    def evolve(self, scored: list[Member]) -> None:
        if len(scored) < 2:
            return
        stale = 0
        while not self.done():
            if stale >= self.restart_after:  # stuck: refresh the worse half with new samples
                scored.sort(key=lambda x: x[0])
                half = len(scored) // 2
                scored[half:] = self.sample(len(scored) - half)[: len(scored) - half] or scored[half:]
                stale = 0
                continue
            best_before = self.best.makespan if self.best else float("inf")
            mother = self._tournament(scored)
            father = self._tournament(scored)
            use_parallel = self.rng.random() < self.parallel_share
            if self.rng.random() < self.peak_share:
                child = _peak_crossover(self.cp, mother[1], father[1], mother[2], self.rng)
            else:
                child = _crossover(mother[1], father[1], self.rng)
            _mutate(self.cp, child, self.rng, self.mutation)
            if self.rng.random() < self.shift:
                _shift(self.cp, child, self.rng)
            if use_parallel:
                sched = self.offer(parallel_sgs(self.cp, _rank_of(child)), "genetic algorithm")
            else:
                sched = self.offer(serial_sgs(self.cp, child), "genetic algorithm")
            worst = max(range(len(scored)), key=lambda i: scored[i][0])
            genome = list_from_schedule(self.cp, sched)
            if sched.makespan <= scored[worst][0] and all(genome != m[1] for m in scored):
                scored[worst] = (sched.makespan, genome, sched)
            stale = 0 if sched.makespan < best_before - EPS else stale + 1

    def _tournament(self, scored: list[Member]) -> Member:
        a, b = self.rng.sample(range(len(scored)), 2)
        return scored[a] if scored[a][0] <= scored[b][0] else scored[b]


def improve(
    cp: Compiled,
    lf: list[float],
    ls: list[float],
    bound: float,
    *,
    budget_s: float,
    max_schedules: int,
    seed: int,
    rules: dict[str, list[float]] | None = None,
) -> SearchResult:
    """Best schedule found (see the module docstring for the phases). ``rules``: more priority
    vectors (rank per task, lower first) to try in single pass besides LFT, LST and MTS."""
    search = _Search(cp, lf, ls, bound, budget_s, max_schedules, seed)
    search.rules(rules or {})
    population = search.sample(min(40, max(4, max_schedules // 50)))
    search.evolve(population[:30])
    assert search.best is not None
    return SearchResult(search.best, search.count, search.source)


def _rank_of(activity: list[int]) -> list[float]:
    rank = [0.0] * len(activity)
    for p, j in enumerate(activity):
        rank[j] = p
    return rank


def _list_by_rank(cp: Compiled, rank: list[float]) -> list[int]:
    """Precedence-feasible list: repeatedly take the eligible task of lowest rank."""
    missing = [len(p) for p in cp.preds]
    heap = [(rank[j], j) for j in range(cp.n) if missing[j] == 0]
    heapq.heapify(heap)
    out: list[int] = []
    while heap:
        _, j = heapq.heappop(heap)
        out.append(j)
        for s in cp.succs[j]:
            missing[s] -= 1
            if missing[s] == 0:
                heapq.heappush(heap, (rank[s], s))
    return out


def _regret_biased_list(cp: Compiled, prio: list[float], rng: random.Random) -> list[int]:
    """Activity list drawn with probability ∝ (max prio among eligible − prio + 1)² (Kolisch 1996)."""
    missing = [len(p) for p in cp.preds]
    eligible = [j for j in range(cp.n) if missing[j] == 0]
    out: list[int] = []
    while eligible:
        worst = max(prio[j] for j in eligible)
        weights = [(worst - prio[j] + 1.0) ** 2 for j in eligible]
        pick = rng.choices(range(len(eligible)), weights)[0]
        j = eligible.pop(pick)
        out.append(j)
        for s in cp.succs[j]:
            missing[s] -= 1
            if missing[s] == 0:
                eligible.append(s)
    return out


def _crossover(mother: list[int], father: list[int], rng: random.Random) -> list[int]:
    """Two-point crossover of activity lists (Hartmann 1998): keeps precedence feasibility."""
    n = len(mother)
    q1, q2 = sorted(rng.sample(range(n + 1), 2))
    child = mother[:q1]
    taken = set(child)
    middle = [j for j in father if j not in taken][: q2 - q1]
    child += middle
    taken.update(middle)
    child += [j for j in mother if j not in taken]
    return child


def _peak_crossover(cp: Compiled, mother: list[int], father: list[int], sched: Schedule, rng: random.Random) -> list[int]:
    """Peak crossover (after Valls, Ballestín & Quintanilla 2008): the child keeps the mother's
    densest run of consecutive tasks (``sched`` is her schedule, her list is by start); the tasks
    before and after it stay on their side but follow the father's order. The child is
    precedence-feasible when both lists are."""
    n = len(mother)
    width = rng.randint(max(2, n // 10), max(3, n // 2))
    if width >= n:
        return list(mother)
    a = densest_run(cp, mother, sched, width)
    b = a + width
    pos = {j: i for i, j in enumerate(father)}
    return sorted(mother[:a], key=pos.__getitem__) + mother[a:b] + sorted(mother[b:], key=pos.__getitem__)


def densest_run(cp: Compiled, activity: list[int], sched: Schedule, width: int) -> int:
    """First position of the run of ``width`` consecutive tasks of ``activity`` (by start in
    ``sched``) with the most work (duration x demand share, summed over resources) per unit of
    the time from its first start to its last finish."""
    prefix = [0.0]
    for j in activity:
        need = cp.options[j][sched.option[j]]
        prefix.append(prefix[-1] + sum(a / cp.cap[k] for k, a in need) * cp.dur[j])
    best_a, best_v = 0, -1.0
    window: deque[int] = deque()  # positions in the run, finishes decreasing (sliding maximum)
    for i, j in enumerate(activity):
        while window and sched.finish[activity[window[-1]]] <= sched.finish[j]:
            window.pop()
        window.append(i)
        a = i - width + 1
        if a < 0:
            continue
        while window[0] < a:
            window.popleft()
        span = sched.finish[activity[window[0]]] - sched.start[activity[a]]
        v = (prefix[i + 1] - prefix[a]) / span if span > 0 else 0.0
        if v > best_v:
            best_a, best_v = a, v
    return best_a


def _mutate(cp: Compiled, activity: list[int], rng: random.Random, p: float) -> None:
    """Swap neighbours that are not precedence-related, each with probability p."""
    for i in range(len(activity) - 1):
        if rng.random() < p:
            a, b = activity[i], activity[i + 1]
            if a not in cp.preds[b]:
                activity[i], activity[i + 1] = b, a


def _shift(cp: Compiled, activity: list[int], rng: random.Random) -> None:
    """Move one random task to a random place between its last predecessor and its first
    successor in the list (an insertion move: the list stays precedence-feasible)."""
    n = len(activity)
    i = rng.randrange(n)
    j = activity[i]
    pos = {a: q for q, a in enumerate(activity)}
    lo = max((pos[p] for p in cp.preds[j]), default=-1) + 1  # predecessors sit before i
    hi = min((pos[s] for s in cp.succs[j]), default=n) - 1  # successors after i: one less once j is out
    del activity[i]
    activity.insert(rng.randint(lo, max(lo, hi)), j)


def _all_successor_counts(cp: Compiled) -> list[int]:
    reach = [0] * cp.n
    for j in reversed(cp.topo):
        bits = 0
        for s in cp.succs[j]:
            bits |= reach[s] | (1 << s)
        reach[j] = bits
    return [bin(b).count("1") for b in reach]
