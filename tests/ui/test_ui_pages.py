"""AppTest smoke and behaviour tests of the app frame, the Designer and the Agents page."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from engine.workflow import load_workflow
from ui import state
from ui.session import EXAMPLES_DIR


def _texts(at: AppTest) -> str:
    texts = [str(m.value) for m in [*at.markdown, *at.caption, *at.error, *at.info, *at.success, *at.warning]]
    return "\n".join(texts).replace("\\", "")  # markdown escapes


def test_designer_is_the_default_page_and_sidebar_shows_the_machine(app: AppTest) -> None:
    app.run()
    assert not app.exception
    assert any("Designer" in m.value for m in app.markdown)
    sidebar = "\n".join(m.value for m in app.sidebar.markdown)
    assert "CPU threads:" in sidebar and "Memory:" in sidebar
    assert "GPU: no GPU" in sidebar  # SERVICEGRID_NO_CUDA hides devices
    assert app.session_state[state.DESIGNER].workflow.nodes == ()


def test_agents_page_lists_every_registered_agent(app: AppTest) -> None:
    from ui.services import get_registry

    app.run()
    app.switch_page("pages/agents.py").run()
    assert not app.exception
    labels = [e.label for e in app.expander]
    assert len(labels) == len(get_registry())
    assert any("sim.task" in label for label in labels)


def test_agents_page_search_filters(app: AppTest) -> None:
    app.run()
    app.switch_page("pages/agents.py").run()
    app.text_input(key="agents_search").input("sim.task").run()
    assert [e.label for e in app.expander] == [e.label for e in app.expander if "sim.task" in e.label]
    assert len(app.expander) >= 1


def test_opening_a_template_saves_it_and_puts_its_id_in_the_url(app: AppTest) -> None:
    template = sorted(EXAMPLES_DIR.glob("*.json"))[0]
    app.run()
    app.button(key=f"tpl.{template.stem}").click().run()
    assert not app.exception
    sess = app.session_state[state.DESIGNER]
    assert [n.id for n in sess.workflow.nodes] == [n.id for n in load_workflow(template).nodes]
    assert all(n.position is not None for n in sess.workflow.nodes)  # laid out for the canvas
    assert app.query_params[state.QP_WORKFLOW] == [sess.workflow_id] or \
        app.query_params[state.QP_WORKFLOW] == sess.workflow_id


def test_reload_by_workflow_id_restores_the_graph(app: AppTest, tmp_path) -> None:
    template = EXAMPLES_DIR / "two-stage.json"
    app.run()
    app.button(key="tpl.two-stage").click().run()
    workflow_id = app.session_state[state.DESIGNER].workflow_id
    fresh = AppTest.from_file(app._script_path, default_timeout=60)
    fresh.query_params[state.QP_WORKFLOW] = workflow_id
    fresh.run()
    assert not fresh.exception
    restored = fresh.session_state[state.DESIGNER].workflow
    assert [n.id for n in restored.nodes] == [n.id for n in load_workflow(template).nodes]


def test_unknown_workflow_id_is_explained_not_raised(app: AppTest) -> None:
    app.query_params[state.QP_WORKFLOW] = "no-such-id"
    app.run()
    assert not app.exception
    assert "Could not open workflow no-such-id" in _texts(app)


def test_errors_disable_run_with_the_reason(app: AppTest) -> None:
    from engine.workflow import Workflow, workflow_from_data
    from ui.editor import DesignerSession

    app.run()
    bad: Workflow = workflow_from_data({"schema_version": 1, "name": "bad", "nodes": [
        {"id": "a", "agent": "sim.task", "params": {"duration_s": -1}, "position": {"x": 0, "y": 0}}]})
    app.session_state[state.DESIGNER] = DesignerSession(bad)
    app.run()
    assert app.button(key="designer_run").disabled
    assert "Run disabled:" in _texts(app)
    assert "invalid_param" in _texts(app)


def test_selecting_a_node_shows_its_parameter_form_and_edits_apply(app: AppTest) -> None:
    app.run()
    app.button(key="tpl.two-stage").click().run()
    sess = app.session_state[state.DESIGNER]
    rev = sess.rev
    sess.select("pre")
    app.run()
    field = app.number_input(key="param.pre.duration_s")
    assert field.value == 120
    field.set_value(30).run()
    sess = app.session_state[state.DESIGNER]
    assert sess.workflow.node("pre").params["duration_s"] == 30
    assert sess.rev > rev  # the canvas adopts the edit
    saved = json.loads(json.dumps(sess.workflow.to_dict()))
    assert saved["nodes"][0]["params"] == {"duration_s": 30}


def test_versions_duplicate_and_delete(app: AppTest) -> None:
    from storage import Store

    app.run()
    app.button(key="tpl.two-stage").click().run()
    sess = app.session_state[state.DESIGNER]
    first_id = sess.workflow_id
    sess.select("pre")
    app.run()
    app.number_input(key="param.pre.duration_s").set_value(30).run()
    app.text_input(key="wfmessage").input("shorter pre").run()
    app.button(key="wfsave").click().run()
    store = Store()
    versions = store.workflow_versions(first_id)
    assert [v.message for v in versions][-1] == "shorter pre"
    assert store.get_workflow(first_id, versions[0].version).node("pre").params["duration_s"] == 120

    app.selectbox(key=f"wfver.{app.session_state[state.DESIGNER].rev}").set_value(versions[0].version).run()
    app.button(key="wfveropen").click().run()
    assert app.session_state[state.DESIGNER].workflow.node("pre").params["duration_s"] == 120

    app.button(key="wfdup").click().run()
    copy = app.session_state[state.DESIGNER]
    assert copy.workflow_id != first_id and copy.workflow.name.endswith("(copy)")
    app.button(key="wfdel").click().run()
    assert app.session_state[state.DESIGNER].workflow_id is None
    assert copy.workflow_id not in [w.id for w in store.list_workflows()]
    store.close()


def test_clicking_a_finding_selects_its_node(app: AppTest) -> None:
    from engine.workflow import workflow_from_data
    from ui.editor import DesignerSession

    app.run()
    wf = workflow_from_data({"schema_version": 1, "name": "w", "nodes": [
        {"id": "lonely", "agent": "sim.task", "position": {"x": 0, "y": 0}},
        {"id": "other", "agent": "sim.task", "position": {"x": 300, "y": 0}}]})
    app.session_state[state.DESIGNER] = DesignerSession(wf)
    app.run()
    rev = app.session_state[state.DESIGNER].rev
    app.button(key="issue.0").click().run()
    sess = app.session_state[state.DESIGNER]
    assert sess.selected == ["lonely"] and sess.rev == rev + 1


def test_opening_a_saved_workflow_raises_the_revision(app: AppTest) -> None:
    app.run()
    app.button(key="tpl.two-stage").click().run()
    first = app.session_state[state.DESIGNER]
    app.button(key="wfnew").click().run()
    before = app.session_state[state.DESIGNER].rev
    app.selectbox(key="wfopen").set_value(first.workflow_id).run()
    app.button(key="wfopenbtn").click().run()
    sess = app.session_state[state.DESIGNER]
    assert sess.workflow_id == first.workflow_id
    assert sess.rev > before  # a canvas that holds an older revision adopts the opened graph
