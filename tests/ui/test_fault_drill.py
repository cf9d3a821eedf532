"""The designer's fault drill: set in a node's properties, drawn with a bolt on the canvas, named in
a warning, turned off again."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from engine.registry import default_registry
from engine.workflow import FaultSpec, load_workflow
from ui import state
from ui.graphmodel import canvas_graph
from ui.session import EXAMPLES_DIR


def test_a_drilled_node_is_drawn_with_what_its_drill_does() -> None:
    wf = load_workflow(EXAMPLES_DIR / "two-stage.json")
    drilled = wf.model_copy(update={"nodes": (wf.nodes[0].model_copy(update={"faults": FaultSpec(
        fail_attempts=2, delay_s=3, extra_memory_mb=500)}), wf.nodes[1])})
    nodes = {n["id"]: n for n in canvas_graph(drilled, default_registry())["nodes"]}
    assert nodes["pre"]["drill"] == "fails its first 2 attempts · waits 3 s · holds 500 MB more"
    assert "drill" not in nodes["cls"]


def test_the_properties_panel_sets_and_clears_a_drill(app: AppTest) -> None:
    app.run()
    app.button(key="tpl.two-stage").click().run()
    app.session_state[state.DESIGNER].select("pre")
    app.run()
    app.number_input(key="drill.pre.fail_attempts").set_value(2).run()
    sess = app.session_state[state.DESIGNER]
    assert sess.workflow.node("pre").faults == FaultSpec(fail_attempts=2)
    warnings = [str(w.value).replace("\\", "") for w in app.warning]
    assert any("has a fault drill: it fails its first 2 attempts; with 0 retries it fails" in w for w in warnings)
    app.number_input(key="drill.pre.delay_s").set_value(1.5).run()
    assert app.session_state[state.DESIGNER].workflow.node("pre").faults == FaultSpec(fail_attempts=2, delay_s=1.5)
    app.button(key="drill.off.pre").click().run()
    assert app.session_state[state.DESIGNER].workflow.node("pre").faults is None
    assert not any("fault drill" in str(w.value) for w in app.warning)
