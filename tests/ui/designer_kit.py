"""Helpers of the designer's AppTests."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from ui import state


def route_with_breakpoint(app: AppTest) -> None:
    """The customer-service template open, its ``route`` node selected with a breakpoint on it."""
    app.run()
    app.button(key="tpl.customer-service").click().run()
    app.session_state[state.DESIGNER].select("route")
    app.run()
    app.toggle(key="breakpoint.route.False").set_value(True).run()
