"""Editing a component in place (engine.inside): its inside as a view and back, ports made, renamed
and removed with the instances' wires following, and what validation and runs say of the nodes
inside mapped onto the view."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.components import expand_components, instance_agent
from engine.errors import WorkflowFileError
from engine.inside import (
    INPUTS,
    NEW_PORT,
    OUTPUTS,
    boundary_ports,
    close_inside,
    definition_of,
    holders_of,
    inside_issues,
    inside_name,
    inside_states,
    normalized,
    open_inside,
    placed_instances,
    relative,
    rename_port,
)
from engine.issues import Issue
from engine.items import planned_items
from engine.kinds import DataKind
from engine.registry import default_registry
from engine.validation import validate
from engine.workflow import (
    ComponentPort,
    ComponentSpec,
    EdgeSpec,
    NodeSpec,
    Position,
    Workflow,
    load_workflow,
)

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = default_registry()


@pytest.fixture
def desks() -> Workflow:
    return load_workflow(ROOT / "examples" / "support-desks.json")


def _nested() -> Workflow:
    """A component 'inner' (two sim tasks), held by 'outer' (with a task after it), one instance
    of 'outer' and one of 'inner' in the graph."""
    inner = ComponentSpec(name="inner", nodes=(NodeSpec(id="a", agent="sim.task"), NodeSpec(id="b", agent="sim.task",
                                                                                           params={"duration_s": 2})),
                          edges=(EdgeSpec(source="a", target="b"),),
                          inputs=(ComponentPort(name="x", node="a"),), outputs=(ComponentPort(name="y", node="b"),))
    outer = ComponentSpec(name="outer", nodes=(NodeSpec(id="i", agent=instance_agent("inner")),
                                               NodeSpec(id="c", agent="sim.task")),
                          edges=(EdgeSpec(source="i", source_port="y", target="c"),),
                          inputs=(ComponentPort(name="x", node="i", port="x"),),
                          outputs=(ComponentPort(name="z", node="c"),))
    nodes = (NodeSpec(id="src", agent="sim.task"), NodeSpec(id="o", agent=instance_agent("outer")),
             NodeSpec(id="solo", agent=instance_agent("inner"), params={"b/duration_s": 3, "a/duration_s": 1}),
             NodeSpec(id="end", agent="sim.task"))
    edges = (EdgeSpec(source="src", target="o", target_port="x"), EdgeSpec(source="src", target="solo", target_port="x"),
             EdgeSpec(source="solo", source_port="y", target="end"))
    return Workflow(name="nested", nodes=nodes, edges=edges, components=(inner, outer))


def test_opening_and_closing_unchanged_gives_back_the_same_workflow(desks: Workflow) -> None:
    view = open_inside(desks, "triage")
    assert inside_name(view) == "triage"
    assert [n.id for n in view.nodes] == [INPUTS, "intent", "entities", "route", OUTPUTS]
    # the ports are the boundary nodes' wires: one input feeding two nodes, one output
    assert sorted((e.source, e.source_port, e.target) for e in view.edges if e.source == INPUTS) == [
        (INPUTS, "texts", "entities"), (INPUTS, "texts", "intent")]
    assert [(e.source, e.target_port) for e in view.edges if e.target == OUTPUTS] == [("route", "tickets")]
    inputs, outputs = boundary_ports(close_inside(desks, view).workflow, "triage", REGISTRY)
    assert [(p.name, p.kind) for p in inputs] == [("texts", DataKind.TEXT_BATCH), (NEW_PORT, DataKind.ANY)]
    assert [(p.name, p.kind) for p in outputs] == [("tickets", DataKind.TABLE), (NEW_PORT, DataKind.ANY)]
    closed = close_inside(desks, view)
    assert closed.workflow == desks and closed.dropped == [] and closed.renamed == {}


def test_a_node_added_inside_runs_in_every_instance(desks: Workflow) -> None:
    view = open_inside(desks, "triage")
    limit = NodeSpec(id="first", agent="flow.limit", params={"n": 10})
    edges = [e for e in view.edges if not (e.source == INPUTS and e.target == "intent")]
    edges += [EdgeSpec(source=INPUTS, source_port="texts", target="first"), EdgeSpec(source="first", target="intent")]
    closed = close_inside(desks, view.model_copy(update={"nodes": (*view.nodes, limit), "edges": tuple(edges)}))
    flat = expand_components(closed.workflow)[0]
    assert {"general/first", "payments/first"} <= set(flat.node_ids())
    assert ("general/first", "general/intent") in {(e.source, e.target) for e in flat.edges}
    assert not [i for i in validate(closed.workflow, REGISTRY) if i.is_error]
    planned = planned_items(closed.workflow, REGISTRY)
    assert planned.items_in["general/intent"] == 10 and planned.items_in["general/entities"] == 60


def test_a_wire_to_a_plus_makes_a_port_named_after_the_port_inside(desks: Workflow) -> None:
    view = open_inside(desks, "triage")
    wired = view.model_copy(update={"edges": (*view.edges,
                                              EdgeSpec(source="intent", source_port="scores", target=OUTPUTS,
                                                       target_port=NEW_PORT),
                                              EdgeSpec(source="entities", source_port="entities", target=OUTPUTS,
                                                       target_port=NEW_PORT))})
    named = normalized(wired)
    assert [e.target_port for e in named.edges if e.target == OUTPUTS] == ["tickets", "scores", "entities"]
    closed = close_inside(desks, named)
    assert [p.name for p in closed.workflow.component("triage").outputs] == ["tickets", "scores", "entities"]
    # a second '+' wire for a name taken gets the next free one
    again = normalized(named.model_copy(update={"edges": (*named.edges, EdgeSpec(
        source="route", source_port="tickets", target=OUTPUTS, target_port=NEW_PORT))}))
    assert [e.target_port for e in again.edges if e.target == OUTPUTS][-1] == "tickets_2"


def test_normalized_drops_a_wire_straight_through_and_keeps_one_wire_per_output(desks: Workflow) -> None:
    view = open_inside(desks, "triage")
    through = EdgeSpec(source=INPUTS, source_port="texts", target=OUTPUTS, target_port="x")
    twice = EdgeSpec(source="intent", source_port="scores", target=OUTPUTS, target_port="tickets")
    named = normalized(view.model_copy(update={"edges": (*view.edges, through, twice)}))
    assert through not in named.edges
    assert [e.source for e in named.edges if e.target == OUTPUTS] == ["intent"]  # the later wire wins


def test_a_renamed_input_is_followed_by_the_wires_of_every_instance(desks: Workflow) -> None:
    view = rename_port(open_inside(desks, "triage"), "inputs", "texts", "requests")
    view = rename_port(view, "inputs", "requests", "messages")  # twice: still the same port
    closed = close_inside(desks, view)
    assert {e.target_port for e in closed.workflow.edges if e.target in ("general", "payments")} == {"messages"}
    assert closed.renamed == {"input texts": "messages"} and closed.dropped == []
    assert not [i for i in validate(closed.workflow, REGISTRY) if i.is_error]


def test_a_rename_to_a_taken_or_bad_name_is_refused(desks: Workflow) -> None:
    view = normalized(open_inside(desks, "triage").model_copy(update={"edges": (
        *open_inside(desks, "triage").edges, EdgeSpec(source="intent", source_port="scores", target=OUTPUTS,
                                                       target_port="scores"))}))
    with pytest.raises(WorkflowFileError, match="named 'tickets' already"):
        rename_port(view, "outputs", "scores", "tickets")
    with pytest.raises(WorkflowFileError, match="cannot name a port") as caught:
        rename_port(view, "outputs", "scores", "2 scores")
    assert "letters, digits and _" in caught.value.hint
    with pytest.raises(WorkflowFileError, match="no output named 'nope'"):
        rename_port(view, "outputs", "nope", "x")


def test_a_removed_port_takes_the_instances_wires_to_it_and_says_which(desks: Workflow) -> None:
    view = open_inside(desks, "triage")
    closed = close_inside(desks, view.model_copy(update={"edges": tuple(e for e in view.edges if e.target != OUTPUTS)}))
    assert closed.workflow.component("triage").outputs == ()
    assert sorted(closed.dropped) == ["general.tickets → general_csv", "payments.tickets → payments_csv"]
    assert not any(e.source in ("general", "payments") for e in closed.workflow.edges)
    codes = {i.code for i in validate(closed.workflow, REGISTRY) if i.is_error}
    assert codes == {"missing_input"}  # the sinks lost their input: said, not silently broken


def test_a_node_deleted_inside_takes_the_instances_params_for_it(desks: Workflow) -> None:
    desks = desks.model_copy(update={"nodes": tuple(
        n.model_copy(update={"params": {"route/min_confidence": 0.9, "intent/batch_size": 8}}) if n.id == "general" else n
        for n in desks.nodes)})
    view = open_inside(desks, "triage")
    kept = tuple(n for n in view.nodes if n.id != "intent")
    closed = close_inside(desks, view.model_copy(update={
        "nodes": kept, "edges": tuple(e for e in view.edges if "intent" not in (e.source, e.target))}))
    assert closed.workflow.node("general").params == {"route/min_confidence": 0.9}


def test_a_component_cannot_be_left_without_a_node(desks: Workflow) -> None:
    view = open_inside(desks, "triage")
    empty = view.model_copy(update={"nodes": tuple(n for n in view.nodes if n.id in (INPUTS, OUTPUTS)), "edges": ()})
    with pytest.raises(WorkflowFileError, match="would have no node inside") as caught:
        close_inside(desks, empty)
    assert "delete its node on the workflow" in caught.value.hint
    with pytest.raises(WorkflowFileError, match="not the inside of a component"):
        close_inside(desks, desks)
    with pytest.raises(WorkflowFileError, match="no component named 'nope'"):
        open_inside(desks, "nope")


def test_a_node_id_with_a_slash_inside_is_refused_with_the_rule() -> None:
    view = open_inside(_nested(), "inner")
    bad = view.model_copy(update={"nodes": (*view.nodes, NodeSpec(id="p/q", agent="sim.task"))})
    with pytest.raises(WorkflowFileError, match=r"cannot be kept so: node id 'p/q' has a '/'.*\(nodes\)$"):
        definition_of(bad)


def test_renaming_a_nested_component_s_port_follows_in_the_graph_and_inside_its_holder() -> None:
    workflow = _nested()
    closed = close_inside(workflow, rename_port(open_inside(workflow, "inner"), "outputs", "y", "result"))
    outer = closed.workflow.component("outer")
    assert outer.edges[0].source_port == "result"  # the holder's wire from its inner instance
    assert [e.source_port for e in closed.workflow.edges if e.source == "solo"] == ["result"]
    assert not [i for i in validate(closed.workflow, REGISTRY) if i.is_error]
    # removing the input: the holder's port that stood for it goes too, and the wires to both
    view = open_inside(closed.workflow, "inner")
    gone = close_inside(closed.workflow, view.model_copy(update={"edges": tuple(
        e for e in view.edges if e.source != INPUTS)}))
    assert gone.workflow.component("outer").inputs == ()
    assert sorted(gone.dropped) == ["src → o.x", "src → solo.x"]  # the holder lost the port that stood for it


def test_a_component_may_not_hold_what_holds_it() -> None:
    workflow = _nested()
    assert holders_of(workflow, "inner") == {"inner", "outer"}
    assert holders_of(workflow, "outer") == {"outer"}


def test_findings_and_states_inside_are_mapped_onto_the_nodes_of_the_view() -> None:
    workflow = _nested()
    placed = placed_instances(workflow, "inner")
    assert sorted(placed) == ["o/i", "solo"]
    assert relative("o/i/b", placed) == "b" and relative("solo/a", placed) == "a" and relative("src", placed) is None
    issues = [Issue("bad_param", "x", node="o/i/b", port="duration_s"), Issue("bad_param", "x", node="solo/b",
                                                                            port="duration_s"),
              Issue("cycle", "whole"), Issue("bad_param", "y", node="src")]
    mapped = inside_issues(issues, placed)
    assert [(i.code, i.node, i.port) for i in mapped] == [("bad_param", "b", "duration_s"), ("cycle", None, None)]
    states = inside_states({"o/i/a": "done", "solo/a": "running", "o/i/b": "done", "solo/b": "done", "src": "done"},
                           placed)
    assert states == {"a": "running", "b": "done"}


def test_planned_items_inside_an_instance_are_those_of_its_nodes(desks: Workflow) -> None:
    planned = planned_items(desks, REGISTRY).inside("payments")
    assert planned.items_in == {"intent": 60, "entities": 60, "route": 60}
    assert planned.on_port("route", "tickets") == 60


def test_a_breakpoint_on_a_component_s_node_goes_to_the_nodes_its_inputs_feed(desks: Workflow) -> None:
    from engine.components import entries
    from engine.grouping import ungroup

    assert entries(desks.component("triage")) == {"intent", "entities"}
    stopped = desks.model_copy(update={"nodes": tuple(
        n.model_copy(update={"breakpoint": True}) if n.id == "general" else n for n in desks.nodes)})
    flat = expand_components(stopped)[0]
    assert sorted(n.id for n in flat.nodes if n.breakpoint) == ["general/entities", "general/intent"]
    opened, _ = ungroup(stopped, "general")
    assert sorted(n.id for n in opened.nodes if n.breakpoint) == ["entities", "intent"]


def test_inputs_and_outputs_stay_where_they_were_dragged(desks: Workflow) -> None:
    view = open_inside(desks, "triage")
    placed = {n.id: n.position for n in view.nodes if n.id in (INPUTS, OUTPUTS)}
    moved = view.model_copy(update={"nodes": tuple(
        n.model_copy(update={"position": Position(x=-900.0, y=420.0)}) if n.id == INPUTS else n for n in view.nodes)})
    closed = close_inside(desks, moved).workflow
    definition = closed.component("triage")
    assert definition.inputs_at == Position(x=-900.0, y=420.0) and definition.outputs_at is None  # only what moved
    again = open_inside(closed, "triage")
    assert again.node(INPUTS).position == Position(x=-900.0, y=420.0)
    assert again.node(OUTPUTS).position == placed[OUTPUTS]
    assert close_inside(closed, again).workflow == closed  # opened and closed unchanged: the same again
