"""AppTest of a component's node in the designer: its panel (name, description, ports, the
parameters of the nodes inside as this node sets them, Ungroup), findings inside it shown on it,
and grouping from the session."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from ui import state


def _grouped(app: AppTest) -> str:
    """The customer-service template open with intent, entities and route grouped; the instance id."""
    from engine.registry import default_registry

    app.run()
    app.button(key="tpl.customer-service").click().run()
    sess = app.session_state[state.DESIGNER]
    sess.group(["intent", "entities", "route"], default_registry())
    [instance] = sess.selected
    app.run()
    return instance


def test_the_panel_edits_the_component_and_this_node_s_parameters_inside(app: AppTest) -> None:
    instance = _grouped(app)
    assert not app.exception
    name = app.text_input(key="component.name.Intent, Entities, Dialogue routing")
    assert name.value == "Intent, Entities, Dialogue routing"
    ports = app.dataframe[0].value
    assert list(ports["port"]) == ["texts", "tickets"] and list(ports["to"]) == ["intent, entities", "route"]
    # the routing's parameter, set on this node only: the component keeps its own value
    field = app.number_input(key=f"cparam.{instance}.route.min_confidence")
    assert field.value == 0.5
    field.set_value(0.8).run()
    sess = app.session_state[state.DESIGNER]
    assert sess.workflow.node(instance).params == {"route/min_confidence": 0.8}
    assert sess.workflow.component("Intent, Entities, Dialogue routing").nodes[2].params["min_confidence"] == 0.5
    app.number_input(key=f"cparam.{instance}.route.min_confidence").set_value(0.5).run()  # back: the override goes
    assert app.session_state[state.DESIGNER].workflow.node(instance).params == {}
    app.text_input(key="component.name.Intent, Entities, Dialogue routing").set_value("triage").run()
    sess = app.session_state[state.DESIGNER]
    assert sess.workflow.node(instance).agent == "component:triage" and sess.workflow.component("triage")
    app.button(key=f"ungroup.{instance}").click().run()
    sess = app.session_state[state.DESIGNER]
    assert sorted(sess.selected) == ["entities", "intent", "route"] and sess.workflow.components == ()


def test_a_finding_inside_a_component_shows_on_its_node_and_selects_it(app: AppTest) -> None:
    instance = _grouped(app)
    sess = app.session_state[state.DESIGNER]
    node = sess.workflow.node(instance)
    sess.push(sess.workflow.model_copy(update={"nodes": tuple(
        n.model_copy(update={"params": {"route/min_confidence": 7}}) if n.id == instance else n
        for n in sess.workflow.nodes)}))
    sess.select(None)
    app.run()
    texts = "\n".join(str(e.value) for e in app.error)
    assert f"node '{instance}/route': parameter min_confidence = 7 is invalid" in texts.replace("\\", "")
    app.button(key="issue.0").click().run()
    assert app.session_state[state.DESIGNER].selected == [instance]
    assert node is not None  # the instance is still drawn: its finding is shown in its panel
    assert any(f"{instance}/route" in str(e.value).replace("\\", "") for e in app.error)


def test_a_selection_with_a_node_between_is_refused_with_a_message(app: AppTest) -> None:
    from engine.registry import default_registry

    app.run()
    app.button(key="tpl.customer-service").click().run()
    sess = app.session_state[state.DESIGNER]
    before = sess.workflow
    sess.group(["requests", "route"], default_registry())  # intent and entities lie between
    assert sess.workflow is before
    assert "takes from the selected nodes and feeds them too" in sess.notice["text"]
    assert sess.notice["kind"] == "error"


def test_ungroup_change_and_group_again_updates_the_component_for_the_other_desk(app: AppTest) -> None:
    from engine.components import flatten
    from engine.registry import default_registry
    from ui.graphmodel import replace_node

    app.run()
    app.button(key="tpl.support-desks").click().run()
    sess = app.session_state[state.DESIGNER]
    sess.ungroup(["payments"])
    put = list(sess.selected)
    assert sorted(put) == ["entities", "intent", "route"]
    assert "Ctrl+G with them selected updates component 'triage'" in sess.notice["text"]
    route = sess.workflow.node("route")
    assert route.params["escalate_amount"] == 50  # the desk's own value, applied while open
    sess.push(replace_node(sess.workflow, route.model_copy(update={"params": {**route.params, "min_confidence": 0.9}})))
    sess.group(put, default_registry())
    assert sess.selected == ["payments"]
    assert sess.notice["text"] == "updated component 'triage' from its 3 nodes: its other node runs the change too"
    flat = flatten(sess.workflow)
    assert flat.node("general/route").params == {"escalate_amount": 0, "min_confidence": 0.9}
    assert flat.node("payments/route").params == {"escalate_amount": 50, "min_confidence": 0.9}
    assert sess.workflow.node("payments").label == "Payments desk (strict)"
    app.run()
    assert not app.exception


def test_save_a_component_to_the_library_use_it_in_another_workflow_and_delete_it(app: AppTest, tmp_path) -> None:
    from engine.workflow import NodeSpec, Workflow
    from storage import Store
    from ui.component_library import adopt_from_library, library_palette
    from ui.editor import DesignerSession
    from ui.services import get_registry

    app.run()
    app.button(key="tpl.support-desks").click().run()
    app.session_state[state.DESIGNER].select("general")
    app.run()
    app.button(key="library.save.general").click().run()
    assert not app.exception
    assert app.session_state[state.DESIGNER].notice["text"].startswith("saved component 'triage' to the library")
    store = Store(f"sqlite:///{tmp_path / 'ui.db'}")
    try:
        [entry] = store.list_components()
        assert (entry.name, entry.nodes, entry.owner, entry.shared) == ("triage", 3, None, True)
        # another workflow: the palette offers it, and a dropped one brings its definition along
        empty = Workflow(name="other")
        [item] = library_palette([entry], empty, get_registry())
        assert (item["name"], item["category"], [p["name"] for p in item["outputs"]]) == \
            ("component:triage", "library", ["tickets"])
        sess = DesignerSession(empty)
        sess.push(empty.model_copy(update={"nodes": (NodeSpec(id="t", agent="component:triage"),)}))
        assert adopt_from_library(sess, [entry]) == ["triage"]
        assert sess.workflow.component("triage") == entry.definitions[0] and len(sess.undo_stack) == 1
        assert library_palette([entry], sess.workflow, get_registry()) == []  # the workflow's own now
    finally:
        store.close()
    at = app.run()
    assert any("**triage** · 3 nodes" in str(m.value) for m in at.markdown)
    at.button(key=f"library.delete.{entry.id}").click().run()
    assert not at.exception
    assert any("The library is empty" in str(c.value) for c in at.caption)


def test_a_component_that_differs_from_the_library_s_can_take_the_library_s_version(app: AppTest) -> None:
    from engine.definitions import rename_component

    app.run()
    app.button(key="tpl.support-desks").click().run()
    app.session_state[state.DESIGNER].select("general")
    app.run()
    assert not [b for b in app.button if b.key == "library.use.general"]  # nothing in the library yet
    app.button(key="library.save.general").click().run()
    sess = app.session_state[state.DESIGNER]
    saved = sess.workflow.component("triage")
    sess.push(rename_component(sess.workflow, "triage", "triage", "changed here"))
    app.run()
    assert any("holds another version of" in str(i.value) for i in app.info)
    app.button(key="library.use.general").click().run()
    sess = app.session_state[state.DESIGNER]
    assert sess.workflow.component("triage") == saved
    assert sess.notice["text"].startswith("component 'triage' is now the library's version")
    assert not [b for b in app.button if b.key == "library.use.general"]  # the same again: no offer
    sess.undo()
    assert sess.workflow.component("triage").description == "changed here"
