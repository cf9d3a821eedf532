"""Planner benchmark: every policy on PSPLIB j30/j120, STG and WfCommons/Pegasus DAGs.

One command prints, per set and policy, the mean and worst % above the optimum (j30, STG) or
the bound (j120: critical path, as in the literature; DAGs: our best lower bound), the
schedules and the time per instance, next to the literature figures.

    .venv/bin/python bench/planner_bench.py            # default samples (a few minutes)
    .venv/bin/python bench/planner_bench.py --full     # all j30 (480) and j120 (600) instances
    .venv/bin/python bench/planner_bench.py --quick    # tiny samples, a smoke test
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from engine.benchmarks import load_instance, load_reference
from engine.planner import plan
from engine.policies import POLICIES
from engine.problem import Problem, problem_from_workflow
from engine.registry import Registry
from engine.resources import Capacity

DATA = Path("/work/shared/benchdata")
LITERATURE = {
    "j30": "single pass: parallel SGS+LFT 4.39 %; sampling 5k: 0.53 %; GA 5k: 0.25 %; best 5k: 0.04 %",
    "j120": "single pass: parallel SGS+LFT 43.86 %; sampling 5k: 38.75 %; GA 5k: 36.74 %; best 5k: 32.18 %; "
    "best-known solutions: 28.91 %",
    "stg": "CP/MISF list scheduler: 0.00-0.79 % above the optimum per (n, m)",
    "dag": "no published optima: gap to max(critical path, area, heads-tails) bound",
}


@dataclass
class Row:
    devs: list[float] = field(default_factory=list)
    schedules: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    hits: int = 0


def _registry() -> Registry:
    registry = Registry()
    registry.register_module("engine.agents.sim")
    return registry


def run_set(
    title: str,
    instances: Iterable[tuple[str, Problem, float]],
    policies: tuple[str, ...],
    budget_s: float,
    max_schedules: int,
) -> dict[str, Row]:
    rows = {p: Row() for p in policies}
    print(f"\n## {title}: running ...", flush=True)
    for _, problem, reference in instances:
        for policy in policies:
            began, began_cpu = time.perf_counter(), time.process_time()
            result = plan(problem, policy, budget_s=budget_s, max_schedules=max_schedules)
            elapsed = time.perf_counter() - began
            rows[policy].cpu_seconds.append(time.process_time() - began_cpu)
            ref = reference if reference > 0 else result.lower_bound
            dev = 100.0 * (result.makespan - ref) / ref if ref > 0 else 0.0
            row = rows[policy]
            row.devs.append(dev)
            row.schedules.append(result.schedules_generated)
            row.seconds.append(elapsed)
            row.hits += dev <= 1e-9
    _print_table(title, rows)
    return rows


def _print_table(title: str, rows: dict[str, Row]) -> None:
    n = len(next(iter(rows.values())).devs)
    print(f"## {title}  ({n} instances)")
    print(f"{'policy':<16} {'mean %':>8} {'worst %':>8} {'at ref':>8} {'schedules':>10} {'s/inst':>8} {'max s':>7} {'cpu s':>7}")
    for policy, row in rows.items():
        if not row.devs:
            continue
        print(
            f"{policy:<16} {statistics.fmean(row.devs):>8.2f} {max(row.devs):>8.2f} "
            f"{row.hits:>4}/{len(row.devs):<3} {statistics.fmean(row.schedules):>10.0f} "
            f"{statistics.fmean(row.seconds):>8.3f} {max(row.seconds):>7.3f} {statistics.fmean(row.cpu_seconds):>7.3f}",
            flush=True,
        )


def psplib(registry: Registry, name: str, every: int, column: str) -> list[tuple[str, Problem, float]]:
    ref = load_reference(DATA / f"psplib/reference/{name}_reference.csv")
    files = sorted((DATA / f"psplib/{name}").glob("*.sm"), key=_psplib_key)[::every]
    out = []
    for path in files:
        wf = load_instance(path)
        out.append((path.stem, problem_from_workflow(wf, registry, Capacity(cpu=1, memory_mb=1)), float(ref[path.stem][column])))
    return out


def _psplib_key(path: Path) -> tuple[int, int]:
    group, _, inst = path.stem[3:].partition("_")
    return int(group), int(inst)


def stg(registry: Registry, every: int) -> list[tuple[str, Problem, float]]:
    ref = load_reference(DATA / "stg/reference/stg_reference.csv")
    out = []
    for path in sorted((DATA / "stg/50").glob("*.stg"))[::every]:
        for m in (2, 4, 8, 16):
            row = ref[f"50/{path.name}/{m}"]
            target = float(row["optimum"] or row["best_lb"])
            wf = load_instance(path, processors=m)
            out.append((f"{path.stem}/{m}", problem_from_workflow(wf, registry, Capacity(cpu=1, memory_mb=1)), target))
    return out


def dags(registry: Registry, capacity: Capacity) -> list[tuple[str, Problem, float]]:
    paths = sorted((DATA / "wfcommons").rglob("*.json")) + sorted((DATA / "pegasus-dax").glob("*.xml"))
    out = []
    for path in paths:
        wf = load_instance(path)
        cap = capacity.model_copy(update={"memory_mb": max(capacity.memory_mb or 0, wf.capacity.memory_mb or 0)})
        out.append((path.stem, problem_from_workflow(wf.model_copy(update={"capacity": None}), registry, cap), 0.0))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="all j30 and j120 instances")
    parser.add_argument("--quick", action="store_true", help="tiny samples (smoke test)")
    parser.add_argument("--budget-s", type=float, default=1.0, help="auto: seconds per instance")
    parser.add_argument("--max-schedules", type=int, default=5000, help="auto: schedules per instance")
    parser.add_argument("--sets", default="j30,j120,stg,dag", help="comma-separated subset")
    parser.add_argument("--policies", default=",".join(POLICIES), help="comma-separated subset")
    parser.add_argument("--shard", default="0/1", help="i/n: run only every n-th instance from the i-th (parallel runs)")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"benchmark data not found at {DATA}", file=sys.stderr)
        return 2
    registry = _registry()
    step = {"j30": 1 if args.full else (48 if args.quick else 4), "j120": 1 if args.full else (60 if args.quick else 10)}
    stg_every = 36 if args.quick else 9
    sets: dict[str, Callable[[], list[tuple[str, Problem, float]]]] = {
        "j30": lambda: psplib(registry, "j30", step["j30"], "optimum"),
        "j120": lambda: psplib(registry, "j120", step["j120"], "cp_lb"),
        "stg": lambda: stg(registry, stg_every),
        "dag": lambda: dags(registry, Capacity(cpu=4, memory_mb=8192, gpus=())),
    }
    titles = {
        "j30": "PSPLIB j30: % above the proven optimum",
        "j120": "PSPLIB j120: % above the critical-path bound (literature metric)",
        "stg": "STG 50 tasks on 2/4/8/16 processors: % above the proven optimum (best LB if open)",
        "dag": "WfCommons + Pegasus DAX on 4 CPU threads, 8 GB: % above our best lower bound",
    }
    print(f"planner benchmark: auto budget {args.budget_s} s and {args.max_schedules} schedules per instance")
    for key in args.sets.split(","):
        began = time.perf_counter()
        shard, shards = (int(x) for x in args.shard.split("/"))
        instances = sets[key]()[shard::shards]
        policies = tuple(p for p in args.policies.split(",") if p)
        run_set(titles[key], instances, policies, args.budget_s, args.max_schedules)
        print(f"literature: {LITERATURE[key]}")
        print(f"({time.perf_counter() - began:.0f} s for this set)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
