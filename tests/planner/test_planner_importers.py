"""Importers: one file of each benchmark format, checked against the set's reference numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.benchmarks import instance_format, load_instance, load_reference
from engine.bounds import cpm
from engine.errors import WorkflowFileError
from engine.problem import problem_from_workflow
from engine.registry import Registry
from engine.resources import Capacity

ANY = Capacity(cpu=1, memory_mb=1)


def test_psplib_keeps_job_numbers_and_capacity(benchdata: Path, sim_registry: Registry) -> None:
    path = benchdata / "psplib/j30/j301_1.sm"
    workflow = load_instance(path)
    assert instance_format(path) == "psplib"
    assert workflow.node_ids() == [str(i) for i in range(1, 33)]
    assert workflow.capacity is not None and set(workflow.capacity.custom) == {"R1", "R2", "R3", "R4"}
    problem = problem_from_workflow(workflow, sim_registry, ANY)
    ref = load_reference(benchdata / "psplib/reference/j30_reference.csv")["j301_1"]
    assert cpm(problem).length == float(ref["cp_lb"]) == workflow.metadata["mpm_time"]
    assert all(t.demand.cpu == 0 for t in problem.tasks.values())


def test_stg_needs_processors_and_matches_its_critical_path(benchdata: Path, sim_registry: Registry) -> None:
    path = benchdata / "stg/50/rand0000.stg"
    with pytest.raises(WorkflowFileError, match="processors"):
        load_instance(path)
    workflow = load_instance(path, processors=4)
    assert workflow.node_ids()[:3] == ["0", "1", "2"] and len(workflow.nodes) == 52
    problem = problem_from_workflow(workflow, sim_registry, ANY)
    ref = load_reference(benchdata / "stg/reference/stg_reference.csv")["50/rand0000.stg/4"]
    assert problem.capacity.cpu == 4
    assert cpm(problem).length == float(ref["cp_length"])
    assert sum(t.duration for t in problem.tasks.values()) == float(ref["total_work"])


def test_wfcommons_runtimes_memory_and_edges(benchdata: Path, sim_registry: Registry) -> None:
    ref = load_reference(benchdata / "wfcommons/wfcommons_reference.csv")["nextflow/sarek-dirt02-001.json"]
    workflow = load_instance(benchdata / "wfcommons/nextflow/sarek-dirt02-001.json")
    assert len(workflow.nodes) == int(ref["n_tasks"]) and len(workflow.edges) == int(ref["n_edges"])
    problem = problem_from_workflow(workflow, sim_registry, ANY)
    assert cpm(problem).length == pytest.approx(float(ref["critical_path_s"]))
    biggest = max(t.demand.memory_mb for t in problem.tasks.values())
    assert biggest == pytest.approx(float(ref["max_task_memory_bytes"]) / 2**20, rel=1e-6)


def test_dax_jobs_edges_and_critical_path(benchdata: Path, sim_registry: Registry) -> None:
    ref = load_reference(benchdata / "pegasus-dax/dax_reference.csv")["Montage_25.xml"]
    workflow = load_instance(benchdata / "pegasus-dax/Montage_25.xml")
    assert len(workflow.nodes) == int(ref["n_jobs"]) and len(workflow.edges) == int(ref["n_edges"])
    problem = problem_from_workflow(workflow, sim_registry, ANY)
    assert cpm(problem).length == pytest.approx(float(ref["critical_path_s"]))
    assert sum(t.duration for t in problem.tasks.values()) == pytest.approx(float(ref["sum_runtime_s"]))


def test_an_unknown_file_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(WorkflowFileError, match="not a recognised benchmark instance"):
        load_instance(path)
