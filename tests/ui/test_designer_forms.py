"""The properties form's widgets declare the value they show as their default, so a widget the
browser re-creates (after an interrupted rerun) reports no change instead of 0.0 or ""."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _form() -> None:
    from typing import Literal

    import streamlit as st
    from pydantic import BaseModel, Field

    from ui.forms import render_fields, schema_fields

    class Params(BaseModel):
        threshold: float = Field(0.5, ge=0, le=1)
        count: int = Field(3, ge=1, le=9)
        tag: str = ""
        on: bool = False
        mode: Literal["a", "b"] = "a"

    values = st.session_state.setdefault("values", {"threshold": 0.7, "count": 5, "tag": "ok", "on": True, "mode": "b"})
    edits = st.session_state.setdefault("edits", [])
    render_fields(schema_fields(Params.model_json_schema()), values, key_prefix="p",
                  on_change=lambda name, value: (edits.append(name), values.__setitem__(name, value)))


def test_widgets_default_to_the_value_they_show() -> None:
    at = AppTest.from_function(_form, default_timeout=30).run()
    at.run()  # the run after the values were put in session state: shown value = default
    assert not at.exception
    assert at.number_input(key="p.threshold").proto.default == 0.7
    assert at.number_input(key="p.count").proto.default == 5
    assert at.text_input(key="p.tag.text").proto.default == "ok"
    assert at.checkbox(key="p.on").proto.default is True
    assert at.selectbox(key="p.mode").proto.default == 1
    assert at.session_state["edits"] == []


def test_a_real_edit_still_reaches_the_callback_and_becomes_the_default() -> None:
    at = AppTest.from_function(_form, default_timeout=30).run()
    at.number_input(key="p.threshold").set_value(0.25).run()
    assert at.session_state["edits"] == ["threshold"]
    assert at.session_state["values"]["threshold"] == 0.25
    at.run()
    assert at.number_input(key="p.threshold").proto.default == 0.25
    assert at.number_input(key="p.threshold").value == 0.25


def _pickers() -> None:
    import streamlit as st
    from pydantic import BaseModel, Field

    from engine.spec import picks
    from ui.forms import render_fields, schema_fields

    class Params(BaseModel):
        field: str = Field("confidence", json_schema_extra=picks("column"))
        score_class: str | None = Field(None, json_schema_extra=picks("class"))
        columns: list[str] = Field(default_factory=list, json_schema_extra=picks("columns"))
        other: str = Field("x", json_schema_extra=picks("column"))
        value: str | float | list[str] = Field(0.5, json_schema_extra=picks("value"))

    values = st.session_state.setdefault("values", {"field": "amout", "columns": ["age"]})
    edits = st.session_state.setdefault("edits", [])
    choices = st.session_state.get("choices", {"column": ["id", "amount", "age"], "class": ["legit", "fraud"],
                                               "columns": ["amount", "age"], "value": ["legit", "fraud"]})
    render_fields(schema_fields(Params.model_json_schema()), values, key_prefix="p", choices=choices,
                  many=st.session_state.get("many", ()),
                  on_change=lambda name, value: (edits.append(name), values.__setitem__(name, value)))


def test_a_parameter_naming_a_column_or_class_offers_what_the_node_receives() -> None:
    at = AppTest.from_function(_pickers, default_timeout=30).run()
    assert not at.exception
    field = at.selectbox(key="p.field.pick")
    assert field.options == ["id", "amount", "age", "amout (not in the input)"]  # a typo stays, marked
    assert field.value == "amout" and at.session_state["edits"] == []
    field.set_value("amount").run()
    assert at.session_state["values"]["field"] == "amount" and at.session_state["edits"] == ["field"]
    assert at.selectbox(key="p.field.pick").options == ["id", "amount", "age"]
    klass = at.selectbox(key="p.score_class.pick")
    assert klass.options == ["(not set)", "legit", "fraud"] and klass.value == ""  # not set: the agent's default
    klass.set_value("fraud").run()
    assert at.session_state["values"]["score_class"] == "fraud"
    at.selectbox(key="p.score_class.pick").set_value("").run()
    assert at.session_state["values"]["score_class"] is None
    value = at.selectbox(key="p.value.pick")  # a number where a class is expected: kept, marked
    assert value.options == ["legit", "fraud", "0.5 (not in the input)"] and value.value == "0.5"
    value.set_value("fraud").run()
    assert at.session_state["values"]["value"] == "fraud"
    at.session_state["many"] = {"value"}  # an 'in' condition: several classes, from the one picked
    at.run()
    assert at.multiselect(key="p.value.pick").value == ["fraud"]
    at.multiselect(key="p.value.pick").select("legit").run()
    assert at.session_state["values"]["value"] == ["fraud", "legit"]
    columns = at.multiselect(key="p.columns.pick")
    assert columns.options == ["amount", "age"] and columns.value == ["age"]
    columns.select("amount").run()
    assert at.session_state["values"]["columns"] == ["age", "amount"]


def test_without_known_choices_the_text_box_stays() -> None:
    at = AppTest.from_function(_pickers, default_timeout=30)
    at.session_state["choices"] = {}
    at.run()
    assert not at.exception and not at.selectbox and not at.multiselect
    assert at.text_input(key="p.field.text").value == "amout"


def test_a_field_whose_default_a_factory_makes_shows_that_default() -> None:
    """The routing rules default to a list made by a factory, which JSON Schema does not carry:
    the form shows the rules the agent will use, not an empty list."""
    from engine.registry import default_registry
    from ui.forms import shown_values

    params = default_registry().get("flow.route").params
    shown = shown_values(params, {"min_confidence": 0.9})
    assert shown["min_confidence"] == 0.9 and shown["rules"][0] == {"intent": "billing", "queue": "billing-team",
                                                                    "priority": "normal"}
    assert shown_values(params, {"rules": []})["rules"] == []  # a node's own value wins


def _flags() -> None:
    import streamlit as st

    from engine.workflow import Workflow
    from ui.editor import DesignerSession
    from ui.panel_edits import set_flag

    sess = st.session_state.setdefault("sess", DesignerSession(Workflow.model_validate(
        {"schema_version": 1, "nodes": [{"id": "a", "agent": "test.echo"}]})))
    st.toggle("Bypassed", value=False, key="bypass.a.False", on_change=set_flag,
              args=(sess, "a", "bypass", "bypass.a.False", lambda s: None))
    if st.session_state.get("spurious"):  # what a re-created toggle does: report its value again
        set_flag(sess, "a", "bypass", "bypass.a.False", lambda s: None)


def test_a_toggle_that_reports_again_without_a_click_changes_nothing() -> None:
    at = AppTest.from_function(_flags, default_timeout=30).run()
    at.session_state["spurious"] = True
    at.run()
    assert at.session_state["sess"].workflow.node("a").bypass is False  # it once flipped to True here
    at.session_state["spurious"] = False
    at.toggle(key="bypass.a.False").set_value(True).run()
    assert at.session_state["sess"].workflow.node("a").bypass is True  # a real click still sets it
