"""``servicegrid plan FILE``: the predicted schedule of a workflow or a benchmark instance.

Prints a text Gantt (or JSON with makespan, lower bounds, gap, critical path and nodes).
Capacity precedence: ``--capacity`` over the file's capacity over this machine's.
Exit codes: 0 planned, 1 invalid workflow or a demand that never fits, 2 unreadable file/option.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

from engine.benchmarks import instance_format, load_instance
from engine.errors import CapacityError, WorkflowFileError
from engine.planner import Plan, plan
from engine.policies import POLICIES, POLICY_HELP
from engine.problem import problem_from_workflow
from engine.registry import default_registry
from engine.resources import Capacity, parse_capacity
from engine.workflow import Workflow, load_workflow

MAX_GANTT_ROWS = 60


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="predict the schedule of a workflow or benchmark instance",
        description="Simulate the schedule on a virtual clock. FILE is a workflow (JSON/YAML) or a "
        "benchmark instance: PSPLIB .sm, STG .stg (needs --processors), WfCommons .json, Pegasus DAX .xml.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="policies:\n" + "\n".join(f"  {k:16} {v}" for k, v in POLICY_HELP.items()),
    )
    p.add_argument("file", type=Path, help="workflow file or benchmark instance")
    p.add_argument("--policy", default="auto", choices=POLICIES, help="admission policy (default: auto)")
    p.add_argument("--capacity", metavar="SPEC", help="e.g. memory_mb=4096,cpu=2 (over the file's capacity)")
    p.add_argument("--processors", type=int, metavar="P", help="processors for an STG instance")
    p.add_argument("--budget-s", type=float, default=1.0, metavar="S", help="time budget of auto (seconds)")
    p.add_argument("--seed", type=int, default=0, help="random seed of auto")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not (math.isfinite(args.budget_s) and args.budget_s >= 0):
        print(f"servicegrid plan: --budget-s must be a number of seconds >= 0, not {args.budget_s:g}", file=sys.stderr)
        return 2
    try:
        workflow = _load(path, args.processors)
    except WorkflowFileError as exc:
        print(f"servicegrid plan: {path}: {exc}" + (f"\n  hint: {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return 1
    except (OSError, UnicodeDecodeError) as exc:
        print(f"servicegrid plan: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    registry = default_registry()
    try:
        base = workflow.capacity or Capacity()
        capacity = parse_capacity(args.capacity, base=base) if args.capacity else base
    except CapacityError as exc:
        print(f"servicegrid plan: --capacity: {exc}", file=sys.stderr)
        return 2
    errors = _validation_errors(workflow, registry, capacity)
    if errors:
        for line in errors:
            print(f"servicegrid plan: {line}", file=sys.stderr)
        return 1
    full = _resolve(capacity)
    problem = problem_from_workflow(workflow.model_copy(update={"capacity": None}), registry, full)
    result = plan(problem, args.policy, budget_s=args.budget_s, seed=args.seed)
    if args.json:
        print(json.dumps(plan_json(result), indent=2))
    else:
        print(format_plan(result, workflow.name, full))
    return 0


def _load(path: Path, processors: int | None) -> Workflow:
    if path.is_file() and instance_format(path) is not None:
        return load_instance(path, processors)
    return load_workflow(path)


def _resolve(capacity: Capacity) -> Capacity:
    if capacity.cpu is not None and capacity.memory_mb is not None and capacity.gpus is not None:
        return capacity
    from engine.devices import machine_capacity

    return capacity.resolved(machine_capacity())


def _validation_errors(workflow: Workflow, registry: object, capacity: Capacity) -> list[str]:
    try:
        from engine.validation import validate
    except ImportError:  # validation not available: the planner's own checks still apply
        return []
    issues = validate(workflow, registry, capacity)  # type: ignore[arg-type]
    return [f"[{i.code}] {i.message}" + (f" ({i.hint})" if i.hint else "") for i in issues if i.is_error]


def plan_json(result: Plan) -> dict[str, object]:
    """The JSON document of ``servicegrid plan --json`` (times in seconds)."""
    return {
        "policy": result.policy,
        "makespan": result.makespan,
        "lower_bound": result.lower_bound,
        "lower_bounds": result.lower_bounds,
        "gap": result.gap,
        "critical_path": result.critical_path,
        "nodes": [{"id": n.id, "start": n.start, "end": n.end, "device": n.device} for n in result.nodes],
        "peak": result.peak,
        "utilisation": result.utilisation,
        "schedules_generated": result.schedules_generated,
        "found_by": result.found_by,
    }


def format_plan(result: Plan, name: str, capacity: Capacity, width: int | None = None) -> str:
    """A text Gantt (one row per node, bars scaled to the terminal) and the plan's figures."""
    width = width or max(20, min(80, shutil.get_terminal_size((100, 20)).columns - 50))
    span = result.makespan or 1.0
    rows = sorted(result.nodes, key=lambda n: (n.start, n.end))
    id_w = min(24, max((len(n.id) for n in rows), default=4))
    lines = [f"plan of {name!r} with policy {result.policy} on {capacity.describe()}", ""]
    critical = set(result.critical_path)
    for n in rows[:MAX_GANTT_ROWS]:
        a = round(n.start / span * width)
        b = max(a + 1, round(n.end / span * width)) if n.end > n.start else a
        bar = " " * a + ("#" if n.id in critical else "=") * (b - a)
        lines.append(f"{n.id[:id_w]:<{id_w}} {n.device:<7}|{bar:<{width}}| {n.start:>9.1f} - {n.end:.1f} s")
    if len(rows) > MAX_GANTT_ROWS:
        lines.append(f"... {len(rows) - MAX_GANTT_ROWS} more node(s); use --json for all")
    lines.append(f"{'':<{id_w}} {'':<7} ('#' = critical path, scale: {span / width:.3g} s per column)")
    bounds = ", ".join(f"{k} {v:g} s" for k, v in result.lower_bounds.items())
    lines += [
        "",
        f"makespan     {result.makespan:g} s",
        f"lower bound  {result.lower_bound:g} s  ({bounds})",
        f"gap          {100 * result.gap:.2f} % above the lower bound",
        f"critical path {' -> '.join(result.critical_path)}",
        "peak         " + ", ".join(f"{k} {v:g}" for k, v in result.peak.items() if v > 0),
        "utilisation  " + ", ".join(f"{k} {100 * v:.0f} %" for k, v in result.utilisation.items() if v > 0),
    ]
    if result.policy == "auto":
        lines.append(f"search       {result.schedules_generated} schedules in {result.elapsed_s:.2f} s, best by {result.found_by}")
    return "\n".join(lines)
