"""A breakpoint's condition in the designer's properties panel: typed as text, saved as the node's
`break_when`, refused with the form it must take, checked by validation, cleared with the breakpoint."""

from __future__ import annotations

from designer_kit import route_with_breakpoint
from streamlit.testing.v1 import AppTest

from engine.breaks import parse
from ui import state


def test_a_condition_typed_in_the_panel_is_saved_and_its_columns_are_shown(app: AppTest) -> None:
    route_with_breakpoint(app)
    captions = " ".join(str(c.value) for c in app.caption)
    assert "Input `intents` has the columns `id`, `text`, `predicted`, `confidence`" in captions
    app.text_input(key="break_when.route").input("intents: confidence < 0.6").run()
    assert app.session_state[state.DESIGNER].workflow.node("route").break_when == parse("intents: confidence < 0.6")
    assert not [e for e in app.error if "breakpoint condition" in str(e.value)]
    app.text_input(key="break_when.route").input("confidense < 0.6").run()  # no input named, a typo: validation says so
    errors = " ".join(str(e.value).replace("\\", "") for e in app.error)
    assert "its breakpoint condition (confidense < 0.6) names no input" in errors
    app.text_input(key="break_when.route").input("").run()  # empty: always pause
    assert app.session_state[state.DESIGNER].workflow.node("route").break_when is None


def test_text_that_is_not_a_condition_is_refused_and_stays_in_the_box(app: AppTest) -> None:
    route_with_breakpoint(app)
    app.text_input(key="break_when.route").input("intents: confidence < 0.6").run()
    app.text_input(key="break_when.route").input("confidence lower than 0.6").run()
    assert app.session_state[state.DESIGNER].workflow.node("route").break_when == parse("intents: confidence < 0.6")
    assert any("cannot read the condition 'confidence lower than 0.6'" in str(e.value).replace("\\", "") for e in app.error)
    assert app.text_input(key="break_when.route").value == "confidence lower than 0.6"
    app.toggle(key="breakpoint.route.True").set_value(False).run()  # the breakpoint off: its condition goes too
    route = app.session_state[state.DESIGNER].workflow.node("route")
    assert not route.breakpoint and route.break_when is None


def test_a_condition_can_be_picked_from_what_arrives_instead_of_typed(app: AppTest) -> None:
    route_with_breakpoint(app)
    app.selectbox(key="break_pick.route.port").select("intents").run()
    app.selectbox(key="break_pick.route.field.intents").select("predicted").run()
    app.selectbox(key="break_pick.route.op").select("==").run()
    values = app.selectbox(key="break_pick.route.one.intents.predicted")
    assert "refund" in values.options and "billing" in values.options  # the classes the intent model knows
    values.select("refund").run()
    app.button(key="break_pick.route.use").click().run()
    assert app.session_state[state.DESIGNER].workflow.node("route").break_when == parse("intents: predicted == refund")
    assert app.text_input(key="break_when.route").value == "intents: predicted == 'refund'"  # the box shows it as text
    app.selectbox(key="break_pick.route.field.intents").select("confidence").run()
    app.selectbox(key="break_pick.route.op").select("<").run()
    app.text_input(key="break_pick.route.text").input("0.6").run()  # no names known: typed, read as a number
    app.button(key="break_pick.route.use").click().run()
    assert app.session_state[state.DESIGNER].workflow.node("route").break_when == parse("intents: confidence < 0.6")
