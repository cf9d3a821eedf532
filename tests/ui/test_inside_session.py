"""A component open for editing in place, in the designer's session and page: the canvas draws its
inside, reports on it are taken (and kept to what a component can hold), undo steps through the
edits inside and then, back on the workflow, undoes them as one; the page saves and runs the whole
workflow meanwhile."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from streamlit.testing.v1 import AppTest

from engine.components import component_name, expand_components
from engine.inside import INPUTS, OUTPUTS
from engine.registry import default_registry
from engine.workflow import Workflow, load_workflow
from storage import Store
from ui import state
from ui.editor import Accepted, DesignerSession
from ui.graphmodel import canvas_graph, ensure_positions

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = default_registry()


def desks() -> DesignerSession:
    return DesignerSession(ensure_positions(load_workflow(ROOT / "examples" / "support-desks.json")))


def drawn(sess: DesignerSession) -> dict[str, Any]:
    graph = canvas_graph(sess.workflow, REGISTRY, sess.selected)
    graph["rev"] = sess.rev
    return graph


def wire(graph: dict[str, Any], src: str, src_port: str, dst: str, dst_port: str) -> dict[str, Any]:
    return {**graph, "edges": [*graph["edges"], {"src": src, "srcPort": src_port, "dst": dst, "dstPort": dst_port}]}


def test_open_edit_and_close_updates_the_component_for_every_node_using_it() -> None:
    sess = desks()
    before = sess.workflow
    assert sess.enter("general") and sess.scope_name == "triage"
    assert [n.id for n in sess.workflow.nodes] == [INPUTS, "intent", "entities", "route", OUTPUTS]
    assert sess.fit and "inside component 'triage'" in sess.notice["text"]
    # a wire to Outputs + makes an output: Python names it and the canvas must adopt the result
    rev = sess.rev
    assert sess.accept(wire(drawn(sess), "intent", "scores", OUTPUTS, "+")) is Accepted.CHANGED
    assert sess.rev == rev + 1
    assert [e.target_port for e in sess.workflow.edges if e.target == OUTPUTS] == ["tickets", "scores"]
    assert [p.name for p in sess.document.component("triage").outputs] == ["tickets", "scores"]
    sess.rename_port("inputs", "texts", "requests")
    assert {e.target_port for e in sess.document.edges if e.target in ("general", "payments")} == {"requests"}
    assert len(sess.undo_stack) == 2
    sess.undo()  # inside: the rename only
    assert {e.target_port for e in sess.document.edges if e.target == "general"} == {"texts"}
    sess.redo()
    sess.leave()
    assert sess.scope is None and sess.selected == ["general"]
    assert "component 'triage' updated" in sess.notice["text"] and "renamed input texts to 'requests'" in sess.notice["text"]
    flat = expand_components(sess.workflow)[0]
    assert {"payments/intent", "general/intent"} <= set(flat.node_ids())
    assert sess.undo() and sess.workflow == before  # back on the workflow: the whole visit is one step


def test_leaving_unchanged_adds_no_undo_step_and_keeps_redo() -> None:
    sess = desks()
    sess.relabel("general", "Desk A")
    sess.undo()
    assert len(sess.redo_stack) == 1
    sess.enter("payments")
    sess.leave()
    assert sess.undo_stack == [] and len(sess.redo_stack) == 1
    assert "unchanged" in sess.notice["text"]


def test_a_report_from_before_the_component_opened_is_refused_not_applied() -> None:
    sess = desks()
    stale = drawn(sess)  # the workflow as the canvas held it, sent after the component opened
    stale["nodes"] = [n for n in stale["nodes"] if n["id"] != "requests"]
    sess.enter("general")
    inside = sess.workflow
    assert sess.accept(stale) is Accepted.CONFLICT
    assert sess.workflow is inside
    assert "made on the workflow, which is no longer open" in sess.notice["text"]


def test_inputs_and_outputs_and_the_last_node_cannot_be_deleted_nor_notes_added() -> None:
    sess = desks()
    sess.enter("general")
    graph = drawn(sess)
    no_inputs = {**graph, "nodes": [n for n in graph["nodes"] if n["id"] != INPUTS],
                 "edges": [e for e in graph["edges"] if e["src"] != INPUTS]}
    assert sess.accept(no_inputs) is Accepted.CONFLICT
    assert "Inputs and Outputs cannot be deleted" in sess.notice["text"]
    graph = drawn(sess)
    only_boundary = {**graph, "nodes": [n for n in graph["nodes"] if n["id"] in (INPUTS, OUTPUTS)], "edges": []}
    assert sess.accept(only_boundary) is Accepted.CONFLICT
    assert "would have no node inside" in sess.notice["text"]
    graph = drawn(sess)
    noted = {**graph, "notes": [{"id": "note_1", "text": "hi", "x": 0, "y": 0, "w": 200}]}
    assert sess.accept(noted) is Accepted.CONFLICT
    assert "notes belong to the workflow" in sess.notice["text"]
    assert [n.id for n in sess.workflow.nodes] == [INPUTS, "intent", "entities", "route", OUTPUTS]


def test_grouping_inside_makes_a_nested_component_and_opening_it_closes_the_outer_one() -> None:
    sess = desks()
    sess.enter("general")
    sess.group([INPUTS, "intent", "entities"], REGISTRY)  # Inputs is left out of the group
    inner = next(n for n in sess.workflow.nodes if component_name(n) not in (None, "triage"))
    name = component_name(inner)
    assert sess.workflow.node(INPUTS) is not None and name is not None
    assert sess.enter(inner.id) and sess.scope_name == name
    assert sess.document.component("triage") is not None
    assert {n.id for n in sess.workflow.nodes} == {INPUTS, "intent", "entities", OUTPUTS}
    assert sess.scope.trail == ("triage",)  # the path back goes through it
    sess.back(1)
    assert sess.scope_name == "triage" and sess.scope.trail == () and sess.workflow.node(inner.id) is not None
    assert sess.enter(inner.id)
    sess.back(0)
    assert sess.scope is None and sess.selected == ["general"]  # back on the workflow, at the outer node
    flat = expand_components(sess.workflow)[0]
    assert f"payments/{inner.id}/intent" in flat.node_ids()


def test_copy_and_flags_leave_the_boundary_out() -> None:
    sess = desks()
    sess.enter("general")
    assert sess.editable([INPUTS, "intent", OUTPUTS]) == ["intent"]
    sess.duplicate([INPUTS, OUTPUTS])
    assert "nothing to copy" in sess.notice["text"]
    sess.toggle([INPUTS, "route"], "disabled")
    assert sess.workflow.node("route").disabled and not sess.workflow.node(INPUTS).disabled


def _open_desks(app: AppTest) -> DesignerSession:
    app.run()
    app.button(key="tpl.support-desks").click().run()
    sess = app.session_state[state.DESIGNER]
    sess.select("general")
    app.run()
    app.button(key="open.general").click().run()
    return app.session_state[state.DESIGNER]


def test_the_page_opens_a_component_renames_a_port_saves_the_whole_workflow_and_goes_back(app: AppTest,
                                                                                         tmp_path: Path) -> None:
    sess = _open_desks(app)
    assert not app.exception
    assert sess.scope_name == "triage"
    assert any("Inside triage" in str(m.value) for m in app.markdown)
    port = app.text_input(key=f"inside.port.inputs.texts.{sess.rev}")
    port.set_value("messages").run()
    sess = app.session_state[state.DESIGNER]
    with Store(f"sqlite:///{tmp_path / 'ui.db'}") as store:
        stored: Workflow = store.get_workflow(sess.workflow_id)
    assert stored.component("triage").inputs[0].name == "messages"  # saved as the whole workflow
    assert [n.id for n in stored.nodes] == [n.id for n in sess.document.nodes]
    assert any("Imports go into the workflow" in str(i.value) for i in app.info)
    app.button(key="inside.leave").click().run()
    sess = app.session_state[state.DESIGNER]
    assert sess.scope is None and {e.target_port for e in sess.workflow.edges if e.target == "payments"} == {"messages"}
    assert not app.exception


def test_findings_inside_show_on_the_nodes_of_the_open_component(app: AppTest) -> None:
    sess = _open_desks(app)
    route = sess.workflow.node("route")
    sess.push(sess.workflow.model_copy(update={"nodes": tuple(
        n.model_copy(update={"params": {**n.params, "min_confidence": 7}}) if n is route else n
        for n in sess.workflow.nodes)}))
    sess.select("route")
    app.run()
    texts = "\n".join(str(e.value) for e in app.error).replace("\\", "")
    assert "min_confidence = 7 is invalid" in texts
    assert not app.exception


def test_the_canvas_inside_draws_the_opened_node_s_counts_and_every_node_s_states() -> None:
    from engine.items import planned_items
    from ui.inside_view import inside_canvas

    sess = desks()
    sess.enter("payments")
    document = sess.document
    counted = {("payments/intent", "scores"): 30, ("general/intent", "scores"): 60}
    drawn = inside_canvas(sess, REGISTRY, document, planned_items(document, REGISTRY), [],
                          {"payments/route": "done", "general/route": "running", "requests": "done"}, [], counted)
    assert drawn["status"] == {"route": "running"}  # combined over both desks
    assert drawn["counted"] == {"intent.scores->route.intents": "30 items (planned 60)"}  # the desk opened
    boundary = {n["id"]: n for n in drawn["graph"]["nodes"] if n.get("boundary")}
    assert set(boundary) == {INPUTS, OUTPUTS}
    palette = {p["name"]: p for p in drawn["palette"]}
    assert "component:triage" not in palette  # it cannot hold itself
    assert palette["boundary:inputs"]["hidden"] and [p["name"] for p in palette["boundary:inputs"]["outputs"]] == [
        "texts", "+"]
    assert drawn["scope"] == {"workflow": "support-desks", "component": "triage", "instances": 2, "trail": []}


def test_run_to_here_on_a_node_inside_runs_it_in_the_node_the_component_was_opened_from(app: AppTest) -> None:
    from ui.designer_run import run_to_target

    sess = _open_desks(app)
    sess.select("route")
    app.run()
    target, part = run_to_target(sess)
    assert target == "general/route"
    assert sorted(part.node_ids()) == ["general/entities", "general/intent", "general/route", "requests"]
    button = app.button(key="designer_run_to")
    assert "Run general/route and the 3 node(s) it needs" in button.help
    sess.select(INPUTS)
    assert run_to_target(sess) is None  # its Inputs are not a node that runs


def _param(app: AppTest, key: str) -> str | None:
    value = app.query_params.get(key)
    return value[0] if isinstance(value, list) else value


def test_a_reload_opens_the_component_again_along_the_same_path(app: AppTest) -> None:
    sess = _open_desks(app)
    assert (_param(app, state.QP_INSIDE), _param(app, state.QP_INSIDE_NODE)) == ("triage", "general")
    sess.select("route")
    app.run()
    app.text_input(key="label.route").input("Route it").run()  # an edit inside, saved as the whole workflow
    workflow_id = app.session_state[state.DESIGNER].workflow_id
    fresh = AppTest.from_file(app._script_path, default_timeout=60)
    for key in (state.QP_WORKFLOW, state.QP_INSIDE, state.QP_INSIDE_NODE):
        fresh.query_params[key] = _param(app, key)
    fresh.run()
    assert not fresh.exception
    back = fresh.session_state[state.DESIGNER]
    assert back.workflow_id == workflow_id and back.scope_name == "triage" and back.scope.instance == "general"
    assert back.workflow.node("route").label == "Route it"
    back.leave()
    fresh.run()
    assert _param(fresh, state.QP_INSIDE) is None and _param(fresh, state.QP_INSIDE_NODE) is None
    gone = AppTest.from_file(app._script_path, default_timeout=60)  # a path that leads nowhere now
    gone.query_params.update({state.QP_WORKFLOW: workflow_id, state.QP_INSIDE: "nope", state.QP_INSIDE_NODE: "general"})
    gone.run()
    assert not gone.exception and gone.session_state[state.DESIGNER].scope is None
    assert _param(gone, state.QP_INSIDE) is None


def test_a_reload_inside_a_nested_component_opens_it_again_with_the_path_back(app: AppTest) -> None:
    from ui.session import save

    sess = _open_desks(app)
    sess.group([INPUTS, "intent", "entities"], REGISTRY)
    inner = next(n for n in sess.workflow.nodes if component_name(n) not in (None, "triage"))
    name = component_name(inner)
    with Store(os.environ["SERVICEGRID_DATABASE_URL"]) as store:
        save(sess, store)
    assert sess.enter(inner.id)
    app.run()
    assert _param(app, state.QP_INSIDE) == f"triage/{name}" and _param(app, state.QP_INSIDE_NODE) == "general"
    fresh = AppTest.from_file(app._script_path, default_timeout=60)
    for key in (state.QP_WORKFLOW, state.QP_INSIDE, state.QP_INSIDE_NODE):
        fresh.query_params[key] = _param(app, key)
    fresh.run()
    back = fresh.session_state[state.DESIGNER]
    assert not fresh.exception and back.scope_name == name and back.scope.trail == ("triage",)
    assert {n.id for n in back.workflow.nodes} == {INPUTS, "intent", "entities", OUTPUTS}


def test_the_node_a_run_paused_before_is_found_on_the_canvas_drawn_now(monkeypatch) -> None:
    """The workflow marks the component's node holding it; the component open from that node marks
    the node inside; open from another node, nothing is marked."""
    import types

    import ui.designer_run as designer_run

    snapshot = types.SimpleNamespace(paused_at="general/route")
    monkeypatch.setattr(designer_run, "get_run_manager", lambda: types.SimpleNamespace(snapshot=lambda _run: snapshot))
    sess = desks()
    assert designer_run.paused_here(sess, "r1") == "general"
    sess.enter("general")
    assert designer_run.paused_here(sess, "r1") == "route"
    sess.leave()
    sess.enter("payments")
    assert designer_run.paused_here(sess, "r1") is None
    snapshot.paused_at = None
    assert designer_run.paused_here(sess, "r1") is None and designer_run.paused_here(sess, None) is None
