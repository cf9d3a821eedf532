"""auto and the fixed rules on a sample of PSPLIB j30 instances with proven optima."""

from __future__ import annotations

from pathlib import Path

import pytest
from planner_checks import assert_valid_plan

from engine.benchmarks import load_instance, load_reference
from engine.planner import plan
from engine.problem import problem_from_workflow
from engine.registry import Registry
from engine.resources import Capacity

SAMPLE = ["j301_1", "j305_3", "j3011_7", "j3013_2", "j3017_9", "j3021_4", "j3029_5", "j3033_1", "j3041_6", "j3045_10"]


@pytest.mark.parametrize("name", SAMPLE)
def test_auto_never_beats_the_optimum_and_respects_constraints(
    name: str, benchdata: Path, sim_registry: Registry
) -> None:
    optimum = float(load_reference(benchdata / "psplib/reference/j30_reference.csv")[name]["optimum"])
    workflow = load_instance(benchdata / f"psplib/j30/{name}.sm")
    problem = problem_from_workflow(workflow, sim_registry, Capacity(cpu=1, memory_mb=1))
    best = plan(problem, "auto", budget_s=60.0, max_schedules=300, seed=0)
    assert_valid_plan(problem, best)
    assert best.makespan >= optimum
    assert best.lower_bound <= optimum  # the bounds are valid
    single = plan(problem, "critical_path")
    assert_valid_plan(problem, single)
    assert optimum <= best.makespan <= single.makespan
