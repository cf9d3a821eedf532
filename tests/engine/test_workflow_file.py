"""Workflow files: golden round trips (JSON and YAML), byte-stable dumps, pinned load errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import WorkflowFileError
from engine.workflow import Workflow, dump_workflow, load_workflow

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
ROOT = Path(__file__).resolve().parents[2]
NAMES = ["two-stage", "full"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_golden_file_round_trips_byte_for_byte(name, fmt):
    path = GOLDEN / f"{name}.{fmt}"
    text = path.read_text(encoding="utf-8")
    workflow = load_workflow(path)
    assert dump_workflow(workflow, fmt=fmt) == text  # the dump is the golden file, byte for byte
    assert load_workflow(text, fmt=fmt) == workflow
    assert dump_workflow(load_workflow(dump_workflow(workflow, fmt=fmt), fmt=fmt), fmt=fmt) == text


@pytest.mark.parametrize("name", NAMES)
def test_json_and_yaml_goldens_hold_the_same_workflow(name):
    from_json = load_workflow(GOLDEN / f"{name}.json")
    assert load_workflow(GOLDEN / f"{name}.yaml") == from_json
    assert load_workflow(dump_workflow(from_json, fmt="yaml"), fmt="yaml") == from_json


def test_every_field_survives(tmp_path):
    workflow = load_workflow(GOLDEN / "full.json")
    split = workflow.node("split")
    assert split is not None and split.position is not None
    assert (split.position.x, split.position.y) == (-40.0, 0.0)
    assert split.params["nested"] == {"k": None, "on": True}
    assert split.lifecycle["execution"] == {"retries": 2, "timeout_s": 30}
    assert workflow.edges[1].source_port == "labels"
    assert workflow.capacity is not None and workflow.capacity.gpus[0].simulated
    assert workflow.metadata["version"] == 3
    assert "图像" in workflow.description
    copy = tmp_path / "copy.json"
    copy.write_text(dump_workflow(workflow), encoding="utf-8")
    assert load_workflow(copy) == workflow


def test_the_issue_example_is_the_golden_two_stage():
    assert load_workflow(ROOT / "examples" / "two-stage.json") == load_workflow(GOLDEN / "two-stage.json")


def test_the_issue_example_shape():
    data = json.loads((ROOT / "examples" / "two-stage.json").read_text(encoding="utf-8"))
    assert data == {
        "schema_version": 1, "name": "two-stage",
        "nodes": [{"id": "pre", "agent": "sim.task", "params": {"duration_s": 120},
                   "resources": {"memory_mb": 1024}},
                  {"id": "cls", "agent": "sim.task", "params": {"duration_s": 240},
                   "resources": {"memory_mb": 2048}}],
        "edges": [{"source": "pre", "target": "cls"}],
        "capacity": {"memory_mb": 4096, "cpu": 2},
    }


LOAD_ERRORS = [
    ('{"schema_version": 1, "nodes": [}', "the file is not valid JSON: Expecting value (at line 1, column 33)"),
    ('{"name": "x"}', "the file has no `schema_version` (at schema_version)"),
    ('{"schema_version": 2}',
     "schema_version 2 is newer than this ServiceGrid understands; upgrade servicegrid "
     "(this version reads 1) (at schema_version)"),
    ('{"schema_version": 1, "nodes": [{"id": "a", "agent": "sim.task", "colour": 1}]}',
     "unknown field 'colour' (at nodes[0].colour)"),
    ('{"schema_version": 1, "nodes": [{"id": "a"}]}', "Field required (at nodes[0].agent)"),
    ("[1, 2]", "a workflow file must hold an object with `nodes` and `edges`, not list"),
]


@pytest.mark.parametrize(("text", "message"), LOAD_ERRORS)
def test_load_errors_are_pinned(text, message):
    with pytest.raises(WorkflowFileError) as info:
        load_workflow(text)
    assert str(info.value) == message
    assert info.value.hint


def test_yaml_error_names_the_line():
    with pytest.raises(WorkflowFileError, match=r"\(at line 4, column 4\)$"):
        load_workflow("schema_version: 1\nnodes:\n  - id: a\n   agent: x\n", fmt="yaml")


def test_workflow_is_immutable():
    workflow = load_workflow(GOLDEN / "two-stage.json")
    with pytest.raises(Exception, match="frozen"):
        workflow.name = "other"  # type: ignore[misc]
    assert isinstance(workflow, Workflow)


def test_a_path_given_as_a_string_loads_the_file(tmp_path):
    """``load_workflow("examples/two-stage.json")`` is what a library user types first; it once
    parsed the path itself as YAML and said the file must hold an object, not str."""
    example = Path(__file__).resolve().parents[2] / "examples" / "two-stage.json"
    assert load_workflow(str(example)) == load_workflow(example)
    yaml_copy = tmp_path / "copy.YML"
    yaml_copy.write_text(dump_workflow(load_workflow(example), fmt="yaml"))
    assert load_workflow(f" {yaml_copy} ") == load_workflow(example)
    with pytest.raises(FileNotFoundError):
        load_workflow(str(tmp_path / "missing.json"))
