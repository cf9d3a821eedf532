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
