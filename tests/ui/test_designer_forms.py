"""The properties form's widgets declare the value they show as their default, so a widget the
browser re-creates (after an interrupted rerun) reports no change instead of 0.0 or ""; a value
changed elsewhere moves the widget to a fresh key (ui.forms.widget_key)."""

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
    at = AppTest.from_function(_form, default_timeout=30).run()  # from the very first run
    assert not at.exception
    assert at.number_input(key="p.threshold#0").proto.default == 0.7
    assert at.number_input(key="p.count#0").proto.default == 5
    assert at.text_input(key="p.tag.text#0").proto.default == "ok"
    assert at.checkbox(key="p.on#0").proto.default is True
    assert at.selectbox(key="p.mode#0").proto.default == 1
    at.run()
    assert at.session_state["edits"] == [] and not at.warning


def test_a_real_edit_still_reaches_the_callback_and_becomes_the_default() -> None:
    at = AppTest.from_function(_form, default_timeout=30).run()
    at.number_input(key="p.threshold#0").set_value(0.25).run()
    assert at.session_state["edits"] == ["threshold"]
    assert at.session_state["values"]["threshold"] == 0.25
    at.run()
    field = at.number_input(key="p.threshold#0")  # the user's own edit keeps the key (and focus)
    assert field.proto.default == 0.25 and field.value == 0.25


def test_a_change_from_elsewhere_starts_the_widget_afresh_with_it_as_default() -> None:
    at = AppTest.from_function(_form, default_timeout=30).run()
    at.session_state["values"]["threshold"] = 0.9  # undo, an edit from Python, an upload...
    at.session_state["values"]["tag"] = ""
    at.run()
    assert not at.exception and not at.warning
    assert at.number_input(key="p.threshold#1").proto.default == 0.9
    assert at.text_input(key="p.tag.text#1").proto.default == ""
    assert at.number_input(key="p.count#0").proto.default == 5  # unchanged ones keep their key
    assert at.session_state["edits"] == []
