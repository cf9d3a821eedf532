"""Hypothesis fuzzing of the loader and the validator: no exception but the documented ones."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import WorkflowFileError
from engine.registry import default_registry
from engine.resources import Capacity
from engine.validation import validate, validate_text
from engine.workflow import load_workflow

CAP = Capacity(cpu=4, memory_mb=4096, gpus=())
AGENTS = ["test.sleep", "test.echo", "test.source", "test.fail", "sim.task", "flow.branch", "nope", ""]
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=20)
ids = st.one_of(st.sampled_from(["a", "b", "c", "d"]), st.text(max_size=6))


@st.composite
def workflow_docs(draw: st.DrawFn) -> dict[str, Any]:
    """Workflow-shaped documents: mostly right keys, arbitrary values in the corners."""
    nodes = draw(st.lists(st.fixed_dictionaries(
        {"id": ids, "agent": st.sampled_from(AGENTS)},
        optional={"params": st.one_of(st.dictionaries(st.sampled_from(["seconds", "value", "duration_s", "x"]),
                                                      scalars, max_size=2), json_values),
                  "resources": st.dictionaries(st.sampled_from(["cpu", "memory_mb", "device", "ram"]), scalars, max_size=2),
                  "lifecycle": st.dictionaries(st.sampled_from(["execution", "start", "exit"]), json_values, max_size=2),
                  "label": st.text(max_size=10), "position": json_values}), max_size=6))
    edges = draw(st.lists(st.fixed_dictionaries(
        {"source": ids, "target": ids},
        optional={"source_port": st.text(max_size=5), "target_port": st.sampled_from(["in", "out", "x"])}), max_size=8))
    doc: dict[str, Any] = {"schema_version": draw(st.sampled_from([1, 1, 1, 2, 0, "1"])), "nodes": nodes, "edges": edges}
    if draw(st.booleans()):
        doc["capacity"] = draw(st.one_of(json_values, st.fixed_dictionaries(
            {"cpu": scalars, "memory_mb": scalars}, optional={"gpus": st.just([])})))
    if draw(st.booleans()):
        doc[draw(st.text(max_size=8))] = draw(json_values)
    return doc


def _load_or_documented_error(text: str) -> None:
    try:
        load_workflow(text)
    except WorkflowFileError as exc:
        assert str(exc)


@FUZZ
@given(workflow_docs())
def test_validate_text_never_raises_on_workflow_shaped_documents(doc: dict[str, Any]) -> None:
    text = json.dumps(doc)
    workflow, issues = validate_text(text, capacity=CAP)
    assert (workflow is None) == any(i.code == "invalid_file" for i in issues)
    assert all(i.message for i in issues)
    _load_or_documented_error(text)


@FUZZ
@given(workflow_docs())
def test_validate_never_raises_on_a_loaded_workflow(doc: dict[str, Any]) -> None:
    try:
        workflow = load_workflow(json.dumps(doc))
    except WorkflowFileError:
        return
    issues = validate(workflow, default_registry(), CAP)
    assert all(i.severity in ("error", "warning") for i in issues)


@FUZZ
@given(json_values)
def test_any_json_document_loads_or_gets_a_file_error(value: Any) -> None:
    _load_or_documented_error(json.dumps(value))


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_load_or_get_a_file_error(raw: bytes) -> None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return  # a file that is not UTF-8 is refused when read (the CLI exits 2)
    _load_or_documented_error(text)
    _, issues = validate_text(text, capacity=CAP)
    assert issues is not None


@FUZZ
@given(st.text(max_size=300))
def test_random_text_loads_or_gets_a_file_error(text: str) -> None:
    _load_or_documented_error(text)
