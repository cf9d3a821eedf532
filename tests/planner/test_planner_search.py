"""The auto search's genetic operators and its schedule budget on a PSPLIB j120 instance."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from planner_checks import assert_valid_plan

from engine.benchmarks import load_instance
from engine.planner import plan
from engine.problem import Problem, problem_from_workflow
from engine.registry import Registry
from engine.resources import Capacity
from engine.search import _peak_crossover, _regret_biased_list, _shift, densest_run
from engine.sgs import Compiled, Schedule, list_from_schedule, serial_sgs


@pytest.fixture(scope="module")
def j120(benchdata: Path, sim_registry: Registry) -> Problem:
    workflow = load_instance(benchdata / "psplib/j120/j1201_1.sm")
    return problem_from_workflow(workflow, sim_registry, Capacity(cpu=1, memory_mb=1))


def _parents(cp: Compiled, seed: int) -> tuple[list[int], list[int], Schedule]:
    rng = random.Random(seed)
    prio = [float(rng.random()) for _ in range(cp.n)]
    lists = []
    for _ in range(2):
        sched = serial_sgs(cp, _regret_biased_list(cp, prio, rng))
        lists.append((list_from_schedule(cp, sched), sched))
    return lists[0][0], lists[1][0], lists[0][1]


def _work_rate(cp: Compiled, run: list[int], sched: Schedule) -> float:
    work = sum(sum(a / cp.cap[k] for k, a in cp.options[j][sched.option[j]]) * cp.dur[j] for j in run)
    span = max(sched.finish[j] for j in run) - min(sched.start[j] for j in run)
    return work / span if span > 0 else 0.0


@pytest.mark.parametrize("seed", range(6))
def test_peak_crossover_keeps_the_mothers_densest_run_and_precedence(j120: Problem, seed: int) -> None:
    cp = Compiled(j120)
    mother, father, sched = _parents(cp, seed)
    width = 12 + 7 * seed
    a = densest_run(cp, mother, sched, width)
    rates = [_work_rate(cp, mother[i : i + width], sched) for i in range(cp.n - width + 1)]
    assert rates[a] == pytest.approx(max(rates))  # the sliding maximum equals brute force
    child = _peak_crossover(cp, mother, father, sched, random.Random(seed))
    assert sorted(child) == list(range(cp.n))
    placed: set[int] = set()
    for j in child:
        assert all(p in placed for p in cp.preds[j]), f"task {cp.ids[j]} before a predecessor"
        placed.add(j)
    run_width = random.Random(seed).randint(cp.n // 10, cp.n // 2)  # the draw _peak_crossover makes
    a = densest_run(cp, mother, sched, run_width)
    b = a + run_width
    assert child[a:b] == mother[a:b]
    assert set(child[:a]) == set(mother[:a])
    father_pos = {j: i for i, j in enumerate(father)}
    for side in (child[:a], child[b:]):
        assert [father_pos[j] for j in side] == sorted(father_pos[j] for j in side)


def test_auto_on_j120_respects_the_budget_is_deterministic_and_beats_single_pass(j120: Problem) -> None:
    first = plan(j120, "auto", budget_s=120.0, max_schedules=800, seed=5)
    again = plan(j120, "auto", budget_s=120.0, max_schedules=800, seed=5)
    assert_valid_plan(j120, first)
    assert first.schedules_generated <= 800
    assert first.makespan == again.makespan
    assert first.order() == again.order()
    assert first.makespan >= first.lower_bound
    single = min(plan(j120, rule).makespan for rule in ("critical_path", "fifo", "shortest_first"))
    assert first.makespan <= single


def test_shift_moves_one_task_and_keeps_precedence(j120: Problem) -> None:
    cp = Compiled(j120)
    activity, _, _ = _parents(cp, 7)
    rng = random.Random(7)
    moved = 0
    for _ in range(300):
        before = list(activity)
        _shift(cp, activity, rng)
        assert sorted(activity) == sorted(before)
        pos = {j: i for i, j in enumerate(activity)}
        assert all(pos[p] < pos[j] for j in range(cp.n) for p in cp.preds[j])
        # one insertion: the moved task is at one end of the changed range in one of the lists,
        # and without it the other tasks keep their old order
        diff = [i for i, (a, b) in enumerate(zip(before, activity, strict=True)) if a != b]
        if diff:
            moved += 1
            ends = {before[diff[0]], before[diff[-1]], activity[diff[0]], activity[diff[-1]]}
            assert any([x for x in before if x != j] == [x for x in activity if x != j] for j in ends)
    assert moved > 100, "most calls move a task"
