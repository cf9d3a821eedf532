"""Components: expansion (ids, wires, parameters, lifecycle, disabling, nesting), what an instance may
not set, grouping and ungrouping (a round trip on every example), ports, renaming, the file format."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.components import expand_components, flatten, inside_of, owner_of
from engine.definitions import component_ports, rename_component
from engine.errors import WorkflowFileError, WorkflowInvalidError
from engine.grouping import group, ungroup
from engine.kinds import DataKind
from engine.planner import plan_workflow
from engine.registry import default_registry
from engine.resources import Capacity
from engine.validation import validate
from engine.workflow import NodeSpec, Workflow, dump_workflow, load_workflow, workflow_from_data

ROOT = Path(__file__).resolve().parents[2]
REG = default_registry()

# texts -> [tag a -> tag b] -> sink; the component "tags" holds a and b, its input feeds a
TAGS = {"name": "tags", "description": "two tags",
        "nodes": [{"id": "a", "agent": "test.tag", "params": {"suffix": "-a"}, "position": {"x": 300, "y": 40}},
                  {"id": "b", "agent": "test.tag", "params": {"suffix": "-b"}, "position": {"x": 560, "y": 40}}],
        "edges": [{"source": "a", "target": "b"}],
        "inputs": [{"name": "texts", "node": "a"}], "outputs": [{"name": "texts", "node": "b"}]}


def _wf(nodes: list[dict], edges: list[tuple[str, str] | dict], components: list[dict] = (TAGS,)) -> Workflow:
    return Workflow.model_validate({
        "schema_version": 1, "name": "c", "components": list(components), "nodes": nodes,
        "edges": [e if isinstance(e, dict) else {"source": e[0], "target": e[1]} for e in edges]})


def _two(**instance: object) -> Workflow:
    return _wf([{"id": "src", "agent": "test.texts", "params": {"n": 3}},
                {"id": "t", "agent": "component:tags", "position": {"x": 100, "y": 200}, **instance},
                {"id": "out", "agent": "test.echo"}],
               [("src", "t"), ("t", "out")])


def test_an_instance_expands_to_its_nodes_wired_through_its_ports() -> None:
    flat, issues = expand_components(_two())
    assert issues == []
    assert flat.node_ids() == ["src", "t/a", "t/b", "out"]
    assert {(e.source, e.target) for e in flat.edges} == {("src", "t/a"), ("t/a", "t/b"), ("t/b", "out")}
    assert flat.metadata["components"] == {"t": "tags"} and flat.components == ()
    # placed where the instance is drawn, keeping their layout inside
    assert (flat.node("t/a").position.x, flat.node("t/b").position.x) == (100, 360)
    assert validate(_two(), REG) == []
    assert flatten(_two()) == flat


def test_a_workflow_without_instances_is_not_touched() -> None:
    wf = load_workflow(ROOT / "examples" / "two-stage.json")
    assert expand_components(wf) == (wf, [])


def test_instance_params_set_the_nodes_inside_and_a_wrong_one_is_named() -> None:
    flat = flatten(_two(params={"b/suffix": "-B"}))
    assert flat.node("t/a").params == {"suffix": "-a"} and flat.node("t/b").params == {"suffix": "-B"}
    issues = validate(_two(params={"c/suffix": "x", "a/nope": 1}), REG)
    assert [(i.code, i.node) for i in issues] == [("invalid_param", "t"), ("invalid_param", "t/a")]
    assert "'c/suffix' names no node of component 'tags'" in issues[0].message
    assert "a, b" in issues[0].hint
    assert "unknown parameter 'nope'" in issues[1].message


def test_an_instance_lifecycle_is_the_default_inside_and_disabling_it_disables_all() -> None:
    tags = {**TAGS, "nodes": [{**TAGS["nodes"][0], "lifecycle": {"execution": {"retries": 5}}}, TAGS["nodes"][1]]}
    flat = flatten(_wf([{"id": "src", "agent": "test.texts"},
                        {"id": "t", "agent": "component:tags", "lifecycle": {"execution": {"retries": 2, "timeout_s": 9}}}],
                       [("src", "t")], [tags]))
    assert flat.node("t/a").lifecycle == {"execution": {"retries": 5, "timeout_s": 9}}  # its own setting wins
    assert flat.node("t/b").lifecycle == {"execution": {"retries": 2, "timeout_s": 9}}
    off = flatten(_two(disabled=True))
    assert [n.id for n in off.nodes if n.disabled] == ["t/a", "t/b"]


def test_one_input_may_feed_several_nodes_inside() -> None:
    both = {"name": "both", "nodes": [{"id": "x", "agent": "test.tag"}, {"id": "y", "agent": "test.tag"}],
            "inputs": [{"name": "texts", "node": "x"}, {"name": "texts", "node": "y"}],
            "outputs": [{"name": "x", "node": "x"}, {"name": "y", "node": "y"}]}
    wf = _wf([{"id": "src", "agent": "test.texts"}, {"id": "b", "agent": "component:both"},
              {"id": "o1", "agent": "test.echo"}, {"id": "o2", "agent": "test.echo"}],
             [("src", "b"), {"source": "b", "source_port": "y", "target": "o1"},
              {"source": "b", "source_port": "x", "target": "o2"}], [both])
    flat = flatten(wf)
    assert {(e.source, e.target) for e in flat.edges} == {("src", "b/x"), ("src", "b/y"), ("b/y", "o1"), ("b/x", "o2")}
    ports = component_ports("both", wf, REG)
    assert [(p.name, p.kind, p.required) for p in ports.inputs] == [("texts", DataKind.TEXT_BATCH, True)]
    assert [p.name for p in ports.outputs] == ["x", "y"]
    # a wire without a port to a component with two outputs cannot be led anywhere
    vague = _wf([{"id": "src", "agent": "test.texts"}, {"id": "b", "agent": "component:both"},
                 {"id": "o", "agent": "test.echo"}], [("src", "b"), ("b", "o")], [both])
    found = [(i.code, i.node) for i in validate(vague, REG) if i.is_error]
    assert found == [("ambiguous_port", "b")]


def test_components_nest_and_ids_say_the_path() -> None:
    outer = {"name": "outer", "nodes": [{"id": "pre", "agent": "test.tag", "params": {"suffix": "-p"}},
                                        {"id": "inner", "agent": "component:tags"}],
             "edges": [{"source": "pre", "target": "inner"}],
             "inputs": [{"name": "texts", "node": "pre"}], "outputs": [{"name": "texts", "node": "inner"}]}
    wf = _wf([{"id": "src", "agent": "test.texts"},
              {"id": "o", "agent": "component:outer", "params": {"inner/b/suffix": "-deep"}},
              {"id": "out", "agent": "test.echo"}], [("src", "o"), ("o", "out")], [TAGS, outer])
    flat = flatten(wf)
    assert flat.node_ids() == ["src", "o/pre", "o/inner/a", "o/inner/b", "out"]
    assert {(e.source, e.target) for e in flat.edges} == {
        ("src", "o/pre"), ("o/pre", "o/inner/a"), ("o/inner/a", "o/inner/b"), ("o/inner/b", "out")}
    assert flat.node("o/inner/b").params == {"suffix": "-deep"}
    assert flat.metadata["components"] == {"o": "outer", "o/inner": "tags"}
    # what each output gives out, through the instance inside (whose one output is left unnamed)
    from engine.components import output_sources

    assert output_sources(wf) == {("o/inner", "texts"): ("o/inner/b", None), ("o", "texts"): ("o/inner/b", None)}
    assert owner_of("o/inner/b", ["o", "src"]) == "o" and owner_of("src", ["o"]) == "src"
    assert inside_of(flat, ["o", "src"]) == ("o/pre", "o/inner/a", "o/inner/b", "src")
    assert validate(wf, REG) == []


def test_a_component_holding_itself_or_a_missing_one_is_an_error_not_a_hang() -> None:
    loop = {"name": "loop", "nodes": [{"id": "again", "agent": "component:loop"}],
            "inputs": [{"name": "x", "node": "again"}]}
    wf = _wf([{"id": "src", "agent": "test.texts"}, {"id": "l", "agent": "component:loop"}], [("src", "l")], [loop])
    issues = validate(wf, REG)
    assert [(i.code, i.node) for i in issues if i.is_error] == [("component_cycle", "l/again")]
    assert "loop -> loop" in issues[0].message
    with pytest.raises(WorkflowInvalidError, match="component_cycle"):
        flatten(wf)
    typo = _wf([{"id": "src", "agent": "test.texts"}, {"id": "t", "agent": "component:tgas"}], [("src", "t")])
    [issue] = [i for i in validate(typo, REG) if i.is_error]
    assert (issue.code, issue.hint) == ("unknown_component", "did you mean 'tags'?")


@pytest.mark.parametrize("field, code", [("resources", "invalid_component"), ("pin", "pin_not_allowed"),
                                         ("bypass", "bypass_not_possible")])
def test_what_an_instance_may_not_set(field: str, code: str) -> None:
    value = {"resources": {"cpu": 2}, "pin": {"key": "0" * 32}, "bypass": True}[field]
    issues = [i for i in validate(_two(**{field: value}), REG) if i.is_error]
    assert [(i.code, i.node) for i in issues] == [(code, "t")]
    assert "Ctrl+" in issues[0].hint  # says how to do it instead


def test_a_plan_schedules_each_node_inside() -> None:
    result = plan_workflow(_two(), REG, Capacity(cpu=2, memory_mb=1000, gpus=()))
    assert {n.id for n in result.nodes} == {"src", "t/a", "t/b", "out"}
    starts = {n.id: n.start for n in result.nodes}
    assert starts["t/a"] < starts["t/b"] < starts["out"]


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.json")), ids=lambda p: p.stem)
def test_grouping_then_ungrouping_gives_back_every_example(path: Path) -> None:
    wf = load_workflow(path)
    for instance in [n.id for n in wf.nodes if n.agent.startswith("component:")]:  # grouped already: drawn open
        expanded = flatten(wf)
        wf, _ = ungroup(wf, instance)
        assert sorted((e.source, e.target) for e in flatten(wf).edges) != [] and \
            len(flatten(wf).nodes) == len(expanded.nodes)
    if len(wf.nodes) < 2:
        pytest.skip("one node")
    ids = wf.node_ids()[1:3] if len(wf.nodes) > 2 else wf.node_ids()[1:]
    try:
        grouped, instance = group(wf, ids, REG, name="part")
    except WorkflowFileError as exc:
        assert "wait for itself" in str(exc)
        return
    assert len(grouped.nodes) == len(wf.nodes) - len(ids) + 1
    before = sorted((i.code, i.node) for i in validate(wf, REG))
    after = sorted((i.code, i.node) for i in validate(grouped, REG))
    assert after == before  # the expansion is the same graph, so the same findings
    flat = flatten(grouped)
    assert {(e.source.removeprefix(f"{instance}/"), e.target.removeprefix(f"{instance}/")) for e in flat.edges} == \
        {(e.source, e.target) for e in wf.edges}
    back, put = ungroup(grouped, instance)
    assert sorted(put) == sorted(ids)
    assert set(back.edges) == set(wf.edges) and {n.id: n for n in back.nodes} == {n.id: n for n in wf.nodes}
    assert back.components == ()  # no instance left: the definition goes too
    assert load_workflow(dump_workflow(grouped)) == grouped  # the file keeps the component


def test_group_refuses_a_selection_a_node_outside_sits_between() -> None:
    wf = Workflow.model_validate({"schema_version": 1, "nodes": [
        {"id": i, "agent": "test.echo"} for i in "abc"], "edges": [
        {"source": "a", "target": "b"}, {"source": "b", "target": "c"}]})
    with pytest.raises(WorkflowFileError, match="'b' takes from the selected nodes and feeds them too"):
        group(wf, ["a", "c"], REG)
    with pytest.raises(WorkflowFileError, match="select the nodes"):
        group(wf, ["zz"], REG)
    slashed = Workflow.model_validate({"schema_version": 1, "nodes": [{"id": "a/b", "agent": "test.echo"}]})
    with pytest.raises(WorkflowFileError, match="'a/b' has a '/' in its id"):
        group(slashed, ["a/b"], REG)


def test_group_names_the_ports_after_the_ports_inside_and_keeps_params_on_ungroup() -> None:
    wf = load_workflow(ROOT / "examples" / "customer-service.json")
    grouped, instance = group(wf, ["intent", "entities", "route"], REG, name="triage")
    definition = grouped.component("triage")
    assert [(p.name, p.node) for p in definition.inputs] == [("texts", "intent"), ("texts", "entities")]
    assert [p.name for p in definition.outputs] == ["tickets"]
    assert grouped.node(instance).agent == "component:triage"
    tuned = grouped.model_copy(update={"nodes": tuple(
        n.model_copy(update={"params": {"route/min_confidence": 0.9}}) if n.id == instance else n
        for n in grouped.nodes)})
    back, _ = ungroup(tuned, instance)
    assert back.node("route").params["min_confidence"] == 0.9
    assert back.node("route").params["escalate_amount"] == 500  # the component's own value stays


def test_ungroup_keeps_the_component_while_another_node_uses_it() -> None:
    wf = _wf([{"id": "src", "agent": "test.texts"}, {"id": "t1", "agent": "component:tags"},
              {"id": "t2", "agent": "component:tags"}], [("src", "t1"), ("src", "t2")])
    back, put = ungroup(wf, "t1")
    assert put == ["a", "b"] and back.component("tags") is not None
    again, put2 = ungroup(back, "t2")
    assert put2 == ["a_2", "b_2"] and again.components == ()
    assert {(e.source, e.target) for e in again.edges} == {("src", "a"), ("a", "b"), ("src", "a_2"), ("a_2", "b_2")}


def test_renaming_a_component_renames_its_instances_everywhere() -> None:
    outer = {"name": "outer", "nodes": [{"id": "inner", "agent": "component:tags"}],
             "inputs": [{"name": "texts", "node": "inner"}]}
    wf = _wf([{"id": "src", "agent": "test.texts"}, {"id": "t", "agent": "component:tags"},
              {"id": "o", "agent": "component:outer"}], [("src", "t"), ("src", "o")], [TAGS, outer])
    renamed = rename_component(wf, "tags", "taggers", "tag twice")
    assert renamed.node("t").agent == "component:taggers"
    assert renamed.component("outer").nodes[0].agent == "component:taggers"
    assert renamed.component("taggers").description == "tag twice"
    assert validate(renamed, REG) == validate(wf, REG)
    with pytest.raises(WorkflowFileError, match="exists already"):
        rename_component(wf, "tags", "outer")
    with pytest.raises(WorkflowFileError, match="cannot name a component"):
        rename_component(wf, "tags", "a/b")


def test_the_file_refuses_bad_components_with_the_field_at_fault() -> None:
    doc = _two().to_dict()
    bad_id = {**doc, "components": [{**TAGS, "nodes": [{"id": "x/y", "agent": "test.tag"}]}]}
    with pytest.raises(WorkflowFileError, match="has a '/'") as exc:
        workflow_from_data(bad_id)
    assert exc.value.location.startswith("components[0].nodes")
    with pytest.raises(WorkflowFileError, match="two components are named 'tags'"):
        workflow_from_data({**doc, "components": [TAGS, TAGS]})
    with pytest.raises(WorkflowFileError, match="two outputs are named 'texts'"):
        workflow_from_data({**doc, "components": [{**TAGS, "outputs": TAGS["outputs"] * 2}]})


def test_advice_on_a_node_inside_goes_into_its_component() -> None:
    from engine.components import defined_at
    from engine.rightsizing import apply_advice

    wf = _wf([{"id": "src", "agent": "test.texts"}, {"id": "t1", "agent": "component:tags"},
              {"id": "t2", "agent": "component:tags"}], [("src", "t1"), ("src", "t2")])
    assert defined_at(wf, "t1/b") == ("tags", "b")
    assert defined_at(wf, "src") is None and defined_at(wf, "t1/zz") is None and defined_at(wf, "src/a") is None
    applied = apply_advice(wf, [("t1/b", 64.0), ("t2/b", 96.0), ("src", 32.0)])
    assert applied.node("src").resources == {"memory_mb": 32.0}
    inside = {n.id: n.resources for n in applied.component("tags").nodes}
    assert inside == {"a": {}, "b": {"memory_mb": 96.0}}  # the larger advice of its two instances
    assert flatten(applied).node("t1/b").resources == {"memory_mb": 96.0}


def test_the_original_graph_api_reads_a_workflow_with_components_as_its_agents() -> None:
    from servicegrid.graph import Graph

    graph = Graph.from_workflow(_two(), REG)
    assert sorted(graph.nodes) == ["out", "src", "t/a", "t/b"]
    assert ("t/a", "t/b") in graph.edges


def test_regroup_updates_the_component_for_every_instance_and_keeps_each_instance_s_own_values() -> None:
    from engine.grouping import regroup

    wf = _wf([{"id": "src", "agent": "test.texts"},
              {"id": "t1", "agent": "component:tags", "label": "first", "params": {"a/suffix": "-A1"},
               "lifecycle": {"execution": {"retries": 2}}},
              {"id": "t2", "agent": "component:tags", "params": {"a/suffix": "-A2"}},
              {"id": "a", "agent": "test.echo"}], [("src", "t1"), ("src", "t2"), ("src", "a")])
    opened, put = ungroup(wf, "t1")
    assert put == ["a_2", "b"]  # 'a' is taken at the top: renamed while open
    assert opened.node("a_2").params == {"suffix": "-A1"} and opened.node("a_2").lifecycle == {"execution": {"retries": 2}}
    # edit while open: b's suffix changes (for everyone), a node is added after b
    edited = opened.model_copy(update={
        "nodes": (*(n.model_copy(update={"params": {"suffix": "-B!"}}) if n.id == "b" else n for n in opened.nodes),
                  opened.node("a").model_copy(update={"id": "extra", "agent": "test.tag"})),
        "edges": (*opened.edges, opened.edges[0].model_copy(update={"source": "b", "target": "extra",
                                                                    "source_port": None, "target_port": None}))})
    back, instance = regroup(edited, ["a_2", "b", "extra"], REG, wf.node("t1"), wf.component("tags"), put)
    assert instance == "t1"
    node, definition = back.node("t1"), back.component("tags")
    assert (node.label, node.params, node.lifecycle) == ("first", {"a/suffix": "-A1"}, {"execution": {"retries": 2}})
    assert [n.id for n in definition.nodes] == ["a", "b", "extra"]  # ids inside as before, for t2's 'a/suffix'
    assert {n.id: n.params for n in definition.nodes} == {  # a's value is the component's again
        "a": {"suffix": "-a"}, "b": {"suffix": "-B!"}, "extra": {}}
    assert definition.nodes[0].lifecycle == {}
    flat = flatten(back)
    assert flat.node("t2/a").params == {"suffix": "-A2"} and flat.node("t2/b").params == {"suffix": "-B!"}
    assert ("t2/b", "t2/extra") in {(e.source, e.target) for e in flat.edges}
    assert validate(back, REG) == validate(flatten(back), REG)


def test_planned_items_and_columns_read_through_a_component() -> None:
    from engine.items import planned_items

    wf = load_workflow(ROOT / "examples" / "support-desks.json")
    planned = planned_items(wf, REG)
    assert planned.on_port("general", "tickets") == planned.on_port("general/route", None) == 60
    assert "priority" in planned.columns_on("general", "tickets")
    assert "urgent" in planned.values_on("general", "tickets")["priority"]
    # a reader after the component is checked against the columns its node inside gives
    branch = {"id": "b", "agent": "flow.branch", "params": {"field": "priorty", "op": "==", "value": "high"}}
    bad = wf.model_copy(update={"nodes": (*wf.nodes, NodeSpec.model_validate(branch)),
                                "edges": (*wf.edges, wf.edges[2].model_copy(update={"target": "b"}))})
    assert [(i.code, i.node) for i in validate(bad, REG) if i.is_error] == [("missing_columns", "b")]


def test_ungroup_makes_room_where_the_nodes_put_back_would_cover_others() -> None:
    wf = load_workflow(ROOT / "examples" / "support-desks.json")
    opened, _ = ungroup(wf, "payments")
    assert opened.node("route").position.x == 580  # the component's layout, from where the node was
    assert opened.node("payments_csv").position.x == 600 + 280 and opened.node("general").position.x == 300
    roomy = wf.model_copy(update={"nodes": tuple(
        n.model_copy(update={"position": n.position.model_copy(update={"x": 2000})}) if n.id.endswith("_csv") else n
        for n in wf.nodes)})
    assert ungroup(roomy, "payments")[0].node("payments_csv").position.x == 2000  # nothing covered: nothing moves


def test_component_rows_sum_up_a_run_per_instance() -> None:
    from engine.runstate import component_rows

    nodes = [{"node": "src", "status": "done", "start": 0.0, "end": 1.0},
             {"node": "t/a", "status": "done", "start": 1.0, "end": 3.0, "cpu_s": 0.5, "memory_mb": 10.0},
             {"node": "t/b", "status": "done", "start": 1.5, "end": 4.0, "cpu_s": 0.25, "memory_mb": 30.0},
             {"node": "u/a", "status": "running", "start": 2.0, "end": None},
             {"node": "u/b", "status": "pending"}]
    rows = {r["component"]: r for r in component_rows({"t": "tags", "u": "tags", "v": "tags"}, nodes)}
    t = rows["t"]
    assert (t["nodes"], t["status"], t["start"], t["end"], t["span_s"], t["busy_s"], t["cpu_s"], t["memory_mb"]) == \
        (2, "done", 1.0, 4.0, 3.0, 4.5, 0.75, 30.0)  # busy > span: its two nodes overlapped half a second
    u = rows["u"]
    assert (u["status"], u["start"], u["end"], u["span_s"]) == ("running", 2.0, None, None)
    assert rows["v"]["status"] == "not run" and rows["v"]["nodes"] == 0


@st.composite
def _dag_and_pick(draw: st.DrawFn) -> tuple[Workflow, list[str]]:
    n = draw(st.integers(2, 9))
    ids = [f"n{i}" for i in range(n)]
    edges = sorted({(f"n{a}", f"n{b}") for a in range(n) for b in range(a + 1, n) if draw(st.booleans())})
    wf = Workflow.model_validate({"schema_version": 1, "nodes": [{"id": i, "agent": "test.echo"} for i in ids],
                                  "edges": [{"source": a, "target": b} for a, b in edges]})
    pick = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=n, unique=True))
    return wf, pick


@settings(max_examples=150, deadline=None)
@given(_dag_and_pick())
def test_grouping_any_selection_keeps_the_graph_a_run_executes(case: tuple[Workflow, list[str]]) -> None:
    """Any selection either is refused with a reason (an outside node between selected ones) or
    gives a workflow whose expansion has the same wires, and which ungroups back to the original."""
    wf, pick = case
    try:
        grouped, instance = group(wf, pick, REG)
    except WorkflowFileError as exc:
        assert "feeds them too" in str(exc)
        return
    flat = flatten(grouped)
    assert {(e.source.removeprefix(f"{instance}/"), e.target.removeprefix(f"{instance}/")) for e in flat.edges} == \
        {(e.source, e.target) for e in wf.edges}
    assert sorted(n.id.removeprefix(f"{instance}/") for n in flat.nodes) == sorted(wf.node_ids())
    assert [i.code for i in validate(grouped, REG) if i.is_error] == []
    back, _ = ungroup(grouped, instance)
    assert {(e.source, e.target) for e in back.edges} == {(e.source, e.target) for e in wf.edges}
    assert sorted(back.node_ids()) == sorted(wf.node_ids())


def test_components_that_multiply_past_the_limit_are_a_finding_found_quickly() -> None:
    # ten instances of a component that holds ten instances of ... : 10^5 nodes if expanded
    levels = [{"name": "leaf", "nodes": [{"id": "x", "agent": "test.echo"}], "inputs": [{"name": "in", "node": "x"}]}]
    for depth in range(1, 6):
        below = levels[-1]["name"]
        levels.append({"name": f"l{depth}", "nodes": [{"id": f"i{k}", "agent": f"component:{below}"} for k in range(10)],
                       "inputs": [{"name": "in", "node": f"i{k}"} for k in range(10)]})
    wf = _wf([{"id": "src", "agent": "test.source"}, {"id": "big", "agent": "component:l5"}], [("src", "big")], levels)
    started = time.monotonic()
    issues = [i for i in validate(wf, REG) if i.is_error]
    assert time.monotonic() - started < 10
    assert [(i.code, i.node) for i in issues] == [("invalid_component", "big")]
    assert "more than 20,000 nodes" in issues[0].message
    with pytest.raises(WorkflowInvalidError, match="expand to more than"):
        flatten(wf)
