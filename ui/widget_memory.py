"""Keyed widgets inside lazy tabs keep their value while their tab is closed.

Streamlit forgets a widget's state after a rerun in which it was not drawn, and a lazy tab
(``st.tabs(..., on_change="rerun")`` with ``tab.open``) does not draw its widgets while another
tab is open. ``recall`` before the widget puts back the value ``remember`` saved after it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

_PREFIX = "_kept."


def recall(key: str, allowed: Callable[[Any], bool] | Sequence[Any] | None = None) -> bool:
    """Restore the last remembered value of the widget ``key`` if Streamlit dropped it.

    ``allowed`` (a predicate or the widget's options) rejects a value that is no longer valid,
    e.g. a run that a filter now hides. True when the widget has a value in session state (so
    the caller must not also pass a default to the widget).
    """
    state = st.session_state
    if key in state:
        return True
    kept = state.get(_PREFIX + key, _MISSING)
    if kept is _MISSING:
        return False
    ok = allowed(kept) if callable(allowed) else (allowed is None or kept in allowed)
    if ok:
        state[key] = kept
    return ok


def remember(key: str, value: Any) -> Any:
    """Save the value the widget ``key`` shows now (call right after the widget); returns it."""
    st.session_state[_PREFIX + key] = value
    return value


_MISSING = object()
