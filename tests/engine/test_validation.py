"""Validation: every code on its fixture (exact findings), pinned messages, scale, and a fuzz test."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import WorkflowFileError
from engine.issues import Issue
from engine.registry import Registry
from engine.resources import Capacity, GpuDevice
from engine.validation import resolve_capacity, validate, validate_text
from engine.workflow import Workflow, load_workflow, workflow_from_data

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CAPACITY = Capacity(cpu=4, memory_mb=4096, gpus=())


def _fixture_specs() -> tuple:
    name = "sg_fixture_agents"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FIXTURES / "fixture_agents.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name].SPECS


@pytest.fixture(scope="module")
def registry() -> Registry:
    reg = Registry(_fixture_specs())
    reg.register_module("engine.agents.sim")
    reg.register_module("engine.agents.testing")
    return reg


def wf(nodes: list[dict[str, Any]], edges: list[dict[str, Any]] = (), **extra: Any) -> Workflow:
    return workflow_from_data({"schema_version": 1, "nodes": nodes, "edges": list(edges), **extra})


def triples(issues: list[Issue]) -> list[tuple[str, str | None, str | None]]:
    return [(i.code, i.node, i.port) for i in issues]


EXPECTED = {
    "ambiguous_port": [("ambiguous_port", "s", None)],
    "capacity_exceeded": [("capacity_exceeded", "a", None)],
    "cycle": [("cycle", "a", None)],
    "duplicate_edge": [("duplicate_edge", "b", "in")],
    "duplicate_input": [("duplicate_input", "c", "images")],
    "duplicate_node": [("duplicate_node", "a", None)],
    "empty_workflow": [("empty_workflow", None, None)],
    "invalid_file": [("invalid_file", None, None)],
    "invalid_lifecycle": [("invalid_lifecycle", "a", None)],
    "invalid_param": [("invalid_param", "a", None)],
    "invalid_resources": [("invalid_resources", "a", None)],
    "isolated_node": [("isolated_node", "lonely", None)],
    "missing_input": [("missing_input", "j", "right")],
    "missing_file": [("missing_file", "a", None)],
    "no_device": [("no_device", "a", None)],
    "self_loop": [("self_loop", "b", None)],
    "type_mismatch": [("type_mismatch", "c", "images")],
    "unknown_agent": [("unknown_agent", "b", None)],
    "unknown_node": [("unknown_node", "c", None)],
    "unknown_port": [("unknown_port", "a", "output")],
    "unused_output": [("unused_output", "s", "scores")],
    "outputs_not_kept": [("outputs_not_kept", "b", None)],
    "memory_below_need": [("memory_below_need", "filter", None)],
    "missing_columns": [("missing_columns", "s", "table")],
    "image_size_mismatch": [("image_size_mismatch", "m", "images")],
    "unreadable_file": [("unreadable_file", "t", None)],
    "unknown_class": [("unknown_class", "p", "scores")],
    "never_matches": [("never_matches", "s", "rows")],
    "pin_not_allowed": [("pin_not_allowed", "sim", None)],
    "pin_stale": [("pin_stale", "b", None)],
    # whether a pinned output exists is checked against the result cache (servicegrid validate, a
    # run's submit), not here; its key is not what the node computes now, so it is also stale
    "pin_missing": [("pin_stale", "b", None)],
    "bypass_not_possible": [("bypass_not_possible", "m", None)],
    "unknown_component": [("unknown_component", "c1", None)],
    "component_cycle": [("component_cycle", "c1/i/o", None)],
    "invalid_component": [("invalid_component", "c1", "y"), ("isolated_node", "c", None)],
    "fault_drill": [("fault_drill", "b", None)],
    "break_condition": [("break_condition", "s", "rows")],
    "agent_upgraded": [("agent_upgraded", "resize", None)],
    "agent_newer": [("agent_newer", "resize", None)],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_gives_exactly_its_finding(name, registry):
    _, issues = validate_text(FIXTURES / f"{name}.json", registry)
    assert triples(issues) == EXPECTED[name]


def test_every_fixture_is_covered():
    assert {p.stem for p in FIXTURES.glob("*.json")} == set(EXPECTED)


PINNED = {
    "unknown_agent": ("node 'b': no agent named 'sim.tsak' is registered", "did you mean 'sim.task'?"),
    "cycle": ("the edges form a cycle: a -> b -> c -> a",
              "a workflow must be acyclic; remove one of these edges"),
    "type_mismatch": ("edge t.texts -> c.images: output kind 'text_batch' cannot feed input kind "
                      "'image_batch'",
                      "connect an output of kind 'image_batch' (or 'any'), or insert a converting agent"),
    "invalid_param": ("node 'a': parameter duration_s = -5 is invalid: Input should be greater than "
                      "or equal to 0", None),
    "capacity_exceeded": ("node 'a' needs 8,192 MB of memory but the capacity has 4,096 MB of memory",
                          "lower the node's memory_mb or raise the capacity's"),
    "unknown_port": ("edge a -> b: sim.task (node 'a') has no output port 'output'", "did you mean 'out'?"),
    "duplicate_input": ("node 'c': input 'images' takes one edge but has 2 (from 'i1', 'i2')", None),
    "memory_below_need": ("node 'filter' reserves 20 MB (its memory_mb) but its agent declares 110 MB for the "
                          "100 items of 512 x 512 px it handles: the run may use more than it reserves",
                          "raise the node's memory_mb to 110 or more, or remove it so that the reservation "
                          "grows with the data"),
    "missing_columns": ("edge t -> s: node 's' (fixture.score_orders) needs the column 'amount', which the table "
                        "from 't' does not have (it has 'name', 'age')",
                        "set kind of node 't' to 'orders' (its table has them), or connect another table"),
    "image_size_mismatch": ("edge i -> m: node 'm' (fixture.fixed_model) takes images of 1 channel x 32 x 32 px, "
                            "but the images from 'i' are planned at 1 channel x 64 x 64 px",
                            "set size of node 'i' to 32"),
    "never_matches": ("edge c -> s: node 's' (fixture.select): 'predicted' holds the classes 'cat', 'dog', and "
                      "'dgo' is not one of them, so no row will match", "did you mean 'dog'?"),
    "break_condition": ("node 's': its breakpoint condition (confidance < 0.6) tests the column 'confidance', "
                        "which the table from 'c' does not have (it has 'id', 'predicted', 'confidence', "
                        "'score_cat', 'score_dog')", "did you mean 'confidence'?"),
    "unknown_class": ("edge c -> p: node 'p' (fixture.pick_class) picks the class 'dgo', which the scores "
                      "from 'c' do not have (their classes: 'cat', 'dog')", "did you mean 'dog'?"),
    "unreadable_file": ("node 't' (fixture.read_table): t.csv, line 3: 2 field(s) but the header has 3",
                        "correct the file, then upload it again in the designer's properties panel (Your files), "
                        "or set `path` to another file"),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_user_facing_messages_are_pinned(name, registry):
    _, (issue,) = validate_text(FIXTURES / f"{name}.json", registry)
    message, hint = PINNED[name]
    assert issue.message == message
    if hint is not None:
        assert issue.hint == hint


def test_the_issue_example_is_valid(registry):
    workflow, issues = validate_text(Path(__file__).resolve().parents[2] / "examples" / "two-stage.json",
                                     registry, CAPACITY)
    assert workflow is not None and workflow.name == "two-stage"
    assert issues == []


def test_all_findings_at_once_errors_first(registry):
    workflow = wf(
        [{"id": "lonely", "agent": "sim.task"}, {"id": "x", "agent": "nope"},
         {"id": "a", "agent": "sim.task", "params": {"duration_s": "soon"}}, {"id": "b", "agent": "sim.task"}],
        [{"source": "a", "target": "b"}, {"source": "b", "target": "a"}, {"source": "a", "target": "ghost"}],
    )
    issues = validate(workflow, registry, CAPACITY)
    assert triples(issues) == [
        ("unknown_agent", "x", None),
        ("invalid_param", "a", None),
        ("cycle", "a", None),
        ("unknown_node", "ghost", None),
        ("isolated_node", "lonely", None),
        ("isolated_node", "x", None),
    ]
    assert [i.severity for i in issues][-2:] == ["warning", "warning"]


def test_every_cycle_is_reported_once(registry):
    nodes = [{"id": n, "agent": "sim.task"} for n in "abcdef"]
    edges = [{"source": s, "target": t} for s, t in ["ab", "ba", "cd", "de", "ec", "ef"]]
    messages = [i.message for i in validate(wf(nodes, edges), registry, CAPACITY)]
    assert messages == ["the edges form a cycle: a -> b -> a", "the edges form a cycle: c -> d -> e -> c"]


def test_ports_default_when_the_agent_has_one(registry):
    workflow = wf([{"id": "i", "agent": "fixture.images"}, {"id": "c", "agent": "fixture.classify"}],
                  [{"source": "i", "target": "c"}])
    assert validate(workflow, registry, CAPACITY) == []


def test_unknown_parameter_suggests_the_right_name(registry):
    workflow = wf([{"id": "a", "agent": "sim.task", "params": {"duraton_s": 3}}])
    (issue,) = validate(workflow, registry, CAPACITY)
    assert (issue.code, issue.message, issue.hint) == (
        "invalid_param", "node 'a': unknown parameter 'duraton_s'", "did you mean 'duration_s'?")


def test_invalid_enum_param_names_field_value_and_constraint(registry):
    workflow = wf([{"id": "i", "agent": "fixture.images"},
                   {"id": "c", "agent": "fixture.classify", "params": {"mode": "slow", "top_k": 0}}],
                  [{"source": "i", "target": "c"}])
    messages = [i.message for i in validate(workflow, registry, CAPACITY)]
    assert messages == [
        "node 'c': parameter top_k = 0 is invalid: Input should be greater than or equal to 1",
        "node 'c': parameter mode = 'slow' is invalid: Input should be 'fast' or 'accurate'",
    ]


def test_lifecycle_rule_out_of_its_section_says_where_it_belongs(registry):
    workflow = wf([{"id": "a", "agent": "sim.task",
                    "lifecycle": {"retries": 2, "exec": {}, "execution": {"retrys": 1}, "exit": {"max_item": 3}}}])
    (issue,) = validate(workflow, registry, CAPACITY)
    assert issue.code == "invalid_lifecycle"
    problems = issue.message.removeprefix("node 'a': bad lifecycle override: ").split("; ")
    assert sorted(problems) == sorted([
        """'retries' belongs in the 'execution' section: write {"execution": {"retries": 2}}""",
        "unknown section 'exec' (did you mean 'execution'?)",
        "execution.retrys: 'execution' has no rule 'retrys' (did you mean 'retries'?)",
        "exit.max_item: 'exit' has no rule 'max_item' (did you mean 'max_items'?)",
    ])


def test_gpu_agent_fits_on_a_simulated_gpu_but_not_a_small_one(registry):
    workflow = wf([{"id": "g", "agent": "fixture.gpu_only"}])
    big = Capacity(cpu=2, memory_mb=4096, gpus=(GpuDevice(memory_mb=8000, simulated=True),))
    small = Capacity(cpu=2, memory_mb=4096, gpus=(GpuDevice(memory_mb=1000, simulated=True),))
    assert validate(workflow, registry, big) == []
    (issue,) = validate(workflow, registry, small)
    assert issue.message == "node 'g' needs 2,000 MB of GPU memory on cuda:0 but the capacity has 1,000 MB of GPU memory on cuda:0"
    assert triples(validate(workflow, registry, CAPACITY)) == [("no_device", "g", None)]


def test_custom_resource_missing_from_the_capacity(registry):
    workflow = wf([{"id": "a", "agent": "sim.task", "resources": {"custom": {"licence": 1}}}])
    (issue,) = validate(workflow, registry, CAPACITY)
    assert issue.message == "node 'a' needs 1 of custom resource 'licence' but the capacity has 0 of custom resource 'licence'"
    assert validate(workflow, registry, CAPACITY.model_copy(update={"custom": {"licence": 2}})) == []


def test_capacity_comes_from_the_workflow_then_the_machine():
    workflow = wf([], capacity={"memory_mb": 100})
    resolved = resolve_capacity(workflow)
    assert resolved.memory_mb == 100 and resolved.cpu is not None and resolved.cpu >= 1
    assert resolve_capacity(workflow, CAPACITY) == CAPACITY


def test_ten_thousand_nodes_and_a_deep_chain(registry):
    n = 20_000
    nodes = [{"id": f"n{i}", "agent": "sim.task"} for i in range(n)]
    edges = [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(n - 1)]
    assert validate(wf(nodes, edges), registry, CAPACITY) == []
    closing = [*edges, {"source": f"n{n - 1}", "target": "n0"}]
    (issue,) = validate(wf(nodes, closing), registry, CAPACITY)
    assert issue.code == "cycle" and issue.message.count(" -> ") == n


# -- fuzz: load never raises anything but WorkflowFileError, validate never raises -------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["a", "b", "sim.task", "test.echo", "fixture.join", "in", "out", "cuda", ""]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["id", "agent", "params", "resources", "lifecycle", "duration_s", "memory_mb", "cpu", "device",
         "source", "target", "source_port", "target_port", "execution", "retries", "x"]), inner, max_size=4),
    max_leaves=12,
)
_object = st.dictionaries(st.sampled_from(
    ["duration_s", "memory_mb", "cpu", "device", "custom", "execution", "start", "retries", "inputs", "x"]),
    _json, max_size=3)
_node = st.fixed_dictionaries({"id": st.sampled_from(["a", "b", "c", "d"]),
                               "agent": st.sampled_from(["sim.task", "test.echo", "test.source", "fixture.join",
                                                         "fixture.split", "fixture.gpu_only",
                                                         "fixture.classify", "nope"])},
                              optional={"params": _object, "resources": _object, "lifecycle": _object})
_edge = st.fixed_dictionaries({"source": st.sampled_from(["a", "b", "c", "d", "e"]),
                               "target": st.sampled_from(["a", "b", "c", "d"])},
                              optional={"source_port": st.sampled_from(["out", "labels", "x"]),
                                        "target_port": st.sampled_from(["in", "left", "right", "images"])})
_document = st.fixed_dictionaries(
    {"schema_version": st.sampled_from([1, 1, 1, 1, 2, "1"]), "nodes": st.lists(_node, max_size=5),
     "edges": st.lists(_edge, max_size=6)},
    optional={"capacity": _json | st.just({"cpu": 1, "memory_mb": 10, "gpus": []}), "name": _json},
) | st.fixed_dictionaries({"schema_version": st.just(1), "nodes": st.lists(_node | _json, max_size=3),
                           "edges": st.lists(_edge | _json, max_size=3)}) | _json


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_document)
def test_fuzz_load_and_validate_never_crash(registry, document):
    try:
        workflow = load_workflow(json.dumps(document))
    except WorkflowFileError:
        return
    issues = validate(workflow, registry, Capacity(cpu=2, memory_mb=1024, gpus=()))
    assert all(isinstance(i, Issue) and i.message for i in issues)
    _, again = validate_text(json.dumps(document), registry, Capacity(cpu=2, memory_mb=1024, gpus=()))
    assert again == issues


def test_edges_of_the_same_agents_and_ports_each_get_their_own_findings(registry: Registry) -> None:
    """Edges between the same two agents on the same ports are checked once and the result reused
    (a 10,000-node import has few distinct pairs); a finding must still appear on every edge."""
    nodes = [{"id": f"t{i}", "agent": "fixture.texts"} for i in range(3)]
    nodes += [{"id": f"c{i}", "agent": "fixture.classify"} for i in range(3)]
    bad = validate(wf(nodes, [{"source": f"t{i}", "target": f"c{i}"} for i in range(3)]), registry, CAPACITY)
    assert [(i.code, i.node) for i in bad if i.is_error] == [("type_mismatch", f"c{i}") for i in range(3)]
    dup = [{"source": "t0", "target": "c0"}] * 2
    assert [(i.code, i.node) for i in validate(wf(nodes[:1] + nodes[3:4], dup), registry, CAPACITY)
            if i.is_error] == [("type_mismatch", "c0"), ("duplicate_edge", "c0")]
